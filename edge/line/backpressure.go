package line

import "github.com/serialine/serialine/edge/store"

// AlarmOutboxFull is the alarm of a line held because the outbox to central
// reached its size or age limit.
const AlarmOutboxFull = "outbox_full"

// backpressure holds a running batch while Options.Backpressure says so
// (the outbox to central is full: records are never dropped, so the line
// stops making more), with the outbox_full alarm, and resumes it when the
// condition clears, if it was this hold that stopped it. An operator may
// also resume by hand; if the outbox is still full the line is held again
// at the next step. It reports whether it changed the batch.
func (e *Engine) backpressure(tx *store.Tx) (bool, error) {
	b := e.b
	if e.opt.Backpressure == nil || b == nil {
		return false, nil
	}
	hold, why := e.opt.Backpressure()
	on := false
	for _, a := range b.Alarms {
		on = on || a == AlarmOutboxFull
	}
	switch {
	case hold && b.State == BatchRunning:
		if err := e.alarm(tx, AlarmOutboxFull, true, why+"; line held"); err != nil {
			return true, err
		}
		return true, e.setState(tx, BatchHeld, why, "system")
	case !hold && on:
		if err := e.alarm(tx, AlarmOutboxFull, false, "outbox below its limits: central acknowledged"); err != nil {
			return true, err
		}
		if b.State == BatchHeld {
			return true, e.setState(tx, BatchRunning, "outbox below its limits", "system")
		}
		return true, nil
	}
	return false, nil
}
