package app

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/serialine/serialine/central/auth"
	"github.com/serialine/serialine/central/store"
)

// storeCollector reads the lines, active alerts and live sessions from the
// store at scrape time (so every central instance reports the same
// numbers).
type storeCollector struct {
	st    store.Store
	users *auth.Users

	lineUp, good, rejected, pending, lastSeen, records, quarantined *prometheus.Desc
	alerts, sessions, scrapeErr                                     *prometheus.Desc
}

func newStoreCollector(st store.Store, users *auth.Users) *storeCollector {
	l := []string{"edge", "line"}
	return &storeCollector{st: st, users: users,
		lineUp:      prometheus.NewDesc("serialine_line_executing", "1 when the line's last status is Execute.", l, nil),
		good:        prometheus.NewDesc("serialine_line_units_good_total", "Good verdicts stored for the line.", l, nil),
		rejected:    prometheus.NewDesc("serialine_line_units_rejected_total", "Reject verdicts stored for the line.", l, nil),
		pending:     prometheus.NewDesc("serialine_line_sync_backlog_records", "Records the edge holds that central has not acknowledged (its last status).", l, nil),
		lastSeen:    prometheus.NewDesc("serialine_line_last_seen_seconds", "Unix time of the line's last status.", l, nil),
		records:     prometheus.NewDesc("serialine_line_records_stored", "Records stored for the edge.", l, nil),
		quarantined: prometheus.NewDesc("serialine_line_records_quarantined", "Records of the edge in quarantine.", l, nil),
		alerts:      prometheus.NewDesc("serialine_alerts_active", "Active alerts by severity.", []string{"severity"}, nil),
		sessions:    prometheus.NewDesc("serialine_sessions_live", "Live dashboard sessions.", nil, nil),
		scrapeErr:   prometheus.NewDesc("serialine_store_scrape_errors", "1 when reading the store for these metrics failed.", nil, nil),
	}
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.lineUp, c.good, c.rejected, c.pending, c.lastSeen, c.records, c.quarantined, c.alerts, c.sessions, c.scrapeErr} {
		ch <- d
	}
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	failed := 0.0
	if lines, err := c.st.Lines(ctx); err == nil {
		for _, l := range lines {
			name := l.Line
			if name == "" {
				name = l.Edge
			}
			up := 0.0
			if l.State == "Execute" {
				up = 1
			}
			ch <- prometheus.MustNewConstMetric(c.lineUp, prometheus.GaugeValue, up, l.Edge, name)
			ch <- prometheus.MustNewConstMetric(c.good, prometheus.CounterValue, float64(l.UnitsGood), l.Edge, name)
			ch <- prometheus.MustNewConstMetric(c.rejected, prometheus.CounterValue, float64(l.UnitsRejected), l.Edge, name)
			ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(l.PendingSync), l.Edge, name)
			ch <- prometheus.MustNewConstMetric(c.records, prometheus.GaugeValue, float64(l.Records), l.Edge, name)
			ch <- prometheus.MustNewConstMetric(c.quarantined, prometheus.GaugeValue, float64(l.QuarantinedNum), l.Edge, name)
			if !l.LastSeen.IsZero() {
				ch <- prometheus.MustNewConstMetric(c.lastSeen, prometheus.GaugeValue, float64(l.LastSeen.Unix()), l.Edge, name)
			}
		}
	} else {
		failed = 1
	}
	if list, err := c.st.Alerts(ctx, store.AlertFilter{ActiveOnly: true, Limit: 10000}); err == nil {
		n := map[string]float64{store.SeverityInfo: 0, store.SeverityWarning: 0, store.SeverityCritical: 0}
		for _, a := range list {
			n[a.Severity]++
		}
		for sev, v := range n {
			ch <- prometheus.MustNewConstMetric(c.alerts, prometheus.GaugeValue, v, sev)
		}
	} else {
		failed = 1
	}
	if n, err := c.users.LiveSessions(ctx); err == nil {
		ch <- prometheus.MustNewConstMetric(c.sessions, prometheus.GaugeValue, float64(n))
	} else {
		failed = 1
	}
	ch <- prometheus.MustNewConstMetric(c.scrapeErr, prometheus.GaugeValue, failed)
}
