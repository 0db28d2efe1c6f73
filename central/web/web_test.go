package web

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/serialine/serialine/central/auth"
	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/central/store/sqlite"
	"github.com/serialine/serialine/sync/wire"
)

func start(t *testing.T) (string, store.Store) {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	users, _ := auth.Open(filepath.Join(dir, "users.json"))
	if err := users.Add("admin", "Ada Admin", auth.RoleAdmin, "admin-password-1"); err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Listen: "127.0.0.1:0", Store: st, Users: users, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go s.Run(ctx)
	return "http://" + s.Addr(), st
}

func TestDashboardNeedsLogin(t *testing.T) {
	base, st := start(t)
	st.EnrollEdge(context.Background(), store.Edge{ID: "edge-1", PublicKey: make([]byte, 32), EnrolledBy: "t"})
	st.UpdateStatus(context.Background(), wire.Status{Edge: "edge-1", Line: "line-1", State: "Execute"})
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, err := c.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `action="/login"`) {
		t.Fatal("dashboard shown without login")
	}
	if resp, _ := http.Get(base + "/api/v1/lines"); resp.StatusCode != 401 {
		t.Fatalf("API without credentials: %d", resp.StatusCode)
	}
	resp, _ = c.PostForm(base+"/login", url.Values{"user": {"admin"}, "password": {"wrong"}})
	if resp.StatusCode != 401 {
		t.Fatalf("bad login: %d", resp.StatusCode)
	}
	resp, err = c.PostForm(base+"/login", url.Values{"user": {"admin"}, "password": {"admin-password-1"}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"line-1", "edge-1", "Execute", "Ada Admin"} {
		if !strings.Contains(string(body), want) {
			t.Fatalf("dashboard lacks %q:\n%s", want, body)
		}
	}
	req, _ := http.NewRequest("GET", base+"/api/v1/lines", nil)
	req.SetBasicAuth("admin", "admin-password-1")
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("API with basic auth: %v %d", err, resp.StatusCode)
	}
	body, _ = io.ReadAll(resp.Body)
	if !strings.Contains(string(body), `"edge":"edge-1"`) {
		t.Fatalf("API body %s", body)
	}
	if resp, _ := http.Get(base + "/healthz"); resp.StatusCode != 200 {
		t.Fatal("healthz")
	}
}

func TestAlertsAPIAndMetrics(t *testing.T) {
	dir := t.TempDir()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	users, _ := auth.Open(filepath.Join(dir, "users.json"))
	users.Add("qa1", "Quinn QA", auth.RoleQA, "qa-password-123")
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "serialine_test_metric 1\n") })
	s, err := New(Options{Listen: "127.0.0.1:0", Store: st, Users: users, Log: zerolog.Nop(), Metrics: metrics})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go s.Run(ctx)
	base := "http://" + s.Addr()
	st.RaiseAlert(ctx, store.Alert{Severity: store.SeverityCritical, Code: "quarantine", Key: "k1", Edge: "edge-1", Message: "bad signature"})
	st.RaiseAlert(ctx, store.Alert{Severity: store.SeverityWarning, Code: "calibration_due", Key: "k2", Message: "camera due"})
	st.ClearAlert(ctx, "k2", time.Now())
	get := func(path string) (int, string) {
		req, _ := http.NewRequest("GET", base+path, nil)
		req.SetBasicAuth("qa1", "qa-password-123")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/api/v1/alerts?active=1"); code != 200 || !strings.Contains(body, `"code":"quarantine"`) || strings.Contains(body, "calibration_due") {
		t.Fatalf("active alerts: %d %s", code, body)
	}
	if code, body := get("/api/v1/alerts"); code != 200 || !strings.Contains(body, "calibration_due") || !strings.Contains(body, `"cleared_at"`) {
		t.Fatalf("all alerts: %d %s", code, body)
	}
	if resp, _ := http.Get(base + "/api/v1/alerts"); resp.StatusCode != 401 {
		t.Fatalf("alerts without login: %d", resp.StatusCode)
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(b), "serialine_test_metric 1") {
		t.Fatalf("metrics: %s", b)
	}
}
