package alerts

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/serialine/serialine/central/alerts/smtptest"
	"github.com/serialine/serialine/central/store"
)

var critical = store.Alert{ID: 7, At: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC), Severity: store.SeverityCritical, Code: "downtime_reportable",
	Edge: "edge-1", Message: "downtime DT-000001 of printer-1 (print, paper_out) has lasted 4h0m0s: FDA-reportable", Ref: "edge-1/1/42"}

type hookRecorder struct {
	mu     sync.Mutex
	bodies [][]byte
	heads  []http.Header
	fail   int // answer 500 this many times first
	got    chan struct{}
}

func (h *hookRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fail > 0 {
		h.fail--
		http.Error(w, "receiver busy", http.StatusInternalServerError)
		return
	}
	h.bodies = append(h.bodies, b)
	h.heads = append(h.heads, r.Header.Clone())
	w.WriteHeader(http.StatusAccepted)
	if h.got != nil {
		h.got <- struct{}{}
	}
}

func TestWebhook(t *testing.T) {
	rec := &hookRecorder{}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	secret := []byte("s3cret")
	w, err := NewWebhook(WebhookOptions{URL: srv.URL + "/hook", Secret: secret, Headers: map[string]string{"X-Team": "qa"}, MinSeverity: store.SeverityWarning, Central: "central-1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := w.Notify(ctx, critical); err != nil {
		t.Fatal(err)
	}
	info := critical
	info.Severity = store.SeverityInfo
	if err := w.Notify(ctx, info); err != nil {
		t.Fatal(err)
	}
	if len(rec.bodies) != 1 {
		t.Fatalf("%d posts, want 1 (info is below min_severity)", len(rec.bodies))
	}
	var p WebhookPayload
	if err := json.Unmarshal(rec.bodies[0], &p); err != nil {
		t.Fatal(err)
	}
	if p.Source != "serialine" || p.Central != "central-1" || p.ID != 7 || p.Severity != "critical" || p.Code != "downtime_reportable" || p.Edge != "edge-1" ||
		p.Ref != "edge-1/1/42" || !p.At.Equal(critical.At) || p.Message != critical.Message {
		t.Fatalf("payload %+v", p)
	}
	h := rec.heads[0]
	m := hmac.New(sha256.New, secret)
	m.Write(rec.bodies[0])
	if h.Get("X-Serialine-Signature") != "sha256="+hex.EncodeToString(m.Sum(nil)) || h.Get("X-Team") != "qa" || h.Get("Content-Type") != "application/json" {
		t.Fatalf("headers %v", h)
	}
	rec.fail = 1
	if err := w.Notify(ctx, critical); err == nil || !strings.Contains(err.Error(), "500") || !strings.Contains(err.Error(), "receiver busy") {
		t.Fatalf("a 500 is an error naming it: %v", err)
	}
	for _, bad := range []WebhookOptions{{URL: "ftp://x/"}, {URL: "http://"}, {URL: srv.URL, MinSeverity: "urgent"}} {
		if _, err := NewWebhook(bad); err == nil {
			t.Errorf("accepted %+v", bad)
		}
	}
}

// Through the Alerter: a raised alert reaches the webhook, once, after the
// receiver recovers.
func TestAlerterDeliversToWebhook(t *testing.T) {
	a, _, _ := setup(t)
	rec := &hookRecorder{fail: 1, got: make(chan struct{}, 4)}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	w, err := NewWebhook(WebhookOptions{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	a.AddNotifier(w)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	al := critical
	al.ID, al.Key = 0, "downtime_reportable:edge-1:1:DT-000001"
	if _, err := a.Raise(ctx, al); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Raise(ctx, al); err != nil { // deduplicated: not notified again
		t.Fatal(err)
	}
	select {
	case <-rec.got:
	case <-time.After(20 * time.Second):
		t.Fatal("webhook never received the alert")
	}
	cancel()
	<-done
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.bodies) != 1 {
		t.Fatalf("%d deliveries", len(rec.bodies))
	}
}

func decodeMail(t *testing.T, raw []byte) (*mail.Message, string, string) {
	t.Helper()
	m, err := mail.ReadMessage(strings.NewReader(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(quotedprintable.NewReader(m.Body))
	if err != nil {
		t.Fatal(err)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	return m, subject, string(body)
}

func TestSMTPWithStartTLSAndAuth(t *testing.T) {
	srvTLS, roots, err := smtptest.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := smtptest.Start(smtptest.Options{TLS: srvTLS, User: "serialine", Password: "pw-1"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	m, err := NewSMTP(SMTPOptions{Addr: srv.Addr(), From: "Serialine <serialine@plant.example>", To: []string{"qa@plant.example", "ops@plant.example"},
		Username: "serialine", Password: "pw-1", StartTLS: StartTLSAlways, TLS: &tls.Config{RootCAs: roots}, Central: "central-1"})
	if err != nil {
		t.Fatal(err)
	}
	al := critical
	al.Message += "\r\nSubject: injected"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.Notify(ctx, al); err != nil {
		t.Fatal(err)
	}
	var got smtptest.Message
	select {
	case got = <-srv.Messages():
	case <-time.After(10 * time.Second):
		t.Fatal("no message")
	}
	if !got.TLS || got.AuthUser != "serialine" || got.From != "serialine@plant.example" || strings.Join(got.To, ",") != "qa@plant.example,ops@plant.example" {
		t.Fatalf("envelope %+v", got)
	}
	msg, subject, body := decodeMail(t, got.Data)
	if !strings.HasPrefix(subject, "[Serialine CRITICAL] downtime_reportable edge-1: downtime DT-000001 of printer-1") || strings.ContainsAny(subject, "\r\n") {
		t.Fatalf("subject %q", subject)
	}
	if len(msg.Header["Subject"]) != 1 || msg.Header.Get("X-Serialine-Alert") != "7" || msg.Header.Get("To") != "qa@plant.example, ops@plant.example" {
		t.Fatalf("headers %v", msg.Header)
	}
	for _, want := range []string{"Severity: critical", "Record:   edge-1/1/42", "Central:  central-1", "FDA-reportable"} {
		if !strings.Contains(body, want) {
			t.Fatalf("body lacks %q:\n%s", want, body)
		}
	}
	// Below min_severity: nothing sent.
	low, _ := NewSMTP(SMTPOptions{Addr: srv.Addr(), From: "a@b.c", To: []string{"d@e.f"}, MinSeverity: store.SeverityCritical})
	warn := critical
	warn.Severity = store.SeverityWarning
	if err := low.Notify(ctx, warn); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-srv.Messages():
		t.Fatalf("a warning was mailed: %+v", m)
	default:
	}
}

func TestSMTPFailures(t *testing.T) {
	plain, err := smtptest.Start(smtptest.Options{Reject: []string{"gone@plant.example"}})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	silent, err := smtptest.Start(smtptest.Options{Silent: true})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	for _, c := range []struct {
		name string
		opt  SMTPOptions
		want string
	}{
		{"no STARTTLS", SMTPOptions{Addr: plain.Addr(), From: "a@plant.example", To: []string{"qa@plant.example"}, StartTLS: StartTLSAlways}, "does not offer STARTTLS"},
		{"rejected recipient", SMTPOptions{Addr: plain.Addr(), From: "a@plant.example", To: []string{"qa@plant.example", "gone@plant.example"}}, "RCPT TO gone@plant.example"},
		{"auth not offered", SMTPOptions{Addr: plain.Addr(), From: "a@plant.example", To: []string{"qa@plant.example"}, Username: "u", Password: "p"}, "AUTH"},
		{"server silent", SMTPOptions{Addr: silent.Addr(), From: "a@plant.example", To: []string{"qa@plant.example"}}, "smtp:"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, err := NewSMTP(c.opt)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			start := time.Now()
			err = m.Notify(ctx, critical)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want %q", err, c.want)
			}
			if time.Since(start) > 5*time.Second {
				t.Fatalf("took %s: the context bounds the conversation", time.Since(start))
			}
		})
	}
	// The accepted recipient of the rejected transaction got nothing.
	select {
	case m := <-plain.Messages():
		t.Fatalf("message delivered: %+v", m)
	default:
	}
	for _, bad := range []SMTPOptions{{Addr: "nohost", From: "a@b.c", To: []string{"d@e.f"}}, {Addr: "h:25", From: "not an address", To: []string{"d@e.f"}},
		{Addr: "h:25", From: "a@b.c"}, {Addr: "h:25", From: "a@b.c", To: []string{"d@e.f"}, StartTLS: "sometimes"}} {
		if _, err := NewSMTP(bad); err == nil {
			t.Errorf("accepted %+v", bad)
		}
	}
}
