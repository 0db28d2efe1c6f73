package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/sync/record"
)

// Scenario SSCCs and GTIN, for tests built on Chain.Scenario.
const (
	ScenarioGTIN   = gtin
	ScenarioCase   = "395060000000000016"
	ScenarioPallet = "395060000000000023"
)

// ShippedScenario is a shipment of the scenario's pallet.
func ShippedScenario(id string) record.Shipped {
	return record.Shipped{
		Shipment: id, Containers: []string{ScenarioPallet},
		Destination: record.Party{GLN: "9506000000015", Name: "Demo Wholesale DC"},
		ShipFrom:    &record.Party{GLN: "9506000000008", Name: "Demo plant"},
		ShippedAt:   "2026-11-24T10:00:00Z", By: "shipper",
		Signature: &record.Signature{User: "shipper", Name: "Sam Shipper", Meaning: "shipped", Time: "2026-11-24T10:00:01Z"},
	}
}

func runQueries(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := NewChain("edge-q", 1, 21)
	if err := s.EnrollEdge(ctx, store.Edge{ID: c.Edge, PublicKey: c.Pub(), EnrolledBy: "test"}); err != nil {
		t.Fatal(err)
	}
	recs := c.Scenario()
	if err := s.Append(ctx, c.Edge, record.Head{Epoch: 1}, recs); err != nil {
		t.Fatal(err)
	}
	closeB := c.Next(record.KindBatchClosed, record.BatchClosed{Batch: "L1", Reconciliation: record.Reconciliation{Good: 4, Rejected: 1, Aggregated: 4}, Balanced: true})
	if err := s.Append(ctx, c.Edge, recs[len(recs)-1].Head(), closeB); err != nil {
		t.Fatal(err)
	}
	t0 := recs[0].Record.Time

	bs, err := s.Batches(ctx, store.BatchFilter{ID: "L1"})
	if err != nil || len(bs) != 1 {
		t.Fatalf("batches by id: %+v %v", bs, err)
	}
	b := bs[0]
	if b.Edge != c.Edge || b.GTIN != gtin || b.Lot != "L1" || b.State != "closed" || !b.StartedAt.Equal(t0) || b.ClosedAt.IsZero() || len(b.Reconciliation) == 0 {
		t.Fatalf("batch %+v", b)
	}
	for name, f := range map[string]store.BatchFilter{
		"gtin": {GTIN: gtin}, "lot": {Lot: "L1"}, "edge": {Edge: c.Edge},
		"overlap": {From: t0.Add(time.Millisecond), To: t0.Add(time.Hour)},
	} {
		if l, err := s.Batches(ctx, f); err != nil || len(l) != 1 {
			t.Errorf("batches %s: %d %v", name, len(l), err)
		}
	}
	for name, f := range map[string]store.BatchFilter{
		"other gtin": {GTIN: "09506000134369"}, "before": {To: t0}, "after": {From: b.ClosedAt.Add(time.Millisecond)},
	} {
		if l, err := s.Batches(ctx, f); err != nil || len(l) != 0 {
			t.Errorf("batches %s: %d %v, want none", name, len(l), err)
		}
	}

	units := func(f store.UnitFilter) []string {
		t.Helper()
		var out []string
		if err := s.ScanUnits(ctx, f, func(u store.Unit) error { out = append(out, u.Serial+":"+u.Status); return nil }); err != nil {
			t.Fatal(err)
		}
		n, err := s.CountUnits(ctx, f)
		if err != nil || n != int64(len(out)) {
			t.Fatalf("count %d, scanned %d (%v)", n, len(out), err)
		}
		return out
	}
	if got := fmt.Sprint(units(store.UnitFilter{Edge: c.Edge, Batch: "L1"})); got != "[S1:verified S2:verified S3:decommissioned S4:verified S5:verified]" {
		t.Fatalf("units of the batch: %s", got)
	}
	if got := fmt.Sprint(units(store.UnitFilter{Parent: ScenarioCase})); got != "[S1:verified S2:verified S4:verified S5:verified]" {
		t.Fatalf("units in the case: %s", got)
	}
	if got := units(store.UnitFilter{Lot: "L1"}); len(got) != 5 {
		t.Fatalf("units of the lot: %v", got)
	}
	if got := units(store.UnitFilter{Serial: "S3"}); len(got) != 1 {
		t.Fatalf("units by serial: %v", got)
	}
	// Units are commissioned at t0+2ms .. t0+6ms (one per record).
	if got := units(store.UnitFilter{From: t0.Add(3 * time.Millisecond), To: t0.Add(5 * time.Millisecond)}); fmt.Sprint(got) != "[S2:verified S3:decommissioned]" {
		t.Fatalf("units commissioned in a window: %v", got)
	}
	var u store.Unit
	s.ScanUnits(ctx, store.UnitFilter{GTIN: gtin, Serial: "S3"}, func(x store.Unit) error { u = x; return nil })
	if u.Disposition != "destroyed" || u.Reason != "no_read" || u.CommissionedAt.IsZero() || u.VerifiedAt.IsZero() {
		t.Fatalf("unit S3: %+v", u)
	}
	if err := s.ScanUnits(ctx, store.UnitFilter{}, func(store.Unit) error { return nil }); err == nil {
		t.Fatal("an unfiltered unit scan is refused")
	}
	stop := errors.New("stop")
	n := 0
	if err := s.ScanUnits(ctx, store.UnitFilter{Lot: "L1"}, func(store.Unit) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Fatalf("fn's error stops the scan: %v after %d", err, n)
	}

	var cs []string
	if err := s.ScanContainers(ctx, store.ContainerFilter{Lot: "L1"}, func(c store.Container) error {
		cs = append(cs, fmt.Sprintf("%s:%s:%s:%v", c.SSCC, c.Level, c.Parent, c.Closed))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(cs) != "["+ScenarioCase+":case:"+ScenarioPallet+":true "+ScenarioPallet+":pallet::true]" {
		t.Fatalf("containers of the lot: %v", cs)
	}
	cs = nil
	s.ScanContainers(ctx, store.ContainerFilter{SSCC: ScenarioCase}, func(c store.Container) error { cs = append(cs, c.SSCC+":"+c.Parent); return nil })
	if fmt.Sprint(cs) != "["+ScenarioCase+":"+ScenarioPallet+"]" {
		t.Fatalf("container by SSCC: %v", cs)
	}
	cs = nil
	s.ScanContainers(ctx, store.ContainerFilter{Parent: ScenarioPallet}, func(c store.Container) error { cs = append(cs, c.SSCC); return nil })
	if fmt.Sprint(cs) != "["+ScenarioCase+"]" {
		t.Fatalf("containers on the pallet: %v", cs)
	}

	all := append(recs, closeB...)
	seqs := func(f store.RecordFilter) []uint64 {
		t.Helper()
		var out []uint64
		if err := s.ScanRecords(ctx, f, func(st store.Stored) error {
			if st.Record.Hash() != st.Hash {
				t.Fatalf("seq %d: stored hash differs", st.Record.Seq)
			}
			out = append(out, st.Record.Seq)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		n, err := s.CountRecordsIn(ctx, f)
		if err != nil || n != int64(len(out)) {
			t.Fatalf("count %d, scanned %d (%v)", n, len(out), err)
		}
		return out
	}
	if got := seqs(store.RecordFilter{Edge: c.Edge}); len(got) != len(all) || got[0] != 1 || got[len(got)-1] != uint64(len(all)) {
		t.Fatalf("all records: %v", got)
	}
	// Record i (seq i+1) has time t0 + i ms.
	if got := fmt.Sprint(seqs(store.RecordFilter{Edge: c.Edge, From: t0.Add(2 * time.Millisecond), To: t0.Add(4 * time.Millisecond)})); got != "[3 4 5]" {
		t.Fatalf("records in a window: %s", got)
	}
	if got := fmt.Sprint(seqs(store.RecordFilter{Edge: c.Edge, Kinds: []record.Kind{record.KindContainerClosed, record.KindBatchClosed}})); got != "[19 22 23]" {
		t.Fatalf("records by kind: %s", got)
	}
	if got := fmt.Sprint(seqs(store.RecordFilter{Edge: c.Edge, Epoch: 1, FromSeq: 20, ToSeq: 21})); got != "[20 21]" {
		t.Fatalf("records by seq: %s", got)
	}
	if got := seqs(store.RecordFilter{Edge: c.Edge, From: t0.Add(time.Hour)}); len(got) != 0 {
		t.Fatalf("records after the run: %v", got)
	}
	edges, err := s.RecordEdges(ctx, t0, t0.Add(time.Second))
	if err != nil || fmt.Sprint(edges) != "["+c.Edge+"]" {
		t.Fatalf("record edges: %v %v", edges, err)
	}
	if edges, _ := s.RecordEdges(ctx, t0.Add(time.Hour), time.Time{}); len(edges) != 0 {
		t.Fatalf("record edges later: %v", edges)
	}
}

func runShipments(t *testing.T, s store.Store) {
	ctx := context.Background()
	line := NewChain("edge-s", 1, 22)
	journal := NewChain(store.JournalPrefix+"c1", 1, 23)
	for _, c := range []*Chain{line, journal} {
		if err := s.EnrollEdge(ctx, store.Edge{ID: c.Edge, PublicKey: c.Pub(), EnrolledBy: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Append(ctx, line.Edge, record.Head{Epoch: 1}, line.Scenario()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ShipmentOf(ctx, ScenarioPallet); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("shipment of an unshipped pallet: %v", err)
	}
	first := journal.Next(record.KindShipped, ShippedScenario("SH-1"))
	if err := s.Append(ctx, journal.Edge, record.Head{Epoch: 1}, first); err != nil {
		t.Fatal(err)
	}
	sh, err := s.ShipmentOf(ctx, ScenarioPallet)
	if err != nil || sh.ID != "SH-1" || sh.Destination.GLN != "9506000000015" || sh.Destination.Name != "Demo Wholesale DC" || sh.ShipFrom != "9506000000008" ||
		!sh.ShippedAt.Equal(time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)) || sh.By != "shipper" || fmt.Sprint(sh.Containers) != "["+ScenarioPallet+"]" ||
		sh.Record != (store.Ref{Edge: journal.Edge, Epoch: 1, Seq: 1}) || len(sh.Body) == 0 {
		t.Fatalf("shipment: %+v %v", sh, err)
	}
	if byID, err := s.Shipment(ctx, "SH-1"); err != nil || byID.ID != "SH-1" || len(byID.Containers) != 1 {
		t.Fatalf("shipment by id: %+v %v", byID, err)
	}
	if _, err := s.Shipment(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown shipment: %v", err)
	}
	for name, f := range map[string]store.ShipmentFilter{
		"batch": {Batch: "L1"}, "batch+edge": {Batch: "L1", Edge: line.Edge}, "lot": {Lot: "L1"},
		"time": {From: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC), To: time.Date(2026, 11, 24, 10, 0, 1, 0, time.UTC)}, "all": {},
	} {
		if l, err := s.Shipments(ctx, f); err != nil || len(l) != 1 || l[0].ID != "SH-1" {
			t.Errorf("shipments %s: %+v %v", name, l, err)
		}
	}
	for name, f := range map[string]store.ShipmentFilter{
		"other batch": {Batch: "L2"}, "other edge": {Batch: "L1", Edge: "x"}, "later": {From: time.Date(2026, 11, 24, 10, 0, 0, 1000, time.UTC)},
	} {
		if l, err := s.Shipments(ctx, f); err != nil || len(l) != 0 {
			t.Errorf("shipments %s: %+v %v, want none", name, l, err)
		}
	}
	// The same pallet again (a second central instance, or a replay of an
	// old journal): the record is stored, the projection keeps the first
	// shipment and flags the conflict.
	again := journal.Next(record.KindShipped, ShippedScenario("SH-2"))
	if err := s.Append(ctx, journal.Edge, first[0].Head(), again); err != nil {
		t.Fatalf("a second shipment of one SSCC wedged the journal: %v", err)
	}
	if sh, _ := s.ShipmentOf(ctx, ScenarioPallet); sh.ID != "SH-1" {
		t.Fatalf("the first shipment was replaced: %+v", sh)
	}
	if sh2, err := s.Shipment(ctx, "SH-2"); err != nil || len(sh2.Containers) != 0 {
		t.Fatalf("second shipment: %+v %v", sh2, err)
	}
	dup := journal.Next(record.KindShipped, ShippedScenario("SH-1"))
	if err := s.Append(ctx, journal.Edge, again[0].Head(), dup); err != nil {
		t.Fatalf("a duplicate shipment id wedged the journal: %v", err)
	}
	if sh, _ := s.Shipment(ctx, "SH-1"); sh.Record.Seq != 1 {
		t.Fatalf("the duplicate id replaced the shipment: %+v", sh)
	}
	if n, _ := s.CountRecords(ctx, journal.Edge); n != 3 {
		t.Fatalf("journal records %d", n)
	}
}
