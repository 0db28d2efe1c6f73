package opcua_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gopcua "github.com/gopcua/opcua"
	"github.com/gopcua/opcua/ua"
	"github.com/rs/zerolog"

	"github.com/serialine/serialine/drivers"
	"github.com/serialine/serialine/drivers/opcua"
	"github.com/serialine/serialine/drivers/opcua/opcuasim"
)

const nsu = "nsu=" + opcuasim.DefaultNamespace + ";s="

func tags() map[string]opcua.Tag {
	return map[string]opcua.Tag{
		"reject":          {Node: nsu + "PLC.Reject", Pulse: 20 * time.Millisecond},
		"level":           {Node: nsu + "PLC.Level"},
		"line_running":    {Node: nsu + "PLC.LineRunning"},
		"product_present": {Node: nsu + "PLC.ProductPresent"},
		"good_count":      {Node: nsu + "PLC.GoodCount"},
		"reject_count":    {Node: nsu + "PLC.RejectCount"},
		"small":           {Node: nsu + "PLC.Small"},
	}
}

func newSim(t testing.TB, mod func(*opcuasim.Options)) *opcuasim.Sim {
	t.Helper()
	o := opcuasim.Options{Name: "plc-sim", Tags: tags(), Initial: map[string]any{"small": uint16(0)}}
	if mod != nil {
		mod(&o)
	}
	sim, err := opcuasim.New(o, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Stop)
	return sim
}

var (
	sharedOnce sync.Once
	sharedSim  *opcuasim.Sim
	sharedErr  error
)

// shared is one simulator for the tests that inject no lasting fault
// (building a server costs seconds under -race).
func shared(t testing.TB) *opcuasim.Sim {
	t.Helper()
	sharedOnce.Do(func() {
		sharedSim, sharedErr = opcuasim.New(opcuasim.Options{Name: "shared", Tags: tags(), Initial: map[string]any{"small": uint16(0)}}, zerolog.Nop())
		if sharedErr == nil {
			_, sharedErr = sharedSim.Start("127.0.0.1:0")
		}
	})
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return sharedSim
}

func newPLC(t testing.TB, addr string, timeout time.Duration, mod func(*opcua.Options)) *opcua.PLC {
	t.Helper()
	o := opcua.Options{Tags: tags()}
	if mod != nil {
		mod(&o)
	}
	p, err := opcua.New("plc-1", addr, timeout, o, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestValidate(t *testing.T) {
	ok := func() opcua.Options { return opcua.Options{Tags: tags()} }
	bad := map[string]struct {
		mod  func(*opcua.Options)
		want string
	}{
		"no tags":        {func(o *opcua.Options) { o.Tags = nil }, "tags: at least the reject tag"},
		"no reject":      {func(o *opcua.Options) { delete(o.Tags, "reject") }, "tags.reject: required"},
		"empty node":     {func(o *opcua.Options) { o.Tags["level"] = opcua.Tag{} }, "tags.level.node: required"},
		"bad node":       {func(o *opcua.Options) { o.Tags["level"] = opcua.Tag{Node: "ns=x;s=a"} }, `tags.level.node: node id "ns=x;s=a": namespace index`},
		"bad pulse":      {func(o *opcua.Options) { o.Tags["reject"] = opcua.Tag{Node: "i=1", Pulse: -1} }, "tags.reject.pulse"},
		"policy":         {func(o *opcua.Options) { o.Security.Policy = "Basic512" }, `security.policy: "Basic512"`},
		"deprecated":     {func(o *opcua.Options) { o.Security.Policy = "Basic128Rsa15" }, "Basic128Rsa15 is deprecated"},
		"mode":           {func(o *opcua.Options) { o.Security.Mode = "Encrypt" }, `security.mode: "Encrypt"`},
		"none with sign": {func(o *opcua.Options) { o.Security.Mode = "Sign" }, "policy None goes with mode None only"},
		"half pair":      {func(o *opcua.Options) { o.Security.CertFile = "a.pem" }, "security.cert_file and security.key_file"},
		"pin on None":    {func(o *opcua.Options) { o.Security.ServerCertFile = "plc.der" }, "security.server_cert_file: pinning needs mode Sign"},
		"two passwords":  {func(o *opcua.Options) { o.Username, o.Password, o.PasswordFile = "u", "p", "f" }, "password and password_file"},
		"no user":        {func(o *opcua.Options) { o.Password = "p" }, "username: required with a password"},
		"interval":       {func(o *opcua.Options) { o.PublishInterval = time.Millisecond }, "publish_interval: 1ms"},
		"session":        {func(o *opcua.Options) { o.SessionTimeout = time.Millisecond }, "session_timeout"},
		"path":           {func(o *opcua.Options) { o.Path = "UA" }, `path: "UA"`},
	}
	for name, tc := range bad {
		o := ok()
		tc.mod(&o)
		if err := o.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
	o := ok()
	o.Security = opcua.Security{Policy: "Aes256_Sha256_RsaPss", Mode: "Sign"}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	o.Security = opcua.Security{Policy: "Basic256Sha256"} // mode defaults to SignAndEncrypt
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestReadWriteAgainstSim(t *testing.T) {
	sim := shared(t)
	p := newPLC(t, sim.Addr(), 2*time.Second, nil)
	ctx := context.Background()
	if err := p.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	before := sim.RejectCount()
	for i := 0; i < 3; i++ {
		if err := p.WriteBool(ctx, "reject", true); err != nil {
			t.Fatal(err)
		}
	}
	if v, _ := sim.Value("reject"); sim.RejectCount()-before != 3 || v != false {
		t.Fatalf("rejects %d, gate after the pulse %v", sim.RejectCount()-before, v)
	}
	if err := p.WriteBool(ctx, "level", true); err != nil {
		t.Fatal(err)
	}
	if v, err := p.ReadBool(ctx, "level"); err != nil || !v {
		t.Fatalf("level %v %v", v, err)
	}
	if v, err := p.ReadBool(ctx, "line_running"); err != nil || !v {
		t.Fatalf("line_running %v %v", v, err)
	}
	for tag, v := range map[string]uint64{"good_count": 70000, "reject_count": 4294967295, "small": 65535} {
		if err := p.WriteUint(ctx, tag, v); err != nil {
			t.Fatal(err)
		}
		if got, err := p.ReadUint(ctx, tag); err != nil || got != v {
			t.Fatalf("%s: %d %v, want %d", tag, got, err, v)
		}
	}
	if v, _ := sim.Value("good_count"); v != uint32(70000) {
		t.Fatalf("good_count on the PLC is %T %v, want UInt32 70000", v, v)
	}
	if err := p.WriteUint(ctx, "small", 70000); err == nil || !strings.Contains(err.Error(), "does not fit in UInt16") {
		t.Fatalf("70000 into a UInt16: %v", err)
	}
	if err := p.WriteUint(ctx, "good_count", 1<<32); err == nil {
		t.Fatal("2^32 written to a UInt32")
	}
	if err := p.WriteBool(ctx, "good_count", true); err == nil || !strings.Contains(err.Error(), "not Boolean") {
		t.Fatalf("bool into a counter: %v", err)
	}
	if _, err := p.ReadBool(ctx, "good_count"); !errors.Is(err, drivers.ErrMalformed) {
		t.Fatalf("ReadBool of a counter: %v", err)
	}
	if _, err := p.ReadBool(ctx, "nope"); err == nil || !strings.Contains(err.Error(), "plc-1 tag nope") {
		t.Fatalf("unknown tag: %v", err)
	}
	// An input of the PLC is read-only: the write is refused by the PLC, the
	// session stays.
	sessions := p.SessionsOpened()
	err := p.WriteBool(ctx, "product_present", true)
	if !errors.Is(err, drivers.ErrDeviceFault) || !strings.Contains(err.Error(), "BadNotWritable") || !strings.Contains(err.Error(), "PLC.ProductPresent") {
		t.Fatalf("write to an input: %v", err)
	}
	if _, err := p.ReadBool(ctx, "line_running"); err != nil || p.SessionsOpened() != sessions {
		t.Fatalf("after a refused write: %v, sessions opened %d -> %d", err, sessions, p.SessionsOpened())
	}
	if !p.Health().OK() {
		t.Fatalf("health %+v", p.Health())
	}
	if p.Close() != nil || p.Close() != nil {
		t.Fatal("close twice")
	}
	// Connect after Close works (the engine closes and reconnects).
	if err := p.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := p.ReadBool(ctx, "line_running"); err != nil {
		t.Fatal(err)
	}
}

// Connect checks every tag: a missing node, an unsupported data type, a
// node the edge must write but cannot, an unknown namespace.
func TestConnectChecksTags(t *testing.T) {
	sim := newSim(t, func(o *opcuasim.Options) {
		o.Tags["speed"] = opcua.Tag{Node: nsu + "PLC.Speed"}
		o.Tags["state"] = opcua.Tag{Node: nsu + "PLC.State"}
		o.Initial["speed"] = float64(1.5)
		o.Initial["state"] = int32(-5)
		o.Inputs = []string{"line_running", "product_present", "state"}
	})
	ctx := context.Background()
	cases := []struct {
		name string
		tag  string
		node string
		want []string
	}{
		{"missing node", "level", nsu + "PLC.NoSuchNode", []string{"tag level (" + nsu + "PLC.NoSuchNode)", "BadNodeIDUnknown"}},
		{"double", "level", nsu + "PLC.Speed", []string{"tag level", "data type", "Boolean and integer"}},
		{"read-only counter", "good_count", nsu + "PLC.LineRunning", []string{"tag good_count", "not writable"}},
		{"unknown namespace", "level", "nsu=urn:other;s=X", []string{"tag level", `namespace "urn:other" is not in the server's namespace array`}},
	}
	for _, tc := range cases {
		p := newPLC(t, sim.Addr(), 2*time.Second, func(o *opcua.Options) { o.Tags[tc.tag] = opcua.Tag{Node: tc.node} })
		err := p.Connect(ctx)
		if !errors.Is(err, drivers.ErrDeviceFault) {
			t.Errorf("%s: %v, want a device fault", tc.name, err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q lacks %q", tc.name, err, w)
			}
		}
	}
	// A negative value read for an unsigned tag is malformed device data.
	p := newPLC(t, sim.Addr(), 2*time.Second, func(o *opcua.Options) { o.Tags["state"] = opcua.Tag{Node: nsu + "PLC.State"} })
	if _, err := p.ReadUint(ctx, "state"); !errors.Is(err, drivers.ErrMalformed) || !strings.Contains(err.Error(), "negative value -5") {
		t.Fatalf("negative value: %v", err)
	}
}

// The PLC restarts (a new server process on the same port): the driver
// reports the link down, recovers by itself and writes again, and the
// subscription (its own session) is restored with the current values.
// Then the PLC is off for a while: ErrNotConnected, and recovery again.
func TestReconnectAfterRestart(t *testing.T) {
	sim := newSim(t, nil)
	p := newPLC(t, sim.Addr(), time.Second, func(o *opcua.Options) { o.PublishInterval = 50 * time.Millisecond })
	ctx, cancel := context.WithCancel(context.Background())
	changes := make(chan opcua.Change, 64)
	done := make(chan error, 1)
	go func() {
		done <- p.Subscribe(ctx, []string{"line_running", "product_present", "good_count"}, func(c opcua.Change) { changes <- c })
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Subscribe returned %v", err)
		}
	}()
	latest := map[string]any{}
	want := func(tag string, v any) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for latest[tag] != v {
			select {
			case c := <-changes:
				if c.Err != nil {
					t.Fatalf("change error: %v", c.Err)
				}
				latest[c.Tag] = c.Value
			case <-deadline:
				t.Fatalf("no change %s=%v (latest %v)", tag, v, latest)
			}
		}
	}
	want("line_running", true) // current values first
	want("good_count", uint64(0))
	if err := sim.Set("product_present", true); err != nil {
		t.Fatal(err)
	}
	want("product_present", true)
	if err := p.WriteBool(ctx, "reject", true); err != nil {
		t.Fatal(err)
	}

	if err := sim.Restart(); err != nil {
		t.Fatal(err)
	}
	// The first call may hit the dead session; it must say so and the
	// driver must recover without help.
	if err := p.WriteBool(ctx, "reject", true); err != nil && !errors.Is(err, drivers.ErrNotConnected) {
		t.Fatalf("write on the old session: %v", err)
	}
	waitWrite(t, p)
	if err := sim.Set("line_running", false); err != nil {
		t.Fatal(err)
	}
	want("line_running", false) // the subscription is back
	if err := sim.Set("good_count", uint32(12)); err != nil {
		t.Fatal(err)
	}
	want("good_count", uint64(12))

	sim.Stop()
	err := p.WriteBool(ctx, "reject", true)
	if !errors.Is(err, drivers.ErrNotConnected) || !strings.Contains(err.Error(), "plc-1") {
		t.Fatalf("write to a stopped PLC: %v", err)
	}
	if p.Health().Connected {
		t.Fatal("health says connected while the PLC is off")
	}
	if _, err := sim.Start(sim.Addr()); err != nil {
		t.Fatal(err)
	}
	waitWrite(t, p)
	if err := sim.Set("good_count", uint32(13)); err != nil {
		t.Fatal(err)
	}
	want("good_count", uint64(13))
	if sim.RejectCount() < 1 || sim.Starts() != 3 || p.SessionsOpened() < 3 {
		t.Fatalf("rejects %d after %d starts, %d sessions opened", sim.RejectCount(), sim.Starts(), p.SessionsOpened())
	}
	if !p.Health().OK() {
		t.Fatalf("health %+v", p.Health())
	}
}

func waitWrite(t *testing.T, p *opcua.PLC) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := p.WriteBool(context.Background(), "level", true)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A slow PLC: the call times out within the driver's timeout and the
// driver recovers when the PLC answers in time again.
func TestTimeout(t *testing.T) {
	sim := shared(t)
	t.Cleanup(func() { sim.SetDelay(0) })
	p := newPLC(t, sim.Addr(), 300*time.Millisecond, nil)
	ctx := context.Background()
	if err := p.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	sim.SetDelay(time.Second)
	start := time.Now()
	_, err := p.ReadBool(ctx, "line_running")
	if !errors.Is(err, drivers.ErrTimeout) || time.Since(start) > 900*time.Millisecond {
		t.Fatalf("slow read: %v after %s", err, time.Since(start))
	}
	// A caller's shorter deadline wins.
	sctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	start = time.Now()
	_, err = p.ReadBool(sctx, "line_running")
	cancel()
	if err == nil || time.Since(start) > 290*time.Millisecond {
		t.Fatalf("deadline: %v after %s", err, time.Since(start))
	}
	sim.SetDelay(0)
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, err := p.ReadBool(ctx, "line_running")
		if err == nil && v {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery after the delay: %v", err)
		}
	}
}

// A write refused with a Bad status is a device fault naming device, tag,
// node and status; the session stays (it is the PLC, not the link).
func TestDeviceFault(t *testing.T) {
	sim := shared(t)
	t.Cleanup(func() { sim.RefuseWrites(ua.StatusOK) })
	rejects := sim.RejectCount()
	p := newPLC(t, sim.Addr(), time.Second, nil)
	ctx := context.Background()
	if err := p.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	sim.RefuseWrites(ua.StatusBadDeviceFailure)
	err := p.WriteBool(ctx, "reject", true)
	var de *drivers.DeviceError
	if !errors.Is(err, drivers.ErrDeviceFault) || !errors.As(err, &de) || de.Device != "plc-1" ||
		!strings.Contains(de.Field, "tag reject ("+nsu+"PLC.Reject) write") || !strings.Contains(err.Error(), "BadDeviceFailure") {
		t.Fatalf("refused write: %v", err)
	}
	if sim.RejectCount() != rejects {
		t.Fatal("a refused reject was counted")
	}
	sim.RefuseWrites(ua.StatusOK)
	if err := p.WriteBool(ctx, "reject", true); err != nil {
		t.Fatal(err)
	}
	if sim.RejectCount() != rejects+1 || p.SessionsOpened() != 1 {
		t.Fatalf("rejects %d, sessions opened %d", sim.RejectCount()-rejects, p.SessionsOpened())
	}
}

// Security: Basic256Sha256 Sign and SignAndEncrypt with a user name, a
// pinned server certificate, certificate files, and the refusals.
func TestSecurity(t *testing.T) {
	sim := newSim(t, func(o *opcuasim.Options) {
		o.Security = []string{"Basic256Sha256-Sign", "Basic256Sha256-SignAndEncrypt"}
		o.Users = map[string]string{"edge": "edge-secret-1"}
	})
	dir := t.TempDir()
	certFile, keyFile := writeKeyPair(t, dir)
	pin := filepath.Join(dir, "plc.der")
	if err := os.WriteFile(pin, sim.Cert(), 0o600); err != nil {
		t.Fatal(err)
	}
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte("edge-secret-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, mode := range []string{"Sign", "SignAndEncrypt"} {
		p := newPLC(t, sim.Addr(), 2*time.Second, func(o *opcua.Options) {
			o.Security = opcua.Security{Policy: "Basic256Sha256", Mode: mode, CertFile: certFile, KeyFile: keyFile, ServerCertFile: pin}
			o.Username, o.PasswordFile = "edge", pwFile
		})
		if err := p.WriteBool(ctx, "level", true); err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
	}
	refused := []struct {
		name string
		mod  func(*opcua.Options)
		want string
	}{
		{"wrong password", func(o *opcua.Options) {
			o.Security = opcua.Security{Policy: "Basic256Sha256"}
			o.Username, o.Password = "edge", "wrong"
		}, "BadUserAccessDenied"},
		{"anonymous", func(o *opcua.Options) { o.Security = opcua.Security{Policy: "Basic256Sha256"} }, "BadIdentityTokenRejected"},
		{"other pinned certificate", func(o *opcua.Options) {
			o.Security = opcua.Security{Policy: "Basic256Sha256", ServerCertFile: certFile}
			o.Username, o.Password = "edge", "edge-secret-1"
		}, "not the pinned security.server_cert_file"},
		{"policy not offered", func(o *opcua.Options) {
			o.Username, o.Password = "edge", "edge-secret-1"
		}, "offers no endpoint with policy None and mode None (it offers Basic256Sha256/MessageSecurityModeSign"},
	}
	for _, tc := range refused {
		p := newPLC(t, sim.Addr(), 2*time.Second, tc.mod)
		err := p.Connect(ctx)
		if !errors.Is(err, drivers.ErrDeviceFault) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	if _, err := opcua.New("plc-1", sim.Addr(), time.Second, opcua.Options{Tags: tags(),
		Security: opcua.Security{Policy: "Basic256Sha256", CertFile: certFile, KeyFile: certFile}}, zerolog.Nop()); err == nil || !strings.Contains(err.Error(), "key_file") {
		t.Fatalf("certificate as key: %v", err)
	}
}

func writeKeyPair(t *testing.T, dir string) (string, string) {
	t.Helper()
	key, der, err := opcua.GenerateCert("urn:serialine:test:edge", "test edge")
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "edge.crt"), filepath.Join(dir, "edge.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// The per-unit overhead: one reject write round trip (no pulse) through
// the driver, and the same Write with a bare gopcua client on the same
// server (the raw limit; benchreport prints the ratio).
func BenchmarkWriteBool(b *testing.B) {
	sim := shared(b)
	ctx := context.Background()
	b.Run("driver", func(b *testing.B) {
		p := newPLC(b, sim.Addr(), 2*time.Second, func(o *opcua.Options) { o.Tags["reject"] = opcua.Tag{Node: nsu + "PLC.Reject"} })
		if err := p.Connect(ctx); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for b.Loop() {
			if err := p.WriteBool(ctx, "reject", true); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("raw-gopcua", func(b *testing.B) {
		c, err := gopcua.NewClient(sim.Endpoint(), gopcua.AutoReconnect(false), gopcua.AuthAnonymous(),
			gopcua.SecurityPolicy("None"), gopcua.SecurityMode(ua.MessageSecurityModeNone))
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Connect(ctx); err != nil {
			b.Fatal(err)
		}
		defer c.Close(ctx)
		ns := -1
		for i, u := range c.Namespaces() {
			if u == opcuasim.DefaultNamespace {
				ns = i
			}
		}
		v, _ := ua.NewVariant(true)
		req := &ua.WriteRequest{NodesToWrite: []*ua.WriteValue{{NodeID: ua.NewStringNodeID(uint16(ns), "PLC.Reject"), AttributeID: ua.AttributeIDValue,
			Value: &ua.DataValue{EncodingMask: ua.DataValueValue, Value: v}}}}
		b.ResetTimer()
		for b.Loop() {
			resp, err := c.Write(ctx, req)
			if err != nil || resp.Results[0] != ua.StatusOK {
				b.Fatal(err, resp)
			}
		}
	})
}
