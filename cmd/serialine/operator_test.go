package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"

	"github.com/serialine/serialine/drivers"
	"github.com/serialine/serialine/edge/api"
	edgeapp "github.com/serialine/serialine/edge/app"
	"github.com/serialine/serialine/edge/devices"
	"github.com/serialine/serialine/edge/line"
	"github.com/serialine/serialine/edge/line/linetest"
	"github.com/serialine/serialine/sync/gs1"
	"github.com/serialine/serialine/sync/record"
)

const operatorLine = `line: {id: line-cli}
edge: {id: edge-cli, data_dir: ./data, http: "127.0.0.1:0", verdict_timeout: 30s, reject_deadline: 30s}
central: {broker: "tcp://127.0.0.1:1"}
company: {gs1_prefix: "9506000", sscc_extension: 3}
products:
  - gtin: "09506000134352"
    name: Tablets
    aggregation: manual
    samples: 1
    packaging: {units_per_case: 4, cases_per_pallet: 10}
    serials: {length: 12, source: import, overage_percent: 0}
devices:
  printers: [{name: printer-1, driver: zebra, address: "127.0.0.1:9"}]
  cameras: [{name: camera-1, driver: dataman, address: "127.0.0.1:9"}]
  plcs: [{name: plc-1, driver: modbus, address: "127.0.0.1:9", options: {tags: {reject: {coil: 0}}}}]
equipment:
  items:
    - name: camera-1
      calibration: {interval: 87600h, tolerance: 168h, last_done: "2026-01-05", reference: CAL-2026-0001}
users:
  - {id: op, name: Olivia Operator, role: operator, password_hash: "%s"}
  - {id: sup, name: Sam Supervisor, role: supervisor, password_hash: "%s"}
`

func bhash(t *testing.T, pw string) string {
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// cliEdge is a real edge (app, engine, store, HTTP API on 127.0.0.1:0)
// with in-process fake devices.
type cliEdge struct {
	edge *edgeapp.Edge
	fl   *linetest.Line
	base string
	gate chan struct{} // the camera reports nothing until it is closed
}

func startCLIEdge(t *testing.T) *cliEdge {
	t.Helper()
	devices.Register()
	dir := t.TempDir()
	path := filepath.Join(dir, "line.yaml")
	if err := os.WriteFile(path, []byte(fmt.Sprintf(operatorLine, bhash(t, "op-pw"), bhash(t, "sup-pw"))), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, raw, err := edgeapp.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ce := &cliEdge{gate: make(chan struct{})}
	product := 0
	// The camera: the third product unit reads with grade D (rejected);
	// challenge labels come back as printed (the engine must reject them).
	ce.fl = linetest.New(ctx, func(n int, l drivers.Label) (drivers.Reading, bool) {
		<-ce.gate
		rd, ok := linetest.Good(n, l)
		if sn, _ := l.Data.Get("21"); !strings.HasPrefix(sn, line.ChallengeSerialPrefix) {
			product++
			if product == 3 {
				rd.Grade = 1
			}
		}
		return rd, ok
	})
	devs := ce.fl.Devices()
	ce.edge, err = edgeapp.New(edgeapp.Options{Config: cfg, ConfigBytes: raw, Log: zerolog.Nop(), Devices: &devs})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- ce.edge.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, edgeapp.ErrRestart) {
			t.Errorf("edge: %v", err)
		}
		ce.edge.Close()
	})
	ce.base = "http://" + ce.edge.API.Addr()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(ce.base + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("edge API not up: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return ce
}

type cliRun struct {
	t      *testing.T
	env    map[string]string
	mu     sync.Mutex
	routes map[string]int
}

func (c *cliRun) run(args ...string) (int, string, string) {
	c.t.Helper()
	var out, errb bytes.Buffer
	env := &operatorEnv{
		getenv: func(k string) string { return c.env[k] },
		prompt: func(label string) (string, error) { return "", errors.New("no terminal to prompt on") },
		client: &http.Client{Timeout: 20 * time.Second},
		stdout: &out, stderr: &errb,
		called: func(route string) {
			c.mu.Lock()
			c.routes[route]++
			c.mu.Unlock()
		},
	}
	code := operatorCmd(args, env)
	return code, out.String(), errb.String()
}

// ok runs a command that must succeed and returns its output.
func (c *cliRun) ok(args ...string) string {
	c.t.Helper()
	code, out, errs := c.run(args...)
	if code != 0 {
		c.t.Fatalf("serialine %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// refused runs a command the edge must refuse, naming the reason.
func (c *cliRun) refused(want string, args ...string) {
	c.t.Helper()
	code, out, errs := c.run(args...)
	if code != 1 || !strings.Contains(errs, want) {
		c.t.Fatalf("serialine %s: exit %d, want 1 with %q\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, want, out, errs)
	}
}

// usage runs a command with a usage error (exit 2) naming the problem.
func (c *cliRun) usage(want string, args ...string) {
	c.t.Helper()
	code, out, errs := c.run(args...)
	if code != 2 || !strings.Contains(errs, want) {
		c.t.Fatalf("serialine %s: exit %d, want 2 with %q\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, want, out, errs)
	}
}

func (c *cliRun) json(v any, args ...string) {
	c.t.Helper()
	out := c.ok(append(args, "--json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		c.t.Fatalf("serialine %s --json: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func unitID(l drivers.Label) string {
	gtin, _ := l.Data.Get("01")
	sn, _ := l.Data.Get("21")
	return record.UnitID(gtin, sn)
}

// Every operator action, through the CLI, against a real edge API: logins,
// roles, e-signatures with re-entered passwords, the API's refusals named,
// and every API route reached by a command.
func TestOperatorCLI(t *testing.T) {
	ce := startCLIEdge(t)
	c := &cliRun{t: t, routes: map[string]int{}, env: map[string]string{
		"SERIALINE_EDGE": ce.base, "SERIALINE_USER": "op", "SERIALINE_PASSWORD": "op-pw", "SERIALINE_SIGN_PASSWORD": "sup-pw",
	}}
	dir := t.TempDir()
	supPW := filepath.Join(dir, "sup-password")
	os.WriteFile(supPW, []byte("sup-pw\n"), 0o600)
	asSup := []string{"--user", "sup", "--password-file", supPW}

	if out := c.ok("status"); !strings.Contains(out, "no batch open") || !strings.Contains(out, "serial pool 09506000134352: 0 available") {
		t.Fatalf("status:\n%s", out)
	}
	// No password, no terminal: a clear error, never a default.
	delete(c.env, "SERIALINE_PASSWORD")
	c.refused("password of op: no terminal to prompt on (or set SERIALINE_PASSWORD)", "batch", "hold")
	c.env["SERIALINE_PASSWORD"] = "wrong"
	c.refused("login refused by the edge (401 Unauthorized): unknown user or wrong password", "batch", "hold")
	c.env["SERIALINE_PASSWORD"] = "op-pw"

	// Serials from a Level 4 system: a bad list is refused line by line.
	bad := filepath.Join(dir, "bad.csv")
	os.WriteFile(bad, []byte("serial\n123456789012\n12345\n123456789012\n"), 0o600)
	c.refused("not allowed by the edge (403 Forbidden): user op (operator) may not do this: needs supervisor", "serials", "import", bad, "--gtin", "09506000134352")
	c.refused("line 3: serial \"12345\" has 5 characters", append([]string{"serials", "import", bad, "--gtin", "09506000134352"}, asSup...)...)
	var list []string
	for i := 0; i < 40; i++ {
		list = append(list, fmt.Sprintf("%012d", 500000000000+i*7919))
	}
	good := filepath.Join(dir, "serials.json")
	raw, _ := json.Marshal(map[string]any{"serials": list})
	os.WriteFile(good, raw, 0o600)
	if out := c.ok(append([]string{"serials", "import", good, "--gtin", "09506000134352"}, asSup...)...); !strings.Contains(out, "40 serials imported") {
		t.Fatalf("import: %s", out)
	}

	// Batch lifecycle.
	c.refused("needs supervisor", "batch", "create", "--gtin", "09506000134352", "--lot", "CLI1", "--expiry", "281130", "--planned", "12")
	c.ok(append([]string{"batch", "create", "--gtin", "09506000134352", "--lot", "CLI1", "--expiry", "281130", "--planned", "12"}, asSup...)...)
	c.refused("refused by the edge (409 Conflict): a batch starts after line clearance", "batch", "start")
	opPW := filepath.Join(dir, "op-password")
	os.WriteFile(opPW, []byte("op-pw\n"), 0o600)
	c.refused("not allowed by the edge (403 Forbidden): e-signature refused: op is operator, needs supervisor", "batch", "clearance", "--sign-user", "op", "--sign-password-file", opPW)
	c.refused("e-signature refused: unknown user or wrong password", "batch", "clearance", "--sign-user", "op")
	if out := c.ok("batch", "clearance", "--sign-user", "sup", "--note", "line cleared"); !strings.Contains(out, "signed by sup: cleared") {
		t.Fatalf("clearance: %s", out)
	}
	c.ok("batch", "start")
	if out := c.ok("challenge", "--kind", "wrong_data"); !strings.Contains(out, "challenge started on batch CLI1: wrong_data") {
		t.Fatalf("challenge: %s", out)
	}
	c.refused("a challenge is already running", "challenge")
	c.ok("batch", "hold", "--reason", "break")
	c.ok("batch", "resume", "--reason", "break over")
	close(ce.gate)
	var st line.Status
	deadline := time.Now().Add(10 * time.Second)
	for c.json(&st, "status"); st.BatchState != line.BatchComplete; c.json(&st, "status") {
		if time.Now().After(deadline) {
			t.Fatalf("batch not complete: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st.Good != 12 || st.Rejected != 1 || st.Reasons["grade_below_minimum"] != 1 {
		t.Fatalf("status %+v", st)
	}
	// Product labels in print order (the challenge label is not one).
	var units []drivers.Label
	for _, l := range ce.fl.Labels() {
		if sn, _ := l.Data.Get("21"); !strings.HasPrefix(sn, line.ChallengeSerialPrefix) {
			units = append(units, l)
		}
	}
	if len(units) != 13 {
		t.Fatalf("%d product labels", len(units))
	}
	u := func(i int) string { return unitID(units[i-1]) }
	sn := func(i int) string { s, _ := units[i-1].Data.Get("21"); return s }

	// Manual aggregation, rework, dispositions.
	var opened struct {
		SSCC string `json:"sscc"`
	}
	c.json(&opened, "container", "open", "case")
	caseA := opened.SSCC
	c.ok("container", "pack", caseA, u(1), u(2), u(4))
	c.refused("unit "+u(3)+" is decommissioned (grade_below_minimum) and can never be packed", "container", "pack", caseA, u(3))
	c.refused("holds 3 of 4: a partial close needs a supervisor's signature", "container", "close", caseA)
	c.ok("container", "pack", caseA, u(5))
	c.ok("container", "close", caseA)
	if out := c.ok("container", "show", caseA); !strings.Contains(out, "closed, 4 children") || !strings.Contains(out, u(1)) {
		t.Fatalf("show: %s", out)
	}
	c.usage("--reason is required", "container", "unpack", caseA, u(1))
	c.ok("container", "unpack", caseA, u(1), "--reason", "label damaged", "--sign-user", "sup")
	c.ok("unit", "pull", sn(1), "--as", "sample", "--reason", "QA retain", "--sign-user", "sup")
	c.refused("is sample", "container", "pack", caseA, u(1))
	c.ok("container", "pack", caseA, u(6))
	c.ok("container", "close", caseA)
	c.ok("unit", "dispose", sn(3), "--disposition", "destroyed", "--reason", "bad print", "--sign-user", "sup")
	if out := c.ok("unit", "show", sn(3)); !strings.Contains(out, "decommissioned (grade_below_minimum)") {
		t.Fatalf("unit show: %s", out)
	}
	// Automatic aggregation read of a case: GS1 codes as the case camera sends them.
	var codes []string
	for i := 7; i <= 10; i++ {
		codes = append(codes, strings.ReplaceAll(units[i-1].Data.ElementString(), gs1.GS, "<GS>"))
	}
	if out := c.ok(append([]string{"container", "caseread", "--camera", "case-cam"}, codes...)...); !strings.Contains(out, "packed and closed with 4 units") {
		t.Fatalf("caseread: %s", out)
	}
	c.json(&opened, "container", "open", "case")
	caseC := opened.SSCC
	c.ok("container", "pack", caseC, u(11), u(12), u(13))
	c.usage("--partial needs --reason", "container", "close", caseC, "--partial")
	c.ok("container", "close", caseC, "--partial", "--reason", "end of batch", "--sign-user", "sup")
	c.refused("does not exist on this line", "container", "close", "000000000000000000")

	if out := c.ok("status"); !strings.Contains(out, "cases closed 3") || !strings.Contains(out, "samples 1 of 1") {
		t.Fatalf("status:\n%s", out)
	}
	// This line labels no cases, and every reject reached the PLC.
	c.refused("no printer labels cases on line line-cli", "container", "label", caseA, "--reason", "label damaged", "--sign-user", "sup")
	c.refused("batch CLI1 has no reject that was not delivered", "reject", "removed", sn(3), "--note", "found", "--sign-user", "sup")
	c.refused("batch CLI1 is complete: cannot go to held", "batch", "hold", "--reason", "x")
	c.refused("needs supervisor", "batch", "stop")
	c.ok(append([]string{"batch", "stop", "--reason", "planned quantity reached"}, asSup...)...)
	c.usage("--sign needs --reason", append([]string{"batch", "close", "--sign"}, asSup...)...)
	c.usage("--planned \"many\": want a positive number", "batch", "create", "--gtin", "1", "--lot", "x", "--expiry", "281130", "--planned", "many")
	out := c.ok(append([]string{"batch", "close"}, asSup...)...)
	if !strings.Contains(out, "commissioned 13") || !strings.Contains(out, "good 11 + rejected 1 + samples 1") || !strings.Contains(out, "aggregated 11 + loose 0") {
		t.Fatalf("close: %s", out)
	}
	if out := c.ok(append([]string{"config", "reload"}, asSup...)...); !strings.Contains(out, "unchanged") {
		t.Fatalf("reload: %s", out)
	}
	if out := c.ok("status"); !strings.Contains(out, "no batch open") {
		t.Fatalf("status after close:\n%s", out)
	}
	// The challenge ran and passed (the known-bad unit was rejected).
	recs, err := ce.edge.Store.Records(1, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	challenges := 0
	for _, r := range recs {
		if r.Kind == record.KindChallenge {
			var ch record.Challenge
			json.Unmarshal(r.Body, &ch)
			if !ch.Passed || ch.Trigger != "manual" {
				t.Fatalf("challenge %+v", ch)
			}
			challenges++
		}
	}
	if challenges != 1 {
		t.Fatalf("%d challenge records", challenges)
	}
	// Equipment: the registry, a manual downtime with its signed
	// remediation, a calibration with its certificate, and an override
	// refused because nothing is overdue.
	if out := c.ok("equipment", "list"); !strings.Contains(out, "camera-1") || !strings.Contains(out, "printer-1") || !strings.Contains(out, "reportable after 4h0m0s") {
		t.Fatalf("equipment list:\n%s", out)
	}
	var dt struct{ Downtime string }
	c.json(&dt, "downtime", "start", "printer-1", "--fault", "jam", "--detail", "label stuck at the peeler")
	if dt.Downtime == "" {
		t.Fatal("downtime start gave no id")
	}
	if out := c.ok("equipment", "list"); !strings.Contains(out, "open downtime "+dt.Downtime+": printer-1 jam") {
		t.Fatalf("equipment list with the downtime:\n%s", out)
	}
	c.usage("--fault is required", "downtime", "start", "printer-1")
	c.ok("downtime", "end", dt.Downtime)
	c.usage("--root-cause is required", "downtime", "remediate", dt.Downtime, "--remediation", "x")
	if out := c.ok("downtime", "remediate", dt.Downtime, "--root-cause", "worn peeler blade", "--remediation", "blade replaced", "--sign-user", "sup"); !strings.Contains(out, "signed by sup") {
		t.Fatalf("remediate: %s", out)
	}
	cert := filepath.Join(t.TempDir(), "CAL-2026-0042.txt")
	if err := os.WriteFile(cert, []byte("verifier calibration certificate: conformance card grade A\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.usage("--measure \"grade\"", "calibration", "record", "camera-1", "--result", "pass", "--measure", "grade")
	out = c.ok("calibration", "record", "camera-1", "--result", "pass", "--certificate", cert, "--measure", "grade=A:pass", "--measure", "aperture=10mil", "--sign-user", "sup")
	if !strings.Contains(out, "calibration of camera-1 recorded: pass") || !strings.Contains(out, "certificate SHA-256 ") {
		t.Fatalf("calibration record: %s", out)
	}
	var ev struct {
		Items []struct {
			Equipment   string
			Calibration *struct {
				State   string
				LastRef string `json:"last_ref"`
			} `json:"calibration_state"`
		}
		Recent []struct {
			ID         string
			Remediated bool
			RootCause  string `json:"root_cause"`
		} `json:"recent_downtime"`
	}
	c.json(&ev, "equipment", "list")
	calibrated, remediated := false, false
	for _, it := range ev.Items {
		if it.Equipment == "camera-1" && it.Calibration != nil && it.Calibration.State == "ok" && len(it.Calibration.LastRef) == 64 {
			calibrated = true
		}
	}
	for _, d := range ev.Recent {
		if d.ID == dt.Downtime && d.Remediated && d.RootCause == "worn peeler blade" {
			remediated = true
		}
	}
	if !calibrated || !remediated {
		t.Fatalf("after calibration and remediation: %+v", ev)
	}
	c.usage("--reason is required", "calibration", "override", "--batch", "L1")
	c.refused("", "calibration", "override", "--batch", "NOPE", "--reason", "urgent order")

	// Every API route has a command that calls it.
	for _, r := range api.Routes() {
		if r != "GET /healthz" && c.routes[r] == 0 {
			t.Errorf("API route %s has no CLI command (commands called %v)", r, sortedRoutes(c.routes))
		}
	}
}

func sortedRoutes(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Every operator command is reachable from the command line: `serialine
// reject removed` was once refused as an unknown command because the
// dispatcher kept its own list.
func TestOperatorCommandsDispatched(t *testing.T) {
	for name := range operations {
		first, _, _ := strings.Cut(name, " ")
		var out, errb bytes.Buffer
		run([]string{first, "-h"}, &out, &errb)
		if strings.Contains(errb.String(), "unknown command") {
			t.Errorf("serialine %s: %s", first, errb.String())
		}
	}
	var out, errb bytes.Buffer
	if code := run([]string{"calibrate"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), `unknown command "calibrate"`) {
		t.Errorf("unknown word: exit %d %q", code, errb.String())
	}
}
