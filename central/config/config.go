// Package config is central's configuration file (YAML, strict).
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/sync/record"
)

// Central is the central collector's configuration.
type Central struct {
	ID      string `yaml:"id"`       // instance name (logs, MQTT client id)
	HTTP    string `yaml:"http"`     // dashboard and API listen address
	DataDir string `yaml:"data_dir"` // SQLite file and generated secrets; relative to the file
	DB      string `yaml:"db"`       // empty: SQLite in data_dir; a path or sqlite://path; or postgres://...
	MQTT    MQTT   `yaml:"mqtt"`
	Edges   []Edge `yaml:"edges"`
	// Notify: webhooks and e-mail for new alerts (notify.go).
	Notify Notify `yaml:"notify"`
	GS1    GS1    `yaml:"gs1"` // EPCIS and shipping master data
	Users  Users  `yaml:"users"`

	File string `yaml:"-"`
}

// Users are the rules for central's accounts.
type Users struct {
	// PasswordMaxAge: a password older than this must be changed before
	// its user logs in or signs again (21 CFR 11.300(b) password aging);
	// default 90 days, 0s turns aging off.
	PasswordMaxAge time.Duration `yaml:"password_max_age"`
}

// DefaultPasswordMaxAge is the password aging default (90 days).
const DefaultPasswordMaxAge = 90 * 24 * time.Hour

// MQTT chooses the embedded broker (default) or an external one.
type MQTT struct {
	Listen       string `yaml:"listen"` // embedded broker listen address
	Broker       string `yaml:"broker"` // external broker URL; disables the embedded broker
	Username     string `yaml:"username"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
	CAFile       string `yaml:"ca_file"`
	CertFile     string `yaml:"cert_file"`
	KeyFile      string `yaml:"key_file"`
	Share        string `yaml:"share"` // shared subscription group for scale-out
	// Embedded broker TLS listener: server certificate, and a client CA
	// to require client certificates (identity: the common name).
	ListenTLS    string `yaml:"listen_tls"`
	TLSCertFile  string `yaml:"tls_cert_file"`
	TLSKeyFile   string `yaml:"tls_key_file"`
	ClientCAFile string `yaml:"client_ca_file"`
}

// Edge is an edge enrolled by configuration.
type Edge struct {
	ID           string `yaml:"id"`
	PublicKey    string `yaml:"public_key"`    // base64 Ed25519
	MQTTPassword string `yaml:"mqtt_password"` // for the embedded broker
}

// Defaults returns the defaults applied before the file is decoded.
func Defaults() Central {
	return Central{
		ID:      "central",
		HTTP:    "127.0.0.1:8080",
		DataDir: "./data/central",
		MQTT:    MQTT{Listen: "127.0.0.1:1883", Username: "central"},
		Users:   Users{PasswordMaxAge: DefaultPasswordMaxAge},
	}
}

// Load reads, decodes strictly and validates a central config file.
func Load(path string) (*Central, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse decodes strictly (unknown keys are errors with file:line) and validates.
func Parse(file string, data []byte) (*Central, error) {
	c := Defaults()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, prefixYAML(file, err)
	}
	c.File = file
	if !filepath.IsAbs(c.DataDir) && file != "" {
		c.DataDir = filepath.Join(filepath.Dir(file), c.DataDir)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return &c, nil
}

// prefixYAML turns yaml.v3's "yaml: line 3: ..." into "file:3: ...".
func prefixYAML(file string, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		var lines []string
		for _, e := range te.Errors {
			lines = append(lines, file+":"+strings.TrimPrefix(e, "line "))
		}
		return errors.New(strings.Join(lines, "\n"))
	}
	return fmt.Errorf("%s:%s", file, strings.TrimPrefix(err.Error(), "yaml: line "))
}

// Validate checks the configuration and reports every problem.
func (c *Central) Validate() error {
	var errs []string
	add := func(format string, a ...any) { errs = append(errs, fmt.Sprintf(format, a...)) }
	if _, _, err := net.SplitHostPort(c.HTTP); err != nil {
		add("http: %q is not host:port", c.HTTP)
	}
	if c.MQTT.Broker == "" {
		if _, _, err := net.SplitHostPort(c.MQTT.Listen); err != nil {
			add("mqtt.listen: %q is not host:port", c.MQTT.Listen)
		}
		if c.MQTT.ListenTLS != "" {
			if _, _, err := net.SplitHostPort(c.MQTT.ListenTLS); err != nil {
				add("mqtt.listen_tls: %q is not host:port", c.MQTT.ListenTLS)
			}
			if c.MQTT.TLSCertFile == "" || c.MQTT.TLSKeyFile == "" {
				add("mqtt.listen_tls: needs tls_cert_file and tls_key_file")
			}
		}
	} else if !strings.Contains(c.MQTT.Broker, "://") {
		add("mqtt.broker: %q: want tcp://host:port or ssl://host:port", c.MQTT.Broker)
	}
	if c.Users.PasswordMaxAge < 0 {
		add("users.password_max_age: %s: want a positive duration (e.g. 2160h), or 0s for no aging", c.Users.PasswordMaxAge)
	}
	seen := map[string]bool{}
	for i, e := range c.Edges {
		if err := store.ValidLineEdgeID(e.ID); err != nil {
			add("edges[%d].id: %v", i, err)
		}
		if seen[e.ID] {
			add("edges[%d].id: %q enrolled twice", i, e.ID)
		}
		seen[e.ID] = true
		if _, err := record.ParsePublicKey(e.PublicKey); err != nil {
			add("edges[%d] (%s).public_key: %v", i, e.ID, err)
		}
	}
	c.GS1.validate(add)
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "\n"))
	}
	return nil
}
