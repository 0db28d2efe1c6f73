package line

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/serialine/serialine/drivers"
)

// backoff is a bounded exponential reconnect delay.
type backoff struct{ d time.Duration }

func (b *backoff) next() time.Duration {
	switch {
	case b.d == 0:
		b.d = 100 * time.Millisecond
	case b.d < 5*time.Second:
		b.d *= 2
	}
	return b.d
}

func (b *backoff) reset() { b.d = 0 }

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (e *Engine) sendEvent(ctx context.Context, ev event) {
	select {
	case e.events <- ev:
	case <-ctx.Done():
	}
}

func (e *Engine) reportHealth(ctx context.Context, device, kind string, h drivers.Health) {
	if h.At.IsZero() {
		h.At = e.now()
	}
	e.sendEvent(ctx, evHealth{device: device, kind: kind, h: h})
}

// printerLoop owns one printer: its labels (unit labels, container labels
// or both) and status polls from one goroutine, so the driver is never used
// concurrently.
func (e *Engine) printerLoop(ctx context.Context, pd printerDev) error {
	p, name := pd.p, pd.name
	var bo backoff
	connected := false
	poll := time.NewTicker(e.opt.StatusInterval)
	defer poll.Stop()
	afterPrint := func(err error) {
		if errors.Is(err, drivers.ErrNotConnected) {
			connected = false
		}
		h, serr := p.Status(ctx)
		e.reportHealth(ctx, name, "printer", healthOf(h, serr))
	}
	for ctx.Err() == nil {
		if !connected {
			if err := p.Connect(ctx); err != nil {
				e.reportHealth(ctx, name, "printer", drivers.Health{Connected: false, Fault: "disconnected", Detail: err.Error()})
				if !sleepCtx(ctx, bo.next()) {
					return nil
				}
				continue
			}
			bo.reset()
			connected = true
			h, err := p.Status(ctx)
			e.reportHealth(ctx, name, "printer", healthOf(h, err))
		}
		select {
		case <-ctx.Done():
			return nil
		case l := <-pd.units:
			if err := p.Print(ctx, l); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				e.sendEvent(ctx, evPrintFailed{serial: l.ID, err: err})
				afterPrint(err)
				continue
			}
			if e.dev.TriggerCamera && !e.presence {
				e.trigger()
			}
		case l := <-pd.boxes:
			err := p.Print(ctx, l)
			if ctx.Err() != nil {
				// Stopping: the outcome is unknown; the restart makes the
				// label pending.
				return nil
			}
			e.sendEvent(ctx, evLabelDone{sscc: l.ID, printer: name, err: err})
			if err != nil {
				afterPrint(err)
			}
		case <-poll.C:
			h, err := p.Status(ctx)
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, drivers.ErrNotConnected) {
				connected = false
			}
			e.reportHealth(ctx, name, "printer", healthOf(h, err))
		}
	}
	return nil
}

func healthOf(h drivers.Health, err error) drivers.Health {
	if err == nil {
		return h
	}
	if h.Fault == "" {
		switch {
		case errors.Is(err, drivers.ErrTimeout):
			h.Fault = "no_answer"
		case errors.Is(err, drivers.ErrNotConnected):
			h.Connected = false
			h.Fault = "disconnected"
		case errors.Is(err, drivers.ErrDeviceFault):
			h.Fault = "fault"
		default:
			h.Fault = "error"
		}
	}
	if h.Detail == "" {
		h.Detail = err.Error()
	}
	return h
}

// cameraLoop reads result lines and feeds them to the engine.
func (e *Engine) cameraLoop(ctx context.Context) error {
	c, name := e.dev.Camera, e.dev.CameraName
	var bo backoff
	connected := false
	for ctx.Err() == nil {
		if !connected {
			if err := c.Connect(ctx); err != nil {
				e.reportHealth(ctx, name, "camera", drivers.Health{Fault: "disconnected", Detail: err.Error()})
				if !sleepCtx(ctx, bo.next()) {
					return nil
				}
				continue
			}
			bo.reset()
			connected = true
			e.reportHealth(ctx, name, "camera", drivers.Health{Connected: true})
		}
		r, err := c.Read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, drivers.ErrMalformed) {
				e.log.Warn().Str("device", name).Err(err).Msg("camera sent a line that does not parse")
				e.sendEvent(ctx, evReadError{err: err})
				continue
			}
			connected = false
			e.reportHealth(ctx, name, "camera", drivers.Health{Fault: "disconnected", Detail: err.Error()})
			if !sleepCtx(ctx, bo.next()) {
				return nil
			}
			continue
		}
		if r.Camera == "" {
			r.Camera = name
		}
		if r.At.IsZero() {
			r.At = e.now()
		}
		e.sendEvent(ctx, evReading{r: r})
	}
	return nil
}

// plcLoop writes reject pulses and counters to the PLC and reads its
// inputs. Rejects go first and never after their deadline (see
// rejects.go); counters are retried with backoff; the latest counters
// supersede older ones.
func (e *Engine) plcLoop(ctx context.Context) error {
	p, name := e.dev.PLC, e.dev.PLCName
	var bo, cbo backoff
	connected := false
	poll := time.NewTicker(e.opt.StatusInterval)
	defer poll.Stop()
	var presence <-chan time.Time
	if e.presence {
		t := time.NewTicker(e.opt.PresencePoll)
		defer t.Stop()
		presence = t.C
	}
	var rejects []plcOp
	var counters *plcOp
	var counterAt time.Time // earliest retry of a failed counters write
	present, presentKnown := false, false
	add := func(op plcOp) {
		if op.reject {
			rejects = append(rejects, op)
		} else if op.counters {
			counters = &op
		}
	}
	healthy := false
	// fail reports a failed PLC operation: a refused request (a Modbus
	// exception) keeps the link, anything else drops it.
	fail := func(err error, what string) {
		e.log.Error().Str("device", name).Err(err).Msg(what)
		healthy = false
		if errors.Is(err, drivers.ErrDeviceFault) {
			e.reportHealth(ctx, name, "plc", drivers.Health{Connected: true, Fault: "refused", Detail: err.Error()})
			return
		}
		connected, presentKnown = false, false
		_ = p.Close()
		e.reportHealth(ctx, name, "plc", drivers.Health{Fault: "disconnected", Detail: err.Error()})
	}
	ok := func() {
		if !healthy {
			healthy = true
			e.reportHealth(ctx, name, "plc", drivers.Health{Connected: true})
		}
	}
	failedReject := ""
	// sleep waits for d, a new operation or the end; false at the end.
	sleep := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case op := <-e.plcQ:
			add(op)
		case <-t.C:
		}
		return true
	}
	for ctx.Err() == nil {
	drain:
		for {
			select {
			case op := <-e.plcQ:
				add(op)
			default:
				break drain
			}
		}
		// A reject past its deadline is never sent.
		now := e.now()
		for len(rejects) > 0 && !now.Before(rejects[0].deadline) {
			e.sendEvent(ctx, evRejectDone{id: rejects[0].id, detail: "its deadline passed before the PLC took the pulse"})
			rejects = rejects[1:]
		}
		if !connected {
			if err := p.Connect(ctx); err != nil {
				e.reportHealth(ctx, name, "plc", drivers.Health{Fault: "disconnected", Detail: err.Error()})
				d := bo.next()
				if len(rejects) > 0 {
					d = min(d, 20*time.Millisecond) // keep trying while a reject may still make it
				}
				if !sleep(d) {
					return nil
				}
				continue
			}
			bo.reset()
			connected = true
			healthy = false
			ok()
		}
		if len(rejects) > 0 {
			op := rejects[0]
			err := p.WriteBool(ctx, "reject", true)
			if ctx.Err() != nil {
				return nil
			}
			if err == nil {
				ok()
				rejects = rejects[1:]
				detail := ""
				if late := e.now().Sub(op.deadline); late > 0 {
					detail = fmt.Sprintf("the PLC confirmed the pulse %s after the deadline: it may have come too late", late.Round(time.Millisecond))
				}
				e.sendEvent(ctx, evRejectDone{id: op.id, detail: detail})
				continue
			}
			// Retried while its deadline allows (checked above).
			if failedReject != op.id {
				failedReject = op.id
				fail(err, "reject pulse failed; retried until its deadline")
			} else if !errors.Is(err, drivers.ErrDeviceFault) {
				connected, presentKnown = false, false
				_ = p.Close()
			}
			if !sleep(min(20*time.Millisecond, max(op.deadline.Sub(e.now()), 0))) {
				return nil
			}
			continue
		}
		if counters != nil && !e.now().Before(counterAt) {
			if err := e.writeCounters(ctx, *counters); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				counterAt = e.now().Add(cbo.next())
				fail(err, "PLC counters write failed (retried)")
				continue
			}
			ok()
			counters = nil
			cbo.reset()
			continue
		}
		var retry <-chan time.Time
		var rt *time.Timer
		if counters != nil {
			rt = time.NewTimer(max(counterAt.Sub(e.now()), time.Millisecond))
			retry = rt.C
		}
		var err error
		read := false
		select {
		case <-ctx.Done():
			return nil
		case op := <-e.plcQ:
			add(op)
		case <-retry:
		case <-poll.C:
			if e.plcHasTag("line_running") {
				_, err = p.ReadBool(ctx, "line_running")
				read = true
			}
		case <-presence:
			var v bool
			read = true
			if v, err = p.ReadBool(ctx, "product_present"); err == nil {
				if v && presentKnown && !present {
					e.trigger() // a unit arrived at the camera
				}
				present, presentKnown = v, true
			}
		}
		if rt != nil {
			rt.Stop()
		}
		switch {
		case ctx.Err() != nil:
		case err != nil:
			fail(err, "PLC read failed")
		case read:
			ok()
		}
	}
	return nil
}

func (e *Engine) writeCounters(ctx context.Context, op plcOp) error {
	p := e.dev.PLC
	if e.plcHasTag("good_count") {
		if err := p.WriteUint(ctx, "good_count", op.good); err != nil {
			return err
		}
	}
	if e.plcHasTag("reject_count") {
		return p.WriteUint(ctx, "reject_count", op.rejected)
	}
	return nil
}

// TagLister is implemented by PLC drivers that can say which tags are mapped.
type TagLister interface{ HasTag(name string) bool }

func (e *Engine) plcHasTag(name string) bool {
	if tl, ok := e.dev.PLC.(TagLister); ok {
		return tl.HasTag(name)
	}
	return name == "reject"
}
