package export

import (
	"archive/zip"
	"bytes"
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/serialine/serialine/central/config"
	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/central/store/sqlite"
	"github.com/serialine/serialine/central/store/storetest"
	"github.com/serialine/serialine/central/store/storetest/backends"
	"github.com/serialine/serialine/sync/record"
)

type fixture struct {
	line, journal *storetest.Chain
}

func load(t *testing.T, st store.Store) fixture {
	t.Helper()
	ctx := context.Background()
	f := fixture{line: storetest.NewChain("edge-1", 1, 61), journal: storetest.NewChain(store.JournalPrefix+"c1", 1, 62)}
	for _, ch := range []*storetest.Chain{f.line, f.journal} {
		if err := st.EnrollEdge(ctx, store.Edge{ID: ch.Edge, PublicKey: ch.Pub(), EnrolledBy: "t"}); err != nil {
			t.Fatal(err)
		}
	}
	recs := f.line.Scenario()
	recs = append(recs, f.line.Next(
		record.KindDowntimeStarted, record.DowntimeStarted{ID: "DT-1", Equipment: "printer-1", Class: "print", Critical: true, Source: "driver", Fault: "disconnected", Start: "2026-11-24T08:00:00.010Z", Batch: "L1"},
		record.KindDowntimeEnded, record.DowntimeEnded{ID: "DT-1", Equipment: "printer-1", Class: "print", Critical: true, Source: "driver", Fault: "disconnected", Start: "2026-11-24T08:00:00.010Z", End: "2026-11-24T08:00:00.020Z", DurationS: 0.01, Batch: "L1", Batches: []string{"L1"}},
		record.KindUnitDisposition, record.UnitDisposition{Batch: "L1", GTIN: storetest.ScenarioGTIN, Serial: "S3", Disposition: "destroyed",
			Signature: &record.Signature{User: "sup", Name: "Sue Supervisor", Meaning: "approval", Time: "2026-11-24T08:30:00Z"}},
		record.KindBatchClosed, record.BatchClosed{Batch: "L1", Balanced: true, Reconciliation: record.Reconciliation{Good: 4, Rejected: 1, Aggregated: 4}},
	)...)
	if err := st.Append(ctx, f.line.Edge, record.Head{Epoch: 1}, recs); err != nil {
		t.Fatal(err)
	}
	j := f.journal.Next(
		record.KindUserAction, record.UserAction{User: "qa", Name: "Quinn QA", Action: "batch.reviewed", Target: "L1",
			Signature: &record.Signature{User: "qa", Name: "Quinn QA", Meaning: "review", Time: "2026-11-24T09:00:00Z"}},
		record.KindUserAction, record.UserAction{User: "admin", Action: "user.created", Target: "bob"},
		record.KindShipped, storetest.ShippedScenario("SH-1"),
	)
	for i := range j { // the journal signs every record
		j[i].Record.Sig = record.SignHash(f.journal.Key, j[i].Hash)
	}
	if err := st.Append(ctx, f.journal.Edge, record.Head{Epoch: 1}, j); err != nil {
		t.Fatal(err)
	}
	return f
}

func opts(st store.Store) Options {
	return Options{Store: st, GS1: config.GS1{CompanyPrefixes: []string{"9506000"}, GLN: "9506000000008"}, By: "tester", TempDir: "",
		Now: func() time.Time { return time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC) }}
}

func readZip(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, f := range zr.File {
		r, _ := f.Open()
		out[f.Name], _ = io.ReadAll(r)
		r.Close()
	}
	return out
}

func rows(t *testing.T, b []byte) [][]string {
	t.Helper()
	r, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestBatchExportCSV(t *testing.T) {
	backends.Run(t, func(t *testing.T, st store.Store) {
		f := load(t, st)
		var buf bytes.Buffer
		var last Progress
		o := opts(st)
		o.Progress = func(p Progress) { last = p }
		sum, err := Run(context.Background(), o, Scope{Batch: "L1"}, FormatCSV, &buf)
		if err != nil {
			t.Fatal(err)
		}
		if last.Phase != "done" || last.Done != last.Total || last.Total != 26+5 {
			t.Fatalf("progress %+v (26 records + 5 units)", last)
		}
		files := readZip(t, buf.Bytes())
		want := map[string]int{"batches.csv": 1, "units.csv": 5, "evidence.csv": 10, "containers.csv": 2, "rejects.csv": 3, "equipment.csv": 2,
			"signatures.csv": 3, "shipments.csv": 1, "records.csv": 26 + 2, "verification.csv": 2}
		for name, n := range want {
			if got := len(rows(t, files[name])) - 1; got != n {
				t.Errorf("%s: %d rows, want %d", name, got, n)
			}
		}
		if !sum.Verified() || len(sum.Verification) != 2 {
			t.Fatalf("verification %+v", sum.Verification)
		}
		v := sum.Verification[0]
		if v.Edge != "edge-1" || v.FromSeq != 1 || v.ToSeq != 26 || v.Records != 26 || v.Signatures != 2 {
			t.Fatalf("line verification %+v", v)
		}
		// The journal's user.created action is not about the batch.
		sig := rows(t, files["signatures.csv"])
		if sig[1][5] != "sup" || sig[1][7] != "approval" || sig[2][5] != "qa" || sig[2][10] != "batch.reviewed" || sig[3][4] != "shipped" || sig[3][6] != "Sam Shipper" {
			t.Fatalf("signatures %v", sig)
		}
		u := rows(t, files["units.csv"])
		if u[1][3] != "S1" || u[1][6] != "verified" || u[1][10] != storetest.ScenarioCase || u[3][6] != "decommissioned" || u[3][8] != "destroyed" {
			t.Fatalf("units %v", u)
		}
		c := rows(t, files["containers.csv"])
		if c[2][2] != storetest.ScenarioPallet || c[2][9] != "SH-1" || c[1][4] != storetest.ScenarioPallet {
			t.Fatalf("containers %v", c)
		}
		// The signed records verify offline, as `serialine verify` does.
		for _, ch := range []*storetest.Chain{f.line, f.journal} {
			n, err := record.VerifyExport(bytes.NewReader(files["records-"+ch.Edge+".jsonl"]), ch.Pub())
			if err != nil || n == 0 {
				t.Fatalf("records-%s.jsonl: %d %v", ch.Edge, n, err)
			}
		}
		var man struct {
			Statements []string `json:"verification_statements"`
			Tables     map[string]int64
		}
		if err := json.Unmarshal(files["manifest.json"], &man); err != nil || len(man.Statements) != 2 || !strings.Contains(man.Statements[0], "edge-1 epoch 1 seq 1..26: 26 records, hash chain intact, 2 signatures verify") || man.Tables["units"] != 5 {
			t.Fatalf("manifest %s", files["manifest.json"])
		}
	})
}

func TestJSONAndHTML(t *testing.T) {
	st := backends.SQLite(t)
	load(t, st)
	var buf bytes.Buffer
	if _, err := Run(context.Background(), opts(st), Scope{GTIN: storetest.ScenarioGTIN}, FormatJSON, &buf); err != nil {
		t.Fatal(err)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatalf("JSON export does not parse: %v", err)
	}
	var units []map[string]any
	json.Unmarshal(doc["units"], &units)
	if len(units) != 5 || units[0]["serial"] != "S1" || units[0]["grade"] != 4.0 {
		t.Fatalf("units %v", units)
	}
	var recs []map[string]any
	json.Unmarshal(doc["records"], &recs)
	if len(recs) != 28 || recs[0]["body"].(map[string]any)["batch"] != "L1" {
		t.Fatalf("records %d %v", len(recs), recs[0])
	}
	buf.Reset()
	if _, err := Run(context.Background(), opts(st), Scope{Batch: "L1"}, FormatHTML, &buf); err != nil {
		t.Fatal(err)
	}
	h := buf.String()
	for _, want := range []string{"Audit export: batch L1", "every record verified", "no_read", "Sue Supervisor", "Quinn QA", "SH-1", "printer-1", "print", "Demo Wholesale DC"} {
		if !strings.Contains(h, want) {
			t.Errorf("HTML summary lacks %q", want)
		}
	}
}

func TestDateRangeAndScopeErrors(t *testing.T) {
	st := backends.SQLite(t)
	load(t, st)
	ctx := context.Background()
	t0 := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)
	var buf bytes.Buffer
	sum, err := Run(ctx, opts(st), Scope{From: t0.Add(2 * time.Millisecond), To: t0.Add(7 * time.Millisecond)}, FormatCSV, &buf)
	if err != nil {
		t.Fatal(err)
	}
	files := readZip(t, buf.Bytes())
	// Records at t0+2ms..t0+7ms (seq 3..8) of the line, plus the journal's
	// records in the range (its third, at t0+2ms).
	if n := len(rows(t, files["records.csv"])) - 1; n != 7 {
		t.Fatalf("records in the window: %d", n)
	}
	if !sum.Verified() {
		t.Fatalf("window verification: %+v", sum.Verification)
	}
	for s, want := range map[Scope]string{
		{}:                        "give a batch, a GTIN or a date range",
		{Batch: "nope"}:           "no batch matches batch nope",
		{From: t0, To: t0}:        "is empty",
		{From: t0.Add(time.Hour)}: "no line recorded anything",
	} {
		if _, err := Run(ctx, opts(st), s, FormatCSV, io.Discard); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%+v: %v, want %q", s, err, want)
		}
	}
	if _, err := Run(ctx, opts(st), Scope{Batch: "L1"}, "pdf", io.Discard); err == nil || !strings.Contains(err.Error(), "unknown format") {
		t.Errorf("format: %v", err)
	}
}

// A record altered in the database after it was stored is named exactly.
func TestTamperedRecordIsNamed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.db")
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	load(t, st)
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var canon []byte
	if err := db.QueryRow(`SELECT canonical FROM records WHERE edge = 'edge-1' AND seq = 8`).Scan(&canon); err != nil {
		t.Fatal(err)
	}
	altered := bytes.Replace(canon, []byte(`"grade":4`), []byte(`"grade":3`), 1)
	if bytes.Equal(altered, canon) {
		t.Fatal("nothing to alter")
	}
	if _, err := db.Exec(`UPDATE records SET canonical = ? WHERE edge = 'edge-1' AND seq = 8`, altered); err != nil {
		t.Fatal(err)
	}
	sum, err := Run(context.Background(), opts(st), Scope{Batch: "L1"}, FormatHTML, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	v := sum.Verification[0]
	if v.Verified || !strings.Contains(v.Error, "seq 8") || sum.Verified() {
		t.Fatalf("tampering not named: %+v", v)
	}
}
