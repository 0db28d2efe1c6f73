package alerts

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"strings"
	"time"

	"github.com/serialine/serialine/central/store"
)

// STARTTLS policies.
const (
	StartTLSAuto   = "auto"   // upgrade when the server offers it (default)
	StartTLSAlways = "always" // refuse to send without it
	StartTLSNever  = "never"
)

// SMTPOptions configure the e-mail notifier.
type SMTPOptions struct {
	Addr     string // host:port of the SMTP server (submission: 587)
	From     string
	To       []string
	Username string // AUTH PLAIN when set (only over TLS, or to localhost)
	Password string
	StartTLS string      // auto, always, never
	TLS      *tls.Config // default: verify the server name
	// MinSeverity: alerts below it are not mailed (default: all).
	MinSeverity string
	// Hello is the EHLO name (default "localhost").
	Hello string
	// Central names this central instance in the message.
	Central string
}

// SMTP mails each alert through an SMTP server (net/smtp).
type SMTP struct {
	opt  SMTPOptions
	host string
	name string
}

var _ Notifier = (*SMTP)(nil)

// NewSMTP checks the options and builds the notifier.
func NewSMTP(opt SMTPOptions) (*SMTP, error) {
	host, _, err := net.SplitHostPort(opt.Addr)
	if err != nil || host == "" {
		return nil, fmt.Errorf("smtp server %q: want host:port", opt.Addr)
	}
	if _, err := mail.ParseAddress(opt.From); err != nil {
		return nil, fmt.Errorf("smtp from %q: %v", opt.From, err)
	}
	if len(opt.To) == 0 {
		return nil, errors.New("smtp: at least one recipient (to) is required")
	}
	for _, to := range opt.To {
		if _, err := mail.ParseAddress(to); err != nil {
			return nil, fmt.Errorf("smtp to %q: %v", to, err)
		}
	}
	switch opt.StartTLS {
	case "":
		opt.StartTLS = StartTLSAuto
	case StartTLSAuto, StartTLSAlways, StartTLSNever:
	default:
		return nil, fmt.Errorf("smtp starttls %q: want auto, always or never", opt.StartTLS)
	}
	if opt.MinSeverity != "" && !ValidSeverity(opt.MinSeverity) {
		return nil, fmt.Errorf("smtp min_severity %q: want info, warning or critical", opt.MinSeverity)
	}
	if opt.Hello == "" {
		opt.Hello = "localhost"
	}
	return &SMTP{opt: opt, host: host, name: "smtp:" + opt.Addr}, nil
}

// Name implements Notifier.
func (m *SMTP) Name() string { return m.name }

// Notify implements Notifier: one SMTP transaction bounded by ctx.
func (m *SMTP) Notify(ctx context.Context, a store.Alert) error {
	if !atLeast(a.Severity, m.opt.MinSeverity) {
		return nil
	}
	msg, err := m.message(a)
	if err != nil {
		return err
	}
	if err := m.send(ctx, msg); err != nil {
		return fmt.Errorf("%s: %w", m.name, err)
	}
	return nil
}

func (m *SMTP) send(ctx context.Context, msg []byte) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", m.opt.Addr)
	if err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	} else {
		conn.SetDeadline(time.Now().Add(time.Minute))
	}
	// Close the connection if ctx ends mid-conversation.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	c, err := smtp.NewClient(conn, m.host)
	if err != nil {
		conn.Close()
		return err
	}
	defer c.Close()
	if err := c.Hello(m.opt.Hello); err != nil {
		return err
	}
	if m.opt.StartTLS != StartTLSNever {
		if ok, _ := c.Extension("STARTTLS"); ok {
			cfg := m.opt.TLS
			if cfg == nil {
				cfg = &tls.Config{}
			} else {
				cfg = cfg.Clone()
			}
			if cfg.ServerName == "" {
				cfg.ServerName = m.host
			}
			if err := c.StartTLS(cfg); err != nil {
				return fmt.Errorf("STARTTLS: %w", err)
			}
		} else if m.opt.StartTLS == StartTLSAlways {
			return errors.New("the server does not offer STARTTLS and starttls is always")
		}
	}
	if m.opt.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", m.opt.Username, m.opt.Password, m.host)); err != nil {
			return fmt.Errorf("AUTH: %w", err)
		}
	}
	from, _ := mail.ParseAddress(m.opt.From)
	if err := c.Mail(from.Address); err != nil {
		return fmt.Errorf("MAIL FROM: %w", err)
	}
	for _, to := range m.opt.To {
		addr, _ := mail.ParseAddress(to)
		if err := c.Rcpt(addr.Address); err != nil {
			return fmt.Errorf("RCPT TO %s: %w", addr.Address, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	return c.Quit()
}

// oneLine keeps header values on one line (no header injection).
func oneLine(s string) string {
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == '\r' || r == '\n' }), " ")
}

func (m *SMTP) message(a store.Alert) ([]byte, error) {
	subject := fmt.Sprintf("[Serialine %s] %s", strings.ToUpper(a.Severity), a.Code)
	if a.Edge != "" {
		subject += " " + a.Edge
	}
	summary := a.Message
	if len(summary) > 120 {
		summary = summary[:120] + "..."
	}
	subject = oneLine(subject + ": " + summary)
	id := make([]byte, 12)
	rand.Read(id)
	at := a.At
	if at.IsZero() {
		at = time.Now()
	}
	var b bytes.Buffer
	hdr := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	hdr("From", oneLine(m.opt.From))
	hdr("To", oneLine(strings.Join(m.opt.To, ", ")))
	hdr("Subject", mime.QEncoding.Encode("utf-8", subject))
	hdr("Date", at.Format(time.RFC1123Z))
	hdr("Message-ID", "<"+hex.EncodeToString(id)+"@serialine>")
	hdr("MIME-Version", "1.0")
	hdr("Content-Type", "text/plain; charset=utf-8")
	hdr("Content-Transfer-Encoding", "quoted-printable")
	hdr("X-Serialine-Alert", fmt.Sprintf("%d", a.ID))
	hdr("X-Serialine-Severity", a.Severity)
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	fmt.Fprintf(qp, "Serialine central alert\r\n\r\n")
	for _, kv := range [][2]string{{"Severity", a.Severity}, {"Code", a.Code}, {"Edge", a.Edge}, {"Raised", at.UTC().Format(time.RFC3339)},
		{"Record", a.Ref}, {"Alert id", fmt.Sprintf("%d", a.ID)}, {"Central", m.opt.Central}} {
		if kv[1] != "" {
			fmt.Fprintf(qp, "%-9s %s\r\n", kv[0]+":", kv[1])
		}
	}
	fmt.Fprintf(qp, "\r\n%s\r\n", a.Message)
	if err := qp.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
