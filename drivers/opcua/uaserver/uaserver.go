// Package uaserver is Serialine's hardened wrapper around gopcua's
// experimental OPC UA server (v0.9.0), shared by the edge's PackML tag
// server and the PLC simulator. Measured pitfalls it closes (DESIGN.md §5):
//
//   - user name/password tokens are never checked by the library: our
//     ActivateSession decrypts and checks them (and rejects anonymous
//     sessions unless allowed) before the library activates the session;
//   - a CreateSubscription publishing interval <= 0 or under 1 ms panics in
//     a background goroutine: requests are clamped to >= 50 ms first;
//   - SetMonitoringMode / DeleteMonitoredItems with unknown ids panic, and
//     other handlers may too: every handler runs under recover;
//   - a client may rewrite DisplayName/DataType/AccessLevel of a writable
//     node: our own Write handler accepts the Value attribute only,
//     type-checked, for tags registered as writable, from sessions whose
//     role allows it;
//   - node values race under -race: values are served by ValueFuncs over a
//     locked store, never Node.SetAttribute from our goroutines;
//   - change notifications block on a bounded channel: they are sent by one
//     notifier goroutine that coalesces changes (latest value wins).
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
	"unsafe"

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
// returns ua.StatusOK or a Bad status (e.g. ua.StatusBadOutOfRange).
type WriteFunc func(user, role string, v *ua.Variant) ua.StatusCode

// Config configures a server.
type Config struct {
	Addr            string   // host:port; port 0 picks a free port
	Security        []string // "None", "Basic256Sha256-Sign", "Basic256Sha256-SignAndEncrypt" (default None)
	Namespace       string   // namespace URI
	ApplicationName string
	Auth            Authenticator
	AllowAnonymous  bool // anonymous sessions may read and subscribe (never write)
	// Key and Cert (DER) of the server; generated (self-signed) when nil.
	// User name tokens are encrypted with this key (Basic256Sha256 token
	// policy), also on the None endpoint.
	Key  *rsa.PrivateKey
	Cert []byte
	Log  zerolog.Logger
}

type tag struct {
	node     *server.Node
	value    any
	dataType uint32
	write    WriteFunc
	minRole  string
}

type session struct {
	user, role string
	nonce      []byte
	active     bool
}

// Server is a hardened OPC UA server.
type Server struct {
	cfg      Config
	srv      *server.Server
	ns       *server.NodeNameSpace
	endpoint string
	log      zerolog.Logger
	key      *rsa.PrivateKey

	mu       sync.Mutex
	tags     map[string]*tag
	folders  map[string]*server.Node
	sessions map[string]*session
	changed  map[string]bool
	kick     chan struct{}
	started  bool

	Panics   int // handler panics recovered (tests)
	panicsMu sync.Mutex
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
		cfg.Security = []string{"None"}
	}
	host, port, err := freeAddr(cfg.Addr)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Log, tags: map[string]*tag{}, folders: map[string]*server.Node{}, sessions: map[string]*session{}, changed: map[string]bool{}, kick: make(chan struct{}, 1)}
	s.endpoint = fmt.Sprintf("opc.tcp://%s:%d", host, port)
	key, cert := cfg.Key, cfg.Cert
	if key == nil || cert == nil {
		if key, cert, err = selfSigned(host, cfg.ApplicationName); err != nil {
			return nil, err
		}
	}
	s.key = key
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
		case "None":
			opts = append(opts, server.EnableSecurity("None", ua.MessageSecurityModeNone))
		case "Basic256Sha256-Sign":
			opts = append(opts, server.EnableSecurity("Basic256Sha256", ua.MessageSecurityModeSign))
			basic = true
		case "Basic256Sha256-SignAndEncrypt":
			opts = append(opts, server.EnableSecurity("Basic256Sha256", ua.MessageSecurityModeSignAndEncrypt))
			basic = true
		default:
			return nil, fmt.Errorf("opcua security %q: want None, Basic256Sha256-Sign or Basic256Sha256-SignAndEncrypt", sec)
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

func freeAddr(addr string) (string, int, error) {
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

func selfSigned(host, name string) (*rsa.PrivateKey, []byte, error) {
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
	case int32:
		return id.Int32, nil
	case int64:
		return id.Int64, nil
	case uint32:
		return id.UInt32, nil
	case uint64:
		return id.UInt64, nil
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
		ua.AttributeIDDataType:        server.DataValueFromValue(ua.NewNumericExpandedNodeID(0, dt)),
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

// notifier sends change notifications for changed tags, coalescing.
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
			func() {
				defer s.recovered("ChangeNotification")
				s.srv.ChangeNotification(s.NodeID(p))
			}()
		}
		// Coalesce bursts (latest value wins).
		select {
		case <-ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Start listens and serves until ctx ends.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	s.started = true
	s.mu.Unlock()
	if err := s.srv.Start(ctx); err != nil {
		return fmt.Errorf("opcua %s: %w", s.endpoint, err)
	}
	go s.notifier(ctx)
	go func() {
		<-ctx.Done()
		s.srv.Close()
	}()
	return nil
}

func (s *Server) recovered(what string) {
	if r := recover(); r != nil {
		s.panicsMu.Lock()
		s.Panics++
		s.panicsMu.Unlock()
		s.log.Error().Str("handler", what).Interface("panic", r).Bytes("stack", debug.Stack()).Msg("OPC UA handler panic recovered")
	}
}

// PanicCount is the number of recovered handler panics.
func (s *Server) PanicCount() int {
	s.panicsMu.Lock()
	defer s.panicsMu.Unlock()
	return s.Panics
}

// newService builds one of gopcua's service structs whose only field is
// the unexported server pointer, so our wrappers can call the library's
// implementation (gopcua registers its own handler only when none is
// registered for the request type).
func newService[T any](srv *server.Server) *T {
	v := new(T)
	f := reflect.ValueOf(v).Elem().FieldByName("srv")
	reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem().Set(reflect.ValueOf(srv))
	return v
}

func header(h *ua.RequestHeader, code ua.StatusCode) *ua.ResponseHeader {
	handle := uint32(0)
	if h != nil {
		handle = h.RequestHandle
	}
	return &ua.ResponseHeader{Timestamp: time.Now(), RequestHandle: handle, ServiceResult: code,
		ServiceDiagnostics: &ua.DiagnosticInfo{}, StringTable: []string{}, AdditionalHeader: ua.NewExtensionObject(nil)}
}

func (s *Server) wrap(name string, h server.Handler) server.Handler {
	return func(sc *uasc.SecureChannel, r ua.Request, reqID uint32) (resp ua.Response, err error) {
		defer func() {
			if rec := recover(); rec != nil {
				s.panicsMu.Lock()
				s.Panics++
				s.panicsMu.Unlock()
				s.log.Error().Str("service", name).Interface("panic", rec).Msg("OPC UA request caused a panic in the server library; answered BadInternalError")
				resp, err = nil, ua.StatusBadInternalError
			}
		}()
		if r == nil || r.Header() == nil {
			return nil, ua.StatusBadDecodingError
		}
		return h(sc, r, reqID)
	}
}

func tokenKey(h *ua.RequestHeader) string {
	if h == nil || h.AuthenticationToken == nil {
		return ""
	}
	return h.AuthenticationToken.String()
}

func (s *Server) sessionOf(h *ua.RequestHeader) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[tokenKey(h)]
}

func (s *Server) installHandlers() {
	srv := s.srv
	sess := newService[server.SessionService](srv)
	attr := newService[server.AttributeService](srv)
	view := newService[server.ViewService](srv)
	disc := newService[server.DiscoveryService](srv)

	reg := func(typeID uint16, name string, h server.Handler) { srv.RegisterHandler(typeID, s.wrap(name, h)) }
	reg(id.GetEndpointsRequest_Encoding_DefaultBinary, "GetEndpoints", disc.GetEndpoints)
	reg(id.FindServersRequest_Encoding_DefaultBinary, "FindServers", disc.FindServers)
	reg(id.CreateSessionRequest_Encoding_DefaultBinary, "CreateSession", func(sc *uasc.SecureChannel, r ua.Request, reqID uint32) (ua.Response, error) {
		resp, err := sess.CreateSession(sc, r, reqID)
		if cs, ok := resp.(*ua.CreateSessionResponse); ok && err == nil {
			s.mu.Lock()
			s.sessions[cs.AuthenticationToken.String()] = &session{nonce: append([]byte(nil), cs.ServerNonce...)}
			s.mu.Unlock()
		}
		return resp, err
	})
	reg(id.ActivateSessionRequest_Encoding_DefaultBinary, "ActivateSession", func(sc *uasc.SecureChannel, r ua.Request, reqID uint32) (ua.Response, error) {
		req, ok := r.(*ua.ActivateSessionRequest)
		if !ok {
			return nil, ua.StatusBadDecodingError
		}
		user, role, code := s.checkIdentity(sc, req)
		if code != ua.StatusOK {
			s.log.Warn().Str("user", user).Str("status", code.Error()).Msg("OPC UA session refused")
			return nil, code
		}
		resp, err := sess.ActivateSession(sc, r, reqID)
		if as, ok := resp.(*ua.ActivateSessionResponse); ok && err == nil {
			s.mu.Lock()
			if st := s.sessions[tokenKey(req.RequestHeader)]; st != nil {
				st.user, st.role, st.active = user, role, true
				st.nonce = append([]byte(nil), as.ServerNonce...)
			}
			s.mu.Unlock()
		}
		return resp, err
	})
	reg(id.CloseSessionRequest_Encoding_DefaultBinary, "CloseSession", func(sc *uasc.SecureChannel, r ua.Request, reqID uint32) (ua.Response, error) {
		s.mu.Lock()
		delete(s.sessions, tokenKey(r.Header()))
		s.mu.Unlock()
		return sess.CloseSession(sc, r, reqID)
	})
	active := func(name string, h server.Handler) server.Handler {
		return func(sc *uasc.SecureChannel, r ua.Request, reqID uint32) (ua.Response, error) {
			if st := s.sessionOf(r.Header()); st == nil || !st.active {
				return nil, ua.StatusBadSessionNotActivated
			}
			return h(sc, r, reqID)
		}
	}
	reg(id.ReadRequest_Encoding_DefaultBinary, "Read", active("Read", attr.Read))
	reg(id.WriteRequest_Encoding_DefaultBinary, "Write", active("Write", s.handleWrite))
	reg(id.BrowseRequest_Encoding_DefaultBinary, "Browse", active("Browse", view.Browse))
	reg(id.BrowseNextRequest_Encoding_DefaultBinary, "BrowseNext", active("BrowseNext", view.BrowseNext))
	reg(id.TranslateBrowsePathsToNodeIDsRequest_Encoding_DefaultBinary, "TranslateBrowsePaths", active("Translate", view.TranslateBrowsePathsToNodeIDs))
	reg(id.RegisterNodesRequest_Encoding_DefaultBinary, "RegisterNodes", active("RegisterNodes", view.RegisterNodes))
	reg(id.UnregisterNodesRequest_Encoding_DefaultBinary, "UnregisterNodes", active("UnregisterNodes", view.UnregisterNodes))
	// Subscriptions: the library's services are created at Start; call
	// them through the server's exported fields at request time.
	subCall := func(f func(*server.SubscriptionService) server.Handler) server.Handler {
		return func(sc *uasc.SecureChannel, r ua.Request, reqID uint32) (ua.Response, error) {
			return f(srv.SubscriptionService)(sc, r, reqID)
		}
	}
	itemCall := func(f func(*server.MonitoredItemService) server.Handler) server.Handler {
		return func(sc *uasc.SecureChannel, r ua.Request, reqID uint32) (ua.Response, error) {
			return f(srv.MonitoredItemService)(sc, r, reqID)
		}
	}
	reg(id.CreateSubscriptionRequest_Encoding_DefaultBinary, "CreateSubscription", active("CreateSubscription", func(sc *uasc.SecureChannel, r ua.Request, reqID uint32) (ua.Response, error) {
		if req, ok := r.(*ua.CreateSubscriptionRequest); ok {
			clampSubscription(&req.RequestedPublishingInterval, &req.RequestedLifetimeCount, &req.RequestedMaxKeepAliveCount)
		}
		return srv.SubscriptionService.CreateSubscription(sc, r, reqID)
	}))
	reg(id.ModifySubscriptionRequest_Encoding_DefaultBinary, "ModifySubscription", active("ModifySubscription", func(sc *uasc.SecureChannel, r ua.Request, reqID uint32) (ua.Response, error) {
		if req, ok := r.(*ua.ModifySubscriptionRequest); ok {
			clampSubscription(&req.RequestedPublishingInterval, &req.RequestedLifetimeCount, &req.RequestedMaxKeepAliveCount)
		}
		return srv.SubscriptionService.ModifySubscription(sc, r, reqID)
	}))
	reg(id.SetPublishingModeRequest_Encoding_DefaultBinary, "SetPublishingMode", active("SetPublishingMode", subCall(func(x *server.SubscriptionService) server.Handler { return x.SetPublishingMode })))
	reg(id.PublishRequest_Encoding_DefaultBinary, "Publish", active("Publish", subCall(func(x *server.SubscriptionService) server.Handler { return x.Publish })))
	reg(id.RepublishRequest_Encoding_DefaultBinary, "Republish", active("Republish", subCall(func(x *server.SubscriptionService) server.Handler { return x.Republish })))
	reg(id.DeleteSubscriptionsRequest_Encoding_DefaultBinary, "DeleteSubscriptions", active("DeleteSubscriptions", subCall(func(x *server.SubscriptionService) server.Handler { return x.DeleteSubscriptions })))
	reg(id.TransferSubscriptionsRequest_Encoding_DefaultBinary, "TransferSubscriptions", active("TransferSubscriptions", subCall(func(x *server.SubscriptionService) server.Handler { return x.TransferSubscriptions })))
	reg(id.CreateMonitoredItemsRequest_Encoding_DefaultBinary, "CreateMonitoredItems", active("CreateMonitoredItems", itemCall(func(x *server.MonitoredItemService) server.Handler { return x.CreateMonitoredItems })))
	reg(id.ModifyMonitoredItemsRequest_Encoding_DefaultBinary, "ModifyMonitoredItems", active("ModifyMonitoredItems", itemCall(func(x *server.MonitoredItemService) server.Handler { return x.ModifyMonitoredItems })))
	reg(id.SetMonitoringModeRequest_Encoding_DefaultBinary, "SetMonitoringMode", active("SetMonitoringMode", itemCall(func(x *server.MonitoredItemService) server.Handler { return x.SetMonitoringMode })))
	reg(id.SetTriggeringRequest_Encoding_DefaultBinary, "SetTriggering", active("SetTriggering", itemCall(func(x *server.MonitoredItemService) server.Handler { return x.SetTriggering })))
	reg(id.DeleteMonitoredItemsRequest_Encoding_DefaultBinary, "DeleteMonitoredItems", active("DeleteMonitoredItems", itemCall(func(x *server.MonitoredItemService) server.Handler { return x.DeleteMonitoredItems })))
	// Services we do not offer: node management, methods, history, query.
	unsupported := func(sc *uasc.SecureChannel, r ua.Request, reqID uint32) (ua.Response, error) {
		return nil, ua.StatusBadServiceUnsupported
	}
	for _, t := range []uint16{id.AddNodesRequest_Encoding_DefaultBinary, id.AddReferencesRequest_Encoding_DefaultBinary,
		id.DeleteNodesRequest_Encoding_DefaultBinary, id.DeleteReferencesRequest_Encoding_DefaultBinary,
		id.CallRequest_Encoding_DefaultBinary, id.HistoryReadRequest_Encoding_DefaultBinary, id.HistoryUpdateRequest_Encoding_DefaultBinary,
		id.QueryFirstRequest_Encoding_DefaultBinary, id.QueryNextRequest_Encoding_DefaultBinary,
		id.RegisterServerRequest_Encoding_DefaultBinary, id.RegisterServer2Request_Encoding_DefaultBinary,
		id.FindServersOnNetworkRequest_Encoding_DefaultBinary, id.CancelRequest_Encoding_DefaultBinary} {
		reg(t, "unsupported", unsupported)
	}
}

// clampSubscription keeps requests in ranges the library survives:
// publishing interval >= 50 ms (<= 0 or < 1 ms panics), sane counts.
func clampSubscription(interval *float64, lifetime, keepAlive *uint32) {
	if !(*interval >= 50) { // also catches NaN
		*interval = 50
	}
	if *interval > 3600_000 {
		*interval = 3600_000
	}
	if *keepAlive == 0 {
		*keepAlive = 10
	}
	if *lifetime < 3**keepAlive {
		*lifetime = 3 * *keepAlive
	}
}

// checkIdentity validates the session's user token.
func (s *Server) checkIdentity(sc *uasc.SecureChannel, req *ua.ActivateSessionRequest) (user, role string, code ua.StatusCode) {
	if req.UserIdentityToken == nil || req.UserIdentityToken.Value == nil {
		if s.cfg.AllowAnonymous {
			return "anonymous", "anonymous", ua.StatusOK
		}
		return "", "", ua.StatusBadIdentityTokenInvalid
	}
	switch tok := req.UserIdentityToken.Value.(type) {
	case *ua.AnonymousIdentityToken:
		if s.cfg.AllowAnonymous {
			return "anonymous", "anonymous", ua.StatusOK
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

// decryptPassword handles plain and RSA-encrypted (Basic256Sha256 token
// policy) user name tokens: ciphertext = enc(len32 | password | server nonce).
func (s *Server) decryptPassword(tok *ua.UserNameIdentityToken, st *session) (string, error) {
	if tok.EncryptionAlgorithm == "" {
		return string(tok.Password), nil
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
func (s *Server) handleWrite(sc *uasc.SecureChannel, r ua.Request, reqID uint32) (ua.Response, error) {
	req, ok := r.(*ua.WriteRequest)
	if !ok {
		return nil, ua.StatusBadDecodingError
	}
	st := s.sessionOf(req.RequestHeader)
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
	if w.NodeID.Namespace() != s.ns.ID() || w.NodeID.Type() != ua.NodeIDTypeString {
		return ua.StatusBadNotWritable
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

type logAdapter struct{ l zerolog.Logger }

func (a logAdapter) Debug(msg string, args ...any) {}
func (a logAdapter) Info(msg string, args ...any)  {}
func (a logAdapter) Warn(msg string, args ...any) {
	a.l.Warn().Str("component", "opcua").Msg(fmt.Sprintf(msg, args...))
}
func (a logAdapter) Error(msg string, args ...any) {
	if strings.HasPrefix(msg, "Duplicate reference type") {
		return // noise from importing the standard node set
	}
	if strings.Contains(fmt.Sprint(args...), "use of closed network connection") {
		return // the listener closing at shutdown
	}
	a.l.Error().Str("component", "opcua").Msg(fmt.Sprintf(msg, args...))
}
