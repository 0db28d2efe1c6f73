// Package transport is the MQTT link between edge and central (paho). It is
// transport only: durability lives in the edge's bbolt outbox and central's
// store, never in paho's in-memory store, and a PUBACK is never taken as
// delivery.
package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"
)

// Options configure a Client.
type Options struct {
	Broker   string // tcp://host:port, ssl://host:port, mqtts://host:port
	ClientID string
	Username string
	Password string
	// TLS files (optional): CA to trust, client certificate and key.
	CAFile, CertFile, KeyFile string
	Log                       zerolog.Logger
	// OnConnect runs after every (re)connection, after subscriptions were restored.
	OnConnect func()
	// OnLost runs when the connection drops.
	OnLost func(error)
}

// Handler receives a message.
type Handler func(topic string, payload []byte)

// Client is a reconnecting MQTT client that restores its subscriptions.
type Client struct {
	c   paho.Client
	opt Options
	log zerolog.Logger

	mu   sync.Mutex
	subs map[string]sub
	up   bool
	upCh chan struct{}
}

type sub struct {
	qos byte
	h   Handler
}

// ErrNotConnected: the broker link is down.
var ErrNotConnected = errors.New("mqtt: not connected")

// New builds a client; Connect starts it.
func New(opt Options) (*Client, error) {
	u, err := url.Parse(opt.Broker)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("mqtt broker %q: want tcp://host:port or ssl://host:port", opt.Broker)
	}
	cl := &Client{opt: opt, log: opt.Log.With().Str("broker", u.Host).Logger(), subs: map[string]sub{}, upCh: make(chan struct{})}
	po := paho.NewClientOptions().
		AddBroker(opt.Broker).
		SetClientID(opt.ClientID).
		SetCleanSession(true).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(500 * time.Millisecond).
		SetMaxReconnectInterval(5 * time.Second).
		SetConnectTimeout(5 * time.Second).
		SetWriteTimeout(10 * time.Second).
		SetKeepAlive(15 * time.Second).
		SetPingTimeout(5 * time.Second).
		// Handlers run in arrival order on paho's router goroutine (they only
		// enqueue): out-of-order handling would look like gaps to ingest.
		SetOrderMatters(true).
		SetMessageChannelDepth(1024)
	if opt.Username != "" {
		po.SetUsername(opt.Username)
		po.SetPassword(opt.Password)
	}
	if u.Scheme == "ssl" || u.Scheme == "tls" || u.Scheme == "mqtts" || opt.CAFile != "" {
		tc, err := TLSConfig(opt.CAFile, opt.CertFile, opt.KeyFile)
		if err != nil {
			return nil, err
		}
		po.SetTLSConfig(tc)
	}
	po.SetOnConnectHandler(func(c paho.Client) {
		cl.mu.Lock()
		subs := make(map[string]sub, len(cl.subs))
		for t, s := range cl.subs {
			subs[t] = s
		}
		cl.mu.Unlock()
		for t, s := range subs {
			if err := cl.subscribe(t, s); err != nil {
				cl.log.Error().Err(err).Str("topic", t).Msg("resubscribe failed")
			}
		}
		cl.mu.Lock()
		cl.up = true
		close(cl.upCh)
		cl.mu.Unlock()
		cl.log.Info().Msg("mqtt connected")
		if opt.OnConnect != nil {
			opt.OnConnect()
		}
	})
	po.SetConnectionLostHandler(func(c paho.Client, err error) {
		cl.mu.Lock()
		if cl.up {
			cl.up = false
			cl.upCh = make(chan struct{})
		}
		cl.mu.Unlock()
		cl.log.Warn().Err(err).Msg("mqtt connection lost")
		if opt.OnLost != nil {
			opt.OnLost(err)
		}
	})
	cl.c = paho.NewClient(po)
	return cl, nil
}

// TLSConfig builds a TLS configuration from PEM files (all optional).
func TLSConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("mqtt ca_file %s: no PEM certificate", caFile)
		}
		tc.RootCAs = pool
	}
	if certFile != "" || keyFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// Connect starts connecting; with ConnectRetry paho keeps trying in the
// background, so Connect returns at once unless the options are invalid.
func (c *Client) Connect() error {
	t := c.c.Connect()
	// With ConnectRetry the token completes only on success; don't wait.
	select {
	case <-t.Done():
		return t.Error()
	default:
		return nil
	}
}

// Up returns a channel closed while the client is connected (a new one
// after a drop).
func (c *Client) Up() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.upCh
}

// Connected reports the link state.
func (c *Client) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.up
}

// WaitConnected blocks until connected or ctx ends.
func (c *Client) WaitConnected(ctx context.Context) error {
	select {
	case <-c.Up():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Subscribe registers a handler; it is restored after every reconnect.
func (c *Client) Subscribe(topic string, qos byte, h Handler) error {
	s := sub{qos: qos, h: h}
	c.mu.Lock()
	c.subs[topic] = s
	up := c.up
	c.mu.Unlock()
	if !up {
		return nil // subscribed on connect
	}
	return c.subscribe(topic, s)
}

func (c *Client) subscribe(topic string, s sub) error {
	t := c.c.Subscribe(topic, s.qos, func(_ paho.Client, m paho.Message) {
		s.h(m.Topic(), m.Payload())
	})
	if !t.WaitTimeout(10 * time.Second) {
		return fmt.Errorf("mqtt subscribe %s: timeout", topic)
	}
	if err := t.Error(); err != nil {
		return fmt.Errorf("mqtt subscribe %s: %w", topic, err)
	}
	if st, ok := t.(*paho.SubscribeToken); ok {
		for _, code := range st.Result() {
			if code == 0x80 {
				return fmt.Errorf("mqtt subscribe %s: refused by the broker (not authorised?)", topic)
			}
		}
	}
	return nil
}

// Publish sends a message and waits for the broker's acknowledgement (QoS
// 1) or ctx. Callers never treat that as delivery to central.
func (c *Client) Publish(ctx context.Context, topic string, qos byte, retained bool, payload []byte) error {
	if !c.Connected() {
		return ErrNotConnected
	}
	t := c.c.Publish(topic, qos, retained, payload)
	select {
	case <-t.Done():
		if err := t.Error(); err != nil {
			return fmt.Errorf("mqtt publish %s: %w", topic, err)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// PublishAsync sends without waiting; the returned channel is closed when
// the broker acknowledged (or the attempt failed: check the error func).
func (c *Client) PublishAsync(topic string, qos byte, retained bool, payload []byte) (<-chan struct{}, func() error) {
	t := c.c.Publish(topic, qos, retained, payload)
	return t.Done(), t.Error
}

// Close disconnects (bounded) and stops reconnecting; safe twice.
func (c *Client) Close() {
	if c == nil || c.c == nil {
		return
	}
	c.c.Disconnect(250)
}
