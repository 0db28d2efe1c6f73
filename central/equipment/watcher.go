// Package equipment is central's side of the equipment registry: it turns
// the projected equipment state into alerts (FDA-reportable downtime,
// lapsed or due calibration and maintenance), answers the batch audit
// query "the state of every device that touched this batch", and produces
// the export of one downtime event for an FDA notification.
package equipment

import (
	"context"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/serialine/serialine/central/store"
)

// Alert codes raised by the watcher.
const (
	CodeDowntimeReportable = "downtime_reportable"
	CodeCalibrationOverdue = "calibration_overdue"
	CodeCalibrationDueSoon = "calibration_due_soon"
	CodeMaintenanceOverdue = "maintenance_overdue"
	CodeMaintenanceDueSoon = "maintenance_due_soon"
)

const (
	reportableScanLimit     = 5000
	defaultWatcherInterval  = 2 * time.Second
	timeLayout              = "2006-01-02 15:04 MST"
	maxAlertsClearedPerScan = 1000
)

var watchedCodes = []string{CodeDowntimeReportable, CodeCalibrationOverdue, CodeCalibrationDueSoon, CodeMaintenanceOverdue, CodeMaintenanceDueSoon}

// Alerter raises and clears alerts (*alerts.Alerter).
type Alerter interface {
	Raise(ctx context.Context, a store.Alert) (store.Alert, error)
	Clear(ctx context.Context, key string) (bool, error)
}

// WatcherOptions configure a Watcher.
type WatcherOptions struct {
	Store    store.Store
	Alerts   Alerter
	Log      zerolog.Logger
	Interval time.Duration // default 2s
}

// Watcher keeps the equipment alerts in line with the projected state: an
// alert is raised (and notified once) while its condition holds and cleared
// when it is over. It holds no state of its own, so any number of central
// instances can run it (alerts deduplicate by key in the store).
type Watcher struct {
	opt WatcherOptions
	log zerolog.Logger
}

// NewWatcher builds a watcher.
func NewWatcher(opt WatcherOptions) *Watcher {
	if opt.Interval <= 0 {
		opt.Interval = defaultWatcherInterval
	}
	return &Watcher{opt: opt, log: opt.Log.With().Str("component", "equipment").Logger()}
}

// Run scans until ctx ends.
func (w *Watcher) Run(ctx context.Context) error {
	t := time.NewTicker(w.opt.Interval)
	defer t.Stop()
	for {
		if err := w.Scan(ctx); err != nil && ctx.Err() == nil {
			w.log.Error().Err(err).Msg("equipment alert scan failed")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// DowntimeKey is the alert key of a reportable downtime.
func DowntimeKey(d store.Downtime) string {
	return fmt.Sprintf("%s:%s:%d:%s", CodeDowntimeReportable, d.Edge, d.Epoch, d.ID)
}

// Wanted lists the alerts the current state calls for (by key).
func Wanted(ctx context.Context, st store.Store) (map[string]store.Alert, error) {
	want := map[string]store.Alert{}
	dts, err := st.Downtimes(ctx, store.DowntimeFilter{ReportableOnly: true, Limit: reportableScanLimit})
	if err != nil {
		return nil, err
	}
	for _, d := range dts {
		if !d.Open() && d.RootCause != "" {
			continue // ended and remediated: the record set for the notification is complete
		}
		state := "still down"
		if !d.Open() {
			state = fmt.Sprintf("ended %s after %s, remediation not signed yet", d.End.Format(timeLayout), time.Duration(d.DurationS*float64(time.Second)).Round(time.Second))
		}
		batch := ""
		if d.Batch != "" {
			batch = fmt.Sprintf(", batch %s, serials %s..%s", d.Batch, d.SerialFrom, d.SerialTo)
			if d.SerialFrom == "" && d.Position != "" {
				batch = fmt.Sprintf(", batch %s at serial %s", d.Batch, d.Position)
			}
		}
		msg := fmt.Sprintf("FDA-reportable downtime %s of %s (%s, %s) on %s since %s (threshold %s)%s: %s",
			d.ID, d.Equipment, d.Class, d.Fault, d.Edge, d.Start.Format(timeLayout), time.Duration(d.ThresholdS)*time.Second, batch, state)
		ref := d.ReportableRef
		if ref == "" {
			ref = d.StartRef
		}
		want[DowntimeKey(d)] = store.Alert{Severity: store.SeverityCritical, Code: CodeDowntimeReportable, Key: DowntimeKey(d), Edge: d.Edge, Message: msg, Ref: ref}
	}
	eqs, err := st.EquipmentList(ctx, "")
	if err != nil {
		return nil, err
	}
	for _, e := range eqs {
		if !e.Registered {
			continue
		}
		for _, s := range []struct {
			activity, state       string
			due, windowTo         time.Time
			overdue, dueSoon      string
			overdueSev, dueSoonSv string
		}{
			{"calibration", e.CalState, e.CalDue, e.CalWindowTo, CodeCalibrationOverdue, CodeCalibrationDueSoon, store.SeverityCritical, store.SeverityWarning},
			{"maintenance", e.PMState, e.PMDue, e.PMWindowTo, CodeMaintenanceOverdue, CodeMaintenanceDueSoon, store.SeverityWarning, store.SeverityInfo},
		} {
			var code, sev, msg string
			switch s.state {
			case "overdue":
				code, sev = s.overdue, s.overdueSev
				msg = fmt.Sprintf("%s of %s (%s) on %s was due %s and is overdue since %s", s.activity, e.Name, e.Class, e.Edge, s.due.Format(timeLayout), s.windowTo.Format(timeLayout))
			case "never":
				code, sev = s.overdue, s.overdueSev
				msg = fmt.Sprintf("%s (%s) on %s has no recorded %s", e.Name, e.Class, e.Edge, s.activity)
			case "failed":
				code, sev = s.overdue, s.overdueSev
				msg = fmt.Sprintf("the last %s of %s (%s) on %s failed", s.activity, e.Name, e.Class, e.Edge)
			case "due_soon", "due":
				code, sev = s.dueSoon, s.dueSoonSv
				msg = fmt.Sprintf("%s of %s (%s) on %s is due %s (window until %s)", s.activity, e.Name, e.Class, e.Edge, s.due.Format(timeLayout), s.windowTo.Format(timeLayout))
			default:
				continue
			}
			key := fmt.Sprintf("%s:%s:%s", code, e.Edge, e.Name)
			want[key] = store.Alert{Severity: sev, Code: code, Key: key, Edge: e.Edge, Message: msg}
		}
	}
	return want, nil
}

// Scan raises the alerts the state calls for and clears those it no longer does.
func (w *Watcher) Scan(ctx context.Context) error {
	want, err := Wanted(ctx, w.opt.Store)
	if err != nil {
		return err
	}
	for _, a := range want {
		if _, err := w.opt.Alerts.Raise(ctx, a); err != nil {
			return err
		}
	}
	for _, code := range watchedCodes {
		active, err := w.opt.Store.Alerts(ctx, store.AlertFilter{ActiveOnly: true, Code: code, Limit: maxAlertsClearedPerScan})
		if err != nil {
			return err
		}
		for _, a := range active {
			if _, still := want[a.Key]; still || a.Key == "" {
				continue
			}
			if _, err := w.opt.Alerts.Clear(ctx, a.Key); err != nil {
				return err
			}
			w.log.Info().Str("alert", a.Key).Msg("equipment alert cleared")
		}
	}
	return nil
}
