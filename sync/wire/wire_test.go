package wire

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/serialine/serialine/sync/record"
)

func recs(n int) []record.Record {
	key := ed25519.NewKeyFromSeed(make([]byte, 32))
	var prev record.Hash
	out := make([]record.Record, n)
	for i := range out {
		r := record.Record{Edge: "e1", Epoch: 1, Seq: uint64(i + 1), Kind: record.KindPacked,
			Time: time.Unix(1764000000, int64(i)).UTC(), Body: []byte(fmt.Sprintf(`{"i":%d}`, i)), Prev: prev}
		prev = r.Hash()
		if i == n-1 {
			r.Sign(key)
		}
		out[i] = r
	}
	return out
}

func TestEnvelopeRoundTrip(t *testing.T) {
	in := recs(10)
	got, err := DecodeEnvelope(EncodeEnvelope(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(in) {
		t.Fatalf("got %d records", len(got))
	}
	for i := range in {
		if got[i].Hash() != in[i].Hash() || string(got[i].Sig) != string(in[i].Sig) {
			t.Fatalf("record %d changed", i)
		}
	}
	// The raw builder used by the outbox produces the same bytes.
	raw := EnvelopeHeader(len(in))
	for i := range in {
		raw = AppendRaw(raw, in[i].Canonical(), in[i].Sig)
	}
	if string(raw) != string(EncodeEnvelope(in)) {
		t.Fatal("AppendRaw envelope differs from EncodeEnvelope")
	}
}

func TestEnvelopeMalformed(t *testing.T) {
	good := EncodeEnvelope(recs(2))
	cases := map[string][]byte{
		"empty":     {},
		"magic":     []byte("XXXX"),
		"zero":      []byte("SLE1\x00"),
		"truncated": good[:len(good)-5],
		"trailing":  append(append([]byte(nil), good...), 1),
		"huge":      append([]byte("SLE1"), 0xff, 0xff, 0xff, 0xff, 0x0f),
	}
	for name, b := range cases {
		if _, err := DecodeEnvelope(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: want ErrMalformed, got %v", name, err)
		}
	}
}

func TestParseTopic(t *testing.T) {
	tests := []struct {
		topic, edge, ch string
		ok              bool
	}{
		{"serialine/v1/edge/line-1/records", "line-1", "records", true},
		{"serialine/v1/edge/line-1/ack", "line-1", "ack", true},
		{"serialine/v1/edge//records", "", "", false},
		{"serialine/v1/edge/a/b/c", "", "", false},
		{"other/v1/edge/a/records", "", "", false},
	}
	for _, tt := range tests {
		e, c, ok := ParseTopic(tt.topic)
		if e != tt.edge || c != tt.ch || ok != tt.ok {
			t.Errorf("%s: got %q %q %v", tt.topic, e, c, ok)
		}
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	f.Add(EncodeEnvelope(recs(3)))
	f.Add([]byte("SLE1\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		rs, err := DecodeEnvelope(b)
		if err != nil {
			return
		}
		if string(EncodeEnvelope(rs)) != string(b) {
			t.Fatal("decoded envelope does not re-encode to the same bytes")
		}
	})
}
