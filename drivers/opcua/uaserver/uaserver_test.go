package uaserver_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math"
	"math/big"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/ua"
	"github.com/rs/zerolog"

	"github.com/serialine/serialine/drivers/opcua/uaserver"
)

type fixture struct {
	srv    *uaserver.Server
	writes atomic.Int64
	block  chan struct{} // a write to Slow blocks until closed
}

func auth(user, pw string) (string, bool) {
	switch {
	case user == "op" && pw == "op-secret-1":
		return "operator", true
	case user == "op2" && pw == "op2-secret":
		return "operator", true
	case user == "viewer" && pw == "viewer-secret":
		return "viewer", true
	}
	return "", false
}

func start(t testing.TB, mod func(*uaserver.Config)) *fixture {
	t.Helper()
	f := &fixture{block: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		select {
		case <-f.block:
		default:
			close(f.block)
		}
		cancel()
	})
	build(t, f, mod, ctx)
	return f
}

func startUnmanaged(t testing.TB, f *fixture) *fixture {
	build(t, f, nil, context.Background())
	return f
}

func build(t testing.TB, f *fixture, mod func(*uaserver.Config), ctx context.Context) {
	t.Helper()
	cfg := uaserver.Config{Addr: "127.0.0.1:0", Auth: auth, Log: zerolog.Nop(),
		Security: []string{uaserver.SecurityNone, uaserver.SecurityBasic256Sha256Sign, uaserver.SecurityBasic256Sha256SignCrypt}}
	if mod != nil {
		mod(&cfg)
	}
	s, err := uaserver.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ok := func(user, role string, v *ua.Variant) ua.StatusCode { f.writes.Add(1); return ua.StatusOK }
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.AddTag("L.Count", int32(0), nil, ""))
	must(s.AddTag("L.Name", "x", nil, ""))
	must(s.AddTag("L.Cmd", int32(0), ok, "operator"))
	must(s.AddTag("L.Flag", false, ok, "operator"))
	must(s.AddTag("L.Small", uint16(0), ok, "operator"))
	must(s.AddTag("L.Slow", int32(0), func(user, role string, v *ua.Variant) ua.StatusCode {
		<-f.block
		return ua.StatusOK
	}, "operator"))
	must(s.Start(ctx))
	f.srv = s
}

var (
	sharedOnce sync.Once
	sharedFix  *fixture
)

// shared is one server for the tests that need no special configuration
// (building a gopcua server costs seconds under -race).
func shared(t testing.TB) *fixture {
	sharedOnce.Do(func() {
		f := &fixture{block: make(chan struct{})}
		sharedFix = f
		*f = *startUnmanaged(t, f)
	})
	if sharedFix.srv == nil {
		t.Fatal("shared server did not start")
	}
	return sharedFix
}

type dialOpt struct {
	policy, mode string
	user, pw     string
	cert         []byte
	key          *rsa.PrivateKey
}

func dial(t testing.TB, f *fixture, o dialOpt) (*opcua.Client, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var eps []*ua.EndpointDescription
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if eps, err = opcua.GetEndpoints(ctx, f.srv.Endpoint()); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond) // the library binds asynchronously: poll
	}
	if err != nil {
		t.Fatalf("endpoints: %v", err)
	}
	if o.policy == "" {
		o.policy, o.mode = "None", "None"
	}
	ep, err := opcua.SelectEndpoint(eps, "http://opcfoundation.org/UA/SecurityPolicy#"+o.policy, ua.MessageSecurityModeFromString(o.mode))
	if err != nil {
		t.Fatal(err)
	}
	ep.EndpointURL = f.srv.Endpoint()
	opts := []opcua.Option{opcua.SecurityPolicy(o.policy), opcua.SecurityModeString(o.mode), opcua.RequestTimeout(5 * time.Second), opcua.AutoReconnect(false)}
	if o.key != nil {
		opts = append(opts, opcua.PrivateKey(o.key), opcua.Certificate(o.cert))
	}
	if o.user != "" {
		opts = append(opts, opcua.SecurityFromEndpoint(ep, ua.UserTokenTypeUserName), opcua.AuthUsername(o.user, o.pw))
	} else {
		opts = append(opts, opcua.SecurityFromEndpoint(ep, ua.UserTokenTypeAnonymous), opcua.AuthAnonymous())
	}
	c, err := opcua.NewClient(f.srv.Endpoint(), opts...)
	if err != nil {
		return nil, err
	}
	if err := c.Connect(context.Background()); err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c, nil
}

func op(t testing.TB, f *fixture) *opcua.Client {
	t.Helper()
	c, err := dial(t, f, dialOpt{user: "op", pw: "op-secret-1"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func writeValue(t testing.TB, c *opcua.Client, nid *ua.NodeID, attr ua.AttributeID, v any) ua.StatusCode {
	t.Helper()
	variant, err := ua.NewVariant(v)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Write(context.Background(), &ua.WriteRequest{NodesToWrite: []*ua.WriteValue{{NodeID: nid, AttributeID: attr,
		Value: &ua.DataValue{EncodingMask: ua.DataValueValue, Value: variant}}}})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Results[0]
}

type watcher struct {
	sub   *opcua.Subscription
	notes chan *opcua.PublishNotificationData
}

func subscribe(t testing.TB, c *opcua.Client, nid *ua.NodeID) *watcher {
	t.Helper()
	ctx := context.Background()
	w := &watcher{notes: make(chan *opcua.PublishNotificationData, 256)}
	var err error
	if w.sub, err = c.Subscribe(ctx, &opcua.SubscriptionParameters{Interval: 50 * time.Millisecond}, w.notes); err != nil {
		t.Fatal(err)
	}
	resp, err := w.sub.Monitor(ctx, ua.TimestampsToReturnBoth, opcua.NewMonitoredItemCreateRequestWithDefaults(nid, ua.AttributeIDValue, 1))
	if err != nil || resp.Results[0].StatusCode != ua.StatusOK {
		t.Fatalf("monitor: %v %v", err, resp)
	}
	return w
}

// wait returns once a data change carries want, or fails after 5 s.
func (w *watcher) wait(t testing.TB, want any) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case n := <-w.notes:
			if n.Error != nil {
				t.Fatalf("notification error: %v", n.Error)
			}
			if dc, ok := n.Value.(*ua.DataChangeNotification); ok {
				for _, it := range dc.MonitoredItems {
					if it.Value.Value != nil && it.Value.Value.Value() == want {
						return
					}
				}
			}
		case <-deadline:
			t.Fatalf("no notification with value %v", want)
		}
	}
}

// gopcua v0.9.0 gives subscription ids len(map)+1: the third client got the
// second client's id, and deleting it took the second client's monitored
// items along. Ours are unique and belong to their session.
func TestSubscriptionIDsAreNotReused(t *testing.T) {
	f := shared(t)
	subs0, items0 := f.srv.Subscriptions()
	a, b, c := op(t, f), op(t, f), op(t, f)
	nid := f.srv.NodeID("L.Count")
	wa := subscribe(t, a, nid)
	wb := subscribe(t, b, nid)
	if err := wa.sub.Cancel(context.Background()); err != nil {
		t.Fatal(err)
	}
	wc := subscribe(t, c, nid)
	if wc.sub.SubscriptionID == wb.sub.SubscriptionID || wc.sub.SubscriptionID == wa.sub.SubscriptionID {
		t.Fatalf("subscription id %d reused (a %d, b %d)", wc.sub.SubscriptionID, wa.sub.SubscriptionID, wb.sub.SubscriptionID)
	}
	if err := wc.sub.Cancel(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := f.srv.Set("L.Count", int32(42)); err != nil {
		t.Fatal(err)
	}
	wb.wait(t, int32(42))
	if subs, items := f.srv.Subscriptions(); subs != subs0+1 || items != items0+1 {
		t.Fatalf("server holds %d subscriptions, %d items; want b's only", subs, items)
	}
}

// The library runs every request of every client on one goroutine: a write
// handler that takes its time (the edge asks the line engine) stalled all
// clients. Each secure channel has its own worker now.
func TestSlowClientDoesNotStallOthers(t *testing.T) {
	f := start(t, nil) // closes its write gate
	slow, fast := op(t, f), op(t, f)
	done := make(chan ua.StatusCode, 1)
	go func() { done <- writeValue(t, slow, f.srv.NodeID("L.Slow"), ua.AttributeIDValue, int32(1)) }()
	// While the slow write is blocked, the other client reads.
	deadline := time.Now().Add(5 * time.Second)
	reads := 0
	for reads < 20 && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		resp, err := fast.Read(ctx, &ua.ReadRequest{NodesToRead: []*ua.ReadValueID{{NodeID: f.srv.NodeID("L.Name"), AttributeID: ua.AttributeIDValue}}})
		cancel()
		if err != nil {
			t.Fatalf("read while another client waits: %v", err)
		}
		if resp.Results[0].Value.Value() != "x" {
			t.Fatalf("read %v", resp.Results[0].Value.Value())
		}
		reads++
	}
	select {
	case st := <-done:
		t.Fatalf("slow write finished early: %v", st)
	default:
	}
	close(f.block)
	if st := <-done; st != ua.StatusOK {
		t.Fatalf("slow write: %v", st)
	}
}

// Every malformed or abusive request gets its proper status code; none
// reaches a panic. A bad service result makes the gopcua client drop its
// connection, so each abuse uses a fresh client.
func TestAbuseStatusCodes(t *testing.T) {
	f := shared(t)
	writes0 := f.writes.Load()
	ctx := context.Background()
	owner := op(t, f)
	w := subscribe(t, owner, f.srv.NodeID("L.Count"))
	foreign := w.sub.SubscriptionID // belongs to another session
	service := []struct {
		name string
		req  ua.Request
		want ua.StatusCode
	}{
		{"SetMonitoringMode unknown subscription", &ua.SetMonitoringModeRequest{SubscriptionID: 999, MonitoringMode: ua.MonitoringModeDisabled, MonitoredItemIDs: []uint32{1}}, ua.StatusBadSubscriptionIDInvalid},
		{"SetMonitoringMode foreign subscription", &ua.SetMonitoringModeRequest{SubscriptionID: foreign, MonitoringMode: ua.MonitoringModeDisabled, MonitoredItemIDs: []uint32{1}}, ua.StatusBadSubscriptionIDInvalid},
		{"SetMonitoringMode bad mode", &ua.SetMonitoringModeRequest{SubscriptionID: foreign, MonitoringMode: 77, MonitoredItemIDs: []uint32{1}}, ua.StatusBadMonitoringModeInvalid},
		{"DeleteMonitoredItems unknown subscription", &ua.DeleteMonitoredItemsRequest{SubscriptionID: 999, MonitoredItemIDs: []uint32{77}}, ua.StatusBadSubscriptionIDInvalid},
		{"DeleteMonitoredItems nothing", &ua.DeleteMonitoredItemsRequest{SubscriptionID: foreign}, ua.StatusBadNothingToDo},
		{"ModifySubscription unknown", &ua.ModifySubscriptionRequest{SubscriptionID: 12345, RequestedPublishingInterval: 0}, ua.StatusBadSubscriptionIDInvalid},
		{"DeleteSubscriptions foreign", &ua.DeleteSubscriptionsRequest{SubscriptionIDs: []uint32{}}, ua.StatusBadNothingToDo},
		{"CreateMonitoredItems foreign", &ua.CreateMonitoredItemsRequest{SubscriptionID: foreign, ItemsToCreate: []*ua.MonitoredItemCreateRequest{
			opcua.NewMonitoredItemCreateRequestWithDefaults(f.srv.NodeID("L.Count"), ua.AttributeIDValue, 1)}}, ua.StatusBadSubscriptionIDInvalid},
		{"Republish", &ua.RepublishRequest{SubscriptionID: foreign, RetransmitSequenceNumber: 1}, ua.StatusBadMessageNotAvailable},
		{"Call", &ua.CallRequest{}, ua.StatusBadServiceUnsupported},
		{"AddNodes", &ua.AddNodesRequest{}, ua.StatusBadServiceUnsupported},
		{"SetTriggering", &ua.SetTriggeringRequest{}, ua.StatusBadServiceUnsupported},
		{"Write nothing", &ua.WriteRequest{}, ua.StatusBadNothingToDo},
	}
	for _, tc := range service {
		c := op(t, f)
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := c.Send(sctx, tc.req, func(ua.Response) error { return nil })
		cancel()
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}

	// Per-item results on the caller's own subscription.
	c := op(t, f)
	own := subscribe(t, c, f.srv.NodeID("L.Count"))
	id := own.sub.SubscriptionID
	var mm *ua.SetMonitoringModeResponse
	if err := c.Send(ctx, &ua.SetMonitoringModeRequest{SubscriptionID: id, MonitoringMode: ua.MonitoringModeDisabled, MonitoredItemIDs: []uint32{4242}},
		func(r ua.Response) error { mm = r.(*ua.SetMonitoringModeResponse); return nil }); err != nil || mm.Results[0] != ua.StatusBadMonitoredItemIDInvalid {
		t.Errorf("SetMonitoringMode unknown item: %v %v", err, mm)
	}
	var dm *ua.DeleteMonitoredItemsResponse
	if err := c.Send(ctx, &ua.DeleteMonitoredItemsRequest{SubscriptionID: id, MonitoredItemIDs: []uint32{4242}},
		func(r ua.Response) error { dm = r.(*ua.DeleteMonitoredItemsResponse); return nil }); err != nil || dm.Results[0] != ua.StatusBadMonitoredItemIDInvalid {
		t.Errorf("DeleteMonitoredItems unknown item: %v %v", err, dm)
	}
	bad := []*ua.MonitoredItemCreateRequest{
		opcua.NewMonitoredItemCreateRequestWithDefaults(ua.NewStringNodeID(f.srv.NamespaceIndex(), "no.such"), ua.AttributeIDValue, 2),
		opcua.NewMonitoredItemCreateRequestWithDefaults(ua.NewStringNodeID(77, "x"), ua.AttributeIDValue, 3),
		{ItemToMonitor: &ua.ReadValueID{NodeID: f.srv.NodeID("L.Count"), AttributeID: ua.AttributeIDValue, DataEncoding: &ua.QualifiedName{}}, MonitoringMode: 9,
			RequestedParameters: &ua.MonitoringParameters{Filter: ua.NewExtensionObject(nil)}},
		{ItemToMonitor: &ua.ReadValueID{NodeID: f.srv.NodeID("L.Count"), AttributeID: ua.AttributeIDValue, DataEncoding: &ua.QualifiedName{}}, MonitoringMode: ua.MonitoringModeReporting,
			RequestedParameters: &ua.MonitoringParameters{Filter: ua.NewExtensionObject(&ua.DataChangeFilter{DeadbandType: 1, DeadbandValue: 5})}},
	}
	var cm *ua.CreateMonitoredItemsResponse
	if err := c.Send(ctx, &ua.CreateMonitoredItemsRequest{SubscriptionID: id, ItemsToCreate: bad},
		func(r ua.Response) error { cm = r.(*ua.CreateMonitoredItemsResponse); return nil }); err != nil {
		t.Fatal(err)
	}
	for i, want := range []ua.StatusCode{ua.StatusBadNodeIDUnknown, ua.StatusBadNodeIDUnknown, ua.StatusBadMonitoringModeInvalid, ua.StatusBadMonitoredItemFilterUnsupported} {
		if cm.Results[i].StatusCode != want {
			t.Errorf("CreateMonitoredItems %d: %v, want %v", i, cm.Results[i].StatusCode, want)
		}
	}

	// Publishing intervals the library panicked on are revised to 50 ms.
	for _, iv := range []float64{-5, 0, 0.0001, math.NaN(), math.Inf(-1)} {
		var cs *ua.CreateSubscriptionResponse
		err := c.Send(ctx, &ua.CreateSubscriptionRequest{RequestedPublishingInterval: iv, PublishingEnabled: true},
			func(r ua.Response) error { cs = r.(*ua.CreateSubscriptionResponse); return nil })
		if err != nil || cs.RevisedPublishingInterval != 50 || cs.RevisedMaxKeepAliveCount == 0 || cs.RevisedLifetimeCount < 3*cs.RevisedMaxKeepAliveCount {
			t.Errorf("interval %v: %v %+v", iv, err, cs)
		}
		if cs != nil {
			c.Send(ctx, &ua.DeleteSubscriptionsRequest{SubscriptionIDs: []uint32{cs.SubscriptionID}}, func(ua.Response) error { return nil })
		}
	}

	// Writes: read-only, unknown, attribute rewrites, wrong types.
	writes := []struct {
		name string
		node *ua.NodeID
		attr ua.AttributeID
		v    any
		want ua.StatusCode
	}{
		{"read-only tag", f.srv.NodeID("L.Count"), ua.AttributeIDValue, int32(1), ua.StatusBadNotWritable},
		{"unknown tag", ua.NewStringNodeID(f.srv.NamespaceIndex(), "no.such"), ua.AttributeIDValue, int32(1), ua.StatusBadNodeIDUnknown},
		{"unknown namespace", ua.NewStringNodeID(99, "x"), ua.AttributeIDValue, int32(1), ua.StatusBadNodeIDUnknown},
		{"standard node", ua.NewNumericNodeID(0, 2259), ua.AttributeIDValue, int32(1), ua.StatusBadNotWritable},
		{"DisplayName", f.srv.NodeID("L.Cmd"), ua.AttributeIDDisplayName, &ua.LocalizedText{Text: "pwned"}, ua.StatusBadNotWritable},
		{"DataType", f.srv.NodeID("L.Cmd"), ua.AttributeIDDataType, ua.NewNumericNodeID(0, 12), ua.StatusBadNotWritable},
		{"AccessLevel", f.srv.NodeID("L.Count"), ua.AttributeIDAccessLevel, byte(3), ua.StatusBadNotWritable},
		{"string to int32", f.srv.NodeID("L.Cmd"), ua.AttributeIDValue, "2", ua.StatusBadTypeMismatch},
		{"int64 to int32", f.srv.NodeID("L.Cmd"), ua.AttributeIDValue, int64(2), ua.StatusBadTypeMismatch},
		{"int32 to bool", f.srv.NodeID("L.Flag"), ua.AttributeIDValue, int32(1), ua.StatusBadTypeMismatch},
		{"uint32 to uint16", f.srv.NodeID("L.Small"), ua.AttributeIDValue, uint32(1), ua.StatusBadTypeMismatch},
		{"good", f.srv.NodeID("L.Small"), ua.AttributeIDValue, uint16(7), ua.StatusOK},
	}
	for _, tc := range writes {
		if got := writeValue(t, c, tc.node, tc.attr, tc.v); got != tc.want {
			t.Errorf("write %s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if n := f.writes.Load() - writes0; n != 1 {
		t.Errorf("%d writes reached the handler, want 1", n)
	}
	// The attributes are what they were.
	resp, err := c.Read(ctx, &ua.ReadRequest{NodesToRead: []*ua.ReadValueID{{NodeID: f.srv.NodeID("L.Cmd"), AttributeID: ua.AttributeIDDisplayName}}})
	if err != nil || resp.Results[0].Value.Value().(*ua.LocalizedText).Text != "Cmd" {
		t.Fatalf("DisplayName after rewrite attempt: %v %v", err, resp)
	}
	if n := f.srv.PanicCount(); n != 0 {
		t.Fatalf("%d panics in the server library", n)
	}
}

// A session token used on another secure channel is refused (the library
// does not bind sessions to channels, and its tokens are 31-bit math/rand).
func TestSessionBoundToChannel(t *testing.T) {
	f := shared(t)
	writes0 := f.writes.Load()
	victim := op(t, f)
	thief, err := dial(t, f, dialOpt{user: "viewer", pw: "viewer-secret"})
	if err != nil {
		t.Fatal(err)
	}
	// The client stamps its session token into the request header.
	probe := &ua.ReadRequest{NodesToRead: []*ua.ReadValueID{{NodeID: f.srv.NodeID("L.Name"), AttributeID: ua.AttributeIDValue, DataEncoding: &ua.QualifiedName{}}}}
	if err := victim.Send(context.Background(), probe, func(ua.Response) error { return nil }); err != nil {
		t.Fatal(err)
	}
	stolen := probe.RequestHeader.AuthenticationToken
	variant, _ := ua.NewVariant(int32(2))
	req := &ua.WriteRequest{NodesToWrite: []*ua.WriteValue{{NodeID: f.srv.NodeID("L.Cmd"),
		AttributeID: ua.AttributeIDValue, Value: &ua.DataValue{EncodingMask: ua.DataValueValue, Value: variant}}}}
	err = thief.SecureChannel().SendRequest(context.Background(), req, stolen, func(ua.Response) error { return nil })
	if !errors.Is(err, ua.StatusBadSecureChannelIDInvalid) {
		t.Fatalf("stolen token: %v", err)
	}
	if f.writes.Load() != writes0 {
		t.Fatal("the write went through")
	}
}

// Sign and SignAndEncrypt (Basic256Sha256) with user name tokens work.
func TestSecurityModes(t *testing.T) {
	f := shared(t)
	key, cert := clientCert(t)
	for _, mode := range []string{"None", "Sign", "SignAndEncrypt"} {
		o := dialOpt{policy: "Basic256Sha256", mode: mode, user: "op", pw: "op-secret-1", key: key, cert: cert}
		if mode == "None" {
			o = dialOpt{user: "op", pw: "op-secret-1"}
		}
		c, err := dial(t, f, o)
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		if st := writeValue(t, c, f.srv.NodeID("L.Cmd"), ua.AttributeIDValue, int32(3)); st != ua.StatusOK {
			t.Fatalf("%s write: %v", mode, st)
		}
		o.pw = "wrong"
		if _, err := dial(t, f, o); !errors.Is(err, ua.StatusBadUserAccessDenied) {
			t.Fatalf("%s wrong password: %v", mode, err)
		}
	}
}

// With pinned client certificates only a client holding a pinned key gets
// a session, and only on a signing channel.
func TestPinnedClientCertificates(t *testing.T) {
	key, cert := clientCert(t)
	otherKey, otherCert := clientCert(t)
	f := start(t, func(c *uaserver.Config) { c.TrustedClientCerts = [][]byte{cert} })
	if _, err := dial(t, f, dialOpt{policy: "Basic256Sha256", mode: "SignAndEncrypt", user: "op", pw: "op-secret-1", key: key, cert: cert}); err != nil {
		t.Fatalf("pinned client refused: %v", err)
	}
	if _, err := dial(t, f, dialOpt{policy: "Basic256Sha256", mode: "SignAndEncrypt", user: "op", pw: "op-secret-1", key: otherKey, cert: otherCert}); !errors.Is(err, ua.StatusBadCertificateUntrusted) {
		t.Fatalf("unpinned client: %v", err)
	}
	if _, err := dial(t, f, dialOpt{user: "op", pw: "op-secret-1"}); err == nil {
		t.Fatal("a None channel session was accepted although certificates are pinned")
	}
}

func TestMaxSessions(t *testing.T) {
	f := start(t, func(c *uaserver.Config) { c.MaxSessions = 2 })
	op(t, f)
	op(t, f)
	if _, err := dial(t, f, dialOpt{user: "op", pw: "op-secret-1"}); !errors.Is(err, ua.StatusBadTooManySessions) {
		t.Fatalf("third session: %v", err)
	}
}

// Concurrent clients hammer reads, subscriptions and writes while values
// change (run with -race).
func TestHammer(t *testing.T) {
	f := shared(t)
	writes0 := f.writes.Load()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var reads, notes atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := int32(0); ctx.Err() == nil; i++ {
			f.srv.Set("L.Count", i)
			f.srv.Set("L.Name", "n")
		}
	}()
	for w := 0; w < 4; w++ {
		c := op(t, f)
		wg.Add(1)
		go func() {
			defer wg.Done()
			ch := make(chan *opcua.PublishNotificationData, 16)
			sub, err := c.Subscribe(ctx, &opcua.SubscriptionParameters{Interval: 50 * time.Millisecond}, ch)
			if err == nil {
				sub.Monitor(ctx, ua.TimestampsToReturnBoth, opcua.NewMonitoredItemCreateRequestWithDefaults(f.srv.NodeID("L.Count"), ua.AttributeIDValue, 1))
			}
			go func() {
				for range ch {
					notes.Add(1)
				}
			}()
			for i := 0; ctx.Err() == nil; i++ {
				if _, err := c.Read(ctx, &ua.ReadRequest{NodesToRead: []*ua.ReadValueID{{NodeID: f.srv.NodeID("L.Name"), AttributeID: ua.AttributeIDValue}}}); err == nil {
					reads.Add(1)
				}
				if i%10 == 0 {
					v, _ := ua.NewVariant(int32(i))
					c.Write(ctx, &ua.WriteRequest{NodesToWrite: []*ua.WriteValue{{NodeID: f.srv.NodeID("L.Cmd"), AttributeID: ua.AttributeIDValue,
						Value: &ua.DataValue{EncodingMask: ua.DataValueValue, Value: v}}}})
				}
			}
		}()
	}
	wg.Wait()
	if reads.Load() == 0 || notes.Load() == 0 || f.writes.Load() == writes0 {
		t.Fatalf("reads %d notifications %d writes %d", reads.Load(), notes.Load(), f.writes.Load()-writes0)
	}
	if f.srv.PanicCount() != 0 {
		t.Fatalf("%d panics", f.srv.PanicCount())
	}
}

func clientCert(t testing.TB) (*rsa.PrivateKey, []byte) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	uri, _ := url.Parse("urn:serialine:test-client")
	tmpl := x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "test client"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageDataEncipherment | x509.KeyUsageContentCommitment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, URIs: []*url.URL{uri}}
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, &tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return key, der
}
