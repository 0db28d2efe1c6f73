package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"
)

// requireService skips when a local service is down, unless the
// environment says it is required (CI: make test sets both).
func requireService(t *testing.T, env, addr, what string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
		return
	}
	if os.Getenv(env) == "1" {
		t.Fatalf("%s required (%s=1) but %s is unreachable: %v", what, env, addr, err)
	}
	t.Skipf("%s not reachable at %s", what, addr)
}

// pgSchema creates an empty schema in the test database for one test (so
// tests never see each other's tables, nor a schema another build migrated)
// and returns the database URL selecting it; the schema is dropped after.
func pgSchema(t *testing.T) string {
	t.Helper()
	const base = "postgres://127.0.0.1:5432/test"
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	schema := fmt.Sprintf("serialine_demo_%d", rand.Uint64()%1e12)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if c, err := pgx.Connect(context.Background(), base); err == nil {
			c.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
			c.Close(context.Background())
		}
	})
	return base + "?search_path=" + schema
}

// The acceptance: `serialine demo --pallets 2 --summary-json s.json`
// exits 0 with 2 pallets, every record synced and the chain verified, on
// the embedded broker + SQLite, on PostgreSQL and on Mosquitto.
func TestDemoPallets(t *testing.T) {
	cases := []struct {
		name string
		args []string
		need func(t *testing.T)
	}{
		{"embedded", nil, func(t *testing.T) {}},
		{"postgres", nil, func(t *testing.T) {
			requireService(t, "SERIALINE_REQUIRE_PG", "127.0.0.1:5432", "PostgreSQL")
		}},
		{"mosquitto", []string{"--broker", "tcp://127.0.0.1:1883"}, func(t *testing.T) {
			requireService(t, "SERIALINE_REQUIRE_MOSQUITTO", "127.0.0.1:1883", "Mosquitto")
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.need(t)
			if tc.name == "postgres" {
				tc.args = []string{"--db", pgSchema(t)}
			}
			dir := t.TempDir()
			summary := filepath.Join(dir, "s.json")
			var out, errOut bytes.Buffer
			args := append([]string{"demo", "--pallets", "2", "--dir", filepath.Join(dir, "demo"), "--summary-json", summary, "--timeout", "3m", "--log-level", "error"}, tc.args...)
			if code := run(args, &out, &errOut); code != 0 {
				t.Fatalf("exit %d\n%s\n%s", code, out.String(), errOut.String())
			}
			raw, err := os.ReadFile(summary)
			if err != nil {
				t.Fatal(err)
			}
			var s Summary
			if err := json.Unmarshal(raw, &s); err != nil {
				t.Fatal(err)
			}
			// The demo line's case printer labels every case and pallet.
			if s.PalletsClosed != 2 || s.CasesClosed != 8 || s.ContainerLabels < 10 || !s.ChainVerified || s.RecordsEdge == 0 || int64(s.RecordsEdge) != s.RecordsCentral || s.UnitsCommissioned < 96 {
				t.Fatalf("summary %s", raw)
			}
			for _, want := range []string{"dashboard:  http://127.0.0.1:", "login: admin / ", "OPC UA:     opc.tcp://127.0.0.1:"} {
				if !strings.Contains(out.String(), want) {
					t.Fatalf("demo output lacks %q:\n%s", want, out.String())
				}
			}
		})
	}
}

// A demo that cannot finish says why and exits non-zero.
func TestDemoTimeoutFails(t *testing.T) {
	dir := t.TempDir()
	o := demoOptions{pallets: 1000, dir: dir, timeout: 2 * time.Second, rate: 40}
	sum, err := runDemo(context.Background(), o, &bytes.Buffer{}, zerolog.Nop())
	if err == nil || !strings.Contains(err.Error(), "timed out after 2s waiting for 1000 pallets") {
		t.Fatalf("err %v", err)
	}
	if sum == nil || sum.PalletsClosed != 0 {
		t.Fatalf("summary of a failed demo: %+v", sum)
	}
}
