// Package broker embeds an MQTT broker (mochi-mqtt) in central: the default
// that serves on a fresh machine. Production sites may use an external
// broker (Mosquitto, EMQX, HiveMQ) instead; the protocol is the same.
//
// Access is deny-all except: central's own user (everything), and each edge
// with its own credentials, which may publish only to its own records and
// status topics and subscribe only to its own ack and replay topics.
package broker

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
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
}

// Broker is the embedded broker.
type Broker struct {
	srv  *mqtt.Server
	opt  Options
	addr string

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
	return b, nil
}

// Addr is the bound listen address.
func (b *Broker) Addr() string { return b.addr }

// URL is the broker URL clients use.
func (b *Broker) URL() string { return "tcp://" + b.addr }

// SetEdge sets (or replaces) an edge's MQTT password.
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

func (h *authHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	user, pass := pk.Connect.Username, pk.Connect.Password
	b := h.b
	if string(user) == b.opt.CentralUser {
		return subtle.ConstantTimeCompare(pass, []byte(b.opt.CentralPassword)) == 1
	}
	b.mu.RLock()
	want, ok := b.edges[string(user)]
	b.mu.RUnlock()
	if !ok || len(pass) == 0 || subtle.ConstantTimeCompare(pass, want) != 1 {
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
