package record

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden record files under testdata/")

// goldenDir holds cross-package fixtures: the golden record set is read by
// this package (encoding stability) and by `serialine verify` tests.
const goldenDir = "../../testdata/records"

// goldenKey is the fixed key of the golden set: Ed25519 signatures are
// deterministic, so the same records always give the same file.
func goldenKey() ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("serialine golden records v1"))
	return ed25519.NewKeyFromSeed(seed[:])
}

// goldenRecords is a short but realistic chain: one record of each common
// kind, as an edge writes them, two group commits (signed checkpoints).
func goldenRecords() []Record {
	base := time.Date(2026, 11, 24, 8, 30, 0, 123456789, time.UTC)
	bodies := []struct {
		kind Kind
		body any
		sign bool
	}{
		{KindEdgeStarted, EdgeStarted{Version: "golden", Line: "line-1", PublicKey: EncodePublicKey(goldenKey().Public().(ed25519.PublicKey))}, false},
		{KindConfigApplied, ConfigApplied{Line: "line-1", Hash: strings.Repeat("ab", 32), File: "line.yaml"}, true},
		{KindBatchStarted, BatchStarted{Batch: "L2611A", Line: "line-1", GTIN: "09506000134352", Product: "Paracetamol 500 mg", Lot: "L2611A", Expiry: "281130", Planned: 2, UnitsPerCase: 2, CasesPerPallet: 1, MinGrade: 1.5, StartedBy: "sup1",
			Signature: &Signature{User: "sup1", Name: "Sam Supervisor", Meaning: "approval", Time: "2026-11-24T08:29:00Z"}}, false},
		{KindUnitCommissioned, UnitCommissioned{Batch: "L2611A", GTIN: "09506000134352", Serial: "100000000001", Lot: "L2611A", Expiry: "281130", Printer: "printer-1", Data: "(01)09506000134352(17)281130(10)L2611A(21)100000000001"}, false},
		{KindUnitVerified, UnitVerified{Batch: "L2611A", GTIN: "09506000134352", Serial: "100000000001", Camera: "camera-1", Data: "(01)09506000134352(17)281130(10)L2611A(21)100000000001", Grade: 3.5, Letter: "A", Params: map[string]float64{"SC": 4, "MOD": 3.5}, Pass: true}, false},
		{KindUnitVerified, UnitVerified{Batch: "L2611A", GTIN: "09506000134352", Serial: "100000000002", Camera: "camera-1", Pass: false, Reason: "no_read"}, false},
		{KindUnitDecommissioned, UnitDecommissioned{Batch: "L2611A", GTIN: "09506000134352", Serial: "100000000002", Reason: "no_read", Disposition: "destroyed"}, false},
		{KindPacked, Packed{Batch: "L2611A", Parent: "395060000000000017", Level: "case", Children: []string{UnitID("09506000134352", "100000000001")}}, false},
		{KindContainerClosed, ContainerClosed{Batch: "L2611A", SSCC: "395060000000000017", Level: "case", Count: 1, Children: []string{UnitID("09506000134352", "100000000001")}, Partial: true,
			Signature: &Signature{User: "sup1", Name: "Sam Supervisor", Meaning: "approval", Time: "2026-11-24T08:31:00Z", Reason: "end of batch"}}, true},
	}
	key := goldenKey()
	var prev Hash
	out := make([]Record, len(bodies))
	for i, b := range bodies {
		raw, err := json.Marshal(b.body)
		if err != nil {
			panic(err)
		}
		r := Record{Edge: "edge-golden", Epoch: 1764000000, Seq: uint64(i + 1), Kind: b.kind, Time: base.Add(time.Duration(i) * time.Millisecond), Body: raw, Prev: prev}
		prev = r.Hash()
		if b.sign {
			r.Sig = SignHash(key, prev)
		}
		out[i] = r
	}
	return out
}

// The canonical encoding (version 1) never changes: records signed years
// ago must still verify. The golden export pins every byte of it.
func TestGoldenRecords(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteExport(&buf, goldenRecords()); err != nil {
		t.Fatal(err)
	}
	pub := EncodePublicKey(goldenKey().Public().(ed25519.PublicKey)) + "\n"
	path := filepath.Join(goldenDir, "golden-v1.jsonl")
	if *update {
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(goldenDir, "golden-v1.pub"), []byte(pub), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("the canonical encoding changed: the export differs from %s (records signed with the old encoding would no longer verify)", path)
	}
	wantPub, _ := os.ReadFile(filepath.Join(goldenDir, "golden-v1.pub"))
	if string(wantPub) != pub {
		t.Fatalf("golden-v1.pub is not the golden key's public key")
	}
	// And the file verifies from its bytes alone.
	n, err := VerifyExport(bytes.NewReader(want), goldenKey().Public().(ed25519.PublicKey))
	if err != nil || n != len(goldenRecords()) {
		t.Fatalf("golden file: %d records verified, err %v", n, err)
	}
}
