package app

import (
	"errors"
	"fmt"
	"sort"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/serialine/serialine/edge/line"
	"github.com/serialine/serialine/edge/store"
)

// engineCollector reads the engine's live status at scrape time: one
// consistent snapshot per scrape.
type engineCollector struct {
	status func() line.Status
	edge   string

	state, good, rejected, inFlight, pending, acked, last, device, speed, cases, pallets, commissioned *prometheus.Desc
}

func newEngineCollector(edge, lineID string, status func() line.Status) *engineCollector {
	c := prometheus.Labels{"edge": edge, "line": lineID}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("serialine_edge_"+name, help, labels, c)
	}
	return &engineCollector{status: status, edge: edge,
		state:        d("state", "PackML state number (Status.StateCurrent): 6 Execute, 11 Held, 5 Suspended, 2 Stopped, 4 Idle ...", "state"),
		good:         d("batch_units_good", "Good verdicts in the running batch."),
		rejected:     d("batch_units_rejected", "Reject verdicts in the running batch, by reason.", "reason"),
		commissioned: d("batch_units_commissioned", "Serials sent to print in the running batch."),
		inFlight:     d("units_in_flight", "Units printed and awaiting a verdict."),
		pending:      d("sync_pending_records", "Records not yet acknowledged by central."),
		acked:        d("sync_acked_seq", "Last record seq central acknowledged."),
		last:         d("log_head_seq", "Last record seq written."),
		device:       d("device_up", "1 when the device reports healthy.", "device", "health"),
		speed:        d("units_per_minute", "Verdicts per minute over the last minute."),
		cases:        d("batch_cases_closed", "Cases closed in the running batch."),
		pallets:      d("batch_pallets_closed", "Pallets closed in the running batch."),
	}
}

func (c *engineCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.state, c.good, c.rejected, c.commissioned, c.inFlight, c.pending, c.acked, c.last, c.device, c.speed, c.cases, c.pallets} {
		ch <- d
	}
}

func (c *engineCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.status()
	g := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	g(c.state, float64(s.PackML), s.State)
	g(c.good, float64(s.Good))
	g(c.commissioned, float64(s.Commissioned))
	reasons := make([]string, 0, len(s.Reasons))
	for r := range s.Reasons {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		g(c.rejected, float64(s.Reasons[r]), r)
	}
	g(c.inFlight, float64(s.InFlight))
	g(c.pending, float64(s.PendingSync))
	g(c.acked, float64(s.AckedSeq))
	g(c.last, float64(s.LastSeq))
	g(c.speed, s.UnitsPerMin)
	g(c.cases, float64(s.CasesClosed))
	g(c.pallets, float64(s.PalletsClosed))
	for dev, h := range s.Devices {
		up := 0.0
		if h == "ok" {
			up = 1
		}
		g(c.device, up, dev, h)
	}
}

// newRegistry builds the edge's Prometheus registry.
func newRegistry(e *Edge) (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	err := errors.Join(
		reg.Register(collectors.NewGoCollector()),
		reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})),
		reg.Register(newEngineCollector(e.Cfg.Edge.ID, e.Cfg.Line.ID, e.Engine.Status)),
	)
	return reg, err
}

// Ready reports whether the edge can run its line: the engine recovered its
// state and the store is open.
func (e *Edge) Ready() error {
	select {
	case <-e.Engine.Ready():
	default:
		return errors.New("line engine not ready (recovering its state)")
	}
	if err := e.Store.View(func(*store.Tx) error { return nil }); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}
