package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/serialine/serialine/drivers"
	edgeapp "github.com/serialine/serialine/edge/app"
	"github.com/serialine/serialine/edge/devices"
	"github.com/serialine/serialine/edge/line"
	"github.com/serialine/serialine/edge/line/linetest"
)

const labelsRejectsLine = `line: {id: line-lr}
edge: {id: edge-lr, data_dir: ./data, http: "127.0.0.1:0", verdict_timeout: 30s, reject_deadline: 300ms}
central: {broker: "tcp://127.0.0.1:1"}
company: {gs1_prefix: "9506000", sscc_extension: 3}
products:
  - gtin: "09506000134352"
    name: Tablets
    packaging: {units_per_case: 2, cases_per_pallet: 10}
devices:
  printers:
    - {name: printer-1, driver: zebra, address: "127.0.0.1:9"}
    - {name: label-printer, driver: zebra, address: "127.0.0.1:9", levels: [case]}
  cameras: [{name: camera-1, driver: dataman, address: "127.0.0.1:9"}]
  plcs: [{name: plc-1, driver: modbus, address: "127.0.0.1:9", options: {tags: {reject: {coil: 0}}}}]
users:
  - {id: op, name: Olivia Operator, role: operator, password_hash: "%s"}
  - {id: sup, name: Sam Supervisor, role: supervisor, password_hash: "%s"}
`

// The operator side of case labels and undelivered rejects, through the CLI
// against a real edge: a reject the PLC refuses holds the batch and shows in
// the status; resuming is refused until a supervisor confirms the unit was
// removed (e-signed, with a note); a case label is reprinted, e-signed.
func TestOperatorCLILabelsAndRejects(t *testing.T) {
	devices.Register()
	dir := t.TempDir()
	path := filepath.Join(dir, "line.yaml")
	if err := os.WriteFile(path, []byte(fmt.Sprintf(labelsRejectsLine, bhash(t, "op-pw"), bhash(t, "sup-pw"))), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, raw, err := edgeapp.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var fl *linetest.Line
	fl = linetest.New(ctx, func(n int, l drivers.Label) (drivers.Reading, bool) {
		rd, ok := linetest.Good(n, l)
		if n == 3 {
			fl.PLC.RefuseRejects.Store(true) // the PLC refuses the reject of unit 3
			rd.Grade = 1
		}
		return rd, ok
	})
	devs := fl.Devices()
	devs.LabelPrinters = []line.LabelPrinter{fl.LabelPrinter(drivers.LevelCase)}
	edge, err := edgeapp.New(edgeapp.Options{Config: cfg, ConfigBytes: raw, Log: zerolog.Nop(), Devices: &devs})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- edge.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, edgeapp.ErrRestart) {
			t.Errorf("edge: %v", err)
		}
		edge.Close()
	})
	base := "http://" + edge.API.Addr()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("edge API not up: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	c := &cliRun{t: t, routes: map[string]int{}, env: map[string]string{
		"SERIALINE_EDGE": base, "SERIALINE_USER": "op", "SERIALINE_PASSWORD": "op-pw", "SERIALINE_SIGN_PASSWORD": "sup-pw",
	}}
	supPW := filepath.Join(dir, "sup-password")
	os.WriteFile(supPW, []byte("sup-pw\n"), 0o600)
	asSup := []string{"--user", "sup", "--password-file", supPW}
	c.ok(append([]string{"batch", "create", "--gtin", "09506000134352", "--lot", "LR1", "--expiry", "281130", "--planned", "6"}, asSup...)...)
	c.ok("batch", "clearance", "--sign-user", "sup")
	c.ok("batch", "start")

	var st line.Status
	waitStatus := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for c.json(&st, "status"); !cond(); c.json(&st, "status") {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s: %+v", what, st)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitStatus("the undelivered reject", func() bool { return st.BatchState == line.BatchHeld && len(st.RejectsNotDelivered) == 1 })
	sn3, _ := fl.Labels()[2].Data.Get("21")
	if r := st.RejectsNotDelivered[0]; r.ID != sn3 || r.Reason != line.ReasonGrade {
		t.Fatalf("undelivered %+v, want unit 3 %s", r, sn3)
	}
	if out := c.ok("status"); !strings.Contains(out, "REJECT NOT DELIVERED: "+sn3+" (grade_below_minimum) may be downstream") || !strings.Contains(out, "alarms: reject_not_delivered") {
		t.Fatalf("status:\n%s", out)
	}
	c.refused("cannot resume: the reject of "+sn3+" did not reach the PLC", "batch", "resume")
	c.usage("--note is required", "reject", "removed", sn3, "--sign-user", "sup")
	c.refused("e-signature refused: op is operator, needs supervisor", "reject", "removed", sn3, "--note", "found", "--sign-user", "op", "--sign-password-file", writeFile(t, dir, "op-pw"))
	if out := c.ok("reject", "removed", sn3, "--note", "found at the case packer, destroyed", "--sign-user", "sup"); !strings.Contains(out, "removal of "+sn3+" confirmed (signed by sup); 0 rejects not delivered left; batch LR1 held") {
		t.Fatalf("removed: %s", out)
	}
	fl.PLC.RefuseRejects.Store(false)
	c.ok("batch", "resume", "--reason", "unit removed")
	waitStatus("the batch to complete", func() bool { return st.BatchState == line.BatchComplete && st.CasesClosed == 3 })

	// Every closed case got its SSCC label from the label printer; one is
	// reprinted (damaged), e-signed.
	waitLabels := func(n int) []drivers.Label {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			if b := fl.Boxes(); len(b) >= n {
				return b
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d case labels, want %d", len(fl.Boxes()), n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	boxes := waitLabels(3)
	sscc, _ := boxes[0].Data.Get("00")
	c.usage("--reason is required", "container", "label", sscc, "--sign-user", "sup")
	if out := c.ok("container", "label", sscc, "--reason", "label torn at the applicator", "--sign-user", "sup"); !strings.Contains(out, "case "+sscc+": SSCC label queued for reprint (signed by sup)") {
		t.Fatalf("reprint: %s", out)
	}
	if again, _ := waitLabels(4)[3].Data.Get("00"); again != sscc {
		t.Fatalf("reprinted %s, want %s", again, sscc)
	}
	for _, r := range []string{"POST /api/v1/containers/{sscc}/label", "POST /api/v1/rejects/{id}/removed"} {
		if c.routes[r] == 0 {
			t.Errorf("route %s not called", r)
		}
	}
}

func writeFile(t *testing.T, dir, content string) string {
	f, err := os.CreateTemp(dir, "secret")
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(content + "\n")
	f.Close()
	return f.Name()
}
