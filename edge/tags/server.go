package tags

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gopcua/opcua/ua"
	"github.com/rs/zerolog"

	"github.com/serialine/serialine/drivers/opcua/uaserver"
)

// Stats are the tag server's counters (diagnostics, tests).
type Stats struct {
	Panics         int `json:"panics"` // handler panics recovered
	Sessions       int `json:"sessions"`
	Subscriptions  int `json:"subscriptions"`
	MonitoredItems int `json:"monitored_items"`
}

// lineNamespace is the index of the line's namespace: the first one a
// uaserver adds after the standard namespace 0. The child reports its
// index when it is ready and the server refuses a different one.
const lineNamespace = 1

// Server serves the tags. By default the OPC UA stack runs in a child
// process (the same executable, re-executed): gopcua v0.9.0 decodes every
// message on its own reader goroutine, where a crafted message (a Variant
// array of negative length panics in reflect.MakeSlice; an array count of
// 2^31 asks for 16 GB) kills the process before any handler of ours runs.
// A crash then takes down the child only; the server restarts it on the
// same port with the same certificate and the last snapshot. The child
// holds no secrets: it asks the server to check passwords and to apply
// commands.
type Server struct {
	o      Options
	auth   Authenticator
	cmd    CommandHandler
	log    zerolog.Logger
	root   string
	host   string
	port   int
	key    *rsa.PrivateKey
	cert   []byte
	inproc *local

	ns        atomic.Int32
	restarts  atomic.Int64
	ready     chan struct{}
	readyOnce sync.Once

	mu     sync.Mutex
	last   *Snapshot
	kick   chan struct{}
	child  *child
	closed bool
}

// New builds the server; Run serves. A configuration error is reported
// here, a port that cannot be bound by Run.
func New(o Options, auth Authenticator, cmd CommandHandler) (*Server, error) {
	if err := uaserver.CheckSecurity(o.Security); err != nil {
		return nil, err
	}
	host, port, err := uaserver.ResolveAddr(o.Listen)
	if err != nil {
		return nil, err
	}
	s := &Server{o: o, auth: auth, cmd: cmd, log: o.Log, root: rootOf(o.LineID), host: host, port: port, kick: make(chan struct{}, 1), ready: make(chan struct{})}
	s.ns.Store(lineNamespace)
	// One certificate for the server's life: HMIs that pin it keep working
	// across child restarts.
	if s.key, s.cert, err = uaserver.SelfSigned(host, "Serialine edge "+o.LineID); err != nil {
		return nil, err
	}
	o.Listen = fmt.Sprintf("%s:%d", host, port)
	s.o = o
	if o.InProcess {
		if s.inproc, err = newLocal(o, s.key, s.cert, auth, cmd); err != nil {
			return nil, err
		}
		s.ns.Store(int32(s.inproc.ua.NamespaceIndex()))
	}
	return s, nil
}

// Endpoint is the opc.tcp URL.
func (s *Server) Endpoint() string { return fmt.Sprintf("opc.tcp://%s:%d", s.host, s.port) }

// Certificate is the server's certificate (DER), for HMIs to pin.
func (s *Server) Certificate() []byte { return s.cert }

// NodeID of a tag path below the line root, e.g. "Status.StateCurrent".
func (s *Server) NodeID(path string) *ua.NodeID {
	return ua.NewStringNodeID(uint16(s.ns.Load()), s.root+"."+path)
}

// NamespaceIndex is the index of the line's namespace.
func (s *Server) NamespaceIndex() uint16 { return uint16(s.ns.Load()) }

// Root is the line's folder name.
func (s *Server) Root() string { return s.root }

// Ready is closed once the server first listens.
func (s *Server) Ready() <-chan struct{} { return s.ready }

func (s *Server) markReady() { s.readyOnce.Do(func() { close(s.ready) }) }

// Restarts counts the child processes started after the first one.
func (s *Server) Restarts() int { return int(s.restarts.Load()) }

// Update publishes a snapshot (latest value wins; never blocks).
func (s *Server) Update(sn Snapshot) {
	if s.inproc != nil {
		s.inproc.update(sn)
		return
	}
	s.mu.Lock()
	s.last = &sn
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Stats asks the server for its counters.
func (s *Server) Stats() (Stats, error) {
	if s.inproc != nil {
		return s.inproc.stats(), nil
	}
	s.mu.Lock()
	c := s.child
	s.mu.Unlock()
	if c == nil {
		return Stats{}, errors.New("the OPC UA child process is not running")
	}
	return c.stats()
}

// PanicCount is the number of recovered handler panics (-1 if unknown).
func (s *Server) PanicCount() int {
	st, err := s.Stats()
	if err != nil {
		return -1
	}
	return st.Panics
}

// Sessions is the number of open sessions (-1 if unknown).
func (s *Server) Sessions() int {
	st, err := s.Stats()
	if err != nil {
		return -1
	}
	return st.Sessions
}

// Subscriptions is the number of live subscriptions and monitored items.
func (s *Server) Subscriptions() (subs, items int) {
	st, _ := s.Stats()
	return st.Subscriptions, st.MonitoredItems
}

// Run serves until ctx ends. The first start's failure (a port in use) is
// returned; later crashes of the child are logged and the child restarted
// with backoff.
func (s *Server) Run(ctx context.Context) error {
	if s.inproc != nil {
		if err := s.inproc.ua.Start(ctx); err != nil {
			return fmt.Errorf("edge OPC UA tags: %w", err)
		}
		if err := waitListening(ctx, s.host, s.port); err != nil {
			return fmt.Errorf("edge OPC UA tags: %w", err)
		}
		s.markReady()
		<-ctx.Done()
		s.inproc.ua.Close()
		return nil
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("edge OPC UA tags: %w", err)
	}
	backoff := time.Second
	runStart := time.Now()
	for first := true; ; {
		started := time.Now()
		c, err := s.startChild(ctx, exe)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// The first start may meet the previous edge's child still
			// holding the port for a moment after a kill: retry briefly.
			if first && time.Since(runStart) > 10*time.Second {
				return fmt.Errorf("edge OPC UA tags: %w", err)
			}
			if first {
				backoff = 500 * time.Millisecond
			}
			s.log.Error().Err(err).Dur("retry_in", backoff).Msg("OPC UA tag server child did not start")
		} else {
			wasFirst := first
			first = false
			s.markReady()
			if !wasFirst {
				s.restarts.Add(1)
			}
			err := c.wait(ctx, s)
			if ctx.Err() != nil {
				return nil
			}
			s.log.Error().Err(err).Str("stderr", c.stderrTail()).Dur("retry_in", backoff).
				Msg("OPC UA tag server child process ended; restarting it (the edge is not affected)")
		}
		if time.Since(started) > time.Minute {
			backoff = time.Second
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		if first {
			continue
		}
		if backoff *= 2; backoff > 30*time.Second {
			backoff = 30 * time.Second
		}
	}
}

// waitListening polls until the port accepts (gopcua binds asynchronously).
func waitListening(ctx context.Context, host string, port int) error {
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	deadline := time.Now().Add(time.Minute)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s not listening: %w", addr, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
