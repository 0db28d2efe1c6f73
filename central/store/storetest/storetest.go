// Package storetest is the one conformance suite every central store
// implementation runs (SQLite and PostgreSQL).
package storetest

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/sync/record"
	"github.com/serialine/serialine/sync/wire"
)

// Chain builds valid, signed record chains for tests.
type Chain struct {
	Edge  string
	Epoch uint32
	Key   ed25519.PrivateKey
	head  record.Head
	t0    time.Time
}

// NewChain starts a chain for an edge.
func NewChain(edge string, epoch uint32, seed byte) *Chain {
	s := make([]byte, 32)
	s[0] = seed
	return &Chain{Edge: edge, Epoch: epoch, Key: ed25519.NewKeyFromSeed(s), head: record.Head{Epoch: epoch}, t0: time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)}
}

// Pub is the chain's public key.
func (c *Chain) Pub() ed25519.PublicKey { return c.Key.Public().(ed25519.PublicKey) }

// Head is the chain's last record.
func (c *Chain) Head() record.Head { return c.head }

// Next appends records (bodies by kind) and signs the last one.
func (c *Chain) Next(items ...any) []store.Stored {
	out := make([]store.Stored, 0, len(items)/2)
	for i := 0; i+1 < len(items); i += 2 {
		body, _ := json.Marshal(items[i+1])
		r := record.Record{Edge: c.Edge, Epoch: c.Epoch, Seq: c.head.Seq + 1, Kind: items[i].(record.Kind),
			Time: c.t0.Add(time.Duration(c.head.Seq) * time.Millisecond), Body: body, Prev: c.head.Hash}
		h := r.Hash()
		c.head = record.Head{Epoch: c.Epoch, Seq: r.Seq, Hash: h}
		out = append(out, store.Stored{Record: r, Hash: h})
	}
	if n := len(out); n > 0 {
		out[n-1].Record.Sig = record.SignHash(c.Key, out[n-1].Hash)
	}
	return out
}

const gtin = "09506000134352"

// Scenario returns the records of a small line run: batch, 5 units (4 pass,
// 1 fail), a case of 4, a pallet of 1 case.
func (c *Chain) Scenario() []store.Stored {
	var items []any
	items = append(items, record.KindBatchCreated, record.BatchCreated{Batch: "L1", Line: "line-1", GTIN: gtin, Lot: "L1", Expiry: "281130", Planned: 4})
	items = append(items, record.KindBatchStarted, record.BatchStarted{Batch: "L1", Line: "line-1", GTIN: gtin, Lot: "L1", Expiry: "281130", Planned: 4})
	for i := 1; i <= 5; i++ {
		items = append(items, record.KindUnitCommissioned, record.UnitCommissioned{Batch: "L1", GTIN: gtin, Serial: fmt.Sprintf("S%d", i), Lot: "L1", Expiry: "281130"})
	}
	for i := 1; i <= 5; i++ {
		v := record.UnitVerified{Batch: "L1", GTIN: gtin, Serial: fmt.Sprintf("S%d", i), Grade: 4, Pass: i != 3}
		if i == 3 {
			v.Reason, v.Grade = "no_read", 0
		}
		items = append(items, record.KindUnitVerified, v)
	}
	items = append(items, record.KindUnitDecommissioned, record.UnitDecommissioned{Batch: "L1", GTIN: gtin, Serial: "S3", Reason: "no_read", Disposition: "destroyed"})
	items = append(items, record.KindContainerOpened, record.ContainerOpened{Batch: "L1", SSCC: "395060000000000016", Level: "case"})
	for _, i := range []int{1, 2, 4, 5} {
		items = append(items, record.KindPacked, record.Packed{Batch: "L1", Parent: "395060000000000016", Level: "case", Children: []string{record.UnitID(gtin, fmt.Sprintf("S%d", i))}})
	}
	items = append(items, record.KindContainerClosed, record.ContainerClosed{Batch: "L1", SSCC: "395060000000000016", Level: "case", Count: 4})
	items = append(items, record.KindContainerOpened, record.ContainerOpened{Batch: "L1", SSCC: "395060000000000023", Level: "pallet"})
	items = append(items, record.KindPacked, record.Packed{Batch: "L1", Parent: "395060000000000023", Level: "pallet", Children: []string{record.ContainerID("395060000000000016")}})
	items = append(items, record.KindContainerClosed, record.ContainerClosed{Batch: "L1", SSCC: "395060000000000023", Level: "pallet", Count: 1})
	return c.Next(items...)
}

// Run runs the conformance suite. open returns a fresh, empty store.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()
	enroll := func(t *testing.T, s store.Store, c *Chain) {
		t.Helper()
		if err := s.EnrollEdge(ctx, store.Edge{ID: c.Edge, PublicKey: c.Pub(), EnrolledBy: "test"}); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("Enroll", func(t *testing.T) {
		s := open(t)
		c := NewChain("edge-a", 1, 1)
		enroll(t, s, c)
		enroll(t, s, c) // same key: no-op
		other := NewChain("edge-a", 1, 2)
		if err := s.EnrollEdge(ctx, store.Edge{ID: "edge-a", PublicKey: other.Pub(), EnrolledBy: "x"}); !errors.Is(err, store.ErrExists) {
			t.Fatalf("enroll with another key: %v", err)
		}
		e, err := s.Edge(ctx, "edge-a")
		if err != nil || string(e.PublicKey) != string(c.Pub()) || e.EnrolledBy != "test" {
			t.Fatalf("edge: %+v %v", e, err)
		}
		if _, err := s.Edge(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown edge: %v", err)
		}
		list, err := s.Edges(ctx)
		if err != nil || len(list) != 1 {
			t.Fatalf("edges: %v %v", list, err)
		}
	})

	t.Run("AppendAndReadBack", func(t *testing.T) {
		s := open(t)
		c := NewChain("edge-b", 7, 3)
		enroll(t, s, c)
		if _, ok, err := s.Head(ctx, c.Edge); ok || err != nil {
			t.Fatalf("head of an empty edge: %v %v", ok, err)
		}
		first := c.Next(record.KindEdgeStarted, map[string]string{"v": "1"}, record.KindConfigApplied, map[string]string{"hash": "x"})
		if err := s.Append(ctx, c.Edge, record.Head{Epoch: 7}, first); err != nil {
			t.Fatal(err)
		}
		second := c.Scenario()
		if err := s.Append(ctx, c.Edge, first[1].Head(), second); err != nil {
			t.Fatal(err)
		}
		h, ok, err := s.Head(ctx, c.Edge)
		if err != nil || !ok || h != c.Head() {
			t.Fatalf("head %+v, want %+v (%v)", h, c.Head(), err)
		}
		all := append(first, second...)
		got, err := s.Records(ctx, c.Edge, 7, 1, 1000)
		if err != nil || len(got) != len(all) {
			t.Fatalf("records: %d of %d, %v", len(got), len(all), err)
		}
		for i := range all {
			if string(got[i].Record.Canonical()) != string(all[i].Record.Canonical()) || string(got[i].Record.Sig) != string(all[i].Record.Sig) || got[i].Hash != all[i].Hash {
				t.Fatalf("record %d not byte-identical", i+1)
			}
			if got[i].Record.Hash() != got[i].Hash {
				t.Fatalf("record %d hash does not recompute", i+1)
			}
		}
		if _, err := record.VerifyRun(c.Pub(), record.Head{}, recordsOf(got)); err != nil {
			t.Fatalf("stored chain does not verify: %v", err)
		}
		part, _ := s.Records(ctx, c.Edge, 7, 5, 3)
		if len(part) != 3 || part[0].Record.Seq != 5 {
			t.Fatalf("paged read: %d from %d", len(part), part[0].Record.Seq)
		}
		n, err := s.CountRecords(ctx, c.Edge)
		if err != nil || n != int64(len(all)) {
			t.Fatalf("count %d, %v", n, err)
		}
	})

	t.Run("StaleHeadConflicts", func(t *testing.T) {
		s := open(t)
		c := NewChain("edge-c", 1, 4)
		enroll(t, s, c)
		a := c.Next(record.KindEdgeStarted, 1)
		if err := s.Append(ctx, c.Edge, record.Head{Epoch: 1}, a); err != nil {
			t.Fatal(err)
		}
		b := c.Next(record.KindEdgeStarted, 2)
		// Appending again from the empty head (a redelivery of stale state).
		if err := s.Append(ctx, c.Edge, record.Head{Epoch: 1}, b); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("append after a stale head: %v", err)
		}
		if n, _ := s.CountRecords(ctx, c.Edge); n != 1 {
			t.Fatalf("a refused append wrote records: %d", n)
		}
		if err := s.Append(ctx, c.Edge, a[0].Head(), b); err != nil {
			t.Fatal(err)
		}
		// The same records again: a conflict, never a duplicate.
		if err := s.Append(ctx, c.Edge, a[0].Head(), b); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate append: %v", err)
		}
	})

	t.Run("NewEpoch", func(t *testing.T) {
		s := open(t)
		c := NewChain("edge-d", 5, 5)
		enroll(t, s, c)
		s.Append(ctx, c.Edge, record.Head{Epoch: 5}, c.Next(record.KindEdgeStarted, 1))
		old := NewChain("edge-d", 4, 5)
		if err := s.Append(ctx, c.Edge, record.Head{Epoch: 4}, old.Next(record.KindEdgeStarted, 1)); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("older epoch accepted: %v", err)
		}
		c2 := NewChain("edge-d", 6, 5)
		if err := s.Append(ctx, c.Edge, record.Head{Epoch: 6}, c2.Next(record.KindEdgeStarted, 1)); err != nil {
			t.Fatal(err)
		}
		h, _, _ := s.Head(ctx, c.Edge)
		if h.Epoch != 6 || h.Seq != 1 {
			t.Fatalf("head after new epoch: %+v", h)
		}
		if n, _ := s.CountRecords(ctx, c.Edge); n != 2 {
			t.Fatalf("count across epochs: %d", n)
		}
	})

	t.Run("Projections", func(t *testing.T) {
		s := open(t)
		c := NewChain("edge-e", 1, 6)
		enroll(t, s, c)
		if err := s.Append(ctx, c.Edge, record.Head{Epoch: 1}, c.Scenario()); err != nil {
			t.Fatal(err)
		}
		lines, err := s.Lines(ctx)
		if err != nil || len(lines) != 1 {
			t.Fatalf("lines: %v %v", lines, err)
		}
		l := lines[0]
		if l.UnitsGood != 4 || l.UnitsRejected != 1 || l.CasesClosed != 1 || l.PalletsClosed != 1 || l.Records != 22 || l.Head.Seq != 22 {
			t.Fatalf("line summary %+v", l)
		}
		u, err := s.Unit(ctx, gtin, "S1")
		if err != nil || u.Status != "verified" || u.Parent != "395060000000000016" || u.Lot != "L1" || u.Batch != "L1" {
			t.Fatalf("unit S1: %+v %v", u, err)
		}
		u3, _ := s.Unit(ctx, gtin, "S3")
		if u3.Status != "decommissioned" || u3.Reason != "no_read" || u3.Parent != "" {
			t.Fatalf("unit S3: %+v", u3)
		}
		cs, err := s.Container(ctx, "395060000000000016")
		if err != nil || !cs.Closed || cs.Count != 4 || len(cs.Children) != 4 || cs.Parent != "395060000000000023" {
			t.Fatalf("case: %+v %v", cs, err)
		}
		p, _ := s.Container(ctx, "395060000000000023")
		if !p.Closed || p.Level != "pallet" || len(p.Children) != 1 {
			t.Fatalf("pallet: %+v", p)
		}
		if _, err := s.Unit(ctx, gtin, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown unit: %v", err)
		}
	})

	t.Run("Rework", func(t *testing.T) {
		s := open(t)
		c := NewChain("edge-r", 1, 7)
		enroll(t, s, c)
		s.Append(ctx, c.Edge, record.Head{Epoch: 1}, c.Scenario())
		h := c.Head()
		rw := c.Next(
			record.KindContainerReopened, record.ContainerReopened{Batch: "L1", SSCC: "395060000000000016", Level: "case"},
			record.KindUnpacked, record.Unpacked{Batch: "L1", Parent: "395060000000000016", Level: "case", Children: []string{record.UnitID(gtin, "S1")}},
		)
		if err := s.Append(ctx, c.Edge, h, rw); err != nil {
			t.Fatal(err)
		}
		cs, _ := s.Container(ctx, "395060000000000016")
		u, _ := s.Unit(ctx, gtin, "S1")
		l, _ := s.Lines(ctx)
		if cs.Closed || len(cs.Children) != 3 || u.Parent != "" || l[0].CasesClosed != 0 {
			t.Fatalf("after rework: case %+v unit %+v cases %d", cs, u, l[0].CasesClosed)
		}
	})

	t.Run("IdentifierConflictAcrossEdges", func(t *testing.T) {
		s := open(t)
		a, b := NewChain("edge-x", 1, 11), NewChain("edge-y", 1, 12)
		enroll(t, s, a)
		enroll(t, s, b)
		if err := s.Append(ctx, a.Edge, record.Head{Epoch: 1}, a.Scenario()); err != nil {
			t.Fatal(err)
		}
		// Edge y reuses the same serials and SSCCs: its records are stored
		// (they are valid evidence), the conflicts are flagged, and edge
		// x's projection is untouched.
		if err := s.Append(ctx, b.Edge, record.Head{Epoch: 1}, b.Scenario()); err != nil {
			t.Fatalf("conflicting identifiers wedged the store: %v", err)
		}
		if n, _ := s.CountRecords(ctx, b.Edge); n != 22 {
			t.Fatalf("edge y stored %d records", n)
		}
		lines, _ := s.Lines(ctx)
		var conflicts int64
		for _, l := range lines {
			if l.Edge == b.Edge {
				conflicts = l.Conflicts
			}
		}
		if conflicts != 7 { // 5 serials + 2 SSCCs
			t.Fatalf("%d conflicts, want 7", conflicts)
		}
		u, _ := s.Unit(ctx, gtin, "S3")
		c, _ := s.Container(ctx, "395060000000000016")
		if u.Edge != a.Edge || u.Status != "decommissioned" || c.Edge != a.Edge || len(c.Children) != 4 {
			t.Fatalf("edge x's projection changed: %+v %+v", u, c)
		}
	})

	t.Run("UndecodableBody", func(t *testing.T) {
		s := open(t)
		c := NewChain("edge-f", 1, 8)
		enroll(t, s, c)
		recs := c.Next(record.KindUnitVerified, "not an object")
		err := s.Append(ctx, c.Edge, record.Head{Epoch: 1}, recs)
		if err == nil {
			t.Fatal("a unit.verified body that does not decode was stored")
		}
		if n, _ := s.CountRecords(ctx, c.Edge); n != 0 {
			t.Fatal("the failed append stored records")
		}
	})

	t.Run("QuarantineAndStatus", func(t *testing.T) {
		s := open(t)
		c := NewChain("edge-g", 1, 9)
		enroll(t, s, c)
		if err := s.Quarantine(ctx, store.Quarantined{Edge: c.Edge, Epoch: 1, Seq: 4, Reason: "bad signature", Payload: []byte{1, 2, 3}}); err != nil {
			t.Fatal(err)
		}
		q, err := s.QuarantineList(ctx, c.Edge, 10)
		if err != nil || len(q) != 1 || q[0].Reason != "bad signature" || string(q[0].Payload) != "\x01\x02\x03" || q[0].Seq != 4 {
			t.Fatalf("quarantine: %+v %v", q, err)
		}
		if err := s.UpdateStatus(ctx, wire.Status{Edge: c.Edge, Line: "line-9", State: "Execute", Pending: 12}); err != nil {
			t.Fatal(err)
		}
		l, _ := s.Lines(ctx)
		if len(l) != 1 || l[0].Line != "line-9" || l[0].State != "Execute" || l[0].PendingSync != 12 || l[0].LastSeen.IsZero() || l[0].QuarantinedNum != 1 {
			t.Fatalf("line: %+v", l)
		}
	})

	t.Run("ConcurrentAppend", func(t *testing.T) {
		s := open(t)
		c := NewChain("edge-h", 1, 10)
		enroll(t, s, c)
		var runs [][]store.Stored
		var afters []record.Head
		for i := 0; i < 20; i++ {
			afters = append(afters, c.Head())
			runs = append(runs, c.Next(record.KindEdgeStarted, i, record.KindEdgeStarted, i))
		}
		// Two writers race through the same runs; each run must land once.
		var wg sync.WaitGroup
		for w := 0; w < 2; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range runs {
					for {
						err := s.Append(ctx, c.Edge, afters[i], runs[i])
						if err == nil || errors.Is(err, store.ErrConflict) {
							h, _, _ := s.Head(ctx, c.Edge)
							if h.Seq >= runs[i][1].Record.Seq {
								break
							}
							continue
						}
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		got, _ := s.Records(ctx, c.Edge, 1, 1, 1000)
		if len(got) != 40 {
			t.Fatalf("%d records, want 40", len(got))
		}
		for i, r := range got {
			if r.Record.Seq != uint64(i+1) {
				t.Fatalf("gap or duplicate at %d: seq %d", i, r.Record.Seq)
			}
		}
	})

	t.Run("Alerts", func(t *testing.T) {
		s := open(t)
		t0 := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
		a, created, err := s.RaiseAlert(ctx, store.Alert{At: t0, Severity: store.SeverityCritical, Code: "quarantine", Key: "q:edge-a", Edge: "edge-a", Message: "bad signature", Ref: "edge-a/1/7"})
		if err != nil || !created || a.ID == 0 || !a.Active {
			t.Fatalf("raise: %+v %v %v", a, created, err)
		}
		// Same key while active: the existing alert, nothing new.
		again, created, err := s.RaiseAlert(ctx, store.Alert{At: t0.Add(time.Minute), Severity: store.SeverityCritical, Code: "quarantine", Key: "q:edge-a", Message: "again"})
		if err != nil || created || again.ID != a.ID || again.Message != "bad signature" {
			t.Fatalf("raise again: %+v %v %v", again, created, err)
		}
		// No key: always a new alert.
		b, created, err := s.RaiseAlert(ctx, store.Alert{At: t0.Add(2 * time.Minute), Severity: store.SeverityWarning, Code: "calibration_due", Edge: "edge-b", Message: "camera-1 due"})
		if err != nil || !created || b.ID == a.ID {
			t.Fatalf("second alert: %+v %v %v", b, created, err)
		}
		list, err := s.Alerts(ctx, store.AlertFilter{})
		if err != nil || len(list) != 2 || list[0].ID != b.ID || list[1].Ref != "edge-a/1/7" || !list[1].At.Equal(t0) {
			t.Fatalf("alerts newest first: %+v %v", list, err)
		}
		if l, _ := s.Alerts(ctx, store.AlertFilter{Edge: "edge-b"}); len(l) != 1 || l[0].Code != "calibration_due" {
			t.Fatalf("filter by edge: %+v", l)
		}
		if l, _ := s.Alerts(ctx, store.AlertFilter{Code: "quarantine"}); len(l) != 1 || l[0].ID != a.ID {
			t.Fatalf("filter by code: %+v", l)
		}
		if err := s.AckAlert(ctx, a.ID, "qa1", t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := s.AckAlert(ctx, 99999, "qa1", t0); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("ack unknown alert: %v", err)
		}
		if ok, err := s.ClearAlert(ctx, "q:edge-a", t0.Add(2*time.Hour)); !ok || err != nil {
			t.Fatalf("clear: %v %v", ok, err)
		}
		if ok, _ := s.ClearAlert(ctx, "q:edge-a", t0.Add(3*time.Hour)); ok {
			t.Fatal("cleared twice")
		}
		active, _ := s.Alerts(ctx, store.AlertFilter{ActiveOnly: true})
		if len(active) != 1 || active[0].ID != b.ID {
			t.Fatalf("active alerts: %+v", active)
		}
		all, _ := s.Alerts(ctx, store.AlertFilter{Code: "quarantine"})
		if all[0].Active || all[0].AckedBy != "qa1" || !all[0].AckedAt.Equal(t0.Add(time.Hour)) || !all[0].ClearedAt.Equal(t0.Add(2*time.Hour)) {
			t.Fatalf("cleared alert kept with its history: %+v", all[0])
		}
		// Once cleared, the key may be raised again as a new alert.
		c, created, err := s.RaiseAlert(ctx, store.Alert{Severity: store.SeverityCritical, Code: "quarantine", Key: "q:edge-a", Message: "again later"})
		if err != nil || !created || c.ID == a.ID {
			t.Fatalf("raise after clear: %+v %v %v", c, created, err)
		}
	})

	t.Run("Equipment", func(t *testing.T) { Equipment(t, open) })
	t.Run("KeyHistory", func(t *testing.T) {
		s := open(t)
		c := NewChain("edge-k", 1, 21)
		enroll(t, s, c)
		keys, err := s.EdgeKeys(ctx, c.Edge)
		if err != nil || len(keys) != 1 || string(keys[0].PublicKey) != string(c.Pub()) || !keys[0].ValidFrom.IsZero() || !keys[0].ValidUntil.IsZero() || keys[0].EnrolledBy != "test" {
			t.Fatalf("first key: %+v %v", keys, err)
		}
		next := NewChain("edge-k", 1, 22)
		from := time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC)
		if err := s.RotateEdgeKey(ctx, store.EdgeKey{Edge: c.Edge, PublicKey: next.Pub(), ValidFrom: from, EnrolledBy: "admin"}, time.Hour); err != nil {
			t.Fatal(err)
		}
		if err := s.RotateEdgeKey(ctx, store.EdgeKey{Edge: c.Edge, PublicKey: next.Pub(), ValidFrom: from, EnrolledBy: "admin"}, time.Hour); !errors.Is(err, store.ErrExists) {
			t.Fatalf("same key twice: %v", err)
		}
		if err := s.RotateEdgeKey(ctx, store.EdgeKey{Edge: "nope", PublicKey: next.Pub()}, 0); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("rotate for an unknown edge: %v", err)
		}
		keys, _ = s.EdgeKeys(ctx, c.Edge)
		if len(keys) != 2 || !keys[0].ValidUntil.Equal(from.Add(time.Hour)) || !keys[1].ValidFrom.Equal(from) || !keys[1].ValidUntil.IsZero() || keys[1].EnrolledBy != "admin" || keys[1].EnrolledAt.IsZero() {
			t.Fatalf("after rotation: %+v", keys)
		}
		if e, _ := s.Edge(ctx, c.Edge); string(e.PublicKey) != string(next.Pub()) {
			t.Fatal("Edge does not return the newest key")
		}
		ring := store.Ring(keys)
		if !ring[0].Covers(from.Add(59*time.Minute)) || ring[0].Covers(from.Add(time.Hour)) || ring[1].Covers(from.Add(-time.Second)) {
			t.Fatalf("ring windows %+v", ring)
		}
		// A stored key.rotated record closes the old key at its time.
		rot := c.Next(record.KindKeyRotated, record.KeyRotated{Old: record.EncodePublicKey(c.Pub()), New: record.EncodePublicKey(next.Pub())})
		if err := s.Append(ctx, c.Edge, record.Head{Epoch: 1}, rot); err != nil {
			t.Fatal(err)
		}
		keys, _ = s.EdgeKeys(ctx, c.Edge)
		at := rot[0].Record.Time
		if !keys[0].ValidUntil.Equal(store.RotationCloses(at)) || !store.Ring(keys)[0].Covers(at) {
			t.Fatalf("old key after key.rotated at %s: until %s", at, keys[0].ValidUntil)
		}
		// A key.rotated body that does not decode is refused like any other.
		bad := c.Next(record.KindKeyRotated, map[string]string{"old_public_key": "x"})
		if err := s.Append(ctx, c.Edge, c.Head(), bad); err == nil {
			t.Fatal("malformed key.rotated stored")
		}
	})

	t.Run("Epochs", func(t *testing.T) {
		s := open(t)
		a, b := NewChain("edge-p", 3, 23), NewChain("edge-p", 9, 23)
		enroll(t, s, a)
		if e, err := s.Epochs(ctx, a.Edge); err != nil || len(e) != 0 {
			t.Fatalf("epochs of an empty edge: %v %v", e, err)
		}
		s.Append(ctx, a.Edge, record.Head{Epoch: 3}, a.Next(record.KindEdgeStarted, 1))
		s.Append(ctx, a.Edge, record.Head{Epoch: 9}, b.Next(record.KindEdgeStarted, 1))
		if e, err := s.Epochs(ctx, a.Edge); err != nil || len(e) != 2 || e[0] != 3 || e[1] != 9 {
			t.Fatalf("epochs %v %v", e, err)
		}
	})
	t.Run("Queries", func(t *testing.T) { runQueries(t, open(t)) })
	t.Run("Shipments", func(t *testing.T) { runShipments(t, open(t)) })

	t.Run("JournalsAreNotLines", func(t *testing.T) {
		s := open(t)
		line := NewChain("edge-j", 1, 11)
		journal := NewChain(store.JournalPrefix+"c1", 1, 12)
		enroll(t, s, line)
		enroll(t, s, journal)
		if err := s.Append(ctx, journal.Edge, journal.Head(), journal.Next(record.KindUserAction, record.UserAction{User: "admin", Action: "edge.enrolled", Target: "edge-j"})); err != nil {
			t.Fatal(err)
		}
		l, err := s.Lines(ctx)
		if err != nil || len(l) != 1 || l[0].Edge != "edge-j" {
			t.Fatalf("lines: %+v %v", l, err)
		}
		if n, _ := s.CountRecords(ctx, journal.Edge); n != 1 {
			t.Fatalf("journal records: %d", n)
		}
	})

	runPart11(t, open)
}

// runPart11 is in part11.go.
var _ = runPart11

func recordsOf(s []store.Stored) []record.Record {
	out := make([]record.Record, len(s))
	for i := range s {
		out[i] = s[i].Record
	}
	return out
}

// BenchAppend measures Append of 100-record runs (records of a typical
// unit.verified size) and reports records/s.
func BenchAppend(b *testing.B, s store.Store) {
	ctx := context.Background()
	c := NewChain(fmt.Sprintf("bench-%d", time.Now().UnixNano()%100000), 1, 42)
	if err := s.EnrollEdge(ctx, store.Edge{ID: c.Edge, PublicKey: c.Pub(), EnrolledBy: "bench"}); err != nil {
		b.Fatal(err)
	}
	const run = 100
	runs := make([][]store.Stored, 0, b.N/run+1)
	afters := make([]record.Head, 0, b.N/run+1)
	for n := 0; n < b.N; n += run {
		items := make([]any, 0, 2*run)
		for i := 0; i < run; i++ {
			items = append(items, BenchKind, BenchBody(n+i))
		}
		afters = append(afters, c.Head())
		runs = append(runs, c.Next(items...))
	}
	b.ResetTimer()
	for i := range runs {
		if err := s.Append(ctx, c.Edge, afters[i], runs[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(runs)*run)/b.Elapsed().Seconds(), "records/s")
}

// BenchKind and BenchBody are the record used by the store benchmarks and
// their raw baselines: a body about as long as a unit.verified record's.
const BenchKind = record.KindDeviceFault

// BenchBody returns the i-th benchmark body.
func BenchBody(i int) record.DeviceFault {
	return record.DeviceFault{Device: "camera-1", Kind: "camera", Fault: "bench", Detail: "a body about as long as a unit.verified record's body", Raw: fmt.Sprintf("%012d", i)}
}
