package tags_test

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/ua"
	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"

	"github.com/serialine/serialine/drivers/camera/camerasim"
	drvopcua "github.com/serialine/serialine/drivers/opcua"
	"github.com/serialine/serialine/drivers/opcua/opcuasim"
	"github.com/serialine/serialine/drivers/zebra/zebrasim"
	"github.com/serialine/serialine/edge/config"
	"github.com/serialine/serialine/edge/devices"
	"github.com/serialine/serialine/edge/line"
	"github.com/serialine/serialine/edge/store"
	"github.com/serialine/serialine/edge/tags"
	"github.com/serialine/serialine/sync/record"
)

const lineYAML = `
line: {id: line-1}
edge: {id: edge-tags-test, verdict_timeout: 2s}
central: {broker: "tcp://127.0.0.1:1"}
company: {gs1_prefix: "9506000", sscc_extension: 3, sscc_range: {first: 1, last: 99999}}
products:
  - gtin: "09506000134352"
    name: Tablets
    packaging: {units_per_case: 5, cases_per_pallet: 4}
batch: {gtin: "09506000134352", lot: TAGS1, expiry: "281130", planned: 100000}
devices:
  printers: [{name: printer-1, driver: zebra, address: "%s"}]
  cameras: [{name: camera-1, driver: dataman, address: "%s"}]
  plcs:
    - name: plc-1
      driver: opcua
      address: "%s"
      options:
        tags:
          reject: {node: "nsu=urn:serialine:sim:plc;s=PLC.Reject"}
          line_running: {node: "nsu=urn:serialine:sim:plc;s=PLC.LineRunning"}
          good_count: {node: "nsu=urn:serialine:sim:plc;s=PLC.GoodCount"}
          reject_count: {node: "nsu=urn:serialine:sim:plc;s=PLC.RejectCount"}
opcua:
  listen: 127.0.0.1:0
  security: [None, Basic256Sha256-Sign, Basic256Sha256-SignAndEncrypt]
users:
  - {id: op1, name: Olga Operator, role: operator, password_hash: "%s"}
`

// runningLine is a real edge engine with its tag server, on simulated
// devices: a Zebra printer, a camera that sees every printed label, and an
// OPC UA PLC reached through the OPC UA PLC driver.
type runningLine struct {
	cfg  *config.Line
	db   *store.DB
	eng  *line.Engine
	tags *devices.TagServer
	plc  *opcuasim.Sim
}

func startLine(t *testing.T, opPassword string) *runningLine {
	t.Helper()
	devices.Register()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	printer := zebrasim.New(zebrasim.Options{Name: "printer-1", LabelsPerSecond: 50}, zerolog.Nop())
	pa, err := printer.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// Some bad grades: rejects pulse the OPC UA PLC's gate and update its counters.
	camera := camerasim.New(camerasim.Options{Name: "camera-1", Seed: 7, Rates: camerasim.Rates{BadGrade: 0.05}}, zerolog.Nop())
	ca, err := camera.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve := func(f func()) {
		wg.Add(1)
		go func() { defer wg.Done(); f() }()
	}
	serve(func() { printer.Serve(ctx) })
	serve(func() { camera.Serve(ctx) })
	serve(func() { // the conveyor
		for {
			select {
			case <-ctx.Done():
				return
			case p := <-printer.Printed():
				if p.Symbol == "datamatrix" {
					camera.See(p.Data)
				}
			}
		}
	})
	hash, err := bcrypt.GenerateFromPassword([]byte(opPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	// The PLC simulator serves the tags of the driver's options.
	plcOpts := &drvopcua.Options{Tags: map[string]drvopcua.Tag{
		"reject": {Node: "nsu=urn:serialine:sim:plc;s=PLC.Reject"}, "line_running": {Node: "nsu=urn:serialine:sim:plc;s=PLC.LineRunning"},
		"good_count": {Node: "nsu=urn:serialine:sim:plc;s=PLC.GoodCount"}, "reject_count": {Node: "nsu=urn:serialine:sim:plc;s=PLC.RejectCount"}}}
	so, err := opcuasim.FromDriver("plc-1", plcOpts)
	if err != nil {
		t.Fatal(err)
	}
	plc, err := opcuasim.New(so, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	plcAddr, err := plc.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(plc.Stop)

	cfg, err := config.Parse("line.yaml", []byte(fmt.Sprintf(lineYAML, pa, ca, plcAddr, hash)))
	if err != nil {
		t.Fatal(err)
	}
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	db, err := store.Open(filepath.Join(t.TempDir(), "edge.db"), store.Options{EdgeID: cfg.Edge.ID, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	devs, err := devices.Build(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	eng, err := line.New(line.Options{Config: cfg, Store: db, Devices: devs, Log: zerolog.Nop(), StatusInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	engDone := make(chan error, 1)
	go func() { engDone <- eng.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-engDone; err != nil {
			t.Errorf("engine: %v", err)
		}
		db.Close()
	})
	select {
	case <-eng.Ready():
	case <-time.After(20 * time.Second):
		t.Fatal("engine not ready")
	}
	if err := eng.StartAutoBatch(ctx); err != nil {
		t.Fatal(err)
	}
	ts, err := devices.NewTagServer(cfg, eng, zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.ErrorLevel))
	if err != nil {
		t.Fatal(err)
	}
	serve(func() { ts.Run(ctx) })
	// The library binds asynchronously: wait until the port answers.
	host := strings.TrimPrefix(ts.Endpoint(), "opc.tcp://")
	for deadline := time.Now().Add(20 * time.Second); ; {
		c, err := net.DialTimeout("tcp", host, 200*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tag server not listening: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return &runningLine{cfg: cfg, db: db, eng: eng, tags: ts, plc: plc}
}

// nodeDir is the npm folder with node-opcua-client; tests skip when node
// or the modules are missing unless SERIALINE_REQUIRE_TOOLS=1.
func nodeDir(t *testing.T) (string, string) {
	t.Helper()
	dir, _ := filepath.Abs("testdata/node")
	bin, err := exec.LookPath("node")
	why := ""
	switch {
	case err != nil:
		why = "node is not installed"
	default:
		if _, err := os.Stat(filepath.Join(dir, "node_modules", "node-opcua-client")); err != nil {
			why = "npm modules missing: run npm ci in " + dir
		}
	}
	if why != "" {
		if os.Getenv("SERIALINE_REQUIRE_TOOLS") == "1" {
			t.Fatalf("node-opcua-client required (SERIALINE_REQUIRE_TOOLS=1): %s", why)
		}
		t.Skip(why)
	}
	return bin, dir
}

type hmiReport struct {
	Policy, Mode       string
	Full               bool
	Error              string
	AnonymousError     string `json:"anonymous_error"`
	WrongPasswordError string `json:"wrong_password_error"`
	Browsed            []string
	Values             map[string]struct {
		Status, Type string
		Value        any
	}
	StateDataType     string `json:"state_datatype"`
	Counts            []float64
	Writes            map[string]string
	StateAfterHold    float64 `json:"state_after_hold"`
	StateAfterUnhold  float64 `json:"state_after_unhold"`
	CntrlCmdAfterHold float64 `json:"cntrlcmd_after_hold"`
	DisplayName       string  `json:"display_name"`
}

// The acceptance: a third-party HMI (node-opcua-client) browses
// and reads the edge's PackML tags and subscribes to the processed count
// while the simulated line runs; it writes Command.CntrlCmd, refused
// without operator credentials, accepted and recorded with them. Go
// clients hammer reads and subscriptions at the same time (-race).
func TestNodeOPCUAClientOnRunningLine(t *testing.T) {
	bin, dir := nodeDir(t)
	const pw = "op1-secret-pass"
	l := startLine(t, pw)
	endpoint := l.tags.Endpoint()

	// Hammer: Go clients read every tag and subscribe while the node
	// client runs and the engine's status changes underneath.
	hctx, hstop := context.WithCancel(context.Background())
	var hwg sync.WaitGroup
	var reads, notes atomic.Int64
	srv := l.tags.Server()
	for i := 0; i < 3; i++ {
		hwg.Add(1)
		go func() {
			defer hwg.Done()
			hammer(hctx, t, endpoint, srv, pw, &reads, &notes)
		}()
	}

	cfg, _ := json.Marshal(map[string]any{"endpoint": endpoint, "namespace": "urn:serialine:line:line-1", "root": "line-1",
		"user": "op1", "password": pw, "pki": t.TempDir(),
		// Every security mode the tag server claims; the full scenario
		// (browse, all tags, subscription, refused writes) on the strongest.
		"modes": [][3]string{{"Basic256Sha256", "SignAndEncrypt", "full"}, {"None", "None", ""}, {"Basic256Sha256", "Sign", ""}}})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "hmi-client.js")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HMI_CONFIG="+string(cfg))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	hstop()
	hwg.Wait()
	if err != nil {
		t.Fatalf("node client: %v\n%s\n%s", err, out, tail(stderr.String(), 3000))
	}
	var reports []hmiReport
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if l, ok := strings.CutPrefix(sc.Text(), "@serialine "); ok {
			var r hmiReport
			if err := json.Unmarshal([]byte(l), &r); err != nil {
				t.Fatalf("report %q: %v", l, err)
			}
			reports = append(reports, r)
		}
	}
	if len(reports) != 3 {
		t.Fatalf("%d reports:\n%s\n%s", len(reports), out, tail(stderr.String(), 3000))
	}
	wantTags := []string{"Admin.ProdDefectiveCount", "Admin.ProdProcessedCount", "Admin.StopReason", "Aggregation.CaseFill", "Aggregation.PalletFill",
		"Alarms.Active", "Alarms.Text", "Batch.GTIN", "Batch.Id", "Batch.LastSerial", "Batch.Lot", "Command.CntrlCmd",
		"Status.CurMachSpeed", "Status.StateCurrent", "Status.UnitModeCurrent", "Sync.Backlog"}
	for _, r := range reports {
		name := r.Policy + "/" + r.Mode
		if r.Error != "" {
			t.Errorf("%s: %s", name, r.Error)
			continue
		}
		if r.AnonymousError == "" || r.WrongPasswordError == "" {
			t.Errorf("%s: anonymous %q, wrong password %q: both must be refused", name, r.AnonymousError, r.WrongPasswordError)
		}
		if r.Writes["hold"] != "Good" || r.Writes["unhold"] != "Good" || r.Writes["start_while_running"] != "BadInvalidState" {
			t.Errorf("%s: commands %v", name, r.Writes)
		}
		if r.StateAfterHold != line.PackMLHeld || r.StateAfterUnhold != line.PackMLExecute {
			t.Errorf("%s: state after hold %v, after unhold %v", name, r.StateAfterHold, r.StateAfterUnhold)
		}
		if r.Values["Status.StateCurrent"].Status != "Good" || r.Values["Batch.GTIN"].Value != "09506000134352" {
			t.Errorf("%s: reads %+v", name, r.Values)
		}
		if !r.Full {
			continue
		}
		var browsed []string
		for _, b := range r.Browsed {
			browsed = append(browsed, strings.TrimPrefix(b, "line-1."))
		}
		if strings.Join(browsed, ",") != strings.Join(wantTags, ",") {
			t.Errorf("%s: browsed %v\nwant %v", name, browsed, wantTags)
		}
		for _, tag := range wantTags {
			if r.Values[tag].Status != "Good" {
				t.Errorf("%s: read %s: %+v", name, tag, r.Values[tag])
			}
		}
		if r.Values["Batch.Lot"].Value != "TAGS1" || r.Values["Status.StateCurrent"].Type != "Int32" || r.Values["Admin.ProdProcessedCount"].Type != "Int32" {
			t.Errorf("%s: batch tags %+v state %+v", name, r.Values["Batch.Lot"], r.Values["Status.StateCurrent"])
		}
		if r.StateDataType != "ns=0;i=6" {
			t.Errorf("%s: DataType attribute of Status.StateCurrent is %q, want the NodeId ns=0;i=6", name, r.StateDataType)
		}
		if len(r.Counts) < 3 || r.Counts[len(r.Counts)-1] <= r.Counts[0] {
			t.Errorf("%s: processed count notifications %v: the count must rise while the line runs", name, r.Counts)
		}
		for i := 1; i < len(r.Counts); i++ {
			if r.Counts[i] < r.Counts[i-1] {
				t.Errorf("%s: processed count went down: %v", name, r.Counts)
			}
		}
		want := map[string]string{"out_of_range": "BadOutOfRange",
			"string": "BadTypeMismatch", "int16": "BadTypeMismatch", "status_tag": "BadNotWritable", "count_tag": "BadNotWritable", "display_name": "BadNotWritable"}
		for k, v := range want {
			if r.Writes[k] != v {
				t.Errorf("%s: write %s: %s, want %s", name, k, r.Writes[k], v)
			}
		}
		if r.CntrlCmdAfterHold != float64(tags.CmdHold) {
			t.Errorf("%s: Command.CntrlCmd reads %v after Hold", name, r.CntrlCmdAfterHold)
		}
		if r.DisplayName != "CntrlCmd" {
			t.Errorf("%s: DisplayName is %q after a rewrite attempt", name, r.DisplayName)
		}
	}

	// Every command that reached the line is a user.action record; the
	// accepted ones also changed the batch state, by op1.
	recs, err := l.db.Records(1, 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	var actions []record.OPCUACommand
	states := 0
	for _, r := range recs {
		switch r.Kind {
		case record.KindUserAction:
			var c record.OPCUACommand
			if err := json.Unmarshal(r.Body, &c); err != nil {
				t.Fatal(err)
			}
			actions = append(actions, c)
		case record.KindBatchStateChanged:
			var b record.BatchState
			if err := json.Unmarshal(r.Body, &b); err != nil {
				t.Fatal(err)
			}
			if b.By == "op1" && strings.Contains(b.Reason, "via OPC UA") {
				states++
			}
		}
	}
	var got []string
	for _, a := range actions {
		if a.User != "op1" || a.Role != "operator" || a.Action != "packml.command" || a.Channel != "opcua" || a.Line != "line-1" || a.Target != "line-1.Command.CntrlCmd" {
			t.Errorf("user action %+v", a)
		}
		name, _, _ := strings.Cut(a.New, " ")
		got = append(got, fmt.Sprintf("%s:%v", name, a.Accepted))
		if !a.Accepted && !strings.Contains(a.Reason, "line clearance") {
			t.Errorf("refused command without its reason: %+v", a)
		}
	}
	wantActions := strings.Repeat("Hold:true,Unhold:true,Start:false,", 3)
	if strings.Join(got, ",")+"," != wantActions {
		t.Errorf("user actions %v, want %s", got, wantActions)
	}
	if states != 6 {
		t.Errorf("%d batch state records by op1 via OPC UA, want 6 (hold and unhold, three times)", states)
	}
	if reads.Load() == 0 || notes.Load() == 0 {
		t.Errorf("hammer: %d reads, %d notifications", reads.Load(), notes.Load())
	}
	if n := srv.PanicCount(); n != 0 {
		t.Errorf("%d panics recovered in the tag server", n)
	}
	// The line's PLC is an OPC UA server too (through the PLC driver): the
	// engine pulsed its reject gate and wrote its counters.
	st := l.eng.Status()
	good, _ := l.plc.Value("good_count")
	rejected, _ := l.plc.Value("reject_count")
	if l.plc.RejectCount() == 0 || good == uint32(0) || rejected == uint32(0) || st.Rejected == 0 {
		t.Errorf("OPC UA PLC: %d rejects, good_count %v, reject_count %v (engine: %d good, %d rejected)", l.plc.RejectCount(), good, rejected, st.Good, st.Rejected)
	}
}

// hammer reads every tag and keeps a subscription open until ctx ends.
func hammer(ctx context.Context, t *testing.T, endpoint string, srv *tags.Server, pw string, reads, notes *atomic.Int64) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	eps, err := opcua.GetEndpoints(dctx, endpoint)
	if err != nil {
		t.Errorf("hammer endpoints: %v", err)
		return
	}
	ep, err := opcua.SelectEndpoint(eps, ua.SecurityPolicyURINone, ua.MessageSecurityModeNone)
	if err != nil {
		t.Errorf("hammer: %v", err)
		return
	}
	ep.EndpointURL = endpoint
	c, err := opcua.NewClient(endpoint, opcua.SecurityPolicy("None"), opcua.SecurityMode(ua.MessageSecurityModeNone),
		opcua.AuthUsername("op1", pw), opcua.SecurityFromEndpoint(ep, ua.UserTokenTypeUserName), opcua.AutoReconnect(false), opcua.RequestTimeout(5*time.Second))
	if err != nil {
		t.Errorf("hammer: %v", err)
		return
	}
	if err := c.Connect(dctx); err != nil {
		t.Errorf("hammer connect: %v", err)
		return
	}
	defer c.Close(context.Background())
	ch := make(chan *opcua.PublishNotificationData, 64)
	sub, err := c.Subscribe(ctx, &opcua.SubscriptionParameters{Interval: 50 * time.Millisecond}, ch)
	if err != nil {
		t.Errorf("hammer subscribe: %v", err)
		return
	}
	var items []*ua.MonitoredItemCreateRequest
	req := &ua.ReadRequest{}
	for i, p := range tags.Paths() {
		items = append(items, opcua.NewMonitoredItemCreateRequestWithDefaults(srv.NodeID(p), ua.AttributeIDValue, uint32(i+1)))
		req.NodesToRead = append(req.NodesToRead, &ua.ReadValueID{NodeID: srv.NodeID(p), AttributeID: ua.AttributeIDValue})
	}
	if _, err := sub.Monitor(ctx, ua.TimestampsToReturnBoth, items...); err != nil {
		t.Errorf("hammer monitor: %v", err)
		return
	}
	go func() {
		for n := range ch {
			if n.Error == nil {
				notes.Add(1)
			}
		}
	}()
	for ctx.Err() == nil {
		resp, err := c.Read(ctx, req)
		if err != nil {
			if ctx.Err() == nil {
				t.Errorf("hammer read: %v", err)
			}
			return
		}
		for i, r := range resp.Results {
			if r.Status != ua.StatusOK {
				t.Errorf("hammer read %s: %v", tags.Paths()[i], r.Status)
				return
			}
		}
		reads.Add(1)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
