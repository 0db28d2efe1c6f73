package e2e

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"

	"github.com/serialine/serialine/central/alerts"
	"github.com/serialine/serialine/central/alerts/smtptest"
	centralapp "github.com/serialine/serialine/central/app"
	"github.com/serialine/serialine/central/auth"
	centralcfg "github.com/serialine/serialine/central/config"
	"github.com/serialine/serialine/central/equipment"
	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/cmd/internal/linesim"
	"github.com/serialine/serialine/configs"
	"github.com/serialine/serialine/drivers/zebra/zebrasim"
	edgeapp "github.com/serialine/serialine/edge/app"
	"github.com/serialine/serialine/edge/config"
	"github.com/serialine/serialine/edge/devices"
	edgeequipment "github.com/serialine/serialine/edge/equipment"
	"github.com/serialine/serialine/edge/line"
	"github.com/serialine/serialine/sync/identity"
	"github.com/serialine/serialine/sync/record"
)

// clock is the edge's controllable clock: real time plus an offset the
// test advances (so device I/O and verdict timeouts keep working while
// hours pass for the downtime threshold).
type clock struct{ offset atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

const (
	password = "line-password-1"
	adminPW  = "central-admin-password-1"
	gtin     = "09506000134352"
)

// webhook records the alerts central posts.
type webhook struct {
	mu  sync.Mutex
	got []alerts.WebhookPayload
}

func (w *webhook) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	var p alerts.WebhookPayload
	if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
		http.Error(rw, err.Error(), 400)
		return
	}
	w.mu.Lock()
	w.got = append(w.got, p)
	w.mu.Unlock()
	rw.WriteHeader(http.StatusNoContent)
}

func (w *webhook) find(code, contains string) *alerts.WebhookPayload {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := range w.got {
		if w.got[i].Code == code && strings.Contains(w.got[i].Message, contains) {
			return &w.got[i]
		}
	}
	return nil
}

type centralRig struct {
	app  *centralapp.App
	hook *webhook
	smtp *smtptest.Server
	base string
	cfg  *centralcfg.Central
}

func startCentral(t *testing.T, edges ...centralcfg.Edge) *centralRig {
	t.Helper()
	hook := &webhook{}
	hs := httptest.NewServer(hook)
	t.Cleanup(hs.Close)
	mail, err := smtptest.Start(smtptest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mail.Close)
	cfg := centralcfg.Defaults()
	cfg.ID, cfg.HTTP, cfg.DataDir, cfg.MQTT.Listen = "central-e2e", "127.0.0.1:0", t.TempDir(), "127.0.0.1:0"
	cfg.Edges = edges
	cfg.Notify = centralcfg.Notify{
		Webhooks: []centralcfg.Webhook{{URL: hs.URL + "/alerts", MinSeverity: "critical"}},
		Email:    &centralcfg.Email{Server: mail.Addr(), From: "serialine@plant.example", To: []string{"qa@plant.example"}, MinSeverity: "critical"},
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	app, err := centralapp.New(ctx, &cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if err := app.Users.Add(ctx, auth.Actor{ID: "cli:test"}, "admin", "Ada Admin", auth.RoleAdmin, adminPW, ""); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("central: %v", err)
		}
		app.Close()
	})
	return &centralRig{app: app, hook: hook, smtp: mail, base: "http://" + app.HTTPAddr(), cfg: &cfg}
}

type edgeRig struct {
	t     *testing.T
	edge  *edgeapp.Edge
	sims  *linesim.Line
	clock *clock
	api   string
	cfg   *config.Line
}

// lineConfig is the shipped demo line with line users, no unattended batch
// and the given calibration baselines (empty: never calibrated).
func lineConfig(t *testing.T, edgeID, printerDone, cameraDone string) (*config.Line, ed25519.PublicKey) {
	t.Helper()
	devices.Register()
	raw, err := configs.Read("demo-line.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("demo-line.yaml", raw)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg.File = filepath.Join(dir, "line.yaml")
	cfg.Edge.ID, cfg.Edge.DataDir, cfg.Edge.HTTP, cfg.OPCUA.Listen, cfg.Batch = edgeID, "edge", "127.0.0.1:0", "", nil
	for _, u := range []struct{ id, name, role string }{{"op", "Olga Operator", "operator"}, {"sup", "Sam Supervisor", "supervisor"}, {"qa", "Quentin QA", "qa"}, {"tech", "Tina Technician", "operator"}} {
		h, _ := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
		cfg.Users = append(cfg.Users, config.User{ID: u.id, Name: u.name, Role: u.role, PasswordHash: string(h)})
	}
	for i := range cfg.Equipment.Items {
		it := &cfg.Equipment.Items[i]
		switch it.Name {
		case "printer-1":
			it.Calibration.LastDone, it.Maintenance.LastDone = printerDone, printerDone
		case "camera-1":
			it.Calibration.LastDone = cameraDone
		}
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	key, _, err := identity.LoadOrCreate(edgeapp.KeyPath(cfg))
	if err != nil {
		t.Fatal(err)
	}
	return cfg, key.Public().(ed25519.PublicKey)
}

func startEdge(t *testing.T, cfg *config.Line, c *centralRig, edgePW string) *edgeRig {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	sims, err := linesim.Start(ctx, cfg, linesim.Options{Rate: 50, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	sims.Apply(cfg)
	cfg.Central.Broker, cfg.Central.Username, cfg.Central.Password = c.app.BrokerURL(), cfg.Edge.ID, edgePW
	clk := &clock{}
	e, err := edgeapp.New(edgeapp.Options{Config: cfg, Log: zerolog.Nop(), Version: "e2e", Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("edge: %v", err)
		}
		e.Close()
		sims.Close()
	})
	r := &edgeRig{t: t, edge: e, sims: sims, clock: clk, api: "http://" + e.API.Addr(), cfg: cfg}
	r.waitFor("the engine", func() bool { return e.Engine.Status().State != "Starting" })
	return r
}

// waitFor polls cond with a deadline (no sleeping for readiness).
func (r *edgeRig) waitFor(what string, cond func() bool) {
	r.t.Helper()
	waitFor(r.t, what, cond)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func sig(user, meaning string) map[string]string {
	return map[string]string{"user": user, "password": password, "meaning": meaning}
}

// call makes an edge API request as user; it returns the status and body.
func (r *edgeRig) call(method, path, user string, body any) (int, []byte) {
	r.t.Helper()
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, r.api+path, bytes.NewReader(raw))
	req.SetBasicAuth(user, password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (r *edgeRig) must(method, path, user string, body any, want int) []byte {
	r.t.Helper()
	code, b := r.call(method, path, user, body)
	if code != want {
		r.t.Fatalf("%s %s: %d %s (want %d)", method, path, code, b, want)
	}
	return b
}

func (r *edgeRig) createBatch(lot string) {
	r.t.Helper()
	r.must("POST", "/api/v1/batches", "sup", map[string]any{"gtin": gtin, "lot": lot, "expiry": "281130", "planned": 2000}, http.StatusCreated)
	r.must("POST", "/api/v1/batch/clearance", "sup", map[string]any{"note": "line clear", "signature": sig("sup", "line clearance")}, 200)
}

func (r *edgeRig) equipment() edgeequipment.View {
	r.t.Helper()
	var v edgeequipment.View
	if err := json.Unmarshal(r.must("GET", "/api/v1/equipment", "op", nil, 200), &v); err != nil {
		r.t.Fatal(err)
	}
	return v
}

func centralGet(t *testing.T, c *centralRig, path string) (int, []byte, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("GET", c.base+path, nil)
	req.SetBasicAuth("admin", adminPW)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

func activeAlert(t *testing.T, c *centralRig, code, edge string) *store.Alert {
	t.Helper()
	list, err := c.app.Store.Alerts(context.Background(), store.AlertFilter{ActiveOnly: true, Code: code, Edge: edge})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) == 0 {
		return nil
	}
	return &list[0]
}

func enrollment(id string, pub ed25519.PublicKey, pw string) centralcfg.Edge {
	return centralcfg.Edge{ID: id, PublicKey: record.EncodePublicKey(pub), MQTTPassword: pw}
}

// The first "done when": a batch runs through a printer fault that
// lasts past the threshold on a controlled clock. The downtime is recorded
// with the batch and serial range, the alarm is raised on the edge (status
// alarms, the OPC UA alarm tags' values) and at central (critical alert,
// webhook, e-mail), the remediation is signed, and the FDA export is
// produced.
func TestPrinterFaultPastThreshold(t *testing.T) {
	today := time.Now().UTC().Format("2006-01-02")
	cfg, pub := lineConfig(t, "edge-e2e-dt", today, today)
	c := startCentral(t, enrollment(cfg.Edge.ID, pub, "mqtt-pw-dt"))
	e := startEdge(t, cfg, c, "mqtt-pw-dt")

	e.createBatch("LOTDT1")
	e.must("POST", "/api/v1/batch/start", "op", map[string]string{}, 200)
	e.waitFor("20 good units", func() bool { return e.edge.Engine.Status().Good >= 20 })

	e.sims.Printers["printer-1"].SetFault(zebrasim.PaperOut)
	var open edgeequipment.DowntimeView
	e.waitFor("the printer downtime", func() bool {
		for _, d := range e.equipment().Open {
			if d.Equipment == "printer-1" {
				open = d
				return true
			}
		}
		return false
	})
	if open.Class != "print" || open.Fault != "paper_out" || open.Source != "driver" || open.Batch != "LOTDT1" || open.SerialFrom == "" || open.Reportable {
		t.Fatalf("open downtime: %+v", open)
	}
	alarm := edgeequipment.AlarmReportable + ":printer-1:" + open.ID
	e.clock.Advance(4*time.Hour + time.Minute)
	e.waitFor("the edge's reportable alarm", func() bool {
		for _, a := range e.edge.Engine.Status().Alarms {
			if a == alarm {
				return true
			}
		}
		return false
	})
	tags := devices.Snapshot(e.edge.Engine.Status())
	if !strings.Contains(strings.Join(tags.Alarms, ", "), alarm) {
		t.Fatalf("OPC UA Alarms.Text would be %q", strings.Join(tags.Alarms, ", "))
	}

	// Central: critical alert, webhook and e-mail.
	waitFor(t, "central's critical alert", func() bool { return activeAlert(t, c, equipment.CodeDowntimeReportable, cfg.Edge.ID) != nil })
	a := activeAlert(t, c, equipment.CodeDowntimeReportable, cfg.Edge.ID)
	if a.Severity != store.SeverityCritical || !strings.Contains(a.Message, open.ID+" of printer-1 (print, paper_out)") || !strings.Contains(a.Message, "batch LOTDT1") {
		t.Fatalf("alert: %+v", a)
	}
	waitFor(t, "the webhook", func() bool { return c.hook.find(equipment.CodeDowntimeReportable, open.ID) != nil })
	if p := c.hook.find(equipment.CodeDowntimeReportable, open.ID); p.Severity != "critical" || p.Edge != cfg.Edge.ID || p.Central != "central-e2e" {
		t.Fatalf("webhook payload: %+v", p)
	}
	select {
	case m := <-c.smtp.Messages():
		msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
		if err != nil {
			t.Fatal(err)
		}
		subject, _ := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
		if !strings.HasPrefix(subject, "[Serialine CRITICAL] downtime_reportable "+cfg.Edge.ID) || m.To[0] != "qa@plant.example" {
			t.Fatalf("mail: %q %+v", subject, m)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("no e-mail")
	}

	// The printer recovers 10 minutes later; the supervisor signs the remediation.
	e.sims.Printers["printer-1"].SetFault(zebrasim.None)
	e.clock.Advance(10 * time.Minute)
	var ended edgeequipment.DowntimeView
	e.waitFor("the downtime to end", func() bool {
		for _, d := range e.equipment().Recent {
			if d.ID == open.ID {
				ended = d
				return true
			}
		}
		return false
	})
	if ended.DurationS < (4*time.Hour+11*time.Minute).Seconds() || !ended.Reportable || ended.SerialFrom == "" || ended.SerialTo == "" || ended.Batch != "LOTDT1" {
		t.Fatalf("ended: %+v", ended)
	}
	if code, b := e.call("POST", "/api/v1/downtime/"+open.ID+"/remediation", "op", map[string]any{"root_cause": "x", "remediation": "y", "signature": sig("op", "approval")}); code != http.StatusForbidden {
		t.Fatalf("an operator signed the remediation: %d %s", code, b)
	}
	e.must("POST", "/api/v1/downtime/"+open.ID+"/remediation", "op", map[string]any{
		"root_cause":  "label roll ran out; the low-media sensor was misaligned and gave no early warning",
		"remediation": "sensor realigned and tested; roll changed; SOP-PKG-014 now checks the sensor at each roll change",
		"signature":   sig("sup", "approval"),
	}, 200)
	e.waitFor("the edge alarm to clear", func() bool {
		for _, a := range e.edge.Engine.Status().Alarms {
			if a == alarm {
				return false
			}
		}
		return true
	})
	epoch := e.edge.Store.Head().Epoch
	waitFor(t, "the remediation at central", func() bool {
		d, err := c.app.Store.Downtime(context.Background(), cfg.Edge.ID, epoch, open.ID)
		return err == nil && d.RootCause != "" && !d.Open()
	})
	waitFor(t, "central's alert to clear", func() bool { return activeAlert(t, c, equipment.CodeDowntimeReportable, cfg.Edge.ID) == nil })

	// The FDA export of the event.
	path := fmt.Sprintf("/downtime/%s/%d/%s/export.json", cfg.Edge.ID, epoch, open.ID)
	code, body, _ := centralGet(t, c, path)
	if code != 200 {
		t.Fatalf("%s: %d %s", path, code, body)
	}
	var x equipment.DowntimeExport
	if err := json.Unmarshal(body, &x); err != nil {
		t.Fatal(err)
	}
	if x.Equipment.Name != "printer-1" || x.Equipment.SerialNo != "SIM-ZT411-0001" || !x.Reportable || x.Batch == nil || x.Batch.Lot != "LOTDT1" || x.Batch.GTIN != gtin ||
		x.SerialFrom != ended.SerialFrom || x.SerialTo != ended.SerialTo || x.DurationS != ended.DurationS || x.Remediation == nil ||
		x.Remediation.Signature.User != "sup" || x.Remediation.Signature.Name != "Sam Supervisor" || len(x.Records) != 4 {
		t.Fatalf("export: %s", body)
	}
	code, body, _ = centralGet(t, c, strings.TrimSuffix(path, ".json")+".html")
	for _, want := range []string{"SOP-PKG-014", "Sam Supervisor (user sup)", "LOTDT1", ended.SerialFrom, "downtime.reportable"} {
		if code != 200 || !strings.Contains(string(body), want) {
			t.Fatalf("export.html lacks %q (%d)", want, code)
		}
	}
	// The batch audit shows the printer's downtime and calibration in force.
	code, body, _ = centralGet(t, c, "/api/v1/equipment/batches/"+cfg.Edge.ID+"/LOTDT1")
	var audit equipment.BatchAudit
	if err := json.Unmarshal(body, &audit); err != nil || code != 200 || len(audit.Checks) != 1 {
		t.Fatalf("audit: %d %s", code, body)
	}
	for _, d := range audit.Devices {
		if d.Equipment.Name == "printer-1" && (len(d.Downtimes) == 0 || d.AtStart == nil || d.AtStart.Calibration.State != "ok" || len(d.InForce) == 0) {
			t.Fatalf("printer in the audit: %+v", d)
		}
	}
}

// The second "done when": starting a batch with an overdue camera
// calibration is refused with a clear message; after a calibration recorded
// with its certificate, it starts. Central shows the certificate with its
// SHA-256.
func TestOverdueCameraCalibrationInterlock(t *testing.T) {
	now := time.Now().UTC()
	lastCal := now.Add(-100 * 24 * time.Hour).Format("2006-01-02") // interval 2190 h + 72 h tolerance: overdue
	cfg, pub := lineConfig(t, "edge-e2e-cal", now.Format("2006-01-02"), lastCal)
	c := startCentral(t, enrollment(cfg.Edge.ID, pub, "mqtt-pw-cal"))
	e := startEdge(t, cfg, c, "mqtt-pw-cal")

	e.createBatch("LOTCAL1")
	code, body := e.call("POST", "/api/v1/batch/start", "op", map[string]string{})
	last, _ := config.ParseDate(lastCal)
	due := last.Add(2190 * time.Hour).Format("2006-01-02 15:04 MST")
	var refusal struct{ Error string }
	json.Unmarshal(body, &refusal)
	if code != http.StatusConflict || !strings.Contains(refusal.Error, "batch LOTCAL1 cannot start") ||
		!strings.Contains(refusal.Error, "calibration of camera-1 (verification) was due "+due) {
		t.Fatalf("start with an overdue camera: %d %s", code, body)
	}
	if st := e.edge.Engine.Status(); st.BatchState != line.BatchCleared || st.Commissioned != 0 {
		t.Fatalf("the refused start changed the batch: %+v", st)
	}
	waitFor(t, "central's calibration alert", func() bool { return activeAlert(t, c, equipment.CodeCalibrationOverdue, cfg.Edge.ID) != nil })

	// The technician records the calibration with its certificate.
	cert := []byte("%PDF-1.4\n% camera-1 calibration, ISO/IEC 15415 reference card, grade 4.0\n%%EOF\n")
	sum := sha256.Sum256(cert)
	var wo string
	for _, w := range e.equipment().WorkOrders {
		if w.Equipment == "camera-1" && w.Activity == "calibration" {
			wo = w.ID
		}
	}
	if wo == "" {
		t.Fatalf("no calibration work order for camera-1: %+v", e.equipment().WorkOrders)
	}
	big := map[string]any{"result": "pass", "signature": sig("tech", "performed by"),
		"certificate": map[string]any{"name": "big.pdf", "content_type": "application/pdf", "data": append([]byte("%PDF-1.4\n"), make([]byte, edgeequipment.MaxCertificate)...)}}
	if code, b := e.call("POST", "/api/v1/equipment/camera-1/calibration", "tech", big); code != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), "limit is 524288 bytes") {
		t.Fatalf("oversized certificate: %d %s", code, b)
	}
	b := e.must("POST", "/api/v1/equipment/camera-1/calibration", "tech", map[string]any{
		"activity": "calibration", "work_order": wo, "result": "pass",
		"results":     []record.CalibrationResult{{Name: "reference card overall grade", Value: "4.0", Spec: ">= 3.5", Pass: true}},
		"certificate": map[string]any{"name": "CAL-camera-1.pdf", "content_type": "application/pdf", "data": cert},
		"signature":   sig("tech", "performed by"),
	}, http.StatusCreated)
	var done map[string]any
	json.Unmarshal(b, &done)
	if done["certificate_sha256"] != hex.EncodeToString(sum[:]) || done["work_order"] != wo || done["signed_by"] != "tech" {
		t.Fatalf("calibration: %s", b)
	}
	e.must("POST", "/api/v1/batch/start", "op", map[string]string{}, 200)
	e.waitFor("production", func() bool { return e.edge.Engine.Status().Good >= 5 })

	// Central: the calibration, its certificate (SHA-256 checked), the alert cleared.
	var svc []store.Service
	waitFor(t, "the calibration at central", func() bool {
		svc, _ = c.app.Store.Services(context.Background(), store.ServiceFilter{Edge: cfg.Edge.ID, Equipment: "camera-1", Activity: "calibration"})
		return len(svc) > 0 && svc[0].CertName != ""
	})
	if svc[0].CertSHA != hex.EncodeToString(sum[:]) || svc[0].WorkOrder != wo || svc[0].Signature.Name != "Tina Technician" {
		t.Fatalf("calibration at central: %+v", svc[0])
	}
	code, got, hdr := centralGet(t, c, fmt.Sprintf("/equipment/certificates/%s/%d/%d", cfg.Edge.ID, svc[0].Epoch, svc[0].Seq))
	if code != 200 || !bytes.Equal(got, cert) || hdr.Get("X-Serialine-SHA256") != svc[0].CertSHA || hdr.Get("Content-Type") != "application/pdf" {
		t.Fatalf("certificate: %d %v", code, hdr)
	}
	waitFor(t, "the calibration alert to clear", func() bool { return activeAlert(t, c, equipment.CodeCalibrationOverdue, cfg.Edge.ID) == nil })
	code, page, _ := centralGet(t, c, "/equipment/"+cfg.Edge.ID+"/camera-1")
	if code != 200 || !strings.Contains(string(page), svc[0].CertSHA) || !strings.Contains(string(page), "CAL-camera-1.pdf") {
		t.Fatalf("equipment page: %d", code)
	}
	// The batch's audit shows the camera's calibration as it was at the start.
	_, body, _ = centralGet(t, c, "/api/v1/equipment/batches/"+cfg.Edge.ID+"/LOTCAL1")
	var audit equipment.BatchAudit
	json.Unmarshal(body, &audit)
	for _, d := range audit.Devices {
		if d.Equipment.Name == "camera-1" && (d.AtStart == nil || d.AtStart.Calibration.State != "ok" || d.AtStart.Calibration.LastRef != svc[0].CertSHA) {
			t.Fatalf("camera at the batch start: %+v", d.AtStart)
		}
	}
}
