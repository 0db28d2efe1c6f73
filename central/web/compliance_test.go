package web

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	neturl "net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"

	"github.com/serialine/serialine/central/auth"
	"github.com/serialine/serialine/central/config"
	"github.com/serialine/serialine/central/journal"
	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/central/store/sqlite"
	"github.com/serialine/serialine/central/store/storetest"
	"github.com/serialine/serialine/sync/record"
	"github.com/serialine/serialine/sync/wire"
)

const (
	qaPW   = "qa-password-123"
	opPW   = "operator-password-1"
	shipPW = "shipper-password-1"
)

func startCompliance(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c := storetest.NewChain("edge-1", 1, 81)
	st.EnrollEdge(ctx, store.Edge{ID: c.Edge, PublicKey: c.Pub(), EnrolledBy: "t"})
	st.UpdateStatus(ctx, wire.Status{Edge: c.Edge, Line: "line-1", State: "Execute"})
	if err := st.Append(ctx, c.Edge, record.Head{Epoch: 1}, c.Scenario()); err != nil {
		t.Fatal(err)
	}
	j, err := journal.Open(ctx, journal.Options{Store: st, KeyPath: filepath.Join(dir, "central.key"), Instance: "c1", Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	users := auth.New(auth.Options{Store: st, Journal: j, Log: zerolog.Nop(), Cost: bcrypt.MinCost})
	users.Add(ctx, cli, "qa", "Quinn QA", auth.RoleQA, qaPW, "")
	users.Add(ctx, cli, "op", "Olly Operator", auth.RoleOperator, opPW, "")
	gs := config.GS1{CompanyPrefixes: []string{"9506000"}, GLN: "9506000000008", Name: "Demo plant", ReceiverGLN: "9506000000008"}
	s, err := New(Options{Listen: "127.0.0.1:0", Store: st, Users: users, Log: zerolog.Nop(),
		Compliance: Compliance{Journal: j, GS1: gs, TempDir: filepath.Join(dir, "exports")}})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	go s.Run(rctx)
	return "http://" + s.Addr()
}

var clients = map[string]*http.Client{}

// do sends a request as user, logged in once per user and server (a
// session cookie: basic auth would run bcrypt on every request).
func do(t *testing.T, method, url, user, pw, ctype string, body io.Reader) (int, []byte, http.Header) {
	t.Helper()
	base := url[:strings.Index(url[7:], "/")+7]
	c, ok := clients[base+user]
	if !ok {
		jar, _ := cookiejar.New(nil)
		c = &http.Client{Jar: jar}
		resp, err := c.PostForm(base+"/login", neturl.Values{"user": {user}, "password": {pw}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		clients[base+user] = c
	}
	req, _ := http.NewRequest(method, url, body)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

func TestShipTraceExportReport(t *testing.T) {
	base := startCompliance(t)
	// The operator ships the pallet, e-signing it.
	ship := `{"id":"DN-1","containers":["395060000000000023"],"destination":{"gln":"9506000000015","name":"Demo Wholesale DC"},"shipped_at":"2026-11-24T10:00:00Z","signer":{"user":"op","password":"` + opPW + `","meaning":"shipped"}}`
	code, body, _ := do(t, "POST", base+"/api/v1/shipments", "op", opPW, "application/json", strings.NewReader(ship))
	if code != http.StatusCreated || !strings.Contains(string(body), `"ID":"DN-1"`) {
		t.Fatalf("ship: %d %s", code, body)
	}
	code, body, _ = do(t, "POST", base+"/api/v1/shipments", "op", opPW, "application/json", strings.NewReader(strings.Replace(ship, "DN-1", "DN-2", 1)))
	if code != http.StatusUnprocessableEntity || !strings.Contains(string(body), "already shipped in DN-1") {
		t.Fatalf("ship twice: %d %s", code, body)
	}
	code, body, _ = do(t, "POST", base+"/api/v1/shipments", "op", opPW, "application/json", strings.NewReader(strings.Replace(ship, opPW+`"`, `wrong-password"`, 1)))
	if code != http.StatusForbidden {
		t.Fatalf("bad signature: %d %s", code, body)
	}
	// WMS import: the errors name the CSV lines.
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	fw, _ := mw.CreateFormFile("file", "wms.csv")
	fw.Write([]byte("sscc,destination_gln,destination_name,shipped_at\n395060000000000016,9506000000015,DC,2026-11-24T10:00:00Z\n"))
	for k, v := range map[string]string{"user": "op", "password": opPW, "meaning": "shipped"} {
		mw.WriteField(k, v)
	}
	mw.Close()
	code, body, _ = do(t, "POST", base+"/api/v1/shipments/import", "op", opPW, mw.FormDataContentType(), &mp)
	if code != http.StatusUnprocessableEntity || !strings.Contains(string(body), `"where":"wms.csv:2"`) {
		t.Fatalf("import: %d %s", code, body)
	}

	code, body, _ = do(t, "GET", base+"/api/v1/trace?q=%5Dd20109506000134352"+"21S1", "op", opPW, "", nil)
	if code != 200 || !strings.Contains(string(body), `"shipped_in":"395060000000000023"`) || !strings.Contains(string(body), "Demo Wholesale DC") {
		t.Fatalf("trace: %d %s", code, body)
	}
	code, body, _ = do(t, "GET", base+"/api/v1/trace?q=nope", "op", opPW, "", nil)
	if code != http.StatusNotFound {
		t.Fatalf("trace unknown: %d %s", code, body)
	}
	code, body, _ = do(t, "GET", base+"/api/v1/trace/lot?lot=L1", "op", opPW, "", nil)
	var lot struct {
		Units []map[string]any `json:"units"`
		Count int              `json:"count"`
	}
	if code != 200 || json.Unmarshal(body, &lot) != nil || lot.Count != 5 || lot.Units[0]["shipment"] != "DN-1" {
		t.Fatalf("lot trace: %d %s", code, body)
	}
	code, body, _ = do(t, "GET", base+"/trace?q=lot:L1", "op", opPW, "", nil)
	if code != 200 || !strings.Contains(string(body), "Lot L1: 5 units") || !strings.Contains(string(body), "DN-1") {
		t.Fatalf("trace page: %d %s", code, body)
	}

	// Exports: not for operators; QA starts a job and downloads it.
	code, _, _ = do(t, "POST", base+"/api/v1/exports", "op", opPW, "application/json", strings.NewReader(`{"batch":"L1","format":"csv"}`))
	if code != http.StatusForbidden {
		t.Fatalf("operator export: %d", code)
	}
	code, body, _ = do(t, "POST", base+"/api/v1/exports", "qa", qaPW, "application/json", strings.NewReader(`{"batch":"L1","format":"csv"}`))
	var j job
	if code != http.StatusAccepted || json.Unmarshal(body, &j) != nil || j.ID == "" {
		t.Fatalf("export job: %d %s", code, body)
	}
	deadline := time.Now().Add(20 * time.Second)
	for j.State != "done" {
		if j.State == "failed" || time.Now().After(deadline) {
			t.Fatalf("export job %+v", j)
		}
		time.Sleep(20 * time.Millisecond) // polling the job status, as the page does
		_, body, _ = do(t, "GET", base+"/api/v1/exports/"+j.ID, "qa", qaPW, "", nil)
		json.Unmarshal(body, &j)
	}
	if j.Verified == nil || !*j.Verified || j.Progress.Done != j.Progress.Total || j.Tables["units"] != 5 {
		t.Fatalf("finished job %+v", j)
	}
	code, body, hdr := do(t, "GET", base+"/exports/"+j.ID+"/download", "qa", qaPW, "", nil)
	if code != 200 || hdr.Get("Content-Type") != "application/zip" {
		t.Fatalf("download: %d %s", code, hdr)
	}
	if zr, err := zip.NewReader(bytes.NewReader(body), int64(len(body))); err != nil || len(zr.File) < 10 {
		t.Fatalf("zip: %v", err)
	}
	code, body, _ = do(t, "GET", base+"/api/v1/export?batch=L1&format=epcis-1.2", "qa", qaPW, "", nil)
	if code != 200 || !bytes.Contains(body, []byte("<sbdh:StandardBusinessDocumentHeader>")) || !bytes.Contains(body, []byte("urn:epcglobal:cbv:bizstep:shipping")) {
		t.Fatalf("EPCIS stream: %d %s", code, body)
	}
	code, body, _ = do(t, "GET", base+"/exports", "qa", qaPW, "", nil)
	if code != 200 || !strings.Contains(string(body), "batch L1") {
		t.Fatalf("exports page: %d", code)
	}
	code, body, _ = do(t, "GET", base+"/api/v1/export?batch=nope&format=csv", "qa", qaPW, "", nil)
	if code != http.StatusBadRequest || !strings.Contains(string(body), "no batch matches") {
		t.Fatalf("unknown batch: %d %s", code, body)
	}

	code, body, _ = do(t, "GET", base+"/api/v1/reports/daily?date=2026-11-24&format=csv", "op", opPW, "", nil)
	if code != 200 || !strings.Contains(string(body), "2026-11-24,edge-1,line-1,5,4,1,0.8000,no_read=1") {
		t.Fatalf("report CSV: %d %s", code, body)
	}
	code, body, _ = do(t, "GET", base+"/reports?date=2026-11-24", "op", opPW, "", nil)
	if code != 200 || !strings.Contains(string(body), "Daily compliance report 2026-11-24") || strings.Contains(string(body), "&lt;table") {
		t.Fatalf("reports page: %d %s", code, body)
	}
	code, _, _ = do(t, "GET", base+"/api/v1/reports/daily?date=yesterday", "op", opPW, "", nil)
	if code != http.StatusBadRequest {
		t.Fatalf("bad date: %d", code)
	}
}
