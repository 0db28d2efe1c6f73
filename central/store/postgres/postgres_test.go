package postgres

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/central/store/storetest"
)

// testURL is the server the tests use (trust auth, database test).
func testURL() string {
	if u := os.Getenv("SERIALINE_PG_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// freshSchema creates an empty schema for one test and returns a URL whose
// search_path selects it; the schema is dropped at the end. The test is
// skipped when no server answers, unless SERIALINE_REQUIRE_PG=1.
func freshSchema(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, testURL())
	if err != nil {
		if os.Getenv("SERIALINE_REQUIRE_PG") == "1" {
			t.Fatalf("PostgreSQL required (SERIALINE_REQUIRE_PG=1) but unreachable: %v", err)
		}
		t.Skipf("PostgreSQL not reachable: %v", err)
	}
	defer conn.Close(ctx)
	schema := fmt.Sprintf("serialine_test_%d", rand.Uint64()%1e12)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), testURL())
		if err == nil {
			c.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
			c.Close(context.Background())
		}
	})
	u, _ := url.Parse(testURL())
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func open(t testing.TB) *Store {
	s, err := Open(context.Background(), freshSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t) })
}

func TestMonthlyPartitions(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	c := storetest.NewChain("e", 1, 1)
	s.EnrollEdge(ctx, store.Edge{ID: "e", PublicKey: c.Pub(), EnrolledBy: "t"})
	if err := s.Append(ctx, "e", c.Head(), c.Scenario()); err != nil {
		t.Fatal(err)
	}
	var part string
	err := s.pool.QueryRow(ctx, `SELECT tableoid::regclass::text FROM records LIMIT 1`).Scan(&part)
	if err != nil || part != "records_y2026m11" {
		t.Fatalf("records stored in partition %q (%v), want records_y2026m11", part, err)
	}
}

// A database migrated before the Part 11 migration gets its audit trail
// and close references from the records it already holds.
func TestPart11MigrationBackfills(t *testing.T) {
	ctx := context.Background()
	url := freshSchema(t)
	s, err := Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	storetest.BackfillFixture(t, s)
	idx := -1
	for i, m := range migrations {
		if m == migrationPart11 {
			idx = i
		}
	}
	for _, q := range []string{`DROP TABLE users`, `DROP TABLE sessions`, `DROP TABLE audit`,
		`ALTER TABLE batches DROP COLUMN closed_epoch, DROP COLUMN closed_seq, DROP COLUMN released_by, DROP COLUMN released_name, DROP COLUMN released_at, DROP COLUMN release_ref`,
		`ALTER TABLE containers DROP COLUMN closed_epoch, DROP COLUMN closed_seq, DROP COLUMN approved_by, DROP COLUMN approved_name, DROP COLUMN approved_at, DROP COLUMN approval_ref`,
		fmt.Sprintf(`UPDATE schema_version SET version = %d`, idx)} {
		if _, err := s.pool.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	s.Close()
	s2, err := Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	storetest.CheckBackfill(t, s2)
}

func BenchmarkAppend(b *testing.B) {
	s := open(b)
	storetest.BenchAppend(b, s)
}

// BenchmarkRawCopy is the raw limit for BenchmarkAppend: pgx COPY of the
// same rows into a plain table, one transaction per 100 rows.
func BenchmarkRawCopy(b *testing.B) {
	s := open(b)
	ctx := context.Background()
	if _, err := s.pool.Exec(ctx, `CREATE TABLE raw_records (edge TEXT, epoch BIGINT, seq BIGINT, kind TEXT, rec_time TIMESTAMPTZ, hash BYTEA, canonical BYTEA, sig BYTEA)`); err != nil {
		b.Fatal(err)
	}
	c := storetest.NewChain("raw", 1, 2)
	const run = 100
	var batches [][][]any
	for n := 0; n < b.N; n += run {
		items := make([]any, 0, 2*run)
		for i := 0; i < run; i++ {
			items = append(items, storetest.BenchKind, storetest.BenchBody(n+i))
		}
		recs := c.Next(items...)
		rows := make([][]any, len(recs))
		for i := range recs {
			r := recs[i].Record
			rows[i] = []any{"raw", int64(r.Epoch), int64(r.Seq), string(r.Kind), r.Time, recs[i].Hash[:], r.Canonical(), r.Sig}
		}
		batches = append(batches, rows)
	}
	b.ResetTimer()
	for _, rows := range batches {
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			_, err := tx.CopyFrom(ctx, pgx.Identifier{"raw_records"}, []string{"edge", "epoch", "seq", "kind", "rec_time", "hash", "canonical", "sig"}, pgx.CopyFromRows(rows))
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(batches)*run)/b.Elapsed().Seconds(), "records/s")
}

func TestVerify(t *testing.T) {
	storetest.RunVerify(t, func(t *testing.T) store.Store { return open(t) },
		func(t *testing.T, s store.Store, edge string, epoch uint32, seq uint64, canonical, hash []byte) {
			if _, err := s.(*Store).pool.Exec(context.Background(), `UPDATE records SET canonical = $1, hash = $2 WHERE edge = $3 AND epoch = $4 AND seq = $5`, canonical, hash, edge, int64(epoch), int64(seq)); err != nil {
				t.Fatal(err)
			}
		})
}
