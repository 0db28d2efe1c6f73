package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"

	"github.com/serialine/serialine/cmd/internal/linesim"
	"github.com/serialine/serialine/edge/app"
	"github.com/serialine/serialine/edge/config"
	"github.com/serialine/serialine/edge/devices"
	"github.com/serialine/serialine/edge/line"
	"github.com/serialine/serialine/edge/store"
)

const benchGTIN = "09506000134352"

// benchFixture returns a data directory whose store holds n used serials
// (and 200,000 available), built once and cached under the OS temp dir.
func benchFixture(b *testing.B, n int) string {
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("serialine-bench-edge-%d-v2", n))
	if _, err := os.Stat(filepath.Join(dir, "ready")); err == nil {
		return dir
	}
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	db, err := app.OpenStore(&config.Line{Edge: config.Edge{ID: "edge-bench", DataDir: dir}}, store.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	err = line.SeedHistory(db, benchGTIN, n, 200000, 1, nil)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ready"), nil, 0o600); err != nil {
		b.Fatal(err)
	}
	fi, _ := os.Stat(filepath.Join(dir, "edge.db"))
	b.Logf("built a store with %d used serials in %s (%d MB), cached in %s", n, time.Since(start).Round(time.Second), fi.Size()>>20, dir)
	return dir
}

const benchLine = `line: {id: line-bench}
edge: {id: edge-bench, data_dir: "%s", http: "127.0.0.1:0", verdict_timeout: 2s}
central: {broker: "tcp://127.0.0.1:1"}
company: {gs1_prefix: "9506000", sscc_extension: 3}
products:
  - gtin: "%s"
    name: Tablets
    packaging: {units_per_case: 10, cases_per_pallet: 20}
devices:
  printers: [{name: printer-1, driver: zebra, address: "%s"}]
  cameras: [{name: camera-1, driver: dataman, address: "%s"}]
  plcs: [{name: plc-1, driver: modbus, address: "%s", options: {tags: {reject: {coil: 0}}}}]
users:
  - {id: sup, name: Sam Supervisor, role: supervisor, password_hash: "%s"}
`

// edgeProc is a running serialine-edge process.
type edgeProc struct {
	cmd  *exec.Cmd
	api  string
	logs *bytes.Buffer
}

// startEdgeProc starts the binary and waits for its API to answer.
func startEdgeProc(tb testing.TB, bin, cfgPath string, timeout time.Duration) (*edgeProc, time.Duration) {
	tb.Helper()
	cmd := exec.Command(bin, "--config", cfgPath, "--log-json", "--log-level", "info")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		tb.Fatal(err)
	}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	p := &edgeProc{cmd: cmd, logs: &bytes.Buffer{}}
	apiCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		sent := false
		for sc.Scan() {
			line := sc.Bytes()
			if p.logs.Len() < 1<<20 {
				p.logs.Write(line)
				p.logs.WriteByte('\n')
			}
			if sent {
				continue
			}
			var m struct {
				Msg string `json:"message"`
				API string `json:"api"`
			}
			if json.Unmarshal(line, &m) == nil && m.Msg == "edge running" && m.API != "" {
				apiCh <- m.API
				sent = true
			}
		}
	}()
	select {
	case p.api = <-apiCh:
	case <-time.After(timeout):
		cmd.Process.Kill()
		cmd.Wait()
		tb.Fatalf("edge did not start within %s:\n%s", timeout, p.logs)
	}
	deadline := time.Now().Add(timeout)
	for {
		resp, err := http.Get(p.api + "/api/v1/status")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("edge API %s not answering: %v", p.api, err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return p, time.Since(t0)
}

// rss returns VmRSS and VmHWM of the process in bytes.
func (p *edgeProc) rss(tb testing.TB) (rss, hwm int64) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, l := range strings.Split(string(raw), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = v << 10
		case "VmHWM:":
			hwm = v << 10
		}
	}
	return rss, hwm
}

func (p *edgeProc) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

// post calls the edge API as the supervisor; body may carry "signature".
func (p *edgeProc) post(tb testing.TB, path string, body any) (int, map[string]any) {
	tb.Helper()
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", p.api+path, bytes.NewReader(raw))
	req.SetBasicAuth("sup", "sup-pw")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	json.Unmarshal(b, &out)
	return resp.StatusCode, out
}

func (p *edgeProc) status(tb testing.TB) line.Status {
	tb.Helper()
	resp, err := http.Get(p.api + "/api/v1/status")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var s line.Status
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		tb.Fatal(err)
	}
	return s
}

var benchSig = map[string]string{"user": "sup", "password": "sup-pw", "meaning": "approval", "reason": "benchmark"}

// closeOpenBatch stops and closes whatever batch is open (signed).
func (p *edgeProc) closeOpenBatch(tb testing.TB) {
	tb.Helper()
	s := p.status(tb)
	if s.Batch == "" {
		return
	}
	p.post(tb, "/api/v1/batch/stop", map[string]string{"reason": "benchmark done"})
	deadline := time.Now().Add(20 * time.Second)
	for p.status(tb).InFlight > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if code, out := p.post(tb, "/api/v1/batch/close", map[string]any{"loose_reason": "benchmark", "signature": benchSig}); code != 200 {
		tb.Fatalf("close batch %s: %d %v", s.Batch, code, out)
	}
}

// BenchmarkEdge10MSerials starts the real serialine-edge binary on a store
// holding 10 million used serials (SERIALINE_BENCH_SERIALS overrides the
// count) and reports its start-up time (exec to API answering), its RSS
// idle, and its RSS and peak RSS while a batch runs against the
// simulators on real sockets (serial generation checks every new serial
// against the 10 million).
func BenchmarkEdge10MSerials(b *testing.B) {
	n := 10_000_000
	if v := os.Getenv("SERIALINE_BENCH_SERIALS"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	devices.Register()
	fixture := benchFixture(b, n)
	bin := buildEdge(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	simCfg := &config.Line{Devices: config.Devices{
		Printers: []config.Device{{Name: "printer-1", Driver: "zebra"}},
		Cameras:  []config.Device{{Name: "camera-1", Driver: "dataman"}},
		PLCs:     []config.Device{{Name: "plc-1", Driver: "modbus"}},
	}}
	sims, err := linesim.Start(ctx, simCfg, linesim.Options{Rate: 400, Log: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	defer sims.Close()
	h, _ := bcrypt.GenerateFromPassword([]byte("sup-pw"), bcrypt.MinCost)
	cfgPath := filepath.Join(b.TempDir(), "line.yaml")
	cfgText := fmt.Sprintf(benchLine, fixture, benchGTIN, sims.Addr("printer-1"), sims.Addr("camera-1"), sims.Addr("plc-1"), h)
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		b.Fatal(err)
	}
	var startup time.Duration
	var idle, running, peak int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p, took := startEdgeProc(b, bin, cfgPath, 60*time.Second)
		if s := p.status(b); s.Batch != "" {
			// Left open by an interrupted run: close it and start afresh.
			p.closeOpenBatch(b)
			p.stop()
			p, took = startEdgeProc(b, bin, cfgPath, 60*time.Second)
		}
		startup += took
		r, _ := p.rss(b)
		idle += r
		lot := fmt.Sprintf("RSS%d", time.Now().UnixNano()%1e12)
		if code, out := p.post(b, "/api/v1/batches", map[string]any{"gtin": benchGTIN, "lot": lot, "expiry": "281130", "planned": 5000}); code != 201 {
			b.Fatalf("create batch: %d %v", code, out)
		}
		if code, out := p.post(b, "/api/v1/batch/clearance", map[string]any{"signature": benchSig}); code != 200 {
			b.Fatalf("clearance: %d %v", code, out)
		}
		if code, out := p.post(b, "/api/v1/batch/start", nil); code != 200 {
			b.Fatalf("start: %d %v", code, out)
		}
		deadline := time.Now().Add(30 * time.Second)
		for p.status(b).Good < 1000 {
			if time.Now().After(deadline) {
				b.Fatalf("batch not producing: %+v\n%s", p.status(b), p.logs)
			}
			time.Sleep(20 * time.Millisecond)
		}
		r, hw := p.rss(b)
		running += r
		peak += hw
		p.closeOpenBatch(b)
		p.stop()
	}
	b.StopTimer()
	f := float64(b.N)
	b.ReportMetric(float64(startup.Milliseconds())/f, "startup_ms")
	b.ReportMetric(float64(idle>>20)/f, "rss_idle_MB")
	b.ReportMetric(float64(running>>20)/f, "rss_MB")
	b.ReportMetric(float64(peak>>20)/f, "rss_peak_MB")
	b.ReportMetric(float64(n), "serials")
}
