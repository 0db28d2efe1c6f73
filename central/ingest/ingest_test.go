package ingest

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/central/store/sqlite"
	"github.com/serialine/serialine/central/store/storetest"
	"github.com/serialine/serialine/sync/record"
	"github.com/serialine/serialine/sync/transport"
	"github.com/serialine/serialine/sync/wire"
)

type published struct {
	topic   string
	payload []byte
}

type fakeClient struct {
	mu  sync.Mutex
	out []published
}

func (f *fakeClient) Subscribe(string, byte, transport.Handler) error { return nil }
func (f *fakeClient) Publish(_ context.Context, topic string, _ byte, _ bool, p []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.out = append(f.out, published{topic, append([]byte(nil), p...)})
	return nil
}

func (f *fakeClient) last(channel string) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.out) - 1; i >= 0; i-- {
		if strings.HasSuffix(f.out[i].topic, "/"+channel) {
			return f.out[i].payload
		}
	}
	return nil
}

type fixture struct {
	t      *testing.T
	st     store.Store
	in     *Ingest
	client *fakeClient
	chain  *storetest.Chain
}

func setup(t *testing.T) *fixture {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c := storetest.NewChain("edge-1", 5, 1)
	if err := st.EnrollEdge(context.Background(), store.Edge{ID: "edge-1", PublicKey: c.Pub(), EnrolledBy: "test"}); err != nil {
		t.Fatal(err)
	}
	fc := &fakeClient{}
	return &fixture{t: t, st: st, client: fc, chain: c, in: New(Options{Store: st, Client: fc, Log: zerolog.Nop()})}
}

func env(s []store.Stored) []byte {
	recs := make([]record.Record, len(s))
	for i := range s {
		recs[i] = s[i].Record
	}
	return wire.EncodeEnvelope(recs)
}

func (f *fixture) process(payload []byte) {
	f.t.Helper()
	if err := f.in.Process(context.Background(), "edge-1", payload); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) count() int64 {
	n, err := f.st.CountRecords(context.Background(), "edge-1")
	if err != nil {
		f.t.Fatal(err)
	}
	return n
}

func (f *fixture) quarantined() []store.Quarantined {
	q, err := f.st.QuarantineList(context.Background(), "", 100)
	if err != nil {
		f.t.Fatal(err)
	}
	return q
}

func TestStoreThenAck(t *testing.T) {
	f := setup(t)
	recs := f.chain.Next(record.KindEdgeStarted, 1, record.KindEdgeStarted, 2, record.KindEdgeStarted, 3)
	f.process(env(recs))
	if f.count() != 3 {
		t.Fatalf("stored %d", f.count())
	}
	var ack wire.Ack
	if err := json.Unmarshal(f.client.last("ack"), &ack); err != nil {
		t.Fatal(err)
	}
	if ack.Seq != 3 || ack.Epoch != 5 || ack.Hash != recs[2].Hash.String() {
		t.Fatalf("ack %+v", ack)
	}
	// A redelivery stores nothing, quarantines nothing, and acks again.
	f.client.out = nil
	f.process(env(recs))
	if f.count() != 3 || len(f.quarantined()) != 0 || f.in.Stats.Duplicates.Load() != 3 || f.client.last("ack") == nil {
		t.Fatalf("redelivery: %d stored, %d quarantined", f.count(), len(f.quarantined()))
	}
}

func TestGapRequestsReplay(t *testing.T) {
	f := setup(t)
	first := f.chain.Next(record.KindEdgeStarted, 1)
	second := f.chain.Next(record.KindEdgeStarted, 2)
	third := f.chain.Next(record.KindEdgeStarted, 3)
	f.process(env(first))
	f.process(env(third)) // second was lost by the broker
	if f.count() != 1 {
		t.Fatalf("stored %d across a gap", f.count())
	}
	var rp wire.Replay
	if err := json.Unmarshal(f.client.last("replay"), &rp); err != nil || rp.From != 2 || rp.Epoch != 5 {
		t.Fatalf("replay %+v %v", rp, err)
	}
	f.process(env(second))
	f.process(env(third))
	if f.count() != 3 {
		t.Fatalf("after replay %d", f.count())
	}
}

func TestRejectedAndQuarantined(t *testing.T) {
	other := storetest.NewChain("edge-1", 5, 99) // same edge id, wrong key
	cases := map[string]struct {
		payload func(f *fixture) []byte
		reason  string
	}{
		"forged signature": {func(f *fixture) []byte { return env(other.Next(record.KindEdgeStarted, 1)) }, "bad signature"},
		"altered byte": {func(f *fixture) []byte {
			recs := f.chain.Next(record.KindEdgeStarted, 1, record.KindEdgeStarted, 2)
			recs[0].Record.Body = []byte(`{"x":2}`)
			return env(recs)
		}, "hash chain broken"},
		"unknown edge": {func(f *fixture) []byte {
			return env(storetest.NewChain("edge-9", 1, 3).Next(record.KindEdgeStarted, 1))
		}, "claims edge"},
		"malformed": {func(f *fixture) []byte { return []byte("SLE1\x01garbage") }, "malformed envelope"},
		"oversized": {func(f *fixture) []byte { return make([]byte, wire.MaxEnvelope+1) }, "exceeds"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			f := setup(t)
			f.process(tc.payload(f))
			q := f.quarantined()
			if f.count() != 0 || len(q) == 0 || !strings.Contains(q[0].Reason, tc.reason) {
				t.Fatalf("stored %d, quarantine %+v, want reason %q", f.count(), q, tc.reason)
			}
			if f.client.last("ack") != nil {
				t.Fatal("acknowledged a rejected envelope")
			}
		})
	}
}

func TestUnknownEdgeOnItsOwnTopic(t *testing.T) {
	f := setup(t)
	c := storetest.NewChain("edge-9", 1, 3)
	if err := f.in.Process(context.Background(), "edge-9", env(c.Next(record.KindEdgeStarted, 1))); err != nil {
		t.Fatal(err)
	}
	q := f.quarantined()
	if len(q) != 1 || !strings.Contains(q[0].Reason, "not enrolled") {
		t.Fatalf("quarantine %+v", q)
	}
}

func TestReplayedButDifferentRecord(t *testing.T) {
	f := setup(t)
	recs := f.chain.Next(record.KindEdgeStarted, 1, record.KindEdgeStarted, 2)
	f.process(env(recs))
	forged := append([]store.Stored(nil), recs...)
	forged[0].Record.Body = []byte(`{"forged":true}`)
	f.process(env(forged))
	q := f.quarantined()
	if len(q) != 1 || !strings.Contains(q[0].Reason, "differs from the stored record") || f.count() != 2 {
		t.Fatalf("quarantine %+v, count %d", q, f.count())
	}
}

func TestEpochs(t *testing.T) {
	f := setup(t)
	f.process(env(f.chain.Next(record.KindEdgeStarted, 1)))
	newer := storetest.NewChain("edge-1", 6, 1)
	f.process(env(newer.Next(record.KindEdgeStarted, 1)))
	if f.count() != 2 {
		t.Fatalf("new epoch not stored: %d", f.count())
	}
	older := storetest.NewChain("edge-1", 4, 1)
	f.process(env(older.Next(record.KindEdgeStarted, 1)))
	q := f.quarantined()
	if f.count() != 2 || len(q) != 1 || !strings.Contains(q[0].Reason, "out-of-epoch") {
		t.Fatalf("older epoch: count %d quarantine %+v", f.count(), q)
	}
}

// Records after the last signature are not authenticated: not stored yet.
func TestUnsignedTailWaits(t *testing.T) {
	f := setup(t)
	recs := f.chain.Next(record.KindEdgeStarted, 1, record.KindEdgeStarted, 2)
	tail := f.chain.Next(record.KindEdgeStarted, 3)
	tail[0].Record.Sig = nil
	f.process(env(append(recs, tail...)))
	if f.count() != 2 {
		t.Fatalf("stored %d, want the 2 signed ones", f.count())
	}
	_ = ed25519.PublicKeySize
}

type alertRecorder struct {
	mu     sync.Mutex
	alerts []store.Alert
}

func (a *alertRecorder) Raise(_ context.Context, al store.Alert) (store.Alert, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.alerts = append(a.alerts, al)
	return al, nil
}

// A quarantined record raises a critical alert naming the edge and the
// record, keyed per edge so a flood of bad records is one active alert.
func TestQuarantineRaisesAlert(t *testing.T) {
	f := setup(t)
	rec := &alertRecorder{}
	f.in.opt.Alerts = rec
	other := storetest.NewChain("edge-1", 5, 99)
	f.process(env(other.Next(record.KindEdgeStarted, 1)))
	if len(rec.alerts) != 1 {
		t.Fatalf("alerts %+v", rec.alerts)
	}
	a := rec.alerts[0]
	if a.Severity != store.SeverityCritical || a.Code != "quarantine" || a.Key != "quarantine:edge-1" || a.Edge != "edge-1" || a.Ref != "edge-1/5/1" || !strings.Contains(a.Message, "bad signature") {
		t.Fatalf("alert %+v", a)
	}
}
