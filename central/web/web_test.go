package web

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"

	"github.com/serialine/serialine/central/alerts"
	"github.com/serialine/serialine/central/audit"
	"github.com/serialine/serialine/central/auth"
	"github.com/serialine/serialine/central/esign"
	"github.com/serialine/serialine/central/journal"
	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/central/store/sqlite"
	"github.com/serialine/serialine/central/store/storetest"
	"github.com/serialine/serialine/sync/record"
	"github.com/serialine/serialine/sync/wire"
)

type env struct {
	base  string
	st    store.Store
	j     *journal.Journal
	users *auth.Users
	v     *audit.Verifier
	ctx   context.Context
	// skew moves the users' clock (password aging, 90 days here).
	skew *atomic.Int64
}

var cli = auth.Actor{ID: "cli:test"}

func start(t *testing.T, metrics http.Handler) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	j, err := journal.Open(ctx, journal.Options{Store: st, KeyPath: filepath.Join(dir, "central.key"), Instance: "t", Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	al := alerts.New(alerts.Options{Store: st, Journal: j, Log: zerolog.Nop()})
	skew := &atomic.Int64{}
	users := auth.New(auth.Options{Store: st, Journal: j, Alerts: al, Log: zerolog.Nop(), Cost: bcrypt.MinCost,
		PasswordMaxAge: 90 * 24 * time.Hour, Now: func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }})
	for _, u := range []struct{ id, name, role string }{{"admin", "Ada Admin", auth.RoleAdmin}, {"qa1", "Quinn A. Quality", auth.RoleQA}, {"op1", "Olga Operator", auth.RoleOperator}} {
		if err := users.Add(ctx, cli, u.id, u.name, u.role, u.id+"-password-1", ""); err != nil {
			t.Fatal(err)
		}
	}
	v := audit.New(audit.Options{Store: st, Log: zerolog.Nop()})
	signer := esign.New(esign.Options{Store: st, Journal: j, Users: users, Log: zerolog.Nop()})
	s, err := New(Options{Listen: "127.0.0.1:0", Store: st, Users: users, Signer: signer, Alerts: al, Verifier: v, Log: zerolog.Nop(),
		Metrics: metrics, Poll: 20 * time.Millisecond, TrendBucket: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	go s.Run(ctx)
	return &env{base: "http://" + s.Addr(), st: st, j: j, users: users, v: v, ctx: ctx, skew: skew}
}

// login returns a client with a session of user id.
func (e *env) login(t *testing.T, id string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, err := c.PostForm(e.base+"/login", url.Values{"user": {id}, "password": {id + "-password-1"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Request.URL.Path != "/" {
		t.Fatalf("login of %s ended at %s (%d)", id, resp.Request.URL, resp.StatusCode)
	}
	return c
}

func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func post(t *testing.T, c *http.Client, url string, body any) (int, map[string]any) {
	t.Helper()
	raw, _ := json.Marshal(body)
	resp, err := c.Post(url, "application/json", bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func TestLoginRolesAndBasicAuth(t *testing.T) {
	e := start(t, nil)
	e.st.EnrollEdge(e.ctx, store.Edge{ID: "edge-1", PublicKey: make([]byte, 32), EnrolledBy: "t"})
	e.st.UpdateStatus(e.ctx, wire.Status{Edge: "edge-1", Line: "line-1", State: "Execute"})
	jar, _ := cookiejar.New(nil)
	anon := &http.Client{Jar: jar}
	if _, body := get(t, anon, e.base+"/batches"); !strings.Contains(body, `action="/login"`) || !strings.Contains(body, `value="/batches"`) {
		t.Fatal("page shown without login, or the login form forgets where to go")
	}
	if code, _ := get(t, http.DefaultClient, e.base+"/api/v1/lines"); code != 401 {
		t.Fatalf("API without credentials: %d", code)
	}
	resp, _ := anon.PostForm(e.base+"/login", url.Values{"user": {"admin"}, "password": {"wrong"}})
	if resp.StatusCode != 401 {
		t.Fatalf("bad login: %d", resp.StatusCode)
	}
	admin := e.login(t, "admin")
	// The page shows the hub's snapshot, refreshed every poll (20 ms here).
	code, body := get(t, admin, e.base+"/")
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(body, "line-1") && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		code, body = get(t, admin, e.base+"/")
	}
	for _, want := range []string{"line-1", "edge-1", "Execute", "Ada Admin", `href="/audit"`, `href="/users"`, `href="/trace"`, `href="/equipment"`, `href="/downtime"`, `href="/exports"`, `href="/reports"`} {
		if code != 200 || !strings.Contains(body, want) {
			t.Fatalf("dashboard lacks %q:\n%s", want, body)
		}
	}
	op := e.login(t, "op1")
	if _, body := get(t, op, e.base+"/"); strings.Contains(body, `href="/users"`) || strings.Contains(body, `href="/audit"`) {
		t.Fatal("an operator's navigation offers pages it may not open")
	}
	if code, _ := get(t, op, e.base+"/users"); code != 403 {
		t.Fatalf("operator on /users: %d", code)
	}
	if code, _ := get(t, op, e.base+"/api/v1/audit"); code != 403 {
		t.Fatalf("operator on the audit API: %d", code)
	}
	req, _ := http.NewRequest("GET", e.base+"/api/v1/lines", nil)
	req.SetBasicAuth("qa1", "qa1-password-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("API with basic auth: %v %d", err, resp.StatusCode)
	}
	b, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(b), `"edge":"edge-1"`) {
		t.Fatalf("API body %s", b)
	}
	// A POST must be JSON (a cross-site form cannot send one).
	resp, _ = admin.Post(e.base+"/api/v1/users", "application/x-www-form-urlencoded", strings.NewReader("ID=x"))
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Fatalf("form POST to the API: %d", resp.StatusCode)
	}
	// Logout ends the session.
	admin.Post(e.base+"/logout", "", nil)
	if _, body := get(t, admin, e.base+"/"); !strings.Contains(body, `action="/login"`) {
		t.Fatal("session alive after logout")
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if code, _ := get(t, http.DefaultClient, e.base+p); code != 200 {
			t.Fatalf("%s: %d", p, code)
		}
	}
}

func TestAlertsAckAndMetrics(t *testing.T) {
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "serialine_test_metric 1\n") })
	e := start(t, metrics)
	a, _, _ := e.st.RaiseAlert(e.ctx, store.Alert{Severity: store.SeverityCritical, Code: "quarantine", Key: "k1", Edge: "edge-1", Message: "bad signature"})
	e.st.RaiseAlert(e.ctx, store.Alert{Severity: store.SeverityWarning, Code: "calibration_due", Key: "k2", Message: "camera due"})
	e.st.ClearAlert(e.ctx, "k2", time.Now())
	qa := e.login(t, "qa1")
	if code, body := get(t, qa, e.base+"/api/v1/alerts?active=1"); code != 200 || !strings.Contains(body, `"code":"quarantine"`) || strings.Contains(body, "calibration_due") {
		t.Fatalf("active alerts: %d %s", code, body)
	}
	if code, body := get(t, qa, e.base+"/api/v1/alerts"); code != 200 || !strings.Contains(body, "calibration_due") || !strings.Contains(body, `"cleared_at"`) {
		t.Fatalf("all alerts: %d %s", code, body)
	}
	op := e.login(t, "op1")
	if code, _ := post(t, op, fmt.Sprintf("%s/api/v1/alerts/%d/ack", e.base, a.ID), map[string]string{"reason": "seen"}); code != 403 {
		t.Fatalf("operator ack: %d", code)
	}
	if code, _ := post(t, qa, fmt.Sprintf("%s/api/v1/alerts/%d/ack", e.base, a.ID), map[string]string{"reason": ""}); code != 422 {
		t.Fatalf("ack without a reason: %d", code)
	}
	if code, m := post(t, qa, fmt.Sprintf("%s/api/v1/alerts/%d/ack", e.base, a.ID), map[string]string{"reason": "key rotation, edge re-enrolled"}); code != 200 {
		t.Fatalf("ack: %d %v", code, m)
	}
	_, body := get(t, qa, e.base+"/api/v1/audit?action=alert.acknowledged")
	if !strings.Contains(body, `"user":"qa1"`) || !strings.Contains(body, "key rotation, edge re-enrolled") {
		t.Fatalf("ack not in the audit trail: %s", body)
	}
	_, body = get(t, http.DefaultClient, e.base+"/metrics")
	if !strings.Contains(body, "serialine_test_metric 1") {
		t.Fatalf("metrics: %s", body)
	}
}

// sseClient reads server-sent events.
type sseClient struct {
	r    *bufio.Reader
	body io.Closer
}

func openSSE(t *testing.T, c *http.Client, url string) *sseClient {
	t.Helper()
	// Reads fail once the test's time is up instead of blocking.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	t.Cleanup(func() { resp.Body.Close() })
	return &sseClient{r: bufio.NewReader(resp.Body), body: resp.Body}
}

func (s *sseClient) next() (string, []byte, error) {
	var event string
	var data []byte
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return "", nil, err
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "" && event != "":
			return event, data, nil
		case strings.HasPrefix(line, "event: "):
			event = line[7:]
		case strings.HasPrefix(line, "data: "):
			data = append(data, line[6:]...)
		}
	}
}

// The dashboard stream keeps up with 50 lines: every line is in the first
// event, and after all 50 change, each one's new counts arrive.
func TestEventsWithFiftyLines(t *testing.T) {
	e := start(t, nil)
	const n = 50
	chains := make([]*storetest.Chain, n)
	for i := range chains {
		c := storetest.NewChain(fmt.Sprintf("edge-%02d", i), 1, byte(i+1))
		chains[i] = c
		e.st.EnrollEdge(e.ctx, store.Edge{ID: c.Edge, PublicKey: c.Pub(), EnrolledBy: "t"})
		e.st.UpdateStatus(e.ctx, wire.Status{Edge: c.Edge, Line: fmt.Sprintf("line-%02d", i), State: "Execute", Good: i, UnitsPerMin: 300})
	}
	admin := e.login(t, "admin")
	ev := openSSE(t, admin, e.base+"/api/v1/events")
	want := map[string]int{}
	for i := range chains {
		want[chains[i].Edge] = i
	}
	read := func(want map[string]int, what string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for len(want) > 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d lines never arrived: %v", what, len(want), want)
			}
			name, data, err := ev.next()
			if err != nil {
				t.Fatal(err)
			}
			if name != "lines" {
				continue
			}
			var j struct{ Lines []LineView }
			if err := json.Unmarshal(data, &j); err != nil {
				t.Fatal(err)
			}
			for _, l := range j.Lines {
				if g, ok := want[l.Edge]; ok && l.BatchGood == g {
					delete(want, l.Edge)
				}
			}
		}
	}
	t0 := time.Now()
	read(want, "first snapshot")
	t.Logf("first snapshot after %s", time.Since(t0))
	// Every line changes; the stored counters change too (records stored).
	for i, c := range chains {
		want[c.Edge] = 1000 + i
		e.st.UpdateStatus(e.ctx, wire.Status{Edge: c.Edge, Line: fmt.Sprintf("line-%02d", i), State: "Execute", Good: 1000 + i, Rejected: 3, Reasons: map[string]int{"grade": 2, "no_read": 1}})
		if err := e.st.Append(e.ctx, c.Edge, c.Head(), c.Scenario()); err != nil {
			t.Fatal(err)
		}
	}
	read(want, "after the change")
	t.Logf("changes after %s", time.Since(t0))
	// The trend has a point for the current bucket: 4 good of 5.
	code, body := get(t, admin, e.base+"/api/v1/lines")
	var j struct{ Lines []LineView }
	json.Unmarshal([]byte(body), &j)
	if code != 200 || len(j.Lines) != n {
		t.Fatalf("lines: %d %d", code, len(j.Lines))
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, body := get(t, admin, e.base+"/api/v1/lines")
		json.Unmarshal([]byte(body), &j)
		found := false
		for _, p := range j.Lines[0].Trend {
			found = found || (p != nil && *p == 80)
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("trend %v", j.Lines[0].Trend)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if l := j.Lines[0]; l.RejectRate < 0.29 || l.RejectRate > 0.31 || l.Reasons["grade"] != 2 {
		t.Fatalf("line view %+v", l)
	}
}

func TestTrendBuckets(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)
	tr := newTrend(time.Minute, 5)
	tr.add(t0, 100, 10)                     // baseline
	tr.add(t0.Add(10*time.Second), 190, 20) // +90 good +10 bad: 90 %
	tr.add(t0.Add(70*time.Second), 290, 20) // next minute: 100 %
	tr.add(t0.Add(7*time.Minute), 300, 30)  // 10/20 = 50 %, older buckets fall out
	p := tr.points(t0.Add(7 * time.Minute))
	if len(p) != 5 || p[4] == nil || *p[4] != 50 {
		t.Fatalf("points %v", p)
	}
	for i := 0; i < 4; i++ {
		if p[i] != nil {
			t.Fatalf("point %d = %v, want a gap", i, *p[i])
		}
	}
	tr2 := newTrend(time.Minute, 3)
	tr2.add(t0, 0, 0)
	tr2.add(t0.Add(10*time.Second), 9, 1)
	tr2.add(t0.Add(70*time.Second), 19, 1)
	p = tr2.points(t0.Add(70 * time.Second))
	if p[1] == nil || *p[1] != 90 || p[2] == nil || *p[2] != 100 || p[0] != nil {
		t.Fatalf("points %v", p)
	}
}

// A QA user releases a closed batch through the e-signature API; the batch
// page then shows the signature's printed name, time and meaning.
func TestBatchReleaseWithSignature(t *testing.T) {
	e := start(t, nil)
	c := storetest.NewChain("edge-1", 1, 1)
	e.st.EnrollEdge(e.ctx, store.Edge{ID: c.Edge, PublicKey: c.Pub(), EnrolledBy: "t"})
	recs := c.Scenario()
	recs = append(recs, c.Next(record.KindBatchClosed, record.BatchClosed{Batch: "L1", Balanced: true, Reconciliation: record.Reconciliation{Allocated: 5, Commissioned: 5, Good: 4, Rejected: 1, Aggregated: 4}})...)
	if err := e.st.Append(e.ctx, c.Edge, record.Head{Epoch: 1}, recs); err != nil {
		t.Fatal(err)
	}
	qa := e.login(t, "qa1")
	code, body := get(t, qa, e.base+"/batches")
	if code != 200 || !strings.Contains(body, `href="/batches/edge-1/L1"`) {
		t.Fatalf("batches: %d %s", code, body)
	}
	_, body = get(t, qa, e.base+"/batches/edge-1/L1")
	if !strings.Contains(body, `data-sign="batch.release"`) || !strings.Contains(body, "balanced") {
		t.Fatalf("batch page offers no release:\n%s", body)
	}
	op := e.login(t, "op1")
	if _, body := get(t, op, e.base+"/batches/edge-1/L1"); strings.Contains(body, `data-sign="batch.release"`) {
		t.Fatal("release offered to an operator")
	}
	sign := SignRequest{Action: "batch.release", Target: "edge-1/L1", Credentials: esign.Credentials{User: "qa1", Password: "qa1-password-1", Meaning: "approval", Reason: "batch record reviewed"}}
	bad := sign
	bad.Password = "not-my-password"
	if code, m := post(t, qa, e.base+"/api/v1/signatures", bad); code != 403 || !strings.Contains(fmt.Sprint(m["error"]), "wrong password") {
		t.Fatalf("wrong password: %d %v", code, m)
	}
	code, m := post(t, qa, e.base+"/api/v1/signatures", sign)
	if code != 201 || m["name"] != "Quinn A. Quality" || m["meaning"] != "approval" || m["ref"] != recs[len(recs)-1].Ref().String() {
		t.Fatalf("sign: %d %v", code, m)
	}
	ref := m["journal"].(string)
	_, body = get(t, qa, e.base+"/batches/edge-1/L1")
	for _, want := range []string{"Released by Quinn A. Quality", `<td class="signer">Quinn A. Quality</td>`, `<td class="meaning">approval</td>`, "batch record reviewed"} {
		if !strings.Contains(body, want) {
			t.Fatalf("batch page lacks %q:\n%s", want, body)
		}
	}
	e.v.Pass(e.ctx)
	code, body = get(t, qa, e.base+"/api/v1/audit?action=batch.released")
	if code != 200 || !strings.Contains(body, `"chain":"verified"`) || !strings.Contains(body, `"target":"edge-1/L1"`) {
		t.Fatalf("audit: %d %s", code, body)
	}
	code, body = get(t, qa, e.base+"/api/v1/signatures/verify?record="+url.QueryEscape(ref))
	if code != 200 || !strings.Contains(body, `"valid":true`) {
		t.Fatalf("verify %s: %d %s", ref, code, body)
	}
	if code, body := get(t, qa, e.base+"/audit?user=qa1"); code != 200 || !strings.Contains(body, "batch.released") || !strings.Contains(body, "Quinn A. Quality") {
		t.Fatalf("audit page: %d %s", code, body)
	}
}

func TestUserManagementAndCorrections(t *testing.T) {
	e := start(t, nil)
	admin := e.login(t, "admin")
	if code, m := post(t, admin, e.base+"/api/v1/users", map[string]string{"ID": "sup1", "Name": "Sam Supervisor", "Role": "supervisor", "Password": "sup1-password-1", "Reason": "shift lead"}); code != 201 {
		t.Fatalf("add: %d %v", code, m)
	}
	if code, _ := post(t, admin, e.base+"/api/v1/users/sup1", map[string]string{"change": "role", "value": "qa"}); code != 422 {
		t.Fatalf("change without a reason: %d", code)
	}
	if code, m := post(t, admin, e.base+"/api/v1/users/sup1", map[string]string{"change": "role", "value": "qa", "reason": "promoted"}); code != 200 {
		t.Fatalf("role: %d %v", code, m)
	}
	sup := e.login(t, "sup1")
	if code, _ := post(t, sup, e.base+"/api/v1/users", map[string]string{"ID": "x"}); code != 403 {
		t.Fatalf("non-admin adds a user: %d", code)
	}
	_, body := get(t, admin, e.base+"/users")
	if !strings.Contains(body, "Sam Supervisor") {
		t.Fatalf("users page: %s", body)
	}
	_, body = get(t, admin, e.base+"/api/v1/audit?action=user.role_changed")
	if !strings.Contains(body, `"old":"supervisor"`) || !strings.Contains(body, `"new":"qa"`) || !strings.Contains(body, `"reason":"promoted"`) {
		t.Fatalf("role change in the audit trail: %s", body)
	}
	if strings.Contains(body, "$2a$") {
		t.Fatal("a password hash in the audit trail")
	}
	// A correction: the record page shows the original and the correction.
	c := storetest.NewChain("edge-1", 1, 1)
	e.st.EnrollEdge(e.ctx, store.Edge{ID: c.Edge, PublicKey: c.Pub(), EnrolledBy: "t"})
	recs := c.Scenario()
	e.st.Append(e.ctx, c.Edge, record.Head{Epoch: 1}, recs)
	target := recs[9].Ref().String() // unit.verified S3, no_read
	qa := e.login(t, "qa1")
	code, m := post(t, qa, e.base+"/api/v1/signatures", SignRequest{Action: "record.correct", Target: target, Params: map[string]string{"field": "reason", "old": "no_read", "new": "grade"},
		Credentials: esign.Credentials{User: "qa1", Password: "qa1-password-1", Meaning: "verification", Reason: "camera log shows a grade failure"}})
	if code != 201 {
		t.Fatalf("correction: %d %v", code, m)
	}
	_, body = get(t, qa, e.base+"/records/edge-1/1/10")
	for _, want := range []string{`&#34;reason&#34;: &#34;no_read&#34;`, "<del>no_read</del>", "<ins>grade</ins>", "camera log shows a grade failure", "Quinn A. Quality"} {
		if !strings.Contains(body, want) {
			t.Fatalf("record page lacks %q:\n%s", want, body)
		}
	}
	code, body = get(t, qa, e.base+"/api/v1/records/edge-1/1/10")
	if code != 200 || !strings.Contains(body, `"corrections":[{`) || !strings.Contains(body, `"reason":"no_read"`) {
		t.Fatalf("record API: %d %s", code, body)
	}
}

// The batch page lists the items whose reject did not reach the PLC, where
// to look, and the supervisor's confirmation; an unconfirmed one blocks the
// release, named.
func TestBatchPageRejectsNotDelivered(t *testing.T) {
	e := start(t, nil)
	c := storetest.NewChain("edge-1", 1, 1)
	e.st.EnrollEdge(e.ctx, store.Edge{ID: c.Edge, PublicKey: c.Pub(), EnrolledBy: "t"})
	sup := &record.Signature{User: "sup1", Name: "Sam Supervisor", Meaning: "the unit was found and removed", Time: "2026-11-24T08:00:09Z"}
	recs := c.Scenario()
	recs = append(recs, c.Next(
		record.KindRejectNotDelivered, record.RejectNotDelivered{Batch: "L1", ID: "SN-1", Unit: "(01)09506000134352(21)SN-1", Reason: "grade", Case: "395060000000000030", Detail: "PLC write timed out"},
		record.KindRejectNotDelivered, record.RejectNotDelivered{Batch: "L1", ID: "SN-2", Unit: "(01)09506000134352(21)SN-2", Reason: "unknown_after_restart", Detail: "the edge stopped while the unit was between printer and camera"},
		record.KindRejectRemoved, record.RejectRemoved{Batch: "L1", ID: "SN-1", Note: "found in the case, destroyed", Signature: sup},
		record.KindBatchClosed, record.BatchClosed{Batch: "L1", Balanced: true},
	)...)
	if err := e.st.Append(e.ctx, c.Edge, record.Head{Epoch: 1}, recs); err != nil {
		t.Fatal(err)
	}
	qa := e.login(t, "qa1")
	_, body := get(t, qa, e.base+"/batches/edge-1/L1")
	for _, want := range []string{`id="rejects-not-delivered"`, "(01)09506000134352(21)SN-1", "395060000000000030", "PLC write timed out",
		"Sam Supervisor (sup1) 2026-11-24T08:00:09Z: found in the case, destroyed", "unknown_after_restart", "not confirmed",
		"the reject of SN-2 (unknown_after_restart) was not delivered and its removal was never confirmed"} {
		if !strings.Contains(body, want) {
			t.Fatalf("batch page lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, `data-sign="batch.release"`) {
		t.Fatal("release offered with an unconfirmed undelivered reject")
	}
}

// An expired password (21 CFR 11.300(b)) is replaced on the login form:
// the form asks for the current password and a new one twice, refuses a
// mismatch or a wrong current password, then logs in with the new one. The
// API's basic auth refuses the expired password with the reason.
func TestExpiredPasswordAtLogin(t *testing.T) {
	e := start(t, nil)
	e.skew.Store(int64(91 * 24 * time.Hour))
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	form := func(v url.Values) (int, string, string) {
		t.Helper()
		resp, err := c.PostForm(e.base+"/login", v)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Request.URL.Path, string(b)
	}
	code, _, body := form(url.Values{"user": {"qa1"}, "password": {"qa1-password-1"}, "next": {"/batches"}})
	if code != 401 || !strings.Contains(body, "password expired") || !strings.Contains(body, `name="new_password"`) || !strings.Contains(body, `value="qa1"`) || !strings.Contains(body, `value="/batches"`) {
		t.Fatalf("expired login: %d\n%s", code, body)
	}
	if code, _, body := form(url.Values{"user": {"qa1"}, "password": {"qa1-password-1"}, "new_password": {"qa1-password-2"}, "confirm_password": {"qa1-password-3"}}); code != 401 || !strings.Contains(body, "the two new passwords differ") {
		t.Fatalf("mismatched new passwords: %d\n%s", code, body)
	}
	if code, _, body := form(url.Values{"user": {"qa1"}, "password": {"wrong-password"}, "new_password": {"qa1-password-2"}, "confirm_password": {"qa1-password-2"}}); code != 401 || !strings.Contains(body, "Password not changed: unknown user or wrong password") {
		t.Fatalf("wrong current password: %d\n%s", code, body)
	}
	req, _ := http.NewRequest("GET", e.base+"/api/v1/lines", nil)
	req.SetBasicAuth("qa1", "qa1-password-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.Contains(string(b), "password expired") {
		t.Fatalf("basic auth with an expired password: %d %s", resp.StatusCode, b)
	}
	code, path, _ := form(url.Values{"user": {"qa1"}, "password": {"qa1-password-1"}, "new_password": {"qa1-password-2"}, "confirm_password": {"qa1-password-2"}, "next": {"/batches"}})
	if code != 200 || path != "/batches" {
		t.Fatalf("change and log in: %d at %s", code, path)
	}
	if code, body := get(t, c, e.base+"/batches"); code != 200 || !strings.Contains(body, "Quinn A. Quality") {
		t.Fatalf("after the change: %d", code)
	}
}
