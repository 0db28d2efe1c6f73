package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/serialine/serialine/configs"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// demoRun is a demo running in-process, as `serialine demo` runs it.
type demoRun struct {
	central, adminPW       string // dashboard host:port and the generated admin password
	edge, edgeAPI, superPW string
}

var (
	dashRE = regexp.MustCompile(`dashboard:  http://(\S+)   login: admin / (\S+)`)
	edgeRE = regexp.MustCompile(`edge:       (\S+)  API http://(\S+)  \(operator / \S+, supervisor / (\S+)\)`)
)

// startDemo runs the demo line without its OPC UA tag server (which other
// tests cover and whose start costs a core for most of a minute under the
// race detector).
func startDemo(t *testing.T, rate float64) demoRun {
	t.Helper()
	raw, err := configs.Read("demo-line.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := regexp.MustCompile(`(?m)^opcua:\n(  .*\n)*`).ReplaceAll(raw, nil)
	if bytes.Equal(cfg, raw) {
		t.Fatal("demo-line.yaml has no opcua section to leave out")
	}
	lineFile := filepath.Join(t.TempDir(), "line.yaml")
	if err := os.WriteFile(lineFile, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		_, err := runDemo(ctx, demoOptions{dir: filepath.Join(t.TempDir(), "demo"), rate: rate, badGrade: 0.05, noRead: 0.02, logLevel: "error", lineFile: lineFile}, out, zerolog.Nop())
		done <- err
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("demo stopped with %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("demo did not stop within 30 s")
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		s := out.String()
		d, e := dashRE.FindStringSubmatch(s), edgeRE.FindStringSubmatch(s)
		if d != nil && e != nil {
			return demoRun{central: d[1], adminPW: d[2], edge: e[1], edgeAPI: e[2], superPW: e[3]}
		}
		select {
		case err := <-done:
			t.Fatalf("demo ended early: %v\n%s", err, s)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("demo printed no addresses in 60 s:\n%s", s)
		}
	}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// edgeCall calls the edge API as the demo's supervisor.
func (d demoRun) edgeCall(t *testing.T, path string, body any) (int, string) {
	t.Helper()
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", "http://"+d.edgeAPI+path, bytes.NewReader(raw))
	req.SetBasicAuth("supervisor", d.superPW)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// closeBatch stops the demo line's batch and closes it (with the
// supervisor's e-signature, which an unbalanced close needs).
func (d demoRun) closeBatch(t *testing.T) {
	t.Helper()
	if code, body := d.edgeCall(t, "/api/v1/batch/stop", map[string]string{"reason": "browser test: end of batch"}); code != 200 {
		t.Fatalf("stop: %d %s", code, body)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := d.edgeCall(t, "/api/v1/batch/close", map[string]any{"loose_reason": "open case at end of batch",
			"signature": map[string]string{"user": "supervisor", "password": d.superPW, "meaning": "approval", "reason": "end of the test batch"}})
		if code == 200 {
			return
		}
		if code != 409 || time.Now().After(deadline) {
			t.Fatalf("close: %d %s", code, body)
		}
		time.Sleep(100 * time.Millisecond) // units still awaiting a verdict
	}
}

// One demo for both: the daemons' health and metrics while the line runs,
// then the browser test, which ends by closing the batch.
func TestDemoDashboard(t *testing.T) {
	d := startDemo(t, 40)
	t.Run("HealthAndMetrics", func(t *testing.T) { healthAndMetrics(t, d) })
	t.Run("Browser", func(t *testing.T) { browserDashboard(t, d) })
}

// Both daemons answer /healthz, /readyz and /metrics with the line's numbers.
func healthAndMetrics(t *testing.T, d demoRun) {
	for _, base := range []string{"http://" + d.central, "http://" + d.edgeAPI} {
		for _, p := range []string{"/healthz", "/readyz"} {
			deadline := time.Now().Add(20 * time.Second)
			for {
				code, body := httpGet(t, base+p)
				if code == 200 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s%s: %d %s", base, p, code, body)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	want := map[string][]string{
		"http://" + d.edgeAPI + "/metrics": {`serialine_edge_state{edge="` + d.edge + `",line="line-1",state="Execute"} 6`, "serialine_edge_batch_units_good{", "serialine_edge_sync_acked_seq{", `serialine_edge_device_up{device="camera-1"`, "go_goroutines"},
		"http://" + d.central + "/metrics": {`serialine_line_units_good_total{edge="` + d.edge + `",line="line-1"}`, `serialine_line_executing{edge="` + d.edge + `",line="line-1"} 1`, `serialine_alerts_active{severity="critical"}`, "serialine_sessions_live 0", "serialine_chains_broken 0", "serialine_store_scrape_errors 0"},
	}
	for url, metrics := range want {
		deadline := time.Now().Add(30 * time.Second)
		for {
			_, body := httpGet(t, url)
			missing := ""
			for _, m := range metrics {
				if !strings.Contains(body, m) {
					missing = m
					break
				}
			}
			if missing == "" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s lacks %q:\n%s", url, missing, body)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// browserDashboard is the browser test: headless Chromium logs in to the demo's
// dashboard, sees a line's good count change while the demo runs (server-
// sent events, no reload), opens the batch once the line closed it,
// releases it through the e-signature dialog and sees the signature on the
// page. Screenshots are kept under $SERIALINE_ARTIFACTS (default: the
// test's temporary directory).
func browserDashboard(t *testing.T, d demoRun) {
	chromiumPath(t)
	art := os.Getenv("SERIALINE_ARTIFACTS")
	if art == "" {
		art = t.TempDir()
	} else if err := os.MkdirAll(art, 0o755); err != nil {
		t.Fatal(err)
	}
	b := startBrowser(t)
	base := "http://" + d.central

	b.navigate(base + "/")
	b.waitFor("the login form", `document.querySelector("form.login")`, 10*time.Second)
	b.typeInto(`input[name=user]`, "admin")
	b.typeInto(`input[name=password]`, d.adminPW)
	b.click(`form.login button[type=submit]`)
	b.waitFor("the dashboard", `location.pathname === "/" && document.querySelector("#lines")`, 20*time.Second)
	card := fmt.Sprintf(`article.card[data-edge=%q]`, d.edge)
	good := card + ` [data-f=batch_good]`
	b.waitFor("the line's card with its trend chart", `document.querySelector('`+card+` svg.trend')`, 20*time.Second)
	// The count moves without a reload: the page stays the same document
	// (the marker survives) while the server-sent events change it.
	b.eval(`window.__serialineMarker = 1`, nil)
	b.waitFor("the line's first good units", fmt.Sprintf(`parseInt(document.querySelector(%q).textContent, 10) > 0`, good), 90*time.Second)
	var first int
	if err := b.eval(fmt.Sprintf(`parseInt(document.querySelector(%q).textContent, 10)`, good), &first); err != nil {
		t.Fatal(err)
	}
	b.waitFor("the good count to move live", fmt.Sprintf(`window.__serialineMarker === 1 && parseInt(document.querySelector(%q).textContent, 10) >= %d`, good, first+20), 60*time.Second)
	b.waitFor("the event stream to be live", `document.getElementById("live").className === "dot on"`, 5*time.Second)
	b.screenshot(filepath.Join(art, "dashboard.png"))

	// The line closes its batch; central shows it closed once it synced.
	d.closeBatch(t)
	b.navigate(base + "/batches")
	deadline := time.Now().Add(30 * time.Second)
	for {
		var closed bool
		b.eval(`Array.from(document.querySelectorAll("#batches td.state")).some(function(td){return td.textContent === "closed"})`, &closed)
		if closed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the batch never showed as closed at central:\n%s", b.text("main"))
		}
		time.Sleep(300 * time.Millisecond)
		b.navigate(base + "/batches")
	}
	b.click(`#batches tbody a`)
	b.waitFor("the batch page", `location.pathname.indexOf("/batches/") === 0 && document.getElementById("recon")`, 10*time.Second)
	b.waitFor("the release button", `document.getElementById("release-button")`, 10*time.Second)
	b.click(`#release-button`)
	b.waitFor("the e-signature dialog", `document.getElementById("esign").open`, 5*time.Second)
	if u := b.text(`#esign-what`); !strings.Contains(u, "Release batch") {
		t.Fatalf("dialog says %q", u)
	}
	// A wrong password is refused in the dialog.
	b.typeInto(`#esign-form input[name=password]`, "not-the-password")
	b.typeInto(`#esign-form input[name=reason]`, "batch record reviewed")
	b.click(`#esign-submit`)
	b.waitFor("the refusal", `!document.getElementById("esign-error").hidden && document.getElementById("esign-error").textContent.indexOf("wrong password") >= 0`, 10*time.Second)
	b.typeInto(`#esign-form input[name=password]`, d.adminPW)
	b.typeInto(`#esign-form input[name=reason]`, "batch record reviewed")
	b.click(`#esign-submit`)
	b.waitFor("the released batch", `document.getElementById("batch-state") && document.getElementById("batch-state").textContent === "released"`, 15*time.Second)
	sigs := b.text(`#signatures`)
	for _, want := range []string{"Demo Administrator", "approval", "batch record reviewed", "Demo Supervisor"} {
		if !strings.Contains(sigs, want) {
			t.Fatalf("signatures table lacks %q:\n%s", want, sigs)
		}
	}
	if rel := b.text(`#release`); !strings.Contains(rel, "Released by Demo Administrator") || !strings.Contains(rel, "UTC") {
		t.Fatalf("release panel: %s", rel)
	}
	b.screenshot(filepath.Join(art, "batch-released.png"))

	// The audit trail shows the signed release.
	b.navigate(base + "/audit?action=batch.released")
	b.waitFor("the release in the audit trail", `document.querySelector("#audit tbody").textContent.indexOf("Demo Administrator") >= 0`, 10*time.Second)
	b.screenshot(filepath.Join(art, "audit.png"))
}
