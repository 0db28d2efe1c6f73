package report

import (
	_ "embed"
	"encoding/csv"
	"fmt"
	"html/template"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"
)

//go:embed daily.html
var dailyHTML string

var dailyTpl = template.Must(template.New("daily").Funcs(template.FuncMap{
	"pct": func(f float64) string { return strconv.FormatFloat(100*f, 'f', 2, 64) + " %" },
	"min": func(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) },
	"ts": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	"reasons":  func(m map[string]int64) string { return joinCounts(m) },
	"downtime": func(m map[string]float64) string { return joinMinutes(m) },
}).Parse(dailyHTML))

// WriteHTML writes the printable report.
func WriteHTML(w io.Writer, d *Daily) error { return dailyTpl.Execute(w, d) }

func joinCounts(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var p []string
	for _, k := range keys {
		p = append(p, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(p, "; ")
}

func joinMinutes(m map[string]float64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var p []string
	for _, k := range keys {
		p = append(p, fmt.Sprintf("%s=%.1f", k, m[k]))
	}
	return strings.Join(p, "; ")
}

// WriteCSV writes one row per line and a last row for the site.
func WriteCSV(w io.Writer, d *Daily) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"date", "edge", "line", "verified", "passed", "failed", "pass_rate", "reject_reasons", "good_units", "aggregated",
		"aggregation_completeness", "downtime_minutes_total", "downtime_minutes_by_class", "reportable_downtimes", "reportable_alerts",
		"calibration_due", "calibration_overdue", "calibrations_performed"})
	row := func(k KPI, edge, line string) {
		var total float64
		for _, m := range k.DowntimeMinutes {
			total += m
		}
		cw.Write([]string{d.Date, edge, line, fmt.Sprint(k.Verified), fmt.Sprint(k.Passed), fmt.Sprint(k.Failed), strconv.FormatFloat(k.PassRate, 'f', 4, 64),
			joinCounts(k.RejectReasons), fmt.Sprint(k.GoodUnits), fmt.Sprint(k.Aggregated), strconv.FormatFloat(k.Completeness, 'f', 4, 64),
			strconv.FormatFloat(total, 'f', 1, 64), joinMinutes(k.DowntimeMinutes), fmt.Sprint(len(k.Reportable)), fmt.Sprint(k.ReportableAlert),
			fmt.Sprint(len(k.CalibrationDue)), fmt.Sprint(len(k.CalibrationOverdue)), fmt.Sprint(len(k.Calibrations))})
	}
	for _, k := range d.Lines {
		row(k, k.Edge, k.Line)
	}
	row(d.Site, "", "site")
	cw.Flush()
	return cw.Error()
}
