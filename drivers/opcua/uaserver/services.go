package uaserver

import (
	"bytes"
	"context"
	"crypto/rsa"
	"fmt"
	"reflect"
	"runtime/debug"
	"sync"
	"time"
	"unsafe"

	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/server"
	"github.com/gopcua/opcua/ua"
	"github.com/gopcua/opcua/uacp"
	"github.com/gopcua/opcua/uapolicy"
	"github.com/gopcua/opcua/uasc"
)

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

func (s *Server) sessionByToken(token string) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[token]
}

// A worker answers the requests of one secure channel in order, so a slow
// handler or a client that does not read its socket holds up only itself.
type worker struct {
	q       chan job
	dropped int // under Server.wmu
}

type job struct {
	sc    *uasc.SecureChannel
	reqID uint32
	req   ua.Request
	name  string
	h     server.Handler
}

const workerIdle = 30 * time.Second

// dispatch is what the library's single dispatch goroutine calls: it hands
// the request to the channel's worker and returns at once (a nil response
// tells the library we answer ourselves).
func (s *Server) dispatch(name string, h server.Handler) server.Handler {
	return func(sc *uasc.SecureChannel, r ua.Request, reqID uint32) (ua.Response, error) {
		if sc == nil {
			return nil, ua.StatusBadSecureChannelIDInvalid
		}
		j := job{sc: sc, reqID: reqID, req: r, name: name, h: h}
		s.wmu.Lock()
		w, ok := s.workers[sc]
		if !ok {
			w = &worker{q: make(chan job, defaultChannelQueue)}
			s.workers[sc] = w
			go s.work(sc, w)
		}
		select {
		case w.q <- j:
			s.wmu.Unlock()
		default:
			w.dropped++
			n := w.dropped
			s.wmu.Unlock()
			// The client floods its channel faster than it is answered (or
			// stopped reading): answering it here could block every client,
			// so the request is dropped and times out at the client.
			if n == 1 || n%100 == 0 {
				s.log.Warn().Str("remote", remote(sc)).Str("service", name).Int("dropped", n).Msg("OPC UA request dropped: the client's queue is full")
			}
		}
		return nil, nil
	}
}

func (s *Server) work(sc *uasc.SecureChannel, w *worker) {
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		select {
		case j := <-w.q:
			s.serve(j)
			idle.Reset(workerIdle)
		case <-idle.C:
			s.wmu.Lock()
			if len(w.q) == 0 {
				delete(s.workers, sc)
				s.wmu.Unlock()
				return
			}
			s.wmu.Unlock()
			idle.Reset(workerIdle)
		}
	}
}

func (s *Server) serve(j job) {
	resp, err := s.call(j)
	s.log.Debug().Str("service", j.name).Uint32("req", j.reqID).Err(err).Bool("answered", resp != nil).Msg("OPC UA request served")
	if err != nil {
		code, ok := err.(ua.StatusCode)
		if !ok {
			code = ua.StatusBadUnexpectedError
		}
		resp = &ua.ServiceFault{ResponseHeader: header(j.req.Header(), code)}
	}
	if resp == nil {
		return // Publish: answered later by a subscription
	}
	ctx, cancel := context.WithTimeout(s.baseCtx(), publishSendTimeout)
	defer cancel()
	func() {
		defer s.recovered("send " + j.name)
		if err := j.sc.SendResponseWithContext(ctx, j.reqID, resp); err != nil {
			s.log.Debug().Err(err).Str("service", j.name).Msg("OPC UA response not sent")
		}
	}()
}

func (s *Server) baseCtx() context.Context {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx == nil {
		return context.Background()
	}
	return s.ctx
}

// call runs a handler under recover: a panic in the library answers
// BadInternalError and never reaches the process.
func (s *Server) call(j job) (resp ua.Response, err error) {
	defer func() {
		if rec := recover(); rec != nil {
			s.panicsMu.Lock()
			s.panics++
			s.panicsMu.Unlock()
			s.log.Error().Str("service", j.name).Str("panic", fmt.Sprint(rec)).Str("stack", string(debug.Stack())).Msg("OPC UA request caused a panic in the server library; answered BadInternalError")
			resp, err = nil, ua.StatusBadInternalError
		}
	}()
	if j.req == nil || j.req.Header() == nil {
		return nil, ua.StatusBadDecodingError
	}
	if s.cfg.Fault != nil {
		delay, code := s.cfg.Fault(j.name)
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-s.baseCtx().Done():
				return nil, ua.StatusBadShutdown
			}
		}
		if code != ua.StatusOK {
			return nil, code
		}
	}
	return j.h(j.sc, j.req, j.reqID)
}

// active guards the services that need an activated session, used on the
// channel it was activated on.
func (s *Server) active(h func(st *session, sc *uasc.SecureChannel, r ua.Request, reqID uint32) (ua.Response, error)) server.Handler {
	return func(sc *uasc.SecureChannel, r ua.Request, reqID uint32) (ua.Response, error) {
		s.mu.Lock()
		st := s.sessions[tokenKey(r.Header())]
		ok := st != nil && st.active
		if ok && st.sc != sc {
			s.mu.Unlock()
			return nil, ua.StatusBadSecureChannelIDInvalid
		}
		var snap session
		if ok {
			st.lastUsed = time.Now()
			snap = *st // handlers see a consistent copy (re-activation may change it)
		}
		s.mu.Unlock()
		if !ok {
			if st == nil {
				return nil, ua.StatusBadSessionIDInvalid
			}
			return nil, ua.StatusBadSessionNotActivated
		}
		return h(&snap, sc, r, reqID)
	}
}

// lib adapts a library handler to active's signature.
func lib(h server.Handler) func(*session, *uasc.SecureChannel, ua.Request, uint32) (ua.Response, error) {
	return func(_ *session, sc *uasc.SecureChannel, r ua.Request, reqID uint32) (ua.Response, error) {
		return h(sc, r, reqID)
	}
}

// typed adapts one of our subscription service methods.
func typed[T ua.Request](f func(st *session, req T) (ua.Response, error)) func(*session, *uasc.SecureChannel, ua.Request, uint32) (ua.Response, error) {
	return func(st *session, _ *uasc.SecureChannel, r ua.Request, _ uint32) (ua.Response, error) {
		req, ok := r.(T)
		if !ok {
			return nil, ua.StatusBadDecodingError
		}
		return f(st, req)
	}
}

func (s *Server) installHandlers() {
	srv := s.srv
	sess := newService[server.SessionService](srv)
	s.libSess = sess
	attr := newService[server.AttributeService](srv)
	view := newService[server.ViewService](srv)
	disc := newService[server.DiscoveryService](srv)

	reg := func(typeID uint16, name string, h server.Handler) { srv.RegisterHandler(typeID, s.dispatch(name, h)) }
	reg(id.GetEndpointsRequest_Encoding_DefaultBinary, "GetEndpoints", disc.GetEndpoints)
	reg(id.FindServersRequest_Encoding_DefaultBinary, "FindServers", disc.FindServers)
	reg(id.CreateSessionRequest_Encoding_DefaultBinary, "CreateSession", func(sc *uasc.SecureChannel, r ua.Request, reqID uint32) (ua.Response, error) {
		return s.createSession(sess, sc, r, reqID)
	})
	reg(id.ActivateSessionRequest_Encoding_DefaultBinary, "ActivateSession", func(sc *uasc.SecureChannel, r ua.Request, reqID uint32) (ua.Response, error) {
		return s.activateSession(sess, sc, r, reqID)
	})
	reg(id.CloseSessionRequest_Encoding_DefaultBinary, "CloseSession", func(sc *uasc.SecureChannel, r ua.Request, reqID uint32) (ua.Response, error) {
		req, ok := r.(*ua.CloseSessionRequest)
		if !ok {
			return nil, ua.StatusBadDecodingError
		}
		s.sessMu.Lock()
		defer s.sessMu.Unlock()
		s.mu.Lock()
		st := s.sessions[tokenKey(req.RequestHeader)]
		if st == nil || (st.active && st.sc != sc) {
			s.mu.Unlock()
			return nil, ua.StatusBadSessionIDInvalid
		}
		delete(s.sessions, st.token)
		s.mu.Unlock()
		s.subs.dropSession(st.token, !req.DeleteSubscriptions)
		return sess.CloseSession(sc, r, reqID)
	})
	reg(id.ReadRequest_Encoding_DefaultBinary, "Read", s.active(func(_ *session, sc *uasc.SecureChannel, r ua.Request, reqID uint32) (ua.Response, error) {
		resp, err := attr.Read(sc, r, reqID)
		fixDataTypes(r, resp)
		return resp, err
	}))
	reg(id.WriteRequest_Encoding_DefaultBinary, "Write", s.active(s.handleWrite))
	reg(id.BrowseRequest_Encoding_DefaultBinary, "Browse", s.active(lib(view.Browse)))
	reg(id.BrowseNextRequest_Encoding_DefaultBinary, "BrowseNext", s.active(lib(view.BrowseNext)))
	reg(id.TranslateBrowsePathsToNodeIDsRequest_Encoding_DefaultBinary, "TranslateBrowsePaths", s.active(lib(view.TranslateBrowsePathsToNodeIDs)))
	reg(id.RegisterNodesRequest_Encoding_DefaultBinary, "RegisterNodes", s.active(lib(view.RegisterNodes)))
	reg(id.UnregisterNodesRequest_Encoding_DefaultBinary, "UnregisterNodes", s.active(lib(view.UnregisterNodes)))

	ss := s.subs
	reg(id.CreateSubscriptionRequest_Encoding_DefaultBinary, "CreateSubscription", s.active(typed(ss.createSubscription)))
	reg(id.ModifySubscriptionRequest_Encoding_DefaultBinary, "ModifySubscription", s.active(typed(ss.modifySubscription)))
	reg(id.SetPublishingModeRequest_Encoding_DefaultBinary, "SetPublishingMode", s.active(typed(ss.setPublishingMode)))
	reg(id.DeleteSubscriptionsRequest_Encoding_DefaultBinary, "DeleteSubscriptions", s.active(typed(ss.deleteSubscriptions)))
	reg(id.TransferSubscriptionsRequest_Encoding_DefaultBinary, "TransferSubscriptions", s.active(typed(func(st *session, req *ua.TransferSubscriptionsRequest) (ua.Response, error) {
		return ss.transferSubscriptions(st, s.sessionByToken, req)
	})))
	reg(id.CreateMonitoredItemsRequest_Encoding_DefaultBinary, "CreateMonitoredItems", s.active(typed(ss.createMonitoredItems)))
	reg(id.ModifyMonitoredItemsRequest_Encoding_DefaultBinary, "ModifyMonitoredItems", s.active(typed(ss.modifyMonitoredItems)))
	reg(id.SetMonitoringModeRequest_Encoding_DefaultBinary, "SetMonitoringMode", s.active(typed(ss.setMonitoringMode)))
	reg(id.DeleteMonitoredItemsRequest_Encoding_DefaultBinary, "DeleteMonitoredItems", s.active(typed(ss.deleteMonitoredItems)))
	reg(id.PublishRequest_Encoding_DefaultBinary, "Publish", s.active(func(st *session, sc *uasc.SecureChannel, r ua.Request, reqID uint32) (ua.Response, error) {
		req, ok := r.(*ua.PublishRequest)
		if !ok {
			return nil, ua.StatusBadDecodingError
		}
		return ss.publish(st, sc, reqID, req)
	}))
	reg(id.RepublishRequest_Encoding_DefaultBinary, "Republish", s.active(func(*session, *uasc.SecureChannel, ua.Request, uint32) (ua.Response, error) {
		return nil, ua.StatusBadMessageNotAvailable // no retransmission queue: notifications are latest-value
	}))
	// Services we do not offer: triggering, node management, methods,
	// history, query, discovery registration, cancel.
	unsupported := func(sc *uasc.SecureChannel, r ua.Request, reqID uint32) (ua.Response, error) {
		return nil, ua.StatusBadServiceUnsupported
	}
	for _, t := range []uint16{id.SetTriggeringRequest_Encoding_DefaultBinary,
		id.AddNodesRequest_Encoding_DefaultBinary, id.AddReferencesRequest_Encoding_DefaultBinary,
		id.DeleteNodesRequest_Encoding_DefaultBinary, id.DeleteReferencesRequest_Encoding_DefaultBinary,
		id.CallRequest_Encoding_DefaultBinary, id.HistoryReadRequest_Encoding_DefaultBinary, id.HistoryUpdateRequest_Encoding_DefaultBinary,
		id.QueryFirstRequest_Encoding_DefaultBinary, id.QueryNextRequest_Encoding_DefaultBinary,
		id.RegisterServerRequest_Encoding_DefaultBinary, id.RegisterServer2Request_Encoding_DefaultBinary,
		id.FindServersOnNetworkRequest_Encoding_DefaultBinary, id.CancelRequest_Encoding_DefaultBinary} {
		reg(t, "unsupported", unsupported)
	}
}

func (s *Server) createSession(sess *server.SessionService, sc *uasc.SecureChannel, r ua.Request, reqID uint32) (ua.Response, error) {
	req, ok := r.(*ua.CreateSessionRequest)
	if !ok {
		return nil, ua.StatusBadDecodingError
	}
	if len(s.cfg.TrustedClientCerts) > 0 && !s.trusted(req.ClientCertificate) {
		s.log.Warn().Str("remote", remote(sc)).Msg("OPC UA session refused: client certificate not trusted")
		return nil, ua.StatusBadCertificateUntrusted
	}
	if len(req.ClientCertificate) > 0 {
		// The library type-asserts an RSA key and panics on anything else.
		c, err := uapolicy.ParseCertificate(req.ClientCertificate)
		if err != nil {
			return nil, ua.StatusBadCertificateInvalid
		}
		if _, ok := c.PublicKey.(*rsa.PublicKey); !ok {
			return nil, ua.StatusBadCertificateInvalid
		}
	}
	s.sessMu.Lock()
	defer s.sessMu.Unlock()
	s.mu.Lock()
	n := len(s.sessions)
	s.mu.Unlock()
	if n >= s.cfg.MaxSessions {
		s.log.Warn().Int("sessions", n).Msg("OPC UA session refused: too many sessions")
		return nil, ua.StatusBadTooManySessions
	}
	resp, err := sess.CreateSession(sc, r, reqID)
	if cs, ok := resp.(*ua.CreateSessionResponse); ok && err == nil {
		st := &session{token: cs.AuthenticationToken.String(), nonce: append([]byte(nil), cs.ServerNonce...),
			clientCert: append([]byte(nil), req.ClientCertificate...),
			timeout:    time.Duration(cs.RevisedSessionTimeout * float64(time.Millisecond)), lastUsed: time.Now()}
		if st.timeout <= 0 {
			st.timeout = time.Minute
		}
		s.mu.Lock()
		s.sessions[st.token] = st
		s.mu.Unlock()
	}
	return resp, err
}

func (s *Server) activateSession(sess *server.SessionService, sc *uasc.SecureChannel, r ua.Request, reqID uint32) (ua.Response, error) {
	req, ok := r.(*ua.ActivateSessionRequest)
	if !ok {
		return nil, ua.StatusBadDecodingError
	}
	if req.ClientSignature == nil {
		req.ClientSignature = &ua.SignatureData{} // the library dereferences it
	}
	s.sessMu.Lock()
	defer s.sessMu.Unlock()
	st := s.sessionOf(req.RequestHeader)
	if st == nil {
		return nil, ua.StatusBadSessionIDInvalid
	}
	if len(s.cfg.TrustedClientCerts) > 0 {
		if code := s.checkClientSignature(st, req.ClientSignature); code != ua.StatusOK {
			s.log.Warn().Str("remote", remote(sc)).Str("status", code.Error()).Msg("OPC UA session refused: no proof of a trusted client certificate")
			return nil, code
		}
	}
	user, role, code := s.checkIdentity(sc, req)
	if code != ua.StatusOK {
		s.log.Warn().Str("user", user).Str("remote", remote(sc)).Str("status", code.Error()).Msg("OPC UA session refused")
		return nil, code
	}
	s.mu.Lock()
	if st.active && st.user != user {
		// Re-activation may change the channel, never silently the user
		// of a session that owns subscriptions.
		s.mu.Unlock()
		s.subs.dropSession(st.token, false)
		s.mu.Lock()
	}
	s.mu.Unlock()
	resp, err := sess.ActivateSession(sc, r, reqID)
	if as, ok := resp.(*ua.ActivateSessionResponse); ok && err == nil {
		s.mu.Lock()
		st.user, st.role, st.active, st.sc = user, role, true, sc
		st.nonce = append([]byte(nil), as.ServerNonce...)
		st.lastUsed = time.Now()
		s.mu.Unlock()
	}
	return resp, err
}

func (s *Server) trusted(cert []byte) bool {
	for _, c := range s.cfg.TrustedClientCerts {
		if len(cert) > 0 && bytes.Equal(c, cert) {
			return true
		}
	}
	return false
}

// checkClientSignature verifies that the client signed our certificate and
// the session nonce with the key of the (pinned) certificate it presented:
// the library skips this check on None channels.
func (s *Server) checkClientSignature(st *session, sig *ua.SignatureData) ua.StatusCode {
	if sig == nil || len(sig.Signature) == 0 || !s.trusted(st.clientCert) {
		return ua.StatusBadApplicationSignatureInvalid
	}
	c, err := uapolicy.ParseCertificate(st.clientCert)
	if err != nil {
		return ua.StatusBadCertificateInvalid
	}
	pub, ok := c.PublicKey.(*rsa.PublicKey)
	if !ok {
		return ua.StatusBadCertificateInvalid
	}
	alg, err := uapolicy.Asymmetric(ua.SecurityPolicyURIBasic256Sha256, s.key, pub)
	if err != nil {
		return ua.StatusBadSecurityChecksFailed
	}
	s.mu.Lock()
	nonce := append([]byte(nil), st.nonce...)
	s.mu.Unlock()
	if err := alg.VerifySignature(append(append([]byte(nil), s.cert...), nonce...), sig.Signature); err != nil {
		return ua.StatusBadApplicationSignatureInvalid
	}
	return ua.StatusOK
}

func remote(sc *uasc.SecureChannel) string {
	if sc == nil || sc.RemoteAddr() == nil {
		return ""
	}
	return sc.RemoteAddr().String()
}

// janitor ends sessions unused for longer than their timeout (Part 4,
// 5.6.2: a session without requests for its timeout is closed), with their
// subscriptions.
func (s *Server) janitor(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		var idle []string
		s.mu.Lock()
		for k, st := range s.sessions {
			if now.Sub(st.lastUsed) > st.timeout {
				idle = append(idle, k)
			}
		}
		s.mu.Unlock()
		var dead []*session
		for _, k := range idle {
			if s.subs.waiting(k) {
				continue // waiting for publish responses: in use
			}
			s.mu.Lock()
			if st := s.sessions[k]; st != nil && time.Since(st.lastUsed) > st.timeout {
				dead = append(dead, st)
				delete(s.sessions, k)
			}
			s.mu.Unlock()
		}
		for _, st := range dead {
			s.subs.dropSession(st.token, false)
			s.closeLibSession(st.token)
			s.log.Info().Str("user", st.user).Msg("OPC UA session expired")
		}
	}
}

func (s *Server) closeLibSession(token string) {
	defer s.recovered("expire session")
	nid, err := ua.ParseNodeID(token)
	if err != nil {
		return
	}
	s.libSess.CloseSession(nil, &ua.CloseSessionRequest{RequestHeader: &ua.RequestHeader{AuthenticationToken: nid}}, 0)
}

// Sessions is the number of open sessions (tests, diagnostics).
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// Subscriptions is the number of live subscriptions and monitored items.
func (s *Server) Subscriptions() (subs, items int) { return s.subs.counts() }

// attribute reads one attribute of any node through its namespace.
func (s *Server) attribute(n *ua.NodeID, attr ua.AttributeID) (dv *ua.DataValue) {
	defer func() {
		if rec := recover(); rec != nil {
			s.log.Error().Interface("panic", rec).Str("node", n.String()).Msg("OPC UA attribute read panicked")
			dv = &ua.DataValue{EncodingMask: ua.DataValueStatusCode, Status: ua.StatusBadInternalError}
		}
	}()
	ns, err := s.srv.Namespace(int(n.Namespace()))
	if err != nil {
		return &ua.DataValue{EncodingMask: ua.DataValueStatusCode, Status: ua.StatusBadNodeIDUnknown}
	}
	return ns.Attribute(n, attr)
}

// checkMonitorable validates one monitored item request.
func (s *Server) checkMonitorable(ir *ua.MonitoredItemCreateRequest) ua.StatusCode {
	switch {
	case ir == nil || ir.ItemToMonitor == nil || ir.ItemToMonitor.NodeID == nil:
		return ua.StatusBadNodeIDInvalid
	case ir.RequestedParameters == nil:
		return ua.StatusBadMonitoredItemFilterInvalid
	case ir.MonitoringMode > ua.MonitoringModeReporting:
		return ua.StatusBadMonitoringModeInvalid
	case ir.ItemToMonitor.IndexRange != "":
		return ua.StatusBadIndexRangeInvalid
	case !supportedFilter(ir.RequestedParameters.Filter):
		return ua.StatusBadMonitoredItemFilterUnsupported
	}
	dv := s.attribute(ir.ItemToMonitor.NodeID, ir.ItemToMonitor.AttributeID)
	if dv != nil && dv.EncodingMask&ua.DataValueStatusCode != 0 {
		switch dv.Status {
		case ua.StatusBadNodeIDUnknown, ua.StatusBadAttributeIDInvalid, ua.StatusBadNodeIDInvalid:
			return dv.Status
		}
	}
	return ua.StatusOK
}

// fixDataTypes: the library keeps DataType attributes as ExpandedNodeIds
// (its reference code needs that) and reads them out as such; the
// attribute is a NodeId (Part 3, 5.2.x), which strict clients expect.
func fixDataTypes(r ua.Request, resp ua.Response) {
	req, ok := r.(*ua.ReadRequest)
	rr, ok2 := resp.(*ua.ReadResponse)
	if !ok || !ok2 || len(req.NodesToRead) != len(rr.Results) {
		return
	}
	for i, rv := range req.NodesToRead {
		if rv == nil || rv.AttributeID != ua.AttributeIDDataType || rr.Results[i] == nil || rr.Results[i].Value == nil {
			continue
		}
		if e, ok := rr.Results[i].Value.Value().(*ua.ExpandedNodeID); ok && e != nil && e.NodeID != nil && !e.HasNamespaceURI() && !e.HasServerIndex() {
			if v, err := ua.NewVariant(e.NodeID); err == nil {
				// A copy: the library hands out the node's own attribute
				// value, which its Browse needs expanded.
				dv := *rr.Results[i]
				dv.Value = v
				rr.Results[i] = &dv
			}
		}
	}
}

// field returns an addressable view of an unexported struct field.
func field(v reflect.Value, name string) reflect.Value {
	f := v.FieldByName(name)
	return reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem()
}

// closeTransport closes the library's listener and the TCP connection of
// every secure channel (reached by reflection: the library exposes none).
func (s *Server) closeTransport() {
	defer s.recovered("close transport")
	srv := reflect.ValueOf(s.srv).Elem()
	if l, ok := field(srv, "l").Interface().(*uacp.Listener); ok && l != nil {
		l.Close()
	}
	cb := field(srv, "cb")
	if cb.IsNil() {
		return
	}
	mu := field(cb.Elem(), "mu").Addr().Interface().(*sync.RWMutex)
	var chans []*uasc.SecureChannel
	mu.RLock()
	for _, v := range field(cb.Elem(), "s").MapKeys() {
		if sc, ok := field(cb.Elem(), "s").MapIndex(v).Interface().(*uasc.SecureChannel); ok && sc != nil {
			chans = append(chans, sc)
		}
	}
	mu.RUnlock()
	for _, sc := range chans {
		if c, ok := field(reflect.ValueOf(sc).Elem(), "c").Interface().(*uacp.Conn); ok && c != nil {
			c.Close()
		}
	}
}
