package store

import (
	"context"
	"encoding/json"
	"time"

	"github.com/serialine/serialine/sync/record"
)

// Queries are the reads that trace, audit export, EPCIS and the reports
// need. Every Scan method streams: it calls fn once per row, in a stable
// order, without loading the result into memory, and stops at the first
// error fn returns (which it returns). fn must not write to the store.
type Queries interface {
	// ScanUnits streams the units matching f, ordered by (gtin, serial).
	ScanUnits(ctx context.Context, f UnitFilter, fn func(Unit) error) error
	// CountUnits counts the units matching f.
	CountUnits(ctx context.Context, f UnitFilter) (int64, error)

	// ScanContainers streams containers (without Children) matching f,
	// ordered by SSCC.
	ScanContainers(ctx context.Context, f ContainerFilter, fn func(Container) error) error

	// ScanRecords streams the records of one edge matching f, in chain
	// order (epoch, seq).
	ScanRecords(ctx context.Context, f RecordFilter, fn func(Stored) error) error
	// CountRecordsIn counts the records of one edge matching f.
	CountRecordsIn(ctx context.Context, f RecordFilter) (int64, error)
	// RecordEdges lists the edges (line edges and journals) that stored
	// records with a record time in [from, to].
	RecordEdges(ctx context.Context, from, to time.Time) ([]string, error)

	// Shipment returns one shipment by id (ErrNotFound).
	Shipment(ctx context.Context, id string) (Shipment, error)
	// ShipmentOf returns the shipment that shipped this SSCC itself
	// (ErrNotFound when the container was not shipped on its own).
	ShipmentOf(ctx context.Context, sscc string) (Shipment, error)
	// Shipments lists shipments matching f, oldest first.
	Shipments(ctx context.Context, f ShipmentFilter) ([]Shipment, error)
}

// UnitFilter selects units. At least one field must be set.
type UnitFilter struct {
	Edge, Batch string // with Batch: units of that batch (Edge optional)
	Lot         string
	Parent      string // SSCC of the case the units are directly in
	Serial      string // every GTIN with this serial
	GTIN        string
	// From, To: commissioned in [From, To) (zero: unbounded).
	From, To time.Time
}

// Empty reports whether no field is set.
func (f UnitFilter) Empty() bool { return f == UnitFilter{} }

// RecordFilter selects records of one edge.
type RecordFilter struct {
	Edge     string // required
	From, To time.Time
	// Kinds restricts to these kinds (empty: all).
	Kinds []record.Kind
	// FromSeq, ToSeq bound the seq (0: unbounded); used with Epoch.
	Epoch          uint32
	FromSeq, ToSeq uint64
}

// Shipment is the projection of one shipped record.
type Shipment struct {
	ID          string
	Containers  []string // SSCCs
	Destination record.Party
	ShipFrom    string // GLN, may be empty
	ShippedAt   time.Time
	Reference   string
	By          string
	Record      Ref // the journal record (KindShipped)
	Body        json.RawMessage
}

// ShipmentFilter selects shipments.
type ShipmentFilter struct {
	From, To    time.Time // shipped in [From, To)
	Edge, Batch string    // shipments holding a container of this batch
	Lot         string    // shipments holding a container of a batch with this lot
	Limit       int       // default 1000
}
