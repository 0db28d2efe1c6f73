package record

import (
	"bufio"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// Exported is one record in a JSON-lines export: the readable fields for
// people, and the canonical bytes and signature that verification uses.
// Verification also checks that the readable fields say what the canonical
// bytes say, so neither can be changed alone.
type Exported struct {
	Edge      string          `json:"edge"`
	Epoch     uint32          `json:"epoch"`
	Seq       uint64          `json:"seq"`
	Kind      Kind            `json:"kind"`
	Time      string          `json:"time"`
	Body      json.RawMessage `json:"body"`
	Prev      Hash            `json:"prev"`
	Hash      Hash            `json:"hash"`
	Sig       string          `json:"sig,omitempty"`
	Canonical string          `json:"canonical"` // base64
}

// Export renders a record for a JSON-lines file.
func Export(r *Record) Exported {
	e := Exported{Edge: r.Edge, Epoch: r.Epoch, Seq: r.Seq, Kind: r.Kind, Time: r.Time.UTC().Format(time.RFC3339Nano),
		Body: json.RawMessage(r.Body), Prev: r.Prev, Hash: r.Hash(), Canonical: base64.StdEncoding.EncodeToString(r.Canonical())}
	if len(r.Sig) > 0 {
		e.Sig = base64.StdEncoding.EncodeToString(r.Sig)
	}
	return e
}

// WriteExport writes records as JSON lines.
func WriteExport(w io.Writer, recs []Record) error {
	enc := json.NewEncoder(w)
	for i := range recs {
		if err := enc.Encode(Export(&recs[i])); err != nil {
			return err
		}
	}
	return nil
}

// ReadExport reads a JSON-lines export back into records, checking that the
// readable fields agree with the canonical bytes. Errors name the line.
func ReadExport(r io.Reader) ([]Record, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 4*MaxBody)
	var out []Record
	for n := 1; sc.Scan(); n++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var e Exported
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		raw, err := base64.StdEncoding.DecodeString(e.Canonical)
		if err != nil {
			return nil, fmt.Errorf("line %d (seq %d): canonical: %w", n, e.Seq, err)
		}
		rec, err := Decode(raw)
		if err != nil {
			return nil, fmt.Errorf("line %d (seq %d): %w", n, e.Seq, err)
		}
		if e.Sig != "" {
			if rec.Sig, err = base64.StdEncoding.DecodeString(e.Sig); err != nil {
				return nil, fmt.Errorf("line %d (seq %d): sig: %w", n, e.Seq, err)
			}
		}
		var body any
		if err := json.Unmarshal(e.Body, &body); err != nil {
			return nil, fmt.Errorf("line %d (seq %d): body: %w", n, e.Seq, err)
		}
		var canonBody any
		_ = json.Unmarshal(rec.Body, &canonBody)
		shown, _ := json.Marshal(body)
		real, _ := json.Marshal(canonBody)
		switch {
		case e.Edge != rec.Edge || e.Epoch != rec.Epoch || e.Seq != rec.Seq || e.Kind != rec.Kind || e.Prev != rec.Prev:
			return nil, fmt.Errorf("line %d (seq %d): readable fields differ from the canonical record (seq %d)", n, e.Seq, rec.Seq)
		case e.Time != rec.Time.UTC().Format(time.RFC3339Nano):
			return nil, fmt.Errorf("line %d (seq %d): time %s differs from the canonical record (%s)", n, e.Seq, e.Time, rec.Time.UTC().Format(time.RFC3339Nano))
		case e.Hash != rec.Hash():
			return nil, fmt.Errorf("line %d (seq %d): hash %s is not the hash of the canonical record (%s)", n, e.Seq, e.Hash, rec.Hash())
		case string(shown) != string(real):
			return nil, fmt.Errorf("line %d (seq %d): body differs from the canonical record", n, e.Seq)
		}
		out = append(out, rec)
	}
	return out, sc.Err()
}

// VerifyExport reads an export and verifies it with the edge's public key.
// It returns the number of authenticated records and the first bad record.
func VerifyExport(r io.Reader, pub ed25519.PublicKey) (int, error) {
	recs, err := ReadExport(r)
	if err != nil {
		return 0, err
	}
	if len(recs) == 0 {
		return 0, fmt.Errorf("no records")
	}
	return VerifyRun(pub, Head{}, recs)
}
