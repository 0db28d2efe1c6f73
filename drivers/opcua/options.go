package opcua

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Options are the driver-specific settings (a device's `options:`).
type Options struct {
	// Path is appended to opc.tcp://<address> (some servers serve under a
	// resource path, e.g. /UA/PLC).
	Path     string   `yaml:"path"`
	Security Security `yaml:"security"`
	// User name and password for the session; none means anonymous.
	Username     string `yaml:"username"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
	// PublishInterval of subscriptions (default 100ms, at least 50ms).
	PublishInterval time.Duration `yaml:"publish_interval"`
	// SessionTimeout asked of the server (default 1m).
	SessionTimeout time.Duration `yaml:"session_timeout"`
	// Tags map the edge's tag names to node ids.
	Tags map[string]Tag `yaml:"tags"`
}

// Security is the secure channel the driver asks for.
type Security struct {
	// Policy: None (default), Basic256Sha256, Aes128_Sha256_RsaOaep or
	// Aes256_Sha256_RsaPss. Basic128Rsa15 and Basic256 are deprecated
	// (SHA-1) and refused.
	Policy string `yaml:"policy"`
	// Mode: None (default), Sign or SignAndEncrypt.
	Mode string `yaml:"mode"`
	// CertFile and KeyFile (PEM or DER) are the edge's application
	// instance certificate for this PLC; without them a self-signed one
	// is generated at each start, which servers with a trust list will
	// refuse until trusted again.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerCertFile pins the PLC's certificate: a server presenting any
	// other certificate is refused. Without it the channel is encrypted
	// but the server is not authenticated.
	ServerCertFile string `yaml:"server_cert_file"`
}

// Tag maps one edge tag name to a PLC node.
type Tag struct {
	Node string `yaml:"node"` // e.g. nsu=urn:plc;s=Line1.Reject or ns=2;i=1001
	// Pulse: bool outputs are written true, then false after this.
	Pulse time.Duration `yaml:"pulse"`
}

// Tags the edge writes (the PLC nodes must be writable).
var writtenTags = map[string]bool{"reject": true, "good_count": true, "reject_count": true}

var policies = map[string]string{
	"None":                  "http://opcfoundation.org/UA/SecurityPolicy#None",
	"Basic256Sha256":        "http://opcfoundation.org/UA/SecurityPolicy#Basic256Sha256",
	"Aes128_Sha256_RsaOaep": "http://opcfoundation.org/UA/SecurityPolicy#Aes128_Sha256_RsaOaep",
	"Aes256_Sha256_RsaPss":  "http://opcfoundation.org/UA/SecurityPolicy#Aes256_Sha256_RsaPss",
}

func (s Security) policy() string {
	if s.Policy == "" {
		return "None"
	}
	return s.Policy
}

func (s Security) mode() string {
	if s.Mode == "" {
		if s.policy() == "None" {
			return "None"
		}
		return "SignAndEncrypt"
	}
	return s.Mode
}

// Validate checks the options, naming the field.
func (o *Options) Validate() error {
	var errs []string
	add := func(format string, a ...any) { errs = append(errs, fmt.Sprintf(format, a...)) }
	if o.Path != "" && (!strings.HasPrefix(o.Path, "/") || strings.ContainsAny(o.Path, " \t\r\n?#")) {
		add("path: %q: want a resource path starting with / (e.g. /UA/PLC)", o.Path)
	}
	pol, mode := o.Security.policy(), o.Security.mode()
	switch {
	case pol == "Basic128Rsa15" || pol == "Basic256":
		add("security.policy: %s is deprecated (SHA-1) and refused; use Basic256Sha256, Aes128_Sha256_RsaOaep or Aes256_Sha256_RsaPss", pol)
	case policies[pol] == "":
		add("security.policy: %q: want None, Basic256Sha256, Aes128_Sha256_RsaOaep or Aes256_Sha256_RsaPss", pol)
	}
	switch mode {
	case "None", "Sign", "SignAndEncrypt":
	default:
		add("security.mode: %q: want None, Sign or SignAndEncrypt", mode)
	}
	if (pol == "None") != (mode == "None") {
		add("security: policy %s with mode %s: policy None goes with mode None only, and a signing policy needs Sign or SignAndEncrypt", pol, mode)
	}
	if (o.Security.CertFile == "") != (o.Security.KeyFile == "") {
		add("security.cert_file and security.key_file: give both or neither")
	}
	if o.Security.ServerCertFile != "" && mode == "None" {
		add("security.server_cert_file: pinning needs mode Sign or SignAndEncrypt (a None channel proves nothing about the server)")
	}
	if o.Password != "" && o.PasswordFile != "" {
		add("password and password_file: give one")
	}
	if o.Username == "" && (o.Password != "" || o.PasswordFile != "") {
		add("username: required with a password")
	}
	if o.PublishInterval != 0 && o.PublishInterval < 50*time.Millisecond {
		add("publish_interval: %s: at least 50ms", o.PublishInterval)
	}
	if o.SessionTimeout != 0 && (o.SessionTimeout < time.Second || o.SessionTimeout > time.Hour) {
		add("session_timeout: %s: want 1s..1h", o.SessionTimeout)
	}
	if len(o.Tags) == 0 {
		add("tags: at least the reject tag is required")
	}
	names := make([]string, 0, len(o.Tags))
	for n := range o.Tags {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		t := o.Tags[name]
		if t.Node == "" {
			add("tags.%s.node: required (e.g. nsu=urn:plc;s=Line1.%s)", name, name)
		} else if _, err := ParseNodeRef(t.Node); err != nil {
			add("tags.%s.node: %v", name, err)
		}
		if t.Pulse < 0 || t.Pulse > time.Minute {
			add("tags.%s.pulse: %s: want 0..1m", name, t.Pulse)
		}
	}
	if len(o.Tags) > 0 {
		if _, ok := o.Tags["reject"]; !ok {
			add("tags.reject: required (the reject gate output)")
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}
