package api

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/serialine/serialine/edge/config"
	"github.com/serialine/serialine/edge/equipment"
	"github.com/serialine/serialine/edge/line"
	"github.com/serialine/serialine/edge/store"
)

func startEquipmentAPI(t *testing.T) string {
	t.Helper()
	cfg := &config.Line{
		Line: config.LineInfo{ID: "line-1"}, Edge: config.Edge{ID: "edge-1", PrintAhead: 3, VerdictTimeout: config.Duration(time.Hour), GroupCommit: 64},
		Company:  config.Company{GS1Prefix: "9506000", SSCCExtension: 3},
		Products: []config.Product{{GTIN: "09506000134352", Name: "T", MinGrade: "C", Packaging: config.Packaging{UnitsPerCase: 4, CasesPerPallet: 2}, Serials: config.Serials{Length: 12, Alphabet: "numeric", Source: "generate"}}},
		Devices:  config.Devices{Printers: []config.Device{{Name: "p"}}, Cameras: []config.Device{{Name: "c"}}, PLCs: []config.Device{{Name: "l"}}},
		Equipment: config.Equipment{Interlock: []string{"verification"}, Items: []config.EquipmentItem{
			{Name: "c", Calibration: &config.Schedule{Interval: config.Duration(2190 * time.Hour), Tolerance: config.Duration(72 * time.Hour)}},
			{Name: "station-1", Class: "aggregation"},
		}},
		Users: []config.User{
			{ID: "op", Name: "Olivia Operator", Role: "operator", PasswordHash: hash(t, "op-password")},
			{ID: "sup", Name: "Sam Supervisor", Role: "supervisor", PasswordHash: hash(t, "sup-password")},
			{ID: "qa", Name: "Quinn QA", Role: "qa", PasswordHash: hash(t, "qa-password")},
		},
	}
	db, err := store.Open(filepath.Join(t.TempDir(), "e.db"), store.Options{EdgeID: "edge-1", Key: ed25519.NewKeyFromSeed(make([]byte, 32))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	tr, err := equipment.New(equipment.Options{Config: cfg, Store: db, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := line.New(line.Options{Config: cfg, Store: db, Log: zerolog.Nop(), StatusInterval: 20 * time.Millisecond, Equipment: tr,
		Devices: line.Devices{Printer: idlePrinter{}, PrinterName: "p", Camera: idleCamera{}, CameraName: "c", PLC: idlePLC{}, PLCName: "l"}})
	if err != nil {
		t.Fatal(err)
	}
	tr.SetExecutor(eng)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { eng.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	<-eng.Ready()
	s, err := New("127.0.0.1:0", eng, cfg.Users, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	s.SetEquipment(tr)
	go s.Run(ctx)
	return "http://" + s.Addr()
}

func sigOf(user string) map[string]string {
	return map[string]string{"user": user, "password": user + "-password", "meaning": "approval"}
}

func TestEquipmentEndpoints(t *testing.T) {
	base := startEquipmentAPI(t)
	if code, out := call(t, base, "op", "op-password", "/api/v1/equipment/station-1/downtime", map[string]any{"fault": "jam", "start": "yesterday"}); code != 400 || !strings.Contains(out["error"].(string), "RFC 3339") {
		t.Fatalf("bad start time: %d %v", code, out)
	}
	code, out := call(t, base, "op", "op-password", "/api/v1/equipment/station-1/downtime", map[string]any{"fault": "jam", "detail": "case erector jam"})
	if code != 201 || out["downtime"] == nil {
		t.Fatalf("manual downtime: %d %v", code, out)
	}
	id := out["downtime"].(string)
	if code, out := call(t, base, "", "", "/api/v1/equipment/station-1/downtime", map[string]any{"fault": "jam"}); code != 401 {
		t.Fatalf("anonymous downtime: %d %v", code, out)
	}
	if code, out := call(t, base, "op", "op-password", "/api/v1/equipment/station-1/downtime", map[string]any{"fault": "jam"}); code != 409 || !strings.Contains(out["error"].(string), "already down") {
		t.Fatalf("second downtime: %d %v", code, out)
	}
	resp, err := http.Get(base + "/api/v1/equipment")
	if err != nil {
		t.Fatal(err)
	}
	var v equipment.View
	json.NewDecoder(resp.Body).Decode(&v)
	resp.Body.Close()
	if len(v.Open) != 1 || v.Open[0].ID != id || v.Open[0].Source != "manual" || len(v.Items) != 6 {
		t.Fatalf("view: %+v", v)
	}
	if code, out := call(t, base, "op", "op-password", "/api/v1/downtime/"+id+"/end", map[string]any{}); code != 200 {
		t.Fatalf("end: %d %v", code, out)
	}
	rem := map[string]any{"root_cause": "carton out of spec", "remediation": "supplier lot quarantined", "signature": sigOf("op")}
	if code, out := call(t, base, "op", "op-password", "/api/v1/downtime/"+id+"/remediation", rem); code != 403 || !strings.Contains(out["error"].(string), "needs supervisor") {
		t.Fatalf("operator signature: %d %v", code, out)
	}
	rem["signature"] = sigOf("sup")
	if code, out := call(t, base, "op", "op-password", "/api/v1/downtime/"+id+"/remediation", rem); code != 200 || out["remediated_by"] != "sup" {
		t.Fatalf("remediation: %d %v", code, out)
	}

	// The interlock: camera c was never calibrated.
	if code, out := call(t, base, "sup", "sup-password", "/api/v1/batches", map[string]any{"gtin": "09506000134352", "lot": "L1", "expiry": "281130", "planned": 10}); code != 201 {
		t.Fatalf("create: %d %v", code, out)
	}
	if code, out := call(t, base, "op", "op-password", "/api/v1/batch/clearance", map[string]any{"signature": sigOf("sup")}); code != 200 {
		t.Fatalf("clearance: %d %v", code, out)
	}
	if code, out := call(t, base, "op", "op-password", "/api/v1/batch/start", map[string]any{}); code != 409 || !strings.Contains(out["error"].(string), "c (verification) has no recorded calibration") {
		t.Fatalf("start: %d %v", code, out)
	}
	ov := map[string]any{"batch": "L1", "reason": "camera verified with the grade card; calibration booked", "signature": sigOf("sup")}
	if code, out := call(t, base, "op", "op-password", "/api/v1/equipment/override", ov); code != 403 || !strings.Contains(out["error"].(string), "needs qa") {
		t.Fatalf("supervisor override: %d %v", code, out)
	}
	ov["signature"] = sigOf("qa")
	if code, out := call(t, base, "op", "op-password", "/api/v1/equipment/override", ov); code != 201 || out["batch"] != "L1" {
		t.Fatalf("override: %d %v", code, out)
	}
	if code, out := call(t, base, "op", "op-password", "/api/v1/batch/start", map[string]any{}); code != 200 || out["batch_state"] != "running" {
		t.Fatalf("start under override: %d %v", code, out)
	}

	// Calibration requests that are refused before they reach the line.
	for _, c := range []struct {
		body string
		code int
		want string
	}{
		{`{"result":"pass","certificate":{"name":"a.pdf","content_type":"application/pdf","data":"not base64!"},"signature":{"user":"op","password":"op-password","meaning":"performed by"}}`, 400, "request body"},
		{`{"result":"pass","certificate":{"name":"a.pdf","content_type":"application/pdf","data":"PGh0bWw+PC9odG1sPg=="},"signature":{"user":"op","password":"op-password","meaning":"performed by"}}`, 422, "look like text/html"},
		{`{"result":"pass","signature":{"user":"op","password":"wrong","meaning":"performed by"}}`, 403, "e-signature refused"},
		{`{"result":"pass","signature":{"user":"op","password":"op-password","meaning":"performed by"}}`, 409, "certificate required"},
	} {
		req, _ := http.NewRequest("POST", base+"/api/v1/equipment/c/calibration", bytes.NewReader([]byte(c.body)))
		req.SetBasicAuth("op", "op-password")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.code || !strings.Contains(string(b), c.want) {
			t.Errorf("%s: %d %s, want %d %q", c.body, resp.StatusCode, b, c.code, c.want)
		}
	}
}

func TestEquipmentEndpointsWithoutRegistry(t *testing.T) {
	base := startAPI(t)
	resp, err := http.Get(base + "/api/v1/equipment")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("without a registry: %d", resp.StatusCode)
	}
}
