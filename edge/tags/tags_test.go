package tags

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/ua"
	"github.com/rs/zerolog"

	"github.com/serialine/serialine/drivers/opcua/uaserver/uatest"
)

type cmdLog struct {
	mu   sync.Mutex
	cmds []int32
	user []string
}

func startServer(t *testing.T, anon bool) (*Server, *cmdLog) {
	t.Helper()
	return startServerLog(t, anon, zerolog.Nop())
}

var (
	sharedMu  sync.Mutex
	sharedSrv *Server
	sharedLog *cmdLog
)

// shared is one tag server (anonymous sessions refused) for the tests that
// need nothing special: a child process costs seconds under -race. Its
// command log starts empty for each test.
func shared(t *testing.T) (*Server, *cmdLog) {
	t.Helper()
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if sharedSrv == nil {
		sharedSrv, sharedLog = startUnmanaged(t, false, zerolog.Nop())
	}
	sharedLog.mu.Lock()
	sharedLog.cmds, sharedLog.user = nil, nil
	sharedLog.mu.Unlock()
	return sharedSrv, sharedLog
}

func startServerLog(t *testing.T, anon bool, logger zerolog.Logger) (*Server, *cmdLog) {
	t.Helper()
	return start(t, anon, logger, true)
}

func startUnmanaged(t *testing.T, anon bool, logger zerolog.Logger) (*Server, *cmdLog) {
	t.Helper()
	return start(t, anon, logger, false)
}

func start(t *testing.T, anon bool, logger zerolog.Logger, managed bool) (*Server, *cmdLog) {
	t.Helper()
	log := &cmdLog{}
	auth := func(user, pw string) (string, bool) {
		switch {
		case user == "op" && pw == "op-secret-1":
			return "operator", true
		case user == "viewer" && pw == "viewer-secret":
			return "viewer", true
		}
		return "", false
	}
	cmd := func(ctx context.Context, user, role string, c int32) error {
		log.mu.Lock()
		defer log.mu.Unlock()
		if c == CmdAbort {
			return errors.New("abort not allowed now")
		}
		log.cmds = append(log.cmds, c)
		log.user = append(log.user, user)
		return nil
	}
	s, err := New(Options{Listen: "127.0.0.1:0", LineID: "line-1", AllowAnonymous: anon, Log: logger}, auth, cmd)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }()
	if managed {
		t.Cleanup(func() {
			cancel()
			<-errc
		})
	} else {
		_ = cancel // lives until the test binary exits (its child with it: stdin closes)
	}
	select {
	case <-s.Ready():
	case err := <-errc:
		t.Fatalf("tag server: %v", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("tag server not ready")
	}
	return s, log
}

func dial(t testing.TB, s *Server, auth opcua.Option, tokenType ua.UserTokenType) (*opcua.Client, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var eps []*ua.EndpointDescription
	var err error
	for i := 0; i < 100; i++ { // the server binds asynchronously: poll
		if eps, err = opcua.GetEndpoints(ctx, s.Endpoint()); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("endpoints: %v", err)
	}
	ep, err := opcua.SelectEndpoint(eps, ua.SecurityPolicyURINone, ua.MessageSecurityModeNone)
	if err != nil {
		t.Fatal(err)
	}
	ep.EndpointURL = s.Endpoint()
	c, err := opcua.NewClient(s.Endpoint(), opcua.SecurityPolicy("None"), opcua.SecurityMode(ua.MessageSecurityModeNone),
		opcua.SecurityFromEndpoint(ep, tokenType), auth, opcua.RequestTimeout(5*time.Second),
		opcua.AutoReconnect(false)) // gopcua's reconnect races with Close (-race)
	if err != nil {
		return nil, err
	}
	if err := c.Connect(ctx); err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c, nil
}

func readValue(t *testing.T, c *opcua.Client, id *ua.NodeID) any {
	t.Helper()
	resp, err := c.Read(context.Background(), &ua.ReadRequest{NodesToRead: []*ua.ReadValueID{{NodeID: id, AttributeID: ua.AttributeIDValue}}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Results[0].Status != ua.StatusOK {
		t.Fatalf("read %s: %v", id, resp.Results[0].Status)
	}
	return resp.Results[0].Value.Value()
}

func write(t *testing.T, c *opcua.Client, id *ua.NodeID, attr ua.AttributeID, v any) ua.StatusCode {
	t.Helper()
	variant, err := ua.NewVariant(v)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Write(context.Background(), &ua.WriteRequest{NodesToWrite: []*ua.WriteValue{{NodeID: id, AttributeID: attr,
		Value: &ua.DataValue{EncodingMask: ua.DataValueValue, Value: variant}}}})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Results[0]
}

func TestReadWriteWithUserAndRole(t *testing.T) {
	s, log := shared(t)
	s.Update(Snapshot{StateCurrent: 6, ProdProcessedCount: 120, ProdDefectiveCount: 3, Batch: "L1", GTIN: "09506000134352", CurMachSpeed: 400})
	c, err := dial(t, s, opcua.AuthUsername("op", "op-secret-1"), ua.UserTokenTypeUserName)
	if err != nil {
		t.Fatal(err)
	}
	// Snapshots reach the child process asynchronously.
	waitValue(t, c, s.NodeID("Batch.Id"), "L1")
	if v := readValue(t, c, s.NodeID("Status.StateCurrent")); v != int32(6) {
		t.Fatalf("StateCurrent %v", v)
	}
	if v := readValue(t, c, s.NodeID("Admin.ProdProcessedCount")); v != int32(120) {
		t.Fatalf("ProdProcessedCount %v", v)
	}
	if v := readValue(t, c, s.NodeID("Batch.GTIN")); v != "09506000134352" {
		t.Fatalf("GTIN %v", v)
	}
	if st := write(t, c, s.NodeID("Command.CntrlCmd"), ua.AttributeIDValue, int32(CmdHold)); st != ua.StatusOK {
		t.Fatalf("hold: %v", st)
	}
	if st := write(t, c, s.NodeID("Command.CntrlCmd"), ua.AttributeIDValue, int32(42)); st != ua.StatusBadOutOfRange {
		t.Fatalf("command 42: %v", st)
	}
	if st := write(t, c, s.NodeID("Command.CntrlCmd"), ua.AttributeIDValue, "hold"); st != ua.StatusBadTypeMismatch {
		t.Fatalf("string command: %v", st)
	}
	if st := write(t, c, s.NodeID("Command.CntrlCmd"), ua.AttributeIDValue, int32(CmdAbort)); st != ua.StatusBadInvalidState {
		t.Fatalf("refused command: %v", st)
	}
	if st := write(t, c, s.NodeID("Status.StateCurrent"), ua.AttributeIDValue, int32(1)); st != ua.StatusBadNotWritable {
		t.Fatalf("write to a status tag: %v", st)
	}
	if st := write(t, c, s.NodeID("Command.CntrlCmd"), ua.AttributeIDDisplayName, &ua.LocalizedText{Text: "pwned"}); st != ua.StatusBadNotWritable {
		t.Fatalf("write of DisplayName: %v", st)
	}
	if st := write(t, c, ua.NewStringNodeID(9, "nope"), ua.AttributeIDValue, int32(1)); st == ua.StatusOK {
		t.Fatal("write to an unknown namespace accepted")
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	if len(log.cmds) != 1 || log.cmds[0] != CmdHold || log.user[0] != "op" {
		t.Fatalf("commands %v by %v", log.cmds, log.user)
	}
}

func TestAuthentication(t *testing.T) {
	s, log := startServer(t, true)
	if _, err := dial(t, s, opcua.AuthUsername("op", "wrong"), ua.UserTokenTypeUserName); err == nil {
		t.Fatal("wrong password accepted")
	}
	viewer, err := dial(t, s, opcua.AuthUsername("viewer", "viewer-secret"), ua.UserTokenTypeUserName)
	if err != nil {
		t.Fatal(err)
	}
	if st := write(t, viewer, s.NodeID("Command.CntrlCmd"), ua.AttributeIDValue, int32(CmdStart)); st != ua.StatusBadUserAccessDenied {
		t.Fatalf("viewer write: %v", st)
	}
	anon, err := dial(t, s, opcua.AuthAnonymous(), ua.UserTokenTypeAnonymous)
	if err != nil {
		t.Fatal(err)
	}
	readValue(t, anon, s.NodeID("Status.StateCurrent"))
	if st := write(t, anon, s.NodeID("Command.CntrlCmd"), ua.AttributeIDValue, int32(CmdStart)); st != ua.StatusBadUserAccessDenied {
		t.Fatalf("anonymous write: %v", st)
	}
	if len(log.cmds) != 0 {
		t.Fatal("a refused write reached the line")
	}
	s2, _ := shared(t)
	if _, err := dial(t, s2, opcua.AuthAnonymous(), ua.UserTokenTypeAnonymous); err == nil {
		t.Fatal("anonymous session accepted where it is not allowed")
	}
}

func TestSubscriptionSeesCountChange(t *testing.T) {
	s, _ := shared(t)
	c, err := dial(t, s, opcua.AuthUsername("op", "op-secret-1"), ua.UserTokenTypeUserName)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	notes := make(chan *opcua.PublishNotificationData, 64)
	sub, err := c.Subscribe(ctx, &opcua.SubscriptionParameters{Interval: 0}, notes) // 0 is clamped, not a panic
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sub.Monitor(ctx, ua.TimestampsToReturnBoth, opcua.NewMonitoredItemCreateRequestWithDefaults(s.NodeID("Admin.ProdProcessedCount"), ua.AttributeIDValue, 7)); err != nil {
		t.Fatal(err)
	}
	go func() {
		for i := int32(1); ctx.Err() == nil; i++ {
			s.Update(Snapshot{ProdProcessedCount: i * 10})
			time.Sleep(30 * time.Millisecond)
		}
	}()
	for {
		select {
		case n := <-notes:
			if n.Error != nil {
				t.Fatal(n.Error)
			}
			if dc, ok := n.Value.(*ua.DataChangeNotification); ok {
				for _, it := range dc.MonitoredItems {
					if v, _ := it.Value.Value.Value().(int32); v >= 30 {
						return
					}
				}
			}
		case <-ctx.Done():
			t.Fatal("no data change notification")
		}
	}
}

// Abusive requests never reach a panic in the process: each is answered
// (or dropped, for requests the library cannot decode) and the server keeps
// serving. The gopcua client drops its connection on any bad service
// result, so every abuse uses its own client and a fresh one checks the
// server afterwards.
func TestAbuseIsAnswered(t *testing.T) {
	s, _ := shared(t)
	s.Update(Snapshot{UnitModeCurrent: 1, Batch: "ABUSE"})
	ctx := context.Background()
	abuse := []struct {
		req  ua.Request
		want ua.StatusCode
	}{
		{&ua.SetMonitoringModeRequest{SubscriptionID: 999, MonitoringMode: ua.MonitoringModeDisabled, MonitoredItemIDs: []uint32{1, 2, 3}}, ua.StatusBadSubscriptionIDInvalid},
		{&ua.DeleteMonitoredItemsRequest{SubscriptionID: 999, MonitoredItemIDs: []uint32{77}}, ua.StatusBadSubscriptionIDInvalid},
		{&ua.ModifySubscriptionRequest{SubscriptionID: 12345, RequestedPublishingInterval: 0}, ua.StatusBadSubscriptionIDInvalid},
		{&ua.CallRequest{}, ua.StatusBadServiceUnsupported},
		{&ua.AddNodesRequest{}, ua.StatusBadServiceUnsupported},
		{&ua.HistoryReadRequest{}, ua.StatusBadServiceUnsupported},
	}
	for _, tc := range abuse {
		c, err := dial(t, s, opcua.AuthUsername("op", "op-secret-1"), ua.UserTokenTypeUserName)
		if err != nil {
			t.Fatal(err)
		}
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = c.Send(sctx, tc.req, func(ua.Response) error { return nil })
		cancel()
		if !errors.Is(err, tc.want) {
			t.Errorf("%T: %v, want %v", tc.req, err, tc.want)
		}
	}
	// Publishing intervals the library panicked on are revised to 50 ms.
	c, err := dial(t, s, opcua.AuthUsername("op", "op-secret-1"), ua.UserTokenTypeUserName)
	if err != nil {
		t.Fatalf("server unusable after abuse: %v", err)
	}
	for _, iv := range []float64{-5, 0, 0.0001} {
		var cs *ua.CreateSubscriptionResponse
		if err := c.Send(ctx, &ua.CreateSubscriptionRequest{RequestedPublishingInterval: iv, RequestedMaxKeepAliveCount: 0},
			func(r ua.Response) error { cs = r.(*ua.CreateSubscriptionResponse); return nil }); err != nil || cs.RevisedPublishingInterval != 50 {
			t.Errorf("interval %v: %v %+v", iv, err, cs)
		}
	}
	waitValue(t, c, s.NodeID("Batch.Id"), "ABUSE")
	resp, err := c.Read(ctx, &ua.ReadRequest{NodesToRead: []*ua.ReadValueID{
		{NodeID: ua.NewStringNodeID(s.NamespaceIndex(), "no.such.tag"), AttributeID: ua.AttributeIDValue},
		{NodeID: s.NodeID("Status.UnitModeCurrent"), AttributeID: ua.AttributeIDValue},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Results[0].Status != ua.StatusBadNodeIDUnknown || resp.Results[1].Value.Value() != int32(1) {
		t.Fatalf("after abuse: %v %v", resp.Results[0].Status, resp.Results[1].Value.Value())
	}
	if n := s.PanicCount(); n != 0 {
		t.Fatalf("%d panics in the server library", n)
	}
}

// Concurrent reads, subscriptions and updates are race-free (-race).
func TestHammer(t *testing.T) {
	s, _ := shared(t)
	var clients []*opcua.Client
	for w := 0; w < 3; w++ {
		c, err := dial(t, s, opcua.AuthUsername("op", "op-secret-1"), ua.UserTokenTypeUserName)
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	var wg sync.WaitGroup
	var reads atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := int32(0); ctx.Err() == nil; i++ {
			s.Update(Snapshot{ProdProcessedCount: i, LastSerial: "S", Alarms: []string{"x"}})
		}
	}()
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			notes := make(chan *opcua.PublishNotificationData, 16)
			sub, err := c.Subscribe(ctx, &opcua.SubscriptionParameters{Interval: 50 * time.Millisecond}, notes)
			if err == nil {
				sub.Monitor(ctx, ua.TimestampsToReturnBoth, opcua.NewMonitoredItemCreateRequestWithDefaults(s.NodeID("Admin.ProdProcessedCount"), ua.AttributeIDValue, 1))
			}
			go func() {
				for range notes {
				}
			}()
			for ctx.Err() == nil {
				if _, err := c.Read(ctx, &ua.ReadRequest{NodesToRead: []*ua.ReadValueID{{NodeID: s.NodeID("Batch.LastSerial"), AttributeID: ua.AttributeIDValue}}}); err == nil {
					reads.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if reads.Load() == 0 {
		t.Fatal("no read succeeded")
	}
	if s.PanicCount() != 0 {
		t.Logf("%d library panics recovered", s.PanicCount())
	}
}

// A crafted message that gopcua's decoder panics on (outside any handler)
// kills the OPC UA child process only: the server starts a new one on the
// same port, with the last snapshot, and HMIs reconnect.
func TestCraftedMessageKillsOnlyTheChild(t *testing.T) {
	var logs syncBuffer
	s, _ := startServerLog(t, false, zerolog.New(&logs))
	s.Update(Snapshot{StateCurrent: 6, ProdProcessedCount: 77})
	c, err := dial(t, s, opcua.AuthUsername("op", "op-secret-1"), ua.UserTokenTypeUserName)
	if err != nil {
		t.Fatal(err)
	}
	waitValue(t, c, s.NodeID("Admin.ProdProcessedCount"), int32(77))
	raw, err := uatest.Dial(context.Background(), s.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	bomb, err := uatest.NegativeVariantArray(s.NodeID("Command.CntrlCmd"))
	if err != nil {
		t.Fatal(err)
	}
	if err := raw.Send(bomb); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for s.Restarts() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the child was not restarted (or did not crash)")
		}
		time.Sleep(20 * time.Millisecond)
	}
	var c2 *opcua.Client
	for {
		if c2, err = dial(t, s, opcua.AuthUsername("op", "op-secret-1"), ua.UserTokenTypeUserName); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no session after the restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "reflect.MakeSlice: negative len") || !strings.Contains(logs.String(), "restarting it") {
		t.Fatalf("the crash and restart are not in the log:\n%s", logs.String())
	}
	waitValue(t, c2, s.NodeID("Admin.ProdProcessedCount"), int32(77)) // the last snapshot survived
	if v := readValue(t, c2, s.NodeID("Status.StateCurrent")); v != int32(6) {
		t.Fatalf("StateCurrent after the restart: %v", v)
	}
}

func waitValue(t *testing.T, c *opcua.Client, id *ua.NodeID, want any) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if v := readValue(t, c, id); v == want {
			return
		} else if time.Now().After(deadline) {
			t.Fatalf("%s is %v, want %v", id, v, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// InProcess serves the same tags without a child process.
func TestInProcess(t *testing.T) {
	s, err := New(Options{Listen: "127.0.0.1:0", LineID: "line-9", InProcess: true, Log: zerolog.Nop()},
		func(u, p string) (string, bool) { return "operator", u == "op" && p == "op-secret-1" }, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}()
	<-s.Ready()
	s.Update(Snapshot{Batch: "B9"})
	c, err := dial(t, s, opcua.AuthUsername("op", "op-secret-1"), ua.UserTokenTypeUserName)
	if err != nil {
		t.Fatal(err)
	}
	if v := readValue(t, c, s.NodeID("Batch.Id")); v != "B9" {
		t.Fatalf("Batch.Id %v", v)
	}
	if st := write(t, c, s.NodeID("Command.CntrlCmd"), ua.AttributeIDValue, int32(CmdHold)); st != ua.StatusBadNotSupported {
		t.Fatalf("command without a handler: %v", st)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
