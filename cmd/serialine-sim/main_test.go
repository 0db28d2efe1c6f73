package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/serialine/serialine/drivers"
	"github.com/serialine/serialine/drivers/camera"
	"github.com/serialine/serialine/drivers/modbus"
	"github.com/serialine/serialine/drivers/videojet"
	"github.com/serialine/serialine/drivers/zebra"
	"github.com/serialine/serialine/sync/gs1"
)

// simConfig is the shipped demo line with every device on a free port.
func simConfig(t *testing.T) string {
	t.Helper()
	return simConfigOf(t, "demo-line.yaml")
}

// simConfigOf is a shipped line config with every device on a free port.
func simConfigOf(t *testing.T, name string) string {
	t.Helper()
	raw, err := os.ReadFile("../../configs/" + name)
	if err != nil {
		t.Fatal(err)
	}
	cfg := regexp.MustCompile(`address: 127\.0\.0\.1:\d+`).ReplaceAllString(string(raw), "address: 127.0.0.1:0")
	p := filepath.Join(t.TempDir(), "line.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

type simProc struct {
	addrs   map[string]string // device -> address
	control string
	cancel  context.CancelFunc
	done    chan int
}

// startSim runs serialine-sim's run function on the demo line and waits
// for its banner.
func startSim(t *testing.T, args ...string) *simProc {
	t.Helper()
	return startSimOn(t, simConfig(t), args...)
}

func startSimOn(t *testing.T, cfg string, args ...string) *simProc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	p := &simProc{addrs: map[string]string{}, cancel: cancel, done: make(chan int, 1)}
	var stderr bytes.Buffer
	go func() {
		p.done <- run(ctx, append([]string{"--config", cfg, "--log-level", "error"}, args...), pw, &stderr)
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	re := regexp.MustCompile(`^simulating (\S+)\s+(\S+)\s+\S+\s+tcp://(\S+)$`)
	for sc.Scan() {
		line := sc.Text()
		if m := re.FindStringSubmatch(line); m != nil {
			p.addrs[m[2]] = m[3]
		}
		if a, ok := strings.CutPrefix(line, "control API "); ok {
			p.control = a
			break
		}
	}
	if p.control == "" {
		cancel()
		t.Fatalf("no banner; exit %d: %s", <-p.done, stderr.String())
	}
	go io.Copy(io.Discard, pr)
	t.Cleanup(func() {
		cancel()
		if code := <-p.done; code != 0 {
			t.Errorf("serialine-sim exited %d: %s", code, stderr.String())
		}
	})
	return p
}

func (p *simProc) post(t *testing.T, path, body string) int {
	t.Helper()
	resp, err := http.Post(p.control+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func unit(serial string) drivers.Label {
	return drivers.Label{ID: serial, Level: drivers.LevelUnit,
		Data: gs1.Elements{{AI: "01", Value: "09506000134352"}, {AI: "17", Value: "281130"}, {AI: "10", Value: "L1"}, {AI: "21", Value: serial}}}
}

// readAfterPrint prints one label and returns what the camera reports.
func readAfterPrint(t *testing.T, z *zebra.Zebra, c *camera.Camera, serial string) (drivers.Reading, error) {
	t.Helper()
	if err := z.Print(context.Background(), unit(serial)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.Read(ctx)
}

// Flags set the faults from the start, the control API changes them; the
// real drivers see every one over the wire.
func TestFaultInjection(t *testing.T) {
	p := startSim(t, "--printer-fault", "head_open", "--no-read-rate", "1", "--bad-grade-rate", "0", "--plc-delay", "400ms", "--rate", "0")
	if len(p.addrs) != 4 || p.addrs["case-printer"] == "" { // the demo line: unit printer, case printer, camera, PLC
		t.Fatalf("devices %v", p.addrs)
	}
	ctx := context.Background()
	z, _ := zebra.New("printer-1", p.addrs["printer-1"], 200*time.Millisecond, zebra.Options{}, zerolog.Nop())
	defer z.Close()
	c, _ := camera.New("camera-1", p.addrs["camera-1"], time.Second, camera.Options{}, zerolog.Nop())
	defer c.Close()
	tags := map[string]modbus.Tag{"reject": {Coil: u16(0)}, "line_running": {DiscreteInput: u16(0)}}
	plc, _ := modbus.New("plc-1", p.addrs["plc-1"], 150*time.Millisecond, modbus.Options{UnitID: 1, Tags: tags}, zerolog.Nop())
	defer plc.Close()

	// --printer-fault head_open: ~HS is silent, ~HQES says head open.
	if h, err := z.Status(ctx); h.Fault != "head_open" || !h.Connected || !errors.Is(err, drivers.ErrDeviceFault) {
		t.Fatalf("printer: %+v %v", h, err)
	}
	// --plc-delay 400ms: the PLC answers too late for a 150ms timeout.
	if _, err := plc.ReadBool(ctx, "line_running"); !errors.Is(err, drivers.ErrNotConnected) {
		t.Fatalf("slow PLC: %v", err)
	}
	if code := p.post(t, "/printer/printer-1/fault", `{"fault":"none"}`); code != 200 {
		t.Fatalf("fault: %d", code)
	}
	if h, err := z.Status(ctx); err != nil || !h.OK() {
		t.Fatalf("printer after clearing: %+v %v", h, err)
	}
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	// --no-read-rate 1: every label passing the camera is a no-read. (The
	// first label may pass before the camera's client is registered: retry.)
	var r drivers.Reading
	var err error
	for i := 0; i < 50; i++ {
		if err := z.Print(ctx, unit("W1")); err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		r, err = c.Read(rctx)
		cancel()
		if err == nil {
			break
		}
	}
	if err != nil || !r.NoRead {
		t.Fatalf("no-read rate 1: %+v %v", r, err)
	}
	// Rates, forced outcomes, garbage through the API.
	if code := p.post(t, "/camera/camera-1/rates", `{"garbage":1}`); code != 200 {
		t.Fatalf("rates: %d", code)
	}
	if _, err := readAfterPrint(t, z, c, "G1"); !errors.Is(err, drivers.ErrMalformed) {
		t.Fatalf("garbage rate 1: %v", err)
	}
	if code := p.post(t, "/camera/camera-1/rates", `{"duplicate":1}`); code != 200 {
		t.Fatalf("rates: %d", code)
	}
	if r, err := readAfterPrint(t, z, c, "D2"); err != nil || !strings.HasSuffix(r.Data, "21G1") {
		t.Fatalf("duplicate rate 1: %+v %v (want the previous unit G1)", r, err)
	}
	p.post(t, "/camera/camera-1/next", `{"outcome":"bad_grade"}`)
	if r, err := readAfterPrint(t, z, c, "B3"); err != nil || r.Grade != 1 || !strings.HasSuffix(r.Data, "21B3") {
		t.Fatalf("forced bad grade: %+v %v", r, err)
	}
	p.post(t, "/camera/camera-1/rates", `{}`)
	if r, err := readAfterPrint(t, z, c, "OK4"); err != nil || r.Grade != 4 || !strings.HasSuffix(r.Data, "21OK4") {
		t.Fatalf("good read: %+v %v", r, err)
	}
	// Slow responses: the printer's status answers come late.
	p.post(t, "/printer/printer-1/slow", `{"delay":"500ms"}`)
	if h, err := z.Status(ctx); h.Fault != "no_answer" || !h.Connected || !errors.Is(err, drivers.ErrTimeout) {
		t.Fatalf("slow printer: %+v %v", h, err)
	}
	p.post(t, "/printer/printer-1/slow", `{"delay":"0s"}`)
	// PLC: no delay, then a disconnect the driver recovers from.
	if code := p.post(t, "/plc/plc-1/delay", `{"delay":"0s"}`); code != 200 {
		t.Fatalf("delay: %d", code)
	}
	if v, err := plc.ReadBool(ctx, "line_running"); err != nil || !v {
		t.Fatalf("PLC: %v %v", v, err)
	}
	if code := p.post(t, "/plc/plc-1/disconnect", `{}`); code != 200 {
		t.Fatalf("disconnect: %d", code)
	}
	deadline := time.Now().Add(5 * time.Second)
	for plc.WriteBool(ctx, "reject", true) != nil {
		if time.Now().After(deadline) {
			t.Fatal("PLC did not come back after the disconnect")
		}
	}
	// Status reflects what happened.
	resp, err := http.Get(p.control + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st map[string]map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if st["printer/printer-1"]["fault"] != "none" || st["plc/plc-1"]["rejects"].(float64) < 1 || st["camera/camera-1"]["seen"].(float64) < 5 {
		t.Fatalf("status %v", st)
	}
	if o := st["camera/camera-1"]["outcomes"].(map[string]any); o["garbage"].(float64) != 1 || o["bad_grade"].(float64) != 1 {
		t.Fatalf("outcomes %v", o)
	}
	// Bad requests are refused with the reason.
	for path, body := range map[string]string{
		"/printer/printer-1/fault": `{"fault":"smoke"}`,
		"/printer/nope/fault":      `{"fault":"none"}`,
		"/printer/printer-1/slow":  `{"delay":"-1s"}`,
		"/camera/camera-1/rates":   `{"no_read":0.8,"bad_grade":0.5}`,
		"/camera/camera-1/next":    `{"outcome":"maybe"}`,
		"/camera/camera-1/delay":   `{"delay":"soon"}`,
		"/camera/camera-1/silent":  `{"silent":"yes"}`,
		"/plc/plc-1/delay":         `{"delay":"soon","x":1}`,
		"/plc/nope/disconnect":     `{}`,
	} {
		if code := p.post(t, path, body); code == 200 {
			t.Errorf("%s %s accepted", path, body)
		}
	}
}

// A PLC that drops its clients every few hundred milliseconds: the driver
// reconnects each time.
func TestPLCDisconnectFlag(t *testing.T) {
	p := startSim(t, "--plc-disconnect-every", "100ms")
	tags := map[string]modbus.Tag{"reject": {Coil: u16(0)}, "line_running": {DiscreteInput: u16(0)}}
	plc, _ := modbus.New("plc-1", p.addrs["plc-1"], 500*time.Millisecond, modbus.Options{UnitID: 1, Tags: tags}, zerolog.Nop())
	defer plc.Close()
	ctx := context.Background()
	failures, ok := 0, 0
	deadline := time.Now().Add(10 * time.Second)
	for (failures == 0 || ok < 3) && time.Now().Before(deadline) {
		if _, err := plc.ReadBool(ctx, "line_running"); err != nil {
			if !errors.Is(err, drivers.ErrNotConnected) {
				t.Fatalf("%v", err)
			}
			failures++
		} else if failures > 0 {
			ok++
		}
		time.Sleep(20 * time.Millisecond) // pace the polls like the engine does
	}
	if failures == 0 || ok < 3 {
		t.Fatalf("%d failures, %d good reads after one: the disconnects are not injected or not recovered", failures, ok)
	}
}

func TestFlagErrors(t *testing.T) {
	cfg := simConfig(t)
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "--config is required"},
		{[]string{"--config", cfg, "--printer-fault", "smoke"}, 2, `printer fault "smoke"`},
		{[]string{"--config", cfg, "--no-read-rate", "1.5"}, 2, "--no-read-rate 1.5: want 0..1"},
		{[]string{"--config", cfg, "--no-read-rate", "0.6", "--garbage-rate", "0.6"}, 2, "add up to more than 1"},
		{[]string{"--config", filepath.Join(t.TempDir(), "none.yaml")}, 1, "none.yaml"},
		{[]string{"--bogus"}, 2, "flag provided but not defined"},
		{[]string{"--config", cfg, "help"}, 2, `unexpected argument "help"`},
	} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), c.args, &out, &errOut); code != c.code || !strings.Contains(errOut.String(), c.want) {
			t.Errorf("%v: exit %d %q, want %d %q", c.args, code, errOut.String(), c.code, c.want)
		}
	}
}

// The Videojet line: the same printer endpoints inject the faults the
// Videojet simulator knows, the real driver sees each over the text
// protocol, /status shows the printer's state; a Zebra-only fault is refused.
func TestVideojetFaultInjection(t *testing.T) {
	p := startSimOn(t, simConfigOf(t, "videojet-line.yaml"), "--printer-fault", "offline", "--rate", "0")
	ctx := context.Background()
	v, err := videojet.New("printer-1", p.addrs["printer-1"], 300*time.Millisecond, videojet.Options{}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if err := v.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	status := func() map[string]any {
		t.Helper()
		resp, err := http.Get(p.control + "/status")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var st map[string]map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			t.Fatal(err)
		}
		return st["printer/printer-1"]
	}
	// --printer-fault offline: the printer was taken offline.
	if h, err := v.Status(ctx); h.Fault != "offline" || !errors.Is(err, drivers.ErrDeviceFault) {
		t.Fatalf("offline from the start: %+v %v", h, err)
	}
	if st := status(); st["kind"] != "videojet" || st["fault"] != "offline" || st["state"] != "offline" {
		t.Fatalf("status %v", st)
	}
	for _, c := range []struct{ fault, health, state string }{
		{"fault", "fault", "offline"},
		{"ribbon_out", "fault", "offline"},
		{"none", "", "running"},
		{"warning", "", "running"},
	} {
		if code := p.post(t, "/printer/printer-1/fault", `{"fault":"`+c.fault+`"}`); code != 200 {
			t.Fatalf("fault %s: %d", c.fault, code)
		}
		h, err := v.Status(ctx)
		if h.Fault != c.health || (c.health == "") != (err == nil) {
			t.Fatalf("fault %s: health %+v %v, want fault %q", c.fault, h, err, c.health)
		}
		if st := status(); st["fault"] != c.fault || st["state"] != c.state {
			t.Fatalf("fault %s: status %v", c.fault, st)
		}
	}
	// No answer, garbage, slow answers: the driver times out or refuses the bytes.
	p.post(t, "/printer/printer-1/fault", `{"fault":"no_answer"}`)
	if _, err := v.Status(ctx); !errors.Is(err, drivers.ErrTimeout) && !errors.Is(err, drivers.ErrNotConnected) {
		t.Fatalf("no answer: %v", err)
	}
	p.post(t, "/printer/printer-1/fault", `{"fault":"none"}`)
	if code := p.post(t, "/printer/printer-1/slow", `{"delay":"600ms"}`); code != 200 {
		t.Fatalf("slow: %d", code)
	}
	if err := v.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Status(ctx); !errors.Is(err, drivers.ErrTimeout) && !errors.Is(err, drivers.ErrNotConnected) {
		t.Fatalf("slow printer: %v", err)
	}
	p.post(t, "/printer/printer-1/slow", `{"delay":"0s"}`)
	if err := v.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if h, err := v.Status(ctx); err != nil || !h.OK() {
		t.Fatalf("after clearing: %+v %v", h, err)
	}
	for path, body := range map[string]string{
		"/printer/printer-1/fault": `{"fault":"paper_out"}`, // a Zebra fault
		"/printer/nope/fault":      `{"fault":"none"}`,
		"/printer/printer-1/slow":  `{"delay":"-1s"}`,
	} {
		if code := p.post(t, path, body); code == 200 {
			t.Errorf("%s %s accepted", path, body)
		}
	}
	// A Zebra-only fault from the start is refused for a Videojet line.
	var out, errOut bytes.Buffer
	if code := run(ctx, []string{"--config", simConfigOf(t, "videojet-line.yaml"), "--printer-fault", "paper_out"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), `printer printer-1 (videojet): printer fault "paper_out"`) {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
}

func u16(v uint16) *uint16 { return &v }
