package line

import (
	"context"
	"time"

	"github.com/serialine/serialine/drivers"
	"github.com/serialine/serialine/edge/store"
)

// Equipment is the engine's hook to the equipment registry (downtime,
// calibration, the batch-start interlock; edge/equipment implements it).
// Every method runs on the engine goroutine inside the engine's current
// transaction, so what it records is committed together with the line
// state it describes. An error that is a *RuleError refuses the operation
// (batch start); any other error is a store failure and stops the engine.
type Equipment interface {
	// Health is called for every device health report, before the engine
	// records a fault or recovery.
	Health(tx *store.Tx, device, kind string, h drivers.Health, b EquipmentBatch, now time.Time) error
	// Commissioned is called for every unit commissioned (serial sent to print).
	Commissioned(tx *store.Tx, b EquipmentBatch, serial string, now time.Time) error
	// Tick is called at the end of every engine step (20 ms apart at most).
	Tick(tx *store.Tx, b EquipmentBatch, now time.Time) error
	// CheckStart is called when a batch starts, before anything is
	// reserved; a *RuleError refuses the start.
	CheckStart(tx *store.Tx, b EquipmentBatch, by string, now time.Time) error
	// Alarms lists the active equipment alarms (shown in Status.Alarms and
	// on the OPC UA alarm tags).
	Alarms() []string
}

// EquipmentBatch is what the equipment registry sees of the active batch.
type EquipmentBatch struct {
	ID           string
	State        string // created, cleared, running, held, stopped, complete; empty: no batch
	GTIN         string
	Commissioned int
	LastSerial   string
	InFlight     []string // product serials awaiting a verdict, oldest first
}

// Producing reports whether the batch has started and is not closed.
func (b EquipmentBatch) Producing() bool {
	switch b.State {
	case BatchRunning, BatchHeld, BatchStopped, BatchComplete:
		return true
	}
	return false
}

func (e *Engine) equipmentBatch() EquipmentBatch {
	b := e.b
	if b == nil || b.State == BatchClosed {
		return EquipmentBatch{}
	}
	v := EquipmentBatch{ID: b.ID, State: b.State, GTIN: b.GTIN, Commissioned: b.Commissioned, LastSerial: b.LastSerial}
	for _, f := range b.InFlight {
		if f.Challenge == "" {
			v.InFlight = append(v.InFlight, f.Serial)
		}
	}
	return v
}

func (e *Engine) equipmentHealth(tx *store.Tx, ev evHealth) error {
	if e.opt.Equipment == nil {
		return nil
	}
	return e.opt.Equipment.Health(tx, ev.device, ev.kind, ev.h, e.equipmentBatch(), e.now())
}

func (e *Engine) equipmentCommissioned(tx *store.Tx, serial string) error {
	if e.opt.Equipment == nil {
		return nil
	}
	return e.opt.Equipment.Commissioned(tx, e.equipmentBatch(), serial, e.now())
}

func (e *Engine) equipmentTick(tx *store.Tx) error {
	if e.opt.Equipment == nil {
		return nil
	}
	return e.opt.Equipment.Tick(tx, e.equipmentBatch(), e.now())
}

func (e *Engine) equipmentCheckStart(tx *store.Tx, by string) error {
	if e.opt.Equipment == nil {
		return nil
	}
	return e.opt.Equipment.CheckStart(tx, e.equipmentBatch(), by, e.now())
}

func (e *Engine) equipmentAlarms() []string {
	if e.opt.Equipment == nil {
		return nil
	}
	return e.opt.Equipment.Alarms()
}

// EquipmentDo runs fn on the engine goroutine in one transaction (manual
// downtime, remediation, calibration records entered through the API). A
// *RuleError from fn refuses the request and changes nothing.
func (e *Engine) EquipmentDo(ctx context.Context, name string, fn func(tx *store.Tx, b EquipmentBatch, now time.Time) (any, error)) (any, error) {
	return e.do(ctx, name, func(tx *store.Tx) (any, error) { return fn(tx, e.equipmentBatch(), e.now()) })
}

// ReportHealth feeds the health of equipment the engine does not drive
// (the link to central) through the engine: faults and recoveries are
// recorded (device.fault) and the equipment hook sees them. It does not
// affect production.
func (e *Engine) ReportHealth(ctx context.Context, device, kind string, h drivers.Health) {
	e.reportHealth(ctx, device, kind, h)
}

// Now is the engine's clock.
func (e *Engine) Now() time.Time { return e.now() }
