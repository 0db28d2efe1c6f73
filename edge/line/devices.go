package line

import (
	"context"
	"errors"
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

// printerLoop owns the printer: labels and status polls from one goroutine,
// so the driver is never used concurrently.
func (e *Engine) printerLoop(ctx context.Context) error {
	p, name := e.dev.Printer, e.dev.PrinterName
	var bo backoff
	connected := false
	poll := time.NewTicker(e.opt.StatusInterval)
	defer poll.Stop()
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
		case l := <-e.printQ:
			if err := p.Print(ctx, l); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				e.sendEvent(ctx, evPrintFailed{serial: l.ID, err: err})
				if errors.Is(err, drivers.ErrNotConnected) {
					connected = false
				}
				h, serr := p.Status(ctx)
				e.reportHealth(ctx, name, "printer", healthOf(h, serr))
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

// plcLoop writes reject pulses and counters to the PLC.
func (e *Engine) plcLoop(ctx context.Context) error {
	p, name := e.dev.PLC, e.dev.PLCName
	var bo backoff
	connected := false
	poll := time.NewTicker(e.opt.StatusInterval)
	defer poll.Stop()
	// pending holds an operation that failed: it is retried first after the
	// reconnect, so a reject signal is never silently dropped.
	var pending *plcOp
	for ctx.Err() == nil {
		if !connected {
			if err := p.Connect(ctx); err != nil {
				e.reportHealth(ctx, name, "plc", drivers.Health{Fault: "disconnected", Detail: err.Error()})
				if !sleepCtx(ctx, bo.next()) {
					return nil
				}
				continue
			}
			bo.reset()
			connected = true
			e.reportHealth(ctx, name, "plc", drivers.Health{Connected: true})
		}
		var err error
		var op plcOp
		if pending != nil {
			op, pending = *pending, nil
			err = e.plcWrite(ctx, op)
		} else {
			select {
			case <-ctx.Done():
				return nil
			case op = <-e.plcQ:
				err = e.plcWrite(ctx, op)
			case <-poll.C:
				if e.plcHasTag("line_running") {
					_, err = p.ReadBool(ctx, "line_running")
				}
			}
		}
		if err != nil && ctx.Err() == nil {
			if op.reject || op.counters {
				pending = &op
			}
			e.log.Error().Str("device", name).Err(err).Msg("PLC write failed")
			connected = false
			_ = p.Close()
			e.reportHealth(ctx, name, "plc", drivers.Health{Fault: "disconnected", Detail: err.Error()})
		}
	}
	return nil
}

func (e *Engine) plcWrite(ctx context.Context, op plcOp) error {
	p := e.dev.PLC
	switch {
	case op.reject:
		return p.WriteBool(ctx, "reject", true)
	case op.counters:
		if e.plcHasTag("good_count") {
			if err := p.WriteUint(ctx, "good_count", op.good); err != nil {
				return err
			}
		}
		if e.plcHasTag("reject_count") {
			return p.WriteUint(ctx, "reject_count", op.rejected)
		}
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
