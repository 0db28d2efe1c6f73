package line

import (
	"context"
	"time"

	"github.com/serialine/serialine/drivers"
	"github.com/serialine/serialine/edge/store"
	"github.com/serialine/serialine/sync/record"
)

// Camera triggering. When the line triggers its camera by command
// (Devices.TriggerCamera), the engine triggers it once per unit: at each
// rising edge of the PLC's product_present input when that tag is mapped
// (read every Options.PresencePoll by the PLC loop), else right after each
// unit label is sent to the printer (print-and-verify: the reader's read
// window covers the label's way to the camera). A trigger that fails is a
// device.fault record; the unit it was for gets no result and is rejected
// when its verdict times out (fail-safe).

// trigger asks the trigger loop for one camera trigger.
func (e *Engine) trigger() {
	select {
	case e.trigQ <- struct{}{}:
	default:
		e.log.Error().Str("device", e.dev.CameraName).Msg("camera trigger queue full: a unit goes untriggered (its verdict times out)")
	}
}

// triggerLoop sends the camera's trigger commands, one at a time.
func (e *Engine) triggerLoop(ctx context.Context) error {
	tr := e.dev.Camera.(drivers.Triggerer)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-e.trigQ:
			tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			err := tr.Trigger(tctx)
			cancel()
			if err != nil && ctx.Err() == nil {
				e.sendEvent(ctx, evTriggerFailed{err: err})
			}
		}
	}
}

type evTriggerFailed struct{ err error }

// triggerFailed records a failed trigger of a camera that is otherwise
// healthy (a disconnected camera is recorded as such already).
func (e *Engine) triggerFailed(tx *store.Tx, ev evTriggerFailed) error {
	name := e.dev.CameraName
	if h, ok := e.health[name]; ok && !h.OK() {
		return nil
	}
	e.log.Warn().Str("device", name).Err(ev.err).Msg("camera trigger failed")
	_, err := tx.Append(record.KindDeviceFault, record.DeviceFault{Device: name, Kind: "camera", Fault: "trigger_failed", Detail: ev.err.Error()})
	return err
}
