package config

import (
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Notify configures how people hear of new alerts (besides the dashboard
// and the API): webhooks and e-mail through an SMTP server.
type Notify struct {
	Webhooks []Webhook `yaml:"webhooks"`
	Email    *Email    `yaml:"email"`
}

// Webhook posts each alert as JSON.
type Webhook struct {
	URL string `yaml:"url"`
	// SecretFile holds the HMAC-SHA256 key that signs each body
	// (X-Serialine-Signature: sha256=<hex>).
	SecretFile  string            `yaml:"secret_file"`
	Headers     map[string]string `yaml:"headers"`
	MinSeverity string            `yaml:"min_severity"` // info, warning (default), critical
}

// Email mails each alert.
type Email struct {
	Server       string   `yaml:"server"` // host:port (submission: 587)
	From         string   `yaml:"from"`
	To           []string `yaml:"to"`
	Username     string   `yaml:"username"`
	Password     string   `yaml:"password"`
	PasswordFile string   `yaml:"password_file"`
	StartTLS     string   `yaml:"starttls"`     // auto (default), always, never
	MinSeverity  string   `yaml:"min_severity"` // info, warning (default), critical
}

var severities = map[string]bool{"info": true, "warning": true, "critical": true}

// UnmarshalYAML decodes the notify section strictly and checks it, so every
// problem is reported at its line (file:line: notify...: message).
func (n *Notify) UnmarshalYAML(node *yaml.Node) error {
	var errs []string
	add := func(at *yaml.Node, path, format string, a ...any) {
		errs = append(errs, fmt.Sprintf("line %d: %s: %s", at.Line, path, fmt.Sprintf(format, a...)))
	}
	type plain Notify
	var p plain
	if err := node.Decode(&p); err != nil {
		return err
	}
	keys := func(m *yaml.Node, path string, allowed ...string) map[string]*yaml.Node {
		out := map[string]*yaml.Node{}
		if m.Kind != yaml.MappingNode {
			add(m, path, "want a mapping")
			return out
		}
		for i := 0; i+1 < len(m.Content); i += 2 {
			k := m.Content[i]
			known := false
			for _, a := range allowed {
				known = known || a == k.Value
			}
			if !known {
				sort.Strings(allowed)
				add(k, path, "unknown key %q (known: %s)", k.Value, strings.Join(allowed, ", "))
			}
			out[k.Value] = m.Content[i+1]
		}
		return out
	}
	at := func(m map[string]*yaml.Node, key string, parent *yaml.Node) *yaml.Node {
		if v, ok := m[key]; ok {
			return v
		}
		return parent
	}
	top := keys(node, "notify", "webhooks", "email")
	if wh, ok := top["webhooks"]; ok && wh.Kind == yaml.SequenceNode {
		for i, item := range wh.Content {
			path := fmt.Sprintf("notify.webhooks[%d]", i)
			k := keys(item, path, "url", "secret_file", "headers", "min_severity")
			if i >= len(p.Webhooks) {
				continue
			}
			w := p.Webhooks[i]
			u, err := url.Parse(w.URL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				add(at(k, "url", item), path+".url", "%q: want http://host/... or https://host/...", w.URL)
			}
			if w.MinSeverity != "" && !severities[w.MinSeverity] {
				add(at(k, "min_severity", item), path+".min_severity", "%q: want info, warning or critical", w.MinSeverity)
			}
		}
	}
	if em, ok := top["email"]; ok && p.Email != nil {
		path := "notify.email"
		k := keys(em, path, "server", "from", "to", "username", "password", "password_file", "starttls", "min_severity")
		e := p.Email
		if host, _, err := net.SplitHostPort(e.Server); err != nil || host == "" {
			add(at(k, "server", em), path+".server", "%q: want host:port of the SMTP server, e.g. smtp.example.com:587", e.Server)
		}
		if _, err := mail.ParseAddress(e.From); err != nil {
			add(at(k, "from", em), path+".from", "%q: want an e-mail address", e.From)
		}
		if len(e.To) == 0 {
			add(at(k, "to", em), path+".to", "at least one recipient is required")
		}
		for i, to := range e.To {
			if _, err := mail.ParseAddress(to); err != nil {
				add(at(k, "to", em), fmt.Sprintf("%s.to[%d]", path, i), "%q: want an e-mail address", to)
			}
		}
		if e.Password != "" && e.PasswordFile != "" {
			add(at(k, "password", em), path+".password", "give password or password_file, not both")
		}
		if (e.Password != "" || e.PasswordFile != "") && e.Username == "" {
			pw := at(k, "password", em)
			if e.Password == "" {
				pw = at(k, "password_file", em)
			}
			add(pw, path+".username", "a password needs a username")
		}
		switch e.StartTLS {
		case "", "auto", "always", "never":
		default:
			add(at(k, "starttls", em), path+".starttls", "%q: want auto, always or never", e.StartTLS)
		}
		if e.MinSeverity != "" && !severities[e.MinSeverity] {
			add(at(k, "min_severity", em), path+".min_severity", "%q: want info, warning or critical", e.MinSeverity)
		}
	}
	if len(errs) > 0 {
		return &yaml.TypeError{Errors: errs}
	}
	*n = Notify(p)
	return nil
}
