package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// The acceptance: `serialine demo --pallets 2 --summary-json s.json`
// exits 0 with 2 pallets, every record synced and the chain verified, on
// the embedded broker + SQLite, on PostgreSQL and on Mosquitto.
func TestDemoPallets(t *testing.T) {
	cases := []struct {
		name string
		args []string
		need func(t *testing.T) []string // more args
	}{
		{"embedded", nil, func(t *testing.T) []string { return nil }},
		{"postgres", nil, func(t *testing.T) []string {
			requireService(t, "SERIALINE_REQUIRE_PG", "127.0.0.1:5432", "PostgreSQL")
			return []string{"--db", pgSchema(t)} // its own schema: tests share the server
		}},
		{"mosquitto", []string{"--broker", "tcp://127.0.0.1:1883"}, func(t *testing.T) []string {
			requireService(t, "SERIALINE_REQUIRE_MOSQUITTO", "127.0.0.1:1883", "Mosquitto")
			return nil
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.args = append(tc.args, tc.need(t)...)
			runs := 1
			if tc.name == "postgres" {
				// A second run on the same database (new directory, new
				// keys) works as well: runs never collide in the store.
				runs = 2
			}
			for i := 0; i < runs; i++ {
				dir := t.TempDir()
				summary := filepath.Join(dir, "s.json")
				var out, errOut bytes.Buffer
				args := append([]string{"demo", "--pallets", "2", "--dir", filepath.Join(dir, "demo"), "--summary-json", summary, "--timeout", "3m", "--log-level", "error"}, tc.args...)
				if code := run(args, &out, &errOut); code != 0 {
					t.Fatalf("run %d: exit %d\n%s\n%s", i+1, code, out.String(), errOut.String())
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
					t.Fatalf("run %d: summary %s", i+1, raw)
				}
				for _, want := range []string{"dashboard:  http://127.0.0.1:", "login: admin", "OPC UA:     opc.tcp://127.0.0.1:"} {
					if !strings.Contains(out.String(), want) {
						t.Fatalf("demo output lacks %q:\n%s", want, out.String())
					}
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
