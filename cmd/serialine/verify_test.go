package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/serialine/serialine/sync/record"
)

func writeChain(t *testing.T, n int) (string, ed25519.PrivateKey, []record.Record) {
	t.Helper()
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	var prev record.Hash
	recs := make([]record.Record, n)
	for i := range recs {
		r := record.Record{Edge: "e1", Epoch: 1, Seq: uint64(i + 1), Kind: record.KindUnitVerified, Time: time.Unix(1764000000+int64(i), 0).UTC(),
			Body: []byte(fmt.Sprintf(`{"serial":"S%d","pass":true}`, i)), Prev: prev}
		prev = r.Hash()
		if (i+1)%4 == 0 || i == n-1 {
			r.Sign(key)
		}
		recs[i] = r
	}
	path := filepath.Join(t.TempDir(), "records.jsonl")
	var buf bytes.Buffer
	if err := record.WriteExport(&buf, recs); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(path, buf.Bytes(), 0o644)
	return path, key, recs
}

func TestVerifyCommand(t *testing.T) {
	path, key, _ := writeChain(t, 10)
	pub := record.EncodePublicKey(key.Public().(ed25519.PublicKey))
	var out, errOut bytes.Buffer
	if code := run([]string{"verify", "--key", pub, path}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "10 records, chain and signatures verify") {
		t.Fatalf("exit %d: %s %s", code, out.String(), errOut.String())
	}
	other := record.EncodePublicKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32)).Public().(ed25519.PublicKey))
	if code := run([]string{"verify", "--key", other, path}, &out, &errOut); code != 1 {
		t.Fatal("verified with another edge's key")
	}
}

// A changed byte in the canonical bytes of record 6 is reported as record 6.
func TestVerifyNamesTheAlteredRecord(t *testing.T) {
	path, key, _ := writeChain(t, 10)
	raw, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	var e record.Exported
	json.Unmarshal([]byte(lines[5]), &e)
	canon, _ := base64.StdEncoding.DecodeString(e.Canonical)
	canon[bytes.Index(canon, []byte(`"S5"`))+2] ^= 0x01 // a byte of the body: "S5" -> "S4"
	r, err := record.Decode(canon)
	if err != nil {
		t.Fatal(err)
	}
	r.Sig = nil
	// Rewrite the line consistently (readable fields follow the bytes), as
	// a forger who edits the export would.
	b, _ := json.Marshal(record.Export(&r))
	lines[5] = string(b)
	os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	var out, errOut bytes.Buffer
	code := run([]string{"verify", "--key", record.EncodePublicKey(key.Public().(ed25519.PublicKey)), path}, &out, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), "seq 6:") {
		t.Fatalf("exit %d, %s", code, errOut.String())
	}
	// Editing only the readable body is caught as well.
	path2, key2, _ := writeChain(t, 5)
	raw2, _ := os.ReadFile(path2)
	s := strings.Replace(string(raw2), `"serial":"S2"`, `"serial":"S9"`, 1)
	os.WriteFile(path2, []byte(s), 0o644)
	errOut.Reset()
	code = run([]string{"verify", "--key", record.EncodePublicKey(key2.Public().(ed25519.PublicKey)), path2}, &out, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), "line 3 (seq 3): body differs") {
		t.Fatalf("exit %d, %s", code, errOut.String())
	}
}

// The golden record set under testdata/ (written by sync/record's golden
// test) verifies with its public key file, and a copy with one changed body
// byte fails naming that record.
func TestVerifyGoldenFile(t *testing.T) {
	const file, keyFile = "../../testdata/records/golden-v1.jsonl", "../../testdata/records/golden-v1.pub"
	var out, errOut bytes.Buffer
	if code := run([]string{"verify", "--key-file", keyFile, file}, &out, &errOut); code != 0 {
		t.Fatalf("golden file: exit %d: %s", code, errOut.String())
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	// Change the grade of the verified unit (seq 5) in its canonical bytes.
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	var e record.Exported
	if err := json.Unmarshal([]byte(lines[4]), &e); err != nil {
		t.Fatal(err)
	}
	canon, _ := base64.StdEncoding.DecodeString(e.Canonical)
	canon = bytes.Replace(canon, []byte(`"grade":3.5`), []byte(`"grade":3.9`), 1)
	rec, err := record.Decode(canon)
	if err != nil {
		t.Fatal(err)
	}
	x := record.Export(&rec)
	b, _ := json.Marshal(x)
	lines[4] = string(b)
	bad := filepath.Join(t.TempDir(), "tampered.jsonl")
	os.WriteFile(bad, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	errOut.Reset()
	if code := run([]string{"verify", "--key-file", keyFile, bad}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "seq 5") {
		t.Fatalf("tampered golden file: exit %d: %s", code, errOut.String())
	}
}
