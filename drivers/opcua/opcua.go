// Package opcua drives line PLCs over OPC UA (github.com/gopcua/opcua
// client): the edge's named tags (reject, line_running, product_present,
// good_count, reject_count ...) map to node ids; reads, writes and
// subscriptions; security policy, mode, user name and certificates from
// the line config.
//
// Session re-establishment is the driver's own, not gopcua's AutoReconnect
// (its state machine gives up for good when the first redial is refused,
// which is exactly what a restarting PLC does). Any connection-level error
// closes the client; the next call dials a new secure channel and session,
// resolves namespace URIs again and re-checks every tag's data type and
// access level. Subscribe runs its own session and recreates its
// subscription after each reconnect.
package opcua

import (
	"context"
	"crypto/rsa"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/ua"
	"github.com/rs/zerolog"

	"github.com/serialine/serialine/drivers"
)

//go:embed sample.yaml
var SampleConfig string

// PLC is one OPC UA server (a PLC or a gateway).
type PLC struct {
	name, endpoint string
	timeout        time.Duration
	opts           Options
	refs           map[string]NodeRef
	password       string
	key            *rsa.PrivateKey
	cert           []byte
	appURI         string
	serverCert     []byte
	log            zerolog.Logger

	mu       sync.Mutex
	c        *conn
	health   drivers.Health
	closed   bool
	sessions int // sessions opened by calls (not Subscribe)
}

var (
	_ drivers.PLC            = (*PLC)(nil)
	_ drivers.HealthReporter = (*PLC)(nil)
	_ Subscriber             = (*PLC)(nil)
)

// New creates the driver for the server at address (host:port); Connect
// opens the session. It reads the password and certificate files.
func New(name, address string, timeout time.Duration, opts Options, log zerolog.Logger) (*PLC, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("PLC %s: %w", name, err)
	}
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	if opts.PublishInterval == 0 {
		opts.PublishInterval = 100 * time.Millisecond
	}
	if opts.SessionTimeout == 0 {
		opts.SessionTimeout = time.Minute
	}
	p := &PLC{name: name, endpoint: "opc.tcp://" + address + opts.Path, timeout: timeout, opts: opts, refs: map[string]NodeRef{},
		password: opts.Password, log: log.With().Str("device", name).Logger()}
	if strings.HasPrefix(address, "opc.tcp://") {
		p.endpoint = address + opts.Path
	}
	for n, t := range opts.Tags {
		p.refs[n], _ = ParseNodeRef(t.Node) // validated
	}
	if opts.PasswordFile != "" {
		raw, err := os.ReadFile(opts.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("PLC %s: password_file: %w", name, err)
		}
		p.password = strings.TrimRight(string(raw), "\r\n")
	}
	sec := opts.Security
	var err error
	if sec.mode() != "None" {
		if sec.CertFile != "" {
			if p.key, p.cert, err = loadKeyPair(sec.CertFile, sec.KeyFile); err != nil {
				return nil, fmt.Errorf("PLC %s: security: %w", name, err)
			}
		} else {
			p.log.Warn().Msg("no security.cert_file: using a self-signed certificate generated for this run; a PLC with a trust list must trust it again after every restart")
			if p.key, p.cert, err = GenerateCert("urn:serialine:edge:"+name, "Serialine edge "+name); err != nil {
				return nil, fmt.Errorf("PLC %s: %w", name, err)
			}
		}
		if p.appURI, err = certURI(p.cert); err != nil {
			return nil, fmt.Errorf("PLC %s: security.cert_file: %w", name, err)
		}
	}
	if sec.ServerCertFile != "" {
		if p.serverCert, err = loadCert(sec.ServerCertFile); err != nil {
			return nil, fmt.Errorf("PLC %s: security.server_cert_file: %w", name, err)
		}
	}
	return p, nil
}

// Endpoint is the opc.tcp URL the driver dials.
func (p *PLC) Endpoint() string { return p.endpoint }

// HasTag reports whether a tag is mapped (the engine writes counters only then).
func (p *PLC) HasTag(name string) bool { _, ok := p.opts.Tags[name]; return ok }

// Health returns the last known condition.
func (p *PLC) Health() drivers.Health {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.health
}

// Connect opens a secure channel and a session and checks every tag.
func (p *PLC) Connect(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = false
	p.dropLocked()
	return p.connectLocked(ctx)
}

// Close ends the session; safe twice. Connect may be called again.
func (p *PLC) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	p.dropLocked()
	return nil
}

func (p *PLC) dropLocked() {
	if p.c != nil {
		p.c.close()
		p.c = nil
	}
}

func (p *PLC) connectLocked(ctx context.Context) error {
	ctx, cancel := p.callCtx(ctx)
	defer cancel()
	c, err := p.dial(ctx, nil)
	if err != nil {
		p.health = drivers.Health{Fault: "disconnected", Detail: err.Error(), At: time.Now()}
		return err
	}
	p.c = c
	p.sessions++
	p.health = drivers.Health{Connected: true, At: time.Now()}
	return nil
}

// SessionsOpened counts the sessions the driver opened for its calls: it
// grows by one per (re)connect, and not when a node answers a Bad status.
func (p *PLC) SessionsOpened() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sessions
}

func (p *PLC) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < p.timeout {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, p.timeout)
}

// valueType is what the driver learnt about a tag's node at connect.
type valueType struct {
	dataType uint32 // ua type id (id.Boolean, id.UInt16 ...)
	writable bool
}

type conn struct {
	client *opcua.Client
	nodes  map[string]*ua.NodeID
	types  map[string]valueType
	lost   chan struct{}
	once   sync.Once
}

func (c *conn) close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c.client.Close(ctx)
}

func (c *conn) markLost() { c.once.Do(func() { close(c.lost) }) }

func (c *conn) isLost() bool {
	select {
	case <-c.lost:
		return true
	default:
		return false
	}
}

func (p *PLC) devErr(field string, err error) error {
	return drivers.NewDeviceError(p.name, field, err, nil)
}

// dial connects: endpoints, the configured security, the session, then
// the tags' nodes (resolved against the namespace array) with their data
// types and access levels. only limits the checked tags (Subscribe).
func (p *PLC) dial(ctx context.Context, only []string) (*conn, error) {
	eps, err := opcua.GetEndpoints(ctx, p.endpoint, opcua.DialTimeout(p.timeout))
	if err != nil {
		return nil, p.devErr("connect "+p.endpoint, linkErr(ctx, err))
	}
	sec := p.opts.Security
	policyURI := policies[sec.policy()]
	mode := ua.MessageSecurityModeFromString(sec.mode())
	var ep *ua.EndpointDescription
	var offered []string
	for _, e := range eps {
		offered = append(offered, strings.TrimPrefix(e.SecurityPolicyURI, ua.SecurityPolicyURIPrefix)+"/"+e.SecurityMode.String())
		if e.SecurityPolicyURI == policyURI && e.SecurityMode == mode && ep == nil {
			ep = e
		}
	}
	if ep == nil {
		return nil, p.devErr("connect "+p.endpoint, fmt.Errorf("%w: the server offers no endpoint with policy %s and mode %s (it offers %s)",
			drivers.ErrDeviceFault, sec.policy(), sec.mode(), strings.Join(offered, ", ")))
	}
	if p.serverCert != nil && string(ep.ServerCertificate) != string(p.serverCert) {
		return nil, p.devErr("connect "+p.endpoint, fmt.Errorf("%w: the server's certificate is not the pinned security.server_cert_file (thumbprint %x)",
			drivers.ErrDeviceFault, thumbprint(ep.ServerCertificate)))
	}
	tokenType := ua.UserTokenTypeAnonymous
	if p.opts.Username != "" {
		tokenType = ua.UserTokenTypeUserName
	}
	hasToken := false
	for _, t := range ep.UserIdentityTokens {
		hasToken = hasToken || t.TokenType == tokenType
	}
	if !hasToken {
		return nil, p.devErr("connect "+p.endpoint, fmt.Errorf("%w: the endpoint accepts no %s user token", drivers.ErrDeviceFault, tokenType))
	}
	// Servers often advertise a host name we cannot reach: keep ours.
	ep.EndpointURL = p.endpoint
	c := &conn{nodes: map[string]*ua.NodeID{}, types: map[string]valueType{}, lost: make(chan struct{})}
	opts := []opcua.Option{
		opcua.SecurityPolicy(policyURI), opcua.SecurityMode(mode),
		opcua.RequestTimeout(p.timeout), opcua.DialTimeout(p.timeout), opcua.AutoReconnect(false),
		opcua.SessionTimeout(p.opts.SessionTimeout), opcua.SessionName("serialine " + p.name),
		opcua.ApplicationName("Serialine edge"),
		opcua.StateChangedFunc(func(s opcua.ConnState) {
			if s == opcua.Disconnected || s == opcua.Closed {
				c.markLost()
			}
		}),
	}
	if p.key != nil {
		opts = append(opts, opcua.PrivateKey(p.key), opcua.Certificate(p.cert), opcua.ApplicationURI(p.appURI))
	}
	if tokenType == ua.UserTokenTypeUserName {
		opts = append(opts, opcua.AuthUsername(p.opts.Username, p.password))
	} else {
		opts = append(opts, opcua.AuthAnonymous())
	}
	opts = append(opts, opcua.SecurityFromEndpoint(ep, tokenType))
	client, err := opcua.NewClient(p.endpoint, opts...)
	if err != nil {
		return nil, p.devErr("connect "+p.endpoint, fmt.Errorf("%w: %v", drivers.ErrDeviceFault, err))
	}
	if err := client.Connect(ctx); err != nil {
		client.Close(context.Background())
		return nil, p.devErr("connect "+p.endpoint, sessionErr(ctx, err))
	}
	c.client = client
	if err := p.resolve(ctx, c, only); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

// resolve finds every tag's node and checks its data type and access.
func (p *PLC) resolve(ctx context.Context, c *conn, only []string) error {
	names := only
	if names == nil {
		for n := range p.refs {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	ns := c.client.Namespaces()
	req := &ua.ReadRequest{TimestampsToReturn: ua.TimestampsToReturnNeither}
	for _, n := range names {
		nid, err := p.refs[n].Resolve(ns)
		if err != nil {
			return p.devErr("tag "+n+" ("+p.refs[n].String()+")", fmt.Errorf("%w: %v", drivers.ErrDeviceFault, err))
		}
		c.nodes[n] = nid
		req.NodesToRead = append(req.NodesToRead,
			&ua.ReadValueID{NodeID: nid, AttributeID: ua.AttributeIDDataType, DataEncoding: &ua.QualifiedName{}},
			&ua.ReadValueID{NodeID: nid, AttributeID: ua.AttributeIDAccessLevel, DataEncoding: &ua.QualifiedName{}})
	}
	resp, err := c.client.Read(ctx, req)
	if err != nil {
		return p.devErr("tags", sessionErr(ctx, err))
	}
	if len(resp.Results) != len(req.NodesToRead) {
		return p.devErr("tags", fmt.Errorf("%w: %d results for %d attributes", drivers.ErrMalformed, len(resp.Results), len(req.NodesToRead)))
	}
	for i, n := range names {
		field := "tag " + n + " (" + p.refs[n].String() + ")"
		dt, al := resp.Results[2*i], resp.Results[2*i+1]
		if dt.Status != ua.StatusOK {
			return p.devErr(field, fmt.Errorf("%w: %s", drivers.ErrDeviceFault, statusText(dt.Status)))
		}
		tid, ok := dt.Value.Value().(*ua.NodeID)
		if e, isExp := dt.Value.Value().(*ua.ExpandedNodeID); isExp && e != nil && e.NodeID != nil {
			tid, ok = e.NodeID, true // some servers send an ExpandedNodeId
		}
		if !ok || tid == nil || tid.Namespace() != 0 || !supportedType(tid.IntID()) {
			return p.devErr(field, fmt.Errorf("%w: data type %v: the driver reads and writes Boolean and integer nodes", drivers.ErrDeviceFault, dt.Value.Value()))
		}
		vt := valueType{dataType: tid.IntID()}
		if al.Status == ua.StatusOK {
			if b, ok := al.Value.Value().(byte); ok {
				vt.writable = b&byte(ua.AccessLevelTypeCurrentWrite) != 0
			}
		}
		if writtenTags[n] && !vt.writable {
			return p.devErr(field, fmt.Errorf("%w: the edge writes this tag but the node is not writable", drivers.ErrDeviceFault))
		}
		c.types[n] = vt
	}
	return nil
}

func supportedType(t uint32) bool {
	switch t {
	case id.Boolean, id.SByte, id.Byte, id.Int16, id.UInt16, id.Int32, id.UInt32, id.Int64, id.UInt64:
		return true
	}
	return false
}

// linkErr classifies dial and transport failures.
func linkErr(ctx context.Context, err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ua.StatusBadTimeout) || errors.Is(err, ua.StatusBadRequestTimeout) ||
		ctx.Err() == context.DeadlineExceeded || isNetTimeout(err) {
		return fmt.Errorf("%w: %v", drivers.ErrTimeout, err)
	}
	return fmt.Errorf("%w: %v", drivers.ErrNotConnected, err)
}

func isNetTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// sessionErr classifies errors of a session-level exchange: a Bad status
// the server answered (it refuses: credentials, certificate, limits) is a
// device fault; transport problems are link errors.
func sessionErr(ctx context.Context, err error) error {
	var sc ua.StatusCode
	if errors.As(err, &sc) && !isLinkStatus(sc) {
		return fmt.Errorf("%w: %s", drivers.ErrDeviceFault, statusText(sc))
	}
	return linkErr(ctx, err)
}

func isLinkStatus(sc ua.StatusCode) bool {
	switch sc {
	case ua.StatusBadTimeout, ua.StatusBadRequestTimeout, ua.StatusBadServerNotConnected, ua.StatusBadConnectionClosed,
		ua.StatusBadCommunicationError, ua.StatusBadSecureChannelIDInvalid, ua.StatusBadSecureChannelClosed,
		ua.StatusBadSessionIDInvalid, ua.StatusBadSessionClosed, ua.StatusBadSessionNotActivated,
		ua.StatusBadNotConnected, ua.StatusBadDisconnect, ua.StatusBadShutdown, ua.StatusBadServerHalted:
		return true
	}
	return false
}

// statusText names a status code: "BadDeviceFailure (0x808B0000)".
func statusText(sc ua.StatusCode) string {
	if d, ok := ua.StatusCodes[sc&0xFFFF0000]; ok {
		return fmt.Sprintf("%s (0x%08X)", strings.TrimPrefix(d.Name, "Status"), uint32(sc))
	}
	return fmt.Sprintf("status 0x%08X", uint32(sc))
}

// call runs one exchange on the current connection, dialling first if
// needed. A failed exchange that is not a per-node Bad status drops the
// connection: the next call starts a new session.
func (p *PLC) call(ctx context.Context, tag, op string, fn func(ctx context.Context, c *conn, nid *ua.NodeID, vt valueType) error) error {
	if _, ok := p.refs[tag]; !ok {
		return p.devErr("tag "+tag, errors.New("no such tag in the PLC's options"))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	if p.c != nil && p.c.isLost() {
		p.dropLocked()
	}
	if p.c == nil {
		if err := p.connectLocked(ctx); err != nil {
			return err
		}
	}
	cctx, cancel := p.callCtx(ctx)
	defer cancel()
	c := p.c
	err := fn(cctx, c, c.nodes[tag], c.types[tag])
	if err == nil {
		return nil
	}
	var de *drivers.DeviceError
	if errors.As(err, &de) {
		return err // a per-node status or a value problem: the link is fine
	}
	p.dropLocked()
	werr := sessionErr(cctx, err)
	if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
		werr = fmt.Errorf("%w: %v", drivers.ErrNotConnected, err)
	}
	p.health = drivers.Health{Fault: "disconnected", Detail: werr.Error(), At: time.Now()}
	return p.devErr(p.field(tag, op), werr)
}

func (p *PLC) field(tag, op string) string {
	return "tag " + tag + " (" + p.refs[tag].String() + ") " + op
}

// checkStatus maps a node's status code: Good is fine; Uncertain and Bad
// are device faults (an uncertain line_running is not a line running).
func (p *PLC) checkStatus(tag, op string, sc ua.StatusCode) error {
	if uint32(sc)&0xC0000000 == 0 {
		return nil
	}
	return p.devErr(p.field(tag, op), fmt.Errorf("%w: %s", drivers.ErrDeviceFault, statusText(sc)))
}

func (p *PLC) write(ctx context.Context, c *conn, tag string, nid *ua.NodeID, v any) error {
	variant, err := ua.NewVariant(v)
	if err != nil {
		return p.devErr(p.field(tag, "write"), err)
	}
	resp, err := c.client.Write(ctx, &ua.WriteRequest{NodesToWrite: []*ua.WriteValue{{NodeID: nid, AttributeID: ua.AttributeIDValue,
		Value: &ua.DataValue{EncodingMask: ua.DataValueValue, Value: variant}}}})
	if err != nil {
		return err
	}
	if len(resp.Results) != 1 {
		return p.devErr(p.field(tag, "write"), fmt.Errorf("%w: %d results for one write", drivers.ErrMalformed, len(resp.Results)))
	}
	return p.checkStatus(tag, "write", resp.Results[0])
}

func (p *PLC) read(ctx context.Context, c *conn, tag string, nid *ua.NodeID) (any, error) {
	resp, err := c.client.Read(ctx, &ua.ReadRequest{TimestampsToReturn: ua.TimestampsToReturnNeither,
		NodesToRead: []*ua.ReadValueID{{NodeID: nid, AttributeID: ua.AttributeIDValue, DataEncoding: &ua.QualifiedName{}}}})
	if err != nil {
		return nil, err
	}
	if len(resp.Results) != 1 {
		return nil, p.devErr(p.field(tag, "read"), fmt.Errorf("%w: %d results for one read", drivers.ErrMalformed, len(resp.Results)))
	}
	dv := resp.Results[0]
	if err := p.checkStatus(tag, "read", dv.Status); err != nil {
		return nil, err
	}
	if dv.Value == nil {
		return nil, p.devErr(p.field(tag, "read"), fmt.Errorf("%w: no value", drivers.ErrMalformed))
	}
	return dv.Value.Value(), nil
}

// WriteBool writes a Boolean node; a pulsed tag goes back to false after
// its pulse, also when ctx ends meanwhile (a gate must not stay open).
func (p *PLC) WriteBool(ctx context.Context, tag string, v bool) error {
	do := func(ctx context.Context, v bool) error {
		return p.call(ctx, tag, "write", func(ctx context.Context, c *conn, nid *ua.NodeID, vt valueType) error {
			if vt.dataType != id.Boolean {
				return p.devErr(p.field(tag, "write"), fmt.Errorf("node is %s, not Boolean", typeName(vt.dataType)))
			}
			return p.write(ctx, c, tag, nid, v)
		})
	}
	if err := do(ctx, v); err != nil {
		return err
	}
	if pulse := p.opts.Tags[tag].Pulse; v && pulse > 0 {
		t := time.NewTimer(pulse)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.timeout)
		defer cancel()
		return do(rctx, false)
	}
	return nil
}

// ReadBool reads a Boolean node.
func (p *PLC) ReadBool(ctx context.Context, tag string) (bool, error) {
	var out bool
	err := p.call(ctx, tag, "read", func(ctx context.Context, c *conn, nid *ua.NodeID, vt valueType) error {
		v, err := p.read(ctx, c, tag, nid)
		if err != nil {
			return err
		}
		b, ok := v.(bool)
		if !ok {
			return p.devErr(p.field(tag, "read"), fmt.Errorf("%w: got %T, want a Boolean", drivers.ErrMalformed, v))
		}
		out = b
		return nil
	})
	return out, err
}

// WriteUint writes an integer node in its own data type; a value that
// does not fit is refused before anything is sent.
func (p *PLC) WriteUint(ctx context.Context, tag string, v uint64) error {
	return p.call(ctx, tag, "write", func(ctx context.Context, c *conn, nid *ua.NodeID, vt valueType) error {
		val, err := toType(v, vt.dataType)
		if err != nil {
			return p.devErr(p.field(tag, "write"), err)
		}
		return p.write(ctx, c, tag, nid, val)
	})
}

// ReadUint reads an integer node (negative values are an error).
func (p *PLC) ReadUint(ctx context.Context, tag string) (uint64, error) {
	var out uint64
	err := p.call(ctx, tag, "read", func(ctx context.Context, c *conn, nid *ua.NodeID, vt valueType) error {
		v, err := p.read(ctx, c, tag, nid)
		if err != nil {
			return err
		}
		if out, err = FromValue(v); err != nil {
			return p.devErr(p.field(tag, "read"), err)
		}
		return nil
	})
	return out, err
}

// FromValue converts a read integer value to uint64.
func FromValue(v any) (uint64, error) {
	var n int64
	switch x := v.(type) {
	case uint8:
		return uint64(x), nil
	case uint16:
		return uint64(x), nil
	case uint32:
		return uint64(x), nil
	case uint64:
		return x, nil
	case int8:
		n = int64(x)
	case int16:
		n = int64(x)
	case int32:
		n = int64(x)
	case int64:
		n = x
	default:
		return 0, fmt.Errorf("%w: got %T, want an integer", drivers.ErrMalformed, v)
	}
	if n < 0 {
		return 0, fmt.Errorf("%w: negative value %d for an unsigned tag", drivers.ErrMalformed, n)
	}
	return uint64(n), nil
}

// toType converts v to the Go type of an OPC UA integer data type.
func toType(v uint64, dataType uint32) (any, error) {
	limit := map[uint32]uint64{id.SByte: math.MaxInt8, id.Byte: math.MaxUint8, id.Int16: math.MaxInt16, id.UInt16: math.MaxUint16,
		id.Int32: math.MaxInt32, id.UInt32: math.MaxUint32, id.Int64: math.MaxInt64, id.UInt64: math.MaxUint64}
	max, ok := limit[dataType]
	if !ok {
		return nil, fmt.Errorf("node is %s, not an integer", typeName(dataType))
	}
	if v > max {
		return nil, fmt.Errorf("value %d does not fit in %s", v, typeName(dataType))
	}
	switch dataType {
	case id.SByte:
		return int8(v), nil
	case id.Byte:
		return uint8(v), nil
	case id.Int16:
		return int16(v), nil
	case id.UInt16:
		return uint16(v), nil
	case id.Int32:
		return int32(v), nil
	case id.UInt32:
		return uint32(v), nil
	case id.Int64:
		return int64(v), nil
	}
	return v, nil
}

func typeName(t uint32) string {
	if n := id.Name(t); n != "" {
		return n
	}
	return fmt.Sprintf("i=%d", t)
}
