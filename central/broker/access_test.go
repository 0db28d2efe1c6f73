package broker

import (
	"context"
	"crypto/tls"
	"fmt"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"

	"github.com/serialine/serialine/central/broker/brokertest"
	"github.com/serialine/serialine/sync/transport"
	"github.com/serialine/serialine/sync/wire"
)

// target is a broker under test: the embedded one or a private Mosquitto,
// both configured with Serialine's per-edge credentials, topic ACL and a
// TLS listener that requires client certificates.
type target struct {
	name     string
	url, tls string
	ca       *brokertest.CA
}

const centralPW = "central-secret-1"

var edgePW = map[string]string{"e1": "edge-secret-1", "e2": "edge-secret-2"}

func targets(t *testing.T) []target {
	ca := brokertest.NewCA(t)
	cert, key := ca.Issue(t, "127.0.0.1", true)
	b, err := New(Options{Listen: "127.0.0.1:0", CentralUser: "central", CentralPassword: centralPW, Log: zerolog.Nop(),
		TLSListen: "127.0.0.1:0", TLSCertFile: cert, TLSKeyFile: key, ClientCAFile: ca.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	for id, pw := range edgePW {
		b.SetEdge(id, pw)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go b.Run(ctx)
	out := []target{{"mochi", b.URL(), b.TLSURL(), ca}}
	users := map[string]string{"central": centralPW}
	for id, pw := range edgePW {
		users[id] = pw
	}
	m := brokertest.StartMosquitto(t, brokertest.MosquittoOptions{Users: users, ACL: brokertest.SerialineACL("central"), CA: ca})
	return append(out, target{"mosquitto", m.URL(), m.TLSURL(), ca})
}

// dial connects once (no retry) and returns the connect error.
func dial(url, user, pw string, tc *tls.Config) (paho.Client, error) {
	o := paho.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("t-%s-%d", user, time.Now().UnixNano())).
		SetUsername(user).SetPassword(pw).SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(3 * time.Second).SetOrderMatters(true)
	if tc != nil {
		o.SetTLSConfig(tc)
	}
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(5 * time.Second) {
		return nil, fmt.Errorf("connect timeout")
	}
	if tok.Error() != nil {
		return nil, tok.Error()
	}
	return c, nil
}

func tlsFor(t *testing.T, ca *brokertest.CA, cn string) *tls.Config {
	var cert, key string
	if cn != "" {
		cert, key = ca.Issue(t, cn, false)
	}
	tc, err := transport.TLSConfig(ca.CAFile, cert, key)
	if err != nil {
		t.Fatal(err)
	}
	return tc
}

// received collects what central's subscription sees.
type received struct {
	mu  sync.Mutex
	got map[string][]string // topic -> payloads
	ch  chan string
}

func (r *received) handler(_ paho.Client, m paho.Message) {
	r.mu.Lock()
	r.got[m.Topic()] = append(r.got[m.Topic()], string(m.Payload()))
	r.mu.Unlock()
	r.ch <- string(m.Payload())
}

func (r *received) waitFor(t *testing.T, payload string) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case p := <-r.ch:
			if p == payload {
				return
			}
		case <-timeout:
			t.Fatalf("%q never arrived", payload)
		}
	}
}

func (r *received) has(payload string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ps := range r.got {
		for _, p := range ps {
			if p == payload {
				return true
			}
		}
	}
	return false
}

func publish(t *testing.T, c paho.Client, topic, payload string) {
	t.Helper()
	tok := c.Publish(topic, 1, false, payload)
	tok.WaitTimeout(5 * time.Second)
	// A broker may refuse a publish with an error or (MQTT 3.1.1) by
	// acknowledging and dropping it: what counts is what central receives.
}

// Per-edge credentials and topic ACL, on both brokers, over plain TCP and
// over TLS with client certificates.
func TestAccessControl(t *testing.T) {
	for _, tg := range targets(t) {
		t.Run(tg.name, func(t *testing.T) {
			// Central sees everything.
			central, err := dial(tg.url, "central", centralPW, nil)
			if err != nil {
				t.Fatalf("central login: %v", err)
			}
			defer central.Disconnect(100)
			rec := &received{got: map[string][]string{}, ch: make(chan string, 100)}
			if tok := central.Subscribe(wire.TopicPrefix+"#", 1, rec.handler); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
				t.Fatal(tok.Error())
			}
			// Logins that must fail.
			for _, bad := range []struct{ user, pw, why string }{
				{"", "", "no credentials"},
				{"e1", "wrong-password", "wrong password"},
				{"e1", edgePW["e2"], "another edge's password"},
				{"nobody", "x", "unknown user"},
			} {
				if c, err := dial(tg.url, bad.user, bad.pw, nil); err == nil {
					c.Disconnect(0)
					t.Errorf("login with %s accepted", bad.why)
				}
			}
			e1, err := dial(tg.url, "e1", edgePW["e1"], nil)
			if err != nil {
				t.Fatalf("e1 login: %v", err)
			}
			defer e1.Disconnect(100)
			// Subscriptions outside its own ack/replay topics deliver
			// nothing (the embedded broker refuses them in the SUBACK,
			// Mosquitto grants them and filters every message).
			leaked := &received{got: map[string][]string{}, ch: make(chan string, 100)}
			for _, topic := range []string{wire.Topic("e2", "ack"), wire.Topic("e2", "replay"), wire.TopicPrefix + "+/records", "#"} {
				e1.Subscribe(topic, 1, leaked.handler).WaitTimeout(5 * time.Second)
			}
			own := &received{got: map[string][]string{}, ch: make(chan string, 100)}
			if tok := e1.Subscribe(wire.Topic("e1", "ack"), 1, own.handler); !tok.WaitTimeout(5*time.Second) || tok.(*paho.SubscribeToken).Result()[wire.Topic("e1", "ack")] == 0x80 {
				t.Error("e1 may not subscribe to its own acks")
			}
			publish(t, central, wire.Topic("e2", "ack"), "ack for e2")
			publish(t, central, wire.Topic("e2", "replay"), "replay for e2")
			publish(t, central, wire.Topic("e2", "records"), "records of e2")
			publish(t, central, wire.Topic("e1", "ack"), "ack for e1")
			own.waitFor(t, "ack for e1")
			for _, p := range []string{"ack for e2", "replay for e2", "records of e2"} {
				if leaked.has(p) {
					t.Errorf("e1 received %q", p)
				}
			}
			// Publishing on another edge's topics, or forging its own acks,
			// never reaches central (both brokers drop the client). The
			// sentinel is published afterwards by a new connection of the
			// same edge: a broker handles one connection's packets in
			// order, so had the forbidden message been routed, it would
			// have reached central first.
			forbidden := func(user string, dialIt func() (paho.Client, error), topic, payload string) {
				t.Helper()
				c, err := dialIt()
				if err != nil {
					t.Fatalf("%s login: %v", user, err)
				}
				publish(t, c, topic, payload)
				c.Disconnect(50)
				c2, err := dialIt()
				if err != nil {
					t.Fatalf("%s login: %v", user, err)
				}
				sentinel := "sentinel after " + payload
				publish(t, c2, wire.Topic(user, "records"), sentinel)
				rec.waitFor(t, sentinel)
				c2.Disconnect(50)
				if rec.has(payload) {
					t.Errorf("%q reached central", payload)
				}
			}
			e1Login := func() (paho.Client, error) { return dial(tg.url, "e1", edgePW["e1"], nil) }
			forbidden("e1", e1Login, wire.Topic("e2", "records"), "forged e2 records")
			forbidden("e1", e1Login, wire.Topic("e2", "status"), "forged e2 status")
			forbidden("e1", e1Login, wire.Topic("e1", "ack"), "forged own ack")
			forbidden("e1", e1Login, "other/topic", "outside serialine")

			// TLS with client certificates.
			if _, err := dial(tg.tls, "", "", tlsFor(t, tg.ca, "")); err == nil {
				t.Error("TLS connection without a client certificate accepted")
			}
			other := brokertest.NewCA(t)
			tc := tlsFor(t, other, "e1")
			tc.RootCAs = tlsFor(t, tg.ca, "").RootCAs // trust the server, present a foreign client cert
			if _, err := dial(tg.tls, "", "", tc); err == nil {
				t.Error("client certificate of another CA accepted")
			}
			e2tls := tlsFor(t, tg.ca, "e2")
			e2Login := func() (paho.Client, error) { return dial(tg.tls, "", "", e2tls) }
			forbidden("e2", e2Login, wire.Topic("e1", "records"), "e2 as e1 over TLS")
		})
	}
}

// The embedded broker admits a certificate only for an edge it knows, and
// only under the certificate's own name; a cert-only edge (no password) has
// no password login.
func TestCertificateIdentity(t *testing.T) {
	ca := brokertest.NewCA(t)
	cert, key := ca.Issue(t, "127.0.0.1", true)
	b, err := New(Options{Listen: "127.0.0.1:0", CentralUser: "central", CentralPassword: centralPW, Log: zerolog.Nop(),
		TLSListen: "127.0.0.1:0", TLSCertFile: cert, TLSKeyFile: key, ClientCAFile: ca.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	b.SetEdge("e3", "") // certificate only
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go b.Run(ctx)
	if c, err := dial(b.TLSURL(), "", "", tlsFor(t, ca, "e3")); err != nil {
		t.Fatalf("e3 by certificate: %v", err)
	} else {
		c.Disconnect(0)
	}
	if _, err := dial(b.TLSURL(), "e4", "", tlsFor(t, ca, "e3")); err == nil {
		t.Error("a certificate for e3 logged in as e4")
	}
	if _, err := dial(b.TLSURL(), "", "", tlsFor(t, ca, "e9")); err == nil {
		t.Error("certificate of an unknown edge accepted")
	}
	if _, err := dial(b.URL(), "e3", "", nil); err == nil {
		t.Error("cert-only edge logged in without a password over plain TCP")
	}
	if c, err := dial(b.TLSURL(), "", "", tlsFor(t, ca, "central")); err != nil {
		t.Errorf("central by certificate: %v", err)
	} else {
		c.Disconnect(0)
	}
}
