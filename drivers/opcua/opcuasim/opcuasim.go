// Package opcuasim simulates a line PLC as an OPC UA server, on the edge's
// hardened server (drivers/opcua/uaserver): one Variable node per tag of
// the driver's tag map, a reject gate that counts every reject written, a
// line_running input that starts true, writable counters, and fault
// injection (restart on the same port, slow answers, writes refused with a
// Bad status).
package opcuasim

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"net"
	"os"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gopcua/opcua/ua"
	"github.com/rs/zerolog"

	"github.com/serialine/serialine/drivers/opcua"
	"github.com/serialine/serialine/drivers/opcua/uaserver"
)

// DefaultNamespace is the simulator's namespace URI.
const DefaultNamespace = "urn:serialine:sim:plc"

// Options configure the simulator.
type Options struct {
	Name string
	// Namespace URI of the tags (default DefaultNamespace). Node ids in
	// Tags must be string ids in it: nsu=<Namespace>;s=<path>, or
	// ns=<index>;s=<path> with the simulator's index (NamespaceIndex).
	Namespace string
	Tags      map[string]opcua.Tag // the driver's tag map
	// Initial values by tag name; their Go types fix the node data types
	// (bool, uint8, int16, uint16, int32, uint32, int64, uint64). Default:
	// uint32(0) for names ending in _count, false otherwise, and true for
	// line_running.
	Initial map[string]any
	// Inputs are tags the PLC drives and clients may not write (default
	// line_running and product_present).
	Inputs   []string
	Security []string // uaserver security modes (default None)
	// Users with passwords; their role is operator. Without users
	// anonymous sessions may read and write.
	Users map[string]string
	// Key and Cert (DER) of the simulated PLC; generated once per
	// simulator when nil, and kept across restarts.
	Key  *rsa.PrivateKey
	Cert []byte
}

// Sim is the simulated PLC.
type Sim struct {
	opt   Options
	log   zerolog.Logger
	paths map[string]string // tag name -> node path
	input map[string]bool

	mu          sync.Mutex
	values      map[string]any
	rejects     int
	writes      int
	delay       time.Duration
	writeStatus ua.StatusCode
	addr        string
	srv         *uaserver.Server
	cancel      context.CancelFunc
	starts      int
}

// New checks the tag map and builds the simulator (not listening).
func New(opt Options, log zerolog.Logger) (*Sim, error) {
	if opt.Name == "" {
		opt.Name = "opcuasim"
	}
	if opt.Namespace == "" {
		opt.Namespace = DefaultNamespace
	}
	if opt.Inputs == nil {
		opt.Inputs = []string{"line_running", "product_present"}
	}
	s := &Sim{opt: opt, log: log.With().Str("sim", opt.Name).Logger(), paths: map[string]string{}, input: map[string]bool{}, values: map[string]any{}}
	for _, n := range opt.Inputs {
		s.input[n] = true
	}
	for name, t := range opt.Tags {
		ref, err := opcua.ParseNodeRef(t.Node)
		if err != nil {
			return nil, fmt.Errorf("opcuasim %s: tags.%s: %w", opt.Name, name, err)
		}
		if ref.Kind != 's' || (ref.NamespaceURI != "" && ref.NamespaceURI != opt.Namespace) {
			return nil, fmt.Errorf("opcuasim %s: tags.%s: node %s: the simulator serves string node ids in %s (nsu=%s;s=...)", opt.Name, name, ref, opt.Namespace, opt.Namespace)
		}
		s.paths[name] = ref.ID
		v, ok := opt.Initial[name]
		switch {
		case ok:
		case strings.HasSuffix(name, "_count"):
			v = uint32(0)
		default:
			v = name == "line_running"
		}
		s.values[name] = v
	}
	if opt.Key == nil || opt.Cert == nil {
		key, cert, err := opcua.GenerateCert("urn:serialine:sim:"+strings.ReplaceAll(opt.Name, " ", "-"), "Serialine PLC simulator "+opt.Name)
		if err != nil {
			return nil, err
		}
		s.opt.Key, s.opt.Cert = key, cert
	}
	return s, nil
}

// Cert is the simulator's certificate (DER), for pinning.
func (s *Sim) Cert() []byte { return s.opt.Cert }

// Start listens on addr ("127.0.0.1:0" picks a free port, kept for
// restarts) and returns the bound address.
func (s *Sim) Start(addr string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return s.addr, nil
	}
	if s.addr != "" {
		addr = s.addr
	}
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if err = s.startLocked(addr); err == nil {
			return s.addr, nil
		}
		if !strings.HasSuffix(addr, ":0") {
			break // a fixed port: report, do not wander
		}
	}
	return "", fmt.Errorf("opcuasim %s: %w", s.opt.Name, err)
}

func (s *Sim) startLocked(addr string) error {
	cfg := uaserver.Config{Addr: addr, Security: s.opt.Security, Namespace: s.opt.Namespace, ApplicationName: "Serialine PLC simulator " + s.opt.Name,
		Key: s.opt.Key, Cert: s.opt.Cert, Log: s.log, Fault: s.fault}
	if len(s.opt.Users) == 0 {
		cfg.AllowAnonymous, cfg.AnonymousRole = true, "operator"
	} else {
		users := s.opt.Users
		cfg.Auth = func(user, pw string) (string, bool) {
			want, ok := users[user]
			return "operator", ok && want == pw
		}
	}
	srv, err := uaserver.New(cfg)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(s.paths))
	for n := range s.paths {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		var w uaserver.WriteFunc
		if !s.input[name] {
			w = s.writer(name)
		}
		if err := srv.AddTag(s.paths[name], s.values[name], w, "operator"); err != nil {
			return fmt.Errorf("tags.%s: %w", name, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := srv.Start(ctx); err != nil {
		cancel()
		return err
	}
	// The library binds asynchronously: wait until the port answers.
	host := strings.TrimPrefix(srv.Endpoint(), "opc.tcp://")
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", host, 200*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			cancel()
			srv.Close()
			return fmt.Errorf("listen %s: %w", host, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.srv, s.cancel, s.addr = srv, cancel, host
	s.starts++
	return nil
}

func (s *Sim) writer(name string) uaserver.WriteFunc {
	return func(user, role string, v *ua.Variant) ua.StatusCode {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.writeStatus != ua.StatusOK {
			return s.writeStatus
		}
		val := v.Value()
		if reflect.TypeOf(val) != reflect.TypeOf(s.values[name]) {
			return ua.StatusBadTypeMismatch
		}
		s.writes++
		if name == "reject" && val == true {
			s.rejects++
		}
		s.values[name] = val
		if s.srv != nil {
			if err := s.srv.Set(s.paths[name], val); err != nil {
				s.log.Error().Err(err).Str("tag", name).Msg("simulated PLC value not stored")
				return ua.StatusBadInternalError
			}
		}
		return ua.StatusOK
	}
}

func (s *Sim) fault(service string) (time.Duration, ua.StatusCode) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch service {
	case "Read", "Write", "Browse", "CreateSubscription", "CreateMonitoredItems":
		return s.delay, ua.StatusOK
	}
	return 0, ua.StatusOK
}

// Addr is the bound address.
func (s *Sim) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Endpoint is the opc.tcp URL.
func (s *Sim) Endpoint() string { return "opc.tcp://" + s.Addr() }

// NamespaceIndex is the index of the simulator's namespace (valid after Start).
func (s *Sim) NamespaceIndex() uint16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil {
		return 0
	}
	return s.srv.NamespaceIndex()
}

// Stop closes the listener and every client (a PLC power-off).
func (s *Sim) Stop() {
	s.mu.Lock()
	srv, cancel := s.srv, s.cancel
	s.srv, s.cancel = nil, nil
	s.mu.Unlock()
	if srv != nil {
		cancel()
		srv.Close()
	}
}

// Restart is a PLC power cycle: a new server process on the same port,
// with the same certificate and the last values (retained memory).
func (s *Sim) Restart() error {
	s.Stop()
	_, err := s.Start(s.Addr())
	return err
}

// Starts counts how often the server was started.
func (s *Sim) Starts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.starts
}

// SetDelay delays every Read, Write and subscription request.
func (s *Sim) SetDelay(d time.Duration) {
	s.mu.Lock()
	s.delay = d
	s.mu.Unlock()
}

// RefuseWrites makes every write answer code (ua.StatusOK accepts again).
func (s *Sim) RefuseWrites(code ua.StatusCode) {
	s.mu.Lock()
	s.writeStatus = code
	s.mu.Unlock()
}

// Set changes a tag's value (e.g. line_running), notifying subscribers.
func (s *Sim) Set(tag string, v any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.values[tag]
	if !ok {
		return fmt.Errorf("opcuasim %s: no tag %q", s.opt.Name, tag)
	}
	if reflect.TypeOf(old) != reflect.TypeOf(v) {
		return fmt.Errorf("opcuasim %s: tag %s is %T, not %T", s.opt.Name, tag, old, v)
	}
	s.values[tag] = v
	if s.srv != nil {
		return s.srv.Set(s.paths[tag], v)
	}
	return nil
}

// Value is a tag's current value.
func (s *Sim) Value(tag string) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.values[tag]
	if !ok {
		return nil, errors.New("no such tag")
	}
	return v, nil
}

// RejectCount is the number of rejects written to the reject tag.
func (s *Sim) RejectCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rejects
}

// Writes counts the accepted writes.
func (s *Sim) Writes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes
}

// Sessions is the number of open client sessions.
func (s *Sim) Sessions() int {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if srv == nil {
		return 0
	}
	return srv.Sessions()
}

// FromDriver builds simulator options that match a driver configuration:
// the namespace of the tags' nsu= node ids, the security mode (the
// simulator serves None and Basic256Sha256) and the user.
func FromDriver(name string, o *opcua.Options) (Options, error) {
	so := Options{Name: name, Tags: o.Tags}
	for tag, t := range o.Tags {
		ref, err := opcua.ParseNodeRef(t.Node)
		if err != nil {
			return so, fmt.Errorf("tags.%s: %w", tag, err)
		}
		if ref.NamespaceURI != "" {
			if so.Namespace != "" && so.Namespace != ref.NamespaceURI {
				return so, fmt.Errorf("tags.%s: the simulator serves one namespace (%s and %s given)", tag, so.Namespace, ref.NamespaceURI)
			}
			so.Namespace = ref.NamespaceURI
		}
	}
	switch pol, mode := o.Security.Policy, o.Security.Mode; {
	case pol == "" || pol == "None":
		so.Security = []string{uaserver.SecurityNone}
	case pol == "Basic256Sha256" && mode == "Sign":
		so.Security = []string{uaserver.SecurityBasic256Sha256Sign}
	case pol == "Basic256Sha256":
		so.Security = []string{uaserver.SecurityBasic256Sha256SignCrypt}
	default:
		return so, fmt.Errorf("security.policy %s: the simulator serves None and Basic256Sha256", pol)
	}
	if o.Username != "" {
		pw := o.Password
		if o.PasswordFile != "" {
			raw, err := os.ReadFile(o.PasswordFile)
			if err != nil {
				return so, fmt.Errorf("password_file: %w", err)
			}
			pw = strings.TrimRight(string(raw), "\r\n")
		}
		so.Users = map[string]string{o.Username: pw}
	}
	return so, nil
}
