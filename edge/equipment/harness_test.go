package equipment

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/serialine/serialine/drivers"
	"github.com/serialine/serialine/edge/config"
	"github.com/serialine/serialine/edge/line"
	"github.com/serialine/serialine/edge/store"
	"github.com/serialine/serialine/sync/record"
)

type fakeOptions struct{}

func init() {
	for _, k := range []string{"printer", "camera", "plc"} {
		config.RegisterDriver(k, "fake", func() any { return &fakeOptions{} })
	}
}

var t0 = time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)

// harness drives a Tracker the way the engine does (hooks inside store
// transactions) on a manual clock, without an engine.
type harness struct {
	t   testing.TB
	cfg *config.Line
	dir string
	db  *store.DB
	tr  *Tracker
	now time.Time
	b   line.EquipmentBatch
	// noSync opens the store without fsync (benchmarks of CPU cost only).
	noSync bool
}

func loadConfig(t testing.TB) *config.Line {
	t.Helper()
	cfg, err := config.Load("testdata/line.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func newHarness(t testing.TB, cfg *config.Line) *harness {
	t.Helper()
	if cfg == nil {
		cfg = loadConfig(t)
	}
	h := &harness{t: t, cfg: cfg, dir: t.TempDir(), now: t0}
	h.open()
	return h
}

func (h *harness) open() {
	h.t.Helper()
	db, err := store.Open(filepath.Join(h.dir, "edge.db"), store.Options{EdgeID: "edge-1", Key: ed25519.NewKeyFromSeed(make([]byte, 32)), Now: func() time.Time { return h.now }, NoSync: h.noSync})
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { db.Close() })
	h.db = db
	h.tr, err = New(Options{Config: h.cfg, Store: db, Log: zerolog.Nop()})
	if err != nil {
		h.t.Fatal(err)
	}
	h.tr.SetExecutor(h)
}

// restart simulates an edge restart: a new tracker (new boot) on the same store.
func (h *harness) restart() {
	h.t.Helper()
	h.db.Close()
	h.open()
}

// EquipmentDo implements Executor like the engine: one transaction, rolled
// back on error.
func (h *harness) EquipmentDo(ctx context.Context, name string, fn func(tx *store.Tx, b line.EquipmentBatch, now time.Time) (any, error)) (any, error) {
	var v any
	err := h.db.Update(func(tx *store.Tx) error {
		var err error
		v, err = fn(tx, h.b, h.now)
		return err
	})
	return v, err
}

func (h *harness) update(fn func(tx *store.Tx) error) {
	h.t.Helper()
	if err := h.db.Update(fn); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) tick() {
	h.t.Helper()
	h.update(func(tx *store.Tx) error { return h.tr.Tick(tx, h.b, h.now) })
}

func (h *harness) advance(d time.Duration) {
	h.t.Helper()
	h.now = h.now.Add(d)
	h.tick()
}

func (h *harness) health(device string, hl drivers.Health) {
	h.t.Helper()
	h.update(func(tx *store.Tx) error { return h.tr.Health(tx, device, "", hl, h.b, h.now) })
}

func (h *harness) commission(serial string) {
	h.t.Helper()
	h.b.Commissioned++
	h.b.LastSerial = serial
	h.update(func(tx *store.Tx) error { return h.tr.Commissioned(tx, h.b, serial, h.now) })
}

// checkStart runs the interlock in a transaction that, like the engine's
// start, is rolled back when the start is refused.
func (h *harness) checkStart(batch string) error {
	h.b.ID, h.b.State = batch, line.BatchCleared
	err := h.db.Update(func(tx *store.Tx) error { return h.tr.CheckStart(tx, h.b, "sup", h.now) })
	if err == nil {
		h.b.State = line.BatchRunning
	}
	return err
}

func (h *harness) records() []record.Record {
	h.t.Helper()
	recs, err := h.db.Records(1, 1<<30)
	if err != nil {
		h.t.Fatal(err)
	}
	return recs
}

// bodies decodes every record of a kind.
func bodies[T any](h *harness, kind record.Kind) []T {
	h.t.Helper()
	var out []T
	for _, r := range h.records() {
		if r.Kind != kind {
			continue
		}
		var v T
		if err := json.Unmarshal(r.Body, &v); err != nil {
			h.t.Fatalf("%s body: %v", kind, err)
		}
		out = append(out, v)
	}
	return out
}

func down(fault string) drivers.Health {
	return drivers.Health{Connected: true, Fault: fault, Detail: fault + " detail"}
}

var up = drivers.Health{Connected: true}

func sig(user, meaning string) *record.Signature {
	return &record.Signature{User: user, Name: user + " Name", Meaning: meaning, Time: t0.Format(time.RFC3339)}
}

func isRefusal(err error) bool {
	var re *line.RuleError
	return errors.As(err, &re)
}

var pdf = []byte("%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n")

func calibrate(h *harness, equipment string, performed time.Time) (record.Calibration, error) {
	return h.tr.Record(context.Background(), Activity{
		Equipment: equipment, Activity: record.ActivityCalibration, Performed: performed, Result: "pass",
		Results:     []record.CalibrationResult{{Name: "reference card grade", Value: "3.8", Spec: ">= 3.5", Pass: true}},
		Certificate: &CertificateFile{Name: "cal.pdf", ContentType: "application/pdf", Data: pdf},
		Signature:   sig("tech", "performed by"), By: "tech",
	})
}
