package line

import (
	"encoding/json"
	"testing"
)

func TestUnitCodec(t *testing.T) {
	for _, u := range []unit{
		{Batch: "L1", Seq: 1, Status: UnitCommissioned},
		{Batch: "LOT-2026/11", Seq: 1 << 40, Status: UnitGood, Parent: "395060000000000016", Grade: 3.5},
		{Batch: "L1", Seq: 7, Status: UnitDecommissioned, Reason: ReasonGrade, Grade: 1},
		{Batch: "L1", Seq: 8, Status: UnitSample, Reason: "QA"},
	} {
		v, err := u.encode()
		if err != nil {
			t.Fatal(err)
		}
		var got unit
		if err := got.decode(v); err != nil || got != u {
			t.Fatalf("round trip %+v: got %+v, %v", u, got, err)
		}
		// Stores written with the JSON encoding still read.
		j, _ := json.Marshal(u)
		if err := got.decode(j); err != nil || got != u {
			t.Fatalf("JSON %s: got %+v, %v", j, got, err)
		}
	}
	if _, err := (&unit{Status: "lost"}).encode(); err == nil {
		t.Fatal("unknown status encoded")
	}
	good, _ := (&unit{Batch: "L1", Seq: 3, Status: UnitGood}).encode()
	for _, bad := range [][]byte{nil, {0x02}, good[:len(good)-1], append(append([]byte(nil), good...), 0), {0x01, 0x80}} {
		var u unit
		if err := u.decode(bad); err == nil {
			t.Fatalf("corrupt value %x decoded as %+v", bad, u)
		}
	}
}

// FuzzUnitDecode: store bytes never panic the decoder, and what decodes
// re-encodes to the same value.
func FuzzUnitDecode(f *testing.F) {
	v, _ := (&unit{Batch: "L1", Seq: 3, Status: UnitGood, Parent: "395060000000000016", Grade: 4}).encode()
	f.Add(v)
	f.Add([]byte(`{"b":"L1","n":1,"s":"good"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var u unit
		if u.decode(b) != nil || (len(b) > 0 && b[0] == '{') {
			return
		}
		again, err := u.encode()
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", u, err)
		}
		var w unit
		if err := w.decode(again); err != nil || w != u {
			t.Fatalf("re-encode of %+v: %+v %v", u, w, err)
		}
	})
}
