package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/central/store/storetest"
	"github.com/serialine/serialine/sync/record"
)

func open(t *testing.T) store.Store {
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "central.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, open)
}

func TestReopenKeepsData(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "central.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	c := storetest.NewChain("e", 1, 1)
	s.EnrollEdge(ctx, store.Edge{ID: "e", PublicKey: c.Pub(), EnrolledBy: "t"})
	recs := c.Scenario()
	if err := s.Append(ctx, "e", record.Head{Epoch: 1}, recs); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s.Close()
	s2, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if h, ok, _ := s2.Head(ctx, "e"); !ok || h != c.Head() {
		t.Fatalf("head after reopen %+v", h)
	}
}

func BenchmarkAppend(b *testing.B) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(b.TempDir(), "central.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	storetest.BenchAppend(b, s)
}

func TestVerify(t *testing.T) {
	storetest.RunVerify(t, func(t *testing.T) store.Store { return open(t) },
		func(t *testing.T, s store.Store, edge string, epoch uint32, seq uint64, canonical, hash []byte) {
			if _, err := s.(*Store).w.Exec(`UPDATE records SET canonical = ?, hash = ? WHERE edge = ? AND epoch = ? AND seq = ?`, canonical, hash, edge, epoch, seq); err != nil {
				t.Fatal(err)
			}
		})
}
