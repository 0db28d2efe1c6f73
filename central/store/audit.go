package store

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/serialine/serialine/sync/record"
)

// Actions central records in its journal that the projections act on.
const (
	// ActionBatchReleased: QA released a closed batch (e-signed). Target is
	// BatchTarget(edge, batch); the signature references the batch.closed
	// record.
	ActionBatchReleased = "batch.released"
	// ActionPartialApproved: QA countersigned a partial container close
	// recorded by the edge. Target is ContainerTarget(edge, sscc); the
	// signature references the container.closed record.
	ActionPartialApproved = "container.partial_approved"
	// ActionRecordCorrected: a correction of a stored record (e-signed).
	// Target is the corrected record's Ref; the original stays as it was.
	ActionRecordCorrected = "record.corrected"
)

// BatchTarget names a batch of an edge in a user action's Target.
func BatchTarget(edge, batch string) string { return edge + "/" + batch }

// ContainerTarget names a container of an edge in a user action's Target.
func ContainerTarget(edge, sscc string) string { return edge + "/" + sscc }

// SplitTarget splits "edge/rest" (edge ids never contain '/').
func SplitTarget(t string) (edge, rest string, ok bool) {
	i := strings.IndexByte(t, '/')
	if i <= 0 || i == len(t)-1 {
		return "", "", false
	}
	return t[:i], t[i+1:], true
}

// Ref names one stored record: edge/epoch/seq.
type Ref struct {
	Edge  string
	Epoch uint32
	Seq   uint64
}

func (r Ref) String() string { return fmt.Sprintf("%s/%d/%d", r.Edge, r.Epoch, r.Seq) }

// ParseRef parses edge/epoch/seq.
func ParseRef(s string) (Ref, error) {
	parts := strings.Split(s, "/")
	if len(parts) != 3 || parts[0] == "" {
		return Ref{}, fmt.Errorf("record reference %q: want edge/epoch/seq", s)
	}
	ep, err := strconv.ParseUint(parts[1], 10, 32)
	if err != nil {
		return Ref{}, fmt.Errorf("record reference %q: epoch: %v", s, err)
	}
	seq, err := strconv.ParseUint(parts[2], 10, 64)
	if err != nil || seq == 0 {
		return Ref{}, fmt.Errorf("record reference %q: seq must be a positive number", s)
	}
	return Ref{Edge: parts[0], Epoch: uint32(ep), Seq: seq}, nil
}

// Ref returns the reference of a stored record.
func (s Stored) Ref() Ref { return Ref{Edge: s.Record.Edge, Epoch: s.Record.Epoch, Seq: s.Record.Seq} }

// AuditEntry is one line of the Part 11 audit trail: a user action
// (central's journal or an edge's user.action record) or any record that
// carries an e-signature. Record is the stored record itself, so the
// viewer shows (and verifies) the evidence, not a copy of it.
type AuditEntry struct {
	Ref     Ref
	At      time.Time
	User    string
	Name    string
	Action  string // the user action, or the record kind for signed records
	Target  string
	Batch   string
	Meaning string // signature meaning, "" when unsigned
	Record  Stored
}

// AuditFilter selects audit entries (empty fields match all).
type AuditFilter struct {
	User, Action, Batch, Edge, Target string
	From, To                          time.Time // record time, To exclusive
	SignedOnly                        bool
	Limit                             int // default 200
}

// Batch is the projection of one batch (work order) of an edge.
type Batch struct {
	Edge, Batch, Line, GTIN, Lot, Expiry, Product string
	Planned                                       int
	State                                         string // created, running, held, stopped, complete, closed, released
	StartedAt, ClosedAt                           time.Time
	Reconciliation                                json.RawMessage // record.Reconciliation, at close
	// Closed is the batch.closed record (zero before close).
	Closed Ref
	// Release: who released it, when, and the journal record of the e-signed release.
	ReleasedBy, ReleasedName string
	ReleasedAt               time.Time
	Release                  Ref
	// Filled by Store.Batch only: units by status, and the problems that
	// block a release.
	Units       map[string]int64
	Quarantined int64 // records of the edge quarantined since the batch started
	Conflicts   int64 // identifiers of the batch used by another edge
}

// BatchFilter selects batches, newest first (OldestFirst: oldest first).
// Empty fields match everything.
type BatchFilter struct {
	Edge, State string
	ID          string // the batch id or the lot number
	Lot, GTIN   string
	// From, To: batches whose run [StartedAt, ClosedAt or now] overlaps.
	From, To    time.Time
	OldestFirst bool
	Limit       int // default 1000
}

// ContainerFilter selects containers (ScanContainers needs at least one of
// SSCC, Edge, Batch, Lot, Parent).
type ContainerFilter struct {
	SSCC        string // one container (without its children: a light lookup)
	Edge, Batch string
	Lot         string // containers of the batches with this lot
	Parent      string // containers directly in this SSCC
	// OpenOnly: not closed; PartialOnly: closed partial.
	OpenOnly, PartialOnly bool
	Limit                 int // Containers only; default 1000
}

// Located reports whether the filter names where to look (ScanContainers
// refuses to stream the whole table).
func (f ContainerFilter) Located() bool {
	return f.SSCC != "" || f.Edge != "" || f.Batch != "" || f.Lot != "" || f.Parent != ""
}

// RefOf returns the reference of a record.
func RefOf(r *record.Record) Ref { return Ref{Edge: r.Edge, Epoch: r.Epoch, Seq: r.Seq} }

// MarshalText renders edge/epoch/seq (JSON and form values).
func (r Ref) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText parses edge/epoch/seq.
func (r *Ref) UnmarshalText(b []byte) error {
	x, err := ParseRef(string(b))
	if err != nil {
		return err
	}
	*r = x
	return nil
}
