package equipment

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/serialine/serialine/central/alerts"
	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/central/store/sqlite"
	"github.com/serialine/serialine/central/store/storetest"
	"github.com/serialine/serialine/sync/record"
)

var t0 = time.Date(2026, 11, 24, 6, 0, 0, 0, time.UTC)

func ts(d time.Duration) string { return t0.Add(d).Format(time.RFC3339Nano) }

func setup(t *testing.T) (store.Store, *storetest.Chain) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c := storetest.NewChain("edge-1", 1, 3)
	if err := st.EnrollEdge(context.Background(), store.Edge{ID: c.Edge, PublicKey: c.Pub(), EnrolledBy: "t"}); err != nil {
		t.Fatal(err)
	}
	if err := st.Append(context.Background(), c.Edge, record.Head{}, c.EquipmentScenario()); err != nil {
		t.Fatal(err)
	}
	return st, c
}

func appendRecs(t *testing.T, st store.Store, c *storetest.Chain, items ...any) {
	t.Helper()
	h := c.Head()
	if err := st.Append(context.Background(), c.Edge, h, c.Next(items...)); err != nil {
		t.Fatal(err)
	}
}

type notified struct {
	mu  sync.Mutex
	got []store.Alert
}

func (n *notified) Name() string { return "test" }
func (n *notified) Notify(ctx context.Context, a store.Alert) error {
	n.mu.Lock()
	n.got = append(n.got, a)
	n.mu.Unlock()
	return nil
}

func active(t *testing.T, st store.Store) map[string]store.Alert {
	t.Helper()
	list, err := st.Alerts(context.Background(), store.AlertFilter{ActiveOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]store.Alert{}
	for _, a := range list {
		m[a.Key] = a
	}
	return m
}

func TestWatcherRaisesAndClears(t *testing.T) {
	ctx := context.Background()
	st, c := setup(t)
	al := alerts.New(alerts.Options{Store: st, Log: zerolog.Nop()})
	w := NewWatcher(WatcherOptions{Store: st, Alerts: al, Log: zerolog.Nop()})
	if err := w.Scan(ctx); err != nil {
		t.Fatal(err)
	}
	// The scenario's reportable downtime is ended and remediated; the
	// camera is calibrated, the printer's baseline is in force.
	if a := active(t, st); len(a) != 0 {
		t.Fatalf("alerts for a settled state: %v", a)
	}
	appendRecs(t, st, c,
		record.KindDowntimeStarted, record.DowntimeStarted{ID: "DT-000003", Equipment: "printer-1", Class: "print", Critical: true, Source: "driver", Fault: "head_open",
			Start: ts(10 * time.Hour), Batch: "L1", Position: "S9", InFlight: []string{"S8", "S9"}},
		record.KindDowntimeReportable, record.DowntimeReportable{ID: "DT-000003", Equipment: "printer-1", Class: "print", Fault: "head_open", Start: ts(10 * time.Hour),
			At: ts(14 * time.Hour), ThresholdS: 14400, Batch: "L1"},
		record.KindEquipmentDue, record.EquipmentDue{Equipment: "printer-1", Class: "print", Activity: "calibration", State: "overdue", Due: ts(24 * time.Hour), WindowTo: ts(96 * time.Hour)},
		record.KindEquipmentDue, record.EquipmentDue{Equipment: "camera-1", Class: "verification", Activity: "maintenance", State: "due_soon", Due: ts(48 * time.Hour)},
	)
	if err := w.Scan(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Scan(ctx); err != nil { // again: nothing new
		t.Fatal(err)
	}
	a := active(t, st)
	dt := a["downtime_reportable:edge-1:1:DT-000003"]
	if dt.Severity != store.SeverityCritical || dt.Edge != "edge-1" || !strings.Contains(dt.Message, "FDA-reportable downtime DT-000003 of printer-1 (print, head_open)") ||
		!strings.Contains(dt.Message, "batch L1, serials ..") && !strings.Contains(dt.Message, "batch L1 at serial S9") || !strings.HasPrefix(dt.Ref, "edge-1/1/") {
		t.Fatalf("downtime alert: %+v", dt)
	}
	cal := a["calibration_overdue:edge-1:printer-1"]
	if cal.Severity != store.SeverityCritical || !strings.Contains(cal.Message, "calibration of printer-1 (print) on edge-1 was due 2026-11-25 06:00 UTC and is overdue since 2026-11-28 06:00 UTC") {
		t.Fatalf("calibration alert: %+v", cal)
	}
	if pm := a["maintenance_due_soon:edge-1:camera-1"]; pm.Severity != store.SeverityInfo {
		t.Fatalf("maintenance alert: %+v", pm)
	}
	if len(a) != 3 {
		t.Fatalf("alerts: %v", a)
	}
	// Downtime ends (still alerted: no remediation), then is remediated.
	appendRecs(t, st, c, record.KindDowntimeEnded, record.DowntimeEnded{ID: "DT-000003", Equipment: "printer-1", Class: "print", Critical: true, Source: "driver",
		Fault: "head_open", Start: ts(10 * time.Hour), End: ts(15 * time.Hour), DurationS: 5 * 3600, Batch: "L1", SerialFrom: "S8", SerialTo: "S9", Reportable: true})
	w.Scan(ctx)
	if _, ok := active(t, st)["downtime_reportable:edge-1:1:DT-000003"]; !ok {
		t.Fatal("alert cleared before the remediation")
	}
	appendRecs(t, st, c,
		record.KindDowntimeRemediated, record.DowntimeRemediated{ID: "DT-000003", Equipment: "printer-1", RootCause: "head latch broken", Remediation: "latch replaced",
			Signature: &record.Signature{User: "sup", Name: "Sue", Meaning: "approval"}},
		record.KindCalibration, record.Calibration{Equipment: "printer-1", Class: "print", Activity: "calibration", Performed: ts(100 * time.Hour), Result: "pass",
			NextDue: ts(100*time.Hour + 4380*time.Hour), Certificate: nil, Signature: &record.Signature{User: "tech"}},
	)
	w.Scan(ctx)
	a = active(t, st)
	if len(a) != 1 || a["maintenance_due_soon:edge-1:camera-1"].Code == "" {
		t.Fatalf("after remediation and calibration: %v", a)
	}
}

func TestAudit(t *testing.T) {
	ctx := context.Background()
	st, c := setup(t)
	appendRecs(t, st, c,
		record.KindDowntimeStarted, record.DowntimeStarted{ID: "DT-000004", Equipment: "central-link", Class: "network", Critical: true, Source: "driver", Fault: "disconnected", Start: ts(8 * time.Hour)},
		record.KindDowntimeEnded, record.DowntimeEnded{ID: "DT-000004", Equipment: "central-link", Class: "network", Critical: true, Source: "driver", Fault: "disconnected",
			Start: ts(8 * time.Hour), End: ts(8*time.Hour + time.Minute), DurationS: 60, Batches: []string{"L1"}, FirstSerial: "S6", LastSerial: "S7", Commissioned: 2, SerialFrom: "S6", SerialTo: "S7"},
		record.KindBatchClosed, record.BatchClosed{Batch: "L1", Balanced: true},
	)
	a, err := Audit(ctx, st, "edge-1", "L1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if a.Batch.Batch != "L1" || a.Batch.Closed.IsZero() || len(a.Checks) != 1 || !a.WindowEnd.Equal(a.Batch.Closed) {
		t.Fatalf("audit: %+v", a)
	}
	var ids []string
	for _, d := range a.Downtimes {
		ids = append(ids, d.ID)
	}
	// DT-000001 (printer, recorded with the batch) and DT-000004 (the link,
	// linked through the serials commissioned while it was down);
	// DT-000002 (camera, started after the close... record time) overlaps.
	for _, want := range []string{"DT-000001", "DT-000004"} {
		if !strings.Contains(strings.Join(ids, ","), want) {
			t.Fatalf("downtimes %v lack %s", ids, want)
		}
	}
	devs := map[string]DeviceAudit{}
	for _, d := range a.Devices {
		devs[d.Equipment.Name] = d
	}
	p := devs["printer-1"]
	if p.AtStart == nil || p.AtStart.Calibration.State != "ok" || len(p.InForce) != 1 || p.InForce[0].Source != "baseline" || len(p.Downtimes) != 1 || p.Lapsed {
		t.Fatalf("printer: %+v", p)
	}
	if len(devs) != 5 {
		t.Fatalf("devices: %d", len(devs))
	}
	raw, err := json.Marshal(a)
	if err != nil || !strings.Contains(string(raw), `"at_start"`) {
		t.Fatalf("json: %v", err)
	}
	if _, err := Audit(ctx, st, "edge-1", "nope", time.Now()); err == nil {
		t.Fatal("unknown batch audited")
	}
}

func TestExport(t *testing.T) {
	ctx := context.Background()
	st, _ := setup(t)
	now := t0.Add(24 * time.Hour)
	x, err := Export(ctx, st, "edge-1", 1, "DT-000001", "central-1", now)
	if err != nil {
		t.Fatal(err)
	}
	if x.Equipment.Name != "printer-1" || x.Equipment.SerialNo != "52J1" || x.Equipment.Model != "ZT411" || x.Line != "line-1" || !x.Reportable || x.ThresholdS != 14400 ||
		x.SerialFrom != "S4" || x.SerialTo != "S5" || x.Batch == nil || x.Batch.GTIN != "09506000134352" || x.Ongoing || x.DurationS != 4.5*3600 {
		t.Fatalf("export: %+v", x)
	}
	if x.Remediation == nil || x.Remediation.Signature.Name != "Sue Pervisor" || x.Remediation.RootCause != "media sensor misaligned" {
		t.Fatalf("remediation: %+v", x.Remediation)
	}
	var kinds []string
	for _, r := range x.Records {
		kinds = append(kinds, string(r.Kind))
		if len(r.Hash) != 64 || len(r.Body) == 0 {
			t.Fatalf("record %+v", r)
		}
	}
	if strings.Join(kinds, ",") != "downtime.started,downtime.reportable,downtime.ended,downtime.remediated" {
		t.Fatalf("records: %v", kinds)
	}
	if _, err := Export(ctx, st, "edge-1", 1, "DT-404", "", now); err == nil {
		t.Fatal("unknown downtime exported")
	}
	open, err := Export(ctx, st, "edge-1", 1, "DT-000002", "", now)
	if err != nil || !open.Ongoing || open.DurationS != now.Sub(t0.Add(7*time.Hour)).Seconds() || open.Cause != "plc-1" {
		t.Fatalf("open downtime export: %+v %v", open, err)
	}
}
