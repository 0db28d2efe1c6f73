package web

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/serialine/serialine/central/equipment"
	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/central/store/storetest"
	"github.com/serialine/serialine/sync/record"
)

func TestEquipmentPages(t *testing.T) {
	e := start(t, nil)
	base, st := e.base, e.st
	ctx := context.Background()
	c := storetest.NewChain("edge-1", 1, 5)
	if err := st.EnrollEdge(ctx, store.Edge{ID: c.Edge, PublicKey: c.Pub(), EnrolledBy: "t"}); err != nil {
		t.Fatal(err)
	}
	if err := st.Append(ctx, c.Edge, record.Head{}, c.EquipmentScenario()); err != nil {
		t.Fatal(err)
	}
	get := func(path string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", base+path, nil)
		req.SetBasicAuth("admin", "admin-password-1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	must := func(path string, wants ...string) string {
		t.Helper()
		resp, body := get(path)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, body)
		}
		for _, w := range wants {
			if !strings.Contains(body, w) {
				t.Fatalf("%s lacks %q:\n%s", path, w, body)
			}
		}
		return body
	}
	sum := sha256.Sum256(storetest.EquipmentCertificate)
	sha := hex.EncodeToString(sum[:])

	must("/equipment", "printer-1", "camera-1", `class="st-down"`, "DT-000002", "ZT411 52J1 A-1", "Ada Admin")
	item := must("/equipment/edge-1/camera-1", "cal-42.pdf", sha, "Tom Tech", "WO-000001", "grade card 3.9")
	if !strings.Contains(item, `href="/equipment/certificates/edge-1/1/`) {
		t.Fatalf("no certificate link:\n%s", item)
	}
	must("/downtime", "DT-000001", "DT-000002", "paper_out", "caused by plc-1", "signed by Sue Pervisor")
	list := must("/downtime?reportable=1", "DT-000001", "export.html")
	if strings.Contains(list, "DT-000002") {
		t.Fatal("reportable list shows a non-reportable downtime")
	}
	must("/downtime/edge-1/1/DT-000001", "media sensor misaligned", "Sue Pervisor", "S4 … S5", "4h30m0s")
	html := must("/downtime/edge-1/1/DT-000001/export.html", "Serialization equipment downtime DT-000001: printer-1 (print)", "sensor realigned; SOP updated",
		`Sue Pervisor (user sup), meaning "approval"`, "the threshold of 4h0m0s was reached", "GTIN 09506000134352", "downtime.remediated")
	if strings.Contains(html, "No root cause") {
		t.Fatal("export claims no remediation")
	}

	// JSON export.
	resp, body := get("/downtime/edge-1/1/DT-000001/export.json")
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Disposition"), "downtime-edge-1-1-DT-000001.json") {
		t.Fatalf("export.json: %d %v", resp.StatusCode, resp.Header)
	}
	var x equipment.DowntimeExport
	if err := json.Unmarshal([]byte(body), &x); err != nil {
		t.Fatal(err)
	}
	if x.ID != "DT-000001" || x.Remediation == nil || x.Remediation.Signature.User != "sup" || len(x.Records) != 4 || x.SerialFrom != "S4" || x.Batch.Lot != "L1" {
		t.Fatalf("export: %+v", x)
	}

	// The certificate as recorded, viewable inline, never sniffed.
	var svc struct {
		Services []ServiceView `json:"calibration_and_maintenance"`
	}
	_, body = get("/api/v1/equipment/edge-1/camera-1")
	if err := json.Unmarshal([]byte(body), &svc); err != nil || len(svc.Services) != 1 || svc.Services[0].CertificateURL == "" {
		t.Fatalf("api equipment item: %v %s", err, body)
	}
	resp, body = get(svc.Services[0].CertificateURL)
	if resp.StatusCode != 200 || body != string(storetest.EquipmentCertificate) || resp.Header.Get("Content-Type") != "application/pdf" ||
		resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("X-Serialine-SHA256") != sha || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "inline") {
		t.Fatalf("certificate: %d %v", resp.StatusCode, resp.Header)
	}

	// Batch audit.
	must("/equipment/batches/edge-1/L1", "printer-1", "ok (due", "DT-000001", "reportable")
	_, body = get("/api/v1/equipment/batches/edge-1/L1")
	var a equipment.BatchAudit
	if err := json.Unmarshal([]byte(body), &a); err != nil || a.Batch.Batch != "L1" || len(a.Devices) != 5 || len(a.Checks) != 1 {
		t.Fatalf("batch audit api: %v %s", err, body)
	}
	must("/api/v1/equipment", `"name":"printer-1"`, `"calibration_state":"ok"`)
	must("/api/v1/downtime?edge=edge-1&batch=L1", `"id":"DT-000001"`)

	for _, path := range []string{"/equipment/edge-1/nope", "/downtime/edge-1/1/DT-404", "/downtime/edge-1/x/DT-000001", "/equipment/certificates/edge-1/1/999",
		"/equipment/batches/edge-1/nope", "/api/v1/downtime/edge-1/2/DT-000001"} {
		if resp, _ := get(path); resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", path, resp.StatusCode)
		}
	}
	if resp, err := http.Get(base + "/api/v1/equipment"); err != nil || resp.StatusCode != 401 {
		t.Fatalf("equipment API without login: %v", resp.StatusCode)
	}
}
