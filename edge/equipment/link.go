package equipment

import (
	"context"
	"fmt"
	"time"

	"github.com/serialine/serialine/drivers"
	"github.com/serialine/serialine/edge/config"
)

// HealthReporter feeds equipment health through the line engine
// (*line.Engine implements it).
type HealthReporter interface {
	ReportHealth(ctx context.Context, device, kind string, h drivers.Health)
}

// LinkOptions configure the central-link monitor.
type LinkOptions struct {
	// Connected reports whether the MQTT client is connected.
	Connected func() bool
	// Sync returns the last record seq written and the last acknowledged by central.
	Sync func() (head, acked uint64)
	// Report receives the link's health (the engine).
	Report HealthReporter
	// Now is the clock (the engine's); default time.Now.
	Now func() time.Time
	// Interval between polls (default 1s); Grace is how long the client may
	// be disconnected before the link is down (default 10s: reconnects are
	// not downtime); NoAck is how long records may wait for central's
	// acknowledgement while connected before the link is down (default 60s).
	Interval, Grace, NoAck time.Duration
}

// LinkMonitor watches the edge's link to central (the built-in
// central-link equipment): down when the broker connection is lost for
// longer than Grace, or when central stops acknowledging records.
type LinkMonitor struct {
	opt          LinkOptions
	since        time.Time // disconnected since
	lastAcked    uint64
	lastProgress time.Time
	last         *drivers.Health
}

// NewLinkMonitor builds the monitor.
func NewLinkMonitor(opt LinkOptions) *LinkMonitor {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Interval <= 0 {
		opt.Interval = time.Second
	}
	if opt.Grace <= 0 {
		opt.Grace = 10 * time.Second
	}
	if opt.NoAck <= 0 {
		opt.NoAck = time.Minute
	}
	return &LinkMonitor{opt: opt}
}

// Run polls until ctx ends.
func (m *LinkMonitor) Run(ctx context.Context) error {
	t := time.NewTicker(m.opt.Interval)
	defer t.Stop()
	for {
		if h, ok := m.Poll(); ok {
			m.opt.Report.ReportHealth(ctx, config.BuiltinCentralLink, "link", h)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Poll evaluates the link once; ok=false while its state is not known yet
// (connecting, within the grace period at start).
func (m *LinkMonitor) Poll() (drivers.Health, bool) {
	now := m.opt.Now()
	if m.lastProgress.IsZero() {
		m.lastProgress, m.since = now, now
	}
	head, acked := m.opt.Sync()
	if acked != m.lastAcked || head <= acked {
		m.lastAcked, m.lastProgress = acked, now
	}
	var h drivers.Health
	switch {
	case !m.opt.Connected():
		if m.since.IsZero() {
			m.since = now
		}
		if now.Sub(m.since) < m.opt.Grace {
			if m.last == nil {
				return h, false
			}
			return *m.last, true
		}
		h = drivers.Health{Fault: "disconnected", Detail: fmt.Sprintf("no connection to the broker since %s", m.since.UTC().Format(time.RFC3339))}
	case now.Sub(m.lastProgress) >= m.opt.NoAck:
		m.since = time.Time{}
		h = drivers.Health{Connected: true, Fault: "no_ack", Detail: fmt.Sprintf("%d records not acknowledged by central for %s", head-acked, now.Sub(m.lastProgress).Round(time.Second))}
	default:
		m.since = time.Time{}
		h = drivers.Health{Connected: true}
	}
	m.last = &h
	return h, true
}
