package line

import (
	"github.com/serialine/serialine/drivers"
	"github.com/serialine/serialine/edge/serials"
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

	// Open containers of the batch (every level and mode), in opening order.
	OpenContainers []OpenContainer `json:"open_containers,omitempty"`
	// Reserved is the number of serials the batch holds and has not used yet.
	Reserved int `json:"reserved"`
	// Pools is the serial pool level of every product of the line.
	Pools []Pool `json:"pools"`
	// Samples pulled in the batch, and the product's planned sample count.
	Samples        int `json:"samples"`
	SamplesPlanned int `json:"samples_planned"`
	// ConfigHash is the line config in force (the batch's while one is
	// open); ConfigPending a changed config waiting for the batch to close.
	ConfigHash    string `json:"config_hash"`
	ConfigPending string `json:"config_pending,omitempty"`
	// LabelsPending are closed containers whose SSCC label may not have
	// printed (reprint needed); WaitingForLabel full containers that close
	// when their label printer is ready.
	LabelsPending   []string `json:"labels_pending,omitempty"`
	WaitingForLabel []string `json:"waiting_for_label,omitempty"`
	// RejectsNotDelivered are rejected items that may have gone
	// downstream: the batch stays held until each one's removal is
	// confirmed.
	RejectsNotDelivered []UndeliveredReject `json:"rejects_not_delivered,omitempty"`
	// RejectsPending is the number of reject pulses on their way to the PLC.
	RejectsPending int `json:"rejects_pending"`
}

// OpenContainer is an open case or pallet and how full it is.
type OpenContainer struct {
	SSCC     string `json:"sscc"`
	Level    string `json:"level"`
	Fill     int    `json:"fill"`
	Capacity int    `json:"capacity"`
}

// Pool is the serial pool of a GTIN: serials available for new batches.
type Pool struct {
	GTIN      string `json:"gtin"`
	Available int    `json:"available"`
	LowWater  int    `json:"low_water,omitempty"`
	Low       bool   `json:"low,omitempty"`
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
	for _, name := range e.deviceNames() {
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
	case !e.devicesOK() || e.gated:
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
		s.Samples, s.SamplesPlanned = b.Samples, b.SamplesPlanned
		s.ConfigPending = b.PendingConfig
		s.LabelsPending = append([]string(nil), b.LabelsPending...)
		s.WaitingForLabel = append([]string(nil), b.Waiting...)
		s.RejectsNotDelivered = e.undeliveredList()
		s.RejectsPending = len(b.Rejects)
	}
	s.ConfigHash = e.cfg.Hash
	e.readStatus(s)
	s.Alarms = append(s.Alarms, e.equipmentAlarms()...)
	s.UnitsPerMin = e.speed.perMinute(e.now())
	e.status.Store(s)
	if e.opt.OnStatus != nil {
		e.opt.OnStatus(e.Status())
	}
}

// readStatus fills in what the status shows from the store (one short
// read transaction): pool levels, the batch's reserved serials and its open
// containers.
func (e *Engine) readStatus(s *Status) {
	b := e.b
	err := e.db.View(func(tx *store.Tx) error {
		for _, p := range e.cfg.Products {
			n := serials.Available(tx, p.GTIN)
			s.Pools = append(s.Pools, Pool{GTIN: p.GTIN, Available: n, LowWater: p.Serials.LowWater, Low: p.Serials.LowWater > 0 && n < p.Serials.LowWater})
		}
		if b == nil {
			return nil
		}
		s.Reserved = serials.Reserved(tx, b.ID)
		for _, sscc := range b.Open {
			var c container
			if _, err := tx.GetJSON(store.Containers, []byte(sscc), &c); err != nil {
				return err
			}
			s.OpenContainers = append(s.OpenContainers, OpenContainer{SSCC: sscc, Level: c.Level, Fill: len(c.Children), Capacity: e.capacity(&c)})
			switch sscc {
			case b.OpenCase:
				s.OpenCaseFill = len(c.Children)
			case b.OpenPallet:
				s.OpenPalletFill = len(c.Children)
			}
		}
		return nil
	})
	if err != nil {
		e.log.Error().Err(err).Msg("status: cannot read the store")
	}
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
