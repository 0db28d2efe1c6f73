package sqlite

import (
	"context"
	"fmt"
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

// A database migrated before the Part 11 migration gets its audit trail
// and close references from the records it already holds.
func TestPart11MigrationBackfills(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "central.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	storetest.BackfillFixture(t, s)
	// Rewind to the schema before the migration, records kept.
	idx := -1
	for i, m := range migrations {
		if m == migrationPart11 {
			idx = i
		}
	}
	for _, q := range []string{`DROP TABLE users`, `DROP TABLE sessions`, `DROP TABLE audit`,
		`ALTER TABLE batches DROP COLUMN closed_epoch`, `ALTER TABLE batches DROP COLUMN closed_seq`, `ALTER TABLE batches DROP COLUMN released_by`,
		`ALTER TABLE batches DROP COLUMN released_name`, `ALTER TABLE batches DROP COLUMN released_at`, `ALTER TABLE batches DROP COLUMN release_ref`,
		`ALTER TABLE containers DROP COLUMN closed_epoch`, `ALTER TABLE containers DROP COLUMN closed_seq`, `ALTER TABLE containers DROP COLUMN approved_by`,
		`ALTER TABLE containers DROP COLUMN approved_name`, `ALTER TABLE containers DROP COLUMN approved_at`, `ALTER TABLE containers DROP COLUMN approval_ref`,
		fmt.Sprintf(`UPDATE schema_version SET version = %d`, idx)} {
		if _, err := s.w.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	s.Close()
	s2, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	storetest.CheckBackfill(t, s2)
}
