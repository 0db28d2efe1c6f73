package ingest

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/serialine/serialine/central/alerts"
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
	now := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	f.in.opt.Now = func() time.Time { return now }
	first := f.chain.Next(record.KindEdgeStarted, 1)
	second := f.chain.Next(record.KindEdgeStarted, 2)
	third := f.chain.Next(record.KindEdgeStarted, 3)
	f.process(env(first))
	f.process(env(third)) // second was lost by the broker
	if f.count() != 1 || f.in.Pending() != 1 {
		t.Fatalf("stored %d across a gap, %d pending", f.count(), f.in.Pending())
	}
	// No replay request while the gap may still fill by itself.
	f.in.Tick(context.Background())
	if f.client.last("replay") != nil {
		t.Fatal("replay requested before ReplayAfter")
	}
	now = now.Add(f.in.opt.ReplayAfter)
	f.in.Tick(context.Background())
	var rp wire.Replay
	if err := json.Unmarshal(f.client.last("replay"), &rp); err != nil || rp.From != 2 || rp.To != 2 || rp.Epoch != 5 {
		t.Fatalf("replay %+v %v", rp, err)
	}
	// The replayed record fills the gap; the waiting envelope follows it.
	f.process(env(second))
	if f.count() != 3 || f.in.Pending() != 0 {
		t.Fatalf("after replay %d stored, %d pending", f.count(), f.in.Pending())
	}
	var ack wire.Ack
	json.Unmarshal(f.client.last("ack"), &ack)
	if ack.Seq != 3 {
		t.Fatalf("ack %+v", ack)
	}
}

// Envelopes arriving in any order (live records interleaved with a backlog,
// a broker re-delivering out of order) are stored strictly in seq order,
// and nothing is acknowledged beyond the first gap.
func TestOutOfOrderStoredInOrder(t *testing.T) {
	f := setup(t)
	var envs [][]byte
	for i := 0; i < 12; i++ {
		envs = append(envs, env(f.chain.Next(record.KindEdgeStarted, i, record.KindEdgeStarted, i)))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	order := rng.Perm(len(envs))
	maxAck := uint64(0)
	for _, i := range order {
		f.client.out = nil
		f.process(envs[i])
		if a := f.client.last("ack"); a != nil {
			var ack wire.Ack
			json.Unmarshal(a, &ack)
			if ack.Seq < maxAck {
				t.Fatalf("ack went back from %d to %d", maxAck, ack.Seq)
			}
			maxAck = ack.Seq
		}
		n := uint64(f.count())
		if maxAck > n {
			t.Fatalf("acknowledged %d with %d stored", maxAck, n)
		}
		got, _ := f.st.Records(context.Background(), "edge-1", 5, 1, 100)
		for j, r := range got {
			if r.Record.Seq != uint64(j+1) {
				t.Fatalf("stored out of order or with a gap: position %d holds seq %d", j, r.Record.Seq)
			}
		}
	}
	if f.count() != 24 || maxAck != 24 || f.in.Pending() != 0 || len(f.quarantined()) != 0 {
		t.Fatalf("stored %d, acked %d, pending %d, quarantined %d", f.count(), maxAck, f.in.Pending(), len(f.quarantined()))
	}
}

func TestRejectedAndQuarantined(t *testing.T) {
	other := storetest.NewChain("edge-1", 5, 99) // same edge id, wrong key
	cases := map[string]struct {
		payload func(f *fixture) []byte
		reason  string
		code    string
	}{
		"forged signature": {func(f *fixture) []byte { return env(other.Next(record.KindEdgeStarted, 1)) }, "bad signature", ReasonBadSignature},
		"altered byte": {func(f *fixture) []byte {
			recs := f.chain.Next(record.KindEdgeStarted, 1, record.KindEdgeStarted, 2)
			recs[0].Record.Body = []byte(`{"x":2}`)
			return env(recs)
		}, "hash chain broken", ReasonBrokenChain},
		"unknown edge": {func(f *fixture) []byte {
			return env(storetest.NewChain("edge-9", 1, 3).Next(record.KindEdgeStarted, 1))
		}, "claims edge", ReasonWrongEdge},
		"malformed": {func(f *fixture) []byte { return []byte("SLE1\x01garbage") }, "malformed envelope", ReasonMalformedEnvelope},
		"oversized": {func(f *fixture) []byte { return make([]byte, wire.MaxEnvelope+1) }, "exceeds", ReasonMalformedEnvelope},
		"not json":  {func(f *fixture) []byte { return []byte("SLE1\x01\x05hello\x00") }, "malformed envelope", ReasonMalformedEnvelope},
		"empty":     {func(f *fixture) []byte { return nil }, "malformed envelope", ReasonMalformedEnvelope},
		"unsigned key.rotated": {func(f *fixture) []byte {
			recs := f.chain.Next(record.KindKeyRotated, record.KeyRotated{Old: record.EncodePublicKey(f.chain.Pub()), New: record.EncodePublicKey(other.Pub())}, record.KindEdgeStarted, 2)
			return env(recs)
		}, "not signed", ReasonBadSignature},
		"rotation to a key not enrolled": {func(f *fixture) []byte {
			return env(f.chain.Next(record.KindKeyRotated, record.KeyRotated{Old: record.EncodePublicKey(f.chain.Pub()), New: record.EncodePublicKey(other.Pub())}))
		}, "not enrolled", ReasonBadSignature},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			f := setup(t)
			f.process(tc.payload(f))
			q := f.quarantined()
			if f.count() != 0 || len(q) == 0 || !strings.Contains(q[0].Reason, tc.reason) {
				t.Fatalf("stored %d, quarantine %+v, want reason %q", f.count(), q, tc.reason)
			}
			if f.in.Stats.Quarantines(tc.code) == 0 {
				t.Fatalf("not counted under %s", tc.code)
			}
			if f.client.last("ack") != nil {
				t.Fatal("acknowledged a rejected envelope")
			}
		})
	}
}

// A signed, well-chained record whose body does not decode for its kind is
// quarantined (not stored as valid); the valid records before it are
// stored, nothing after it is acknowledged, so the edge keeps them.
func TestMalformedBodyQuarantined(t *testing.T) {
	f := setup(t)
	good := f.chain.Next(record.KindEdgeStarted, 1)
	bad := f.chain.Next(record.KindUnitVerified, "not an object", record.KindEdgeStarted, 3)
	f.process(env(append(good, bad...)))
	if f.count() != 1 {
		t.Fatalf("stored %d, want the 1 good record", f.count())
	}
	q := f.quarantined()
	if len(q) != 2 || q[0].Seq != 2 || !strings.Contains(q[0].Reason, "unit.verified body does not decode") || q[1].Seq != 3 {
		t.Fatalf("quarantine %+v", q)
	}
	if f.in.Stats.Quarantines(ReasonMalformedBody) != 1 || f.in.Stats.Quarantines(ReasonFollowsBad) != 1 {
		t.Fatal("not counted by reason")
	}
	var ack wire.Ack
	json.Unmarshal(f.client.last("ack"), &ack)
	if ack.Seq != 1 {
		t.Fatalf("ack %+v", ack)
	}
	// The edge resends: no new quarantine rows, the repeat is counted.
	f.process(env(bad))
	if len(f.quarantined()) != 2 || f.in.Stats.Repeats.Load() != 2 {
		t.Fatalf("resend: %d quarantined, %d repeats", len(f.quarantined()), f.in.Stats.Repeats.Load())
	}
}

// Key rotation: the admin enrolls the new key with an overlap, the edge
// announces the switch with a key.rotated record signed by the old key and
// signs on with the new key. A record signed by the old key after the
// announcement is refused; records signed by a key not (yet) enrolled wait
// and are stored once it is.
func TestKeyRotation(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	newKey := storetest.NewChain("edge-1", 5, 2).Key
	newPub := newKey.Public().(ed25519.PublicKey)
	f.process(env(f.chain.Next(record.KindEdgeStarted, 1)))
	rotation := f.chain.Next(record.KindKeyRotated, record.KeyRotated{Old: record.EncodePublicKey(f.chain.Pub()), New: record.EncodePublicKey(newPub)})
	f.chain.Key = newKey
	after := f.chain.Next(record.KindEdgeStarted, 3)
	// The new key is not enrolled yet: the announcement is refused, and
	// central acknowledges nothing past seq 1.
	f.process(env(rotation))
	if f.count() != 1 {
		t.Fatalf("stored %d before the new key was enrolled", f.count())
	}
	if err := f.st.RotateEdgeKey(ctx, store.EdgeKey{Edge: "edge-1", PublicKey: newPub, ValidFrom: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), EnrolledBy: "admin"}, 24*time.Hour*365); err != nil {
		t.Fatal(err)
	}
	// Resent after enrollment: stored (the cached ring is refreshed).
	f.process(env(rotation))
	f.process(env(after))
	if f.count() != 3 {
		t.Fatalf("stored %d after enrollment, quarantine %+v", f.count(), f.quarantined())
	}
	// The old key, still inside its overlap window, signs nothing after
	// the announcement.
	f.chain.Key = storetest.NewChain("edge-1", 5, 1).Key
	forged := f.chain.Next(record.KindEdgeStarted, 4)
	f.process(env(forged))
	q := f.quarantined()
	if f.count() != 3 || len(q) == 0 || q[len(q)-1].Seq != 4 || !strings.Contains(q[len(q)-1].Reason, "bad signature") {
		t.Fatalf("old key after rotation: count %d quarantine %+v", f.count(), q)
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

func (a *alertRecorder) Clear(context.Context, string) (bool, error) { return false, nil }

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
	// Counted in the Prometheus metrics by reason.
	reg := prometheus.NewRegistry()
	if err := f.in.Register(reg); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		if mf.GetName() != "serialine_ingest_quarantined_reason_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == ReasonBadSignature && m.GetCounter().GetValue() == 1 {
				found = true
			}
		}
	}
	if !found {
		t.Fatal("serialine_ingest_quarantined_reason_total{reason=\"bad_signature\"} is not 1")
	}
	a := rec.alerts[0]
	if a.Severity != store.SeverityCritical || a.Code != "quarantine" || a.Key != "quarantine:edge-1" || a.Edge != "edge-1" || a.Ref != "edge-1/5/1" || !strings.Contains(a.Message, "bad signature") {
		t.Fatalf("alert %+v", a)
	}
}

type countingStore struct {
	store.Store
	appends int
}

func (c *countingStore) Append(ctx context.Context, edge string, after record.Head, recs []store.Stored) error {
	c.appends++
	return c.Store.Append(ctx, edge, after, recs)
}

// Envelopes that queued up are stored in one transaction with one ack; a
// bad one in the middle is quarantined and what follows waits for the
// gap, exactly as one at a time.
func TestProcessBatch(t *testing.T) {
	f := setup(t)
	cs := &countingStore{Store: f.st}
	f.in = New(Options{Store: cs, Client: f.client, Log: zerolog.Nop()})
	var envs [][]byte
	for i := 0; i < 10; i++ {
		envs = append(envs, env(f.chain.Next(record.KindEdgeStarted, i, record.KindEdgeStarted, i)))
	}
	if err := f.in.ProcessBatch(context.Background(), "edge-1", envs[:6]); err != nil {
		t.Fatal(err)
	}
	var acks int
	for _, p := range f.client.out {
		if strings.HasSuffix(p.topic, "/ack") {
			acks++
		}
	}
	if f.count() != 12 || cs.appends != 1 || acks != 1 {
		t.Fatalf("stored %d in %d appends with %d acks", f.count(), cs.appends, acks)
	}
	// A redelivered envelope, a forged one, then the rest.
	other := storetest.NewChain("edge-1", 5, 99)
	forged := env(other.Next(record.KindEdgeStarted, 1))
	batch := [][]byte{envs[5], envs[6], []byte("garbage"), envs[8], envs[9]}
	if err := f.in.ProcessBatch(context.Background(), "edge-1", batch); err != nil {
		t.Fatal(err)
	}
	// envs[7] is missing: 8 and 9 wait.
	if f.count() != 14 || f.in.Pending() != 2 || len(f.quarantined()) != 1 {
		t.Fatalf("after a batch with a gap: stored %d, pending %d, quarantined %+v", f.count(), f.in.Pending(), f.quarantined())
	}
	if err := f.in.ProcessBatch(context.Background(), "edge-1", [][]byte{forged, envs[7]}); err != nil {
		t.Fatal(err)
	}
	if f.count() != 20 || f.in.Pending() != 0 {
		t.Fatalf("after the gap filled: stored %d, pending %d, quarantine %+v", f.count(), f.in.Pending(), f.quarantined())
	}
	var ack wire.Ack
	json.Unmarshal(f.client.last("ack"), &ack)
	if ack.Seq != 20 {
		t.Fatalf("ack %+v", ack)
	}
	got, _ := f.st.Records(context.Background(), "edge-1", 5, 1, 100)
	for i, r := range got {
		if r.Record.Seq != uint64(i+1) {
			t.Fatalf("position %d holds seq %d", i, r.Record.Seq)
		}
	}
}

// Random batches of shuffled envelopes, with a new epoch in the middle:
// everything is stored once, in order.
func TestProcessBatchShuffled(t *testing.T) {
	f := setup(t)
	var envs [][]byte
	for i := 0; i < 20; i++ {
		envs = append(envs, env(f.chain.Next(record.KindEdgeStarted, i)))
	}
	next := storetest.NewChain("edge-1", 6, 1)
	for i := 0; i < 10; i++ {
		envs = append(envs, env(next.Next(record.KindEdgeStarted, i, record.KindEdgeStarted, i)))
	}
	rng := rand.New(rand.NewPCG(3, 4))
	// Epoch 5 first (in shuffled batches), then epoch 6.
	for _, part := range [][][]byte{envs[:20], envs[20:]} {
		order := rng.Perm(len(part))
		for len(order) > 0 {
			n := min(1+rng.IntN(5), len(order))
			var b [][]byte
			for _, i := range order[:n] {
				b = append(b, part[i])
			}
			order = order[n:]
			if err := f.in.ProcessBatch(context.Background(), "edge-1", b); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, ep := range []struct {
		epoch uint32
		n     int
	}{{5, 20}, {6, 20}} {
		got, _ := f.st.Records(context.Background(), "edge-1", ep.epoch, 1, 100)
		if len(got) != ep.n {
			t.Fatalf("epoch %d: %d records, want %d", ep.epoch, len(got), ep.n)
		}
		for i, r := range got {
			if r.Record.Seq != uint64(i+1) {
				t.Fatalf("epoch %d position %d holds seq %d", ep.epoch, i, r.Record.Seq)
			}
		}
	}
	if f.in.Pending() != 0 || len(f.quarantined()) != 0 {
		t.Fatalf("pending %d quarantined %+v", f.in.Pending(), f.quarantined())
	}
}

// Any payload on an enrolled edge's topic is stored only if it is a valid
// continuation of the chain; nothing panics, and what is not stored is
// quarantined or waits.
func FuzzProcess(f *testing.F) {
	st, err := sqlite.Open(context.Background(), filepath.Join(f.TempDir(), "c.db"))
	if err != nil {
		f.Fatal(err)
	}
	defer st.Close()
	c := storetest.NewChain("edge-f", 1, 1)
	st.EnrollEdge(context.Background(), store.Edge{ID: "edge-f", PublicKey: c.Pub(), EnrolledBy: "fuzz"})
	in := New(Options{Store: st, Client: &fakeClient{}, Log: zerolog.Nop()})
	f.Add(env(c.Next(record.KindEdgeStarted, 1, record.KindUnitVerified, record.UnitVerified{Serial: "1"})))
	f.Add(env(c.Next(record.KindKeyRotated, record.KeyRotated{Old: "x", New: "y"})))
	f.Add([]byte("SLE1\x01\x00\x00"))
	f.Fuzz(func(t *testing.T, payload []byte) {
		before, _, _ := st.Head(context.Background(), "edge-f")
		if err := in.Process(context.Background(), "edge-f", payload); err != nil {
			t.Fatal(err)
		}
		after, _, _ := st.Head(context.Background(), "edge-f")
		if after.Seq < before.Seq {
			t.Fatalf("head went back from %d to %d", before.Seq, after.Seq)
		}
		if after != before {
			stored, err := st.Records(context.Background(), "edge-f", after.Epoch, 1, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			recs := make([]record.Record, len(stored))
			for i := range stored {
				recs[i] = stored[i].Record
			}
			if _, err := record.VerifyRun(c.Pub(), record.Head{}, recs); err != nil {
				t.Fatalf("stored chain does not verify: %v", err)
			}
		}
	})
}

// While the gap before a waiting envelope fills (a backlog drains with
// live records waiting), central asks for no replay.
func TestFillingGapNeedsNoReplay(t *testing.T) {
	f := setup(t)
	now := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	f.in.opt.Now = func() time.Time { return now }
	var envs [][]byte
	for i := 0; i < 8; i++ {
		envs = append(envs, env(f.chain.Next(record.KindEdgeStarted, i)))
	}
	f.process(envs[7]) // live, ahead of the backlog
	for i := 0; i < 7; i++ {
		now = now.Add(f.in.opt.ReplayAfter * 6 / 10)
		f.in.Tick(context.Background())
		f.process(envs[i])
	}
	if f.client.last("replay") != nil {
		t.Fatal("replay requested while the gap was filling")
	}
	if f.count() != 8 || f.in.Pending() != 0 {
		t.Fatalf("stored %d, pending %d", f.count(), f.in.Pending())
	}
}

// A reject that did not reach the PLC raises a critical alert naming the
// unit and where to look; the stored confirmation that it was removed
// clears it. The same record delivered again raises nothing new.
func TestRejectNotDeliveredAlert(t *testing.T) {
	f := setup(t)
	al := alerts.New(alerts.Options{Store: f.st, Log: zerolog.Nop()})
	f.in.opt.Alerts = al
	nd := f.chain.Next(
		record.KindRejectNotDelivered, record.RejectNotDelivered{Batch: "L1", ID: "SN-1", Unit: "(01)09506000134352(21)SN-1", Reason: "grade", Case: "395060000000000030", Detail: "PLC write timed out"},
		record.KindRejectNotDelivered, record.RejectNotDelivered{Batch: "L1", ID: "SN-2", Reason: "unknown_after_restart", Detail: "in flight at a restart"},
	)
	f.process(env(nd))
	f.process(env(nd)) // redelivered by the broker
	active := func() []store.Alert {
		t.Helper()
		list, err := f.st.Alerts(context.Background(), store.AlertFilter{ActiveOnly: true, Code: "reject_not_delivered"})
		if err != nil {
			t.Fatal(err)
		}
		return list
	}
	list := active()
	if len(list) != 2 {
		t.Fatalf("active alerts %+v", list)
	}
	var sn1 store.Alert
	for _, a := range list {
		if strings.Contains(a.Message, "SN-1") {
			sn1 = a
		}
	}
	if sn1.Severity != store.SeverityCritical || sn1.Edge != "edge-1" || sn1.Ref != nd[0].Ref().String() ||
		!strings.Contains(sn1.Message, "(01)09506000134352(21)SN-1 (grade)") || !strings.Contains(sn1.Message, "most likely in case 395060000000000030") {
		t.Fatalf("alert %+v", sn1)
	}
	f.process(env(f.chain.Next(record.KindRejectRemoved, record.RejectRemoved{Batch: "L1", ID: "SN-1", Note: "found, destroyed",
		Signature: &record.Signature{User: "sup", Meaning: "the unit was found and removed"}})))
	if list := active(); len(list) != 1 || !strings.Contains(list[0].Message, "SN-2") {
		t.Fatalf("after SN-1 was confirmed removed: %+v", list)
	}
}
