package api

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"

	"github.com/serialine/serialine/drivers"
	"github.com/serialine/serialine/edge/config"
	"github.com/serialine/serialine/edge/line"
	"github.com/serialine/serialine/edge/store"
)

type idlePrinter struct{}

func (idlePrinter) Connect(context.Context) error              { return nil }
func (idlePrinter) Print(context.Context, drivers.Label) error { return nil }
func (idlePrinter) Status(context.Context) (drivers.Health, error) {
	return drivers.Health{Connected: true}, nil
}
func (idlePrinter) Close() error { return nil }

type idleCamera struct{}

func (idleCamera) Connect(context.Context) error { return nil }
func (idleCamera) Read(ctx context.Context) (drivers.Reading, error) {
	<-ctx.Done()
	return drivers.Reading{}, ctx.Err()
}
func (idleCamera) Close() error { return nil }

type idlePLC struct{}

func (idlePLC) Connect(context.Context) error                    { return nil }
func (idlePLC) WriteBool(context.Context, string, bool) error    { return nil }
func (idlePLC) ReadBool(context.Context, string) (bool, error)   { return true, nil }
func (idlePLC) WriteUint(context.Context, string, uint64) error  { return nil }
func (idlePLC) ReadUint(context.Context, string) (uint64, error) { return 0, nil }
func (idlePLC) Close() error                                     { return nil }

func hash(t *testing.T, pw string) string {
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func startAPI(t *testing.T) string {
	t.Helper()
	cfg := &config.Line{
		Line: config.LineInfo{ID: "line-1"}, Edge: config.Edge{ID: "edge-1", PrintAhead: 3, VerdictTimeout: config.Duration(time.Hour), GroupCommit: 64},
		Company:  config.Company{GS1Prefix: "9506000", SSCCExtension: 3},
		Products: []config.Product{{GTIN: "09506000134352", Name: "T", MinGrade: "C", Packaging: config.Packaging{UnitsPerCase: 4, CasesPerPallet: 2}, Serials: config.Serials{Length: 12, Alphabet: "numeric", Source: "generate"}}},
		Users: []config.User{
			{ID: "op", Name: "Olivia Operator", Role: "operator", PasswordHash: hash(t, "op-password")},
			{ID: "sup", Name: "Sam Supervisor", Role: "supervisor", PasswordHash: hash(t, "sup-password")},
		},
	}
	db, err := store.Open(filepath.Join(t.TempDir(), "e.db"), store.Options{EdgeID: "edge-1", Key: ed25519.NewKeyFromSeed(make([]byte, 32))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	eng, err := line.New(line.Options{Config: cfg, Store: db, Log: zerolog.Nop(), StatusInterval: 20 * time.Millisecond,
		Devices: line.Devices{Printer: idlePrinter{}, PrinterName: "p", Camera: idleCamera{}, CameraName: "c", PLC: idlePLC{}, PLCName: "l"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { eng.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	<-eng.Ready()
	s, err := New("127.0.0.1:0", eng, cfg.Users, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	go s.Run(ctx)
	return "http://" + s.Addr()
}

func call(t *testing.T, base, user, pw, path string, body any) (int, map[string]any) {
	t.Helper()
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", base+path, bytes.NewReader(raw))
	if user != "" {
		req.SetBasicAuth(user, pw)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func TestRolesAndSignatures(t *testing.T) {
	base := startAPI(t)
	batch := map[string]any{"gtin": "09506000134352", "lot": "L1", "expiry": "281130", "planned": 8}
	if code, _ := call(t, base, "", "", "/api/v1/batches", batch); code != 401 {
		t.Fatalf("anonymous write: %d", code)
	}
	if code, _ := call(t, base, "op", "wrong", "/api/v1/batches", batch); code != 401 {
		t.Fatalf("wrong password: %d", code)
	}
	if code, out := call(t, base, "op", "op-password", "/api/v1/batches", batch); code != 403 || !strings.Contains(out["error"].(string), "needs supervisor") {
		t.Fatalf("operator creates a batch: %d %v", code, out)
	}
	if code, out := call(t, base, "sup", "sup-password", "/api/v1/batches", batch); code != 201 || out["batch"] != "L1" {
		t.Fatalf("supervisor creates: %d %v", code, out)
	}
	// Line clearance: an e-signature by a supervisor, re-entering the password.
	if code, _ := call(t, base, "op", "op-password", "/api/v1/batch/clearance", map[string]any{}); code != 403 {
		t.Fatalf("clearance without signature: %d", code)
	}
	opSig := map[string]any{"signature": map[string]string{"user": "op", "password": "op-password", "meaning": "line clear"}}
	if code, out := call(t, base, "op", "op-password", "/api/v1/batch/clearance", opSig); code != 403 || !strings.Contains(out["error"].(string), "needs supervisor") {
		t.Fatalf("clearance signed by an operator: %d %v", code, out)
	}
	badSig := map[string]any{"signature": map[string]string{"user": "sup", "password": "nope", "meaning": "line clear"}}
	if code, _ := call(t, base, "op", "op-password", "/api/v1/batch/clearance", badSig); code != 403 {
		t.Fatalf("clearance with a wrong password: %d", code)
	}
	supSig := map[string]any{"signature": map[string]string{"user": "sup", "password": "sup-password", "meaning": "line clear"}}
	if code, out := call(t, base, "op", "op-password", "/api/v1/batch/clearance", supSig); code != 200 {
		t.Fatalf("clearance: %d %v", code, out)
	}
	if code, out := call(t, base, "op", "op-password", "/api/v1/batch/start", nil); code != 200 || out["batch_state"] != "running" {
		t.Fatalf("start: %d %v", code, out)
	}
	// A rule refusal is a 409 with the rule's words.
	if code, out := call(t, base, "sup", "sup-password", "/api/v1/batch/close", map[string]any{}); code != 409 || !strings.Contains(out["error"].(string), "stopped or complete") {
		t.Fatalf("close a running batch: %d %v", code, out)
	}
	if code, out := call(t, base, "op", "op-password", "/api/v1/batch/hold", map[string]string{"reason": "break", "extra": "x"}); code != 400 {
		t.Fatalf("unknown JSON field: %d %v", code, out)
	}
	resp, err := http.Get(base + "/api/v1/status")
	if err != nil || resp.StatusCode != 200 {
		t.Fatal(err)
	}
}
