// Package broker embeds an MQTT broker (mochi-mqtt) in central: the default
// that serves on a fresh machine. Production sites may use an external
// broker (Mosquitto, EMQX, HiveMQ) instead; the protocol is the same.
//
// Access is deny-all except: central's own user (everything), and each edge
// with its own credentials, which may publish only to its own records and
// status topics and subscribe only to its own ack and replay topics.
//
// Besides the plain TCP listener, an optional TLS listener serves TLS 1.2+
// with the given server certificate; with a client CA it requires a client
// certificate signed by that CA and takes the certificate's common name as
// the client's identity (an edge id, or central's user name): such a client
// needs no password, and may not claim another user name.
package broker

import (
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/rs/zerolog"

	"github.com/serialine/serialine/sync/wire"
)

// Options configure the broker.
type Options struct {
	Listen          string // host:port; 127.0.0.1:0 picks a free port
	CentralUser     string
	CentralPassword string
	Log             zerolog.Logger
	// TLSListen, if set, adds a TLS listener with TLSCertFile/TLSKeyFile.
	TLSListen, TLSCertFile, TLSKeyFile string
	// ClientCAFile, if set, makes the TLS listener require client
	// certificates signed by this CA (identity: the common name).
	ClientCAFile string
}

// Broker is the embedded broker.
type Broker struct {
	srv     *mqtt.Server
	opt     Options
	addr    string
	tlsAddr string

	mu    sync.RWMutex
	edges map[string][]byte // edge id -> password
}

// New creates the broker and binds its listener (so Addr is known at once).
func New(opt Options) (*Broker, error) {
	if opt.CentralUser == "" || opt.CentralPassword == "" {
		return nil, errors.New("broker: central credentials are required")
	}
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumSessionExpiryInterval = 3600
	caps.MaximumMessageExpiryInterval = 3600
	caps.MaximumInflight = 4096
	caps.MaximumClientWritesPending = 16 * 1024
	caps.MaximumPacketSize = uint32(wire.MaxEnvelope + 64*1024)
	srv := mqtt.New(&mqtt.Options{
		Capabilities: caps,
		Logger:       slog.New(zerologHandler{log: opt.Log.With().Str("component", "broker").Logger()}),
	})
	b := &Broker{srv: srv, opt: opt, edges: map[string][]byte{}}
	if err := srv.AddHook(&authHook{b: b}, nil); err != nil {
		return nil, err
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "tcp", Address: opt.Listen})
	if err := srv.AddListener(tcp); err != nil {
		return nil, fmt.Errorf("broker: listen %s: %w", opt.Listen, err)
	}
	b.addr = tcp.Address()
	if opt.TLSListen != "" {
		tc, err := serverTLS(opt)
		if err != nil {
			return nil, err
		}
		tl := listeners.NewTCP(listeners.Config{ID: "tls", Address: opt.TLSListen, TLSConfig: tc})
		if err := srv.AddListener(tl); err != nil {
			return nil, fmt.Errorf("broker: listen %s: %w", opt.TLSListen, err)
		}
		b.tlsAddr = tl.Address()
	}
	return b, nil
}

func serverTLS(opt Options) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(opt.TLSCertFile, opt.TLSKeyFile)
	if err != nil {
		return nil, fmt.Errorf("broker: TLS certificate: %w", err)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if opt.ClientCAFile != "" {
		pem, err := os.ReadFile(opt.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("broker: client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("broker: client CA %s: no PEM certificate", opt.ClientCAFile)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// Addr is the bound listen address.
func (b *Broker) Addr() string { return b.addr }

// TLSAddr is the bound TLS listen address ("" without TLS).
func (b *Broker) TLSAddr() string { return b.tlsAddr }

// TLSURL is the TLS listener's URL ("" without TLS).
func (b *Broker) TLSURL() string {
	if b.tlsAddr == "" {
		return ""
	}
	return "ssl://" + b.tlsAddr
}

// URL is the broker URL clients use.
func (b *Broker) URL() string { return "tcp://" + b.addr }

// SetEdge sets (or replaces) an edge's MQTT password. An empty password
// admits the edge only with a client certificate (TLS listener).
func (b *Broker) SetEdge(id, password string) {
	b.mu.Lock()
	b.edges[id] = []byte(password)
	b.mu.Unlock()
}

// Run serves until ctx ends.
func (b *Broker) Run(ctx context.Context) error {
	if err := b.srv.Serve(); err != nil {
		return err
	}
	<-ctx.Done()
	return b.srv.Close()
}

type authHook struct {
	mqtt.HookBase
	b *Broker
}

func (h *authHook) ID() string { return "serialine-auth" }

func (h *authHook) Provides(x byte) bool {
	return x == mqtt.OnConnectAuthenticate || x == mqtt.OnACLCheck
}

// certIdentity returns the common name of a verified client certificate.
func certIdentity(cl *mqtt.Client) (string, bool) {
	tc, ok := cl.Net.Conn.(*tls.Conn)
	if !ok {
		return "", false
	}
	st := tc.ConnectionState()
	if len(st.VerifiedChains) == 0 || len(st.PeerCertificates) == 0 {
		return "", false
	}
	return st.PeerCertificates[0].Subject.CommonName, true
}

func (h *authHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	user, pass := pk.Connect.Username, pk.Connect.Password
	b := h.b
	if cn, ok := certIdentity(cl); ok {
		// The certificate is the credential: the client is its common
		// name, whatever user name it sent (it may send none or the same).
		if len(user) > 0 && string(user) != cn {
			b.opt.Log.Warn().Str("user", string(user)).Str("certificate", cn).Str("remote", cl.Net.Remote).Msg("mqtt login refused: user name differs from the certificate")
			return false
		}
		b.mu.RLock()
		_, known := b.edges[cn]
		b.mu.RUnlock()
		if cn != b.opt.CentralUser && !known {
			b.opt.Log.Warn().Str("certificate", cn).Str("remote", cl.Net.Remote).Msg("mqtt login refused: certificate for an unknown edge")
			return false
		}
		cl.Properties.Username = []byte(cn)
		return true
	}
	if string(user) == b.opt.CentralUser {
		return subtle.ConstantTimeCompare(pass, []byte(b.opt.CentralPassword)) == 1
	}
	b.mu.RLock()
	want, ok := b.edges[string(user)]
	b.mu.RUnlock()
	if !ok || len(pass) == 0 || len(want) == 0 || subtle.ConstantTimeCompare(pass, want) != 1 {
		b.opt.Log.Warn().Str("user", string(user)).Str("remote", cl.Net.Remote).Msg("mqtt login refused")
		return false
	}
	return true
}

func (h *authHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	user := string(cl.Properties.Username)
	if user == h.b.opt.CentralUser {
		return true
	}
	return EdgeMayAccess(user, topic, write)
}

// EdgeMayAccess is the topic ACL for an edge: publish its own records and
// status, read its own acks and replay requests. Nothing else.
func EdgeMayAccess(edge, topic string, write bool) bool {
	e, ch, ok := wire.ParseTopic(topic)
	if !ok || e != edge {
		return false
	}
	if write {
		return ch == "records" || ch == "status"
	}
	return ch == "ack" || ch == "replay"
}

// zerologHandler adapts mochi's slog output to zerolog (warnings and up).
type zerologHandler struct {
	log   zerolog.Logger
	attrs []slog.Attr
}

func (z zerologHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (z zerologHandler) Handle(_ context.Context, r slog.Record) error {
	ev := z.log.Warn()
	if r.Level >= slog.LevelError {
		ev = z.log.Error()
	}
	var buf bytes.Buffer
	for _, a := range z.attrs {
		fmt.Fprintf(&buf, "%s=%v ", a.Key, a.Value)
	}
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&buf, "%s=%v ", a.Key, a.Value)
		return true
	})
	msg := r.Message
	if msg == "" {
		msg = "broker"
	}
	if strings.Contains(buf.String(), "use of closed network connection") {
		return nil // connections closing at shutdown
	}
	ev.Str("attrs", buf.String()).Msg(msg)
	return nil
}

func (z zerologHandler) WithAttrs(as []slog.Attr) slog.Handler {
	z.attrs = append(append([]slog.Attr(nil), z.attrs...), as...)
	return z
}

func (z zerologHandler) WithGroup(string) slog.Handler { return z }
