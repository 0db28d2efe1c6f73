package config

import (
	"strings"
	"testing"
)

func TestNotifyConfig(t *testing.T) {
	good := `
notify:
  webhooks:
    - url: https://hooks.example/serialine
      secret_file: /etc/serialine/webhook.secret
      headers: {X-Team: qa}
      min_severity: critical
  email:
    server: smtp.example:587
    from: Serialine <serialine@plant.example>
    to: [qa@plant.example]
    username: serialine
    password_file: /etc/serialine/smtp.password
    starttls: always
`
	c, err := Parse("c.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	n := c.Notify
	if len(n.Webhooks) != 1 || n.Webhooks[0].Headers["X-Team"] != "qa" || n.Webhooks[0].MinSeverity != "critical" || n.Email == nil || n.Email.StartTLS != "always" || n.Email.To[0] != "qa@plant.example" {
		t.Fatalf("notify: %+v %+v", n, n.Email)
	}
	bad := `http: 127.0.0.1:8080
notify:
  webhooks:
    - url: ftp://hooks.example/x
      min_severity: urgent
    - url: https://ok.example/
      secret: inline
  email:
    server: smtp.example
    from: not an address
    to: []
    password: pw
    starttls: maybe
  sms: {}
`
	_, err = Parse("c.yaml", []byte(bad))
	if err == nil {
		t.Fatal("bad notify accepted")
	}
	for _, want := range []string{
		`c.yaml:4: notify.webhooks[0].url: "ftp://hooks.example/x": want http://host/... or https://host/...`,
		`c.yaml:5: notify.webhooks[0].min_severity: "urgent": want info, warning or critical`,
		`c.yaml:7: notify.webhooks[1]: unknown key "secret"`,
		`c.yaml:9: notify.email.server: "smtp.example": want host:port`,
		`c.yaml:10: notify.email.from: "not an address": want an e-mail address`,
		`c.yaml:11: notify.email.to: at least one recipient is required`,
		`c.yaml:12: notify.email.username: a password needs a username`,
		`c.yaml:13: notify.email.starttls: "maybe": want auto, always or never`,
		`c.yaml:14: notify: unknown key "sms"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("errors lack %q:\n%v", want, err)
		}
	}
}

func FuzzParseCentral(f *testing.F) {
	f.Add([]byte("notify:\n  webhooks: [{url: https://x.example/}]\n  email: {server: h:25, from: a@b.c, to: [d@e.f]}\n"))
	f.Add([]byte("http: 127.0.0.1:8080\nedges: []\n"))
	f.Add([]byte("notify: {webhooks: [1, {url: 2}], email: []}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse("f.yaml", b)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.yaml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, w := range c.Notify.Webhooks {
			if !strings.HasPrefix(w.URL, "http") {
				t.Fatalf("accepted webhook %q", w.URL)
			}
		}
	})
}
