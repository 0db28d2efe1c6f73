package store

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/serialine/serialine/sync/record"
)

// Op is one projection change derived from a record. Both backends apply
// the same ops (each in its own SQL), in record order, in the transaction
// that stores the records.
type Op struct {
	Kind OpKind
	Edge string
	At   time.Time

	Batch, Line, GTIN, Lot, Expiry, Product string
	Planned                                 int
	State                                   string
	Reconciliation                          []byte // JSON

	Serial, Status, Reason, Disposition string
	Grade                               float64

	SSCC, Level, Parent string
	Children            []string
	Count               int
	Partial             bool

	// Shipped and Ref: OpShipped's body and record.
	Shipped *record.Shipped
	Ref     RecordRef
}

// OpKind enumerates projection changes.
type OpKind int

// Projection changes.
const (
	OpBatchUpsert OpKind = iota + 1 // insert or update a batch's master data
	OpBatchState                    // set a batch's state
	OpBatchClosed                   // closed, with reconciliation
	OpUnitInsert                    // a serial was commissioned
	OpUnitStatus                    // verified / rejected / decommissioned / sample / destroyed
	OpUnitDisposition
	OpContainerInsert
	OpPack   // Children into Parent (units or containers)
	OpUnpack // Children out of Parent
	OpContainerClosed
	OpContainerReopened
	OpShipped // a shipment (central's journal)
)

// Counters are per-edge count changes of one Append.
type Counters struct {
	Good, Rejected, Cases, Pallets int64
}

func decode(r *record.Record, v any) error {
	if err := json.Unmarshal(r.Body, v); err != nil {
		return fmt.Errorf("edge %s seq %d: %s body does not decode: %w", r.Edge, r.Seq, r.Kind, err)
	}
	return nil
}

// Project derives the projection changes of a run of records. A body of a
// known kind that does not decode is an error naming edge, seq and kind:
// the caller quarantines the records instead of storing them.
func Project(recs []Stored) ([]Op, Counters, error) {
	var ops []Op
	var c Counters
	for i := range recs {
		r := &recs[i].Record
		base := Op{Edge: r.Edge, At: r.Time}
		switch r.Kind {
		case record.KindBatchCreated:
			var b record.BatchCreated
			if err := decode(r, &b); err != nil {
				return nil, c, err
			}
			op := base
			op.Kind, op.Batch, op.Line, op.GTIN, op.Lot, op.Expiry, op.Product, op.Planned, op.State = OpBatchUpsert, b.Batch, b.Line, b.GTIN, b.Lot, b.Expiry, b.Product, b.Planned, "created"
			ops = append(ops, op)
		case record.KindBatchStarted:
			var b record.BatchStarted
			if err := decode(r, &b); err != nil {
				return nil, c, err
			}
			op := base
			op.Kind, op.Batch, op.Line, op.GTIN, op.Lot, op.Expiry, op.Product, op.Planned, op.State = OpBatchUpsert, b.Batch, b.Line, b.GTIN, b.Lot, b.Expiry, b.Product, b.Planned, "running"
			ops = append(ops, op)
		case record.KindBatchStateChanged:
			var b record.BatchState
			if err := decode(r, &b); err != nil {
				return nil, c, err
			}
			op := base
			op.Kind, op.Batch, op.State = OpBatchState, b.Batch, b.To
			ops = append(ops, op)
		case record.KindBatchClosed:
			var b record.BatchClosed
			if err := decode(r, &b); err != nil {
				return nil, c, err
			}
			rec, _ := json.Marshal(b.Reconciliation)
			op := base
			op.Kind, op.Batch, op.State, op.Reconciliation = OpBatchClosed, b.Batch, "closed", rec
			ops = append(ops, op)
		case record.KindUnitCommissioned:
			var u record.UnitCommissioned
			if err := decode(r, &u); err != nil {
				return nil, c, err
			}
			op := base
			op.Kind, op.Batch, op.GTIN, op.Serial, op.Lot, op.Expiry, op.Status = OpUnitInsert, u.Batch, u.GTIN, u.Serial, u.Lot, u.Expiry, "commissioned"
			ops = append(ops, op)
		case record.KindUnitVerified:
			var u record.UnitVerified
			if err := decode(r, &u); err != nil {
				return nil, c, err
			}
			op := base
			op.Kind, op.GTIN, op.Serial, op.Grade, op.Reason = OpUnitStatus, u.GTIN, u.Serial, u.Grade, u.Reason
			if u.Pass {
				op.Status = "verified"
				c.Good++
			} else {
				op.Status = "rejected"
				c.Rejected++
			}
			ops = append(ops, op)
		case record.KindUnitDecommissioned:
			var u record.UnitDecommissioned
			if err := decode(r, &u); err != nil {
				return nil, c, err
			}
			op := base
			op.Kind, op.GTIN, op.Serial, op.Status, op.Reason, op.Disposition = OpUnitStatus, u.GTIN, u.Serial, "decommissioned", u.Reason, u.Disposition
			ops = append(ops, op)
		case record.KindUnitDisposition:
			var u record.UnitDisposition
			if err := decode(r, &u); err != nil {
				return nil, c, err
			}
			op := base
			op.Kind, op.GTIN, op.Serial, op.Disposition = OpUnitDisposition, u.GTIN, u.Serial, u.Disposition
			ops = append(ops, op)
		case record.KindContainerOpened:
			var b record.ContainerOpened
			if err := decode(r, &b); err != nil {
				return nil, c, err
			}
			op := base
			op.Kind, op.Batch, op.SSCC, op.Level = OpContainerInsert, b.Batch, b.SSCC, b.Level
			ops = append(ops, op)
		case record.KindPacked:
			var b record.Packed
			if err := decode(r, &b); err != nil {
				return nil, c, err
			}
			op := base
			op.Kind, op.Batch, op.Parent, op.Level, op.Children = OpPack, b.Batch, b.Parent, b.Level, b.Children
			ops = append(ops, op)
		case record.KindUnpacked:
			var b record.Unpacked
			if err := decode(r, &b); err != nil {
				return nil, c, err
			}
			op := base
			op.Kind, op.Batch, op.Parent, op.Level, op.Children = OpUnpack, b.Batch, b.Parent, b.Level, b.Children
			ops = append(ops, op)
		case record.KindContainerClosed:
			var b record.ContainerClosed
			if err := decode(r, &b); err != nil {
				return nil, c, err
			}
			op := base
			op.Kind, op.Batch, op.SSCC, op.Level, op.Count, op.Partial = OpContainerClosed, b.Batch, b.SSCC, b.Level, b.Count, b.Partial
			if b.Level == "pallet" {
				c.Pallets++
			} else {
				c.Cases++
			}
			ops = append(ops, op)
		case record.KindContainerReopened:
			var b record.ContainerReopened
			if err := decode(r, &b); err != nil {
				return nil, c, err
			}
			op := base
			op.Kind, op.Batch, op.SSCC, op.Level = OpContainerReopened, b.Batch, b.SSCC, b.Level
			if b.Level == "pallet" {
				c.Pallets--
			} else {
				c.Cases--
			}
			ops = append(ops, op)
		case record.KindShipped:
			var b record.Shipped
			if err := decode(r, &b); err != nil {
				return nil, c, err
			}
			op := base
			op.Kind, op.Shipped, op.Ref = OpShipped, &b, RefOf(r)
			ops = append(ops, op)
		}
	}
	return ops, c, nil
}

// SplitUnitID splits "(01)gtin(21)serial"; ok=false for container ids.
func SplitUnitID(id string) (gtin, serial string, ok bool) {
	if len(id) < 23 || id[:4] != "(01)" || id[18:22] != "(21)" {
		return "", "", false
	}
	return id[4:18], id[22:], true
}

// ContainerSSCC returns the SSCC of "(00)sscc" ids.
func ContainerSSCC(id string) (string, bool) {
	if len(id) == 22 && id[:4] == "(00)" {
		return id[4:], true
	}
	return "", false
}
