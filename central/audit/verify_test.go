package audit

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	_ "modernc.org/sqlite"

	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/central/store/sqlite"
	"github.com/serialine/serialine/central/store/storetest"
	"github.com/serialine/serialine/sync/record"
)

func TestVerifierFindsAnEditedRow(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "c.db")
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a, b := storetest.NewChain("edge-a", 1, 1), storetest.NewChain("edge-b", 1, 2)
	for _, c := range []*storetest.Chain{a, b} {
		st.EnrollEdge(ctx, store.Edge{ID: c.Edge, PublicKey: c.Pub(), EnrolledBy: "t"})
		if err := st.Append(ctx, c.Edge, record.Head{Epoch: 1}, c.Scenario()); err != nil {
			t.Fatal(err)
		}
	}
	v := New(Options{Store: st, Log: zerolog.Nop(), Page: 5})
	if err := v.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	for _, s := range v.Status() {
		if s.Err != "" || s.OK != 22 || s.Head != 22 || !s.Verified(1, 22) || s.Verified(1, 23) {
			t.Fatalf("status %+v", s)
		}
	}
	// Incremental: new records are verified on the next pass.
	h := a.Head()
	if err := st.Append(ctx, "edge-a", h, a.Next(record.KindEdgeStarted, 1, record.KindEdgeStarted, 2)); err != nil {
		t.Fatal(err)
	}
	v.Pass(ctx)
	if s, _ := v.Chain("edge-a"); s.OK != 24 || s.Err != "" {
		t.Fatalf("after append: %+v", s)
	}
	// Someone edits a stored row of edge-b behind central's back.
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	recs, _ := st.Records(ctx, "edge-b", 1, 10, 1)
	r := recs[0].Record
	r.Body = []byte(strings.Replace(string(r.Body), `"pass":false`, `"pass":true`, 1))
	if _, err := db.Exec(`UPDATE records SET canonical = ? WHERE edge = 'edge-b' AND seq = 10`, r.Canonical()); err != nil {
		t.Fatal(err)
	}
	v2 := New(Options{Store: st, Log: zerolog.Nop()})
	v2.Pass(ctx)
	s, _ := v2.Chain("edge-b")
	if s.Err == "" || s.Verified(1, 1) || !strings.Contains(s.Err, "seq 10") {
		t.Fatalf("edited row not found: %+v", s)
	}
	if s, _ := v2.Chain("edge-a"); s.Err != "" {
		t.Fatalf("edge-a: %+v", s)
	}
}
