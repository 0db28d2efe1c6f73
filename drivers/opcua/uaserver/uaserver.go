// Package uaserver is Serialine's hardened wrapper around gopcua's
// experimental OPC UA server (v0.9.0), shared by the edge's PackML tag
// server and the PLC simulator. What it closes (DESIGN.md §5, and found by
// reading the library's source):
//
//   - user name/password tokens are never checked by the library: our
//     ActivateSession decrypts and checks them (and rejects anonymous
//     sessions unless allowed) before the library activates the session;
//   - sessions are not bound to their secure channel and their tokens are
//     31-bit math/rand numbers: a request with another channel's session
//     token is refused; sessions expire after their timeout; at most
//     MaxSessions exist;
//   - the library has no certificate trust list: TrustedClientCerts pins
//     client certificates, and the client must prove it holds the key;
//   - the library dispatches every request of every client on ONE
//     goroutine, so one slow handler or one client that stops reading its
//     socket stalls all clients: requests run on a worker per secure
//     channel, which answers them itself;
//   - the Subscription and MonitoredItem services panic on bad intervals
//     and unknown ids, reuse live subscription ids and can block every
//     client on one stuck client: we serve them ourselves (subs.go);
//   - other handlers may still panic: every handler runs under recover and
//     answers BadInternalError;
//   - a client may rewrite DisplayName/DataType/AccessLevel of a writable
//     node: our own Write handler accepts the Value attribute only,
//     type-checked, for tags registered as writable, from sessions whose
//     role allows it;
//   - node values race under -race: values are served by ValueFuncs over a
//     locked store, never Node.SetAttribute from our goroutines.
package uaserver

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"reflect"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/server"
	"github.com/gopcua/opcua/ua"
	"github.com/gopcua/opcua/uapolicy"
	"github.com/gopcua/opcua/uasc"
	"github.com/rs/zerolog"
)

// Roles in rank order; writes need at least the tag's role.
var roleRank = map[string]int{"anonymous": 0, "viewer": 0, "operator": 1, "supervisor": 2, "qa": 3, "admin": 4}

// Authenticator checks a user name and password and returns the user's role.
type Authenticator func(user, password string) (role string, ok bool)

// WriteFunc handles a write of a writable tag by an authenticated user. It
// returns ua.StatusOK or a Bad status (e.g. ua.StatusBadOutOfRange). It runs
// on the writing client's channel worker: it may block that client, never
// the others.
type WriteFunc func(user, role string, v *ua.Variant) ua.StatusCode

// Security modes a server can offer.
const (
	SecurityNone                    = "None"
	SecurityBasic256Sha256Sign      = "Basic256Sha256-Sign"
	SecurityBasic256Sha256SignCrypt = "Basic256Sha256-SignAndEncrypt"
	defaultMaxSessions              = 50
	defaultChannelQueue             = 16
	maxWritesPerRequest             = 100
)

// Config configures a server.
type Config struct {
	Addr            string   // host:port; port 0 picks a free port
	Security        []string // "None", "Basic256Sha256-Sign", "Basic256Sha256-SignAndEncrypt" (default None)
	Namespace       string   // namespace URI
	ApplicationName string
	Auth            Authenticator
	AllowAnonymous  bool // anonymous sessions may read and subscribe (never write, unless AnonymousRole)
	// AnonymousRole is the role of anonymous sessions (default
	// "anonymous", which never writes). Simulators set "operator".
	AnonymousRole string
	// Key and Cert (DER) of the server; generated (self-signed) when nil.
	// User name tokens are encrypted with this key (Basic256Sha256 token
	// policy), also on the None endpoint.
	Key  *rsa.PrivateKey
	Cert []byte
	// TrustedClientCerts (DER) pins client application certificates: when
	// set, a session is activated only for a client that presents one of
	// them in CreateSession and signs ActivateSession with its key
	// (Basic256Sha256). A client on a None channel cannot sign and is refused.
	TrustedClientCerts [][]byte
	MaxSessions        int // default 50
	// Fault, if set, is asked before every service request (simulators):
	// it may delay the answer and/or fail the request with a Bad status.
	Fault func(service string) (delay time.Duration, code ua.StatusCode)
	Log   zerolog.Logger
}

type tag struct {
	node     *server.Node
	value    any
	dataType uint32
	write    WriteFunc
	minRole  string
}

type session struct {
	token      string
	user, role string
	nonce      []byte
	clientCert []byte
	active     bool
	sc         *uasc.SecureChannel // the channel the session was activated on
	timeout    time.Duration
	lastUsed   time.Time
}

// Server is a hardened OPC UA server.
type Server struct {
	cfg      Config
	srv      *server.Server
	ns       *server.NodeNameSpace
	endpoint string
	log      zerolog.Logger
	key      *rsa.PrivateKey
	cert     []byte
	subs     *subService
	libSess  *server.SessionService

	mu       sync.Mutex
	tags     map[string]*tag
	folders  map[string]*server.Node
	sessions map[string]*session
	changed  map[string]bool
	kick     chan struct{}
	started  bool

	sessMu  sync.Mutex // serialises CreateSession/ActivateSession/CloseSession
	wmu     sync.Mutex
	workers map[*uasc.SecureChannel]*worker
	ctx     context.Context

	closeOnce sync.Once
	closeErr  error

	panicsMu sync.Mutex
	panics   int
}

// New builds the server (not started).
func New(cfg Config) (*Server, error) {
	if cfg.Namespace == "" {
		cfg.Namespace = "urn:serialine"
	}
	if cfg.ApplicationName == "" {
		cfg.ApplicationName = "Serialine"
	}
	if len(cfg.Security) == 0 {
		cfg.Security = []string{SecurityNone}
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = defaultMaxSessions
	}
	if err := CheckSecurity(cfg.Security); err != nil {
		return nil, err
	}
	host, port, err := ResolveAddr(cfg.Addr)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Log, tags: map[string]*tag{}, folders: map[string]*server.Node{}, sessions: map[string]*session{},
		changed: map[string]bool{}, kick: make(chan struct{}, 1), workers: map[*uasc.SecureChannel]*worker{}}
	s.subs = newSubService(s)
	s.endpoint = fmt.Sprintf("opc.tcp://%s:%d", host, port)
	key, cert := cfg.Key, cfg.Cert
	if key == nil || cert == nil {
		if key, cert, err = SelfSigned(host, cfg.ApplicationName); err != nil {
			return nil, err
		}
	}
	s.key, s.cert = key, cert
	opts := []server.Option{
		server.EndPoint(host, port),
		server.PrivateKey(key), server.Certificate(cert),
		server.ServerName(cfg.ApplicationName), server.ProductName("Serialine"), server.ManufacturerName("Serialine"),
		server.EnableAuthMode(ua.UserTokenTypeAnonymous), server.EnableAuthMode(ua.UserTokenTypeUserName),
		server.SetLogger(logAdapter{cfg.Log}),
	}
	basic := false
	for _, sec := range cfg.Security {
		switch sec {
		case SecurityNone:
			opts = append(opts, server.EnableSecurity("None", ua.MessageSecurityModeNone))
		case SecurityBasic256Sha256Sign:
			opts = append(opts, server.EnableSecurity("Basic256Sha256", ua.MessageSecurityModeSign))
			basic = true
		case SecurityBasic256Sha256SignCrypt:
			opts = append(opts, server.EnableSecurity("Basic256Sha256", ua.MessageSecurityModeSignAndEncrypt))
			basic = true
		}
	}
	if !basic {
		// User name tokens are only offered with a token policy that
		// encrypts the password; enable it for tokens (the endpoint list
		// still holds the configured channel policies).
		opts = append(opts, server.EnableSecurity("Basic256Sha256", ua.MessageSecurityModeSignAndEncrypt))
	}
	s.srv = server.New(opts...)
	s.ns = server.NewNodeNameSpace(s.srv, cfg.Namespace)
	root, _ := s.srv.Namespace(0)
	root.Objects().AddRef(s.ns.Objects(), id.HasComponent, true)
	s.folders[""] = s.ns.Objects()
	s.installHandlers()
	return s, nil
}

// Endpoint is the server's opc.tcp URL.
func (s *Server) Endpoint() string { return s.endpoint }

// NamespaceIndex is the index of the tags' namespace.
func (s *Server) NamespaceIndex() uint16 { return s.ns.ID() }

// NodeID returns the string node id of a tag path.
func (s *Server) NodeID(path string) *ua.NodeID { return ua.NewStringNodeID(s.ns.ID(), path) }

// CheckSecurity checks a list of security modes.
func CheckSecurity(list []string) error {
	for _, sec := range list {
		switch sec {
		case SecurityNone, SecurityBasic256Sha256Sign, SecurityBasic256Sha256SignCrypt:
		default:
			return fmt.Errorf("opcua security %q: want None, Basic256Sha256-Sign or Basic256Sha256-SignAndEncrypt", sec)
		}
	}
	return nil
}

// ResolveAddr turns a listen address into the host and port the server
// advertises: an unspecified host is 127.0.0.1, port 0 a free port now.
func ResolveAddr(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("opcua listen %q: %w", addr, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("opcua listen %q: bad port", addr)
	}
	if port == 0 {
		// gopcua binds by itself and advertises the configured port in its
		// endpoints: take a free port and let the server bind it at Start.
		ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return "", 0, err
		}
		port = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
	}
	return host, port, nil
}

// SelfSigned makes the server's self-signed RSA-2048 certificate (DER)
// for host, with an application URI derived from name.
func SelfSigned(host, name string) (*rsa.PrivateKey, []byte, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	appURI, _ := url.Parse("urn:serialine:" + strings.ReplaceAll(name, " ", "-"))
	tmpl := x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: name, Organization: []string{"Serialine"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(5, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageDataEncipherment | x509.KeyUsageContentCommitment | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true, URIs: []*url.URL{appURI}, DNSNames: []string{"localhost"},
	}
	if ip := net.ParseIP(host); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = append(tmpl.DNSNames, host)
	}
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, &tmpl, &key.PublicKey, key)
	return key, der, err
}

// folder returns (creating) the folder node of a dotted path prefix.
func (s *Server) folder(path string) *server.Node {
	if n, ok := s.folders[path]; ok {
		return n
	}
	parentPath, name := "", path
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		parentPath, name = path[:i], path[i+1:]
	}
	parent := s.folder(parentPath)
	n := server.NewFolderNode(ua.NewStringNodeID(s.ns.ID(), path), name)
	s.ns.AddNode(n)
	parent.AddRef(n, id.Organizes, true)
	s.folders[path] = n
	return n
}

func dataTypeOf(v any) (uint32, error) {
	switch v.(type) {
	case bool:
		return id.Boolean, nil
	case uint8:
		return id.Byte, nil
	case int16:
		return id.Int16, nil
	case uint16:
		return id.UInt16, nil
	case int32:
		return id.Int32, nil
	case int64:
		return id.Int64, nil
	case uint32:
		return id.UInt32, nil
	case uint64:
		return id.UInt64, nil
	case float32:
		return id.Float, nil
	case float64:
		return id.Double, nil
	case string:
		return id.String, nil
	}
	return 0, fmt.Errorf("tag value type %T not supported", v)
}

// AddTag declares a tag (dotted path, e.g. "Line1.Status.StateCurrent")
// with its initial value, whose Go type fixes the OPC UA data type. A tag
// with write != nil is writable by sessions whose role ranks at least
// minRole. Call before Start.
func (s *Server) AddTag(path string, initial any, write WriteFunc, minRole string) error {
	dt, err := dataTypeOf(initial)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("uaserver: AddTag after Start")
	}
	if _, dup := s.tags[path]; dup {
		return fmt.Errorf("tag %s declared twice", path)
	}
	parentPath, name := "", path
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		parentPath, name = path[:i], path[i+1:]
	}
	access := byte(ua.AccessLevelTypeCurrentRead)
	if write != nil {
		access |= byte(ua.AccessLevelTypeCurrentWrite)
	}
	t := &tag{value: initial, dataType: dt, write: write, minRole: minRole}
	nid := ua.NewStringNodeID(s.ns.ID(), path)
	t.node = server.NewNode(nid, map[ua.AttributeID]*ua.DataValue{
		ua.AttributeIDNodeClass:       server.DataValueFromValue(uint32(ua.NodeClassVariable)),
		ua.AttributeIDBrowseName:      server.DataValueFromValue(&ua.QualifiedName{NamespaceIndex: s.ns.ID(), Name: name}),
		ua.AttributeIDDisplayName:     server.DataValueFromValue(&ua.LocalizedText{EncodingMask: ua.LocalizedTextText, Text: name}),
		ua.AttributeIDDataType:        server.DataValueFromValue(ua.NewNumericExpandedNodeID(0, dt)), // the library needs it expanded; Read sends a NodeId
		ua.AttributeIDValueRank:       server.DataValueFromValue(int32(-1)),
		ua.AttributeIDAccessLevel:     server.DataValueFromValue(access),
		ua.AttributeIDUserAccessLevel: server.DataValueFromValue(access),
	}, nil, func() *ua.DataValue { return s.read(path) })
	s.ns.AddNode(t.node)
	s.folder(parentPath).AddRef(t.node, id.HasComponent, true)
	s.tags[path] = t
	return nil
}

func (s *Server) read(path string) *ua.DataValue {
	s.mu.Lock()
	t, ok := s.tags[path]
	var v any
	if ok {
		v = t.value
	}
	s.mu.Unlock()
	if !ok {
		return &ua.DataValue{EncodingMask: ua.DataValueStatusCode, Status: ua.StatusBadNodeIDUnknown}
	}
	dv := server.DataValueFromValue(v)
	dv.SourceTimestamp = time.Now()
	dv.EncodingMask |= ua.DataValueSourceTimestamp
	return dv
}

// Set updates a tag's value (same Go type as declared); subscribers are
// notified with the latest value. Cheap; safe from any goroutine.
func (s *Server) Set(path string, v any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tags[path]
	if !ok {
		return fmt.Errorf("unknown tag %s", path)
	}
	if reflect.TypeOf(v) != reflect.TypeOf(t.value) {
		return fmt.Errorf("tag %s is %T, not %T", path, t.value, v)
	}
	if t.value == v {
		return nil
	}
	t.value = v
	s.changed[path] = true
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return nil
}

// Get returns a tag's current value.
func (s *Server) Get(path string) (any, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tags[path]
	if !ok {
		return nil, false
	}
	return t.value, true
}

// notifier marks the monitored items of changed tags, coalescing bursts
// (latest value wins: values are read when a notification is sent).
func (s *Server) notifier(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		}
		s.mu.Lock()
		paths := make([]string, 0, len(s.changed))
		for p := range s.changed {
			paths = append(paths, p)
		}
		s.changed = map[string]bool{}
		s.mu.Unlock()
		sort.Strings(paths)
		for _, p := range paths {
			s.subs.changed(s.NodeID(p).String())
		}
	}
}

// Start listens and serves until ctx ends; then every connection is
// closed and the port released.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("uaserver: started twice")
	}
	s.started = true
	s.ctx = ctx
	s.mu.Unlock()
	if err := s.srv.Start(ctx); err != nil {
		return fmt.Errorf("opcua %s: %w", s.endpoint, err)
	}
	go s.notifier(ctx)
	go s.janitor(ctx)
	go func() {
		<-ctx.Done()
		s.Close()
	}()
	return nil
}

// Close stops listening and closes every connection; safe twice, and
// when ctx ends it is called anyway. The port is free when it returns.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.subs.close()
		s.mu.Lock()
		started := s.started
		s.mu.Unlock()
		if started {
			// The library's Close leaves every TCP connection open (it only
			// sends CloseSecureChannel and then waits 10 s for readers that
			// never end): close the listener and the connections first, as
			// a process exit would.
			s.closeTransport()
			s.closeErr = s.srv.Close()
		}
	})
	return s.closeErr
}

func (s *Server) recovered(what string) {
	if r := recover(); r != nil {
		s.panicsMu.Lock()
		s.panics++
		s.panicsMu.Unlock()
		s.log.Error().Str("handler", what).Str("panic", fmt.Sprint(r)).Str("stack", string(debug.Stack())).Msg("OPC UA handler panic recovered")
	}
}

// PanicCount is the number of recovered handler panics.
func (s *Server) PanicCount() int {
	s.panicsMu.Lock()
	defer s.panicsMu.Unlock()
	return s.panics
}

func (s *Server) anonymousRole() string {
	if s.cfg.AnonymousRole != "" {
		return s.cfg.AnonymousRole
	}
	return "anonymous"
}

// checkIdentity validates the session's user token.
func (s *Server) checkIdentity(sc *uasc.SecureChannel, req *ua.ActivateSessionRequest) (user, role string, code ua.StatusCode) {
	if req.UserIdentityToken == nil || req.UserIdentityToken.Value == nil {
		if s.cfg.AllowAnonymous {
			return "anonymous", s.anonymousRole(), ua.StatusOK
		}
		return "", "", ua.StatusBadIdentityTokenInvalid
	}
	switch tok := req.UserIdentityToken.Value.(type) {
	case *ua.AnonymousIdentityToken:
		if s.cfg.AllowAnonymous {
			return "anonymous", s.anonymousRole(), ua.StatusOK
		}
		return "anonymous", "", ua.StatusBadIdentityTokenRejected
	case *ua.UserNameIdentityToken:
		pw, err := s.decryptPassword(tok, s.sessionOf(req.RequestHeader))
		if err != nil {
			s.log.Warn().Err(err).Str("user", tok.UserName).Msg("OPC UA password token not usable")
			return tok.UserName, "", ua.StatusBadIdentityTokenInvalid
		}
		if s.cfg.Auth == nil {
			return tok.UserName, "", ua.StatusBadUserAccessDenied
		}
		role, ok := s.cfg.Auth(tok.UserName, pw)
		if !ok {
			return tok.UserName, "", ua.StatusBadUserAccessDenied
		}
		return tok.UserName, role, ua.StatusOK
	}
	return "", "", ua.StatusBadIdentityTokenInvalid
}

// decryptPassword opens an RSA-encrypted (Basic256Sha256 token policy)
// user name token: ciphertext = enc(len32 | password | server nonce).
func (s *Server) decryptPassword(tok *ua.UserNameIdentityToken, st *session) (string, error) {
	if tok.EncryptionAlgorithm == "" {
		// Every user name token policy we offer is Basic256Sha256: a
		// client that sends the password in clear ignored it.
		return "", errors.New("password not encrypted (the token policy is Basic256Sha256)")
	}
	if st == nil {
		return "", errors.New("unknown session")
	}
	alg, err := uapolicy.Asymmetric(ua.SecurityPolicyURIBasic256Sha256, s.key, nil)
	if err != nil {
		return "", err
	}
	plain, err := alg.Decrypt(tok.Password)
	if err != nil {
		return "", fmt.Errorf("decrypt: %w", err)
	}
	if len(plain) < 4 {
		return "", errors.New("token too short")
	}
	n := int(binary.LittleEndian.Uint32(plain))
	if n < len(st.nonce) || 4+n > len(plain) {
		return "", errors.New("token length field out of range")
	}
	body := plain[4 : 4+n]
	pw, nonce := body[:len(body)-len(st.nonce)], body[len(body)-len(st.nonce):]
	if string(nonce) != string(st.nonce) {
		return "", errors.New("token was not made for this session's nonce")
	}
	return string(pw), nil
}

// handleWrite is our Write service: Value attribute only, declared
// writable tags only, type-checked, by a session whose role allows it.
func (s *Server) handleWrite(st *session, sc *uasc.SecureChannel, r ua.Request, reqID uint32) (ua.Response, error) {
	req, ok := r.(*ua.WriteRequest)
	if !ok {
		return nil, ua.StatusBadDecodingError
	}
	if len(req.NodesToWrite) == 0 {
		return nil, ua.StatusBadNothingToDo
	}
	if len(req.NodesToWrite) > maxWritesPerRequest {
		return nil, ua.StatusBadTooManyOperations
	}
	results := make([]ua.StatusCode, len(req.NodesToWrite))
	for i, w := range req.NodesToWrite {
		results[i] = s.writeOne(st, w)
	}
	return &ua.WriteResponse{ResponseHeader: header(req.RequestHeader, ua.StatusOK), Results: results}, nil
}

func (s *Server) writeOne(st *session, w *ua.WriteValue) ua.StatusCode {
	if w == nil || w.NodeID == nil {
		return ua.StatusBadNodeIDInvalid
	}
	if _, err := s.srv.Namespace(int(w.NodeID.Namespace())); err != nil {
		return ua.StatusBadNodeIDUnknown
	}
	if w.NodeID.Namespace() != s.ns.ID() || w.NodeID.Type() != ua.NodeIDTypeString {
		return ua.StatusBadNotWritable // the standard address space is read-only
	}
	s.mu.Lock()
	t, ok := s.tags[w.NodeID.StringID()]
	s.mu.Unlock()
	switch {
	case !ok:
		return ua.StatusBadNodeIDUnknown
	case w.AttributeID != ua.AttributeIDValue:
		return ua.StatusBadNotWritable // DisplayName, DataType, AccessLevel ... never
	case t.write == nil:
		return ua.StatusBadNotWritable
	case st == nil || st.role == "anonymous" || roleRank[st.role] < roleRank[t.minRole]:
		user, role := "", ""
		if st != nil {
			user, role = st.user, st.role
		}
		s.log.Warn().Str("user", user).Str("role", role).Str("tag", w.NodeID.StringID()).Str("needs", t.minRole).Msg("OPC UA write refused: role not allowed")
		return ua.StatusBadUserAccessDenied
	case w.IndexRange != "":
		return ua.StatusBadIndexRangeInvalid
	case w.Value == nil || w.Value.Value == nil:
		return ua.StatusBadTypeMismatch
	}
	if got, _ := dataTypeOf(w.Value.Value.Value()); got != t.dataType {
		return ua.StatusBadTypeMismatch
	}
	return t.write(st.user, st.role, w.Value.Value)
}

// logAdapter maps the library's log calls to zerolog, at the level the
// event deserves: a client closing its channel or a port probe is normal
// operation, not a warning.
type logAdapter struct{ l zerolog.Logger }

func (a logAdapter) Debug(msg string, args ...any) {}
func (a logAdapter) Info(msg string, args ...any)  {}
func (a logAdapter) Warn(msg string, args ...any) {
	text := fmt.Sprintf(msg, args...)
	switch {
	case strings.HasPrefix(text, "Secure Channel") && strings.HasSuffix(text, "closed"),
		strings.HasPrefix(text, "sessionBroker."), // lookups of tokens we refuse ourselves
		strings.HasPrefix(text, "Context done"):
		a.l.Debug().Str("component", "opcua").Msg(text)
		return
	}
	a.l.Warn().Str("component", "opcua").Msg(text)
}
func (a logAdapter) Error(msg string, args ...any) {
	if strings.HasPrefix(msg, "Duplicate reference type") {
		return // noise from importing the standard node set
	}
	text := fmt.Sprintf(msg, args...)
	switch {
	case strings.Contains(text, "use of closed network connection"):
		return // the listener closing at shutdown
	case strings.HasPrefix(text, "error accepting connection") && strings.HasSuffix(text, "EOF"):
		a.l.Debug().Str("component", "opcua").Msg(text) // a port probe: connected, sent nothing
		return
	case strings.HasPrefix(text, "Secure Channel") && (strings.HasSuffix(text, "EOF") || strings.Contains(text, "connection reset")):
		a.l.Info().Str("component", "opcua").Msg(text) // a client went away without closing
		return
	}
	a.l.Error().Str("component", "opcua").Msg(strings.TrimSpace(text))
}
