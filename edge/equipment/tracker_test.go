package equipment

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/serialine/serialine/drivers"
	"github.com/serialine/serialine/edge/config"
	"github.com/serialine/serialine/edge/line"
	"github.com/serialine/serialine/edge/store"
	"github.com/serialine/serialine/sync/record"
)

func TestScheduleStates(t *testing.T) {
	s := Schedule{Interval: 100 * time.Hour, Tolerance: 10 * time.Hour}
	due := t0.Add(100 * time.Hour)
	st := schedState{Due: due}
	for _, c := range []struct {
		at   time.Duration // relative to due
		soon time.Duration
		want string
	}{
		{-50 * time.Hour, 24 * time.Hour, StateOK},
		{-24 * time.Hour, 24 * time.Hour, StateDueSoon},
		{-11 * time.Hour, 24 * time.Hour, StateDueSoon},
		{-10 * time.Hour, 24 * time.Hour, StateDue},
		{0, 24 * time.Hour, StateDue},
		{10 * time.Hour, 24 * time.Hour, StateDue},
		{10*time.Hour + time.Second, 24 * time.Hour, StateOverdue},
		{-11 * time.Hour, 0, StateOK}, // no lead: due soon starts with the window
		{-10 * time.Hour, 0, StateDue},
	} {
		if got := s.State(st, due.Add(c.at), c.soon); got != c.want {
			t.Errorf("at due%+v (lead %v): %s, want %s", c.at, c.soon, got, c.want)
		}
	}
	if got := s.State(schedState{}, t0, 0); got != StateNever {
		t.Errorf("never done: %s", got)
	}
	if got := s.State(schedState{Due: due, Failed: true}, t0, 0); got != StateFailed {
		t.Errorf("failed: %s", got)
	}
	for _, c := range []struct {
		performed time.Duration
		want      time.Time
	}{
		{-10 * time.Hour, due.Add(100 * time.Hour)},                      // window opens: keeps the plan
		{5 * time.Hour, due.Add(100 * time.Hour)},                        // late but inside the window
		{-20 * time.Hour, due.Add(-20 * time.Hour).Add(100 * time.Hour)}, // early: restarts from the day
		{30 * time.Hour, due.Add(30 * time.Hour).Add(100 * time.Hour)},   // late: restarts
	} {
		if got := s.Next(due, due.Add(c.performed)); !got.Equal(c.want) {
			t.Errorf("performed at due%+v: next %v, want %v", c.performed, got, c.want)
		}
	}
	if got := s.Next(time.Time{}, t0); !got.Equal(t0.Add(100 * time.Hour)) {
		t.Errorf("first: %v", got)
	}
	for state, lapsed := range map[string]bool{StateOK: false, StateDueSoon: false, StateDue: false, StateOverdue: true, StateNever: true, StateFailed: true} {
		if Lapsed(state) != lapsed {
			t.Errorf("Lapsed(%s) = %v", state, !lapsed)
		}
	}
}

func TestRegistry(t *testing.T) {
	reg, err := NewRegistry(loadConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ name, class, kind string }{
		{"printer-1", "print", "printer"}, {"camera-1", "verification", "camera"}, {"case-camera", "aggregation", "camera"},
		{"plc-1", "verification", "plc"}, {"edge-server", "network", "edge_server"}, {"central-link", "network", "link"},
		{"case-station", "aggregation", "station"}, {"label-applicator", "print", "station"},
	}
	if len(reg.Items) != len(want) {
		t.Fatalf("%d items, want %d", len(reg.Items), len(want))
	}
	for i, w := range want {
		it := reg.Items[i]
		if it.Equipment != w.name || it.Class != w.class || it.Kind != w.kind {
			t.Errorf("item %d: %s %s %s, want %+v", i, it.Equipment, it.Class, it.Kind, w)
		}
	}
	if !reg.Get("printer-1").Critical || reg.Get("label-applicator").Critical {
		t.Error("critical flags")
	}
	if p := reg.Get("printer-1"); p.SerialNo != "52J184400123" || p.Asset != "PKG-L1-PR-01" || p.Calibration.Interval != 4380*time.Hour || p.EquipmentItem.Calibration.IntervalS != 4380*3600 {
		t.Errorf("printer: %+v", p.EquipmentItem)
	}
	if got := strings.Join(reg.Dependencies("case-station"), ","); got != "case-camera,plc-1" {
		t.Errorf("case-station depends on %s", got)
	}
	if got := strings.Join(reg.Dependents("plc-1"), ","); got != "camera-1,case-camera,case-station" {
		t.Errorf("plc-1 dependents %s", got)
	}
	r1, r2 := reg.Record(), reg.Record()
	if r1.Hash == "" || r1.Hash != r2.Hash || r1.ReportableAfterS != 4*3600 || strings.Join(r1.Interlock, ",") != "print,verification" {
		t.Errorf("registry record: %+v", r1)
	}
}

// The tracker's part of the first scenario: a printer fault past
// the threshold on the manual clock.
func TestPrinterFaultPastThreshold(t *testing.T) {
	h := newHarness(t, nil)
	h.b = line.EquipmentBatch{ID: "LOT1", State: line.BatchRunning, Commissioned: 120, LastSerial: "S120", InFlight: []string{"S118", "S119", "S120"}}
	h.tick()
	if regs := bodies[record.EquipmentRegistered](h, record.KindEquipmentRegistered); len(regs) != 1 || len(regs[0].Items) != 8 {
		t.Fatalf("registry records: %+v", regs)
	}
	h.health("printer-1", up) // first report: nothing
	h.advance(time.Second)
	h.health("printer-1", down("paper_out"))
	h.health("printer-1", down("paper_out")) // repeated poll: one downtime
	started := bodies[record.DowntimeStarted](h, record.KindDowntimeStarted)
	if len(started) != 1 {
		t.Fatalf("downtime.started: %+v", started)
	}
	s := started[0]
	if s.Equipment != "printer-1" || s.Class != "print" || !s.Critical || s.Source != "driver" || s.Fault != "paper_out" || s.Batch != "LOT1" ||
		s.Position != "S120" || strings.Join(s.InFlight, ",") != "S118,S119,S120" || s.Start != ts(t0.Add(time.Second)) || s.ID != "DT-000001" {
		t.Fatalf("started: %+v", s)
	}
	h.advance(4*time.Hour - time.Second)
	if n := len(bodies[record.DowntimeReportable](h, record.KindDowntimeReportable)); n != 0 {
		t.Fatal("reportable before the threshold")
	}
	if len(h.tr.Alarms()) != 1 || !strings.HasPrefix(h.tr.Alarms()[0], AlarmCalibrationOverdue+":camera-1") {
		t.Fatalf("alarms before threshold: %v", h.tr.Alarms())
	}
	h.advance(time.Second)
	rep := bodies[record.DowntimeReportable](h, record.KindDowntimeReportable)
	if len(rep) != 1 || rep[0].ID != "DT-000001" || rep[0].At != ts(t0.Add(4*time.Hour+time.Second)) || rep[0].ThresholdS != 14400 || rep[0].Batch != "LOT1" {
		t.Fatalf("reportable: %+v", rep)
	}
	if !contains(h.tr.Alarms(), AlarmReportable+":printer-1:DT-000001") {
		t.Fatalf("edge alarm missing: %v", h.tr.Alarms())
	}
	alarms := bodies[record.Alarm](h, record.KindAlarm)
	if len(alarms) != 1 || !alarms[0].Active || alarms[0].Code != AlarmReportable || !strings.Contains(alarms[0].Message, "FDA-reportable") {
		t.Fatalf("alarm records: %+v", alarms)
	}
	h.advance(30 * time.Minute)
	h.health("printer-1", up)
	ended := bodies[record.DowntimeEnded](h, record.KindDowntimeEnded)
	if len(ended) != 1 {
		t.Fatalf("ended: %+v", ended)
	}
	e := ended[0]
	if e.DurationS != (4*time.Hour+30*time.Minute).Seconds() || !e.Reportable || e.SerialFrom != "S118" || e.SerialTo != "S120" || e.Commissioned != 0 || e.Batch != "LOT1" || e.End != ts(h.now) {
		t.Fatalf("ended: %+v", e)
	}
	// Still alarmed until the remediation is signed.
	if !contains(h.tr.Alarms(), AlarmReportable+":printer-1:DT-000001") {
		t.Fatal("alarm cleared before remediation")
	}
	if err := h.tr.Remediate(context.Background(), "DT-000001", "", "x", sig("sup", "approval")); !isRefusal(err) {
		t.Fatalf("remediation without root cause: %v", err)
	}
	if err := h.tr.Remediate(context.Background(), "DT-000001", "paper roll ran out; low-media sensor misaligned", "sensor realigned, roll changed, SOP-PKG-014 updated", sig("sup", "approval")); err != nil {
		t.Fatal(err)
	}
	if err := h.tr.Remediate(context.Background(), "DT-000001", "a", "b", sig("sup", "approval")); !isRefusal(err) || !strings.Contains(err.Error(), "already remediated") {
		t.Fatalf("second remediation: %v", err)
	}
	rem := bodies[record.DowntimeRemediated](h, record.KindDowntimeRemediated)
	if len(rem) != 1 || rem[0].Signature.User != "sup" || rem[0].End != e.End || rem[0].Batch != "LOT1" {
		t.Fatalf("remediated: %+v", rem)
	}
	alarms = bodies[record.Alarm](h, record.KindAlarm)
	if len(alarms) != 2 || alarms[1].Active {
		t.Fatalf("alarm not cleared: %+v", alarms)
	}
	for _, a := range h.tr.Alarms() {
		if strings.HasPrefix(a, AlarmReportable) {
			t.Fatalf("reportable alarm still active: %v", h.tr.Alarms())
		}
	}
	v := h.tr.Snapshot()
	if len(v.Recent) != 1 || !v.Recent[0].Remediated || len(v.Open) != 0 {
		t.Fatalf("snapshot: %+v", v)
	}
}

func TestShortDowntimeIsNotReportable(t *testing.T) {
	h := newHarness(t, nil)
	h.tick()
	h.health("printer-1", down("head_open"))
	h.advance(3 * time.Hour)
	h.health("printer-1", up)
	if len(bodies[record.DowntimeReportable](h, record.KindDowntimeReportable)) != 0 {
		t.Fatal("a 3 h downtime is reportable")
	}
	e := bodies[record.DowntimeEnded](h, record.KindDowntimeEnded)
	if len(e) != 1 || e[0].Reportable || e[0].Batch != "" {
		t.Fatalf("ended: %+v", e)
	}
	// A non-critical equipment never becomes reportable.
	if _, err := h.tr.StartDowntime(context.Background(), ManualDowntime{Equipment: "label-applicator", Fault: "jam", Start: h.now.Add(-5 * time.Hour), By: "op"}); err != nil {
		t.Fatal(err)
	}
	h.advance(time.Minute)
	if len(bodies[record.DowntimeReportable](h, record.KindDowntimeReportable)) != 0 {
		t.Fatal("non-critical downtime reportable")
	}
}

// The health report crosses the threshold in the same step it recovers
// (the clock jumped): the event is reportable before it ends.
func TestRecoveryAfterThresholdWithoutTick(t *testing.T) {
	h := newHarness(t, nil)
	h.tick()
	h.health("plc-1", drivers.Health{Fault: "disconnected"})
	h.now = h.now.Add(5 * time.Hour)
	h.health("plc-1", up)
	recs := h.records()
	var order []record.Kind
	for _, r := range recs {
		if r.Kind == record.KindDowntimeReportable || r.Kind == record.KindDowntimeEnded {
			order = append(order, r.Kind)
		}
	}
	if len(order) != 2 || order[0] != record.KindDowntimeReportable {
		t.Fatalf("order %v", order)
	}
}

func TestDependencyAttribution(t *testing.T) {
	h := newHarness(t, nil)
	h.tick()
	// PLC down first: the camera that then loses its trigger is attributed to it.
	h.health("plc-1", down("disconnected"))
	h.advance(2 * time.Second)
	h.health("camera-1", down("disconnected"))
	st := bodies[record.DowntimeStarted](h, record.KindDowntimeStarted)
	if len(st) != 2 || st[1].Equipment != "camera-1" || st[1].Cause != "plc-1" || st[1].CauseDowntime != st[0].ID {
		t.Fatalf("started: %+v", st)
	}
	h.advance(5 * time.Hour)
	rep := bodies[record.DowntimeReportable](h, record.KindDowntimeReportable)
	if len(rep) != 1 || rep[0].Equipment != "plc-1" {
		t.Fatalf("only the root cause is reportable: %+v", rep)
	}
	h.health("plc-1", up)
	h.health("camera-1", up)

	// Camera noticed first, PLC down 10 s later (inside the 30 s window):
	// the camera's downtime is attributed to the PLC when it ends.
	h.health("camera-1", down("disconnected"))
	h.advance(10 * time.Second)
	h.health("plc-1", down("disconnected"))
	h.advance(time.Minute)
	h.health("camera-1", up)
	h.health("plc-1", up)
	// Case station (transitive: case-camera -> plc-1) and outside the window.
	h.health("case-camera", down("disconnected"))
	h.advance(time.Minute)
	h.health("plc-1", down("disconnected"))
	h.advance(time.Minute)
	h.health("plc-1", up)
	h.health("case-camera", up)
	byEq := map[string][]record.DowntimeEnded{}
	for _, e := range bodies[record.DowntimeEnded](h, record.KindDowntimeEnded) {
		byEq[e.Equipment] = append(byEq[e.Equipment], e)
	}
	if c := byEq["camera-1"]; len(c) != 2 || c[0].Cause != "plc-1" || c[1].Cause != "plc-1" {
		t.Fatalf("camera downtimes: %+v", c)
	}
	if c := byEq["case-camera"]; len(c) != 1 || c[0].Cause != "" {
		t.Fatalf("case camera down a minute before the PLC is its own cause: %+v", c)
	}
}

func TestNetworkDowntimeSerialRange(t *testing.T) {
	h := newHarness(t, nil)
	h.b = line.EquipmentBatch{ID: "LOT2", State: line.BatchRunning, Commissioned: 10, LastSerial: "S10"}
	h.tick()
	h.health(config.BuiltinCentralLink, drivers.Health{Fault: "disconnected", Detail: "broker unreachable"})
	for _, s := range []string{"S11", "S12", "S13"} {
		h.commission(s)
	}
	h.advance(time.Minute)
	h.health(config.BuiltinCentralLink, up)
	e := bodies[record.DowntimeEnded](h, record.KindDowntimeEnded)
	if len(e) != 1 || e[0].Class != "network" || e[0].FirstSerial != "S11" || e[0].LastSerial != "S13" || e[0].Commissioned != 3 ||
		e[0].SerialFrom != "S11" || e[0].SerialTo != "S13" || strings.Join(e[0].Batches, ",") != "LOT2" {
		t.Fatalf("ended: %+v", e)
	}
}

// The second scenario at the tracker: a start on a camera never
// calibrated is refused naming it; after a calibration with certificate it
// starts, and the check records every device's state.
func TestInterlock(t *testing.T) {
	h := newHarness(t, nil)
	h.tick()
	err := h.checkStart("LOT3")
	if !isRefusal(err) || !strings.Contains(err.Error(), "camera-1 (verification) has no recorded calibration") || !strings.Contains(err.Error(), "batch LOT3 cannot start") {
		t.Fatalf("refusal: %v", err)
	}
	if n := len(bodies[record.EquipmentCheck](h, record.KindEquipmentCheck)); n != 0 {
		t.Fatal("a refused start left a check record")
	}
	if _, err := h.tr.Record(context.Background(), Activity{Equipment: "camera-1", Activity: "calibration", Result: "pass", Signature: sig("tech", "performed by")}); !isRefusal(err) || !strings.Contains(err.Error(), "certificate required") {
		t.Fatalf("calibration without certificate: %v", err)
	}
	h.advance(time.Hour)
	rec, err := calibrate(h, "camera-1", h.now.Add(-30*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(pdf)
	if rec.Certificate.SHA256 != hex.EncodeToString(sum[:]) || rec.Certificate.Size != len(pdf) || rec.NextDue != ts(h.now.Add(-30*time.Minute).Add(2190*time.Hour)) || rec.WorkOrder == "" {
		t.Fatalf("calibration record: %+v", rec)
	}
	if err := h.checkStart("LOT3"); err != nil {
		t.Fatalf("start after calibration: %v", err)
	}
	checks := bodies[record.EquipmentCheck](h, record.KindEquipmentCheck)
	if len(checks) != 1 || checks[0].Batch != "LOT3" || len(checks[0].Items) != 8 || checks[0].Override != nil {
		t.Fatalf("check: %+v", checks)
	}
	for _, it := range checks[0].Items {
		if it.Equipment == "camera-1" && (it.Calibration == nil || it.Calibration.State != StateOK || it.Calibration.LastRef != rec.Certificate.SHA256) {
			t.Fatalf("camera state at start: %+v", it.Calibration)
		}
	}
	// The stored certificate bytes round-trip through the record.
	cals := bodies[record.Calibration](h, record.KindCalibration)
	last := cals[len(cals)-1]
	if string(last.Certificate.Data) != string(pdf) {
		t.Fatal("certificate bytes differ in the record")
	}
}

func TestOverdueRefusalNamesDueDateAndOverride(t *testing.T) {
	h := newHarness(t, nil)
	h.tick()
	if _, err := calibrate(h, "camera-1", h.now); err != nil {
		t.Fatal(err)
	}
	due := h.now.Add(2190 * time.Hour)
	h.advance(2190*time.Hour + 73*time.Hour) // past due + tolerance
	err := h.checkStart("LOT4")
	wantDue := due.Format("2006-01-02 15:04 MST")
	if !isRefusal(err) || !strings.Contains(err.Error(), "camera-1 (verification) was due "+wantDue) {
		t.Fatalf("refusal: %v", err)
	}
	if _, err := h.tr.Override(context.Background(), "LOT4", "", sig("qa", "approval")); !isRefusal(err) {
		t.Fatalf("override without reason: %v", err)
	}
	o, err := h.tr.Override(context.Background(), "LOT4", "recalibration booked for tomorrow; camera verified with the grade card this morning", sig("qa", "approval"))
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Items) != 1 || o.Items[0].Equipment != "camera-1" || o.Items[0].Due != ts(due) || o.ValidUntil != ts(h.now.Add(8*time.Hour)) {
		t.Fatalf("override: %+v", o)
	}
	if err := h.checkStart("OTHER"); !isRefusal(err) {
		t.Fatal("override used for another batch")
	}
	if err := h.checkStart("LOT4"); err != nil {
		t.Fatalf("start under override: %v", err)
	}
	c := bodies[record.EquipmentCheck](h, record.KindEquipmentCheck)
	if len(c) != 1 || c[0].Override == nil || c[0].Override.Signature.User != "qa" || strings.Join(c[0].Blocked, ",") != "camera-1" {
		t.Fatalf("check: %+v", c)
	}
	if n := len(bodies[record.InterlockOverride](h, record.KindInterlockOverride)); n != 1 {
		t.Fatalf("override records: %d", n)
	}
	// Expired.
	h.b = line.EquipmentBatch{}
	o2, err := h.tr.Override(context.Background(), "LOT5", "reason", sig("qa", "approval"))
	if err != nil {
		t.Fatal(err)
	}
	h.now = h.now.Add(9 * time.Hour)
	if err := h.checkStart(o2.Batch); !isRefusal(err) {
		t.Fatal("expired override accepted")
	}
}

func TestInterlockClassesConfigurable(t *testing.T) {
	cfg := loadConfig(t)
	cfg.Equipment.Interlock = []string{"print"}
	h := newHarness(t, cfg)
	h.tick()
	if err := h.checkStart("LOT6"); err != nil {
		t.Fatalf("verification not interlocked, print baseline valid: %v", err)
	}
}

func TestWorkOrdersAndDueStates(t *testing.T) {
	h := newHarness(t, nil)
	h.tick()
	cals := bodies[record.Calibration](h, record.KindCalibration)
	if len(cals) != 2 || cals[0].Source != "baseline" || cals[0].Equipment != "printer-1" || cals[0].Reference != "CAL-2026-0112" || cals[0].Performed != "2026-10-01T00:00:00Z" {
		t.Fatalf("baseline: %+v", cals)
	}
	due := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC).Add(4380 * time.Hour)
	h.now = due.Add(-8 * 24 * time.Hour)
	h.tick()
	dueFor := func(eq string) []record.EquipmentDue {
		var out []record.EquipmentDue
		for _, d := range bodies[record.EquipmentDue](h, record.KindEquipmentDue) {
			if d.Equipment == eq && d.Activity == "calibration" {
				out = append(out, d)
			}
		}
		return out
	}
	if d := dueFor("printer-1"); len(d) != 0 {
		t.Fatalf("due too early: %+v", d)
	}
	h.advance(24*time.Hour + time.Second) // 7 days before due
	d := dueFor("printer-1")
	if len(d) != 1 || d[0].State != StateDueSoon || d[0].Due != ts(due) || d[0].WorkOrder == "" {
		t.Fatalf("due soon: %+v", d)
	}
	wos := map[string]record.WorkOrder{}
	for _, w := range bodies[record.WorkOrder](h, record.KindWorkOrder) {
		if _, dup := wos[w.ID]; dup {
			t.Fatalf("work order %s opened twice", w.ID)
		}
		wos[w.ID] = w
	}
	wo := wos[d[0].WorkOrder]
	if wo.Equipment != "printer-1" || wo.Activity != "calibration" || wo.WindowFrom != ts(due.Add(-72*time.Hour)) || wo.WindowTo != ts(due.Add(72*time.Hour)) {
		t.Fatalf("work order: %+v", wo)
	}
	h.advance(4 * 24 * time.Hour) // inside the window
	h.advance(8 * 24 * time.Hour) // past it
	d = dueFor("printer-1")
	if len(d) != 3 || d[1].State != StateDue || d[2].State != StateOverdue || d[2].WorkOrder != wo.ID {
		t.Fatalf("states: %+v", d)
	}
	if !contains(h.tr.Alarms(), AlarmCalibrationOverdue+":printer-1") {
		t.Fatalf("alarms: %v", h.tr.Alarms())
	}
	// Late calibration: next due restarts from the day it was done and
	// closes the work order.
	if _, err := h.tr.Record(context.Background(), Activity{Equipment: "printer-1", Activity: "calibration", WorkOrder: "WO-999999", Result: "pass",
		Certificate: &CertificateFile{Name: "c.pdf", ContentType: "application/pdf", Data: pdf}, Signature: sig("tech", "performed by")}); !isRefusal(err) {
		t.Fatalf("wrong work order accepted: %v", err)
	}
	rec, err := h.tr.Record(context.Background(), Activity{Equipment: "printer-1", Activity: "calibration", WorkOrder: wo.ID, Result: "pass",
		Certificate: &CertificateFile{Name: "c.pdf", ContentType: "application/pdf", Data: pdf}, Signature: sig("tech", "performed by")})
	if err != nil {
		t.Fatal(err)
	}
	if rec.WorkOrder != wo.ID || rec.Due != ts(due) || rec.NextDue != ts(h.now.Add(4380*time.Hour)) {
		t.Fatalf("late calibration: %+v", rec)
	}
	if contains(h.tr.Alarms(), AlarmCalibrationOverdue+":printer-1") {
		t.Fatal("alarm stays after calibration")
	}
	// A failed calibration lapses the equipment at once and opens a new work order.
	if _, err := h.tr.Record(context.Background(), Activity{Equipment: "printer-1", Activity: "calibration", Result: "fail",
		Certificate: &CertificateFile{Name: "c.pdf", ContentType: "application/pdf", Data: pdf}, Signature: sig("tech", "performed by")}); err != nil {
		t.Fatal(err)
	}
	d = dueFor("printer-1")
	if last := d[len(d)-1]; last.State != StateFailed || last.WorkOrder == "" || last.WorkOrder == wo.ID {
		t.Fatalf("after a failed calibration: %+v", last)
	}
	if err := h.checkStart("LOT7"); !isRefusal(err) || !strings.Contains(err.Error(), "the last calibration of printer-1 (print) failed") {
		t.Fatalf("start after failed calibration: %v", err)
	}
	// Maintenance needs no certificate.
	if _, err := h.tr.Record(context.Background(), Activity{Equipment: "printer-1", Activity: "maintenance", Result: "pass", Notes: "head cleaned", Signature: sig("tech", "performed by")}); err != nil {
		t.Fatal(err)
	}
}

// A refused start rolls back the records and state its transaction
// produced (work orders, due records): the tracker reloads and numbers
// stay gap-free and unique.
func TestRefusedStartRollsBack(t *testing.T) {
	h := newHarness(t, nil)
	// No tick before: the first hook the tracker sees is the refused start.
	if err := h.checkStart("LOT8"); !isRefusal(err) {
		t.Fatalf("start: %v", err)
	}
	if n := len(h.records()); n != 0 {
		t.Fatalf("a refused start wrote %d records", n)
	}
	h.tick()
	if n := len(bodies[record.EquipmentRegistered](h, record.KindEquipmentRegistered)); n != 1 {
		t.Fatalf("registry recorded %d times", n)
	}
	wos := bodies[record.WorkOrder](h, record.KindWorkOrder)
	seen := map[string]bool{}
	for i, w := range wos {
		if seen[w.ID] {
			t.Fatalf("work order %s twice", w.ID)
		}
		seen[w.ID] = true
		if want := "WO-00000" + string(rune('1'+i)); w.ID != want {
			t.Fatalf("work order %d is %s, want %s", i, w.ID, want)
		}
	}
	// A refused API request changes nothing either.
	if _, err := h.tr.StartDowntime(context.Background(), ManualDowntime{Equipment: "nope", Fault: "x"}); !isRefusal(err) {
		t.Fatal(err)
	}
}

func TestManualDowntime(t *testing.T) {
	h := newHarness(t, nil)
	h.b = line.EquipmentBatch{ID: "LOT9", State: line.BatchHeld, LastSerial: "S5"}
	h.tick()
	ctx := context.Background()
	if _, err := h.tr.StartDowntime(ctx, ManualDowntime{Equipment: "case-station", Fault: "jam", Start: h.now.Add(time.Minute)}); !isRefusal(err) {
		t.Fatalf("future start: %v", err)
	}
	id, err := h.tr.StartDowntime(ctx, ManualDowntime{Equipment: "case-station", Fault: "jam", Detail: "case erector jam", Start: h.now.Add(-10 * time.Minute), By: "op"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.tr.StartDowntime(ctx, ManualDowntime{Equipment: "case-station", Fault: "jam"}); !isRefusal(err) || !strings.Contains(err.Error(), "already down") {
		t.Fatalf("second start: %v", err)
	}
	h.health("printer-1", down("paper_out"))
	if err := h.tr.EndDowntime(ctx, h.tr.Snapshot().Open[1].ID, time.Time{}, "op"); !isRefusal(err) || !strings.Contains(err.Error(), "detected from the driver") {
		t.Fatalf("ending a driver downtime: %v", err)
	}
	h.advance(5 * time.Minute)
	if err := h.tr.EndDowntime(ctx, id, time.Time{}, "op"); err != nil {
		t.Fatal(err)
	}
	e := bodies[record.DowntimeEnded](h, record.KindDowntimeEnded)
	if len(e) != 1 || e[0].ID != id || e[0].Source != "manual" || e[0].DurationS != 900 || e[0].Batch != "LOT9" || e[0].By != "op" {
		t.Fatalf("ended: %+v", e)
	}
}

// Open downtime and schedules survive a restart; a gap in the edge's
// heartbeat is the edge server's own downtime, reportable when long.
func TestRestart(t *testing.T) {
	h := newHarness(t, nil)
	h.b = line.EquipmentBatch{ID: "LOT10", State: line.BatchRunning, LastSerial: "S77"}
	h.tick()
	h.health("printer-1", down("ribbon_out"))
	h.advance(time.Minute)
	h.restart()
	h.now = h.now.Add(5 * time.Hour) // the edge was off for 5 h
	h.tick()
	st := bodies[record.DowntimeStarted](h, record.KindDowntimeStarted)
	en := bodies[record.DowntimeEnded](h, record.KindDowntimeEnded)
	if len(st) != 2 || st[1].Equipment != config.BuiltinEdgeServer || st[1].Source != "recovered" || st[1].Batch != "LOT10" || st[1].Start != ts(t0.Add(time.Minute)) {
		t.Fatalf("started: %+v", st)
	}
	if len(en) != 1 || en[0].Equipment != config.BuiltinEdgeServer || !en[0].Reportable || en[0].DurationS != 5*3600 {
		t.Fatalf("ended: %+v", en)
	}
	rep := bodies[record.DowntimeReportable](h, record.KindDowntimeReportable)
	if len(rep) != 2 || rep[0].Equipment != config.BuiltinEdgeServer || rep[1].Equipment != "printer-1" {
		t.Fatalf("reportable: %+v", rep)
	}
	// The printer's downtime is still open and ends on the first OK report.
	h.health("printer-1", up)
	en = bodies[record.DowntimeEnded](h, record.KindDowntimeEnded)
	if len(en) != 2 || en[1].Equipment != "printer-1" || en[1].Start != ts(t0) {
		t.Fatalf("printer after restart: %+v", en)
	}
	if n := len(bodies[record.EquipmentRegistered](h, record.KindEquipmentRegistered)); n != 1 {
		t.Fatalf("unchanged registry recorded %d times", n)
	}
	if n := len(bodies[record.Calibration](h, record.KindCalibration)); n != 2 {
		t.Fatalf("baselines recorded %d times", n)
	}
}

func TestCertificateChecks(t *testing.T) {
	png := append([]byte("\x89PNG\r\n\x1a\n"), make([]byte, 64)...)
	for _, c := range []struct {
		name string
		f    *CertificateFile
		want string
	}{
		{"ok pdf", &CertificateFile{Name: "a.pdf", ContentType: "application/pdf", Data: pdf}, ""},
		{"ok png", &CertificateFile{Name: "a.png", ContentType: "image/png", Data: png}, ""},
		{"missing", nil, "certificate required"},
		{"no name", &CertificateFile{ContentType: "application/pdf", Data: pdf}, "file name is required"},
		{"empty", &CertificateFile{Name: "a.pdf", ContentType: "application/pdf"}, "a.pdf is empty"},
		{"too big", &CertificateFile{Name: "big.pdf", ContentType: "application/pdf", Data: append(append([]byte{}, pdf...), make([]byte, MaxCertificate)...)}, "the limit is 524288 bytes"},
		{"type", &CertificateFile{Name: "a.docx", ContentType: "application/msword", Data: pdf}, `content type "application/msword"`},
		{"sniff", &CertificateFile{Name: "a.pdf", ContentType: "application/pdf", Data: []byte("<html><script>alert(1)</script></html>")}, "its bytes look like text/html"},
	} {
		err := CheckCertificate(c.f)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

// The tracker's state key is under the equipment/ prefix and readable.
func TestStatePersisted(t *testing.T) {
	h := newHarness(t, nil)
	h.tick()
	h.health("printer-1", down("paper_out"))
	var open map[string]*downtime
	if err := h.db.View(func(tx *store.Tx) error { _, err := tx.GetJSON(store.State, keyOpen, &open); return err }); err != nil {
		t.Fatal(err)
	}
	if open["printer-1"] == nil || open["printer-1"].Fault != "paper_out" {
		t.Fatalf("open state: %+v", open)
	}
}
