package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/serialine/serialine/edge/config"
	"github.com/serialine/serialine/edge/devices"
	"github.com/serialine/serialine/edge/line"
	"github.com/serialine/serialine/edge/line/linetest"
	"github.com/serialine/serialine/edge/store"
	"github.com/serialine/serialine/sync/record"
)

const lineYAML = `# %s
line: {id: line-a}
edge: {id: edge-a, data_dir: ./data, verdict_timeout: 5s}
central: {broker: "tcp://127.0.0.1:1"}
company: {gs1_prefix: "9506000", sscc_extension: 3}
products:
  - gtin: "09506000134352"
    name: Tablets
    packaging: {units_per_case: %d, cases_per_pallet: 100}
devices:
  printers: [{name: printer-1, driver: zebra, address: "127.0.0.1:9"}]
  cameras: [{name: camera-1, driver: dataman, address: "127.0.0.1:9"}]
  plcs: [{name: plc-1, driver: modbus, address: "127.0.0.1:9", options: {tags: {reject: {coil: 0}}}}]
`

type running struct {
	edge *Edge
	line *linetest.Line
	done chan error
	stop context.CancelFunc
}

func start(t *testing.T, path string) *running {
	t.Helper()
	cfg, raw, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	fl := linetest.New(ctx, linetest.Good)
	devs := fl.Devices()
	e, err := New(Options{Config: cfg, ConfigBytes: raw, Log: zerolog.Nop(), Devices: &devs})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	r := &running{edge: e, line: fl, done: make(chan error, 1), stop: cancel}
	go func() { r.done <- e.Run(ctx) }()
	select {
	case <-e.Engine.Ready():
	case err := <-r.done:
		t.Fatalf("edge stopped: %v", err)
	}
	return r
}

// shutdown stops the edge and returns Run's error.
func (r *running) shutdown(t *testing.T) error {
	t.Helper()
	r.stop()
	err := <-r.done
	r.edge.Close()
	return err
}

func waitStatus(t *testing.T, e *Edge, what string, cond func(line.Status) bool) line.Status {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := e.Engine.Status()
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; status %+v", what, s)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func logOf(t *testing.T, path string) []record.Record {
	t.Helper()
	cfg, _, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	db, err := OpenStore(cfg, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	recs, err := db.Records(1, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := record.VerifyRun(db.PublicKey(), record.Head{}, recs); err != nil {
		t.Fatal(err)
	}
	return recs
}

func mustJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, path, note string, unitsPerCase int) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(fmt.Sprintf(lineYAML, note, unitsPerCase)), 0o600); err != nil {
		t.Fatal(err)
	}
	return config.Hash([]byte(fmt.Sprintf(lineYAML, note, unitsPerCase)))
}

var supSig = &record.Signature{User: "sup", Name: "Sue Pervisor", Meaning: "line clearance"}

// A config change is applied only between batches: a restart with a
// changed file keeps the open batch on its own config (pending, recorded),
// a reload while the batch runs waits for its close, the close restarts
// the edge, and the restart records config.applied with the new hash.
func TestConfigAppliedOnlyBetweenBatches(t *testing.T) {
	devices.Register()
	dir := t.TempDir()
	path := filepath.Join(dir, "line.yaml")
	hashA := write(t, path, "config A", 4)
	ctx := context.Background()

	r := start(t, path)
	if r.edge.Pending || r.edge.Engine.Status().ConfigHash != hashA {
		t.Fatalf("first start: pending %v, status %+v", r.edge.Pending, r.edge.Engine.Status())
	}
	// Held at once, well before the 48 planned units are through (the fake
	// line is fast: waiting for a case first could see the batch complete).
	if _, err := r.edge.Engine.StartBatch(ctx, line.BatchRequest{GTIN: "09506000134352", Lot: "LA", Expiry: "281130", Planned: 48, By: "sup"}, supSig); err != nil {
		t.Fatal(err)
	}
	if err := r.edge.Engine.Hold(ctx, "op", "config change"); err != nil {
		t.Fatal(err)
	}
	if err := r.shutdown(t); err != nil {
		t.Fatal(err)
	}

	// The engineer changes the file (6 units per case) and restarts the edge.
	hashB := write(t, path, "config B", 6)
	r = start(t, path)
	s := r.edge.Engine.Status()
	if !r.edge.Pending || s.ConfigHash != hashA || s.ConfigPending != hashB || r.edge.Cfg.Products[0].Packaging.UnitsPerCase != 4 {
		t.Fatalf("restart with a changed file: pending %v, status config %s pending %s", r.edge.Pending, s.ConfigHash, s.ConfigPending)
	}
	// Reload of the same file: still pending. An invalid file changes nothing.
	if ch, err := r.edge.Reload(ctx); err != nil || ch.Status != line.ConfigPending || ch.Batch != "LA" {
		t.Fatalf("reload: %+v %v", ch, err)
	}
	if err := os.WriteFile(path, []byte("line: {id: [broken"), 0o600); err != nil {
		t.Fatal(err)
	}
	var ce *config.Errors
	if _, err := r.edge.Reload(ctx); !errors.As(err, &ce) {
		t.Fatalf("invalid file: %v", err)
	}
	write(t, path, "config B", 6)
	// Units that were still in flight when the edge stopped hold the line
	// until a supervisor confirms each was found and removed.
	for _, u := range r.edge.Engine.Status().RejectsNotDelivered {
		if err := r.edge.Engine.ConfirmRemoval(ctx, u.ID, "found at the infeed", &record.Signature{User: "sup", Meaning: "the unit was found and removed"}); err != nil {
			t.Fatal(err)
		}
	}
	// The batch keeps packing 4 per case.
	if err := r.edge.Engine.Resume(ctx, "op", "go on"); err != nil {
		t.Fatal(err)
	}
	s = waitStatus(t, r.edge, "batch complete", func(s line.Status) bool { return s.BatchState == line.BatchComplete })
	if s.CasesClosed != 12 {
		t.Fatalf("48 units in cases of 4: %d cases", s.CasesClosed)
	}
	if _, err := r.edge.Engine.CloseBatch(ctx, line.CloseRequest{By: "sup"}); err != nil {
		t.Fatal(err)
	}
	// The close applies the pending config: the edge asks for a restart.
	select {
	case err := <-r.done:
		if !errors.Is(err, ErrRestart) {
			t.Fatalf("Run returned %v, want ErrRestart", err)
		}
		r.stop()
		r.edge.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("no restart after closing the batch with a config pending")
	}
	// The restart (as the daemon re-executes itself) applies config B.
	r = start(t, path)
	if r.edge.Pending || r.edge.Engine.Status().ConfigHash != hashB {
		t.Fatalf("after restart: %+v", r.edge.Engine.Status())
	}
	if _, err := r.edge.Engine.StartBatch(ctx, line.BatchRequest{GTIN: "09506000134352", Lot: "LB", Expiry: "281130", Planned: 6, By: "sup"}, supSig); err != nil {
		t.Fatal(err)
	}
	s = waitStatus(t, r.edge, "batch LB complete", func(s line.Status) bool { return s.BatchState == line.BatchComplete })
	if s.CasesClosed != 1 || s.ConfigHash != hashB {
		t.Fatalf("batch LB: %+v", s)
	}
	if _, err := r.edge.Engine.CloseBatch(ctx, line.CloseRequest{By: "sup"}); err != nil {
		t.Fatal(err)
	}
	// With no batch open a reload of a changed file restarts at once.
	write(t, path, "config C", 6)
	if ch, err := r.edge.Reload(ctx); err != nil || ch.Status != line.ConfigRestart {
		t.Fatalf("reload when idle: %+v %v", ch, err)
	}
	select {
	case err := <-r.done:
		if !errors.Is(err, ErrRestart) {
			t.Fatalf("Run returned %v, want ErrRestart", err)
		}
		r.stop()
		r.edge.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("no restart after an idle reload")
	}

	// The record log tells the story: config A applied, B pending while LA
	// ran (recorded once per change), B applied after LA closed, B for LB.
	recs := logOf(t, path)
	var applied []string
	var pendingOn, pendingOff int
	var startedWith = map[string]string{}
	for _, rec := range recs {
		switch rec.Kind {
		case record.KindConfigApplied:
			var c record.ConfigApplied
			mustJSON(t, rec.Body, &c)
			applied = append(applied, c.Hash)
		case record.KindAlarm:
			var a record.Alarm
			mustJSON(t, rec.Body, &a)
			if a.Code == "config_pending" {
				if a.Active {
					pendingOn++
				} else {
					pendingOff++
				}
			}
		case record.KindBatchStarted:
			var b record.BatchStarted
			mustJSON(t, rec.Body, &b)
			startedWith[b.Batch] = b.ConfigHash
		}
	}
	if len(applied) != 2 || applied[0] != hashA || applied[1] != hashB {
		t.Fatalf("config.applied records %v, want [A B]", applied)
	}
	if pendingOn != 1 || pendingOff != 1 {
		t.Fatalf("config_pending alarms: %d raised, %d cleared", pendingOn, pendingOff)
	}
	if startedWith["LA"] != hashA || startedWith["LB"] != hashB {
		t.Fatalf("batches started with %v", startedWith)
	}
}
