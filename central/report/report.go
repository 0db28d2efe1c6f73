// Package report computes the daily compliance KPIs per line and for the
// site: verification pass rate, reject reasons, aggregation completeness,
// downtime minutes by class, reportable (> 4 h) downtime, and calibration
// due / overdue.
//
// What each figure reads (a day is [00:00, 24:00) UTC):
//
//   - pass rate and reject reasons: the unit.verified records of the day
//     (pass / fail, reason);
//   - aggregation completeness: of the units commissioned that day that are
//     verified good now (units projection), the share that is in a case;
//   - downtime: downtime.started / downtime.ended records, paired per
//     equipment (and per "id" when the body has one), read generically: the
//     body's "equipment" (or "device"), "class" (default "unclassified"),
//     "start" / "end" (RFC 3339) when present, else the record times. An
//     interval still open at the report time runs until then. Minutes are
//     the part of each interval inside the day; starts up to 7 days before
//     the day are read;
//   - reportable: downtime intervals longer than 4 h that overlap the day,
//     and alerts with code downtime_reportable raised that day;
//   - calibration: alerts with codes calibration_due / calibration_overdue
//     raised that day or still active, and the calibration records of the
//     day (equipment, and the body's "due"/"next_due" when present).
package report

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/sync/record"
)

// ReportableAfter is the downtime length that makes an interruption
// reportable.
const ReportableAfter = 4 * time.Hour

// Lookback is how far before the day downtime starts are read.
const Lookback = 7 * 24 * time.Hour

// Daily is the report of one day.
type Daily struct {
	Date        string    `json:"date"` // YYYY-MM-DD (UTC)
	GeneratedAt time.Time `json:"generated_at"`
	Site        KPI       `json:"site"`
	Lines       []KPI     `json:"lines"`
}

// KPI are the figures of one line (or the site: Edge empty).
type KPI struct {
	Edge string `json:"edge,omitempty"`
	Line string `json:"line,omitempty"`

	Verified      int64            `json:"verified"`
	Passed        int64            `json:"passed"`
	Failed        int64            `json:"failed"`
	PassRate      float64          `json:"pass_rate"` // 0..1; 0 when nothing verified
	RejectReasons map[string]int64 `json:"reject_reasons"`

	GoodUnits    int64   `json:"good_units"`
	Aggregated   int64   `json:"aggregated"`
	Completeness float64 `json:"aggregation_completeness"` // 0..1

	DowntimeMinutes map[string]float64 `json:"downtime_minutes"` // by class
	Reportable      []Downtime         `json:"reportable"`
	ReportableAlert int64              `json:"reportable_alerts"`

	CalibrationDue     []Calibration `json:"calibration_due"`
	CalibrationOverdue []Calibration `json:"calibration_overdue"`
	Calibrations       []Calibration `json:"calibrations"` // performed that day
}

// Downtime is one interval.
type Downtime struct {
	Edge      string    `json:"edge"`
	Equipment string    `json:"equipment"`
	Class     string    `json:"class"`
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"` // zero: still down
	Minutes   float64   `json:"minutes"`
	Open      bool      `json:"open"`
}

// Calibration is a calibration alert or record.
type Calibration struct {
	Edge      string    `json:"edge"`
	Equipment string    `json:"equipment,omitempty"`
	Message   string    `json:"message,omitempty"`
	Due       string    `json:"due,omitempty"`
	At        time.Time `json:"at"`
	Ref       string    `json:"ref,omitempty"`
}

func newKPI(edge, line string) KPI {
	return KPI{Edge: edge, Line: line, RejectReasons: map[string]int64{}, DowntimeMinutes: map[string]float64{},
		Reportable: []Downtime{}, CalibrationDue: []Calibration{}, CalibrationOverdue: []Calibration{}, Calibrations: []Calibration{}}
}

// ParseDate reads YYYY-MM-DD (empty: today in UTC).
func ParseDate(s string, now time.Time) (time.Time, error) {
	if s == "" {
		n := now.UTC()
		return time.Date(n.Year(), n.Month(), n.Day(), 0, 0, 0, 0, time.UTC), nil
	}
	d, err := time.Parse("2006-01-02", s)
	if err != nil {
		return time.Time{}, fmt.Errorf("date %q: want YYYY-MM-DD", s)
	}
	return d, nil
}

// Compute builds the report of the day that starts at day (UTC midnight).
func Compute(ctx context.Context, st store.Store, day time.Time, now time.Time) (*Daily, error) {
	day = time.Date(day.Year(), day.Month(), day.Day(), 0, 0, 0, 0, time.UTC)
	end := day.Add(24 * time.Hour)
	lines, err := st.Lines(ctx)
	if err != nil {
		return nil, err
	}
	rep := &Daily{Date: day.Format("2006-01-02"), GeneratedAt: now.UTC(), Site: newKPI("", "")}
	alerts, err := st.Alerts(ctx, store.AlertFilter{Limit: 100000})
	if err != nil {
		return nil, err
	}
	for _, l := range lines {
		k := newKPI(l.Edge, l.Line)
		if err := lineKPI(ctx, st, &k, day, end, now); err != nil {
			return nil, fmt.Errorf("report %s edge %s: %w", rep.Date, l.Edge, err)
		}
		for _, a := range alerts {
			if a.Edge != l.Edge {
				continue
			}
			raised := !a.At.Before(day) && a.At.Before(end)
			activeAtEnd := a.At.Before(end) && (a.Active || (!a.ClearedAt.IsZero() && !a.ClearedAt.Before(end)))
			c := Calibration{Edge: a.Edge, Message: a.Message, At: a.At, Ref: a.Ref}
			switch a.Code {
			case "calibration_due":
				if raised || activeAtEnd {
					k.CalibrationDue = append(k.CalibrationDue, c)
				}
			case "calibration_overdue":
				if raised || activeAtEnd {
					k.CalibrationOverdue = append(k.CalibrationOverdue, c)
				}
			case "downtime_reportable":
				if raised {
					k.ReportableAlert++
				}
			}
		}
		rep.Lines = append(rep.Lines, k)
		add(&rep.Site, &k)
	}
	rates(&rep.Site)
	return rep, nil
}

func add(s, k *KPI) {
	s.Verified += k.Verified
	s.Passed += k.Passed
	s.Failed += k.Failed
	for r, n := range k.RejectReasons {
		s.RejectReasons[r] += n
	}
	s.GoodUnits += k.GoodUnits
	s.Aggregated += k.Aggregated
	for c, m := range k.DowntimeMinutes {
		s.DowntimeMinutes[c] += m
	}
	s.Reportable = append(s.Reportable, k.Reportable...)
	s.ReportableAlert += k.ReportableAlert
	s.CalibrationDue = append(s.CalibrationDue, k.CalibrationDue...)
	s.CalibrationOverdue = append(s.CalibrationOverdue, k.CalibrationOverdue...)
	s.Calibrations = append(s.Calibrations, k.Calibrations...)
}

func rates(k *KPI) {
	if k.Verified > 0 {
		k.PassRate = float64(k.Passed) / float64(k.Verified)
	}
	if k.GoodUnits > 0 {
		k.Completeness = float64(k.Aggregated) / float64(k.GoodUnits)
	}
}

func lineKPI(ctx context.Context, st store.Store, k *KPI, day, end, now time.Time) error {
	err := st.ScanRecords(ctx, store.RecordFilter{Edge: k.Edge, From: day, To: end.Add(-time.Nanosecond), Kinds: []record.Kind{record.KindUnitVerified, record.KindCalibration}}, func(s store.Stored) error {
		r := &s.Record
		switch r.Kind {
		case record.KindUnitVerified:
			var b record.UnitVerified
			if err := json.Unmarshal(r.Body, &b); err != nil {
				return fmt.Errorf("record %s: %w", store.RefOf(r), err)
			}
			k.Verified++
			if b.Pass {
				k.Passed++
			} else {
				k.Failed++
				reason := b.Reason
				if reason == "" {
					reason = "unspecified"
				}
				k.RejectReasons[reason]++
			}
		case record.KindCalibration:
			var b map[string]any
			_ = json.Unmarshal(r.Body, &b)
			k.Calibrations = append(k.Calibrations, Calibration{Edge: k.Edge, Equipment: str(b, "equipment", "device"), Due: str(b, "next_due", "due"), At: r.Time, Ref: store.RefOf(r).String()})
		}
		return nil
	})
	if err != nil {
		return err
	}
	err = st.ScanUnits(ctx, store.UnitFilter{Edge: k.Edge, From: day, To: end}, func(u store.Unit) error {
		if u.Status == "verified" {
			k.GoodUnits++
			if u.Parent != "" {
				k.Aggregated++
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := downtime(ctx, st, k, day, end, now); err != nil {
		return err
	}
	rates(k)
	return nil
}

func str(m map[string]any, keys ...string) string {
	for _, k := range keys {
		if s, ok := m[k].(string); ok && s != "" {
			return s
		}
	}
	return ""
}

func bodyTime(m map[string]any, key string, fallback time.Time) time.Time {
	if s, ok := m[key].(string); ok {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return t.UTC()
		}
	}
	return fallback.UTC()
}

func downtime(ctx context.Context, st store.Store, k *KPI, day, end, now time.Time) error {
	type key struct{ equipment, id string }
	open := map[key]*Downtime{}
	var done []Downtime
	err := st.ScanRecords(ctx, store.RecordFilter{Edge: k.Edge, From: day.Add(-Lookback), To: end.Add(-time.Nanosecond), Kinds: []record.Kind{record.KindDowntimeStarted, record.KindDowntimeEnded}}, func(s store.Stored) error {
		r := &s.Record
		var b map[string]any
		if json.Unmarshal(r.Body, &b) != nil {
			b = map[string]any{}
		}
		kk := key{str(b, "equipment", "device"), str(b, "id")}
		class := str(b, "class")
		if class == "" {
			class = "unclassified"
		}
		switch r.Kind {
		case record.KindDowntimeStarted:
			if _, ok := open[kk]; !ok {
				open[kk] = &Downtime{Edge: k.Edge, Equipment: kk.equipment, Class: class, Start: bodyTime(b, "start", r.Time)}
			}
		case record.KindDowntimeEnded:
			d, ok := open[kk]
			if !ok {
				return nil // started before the lookback
			}
			delete(open, kk)
			d.End = bodyTime(b, "end", r.Time)
			if class != "unclassified" {
				d.Class = class // the end record may classify it (root cause known)
			}
			done = append(done, *d)
		}
		return nil
	})
	if err != nil {
		return err
	}
	stop := now.UTC()
	if stop.After(end) {
		stop = end
	}
	for _, d := range open {
		d.Open = true
		done = append(done, *d)
	}
	sort.Slice(done, func(i, j int) bool { return done[i].Start.Before(done[j].Start) })
	for _, d := range done {
		e := d.End
		if d.Open {
			e = stop
		}
		from, to := d.Start, e
		if from.Before(day) {
			from = day
		}
		if to.After(end) {
			to = end
		}
		if !to.After(from) {
			continue
		}
		m := to.Sub(from).Minutes()
		k.DowntimeMinutes[d.Class] += m
		d.Minutes = e.Sub(d.Start).Minutes()
		if e.Sub(d.Start) > ReportableAfter {
			k.Reportable = append(k.Reportable, d)
		}
	}
	return nil
}
