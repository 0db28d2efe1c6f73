package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/serialine/serialine/sync/record"
)

// EquipmentStore is central's view of the lines' equipment: the registry
// with each item's live status and calibration state, downtime events
// (with their remediation and reportability), calibration and maintenance
// history (certificates stored and served), work orders, and the state of
// every device at each batch start. Both backends derive it from the
// records in Append (ProjectEquipment), in the same transaction.
//
// Downtime and work-order ids are unique per edge and epoch (a new edge
// store starts a new epoch and new numbering).
type EquipmentStore interface {
	// EquipmentList lists the registered equipment of an edge ("" for all).
	EquipmentList(ctx context.Context, edge string) ([]Equipment, error)
	// EquipmentItem returns one equipment (ErrNotFound).
	EquipmentItem(ctx context.Context, edge, name string) (Equipment, error)
	// Downtimes lists downtime events, newest start first.
	Downtimes(ctx context.Context, f DowntimeFilter) ([]Downtime, error)
	// Downtime returns one downtime event (ErrNotFound).
	Downtime(ctx context.Context, edge string, epoch uint32, id string) (Downtime, error)
	// Services lists calibrations and maintenance, newest first, without
	// certificate bytes.
	Services(ctx context.Context, f ServiceFilter) ([]Service, error)
	// Certificate returns the certificate file of the calibration record
	// edge/epoch/seq (ErrNotFound).
	Certificate(ctx context.Context, edge string, epoch uint32, seq uint64) (Certificate, error)
	// WorkOrders lists work orders of an edge ("" for all), newest first.
	WorkOrders(ctx context.Context, edge string, openOnly bool) ([]WorkOrder, error)
	// EquipmentChecks returns the equipment state recorded at a batch's
	// start (one per start; normally one).
	EquipmentChecks(ctx context.Context, edge, batch string) ([]EquipmentCheck, error)
	// BatchInfo returns a batch's master data and when it was created and
	// closed (Closed zero while it runs); ErrNotFound for an unknown batch.
	BatchInfo(ctx context.Context, edge, batch string) (BatchInfo, error)
}

// BatchInfo is a batch's master data and time span.
type BatchInfo struct {
	Edge, Batch, Line, GTIN, Lot, Expiry, Product, State string
	Planned                                              int
	Started, Closed                                      time.Time
}

// Equipment is one registered piece of equipment and its state.
type Equipment struct {
	Edge, Name, Line                 string
	Class, Kind, Driver              string
	Critical                         bool
	DependsOn                        []string
	Model, SerialNo, Asset, Location string
	CalIntervalS, CalToleranceS      int64
	PMIntervalS, PMToleranceS        int64
	// Registered is false when the latest registry of the edge no longer lists it.
	Registered  bool
	Status      string // up, down
	Downtime    string // the open downtime
	DowntimeEp  uint32 // its epoch
	StatusSince time.Time
	// Calibration and maintenance state: ok, due_soon, due, overdue, never,
	// failed (from the edge's equipment.due and calibration records).
	CalState         string
	CalDue, CalLast  time.Time
	PMState          string
	PMDue, PMLast    time.Time
	UpdatedAt        time.Time
	CalWindowTo      time.Time
	PMWindowTo       time.Time
	RegisteredConfig string // config hash of the registry record
}

// Downtime is one downtime event.
type Downtime struct {
	Edge                     string
	Epoch                    uint32
	ID                       string
	Equipment, Class         string
	Critical                 bool
	Source, Fault, Detail    string
	Cause, CauseDowntime     string
	Start, End               time.Time
	DurationS                float64
	Batch                    string
	Batches                  []string
	Position                 string
	InFlight                 []string
	FirstSerial, LastSerial  string
	Commissioned             int
	SerialFrom, SerialTo     string
	Reportable               bool
	ReportableAt             time.Time
	RootCause, Remediation   string
	Signature                *record.Signature
	RemediatedAt             time.Time
	By                       string
	StartRef, EndRef         string // edge/epoch/seq of the records
	ReportableRef, RemedyRef string
	ThresholdS               int64
}

// Open reports whether the downtime has not ended.
func (d Downtime) Open() bool { return d.End.IsZero() }

// Service is one calibration or maintenance record.
type Service struct {
	Edge                        string
	Epoch                       uint32
	Seq                         uint64
	At                          time.Time // record time
	Equipment, Class, Activity  string
	WorkOrder                   string
	Performed                   time.Time
	Result                      string
	Results                     []record.CalibrationResult
	Notes                       string
	Due, NextDue                time.Time
	Source, Reference           string
	CertName, CertType, CertSHA string
	CertSize                    int
	Signature                   *record.Signature
	By                          string
}

// Ref is the record reference edge/epoch/seq.
func (s Service) Ref() string { return Ref{Edge: s.Edge, Epoch: s.Epoch, Seq: s.Seq}.String() }

// Certificate is a stored calibration certificate.
type Certificate struct {
	Name, ContentType, SHA256 string
	Data                      []byte
}

// WorkOrder is a calibration or maintenance work order.
type WorkOrder struct {
	Edge                       string
	Epoch                      uint32
	ID                         string
	Equipment, Class, Activity string
	Due, WindowFrom, WindowTo  time.Time
	State                      string // open, done
	OpenedAt, ClosedAt         time.Time
	ClosedRef                  string
}

// EquipmentCheck is the equipment state recorded when a batch started.
type EquipmentCheck struct {
	Edge  string
	Batch string
	At    time.Time
	Ref   string
	Check record.EquipmentCheck
}

// DowntimeFilter selects downtime events.
type DowntimeFilter struct {
	Edge, Equipment, Batch string
	ReportableOnly         bool
	// From/To select events that overlap [From, To] (zero: open-ended).
	From, To time.Time
	Limit    int // default 200
}

// ServiceFilter selects calibrations and maintenance.
type ServiceFilter struct {
	Edge, Equipment, Activity string
	// From/To bound the performed time (zero: open-ended).
	From, To time.Time
	Limit    int // default 200
}

// EquipOp is one equipment projection change derived from a record.
type EquipOp struct {
	Kind  record.Kind
	Edge  string
	Epoch uint32
	Seq   uint64
	At    time.Time

	Registered  *record.EquipmentRegistered
	Started     *record.DowntimeStarted
	Ended       *record.DowntimeEnded
	Reportable  *record.DowntimeReportable
	Remediated  *record.DowntimeRemediated
	WorkOrder   *record.WorkOrder
	Due         *record.EquipmentDue
	Calibration *record.Calibration
	Check       *record.EquipmentCheck

	// Times parsed from the body (zero when absent).
	T1, T2, T3 time.Time
}

// Ref is the record reference of the op.
func (o EquipOp) Ref() string { return Ref{Edge: o.Edge, Epoch: o.Epoch, Seq: o.Seq}.String() }

// ParseTime parses an RFC 3339 time from a record body ("" is zero).
func ParseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time", s)
	}
	return t.UTC(), nil
}

// ProjectEquipment derives the equipment projection changes of a run of
// records. A body that does not decode, or whose times do not parse, is an
// error naming edge, seq, kind and field: the records are quarantined.
func ProjectEquipment(recs []Stored) ([]EquipOp, error) {
	var ops []EquipOp
	for i := range recs {
		r := &recs[i].Record
		op := EquipOp{Kind: r.Kind, Edge: r.Edge, Epoch: r.Epoch, Seq: r.Seq, At: r.Time}
		var target any
		switch r.Kind {
		case record.KindEquipmentRegistered:
			op.Registered = &record.EquipmentRegistered{}
			target = op.Registered
		case record.KindDowntimeStarted:
			op.Started = &record.DowntimeStarted{}
			target = op.Started
		case record.KindDowntimeEnded:
			op.Ended = &record.DowntimeEnded{}
			target = op.Ended
		case record.KindDowntimeReportable:
			op.Reportable = &record.DowntimeReportable{}
			target = op.Reportable
		case record.KindDowntimeRemediated:
			op.Remediated = &record.DowntimeRemediated{}
			target = op.Remediated
		case record.KindWorkOrder:
			op.WorkOrder = &record.WorkOrder{}
			target = op.WorkOrder
		case record.KindEquipmentDue:
			op.Due = &record.EquipmentDue{}
			target = op.Due
		case record.KindCalibration:
			op.Calibration = &record.Calibration{}
			target = op.Calibration
		case record.KindEquipmentCheck:
			op.Check = &record.EquipmentCheck{}
			target = op.Check
		default:
			continue
		}
		if err := decode(r, target); err != nil {
			return nil, err
		}
		type tf struct{ field, v string }
		var times []tf
		switch {
		case op.Started != nil:
			times = []tf{{"start", op.Started.Start}}
		case op.Ended != nil:
			times = []tf{{"start", op.Ended.Start}, {"end", op.Ended.End}}
		case op.Reportable != nil:
			times = []tf{{"start", op.Reportable.Start}, {"at", op.Reportable.At}}
		case op.WorkOrder != nil:
			times = []tf{{"due", op.WorkOrder.Due}, {"window_from", op.WorkOrder.WindowFrom}, {"window_to", op.WorkOrder.WindowTo}}
		case op.Due != nil:
			times = []tf{{"due", op.Due.Due}, {"window_to", op.Due.WindowTo}}
		case op.Calibration != nil:
			times = []tf{{"performed", op.Calibration.Performed}, {"due", op.Calibration.Due}, {"next_due", op.Calibration.NextDue}}
		}
		var parsed [3]time.Time
		for j, f := range times {
			t, err := ParseTime(f.v)
			if err != nil {
				return nil, fmt.Errorf("edge %s seq %d: %s %s: %w", r.Edge, r.Seq, r.Kind, f.field, err)
			}
			parsed[j] = t
		}
		op.T1, op.T2, op.T3 = parsed[0], parsed[1], parsed[2]
		if err := checkEquipOp(&op); err != nil {
			return nil, fmt.Errorf("edge %s seq %d: %s: %w", r.Edge, r.Seq, r.Kind, err)
		}
		ops = append(ops, op)
	}
	return ops, nil
}

// checkEquipOp refuses bodies without the fields the projection keys on.
func checkEquipOp(op *EquipOp) error {
	switch {
	case op.Started != nil && (op.Started.ID == "" || op.Started.Equipment == "" || op.T1.IsZero()):
		return fmt.Errorf("id, equipment and start are required")
	case op.Ended != nil && (op.Ended.ID == "" || op.Ended.Equipment == "" || op.T1.IsZero() || op.T2.IsZero()):
		return fmt.Errorf("id, equipment, start and end are required")
	case op.Reportable != nil && op.Reportable.ID == "":
		return fmt.Errorf("id is required")
	case op.Remediated != nil && (op.Remediated.ID == "" || op.Remediated.Signature == nil):
		return fmt.Errorf("id and signature are required")
	case op.WorkOrder != nil && (op.WorkOrder.ID == "" || op.WorkOrder.Equipment == ""):
		return fmt.Errorf("id and equipment are required")
	case op.Due != nil && op.Due.Equipment == "":
		return fmt.Errorf("equipment is required")
	case op.Calibration != nil && (op.Calibration.Equipment == "" || op.T1.IsZero()):
		return fmt.Errorf("equipment and performed are required")
	case op.Calibration != nil && op.Calibration.Certificate != nil:
		c := op.Calibration.Certificate
		sum := sha256.Sum256(c.Data)
		if hex.EncodeToString(sum[:]) != c.SHA256 || len(c.Data) != c.Size {
			return fmt.Errorf("certificate %s: its bytes do not match the recorded SHA-256 %s and size %d", c.Name, c.SHA256, c.Size)
		}
	case op.Registered != nil:
		for i, it := range op.Registered.Items {
			if it.Equipment == "" {
				return fmt.Errorf("items[%d]: equipment is required", i)
			}
		}
	}
	return nil
}

// JSONText renders v as JSON text for a column (null for nil).
func JSONText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return "null"
	}
	return string(b)
}
