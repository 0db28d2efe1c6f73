// Package backends runs a test against every central store implementation:
// SQLite in a temporary directory and PostgreSQL in a fresh schema
// (skipped when no server answers, unless SERIALINE_REQUIRE_PG=1).
package backends

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/central/store/postgres"
	"github.com/serialine/serialine/central/store/sqlite"
)

// PGURL is the PostgreSQL server tests use (trust auth, database test).
func PGURL() string {
	if u := os.Getenv("SERIALINE_PG_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// WithSchema returns u with search_path set to schema.
func WithSchema(u, schema string) string {
	p, _ := url.Parse(u)
	q := p.Query()
	q.Set("search_path", schema)
	p.RawQuery = q.Encode()
	return p.String()
}

// SQLite opens a fresh SQLite store.
func SQLite(t testing.TB) store.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "central.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Postgres opens a store in a fresh schema, dropped at the end.
func Postgres(t testing.TB) store.Store {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, PGURL())
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
		if c, err := pgx.Connect(context.Background(), PGURL()); err == nil {
			c.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
			c.Close(context.Background())
		}
	})
	s, err := postgres.Open(ctx, WithSchema(PGURL(), schema))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Run runs fn as a subtest on each backend.
func Run(t *testing.T, fn func(t *testing.T, st store.Store)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, SQLite(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, Postgres(t)) })
}
