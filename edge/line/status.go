package line

import (
	"github.com/serialine/serialine/drivers"
	"github.com/serialine/serialine/edge/store"
)

// PackML state numbers (Status.StateCurrent).
const (
	PackMLUndefined = 0
	PackMLStopped   = 2
	PackMLStarting  = 3
	PackMLIdle      = 4
	PackMLSuspended = 5
	PackMLExecute   = 6
	PackMLHeld      = 11
	PackMLComplete  = 17
)

// Status is the engine's live snapshot for the HTTP API, OPC UA tags and the
// status sent to central.
type Status struct {
	Line           string            `json:"line"`
	Edge           string            `json:"edge"`
	State          string            `json:"state"`  // PackML state name
	PackML         int32             `json:"packml"` // PackML state number
	Batch          string            `json:"batch,omitempty"`
	BatchState     string            `json:"batch_state,omitempty"`
	GTIN           string            `json:"gtin,omitempty"`
	Lot            string            `json:"lot,omitempty"`
	Product        string            `json:"product,omitempty"`
	Planned        int               `json:"planned"`
	Commissioned   int               `json:"commissioned"`
	Good           int               `json:"good"`
	Rejected       int               `json:"rejected"`
	Reasons        map[string]int    `json:"reasons,omitempty"`
	InFlight       int               `json:"in_flight"`
	CasesClosed    int               `json:"cases_closed"`
	PalletsClosed  int               `json:"pallets_closed"`
	Aggregated     int               `json:"aggregated"` // good units in closed cases
	OpenCase       string            `json:"open_case,omitempty"`
	OpenCaseFill   int               `json:"open_case_fill"`
	OpenPallet     string            `json:"open_pallet,omitempty"`
	OpenPalletFill int               `json:"open_pallet_fill"`
	LastSerial     string            `json:"last_serial,omitempty"`
	UnitsPerMin    float64           `json:"units_per_min"`
	Devices        map[string]string `json:"devices"`
	LastSeq        uint64            `json:"last_seq"`
	AckedSeq       uint64            `json:"acked_seq"`
	PendingSync    uint64            `json:"pending_sync"`
	Alarms         []string          `json:"alarms,omitempty"`
	Challenge      string            `json:"challenge,omitempty"` // running challenge kind, or "failed"
}

// Status returns the latest snapshot (safe from any goroutine).
func (e *Engine) Status() Status {
	s := *e.status.Load()
	head := e.db.Head()
	s.LastSeq = head.Seq
	s.AckedSeq = e.db.Acked()
	if s.LastSeq > s.AckedSeq {
		s.PendingSync = s.LastSeq - s.AckedSeq
	}
	return s
}

func (e *Engine) publish() {
	s := &Status{Line: e.cfg.Line.ID, Edge: e.cfg.Edge.ID, Devices: map[string]string{}}
	for _, name := range []string{e.dev.PrinterName, e.dev.CameraName, e.dev.PLCName} {
		h, ok := e.health[name]
		s.Devices[name] = healthText(h, ok)
	}
	b := e.b
	switch {
	case b == nil || b.State == BatchClosed:
		s.State, s.PackML = "Idle", PackMLIdle
	case b.State == BatchHeld:
		s.State, s.PackML = "Held", PackMLHeld
	case b.State == BatchStopped:
		s.State, s.PackML = "Stopped", PackMLStopped
	case b.State == BatchComplete:
		s.State, s.PackML = "Complete", PackMLComplete
	case !e.devicesOK():
		s.State, s.PackML = "Suspended", PackMLSuspended
	default:
		s.State, s.PackML = "Execute", PackMLExecute
	}
	if b != nil {
		s.Batch, s.BatchState, s.GTIN, s.Lot, s.Product = b.ID, b.State, b.GTIN, b.Lot, b.Product
		s.Planned, s.Commissioned, s.Good, s.Rejected = b.Planned, b.Commissioned, b.Good, b.Rejected
		s.Reasons = make(map[string]int, len(b.Reasons))
		for k, v := range b.Reasons {
			s.Reasons[k] = v
		}
		s.InFlight = len(b.InFlight)
		s.CasesClosed, s.PalletsClosed, s.Aggregated = b.CasesClosed, b.PalletsClosed, b.Aggregated
		s.OpenCase, s.OpenPallet = b.OpenCase, b.OpenPallet
		s.LastSerial = b.LastSerial
		s.Alarms = append([]string(nil), b.Alarms...)
		if c := b.Challenge; c != nil {
			s.Challenge = c.Active
			if s.Challenge == "" && len(c.Pending) > 0 {
				s.Challenge = c.Pending[0]
			}
		}
		s.OpenCaseFill = e.fillOf(b.OpenCase)
		s.OpenPalletFill = e.fillOf(b.OpenPallet)
	}
	s.UnitsPerMin = e.speed.perMinute(e.now())
	e.status.Store(s)
	if e.opt.OnStatus != nil {
		e.opt.OnStatus(e.Status())
	}
}

// fillOf reads a container's fill from the store (cheap: one key).
func (e *Engine) fillOf(sscc string) int {
	if sscc == "" {
		return 0
	}
	var c container
	_ = e.db.View(func(tx *store.Tx) error {
		_, err := tx.GetJSON(store.Containers, []byte(sscc), &c)
		return err
	})
	return len(c.Children)
}

func healthText(h drivers.Health, seen bool) string {
	switch {
	case !seen:
		return "connecting"
	case h.OK():
		return "ok"
	case h.Fault != "":
		return h.Fault
	default:
		return "disconnected"
	}
}
