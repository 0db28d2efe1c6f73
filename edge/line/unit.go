package line

import (
	"errors"
	"fmt"
	"time"

	"github.com/serialine/serialine/drivers"
	"github.com/serialine/serialine/edge/serials"
	"github.com/serialine/serialine/edge/store"
	"github.com/serialine/serialine/sync/gs1"
	"github.com/serialine/serialine/sync/record"
)

// fill keeps the printer fed: while the batch runs and every device is
// healthy, take serials reserved for the batch and commission units until
// print-ahead labels are in flight and good + in flight reaches the planned
// quantity. Each unit is recorded (unit.commissioned) in this transaction;
// its label goes to the printer only after commit. Challenge units go first.
func (e *Engine) fill(tx *store.Tx) (bool, error) {
	b := e.b
	e.gated = false
	if held, err := e.backpressure(tx); held || err != nil {
		return held, err
	}
	if b == nil || b.State != BatchRunning || !e.devicesOK() {
		return false, nil
	}
	e.challengeDue()
	if e.fillChallenge(tx) {
		return true, nil
	}
	// A label printer sequential aggregation needs is not ready: only as
	// many units as fit without filling another container of its level.
	room, err := e.labelRoom(tx)
	if err != nil {
		return false, err
	}
	dirty := false
	for len(b.InFlight) < e.ahead && b.Good+len(b.InFlight) < b.Planned {
		if room == 0 {
			e.gated = true
			break
		}
		gtin, serial, err := serials.Take(tx, b.ID)
		if errors.Is(err, serials.ErrExhausted) {
			// Rejects used up the overage: top the batch up from the pool
			// (recorded), or hold the line if the pool cannot provide.
			if err := e.topUp(tx); err != nil {
				return true, err
			}
			if b.State != BatchRunning {
				return true, nil
			}
			continue
		}
		if err != nil {
			return dirty, err
		}
		if gtin != b.GTIN || tx.Has(store.Units, unitKey(gtin, serial)) {
			return dirty, fmt.Errorf("line engine: reserved serial %s of GTIN %s is not usable for batch %s", serial, gtin, b.ID)
		}
		b.NextSeq++
		u := unit{Batch: b.ID, Seq: b.NextSeq, Status: UnitCommissioned}
		if err := putUnit(tx, unitKey(b.GTIN, serial), &u); err != nil {
			return dirty, err
		}
		els := b.elements(serial)
		if _, err := tx.Append(record.KindUnitCommissioned, record.UnitCommissioned{
			Batch: b.ID, GTIN: b.GTIN, Serial: serial, Lot: b.Lot, Expiry: b.Expiry,
			Printer: e.dev.PrinterName, Data: els.Bracketed(),
		}); err != nil {
			return dirty, err
		}
		now := e.now()
		if len(b.InFlight) == 0 {
			e.lastHeadMove = now
		}
		b.InFlight = append(b.InFlight, inflight{Serial: serial, Seq: b.NextSeq, SentAt: now.UnixNano()})
		b.Commissioned++
		if room > 0 {
			room--
		}
		b.LastSerial = serial
		if err := e.equipmentCommissioned(tx, serial); err != nil {
			return dirty, err
		}
		e.fx.prints = append(e.fx.prints, drivers.Label{
			ID: serial, Level: drivers.LevelUnit, Data: els,
			Text: map[string]string{"GTIN": b.GTIN, "SN": serial, "LOT": b.Lot, "EXP": b.Expiry, "PRODUCT": b.Product},
		})
		dirty = true
		if b.Challenge == nil && b.NextChallenge > 0 && b.Commissioned >= b.NextChallenge {
			break // an interval challenge is due: let the queue drain
		}
	}
	if b.Good >= b.Planned && len(b.InFlight) == 0 && b.State == BatchRunning {
		if err := e.setState(tx, BatchComplete, "planned quantity reached", "system"); err != nil {
			return dirty, err
		}
		dirty = true
	}
	if dirty {
		if err := e.checkPool(tx); err != nil {
			return dirty, err
		}
	}
	return dirty, nil
}

// verdict matches a camera reading to the unit it belongs to and records the
// evidence and the verdict. Units ahead of the matched one in the queue were
// missed by the camera: they are rejected (fail-safe).
func (e *Engine) verdict(tx *store.Tx, r drivers.Reading) error {
	b := e.b
	if b == nil || len(b.InFlight) == 0 {
		e.log.Warn().Str("device", r.Camera).Str("data", printable(r.Data)).Msg("camera read with no unit in flight")
		_, err := tx.Append(record.KindDeviceFault, record.DeviceFault{Device: r.Camera, Kind: "camera", Fault: "unexpected_read", Raw: printable(r.Data)})
		return err
	}
	head := b.InFlight[0]
	if r.NoRead {
		return e.judge(tx, head, r, nil, false, ReasonNoRead)
	}
	els, err := gs1.Parse(r.Symbology + r.Data)
	if err != nil {
		els, err = gs1.ParseElementString(r.Data)
	}
	if err != nil {
		e.log.Warn().Str("device", r.Camera).Err(err).Str("data", printable(r.Data)).Msg("camera data does not parse as GS1")
		return e.judge(tx, head, r, nil, false, ReasonUnparseable)
	}
	serial, _ := els.Get("21")
	gtin, _ := els.Get("01")
	// Which in-flight unit is this?
	idx := -1
	if gtin == b.GTIN {
		for i, f := range b.InFlight {
			if f.Serial == serial {
				idx = i
				break
			}
		}
	}
	if idx < 0 {
		// Not in flight: a serial read twice, or one never printed here.
		reason := ReasonForeign
		var u unit
		if ok, _ := getUnit(tx, unitKey(gtin, serial), &u); ok {
			reason = ReasonDuplicate
		}
		return e.judge(tx, head, r, els, false, reason)
	}
	for i := 0; i < idx; i++ {
		if err := e.judge(tx, b.InFlight[0], drivers.Reading{Camera: r.Camera, NoRead: true, At: r.At}, nil, false, ReasonOutOfSequence); err != nil {
			return err
		}
	}
	f := b.InFlight[0]
	want := b.elements(f.Serial)
	switch {
	case !sameElements(want, els):
		return e.judge(tx, f, r, els, false, ReasonMismatch)
	case float64(r.Grade) < b.MinGrade:
		return e.judge(tx, f, r, els, false, ReasonGrade)
	}
	return e.judge(tx, f, r, els, true, "")
}

// judge records the verdict of the head-of-queue unit f and removes it from
// the queue. A reject is signalled to the PLC after commit.
func (e *Engine) judge(tx *store.Tx, f inflight, r drivers.Reading, els gs1.Elements, pass bool, reason string) error {
	b := e.b
	if len(b.InFlight) == 0 || b.InFlight[0].Serial != f.Serial {
		return fmt.Errorf("line engine: judge %s is not the head of the queue", f.Serial)
	}
	b.InFlight = b.InFlight[1:]
	now := e.now()
	e.lastHeadMove = now
	if f.Challenge != "" {
		return e.judgeChallenge(tx, f, r, els, pass, reason)
	}
	key := unitKey(b.GTIN, f.Serial)
	var u unit
	if ok, err := getUnit(tx, key, &u); err != nil || !ok {
		return fmt.Errorf("line engine: unit %s missing from store: %v", f.Serial, err)
	}
	ev := record.UnitVerified{
		Batch: b.ID, GTIN: b.GTIN, Serial: f.Serial, Camera: r.Camera,
		Grade: float64(r.Grade), Letter: r.Grade.Letter(), Pass: pass, Reason: reason,
		Latency: now.Sub(time.Unix(0, f.SentAt)).Microseconds(),
	}
	if r.NoRead || reason == ReasonTimeout {
		ev.Grade, ev.Letter = 0, ""
	}
	if els != nil {
		ev.Data = els.Bracketed()
	} else if r.Data != "" {
		ev.Data = printable(r.Data)
	}
	if !r.At.IsZero() {
		ev.ReadAt = r.At.UTC().Format(time.RFC3339Nano)
	}
	if len(r.Params) > 0 {
		ev.Params = make(map[string]float64, len(r.Params))
		for k, v := range r.Params {
			ev.Params[k] = float64(v)
		}
	}
	if _, err := tx.Append(record.KindUnitVerified, ev); err != nil {
		return err
	}
	u.Grade = ev.Grade
	if pass {
		u.Status = UnitGood
		b.Good++
		e.speed.add(now)
		if err := putUnit(tx, key, &u); err != nil {
			return err
		}
		return e.packSequential(tx, f.Serial)
	}
	u.Status, u.Reason = UnitRejected, reason
	if err := putUnit(tx, key, &u); err != nil {
		return err
	}
	// The reject pulse first: the gate is time-critical, the counters are not.
	e.reject(f.Serial, f.Serial, reason)
	e.countReject(reason)
	e.speed.add(now)
	// A rejected unit leaves the line at the gate: its serial is taken out of
	// use at once (disposition pending: destroyed unless a supervisor says
	// sample or rework).
	return e.decommission(tx, f.Serial, reason, "destroyed")
}

func (e *Engine) countReject(reason string) {
	b := e.b
	b.Rejected++
	if b.Reasons == nil {
		b.Reasons = map[string]int{}
	}
	b.Reasons[reason]++
	e.fx.plc = append(e.fx.plc, plcOp{counters: true, good: uint64(b.Good), rejected: uint64(b.Rejected)})
}

func (e *Engine) decommission(tx *store.Tx, serial, reason, disposition string) error {
	b := e.b
	key := unitKey(b.GTIN, serial)
	var u unit
	if ok, err := getUnit(tx, key, &u); err != nil || !ok {
		return fmt.Errorf("line engine: decommission %s: unit missing: %v", serial, err)
	}
	u.Status = UnitDecommissioned
	if u.Reason == "" {
		u.Reason = reason
	}
	if err := putUnit(tx, key, &u); err != nil {
		return err
	}
	b.Decommissioned++
	_, err := tx.Append(record.KindUnitDecommissioned, record.UnitDecommissioned{
		Batch: b.ID, GTIN: b.GTIN, Serial: serial, Reason: reason, Disposition: disposition,
	})
	return err
}

// timers rejects the head unit when no verdict arrived in time (fail-safe).
func (e *Engine) timers(tx *store.Tx) (bool, error) {
	b := e.b
	if b == nil || len(b.InFlight) == 0 {
		return false, nil
	}
	timeout := e.cfg.Edge.VerdictTimeout.D()
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	dirty := false
	now := e.now()
	for len(b.InFlight) > 0 {
		head := b.InFlight[0]
		start := time.Unix(0, head.SentAt)
		if e.lastHeadMove.After(start) {
			start = e.lastHeadMove
		}
		limit := timeout
		if head.Challenge != "" && e.cfg.Edge.Challenge.Timeout > 0 {
			limit = e.cfg.Edge.Challenge.Timeout.D()
		}
		if now.Sub(start) < limit {
			break
		}
		e.log.Warn().Str("serial", head.Serial).Dur("timeout", timeout).Msg("no verdict in time: rejecting unit")
		if err := e.judge(tx, head, drivers.Reading{Camera: e.dev.CameraName, NoRead: true}, nil, false, ReasonTimeout); err != nil {
			return dirty, err
		}
		e.lastHeadMove = start.Add(limit) // the next unit gets its own full window
		dirty = true
	}
	return dirty, nil
}

func (e *Engine) printFailed(tx *store.Tx, serial string, perr error) error {
	b := e.b
	if b == nil {
		return nil
	}
	for i, f := range b.InFlight {
		if f.Serial != serial {
			continue
		}
		// The label may or may not have reached the printer. Take the unit
		// out of the queue and its serial out of use; if it was printed
		// after all, the camera's read will be flagged as not in flight.
		b.InFlight = append(b.InFlight[:i], b.InFlight[i+1:]...)
		if i == 0 {
			e.lastHeadMove = e.now()
		}
		if f.Challenge != "" {
			e.requeueChallenge(f.Challenge)
			return nil
		}
		key := unitKey(b.GTIN, serial)
		var u unit
		if ok, err := getUnit(tx, key, &u); err != nil || !ok {
			return fmt.Errorf("line engine: unit %s missing: %v", serial, err)
		}
		u.Status, u.Reason = UnitRejected, ReasonPrintFailed
		if err := putUnit(tx, key, &u); err != nil {
			return err
		}
		if _, err := tx.Append(record.KindUnitVerified, record.UnitVerified{
			Batch: b.ID, GTIN: b.GTIN, Serial: serial, Camera: e.dev.CameraName, Pass: false, Reason: ReasonPrintFailed,
		}); err != nil {
			return err
		}
		e.countReject(ReasonPrintFailed)
		e.log.Warn().Str("serial", serial).Err(perr).Msg("print failed: serial decommissioned")
		return e.decommission(tx, serial, ReasonPrintFailed, "destroyed")
	}
	return nil
}

func (e *Engine) readError(tx *store.Tx, err error) (bool, error) {
	var de *drivers.DeviceError
	if !errors.As(err, &de) || !errors.Is(err, drivers.ErrMalformed) {
		return false, nil
	}
	// Garbage from the camera: a recorded fault with the bytes, and the unit
	// concerned (the head of the queue) is rejected.
	if _, err := tx.Append(record.KindDeviceFault, record.DeviceFault{
		Device: de.Device, Kind: "camera", Fault: "malformed_result", Detail: de.Err.Error(), Raw: printable(string(de.Raw)),
	}); err != nil {
		return false, err
	}
	if e.b == nil || len(e.b.InFlight) == 0 {
		return false, nil
	}
	return true, e.judge(tx, e.b.InFlight[0], drivers.Reading{Camera: de.Device, Data: string(de.Raw)}, nil, false, ReasonUnparseable)
}

func sameElements(want, got gs1.Elements) bool {
	if len(want) != len(got) {
		return false
	}
	for _, w := range want {
		v, ok := got.Get(w.AI)
		if !ok || v != w.Value {
			return false
		}
	}
	return true
}

// printable renders device data for logs and evidence: GS as <GS>, other
// control bytes escaped, bounded.
func printable(s string) string {
	if len(s) > 256 {
		s = s[:256]
	}
	out := make([]byte, 0, len(s)+8)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == 0x1d:
			out = append(out, "<GS>"...)
		case c < 0x20 || c >= 0x7f:
			out = append(out, fmt.Sprintf("\\x%02x", c)...)
		default:
			out = append(out, c)
		}
	}
	return string(out)
}
