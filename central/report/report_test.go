package report

import (
	"bytes"
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/central/store/storetest"
	"github.com/serialine/serialine/central/store/storetest/backends"
	"github.com/serialine/serialine/sync/record"
)

func TestDaily(t *testing.T) {
	backends.Run(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		c := storetest.NewChain("edge-1", 1, 71)
		st.EnrollEdge(ctx, store.Edge{ID: c.Edge, PublicKey: c.Pub(), EnrolledBy: "t"})
		st.UpdateStatus(ctx, statusOf(c.Edge))
		recs := c.Scenario() // 5 verified (4 pass, 1 no_read); 4 good units, all in the case
		recs = append(recs, c.Next(
			record.KindDowntimeStarted, record.DowntimeStarted{ID: "DT-1", Equipment: "camera-1", Class: "verification", Critical: true, Source: "driver", Fault: "disconnected", Start: "2026-11-23T22:00:00Z"},
			record.KindDowntimeStarted, record.DowntimeStarted{ID: "DT-2", Equipment: "printer-1", Class: "print", Critical: true, Source: "driver", Fault: "paper_out", Start: "2026-11-24T10:00:00Z"},
			record.KindDowntimeEnded, record.DowntimeEnded{ID: "DT-1", Equipment: "camera-1", Class: "verification", Critical: true, Source: "driver", Fault: "disconnected", Start: "2026-11-23T22:00:00Z", End: "2026-11-24T03:00:00Z", DurationS: 5 * 3600},
			record.KindDowntimeEnded, record.DowntimeEnded{ID: "DT-2", Equipment: "printer-1", Class: "print", Critical: true, Source: "driver", Fault: "paper_out", Start: "2026-11-24T10:00:00Z", End: "2026-11-24T10:30:00Z", DurationS: 1800},
			record.KindDowntimeStarted, record.DowntimeStarted{ID: "DT-3", Equipment: "plc-1", Class: "verification", Critical: true, Source: "driver", Fault: "disconnected", Start: "2026-11-24T23:00:00Z"},
			record.KindCalibration, record.Calibration{Equipment: "camera-1", Class: "verification", Activity: "calibration", Performed: "2026-11-24T11:00:00Z", Result: "pass", NextDue: "2027-05-24T00:00:00Z"},
		)...)
		if err := st.Append(ctx, c.Edge, record.Head{Epoch: 1}, recs); err != nil {
			t.Fatal(err)
		}
		day := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
		st.RaiseAlert(ctx, store.Alert{At: day.Add(10 * time.Hour), Severity: store.SeverityCritical, Code: "calibration_overdue", Key: "cal:camera-1", Edge: c.Edge, Message: "camera-1 calibration overdue"})
		old, _, _ := st.RaiseAlert(ctx, store.Alert{At: day.Add(-48 * time.Hour), Severity: store.SeverityWarning, Code: "calibration_due", Key: "due:x", Edge: c.Edge, Message: "old"})
		st.ClearAlert(ctx, old.Key, day.Add(-24*time.Hour))
		st.RaiseAlert(ctx, store.Alert{At: day.Add(4 * time.Hour), Severity: store.SeverityCritical, Code: "downtime_reportable", Edge: c.Edge, Message: "camera-1 down > 4 h"})

		rep, err := Compute(ctx, st, day, day.Add(36*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Lines) != 1 {
			t.Fatalf("lines %+v", rep.Lines)
		}
		k := rep.Lines[0]
		if k.Line != "line-1" || k.Verified != 5 || k.Passed != 4 || k.Failed != 1 || k.PassRate != 0.8 || k.RejectReasons["no_read"] != 1 {
			t.Fatalf("verification KPIs %+v", k)
		}
		if k.GoodUnits != 4 || k.Aggregated != 4 || k.Completeness != 1 {
			t.Fatalf("aggregation %d/%d %v", k.Aggregated, k.GoodUnits, k.Completeness)
		}
		// verification: camera-1 00:00-03:00 of the day (180 of 300 min) and
		// plc-1 23:00-24:00 (still down); print: printer-1, 30 min.
		if math.Abs(k.DowntimeMinutes["verification"]-240) > 1e-9 || math.Abs(k.DowntimeMinutes["print"]-30) > 1e-9 {
			t.Fatalf("downtime %v", k.DowntimeMinutes)
		}
		if len(k.Reportable) != 1 || k.Reportable[0].Equipment != "camera-1" || k.Reportable[0].Minutes != 300 || k.ReportableAlert != 1 {
			t.Fatalf("reportable %+v %d", k.Reportable, k.ReportableAlert)
		}
		if len(k.CalibrationOverdue) != 1 || len(k.CalibrationDue) != 0 || len(k.Calibrations) != 1 || k.Calibrations[0].Due != "2027-05-24T00:00:00Z" {
			t.Fatalf("calibration %+v %+v %+v", k.CalibrationOverdue, k.CalibrationDue, k.Calibrations)
		}
		if rep.Site.Verified != 5 || rep.Site.PassRate != 0.8 || rep.Site.DowntimeMinutes["verification"] != k.DowntimeMinutes["verification"] {
			t.Fatalf("site %+v", rep.Site)
		}
		// A report made at 23:30 counts plc-1 until then.
		early, _ := Compute(ctx, st, day, day.Add(23*time.Hour+30*time.Minute))
		if m := early.Lines[0].DowntimeMinutes["verification"]; math.Abs(m-210) > 1e-9 {
			t.Fatalf("open downtime at 23:30: %v", m)
		}
		// The next day: plc-1 is still down; nothing verified.
		next, _ := Compute(ctx, st, day.Add(24*time.Hour), day.Add(30*time.Hour))
		if nk := next.Lines[0]; nk.Verified != 0 || nk.PassRate != 0 || nk.DowntimeMinutes["verification"] != 360 || len(nk.Reportable) != 1 || !nk.Reportable[0].Open {
			t.Fatalf("next day %+v", nk)
		}

		var csvOut, htmlOut bytes.Buffer
		if err := WriteCSV(&csvOut, rep); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(csvOut.String()), "\n")
		if len(lines) != 3 || !strings.HasPrefix(lines[1], "2026-11-24,edge-1,line-1,5,4,1,0.8000,no_read=1,4,4,1.0000,270.0,print=30.0; verification=240.0,1,1,0,1,1") || !strings.Contains(lines[2], ",site,") {
			t.Fatalf("csv:\n%s", csvOut.String())
		}
		if err := WriteHTML(&htmlOut, rep); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"Daily compliance report 2026-11-24", "80.00 %", "no_read=1", "camera-1 calibration overdue", "300.0"} {
			if !strings.Contains(htmlOut.String(), want) {
				t.Errorf("HTML lacks %q", want)
			}
		}
	})
}

func TestParseDate(t *testing.T) {
	now := time.Date(2026, 11, 24, 15, 4, 5, 0, time.UTC)
	if d, err := ParseDate("", now); err != nil || !d.Equal(time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("today: %v %v", d, err)
	}
	if _, err := ParseDate("24.11.2026", now); err == nil || !strings.Contains(err.Error(), "want YYYY-MM-DD") {
		t.Fatalf("bad date: %v", err)
	}
}
