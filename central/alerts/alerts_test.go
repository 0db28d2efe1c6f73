package alerts

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/serialine/serialine/central/journal"
	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/central/store/sqlite"
	"github.com/serialine/serialine/sync/record"
)

type recorder struct {
	mu    sync.Mutex
	fails int // fail this many times first
	got   []store.Alert
	calls int
	seen  chan struct{}
}

func (r *recorder) Name() string { return "recorder" }

func (r *recorder) Notify(ctx context.Context, a store.Alert) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.calls <= r.fails {
		return errors.New("receiver down")
	}
	r.got = append(r.got, a)
	r.seen <- struct{}{}
	return nil
}

func setup(t *testing.T) (*Alerter, store.Store, *journal.Journal) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	j, err := journal.Open(ctx, journal.Options{Store: st, KeyPath: filepath.Join(dir, "c.key"), Instance: "t", Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	return New(Options{Store: st, Journal: j, Log: zerolog.Nop()}), st, j
}

func TestRaiseDedupNotifyAck(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, st, j := setup(t)
	reg := prometheus.NewRegistry()
	if err := a.Register(reg); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{fails: 1, seen: make(chan struct{}, 4)}
	a.AddNotifier(rec)
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()

	first, err := a.Raise(ctx, store.Alert{Severity: store.SeverityCritical, Code: "quarantine", Key: "quarantine:e1", Edge: "e1", Message: "bad signature"})
	if err != nil {
		t.Fatal(err)
	}
	again, err := a.Raise(ctx, store.Alert{Code: "quarantine", Key: "quarantine:e1", Edge: "e1", Message: "bad signature again"})
	if err != nil || again.ID != first.ID {
		t.Fatalf("dedup: %+v %v", again, err)
	}
	// The notifier fails once, then gets exactly the one new alert.
	select {
	case <-rec.seen:
	case <-time.After(10 * time.Second):
		t.Fatal("alert not notified")
	}
	rec.mu.Lock()
	if len(rec.got) != 1 || rec.got[0].ID != first.ID || rec.calls != 2 {
		t.Fatalf("notified %+v after %d calls", rec.got, rec.calls)
	}
	rec.mu.Unlock()
	if n := testutil.ToFloat64(a.raised.WithLabelValues("quarantine")); n != 1 {
		t.Fatalf("raised counter %v", n)
	}
	if n := testutil.ToFloat64(a.notified.WithLabelValues("recorder", "error")); n != 1 {
		t.Fatalf("failed notification counter %v", n)
	}

	if err := a.Ack(ctx, first.ID, "qa1", "Quinn QA", "investigated: edge key rotated"); err != nil {
		t.Fatal(err)
	}
	list, _ := st.Alerts(ctx, store.AlertFilter{})
	if list[0].AckedBy != "qa1" || !list[0].Active {
		t.Fatalf("acked alert: %+v", list[0])
	}
	h := j.Head()
	recs, _ := st.Records(ctx, j.ID(), h.Epoch, 1, 10)
	if len(recs) != 1 || recs[0].Record.Kind != record.KindUserAction {
		t.Fatalf("acknowledgement not in the journal: %+v", recs)
	}
	if ok, err := a.Clear(ctx, "quarantine:e1"); !ok || err != nil {
		t.Fatalf("clear: %v %v", ok, err)
	}
	if err := a.Ack(ctx, 4242, "qa1", "", ""); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ack of an unknown alert: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
