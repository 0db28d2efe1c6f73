// Package brokertest helps tests run MQTT brokers for real: a private
// Mosquitto process (own config, own free port, killable with SIGKILL) and
// a throw-away certificate authority for TLS with client certificates.
package brokertest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// CA is a certificate authority for one test.
type CA struct {
	Dir    string
	CAFile string
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
}

// NewCA creates a CA in a temporary directory.
func NewCA(t testing.TB) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "serialine test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &CA{Dir: t.TempDir(), cert: cert, key: key}
	ca.CAFile = filepath.Join(ca.Dir, "ca.pem")
	writePEM(t, ca.CAFile, "CERTIFICATE", der)
	return ca
}

var serial int64 = 100
var serialMu sync.Mutex

// Issue signs a certificate: a server certificate for 127.0.0.1 when
// server is true, else a client certificate with the common name cn. It
// returns the certificate and key file paths.
func (ca *CA) Issue(t testing.TB, cn string, server bool) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serialMu.Lock()
	serial++
	sn := serial
	serialMu.Unlock()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(sn), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		tmpl.DNSNames = []string{"localhost"}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile = filepath.Join(ca.Dir, cn+".crt")
	keyFile = filepath.Join(ca.Dir, cn+".key")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "PRIVATE KEY", kder)
	return certFile, keyFile
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Mosquitto is a private Mosquitto process.
type Mosquitto struct {
	Port    int
	TLSPort int
	Dir     string
	conf    string
	t       testing.TB
	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
}

// MosquittoOptions configure a private Mosquitto.
type MosquittoOptions struct {
	// Users and their passwords (password_file). Empty: anonymous access.
	Users map[string]string
	// ACL is the acl_file content (empty: none).
	ACL string
	// CA, if set, adds a TLS listener (TLSPort) that requires a client
	// certificate from this CA and takes its common name as the user name.
	CA *CA
}

// SerialineACL is the topic ACL Serialine needs on Mosquitto: central's
// user reads and writes every Serialine topic; an edge (its user name is
// its edge id) publishes only its own records and status, and reads only
// its own acks and replay requests.
func SerialineACL(centralUser string) string {
	return fmt.Sprintf(`user %s
topic readwrite serialine/v1/edge/#

pattern write serialine/v1/edge/%%u/records
pattern write serialine/v1/edge/%%u/status
pattern read serialine/v1/edge/%%u/ack
pattern read serialine/v1/edge/%%u/replay
`, centralUser)
}

// HaveMosquitto skips the test when the mosquitto binary is missing, unless
// SERIALINE_REQUIRE_MOSQUITTO=1.
func HaveMosquitto(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("mosquitto"); err != nil {
		if os.Getenv("SERIALINE_REQUIRE_MOSQUITTO") == "1" {
			t.Fatalf("mosquitto required (SERIALINE_REQUIRE_MOSQUITTO=1): %v", err)
		}
		t.Skip("mosquitto not installed")
	}
}

// FreePort returns a TCP port free on 127.0.0.1 right now.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// StartMosquitto writes a config and starts mosquitto on free ports; the
// process is killed at the end of the test. The config follows DESIGN.md
// §5: set_tcp_nodelay, max_queued_messages 0 (never drop QoS 1 messages for
// a slow subscriber), no persistence.
func StartMosquitto(t testing.TB, opt MosquittoOptions) *Mosquitto {
	t.Helper()
	HaveMosquitto(t)
	m := &Mosquitto{Dir: t.TempDir(), t: t}
	var conf strings.Builder
	m.Port = FreePort(t)
	fmt.Fprintf(&conf, "user %s\nper_listener_settings false\npersistence false\nset_tcp_nodelay true\nmax_queued_messages 0\nmax_inflight_messages 0\nmax_packet_size 4259840\nlog_dest stderr\nlog_type error\nlog_type warning\n", processUser())
	if len(opt.Users) > 0 {
		pw := filepath.Join(m.Dir, "passwd")
		if err := os.WriteFile(pw, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		users := make([]string, 0, len(opt.Users))
		for u := range opt.Users {
			users = append(users, u)
		}
		sort.Strings(users)
		for _, u := range users {
			if out, err := exec.Command("mosquitto_passwd", "-b", pw, u, opt.Users[u]).CombinedOutput(); err != nil {
				t.Fatalf("mosquitto_passwd: %v\n%s", err, out)
			}
		}
		fmt.Fprintf(&conf, "allow_anonymous false\npassword_file %s\n", pw)
	} else {
		fmt.Fprintf(&conf, "allow_anonymous true\n")
	}
	if opt.ACL != "" {
		acl := filepath.Join(m.Dir, "acl")
		if err := os.WriteFile(acl, []byte(opt.ACL), 0o600); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&conf, "acl_file %s\n", acl)
	}
	fmt.Fprintf(&conf, "listener %d 127.0.0.1\n", m.Port)
	if opt.CA != nil {
		m.TLSPort = FreePort(t)
		cert, key := opt.CA.Issue(t, "127.0.0.1", true)
		fmt.Fprintf(&conf, "listener %d 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\nrequire_certificate true\nuse_identity_as_username true\n", m.TLSPort, opt.CA.CAFile, cert, key)
	}
	m.conf = filepath.Join(m.Dir, "mosquitto.conf")
	if err := os.WriteFile(m.conf, []byte(conf.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	m.Start()
	t.Cleanup(m.Kill)
	return m
}

// URL is the plain listener's URL.
func (m *Mosquitto) URL() string { return fmt.Sprintf("tcp://127.0.0.1:%d", m.Port) }

// TLSURL is the TLS listener's URL.
func (m *Mosquitto) TLSURL() string { return fmt.Sprintf("ssl://127.0.0.1:%d", m.TLSPort) }

// Start (re)starts the process on the same ports and waits until it accepts
// connections.
func (m *Mosquitto) Start() {
	m.t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		return
	}
	var stderr strings.Builder
	deadline := time.Now().Add(10 * time.Second)
	for {
		cmd := exec.Command("mosquitto", "-c", m.conf)
		stderr.Reset()
		cmd.Stderr = &lockedWriter{b: &stderr}
		if err := cmd.Start(); err != nil {
			m.t.Fatalf("mosquitto: %v", err)
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		if waitListening(m.Port, done, deadline) {
			m.cmd, m.done = cmd, done
			return
		}
		cmd.Process.Kill()
		<-done
		// A restart right after a kill may find the port in TIME_WAIT or
		// still bound for a moment: try again until the deadline.
		if time.Now().After(deadline) {
			m.t.Fatalf("mosquitto did not start on port %d:\n%s", m.Port, stderr.String())
		}
	}
}

// Kill ends the process with SIGKILL (no clean shutdown); safe twice.
func (m *Mosquitto) Kill() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return
	}
	m.cmd.Process.Signal(syscall.SIGKILL)
	<-m.done
	m.cmd = nil
}

// waitListening polls until the port accepts connections (true), the
// process exits or the deadline passes (false).
func waitListening(port int, exited <-chan struct{}, deadline time.Time) bool {
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return true
		}
		select {
		case <-exited:
			return false
		case <-time.After(10 * time.Millisecond):
		}
	}
	return false
}

type lockedWriter struct {
	mu sync.Mutex
	b  *strings.Builder
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// processUser is the user mosquitto runs as: the test's own (started as
// root it would otherwise switch to "mosquitto" and lose access to the
// test's private files).
func processUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return "root"
}
