package storetest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/sync/record"
)

// Tamper overwrites the stored canonical bytes and hash column of one
// record behind the store's back (an attacker with database access).
type Tamper func(t *testing.T, s store.Store, edge string, epoch uint32, seq uint64, canonical, hash []byte)

// RunVerify checks store.Verify on a backend: a clean store verifies (with a
// key rotation inside a chain, two epochs and central's journal), and an
// altered row is reported exactly (edge, epoch, seq), whether or not the
// attacker also rewrote the hash column.
func RunVerify(t *testing.T, open func(t *testing.T) store.Store, tamper Tamper) {
	ctx := context.Background()
	build := func(t *testing.T) (store.Store, *Chain) {
		s := open(t)
		a := NewChain("edge-va", 1, 31)
		b := NewChain("edge-vb", 1, 32)
		j := NewChain(store.JournalPrefix+"c1", 1, 33)
		for _, c := range []*Chain{a, b, j} {
			if err := s.EnrollEdge(ctx, store.Edge{ID: c.Edge, PublicKey: c.Pub(), EnrolledBy: "test"}); err != nil {
				t.Fatal(err)
			}
		}
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		must(s.Append(ctx, a.Edge, record.Head{Epoch: 1}, a.Scenario()))
		// edge-va rotates its key in the middle of its chain.
		next := NewChain("edge-va", 1, 34)
		// The admin enrolled the new key from the time of the edge's
		// switch, with a millisecond of overlap.
		rotateAt := a.t0.Add(time.Duration(a.Head().Seq) * time.Millisecond)
		must(s.RotateEdgeKey(ctx, store.EdgeKey{Edge: a.Edge, PublicKey: next.Pub(), ValidFrom: rotateAt, EnrolledBy: "admin"}, time.Millisecond))
		h := a.Head()
		must(s.Append(ctx, a.Edge, h, a.Next(record.KindKeyRotated, record.KeyRotated{Old: record.EncodePublicKey(a.Pub()), New: record.EncodePublicKey(next.Pub())})))
		a.Key = next.Key
		for i := 0; i < 3; i++ {
			h := a.Head()
			must(s.Append(ctx, a.Edge, h, a.Next(record.KindEdgeStarted, i, record.KindEdgeStarted, i)))
		}
		// edge-vb has two epochs.
		must(s.Append(ctx, b.Edge, record.Head{Epoch: 1}, b.Next(record.KindEdgeStarted, 1, record.KindEdgeStarted, 2)))
		b2 := NewChain("edge-vb", 2, 32)
		must(s.Append(ctx, b.Edge, record.Head{Epoch: 2}, b2.Scenario()))
		must(s.Append(ctx, j.Edge, record.Head{Epoch: 1}, j.Next(record.KindUserAction, record.UserAction{User: "admin", Action: "edge.enrolled", Target: "edge-va"})))
		return s, a
	}
	t.Run("Clean", func(t *testing.T) {
		s, _ := build(t)
		var seen int
		reps, err := store.Verify(ctx, s, "", func(store.ChainReport) { seen++ })
		if err != nil {
			t.Fatal(err)
		}
		if len(reps) != 4 || seen != 4 {
			t.Fatalf("%d chains reported, want 4 (edge-va, edge-vb x2, journal): %+v", len(reps), reps)
		}
		for _, r := range reps {
			if r.Err != nil {
				t.Fatalf("%s epoch %d: %v", r.Edge, r.Epoch, r.Err)
			}
		}
		if reps[0].Edge != store.JournalPrefix+"c1" && reps[0].Records == 0 {
			t.Fatalf("reports %+v", reps)
		}
	})
	for _, rehash := range []bool{false, true} {
		name := "AlteredRow"
		if rehash {
			name = "AlteredRowAndHash"
		}
		t.Run(name, func(t *testing.T) {
			s, a := build(t)
			recs, err := s.Records(ctx, a.Edge, 1, 7, 1)
			if err != nil || len(recs) != 1 {
				t.Fatal(err)
			}
			r := recs[0].Record
			r.Body = []byte(strings.Replace(string(r.Body), "S5", "S6", 1)) // seq 7 commissions S5
			hash := recs[0].Hash
			if rehash {
				hash = r.Hash()
			}
			tamper(t, s, a.Edge, 1, 7, r.Canonical(), hash[:])
			reps, err := store.Verify(ctx, s, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			bad := 0
			for _, rep := range reps {
				if rep.Err == nil {
					continue
				}
				bad++
				var ce *record.ChainError
				if rep.Edge != a.Edge || !errors.As(rep.Err, &ce) || ce.Edge != a.Edge || ce.Epoch != 1 || ce.Seq != 7 {
					t.Fatalf("reported %s epoch %d: %v, want edge-va epoch 1 seq 7", rep.Edge, rep.Epoch, rep.Err)
				}
			}
			if bad != 1 {
				t.Fatalf("%d chains failed, want 1", bad)
			}
			// One edge only.
			if reps, err := store.Verify(ctx, s, "edge-vb", nil); err != nil || len(reps) != 2 || reps[0].Err != nil || reps[1].Err != nil {
				t.Fatalf("edge-vb alone: %+v %v", reps, err)
			}
		})
	}
}
