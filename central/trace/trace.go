package trace

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/sync/record"
)

// EquipmentKinds are the record kinds of a line's equipment history
// (downtime, maintenance, calibration, faults, alarms). Their bodies are
// read generically: trace, export and reports show them as recorded.
var EquipmentKinds = []record.Kind{
	record.KindDowntimeStarted, record.KindDowntimeEnded, record.KindCalibration, record.Kind("maintenance"),
	record.KindDeviceFault, record.KindAlarm,
}

// Tracer answers trace queries.
type Tracer struct{ St store.Store }

// maxDepth bounds container nesting (case, pallet, ... ); deeper chains are
// a data error, never an endless loop.
const maxDepth = 8

// UnitTrace is where one unit is.
type UnitTrace struct {
	Unit store.Unit `json:"unit"`
	// Containers are the unit's case, its pallet ..., innermost first.
	Containers []store.Container `json:"containers"`
	// Shipment is the shipment of the unit's innermost shipped container.
	Shipment *store.Shipment `json:"shipment,omitempty"`
	// ShippedIn is the SSCC that shipment shipped.
	ShippedIn string       `json:"shipped_in,omitempty"`
	Batch     *store.Batch `json:"batch,omitempty"`
}

// ContainerTrace is where one container is; its contents stream separately.
type ContainerTrace struct {
	Container store.Container   `json:"container"`
	Ancestors []store.Container `json:"ancestors"` // its pallet ..., innermost first
	Shipment  *store.Shipment   `json:"shipment,omitempty"`
	ShippedIn string            `json:"shipped_in,omitempty"`
}

// Result answers a unit, serial or container query (lots: Lot).
type Result struct {
	Query     Query           `json:"query"`
	Units     []UnitTrace     `json:"units,omitempty"` // several when a bare serial exists under several GTINs
	Container *ContainerTrace `json:"container,omitempty"`
}

// ErrNotFound: nothing matches the query.
var ErrNotFound = errors.New("not found")

// Find answers a unit, serial or container query. An 18-digit number that
// is no stored SSCC is also looked up as a serial.
func (t *Tracer) Find(ctx context.Context, q Query) (*Result, error) {
	res := &Result{Query: q}
	switch q.Kind {
	case QueryUnit, QuerySerial:
		f := store.UnitFilter{GTIN: q.GTIN, Serial: q.Serial}
		var units []store.Unit
		if err := t.St.ScanUnits(ctx, f, func(u store.Unit) error { units = append(units, u); return nil }); err != nil {
			return nil, err
		}
		for _, u := range units {
			ut, err := t.unit(ctx, u)
			if err != nil {
				return nil, err
			}
			res.Units = append(res.Units, *ut)
		}
		if len(res.Units) == 0 {
			return nil, fmt.Errorf("trace %s: no unit %s: %w", q.Input, describe(q), ErrNotFound)
		}
	case QueryContainer:
		ct, err := t.container(ctx, q.SSCC)
		if errors.Is(err, store.ErrNotFound) {
			if isDigits(q.SSCC) && len(q.Input) == 18 {
				return t.Find(ctx, Query{Kind: QuerySerial, Serial: q.SSCC, Input: q.Input})
			}
			return nil, fmt.Errorf("trace %s: no container %s: %w", q.Input, q.SSCC, ErrNotFound)
		}
		if err != nil {
			return nil, err
		}
		res.Container = ct
	default:
		return nil, fmt.Errorf("trace: a %s query is answered by Lot", q.Kind)
	}
	return res, nil
}

func describe(q Query) string {
	if q.GTIN != "" {
		return record.UnitID(q.GTIN, q.Serial)
	}
	return "with serial " + q.Serial
}

// ancestors walks up from a container SSCC (innermost first) and finds the
// innermost shipped one.
func (t *Tracer) ancestors(ctx context.Context, sscc string) ([]store.Container, *store.Shipment, string, error) {
	var out []store.Container
	var ship *store.Shipment
	var in string
	for i := 0; sscc != "" && i < maxDepth; i++ {
		var c store.Container
		found := false
		if err := t.St.ScanContainers(ctx, store.ContainerFilter{SSCC: sscc}, func(x store.Container) error { c, found = x, true; return nil }); err != nil {
			return nil, nil, "", fmt.Errorf("container %s: %w", sscc, err)
		}
		if !found {
			return nil, nil, "", fmt.Errorf("container %s: %w", sscc, store.ErrNotFound)
		}
		out = append(out, c)
		if ship == nil {
			sh, err := t.St.ShipmentOf(ctx, sscc)
			switch {
			case err == nil:
				ship, in = &sh, sscc
			case !errors.Is(err, store.ErrNotFound):
				return nil, nil, "", err
			}
		}
		sscc = c.Parent
	}
	return out, ship, in, nil
}

func (t *Tracer) unit(ctx context.Context, u store.Unit) (*UnitTrace, error) {
	ut := &UnitTrace{Unit: u, Containers: []store.Container{}}
	var err error
	if u.Parent != "" {
		if ut.Containers, ut.Shipment, ut.ShippedIn, err = t.ancestors(ctx, u.Parent); err != nil {
			return nil, fmt.Errorf("unit %s: %w", record.UnitID(u.GTIN, u.Serial), err)
		}
	}
	if u.Batch != "" {
		bs, err := t.St.Batches(ctx, store.BatchFilter{Edge: u.Edge, ID: u.Batch, Limit: 10})
		if err != nil {
			return nil, err
		}
		for i := range bs {
			if bs[i].Batch == u.Batch {
				ut.Batch = &bs[i]
			}
		}
	}
	return ut, nil
}

func (t *Tracer) container(ctx context.Context, sscc string) (*ContainerTrace, error) {
	all, ship, in, err := t.ancestors(ctx, sscc)
	if err != nil {
		var nf error = err
		if errors.Is(nf, store.ErrNotFound) {
			return nil, store.ErrNotFound
		}
		return nil, err
	}
	c, err := t.St.Container(ctx, sscc) // with its direct children
	if err != nil {
		return nil, err
	}
	return &ContainerTrace{Container: c, Ancestors: all[1:], Shipment: ship, ShippedIn: in}, nil
}

// Contents streams every unit inside a container at any depth, with the
// SSCC of the container it sits in directly.
func (t *Tracer) Contents(ctx context.Context, sscc string, fn func(u store.Unit) error) error {
	return t.contents(ctx, sscc, 0, fn)
}

func (t *Tracer) contents(ctx context.Context, sscc string, depth int, fn func(store.Unit) error) error {
	if depth >= maxDepth {
		return fmt.Errorf("container %s: nested deeper than %d levels", sscc, maxDepth)
	}
	if err := t.St.ScanUnits(ctx, store.UnitFilter{Parent: sscc}, fn); err != nil {
		return err
	}
	var inner []string
	if err := t.St.ScanContainers(ctx, store.ContainerFilter{Parent: sscc}, func(c store.Container) error {
		inner = append(inner, c.SSCC)
		return nil
	}); err != nil {
		return err
	}
	for _, c := range inner {
		if err := t.contents(ctx, c, depth+1, fn); err != nil {
			return err
		}
	}
	return nil
}

// LotUnit is one unit of a lot trace with where it went.
type LotUnit struct {
	Unit      store.Unit `json:"unit"`
	Case      string     `json:"case,omitempty"`
	Pallet    string     `json:"pallet,omitempty"`
	Shipment  string     `json:"shipment,omitempty"`
	ShippedTo string     `json:"shipped_to,omitempty"` // destination GLN
}

// EquipmentEvent is one downtime, maintenance, calibration, fault or alarm
// record, read generically: the fields most bodies carry, and the body.
type EquipmentEvent struct {
	Ref       store.Ref       `json:"ref"`
	Kind      record.Kind     `json:"kind"`
	Time      time.Time       `json:"time"`
	Equipment string          `json:"equipment,omitempty"` // body "equipment" (or "device")
	Class     string          `json:"class,omitempty"`     // body "class"
	Body      json.RawMessage `json:"body"`
}

// ReadEquipment reads the generic fields of an equipment record.
func ReadEquipment(st store.Stored) EquipmentEvent {
	r := &st.Record
	ev := EquipmentEvent{Ref: store.RefOf(r), Kind: r.Kind, Time: r.Time.UTC(), Body: json.RawMessage(r.Body)}
	var b struct {
		Equipment string `json:"equipment"`
		Device    string `json:"device"`
		Class     string `json:"class"`
	}
	_ = json.Unmarshal(r.Body, &b)
	ev.Equipment, ev.Class = b.Equipment, b.Class
	if ev.Equipment == "" {
		ev.Equipment = b.Device
	}
	return ev
}

// LotTrace is everything about a lot except its units, which stream.
type LotTrace struct {
	Lot        string            `json:"lot"`
	Batches    []store.Batch     `json:"batches"`
	Containers []store.Container `json:"containers"`
	Shipments  []store.Shipment  `json:"shipments"`
	// Equipment is the line's history during each batch (record time in
	// [started, closed or now]) on the batch's edge.
	Equipment []EquipmentEvent `json:"equipment"`
	Units     int64            `json:"units"`
}

// Lot traces a lot: its batches, containers, shipments and equipment
// history first (held in memory: thousands of containers, not units), then
// every unit streamed to fn with its case, pallet and shipment.
func (t *Tracer) Lot(ctx context.Context, lot string, fn func(LotUnit) error) (*LotTrace, error) {
	lt := &LotTrace{Lot: lot, Containers: []store.Container{}, Equipment: []EquipmentEvent{}}
	var err error
	if lt.Batches, err = t.St.Batches(ctx, store.BatchFilter{Lot: lot}); err != nil {
		return nil, err
	}
	if len(lt.Batches) == 0 {
		return nil, fmt.Errorf("trace lot %s: no batch with this lot: %w", lot, ErrNotFound)
	}
	// Per batch (index containers_batch), not by lot: the containers
	// table has no lot column.
	parent := map[string]string{}
	seen := map[string]bool{}
	for _, b := range lt.Batches {
		if err := t.St.ScanContainers(ctx, store.ContainerFilter{Edge: b.Edge, Batch: b.Batch}, func(c store.Container) error {
			lt.Containers = append(lt.Containers, c)
			parent[c.SSCC] = c.Parent
			return nil
		}); err != nil {
			return nil, err
		}
		ships, err := t.St.Shipments(ctx, store.ShipmentFilter{Edge: b.Edge, Batch: b.Batch, Limit: 1 << 20})
		if err != nil {
			return nil, err
		}
		for _, sh := range ships {
			if !seen[sh.ID] {
				seen[sh.ID] = true
				lt.Shipments = append(lt.Shipments, sh)
			}
		}
	}
	if lt.Shipments == nil {
		lt.Shipments = []store.Shipment{}
	}
	shippedIn := map[string]*store.Shipment{}
	for i := range lt.Shipments {
		for _, c := range lt.Shipments[i].Containers {
			shippedIn[c] = &lt.Shipments[i]
		}
	}
	for _, b := range lt.Batches {
		to := b.ClosedAt
		err := t.St.ScanRecords(ctx, store.RecordFilter{Edge: b.Edge, From: b.StartedAt, To: to, Kinds: EquipmentKinds}, func(st store.Stored) error {
			lt.Equipment = append(lt.Equipment, ReadEquipment(st))
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if fn == nil {
		lt.Units, err = t.St.CountUnits(ctx, store.UnitFilter{Lot: lot})
		return lt, err
	}
	err = t.St.ScanUnits(ctx, store.UnitFilter{Lot: lot}, func(u store.Unit) error {
		lu := LotUnit{Unit: u, Case: u.Parent}
		// Walk up: the outermost container is the pallet; the innermost
		// shipped one names the shipment.
		var ship *store.Shipment
		c := u.Parent
		for i := 0; c != "" && i < maxDepth; i++ {
			if ship == nil {
				ship = shippedIn[c]
			}
			if p := parent[c]; p != "" {
				lu.Pallet = p
			}
			c = parent[c]
		}
		if ship != nil {
			lu.Shipment, lu.ShippedTo = ship.ID, ship.Destination.GLN
		}
		lt.Units++
		return fn(lu)
	})
	return lt, err
}
