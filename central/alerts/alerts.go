// Package alerts raises, clears and acknowledges central's alerts (stored in
// the compliance store, so every central instance and the dashboard see the
// same list) and hands each new alert to the configured notifiers (webhook,
// e-mail ...). Acknowledging an alert is a user action recorded in central's
// journal.
package alerts

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/sync/record"
)

// Notifier delivers a new alert to people (a webhook, an SMTP server ...).
type Notifier interface {
	Name() string
	Notify(ctx context.Context, a store.Alert) error
}

// Journal records user actions (central/journal.Journal).
type Journal interface {
	Action(ctx context.Context, a record.UserAction) (store.Stored, error)
}

// Options configure an Alerter.
type Options struct {
	Store   store.Store
	Journal Journal
	Log     zerolog.Logger
	Now     func() time.Time
	// Retry is how long a notifier is retried (with backoff) for one alert
	// before the failure is logged and given up; default 10 minutes.
	Retry time.Duration
}

// Alerter raises alerts and notifies.
type Alerter struct {
	opt Options
	log zerolog.Logger

	mu        sync.Mutex
	notifiers []Notifier
	queue     chan store.Alert
	ctx       context.Context
	wg        sync.WaitGroup

	raised   *prometheus.CounterVec
	notified *prometheus.CounterVec
}

// New builds an Alerter; Run delivers notifications.
func New(opt Options) *Alerter {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Retry <= 0 {
		opt.Retry = 10 * time.Minute
	}
	return &Alerter{
		opt: opt, log: opt.Log.With().Str("component", "alerts").Logger(),
		queue:    make(chan store.Alert, 1024),
		raised:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "serialine_alerts_raised_total", Help: "Alerts raised, by code."}, []string{"code"}),
		notified: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "serialine_alert_notifications_total", Help: "Alert notifications, by notifier and result."}, []string{"notifier", "result"}),
	}
}

// Register adds the alert metrics to a Prometheus registry.
func (a *Alerter) Register(reg prometheus.Registerer) error {
	return errors.Join(reg.Register(a.raised), reg.Register(a.notified))
}

// AddNotifier adds a notifier for alerts raised from now on.
func (a *Alerter) AddNotifier(n Notifier) {
	a.mu.Lock()
	a.notifiers = append(a.notifiers, n)
	a.mu.Unlock()
}

// Raise stores an alert (deduplicated by Key while active), logs it and
// queues it for the notifiers if it is new.
func (a *Alerter) Raise(ctx context.Context, al store.Alert) (store.Alert, error) {
	if al.At.IsZero() {
		al.At = a.opt.Now().UTC()
	}
	if al.Severity == "" {
		al.Severity = store.SeverityWarning
	}
	stored, created, err := a.opt.Store.RaiseAlert(ctx, al)
	if err != nil {
		a.log.Error().Err(err).Str("code", al.Code).Str("alert_edge", al.Edge).Str("alert", al.Message).Msg("alert not stored")
		return al, err
	}
	if !created {
		return stored, nil
	}
	a.raised.WithLabelValues(stored.Code).Inc()
	a.log.Error().Int64("alert_id", stored.ID).Str("severity", stored.Severity).Str("code", stored.Code).Str("alert_edge", stored.Edge).
		Str("ref", stored.Ref).Msg("ALERT: " + stored.Message)
	select {
	case a.queue <- stored:
	default:
		a.log.Error().Int64("alert_id", stored.ID).Msg("notification queue full: alert stored and shown, not notified")
	}
	return stored, nil
}

// Clear ends the active alert with this key.
func (a *Alerter) Clear(ctx context.Context, key string) (bool, error) {
	return a.opt.Store.ClearAlert(ctx, key, a.opt.Now().UTC())
}

// Ack acknowledges an alert for a user and records the action in the journal.
func (a *Alerter) Ack(ctx context.Context, id int64, user, name, reason string) error {
	if a.opt.Journal == nil {
		return errors.New("alerts: no journal to record the acknowledgement")
	}
	now := a.opt.Now().UTC()
	if err := a.opt.Store.AckAlert(ctx, id, user, now); err != nil {
		return err
	}
	_, err := a.opt.Journal.Action(ctx, record.UserAction{User: user, Name: name, Action: "alert.acknowledged", Target: strconv.FormatInt(id, 10), Reason: reason})
	return err
}

// Run delivers queued notifications until ctx ends.
func (a *Alerter) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			a.wg.Wait()
			return nil
		case al := <-a.queue:
			a.mu.Lock()
			ns := append([]Notifier(nil), a.notifiers...)
			a.mu.Unlock()
			for _, n := range ns {
				a.wg.Add(1)
				go func() {
					defer a.wg.Done()
					a.deliver(ctx, n, al)
				}()
			}
		}
	}
}

func (a *Alerter) deliver(ctx context.Context, n Notifier, al store.Alert) {
	deadline := a.opt.Now().Add(a.opt.Retry)
	wait := time.Second
	for attempt := 1; ; attempt++ {
		nctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := n.Notify(nctx, al)
		cancel()
		if err == nil {
			a.notified.WithLabelValues(n.Name(), "ok").Inc()
			a.log.Info().Int64("alert_id", al.ID).Str("notifier", n.Name()).Int("attempt", attempt).Msg("alert notified")
			return
		}
		a.notified.WithLabelValues(n.Name(), "error").Inc()
		if ctx.Err() != nil || a.opt.Now().Add(wait).After(deadline) {
			a.log.Error().Err(err).Int64("alert_id", al.ID).Str("notifier", n.Name()).Int("attempts", attempt).Msg("alert notification given up")
			return
		}
		a.log.Warn().Err(err).Int64("alert_id", al.ID).Str("notifier", n.Name()).Dur("retry_in", wait).Msg("alert notification failed")
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(wait*2, time.Minute)
	}
}
