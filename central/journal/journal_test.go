package journal

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/central/store/sqlite"
	"github.com/serialine/serialine/sync/record"
)

func openStore(t *testing.T, dir string) store.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(dir, "central.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestJournalChainsSignsAndResumes(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := openStore(t, dir)
	opt := Options{Store: st, KeyPath: filepath.Join(dir, "central.key"), Instance: "c1", Log: zerolog.Nop()}
	j, err := Open(ctx, opt)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(opt.KeyPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	for i, a := range []record.UserAction{
		{User: "admin", Action: "edge.enrolled", Target: "edge-1", New: "key A"},
		{User: "qa1", Action: "alert.acknowledged", Target: "7", Reason: "investigated"},
	} {
		got, err := j.Action(ctx, a)
		if err != nil || got.Record.Seq != uint64(i+1) || len(got.Record.Sig) == 0 {
			t.Fatalf("action %d: %+v %v", i, got, err)
		}
	}
	// A restart resumes the same chain.
	j2, err := Open(ctx, opt)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j2.Action(ctx, record.UserAction{User: "admin", Action: "user.created", Target: "op1"}); err != nil {
		t.Fatal(err)
	}
	h := j2.Head()
	recs, err := st.Records(ctx, j2.ID(), h.Epoch, 1, 10)
	if err != nil || len(recs) != 3 {
		t.Fatalf("stored journal: %d records, %v", len(recs), err)
	}
	rs := make([]record.Record, len(recs))
	for i := range recs {
		rs[i] = recs[i].Record
	}
	if n, err := record.VerifyRun(j.PublicKey(), record.Head{}, rs); err != nil || n != 3 {
		t.Fatalf("journal does not verify with central's key: %d %v", n, err)
	}
	if _, err := j.Action(ctx, record.UserAction{Action: "x"}); err == nil {
		t.Fatal("an action without a user was recorded")
	}
}

// Two instances must never write one chain: a stale instance is refused,
// and a replaced key file is refused at start.
func TestJournalRefusesForks(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := openStore(t, dir)
	opt := Options{Store: st, KeyPath: filepath.Join(dir, "central.key"), Instance: "c1", Log: zerolog.Nop(), Now: func() time.Time { return time.Unix(1764000000, 0) }}
	a, err := Open(ctx, opt)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(ctx, opt)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Action(ctx, record.UserAction{User: "u", Action: "one"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Action(ctx, record.UserAction{User: "u", Action: "two"}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second writer of one chain: %v", err)
	}
	if n, _ := st.CountRecords(ctx, a.ID()); n != 1 {
		t.Fatalf("%d records after a refused fork", n)
	}
	other := opt
	other.KeyPath = filepath.Join(dir, "other.key")
	if _, err := Open(ctx, other); err == nil || !strings.Contains(err.Error(), "another key") {
		t.Fatalf("journal opened with a replaced key: %v", err)
	}
}
