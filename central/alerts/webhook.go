package alerts

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/serialine/serialine/central/store"
)

var severityRank = map[string]int{store.SeverityInfo: 1, store.SeverityWarning: 2, store.SeverityCritical: 3}

// ValidSeverity reports whether s is info, warning or critical.
func ValidSeverity(s string) bool { return severityRank[s] > 0 }

// atLeast reports whether severity is at least min ("" means any).
func atLeast(severity, min string) bool {
	return min == "" || severityRank[severity] >= severityRank[min]
}

// WebhookOptions configure a webhook notifier.
type WebhookOptions struct {
	URL string // http:// or https://
	// Secret, if set, signs each body: header X-Serialine-Signature:
	// sha256=<hex HMAC-SHA256(secret, body)>.
	Secret  []byte
	Headers map[string]string
	// MinSeverity: alerts below it are not sent (default: all).
	MinSeverity string
	// Central names this central instance in the payload.
	Central string
	Client  *http.Client // default: 30 s timeout
}

// Webhook posts each alert as JSON to a URL (Slack/Teams relays, incident
// tools, a plant's MES).
type Webhook struct {
	opt  WebhookOptions
	name string
}

var _ Notifier = (*Webhook)(nil)

// NewWebhook checks the options and builds the notifier.
func NewWebhook(opt WebhookOptions) (*Webhook, error) {
	u, err := url.Parse(opt.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("webhook url %q: want http://host/... or https://host/...", opt.URL)
	}
	if opt.MinSeverity != "" && !ValidSeverity(opt.MinSeverity) {
		return nil, fmt.Errorf("webhook %s: min_severity %q: want info, warning or critical", u.Host, opt.MinSeverity)
	}
	if opt.Client == nil {
		opt.Client = &http.Client{Timeout: 30 * time.Second}
	}
	return &Webhook{opt: opt, name: "webhook:" + u.Host}, nil
}

// Name implements Notifier.
func (w *Webhook) Name() string { return w.name }

// WebhookPayload is the JSON body a webhook receives.
type WebhookPayload struct {
	Source   string    `json:"source"` // "serialine"
	Central  string    `json:"central,omitempty"`
	ID       int64     `json:"id"`
	At       time.Time `json:"at"`
	Severity string    `json:"severity"`
	Code     string    `json:"code"`
	Edge     string    `json:"edge,omitempty"`
	Message  string    `json:"message"`
	Ref      string    `json:"ref,omitempty"`
}

// Notify implements Notifier: one POST; a non-2xx answer is an error (the
// Alerter retries).
func (w *Webhook) Notify(ctx context.Context, a store.Alert) error {
	if !atLeast(a.Severity, w.opt.MinSeverity) {
		return nil
	}
	body, err := json.Marshal(WebhookPayload{Source: "serialine", Central: w.opt.Central, ID: a.ID, At: a.At.UTC(), Severity: a.Severity,
		Code: a.Code, Edge: a.Edge, Message: a.Message, Ref: a.Ref})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.opt.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "serialine-central")
	for k, v := range w.opt.Headers {
		req.Header.Set(k, v)
	}
	if len(w.opt.Secret) > 0 {
		m := hmac.New(sha256.New, w.opt.Secret)
		m.Write(body)
		req.Header.Set("X-Serialine-Signature", "sha256="+hex.EncodeToString(m.Sum(nil)))
	}
	resp, err := w.opt.Client.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", w.name, err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%s answered %s: %q", w.name, resp.Status, snippet)
	}
	return nil
}
