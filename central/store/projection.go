package store

import (
	"bytes"
	"encoding/json"
	"errors"
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
	// Epoch and Seq are the record's (for OpAudit, OpBatchClosed and
	// OpContainerClosed, which remember it; for OpBatchReleased and
	// OpContainerApproved they are the journal record's, Edge the target's).
	Epoch uint32
	Seq   uint64
	// Source is the edge or journal that wrote the record.
	Source string

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

	PublicKey []byte // OpKeyRetired: the old key
	// OpAudit, OpBatchReleased, OpContainerApproved.
	User, Name, Action, Target, Meaning string
	// Shipped and Ref: OpShipped's body and record.
	Shipped *record.Shipped
	Ref     Ref
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
	// OpKeyRetired closes an edge key's window at At (a key.rotated
	// record: the old key signs nothing after it).
	OpKeyRetired
	// OpAudit adds a line to the audit trail: a user action, or a record
	// carrying an e-signature.
	OpAudit
	// OpBatchReleased: central's journal released a closed batch of Edge.
	OpBatchReleased
	// OpContainerApproved: central's journal countersigned a partial close.
	OpContainerApproved
	OpShipped // a shipment (central's journal)
)

// Counters are per-edge count changes of one Append.
type Counters struct {
	Good, Rejected, Cases, Pallets int64
}

func decode(r *record.Record, v any) error {
	if err := json.Unmarshal(r.Body, v); err != nil {
		return fmt.Errorf("%w: edge %s seq %d: %s body does not decode: %v", ErrBody, r.Edge, r.Seq, r.Kind, err)
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
		base := Op{Edge: r.Edge, At: r.Time, Epoch: r.Epoch, Seq: r.Seq, Source: r.Edge}
		if op, ok := auditOp(r, base); ok {
			ops = append(ops, op)
			if r.Kind == record.KindUserAction && IsJournal(r.Edge) {
				ops = append(ops, journalOps(op)...)
			}
		}
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
		case record.KindKeyRotated:
			old, _, err := record.ParseKeyRotated(r)
			if err != nil {
				return nil, c, fmt.Errorf("%w: edge %s seq %d: %v", ErrBody, r.Edge, r.Seq, err)
			}
			op := base
			op.Kind, op.PublicKey, op.At = OpKeyRetired, old, RotationCloses(r.Time)
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

// ErrBody: a record's body does not decode for its kind (Append stores
// nothing; the caller quarantines the record).
var ErrBody = errors.New("malformed body")

// CheckBody reports whether a record's body decodes for its kind (unknown
// kinds always pass): the error names edge, seq and kind.
func CheckBody(r *record.Record) error {
	_, _, err := Project([]Stored{{Record: *r}})
	return err
}

// signedBody is what every signed record body has in common.
type signedBody struct {
	Batch     string            `json:"batch"`
	Signature *record.Signature `json:"signature"`
}

var sigKey = []byte(`"signature":{`)

// auditOp returns the audit line of a record: every user.action, and every
// other record whose body carries an e-signature. Bodies that do not
// decode add no line here (the kind's own decoding reports them).
func auditOp(r *record.Record, base Op) (Op, bool) {
	op := base
	op.Kind = OpAudit
	if r.Kind == record.KindUserAction {
		var a record.UserAction
		if json.Unmarshal(r.Body, &a) != nil {
			return op, false
		}
		op.User, op.Name, op.Action, op.Target = a.User, a.Name, a.Action, a.Target
		if a.Signature != nil {
			op.Meaning = a.Signature.Meaning
			if op.Name == "" {
				op.Name = a.Signature.Name
			}
		}
		if a.Action == ActionBatchReleased {
			if _, b, ok := SplitTarget(a.Target); ok {
				op.Batch = b
			}
		}
		return op, true
	}
	if !bytes.Contains(r.Body, sigKey) {
		return op, false
	}
	var b signedBody
	if json.Unmarshal(r.Body, &b) != nil || b.Signature == nil {
		return op, false
	}
	op.User, op.Name, op.Meaning, op.Action, op.Batch = b.Signature.User, b.Signature.Name, b.Signature.Meaning, string(r.Kind), b.Batch
	return op, true
}

// journalOps derives the projection changes of central's own e-signed
// decisions (only from a journal: an edge cannot release its own batch).
func journalOps(a Op) []Op {
	edge, rest, ok := SplitTarget(a.Target)
	if !ok || a.Meaning == "" {
		return nil
	}
	op := a
	op.Edge = edge
	switch a.Action {
	case ActionBatchReleased:
		op.Kind, op.Batch = OpBatchReleased, rest
	case ActionPartialApproved:
		op.Kind, op.SSCC = OpContainerApproved, rest
	default:
		return nil
	}
	return []Op{op}
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

// BackfillOps returns what the Part 11 migration derives from a record
// stored before it existed: its audit trail line, and for batch.closed and
// container.closed records the reference the batch or container keeps of
// its close (OpBatchClosed / OpContainerClosed carrying only Edge, Batch or
// SSCC, Epoch and Seq; the backends set nothing else from them). Records
// must be fed in (edge, epoch, seq) order so the last close wins.
func BackfillOps(s Stored) []Op {
	r := &s.Record
	base := Op{Edge: r.Edge, At: r.Time, Epoch: r.Epoch, Seq: r.Seq, Source: r.Edge}
	var ops []Op
	if op, ok := auditOp(r, base); ok {
		ops = append(ops, op)
	}
	switch r.Kind {
	case record.KindBatchClosed:
		var b record.BatchClosed
		if json.Unmarshal(r.Body, &b) == nil {
			op := base
			op.Kind, op.Batch = OpBatchClosed, b.Batch
			ops = append(ops, op)
		}
	case record.KindContainerClosed:
		var b record.ContainerClosed
		if json.Unmarshal(r.Body, &b) == nil {
			op := base
			op.Kind, op.SSCC = OpContainerClosed, b.SSCC
			ops = append(ops, op)
		}
	}
	return ops
}

// BackfillKinds are the record kinds BackfillOps may act on besides any
// record whose body carries a signature.
var BackfillKinds = []string{string(record.KindUserAction), string(record.KindBatchClosed), string(record.KindContainerClosed)}

// SignatureMarker is the byte string every body with an e-signature holds.
var SignatureMarker = sigKey
