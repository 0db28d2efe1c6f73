package app

import (
	"fmt"
	"os"
	"strings"

	"github.com/serialine/serialine/central/alerts"
	"github.com/serialine/serialine/central/config"
	"github.com/serialine/serialine/central/equipment"
)

// defaultMinSeverity: notifiers without min_severity hear of warnings and
// critical alerts.
const defaultMinSeverity = "warning"

// notifiers builds the configured webhook and e-mail notifiers.
func notifiers(cfg *config.Central) ([]alerts.Notifier, error) {
	var out []alerts.Notifier
	for i, w := range cfg.Notify.Webhooks {
		opt := alerts.WebhookOptions{URL: w.URL, Headers: w.Headers, MinSeverity: w.MinSeverity, Central: cfg.ID}
		if opt.MinSeverity == "" {
			opt.MinSeverity = defaultMinSeverity
		}
		if w.SecretFile != "" {
			raw, err := os.ReadFile(w.SecretFile)
			if err != nil {
				return nil, fmt.Errorf("notify.webhooks[%d].secret_file: %w", i, err)
			}
			opt.Secret = []byte(strings.TrimSpace(string(raw)))
		}
		n, err := alerts.NewWebhook(opt)
		if err != nil {
			return nil, fmt.Errorf("notify.webhooks[%d]: %w", i, err)
		}
		out = append(out, n)
	}
	if e := cfg.Notify.Email; e != nil {
		opt := alerts.SMTPOptions{Addr: e.Server, From: e.From, To: e.To, Username: e.Username, Password: e.Password, StartTLS: e.StartTLS,
			MinSeverity: e.MinSeverity, Central: cfg.ID}
		if opt.MinSeverity == "" {
			opt.MinSeverity = defaultMinSeverity
		}
		if e.PasswordFile != "" {
			raw, err := os.ReadFile(e.PasswordFile)
			if err != nil {
				return nil, fmt.Errorf("notify.email.password_file: %w", err)
			}
			opt.Password = strings.TrimSpace(string(raw))
		}
		n, err := alerts.NewSMTP(opt)
		if err != nil {
			return nil, fmt.Errorf("notify.email: %w", err)
		}
		out = append(out, n)
	}
	return out, nil
}

// setupEquipment adds the notifiers and the equipment alert watcher.
func (a *App) setupEquipment() error {
	ns, err := notifiers(a.Cfg)
	if err != nil {
		return err
	}
	for _, n := range ns {
		a.Alerts.AddNotifier(n)
		a.log.Info().Str("notifier", n.Name()).Msg("alerts are notified")
	}
	a.Equipment = equipment.NewWatcher(equipment.WatcherOptions{Store: a.Store, Alerts: a.Alerts, Log: a.log})
	return nil
}
