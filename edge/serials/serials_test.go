package serials

import (
	"crypto/ed25519"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/serialine/serialine/edge/store"
)

const gtin = "09506000134352"

func db(t *testing.T) *store.DB {
	t.Helper()
	d, err := store.Open(filepath.Join(t.TempDir(), "e.db"), store.Options{EdgeID: "e", Key: ed25519.NewKeyFromSeed(make([]byte, 32))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestGenerateReserveTakeRelease(t *testing.T) {
	d := db(t)
	spec := Spec{Length: 12, Alphabet: "numeric"}
	err := d.Update(func(tx *store.Tx) error {
		if err := Generate(tx, gtin, spec, 100); err != nil {
			return err
		}
		if Available(tx, gtin) != 100 {
			t.Fatalf("available %d", Available(tx, gtin))
		}
		got, err := Reserve(tx, gtin, "L1", 30)
		if err != nil {
			return err
		}
		if len(got) != 30 || Available(tx, gtin) != 70 || Reserved(tx, "L1") != 30 {
			t.Fatalf("reserve: %d got, %d available, %d reserved", len(got), Available(tx, gtin), Reserved(tx, "L1"))
		}
		seen := map[string]bool{}
		for i := 0; i < 10; i++ {
			g, s, err := Take(tx, "L1")
			if err != nil {
				return err
			}
			if g != gtin || len(s) != 12 || seen[s] {
				t.Fatalf("take: %q %q", g, s)
			}
			seen[s] = true
			if err := tx.Put(store.Units, key(gtin, s), []byte("{}")); err != nil {
				return err
			}
		}
		back, err := Release(tx, "L1")
		if err != nil {
			return err
		}
		if len(back) != 20 || Available(tx, gtin) != 90 || Reserved(tx, "L1") != 0 {
			t.Fatalf("release: %d back, %d available", len(back), Available(tx, gtin))
		}
		for _, s := range back {
			if seen[s] {
				t.Fatalf("a used serial %s went back to the pool", s)
			}
		}
		if _, _, err := Take(tx, "L1"); !errors.Is(err, ErrExhausted) {
			t.Fatalf("take after release: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestGenerateRespectsGuessBound(t *testing.T) {
	d := db(t)
	err := d.Update(func(tx *store.Tx) error {
		// 6 numeric digits: 10^6 space, at most 100 serials (returned
		// serials are not counted twice).
		if err := Generate(tx, gtin, Spec{Length: 6}, 100); err != nil {
			t.Fatalf("100 of 10^6: %v", err)
		}
		err := Generate(tx, gtin, Spec{Length: 6}, 1)
		if err == nil || !strings.Contains(err.Error(), "1/10,000") {
			t.Fatalf("101 of 10^6 accepted: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestImportValidation(t *testing.T) {
	d := db(t)
	spec := Spec{Length: 8, Alphabet: "alphanumeric"}
	d.Update(func(tx *store.Tx) error {
		tx.Put(store.Units, key(gtin, "USED0001"), []byte("{}"))
		return Import(tx, gtin, spec, []Entry{{"POOL0001", 1}})
	})
	list := []Entry{{"GOOD0001", 1}, {"BAD#0001", 2}, {"SHORT", 3}, {"GOOD0001", 4}, {"USED0001", 5}, {"POOL0001", 6}, {"", 7}, {"GOOD0002", 8}}
	err := d.Update(func(tx *store.Tx) error { return Import(tx, gtin, spec, list) })
	var ie *ImportError
	if !errors.As(err, &ie) {
		t.Fatalf("want ImportError, got %v", err)
	}
	want := []string{
		`line 2: serial "BAD#0001": character '#' at position 4 is not in CSET 82`,
		`line 3: serial "SHORT" has 5 characters, GTIN 09506000134352 uses 8`,
		`line 4: serial "GOOD0001" repeats line 1`,
		`line 5: serial "USED0001" was already used for GTIN 09506000134352`,
		`line 6: serial "POOL0001" is already in the pool of GTIN 09506000134352`,
		`line 7: empty serial`,
	}
	if strings.Join(ie.Problems, "\n") != strings.Join(want, "\n") {
		t.Fatalf("problems:\n%s\nwant:\n%s", strings.Join(ie.Problems, "\n"), strings.Join(want, "\n"))
	}
	d.View(func(tx *store.Tx) error {
		if Available(tx, gtin) != 1 || InPool(tx, gtin, "GOOD0002") {
			t.Fatal("a refused import added serials")
		}
		return nil
	})
}

func TestParseList(t *testing.T) {
	tests := []struct {
		in, format string
		want       []string
	}{
		{"A1\nA2\n", "csv", []string{"A1", "A2"}},
		{"gtin,serial\n0950,S1\n0950,S2\n", "csv", []string{"S1", "S2"}},
		{`["X1","X2"]`, "json", []string{"X1", "X2"}},
		{`{"serials":["Y1"]}`, "json", []string{"Y1"}},
	}
	for _, tt := range tests {
		got, err := ParseList(strings.NewReader(tt.in), tt.format)
		if err != nil {
			t.Fatalf("%q: %v", tt.in, err)
		}
		var s []string
		for _, e := range got {
			s = append(s, e.Serial)
		}
		if strings.Join(s, ",") != strings.Join(tt.want, ",") {
			t.Errorf("%q: got %v want %v", tt.in, s, tt.want)
		}
	}
	if _, err := ParseList(strings.NewReader(`{"x":1}`), "json"); err == nil {
		t.Error("bad JSON shape accepted")
	}
}

func FuzzParseList(f *testing.F) {
	f.Add([]byte("serial\nA\nB\n"), true)
	f.Add([]byte(`["a","b"]`), false)
	f.Fuzz(func(t *testing.T, b []byte, csv bool) {
		format := "json"
		if csv {
			format = "csv"
		}
		list, err := ParseList(strings.NewReader(string(b)), format)
		if err != nil {
			return
		}
		for _, e := range list {
			if e.Line < 1 {
				t.Fatalf("entry without a line number: %+v", e)
			}
		}
	})
}

// BenchmarkGenerateReserve100k: a 100,000-unit batch's serials generated
// (in chunks, one transaction each) and reserved in one transaction.
func BenchmarkGenerateReserve100k(b *testing.B) {
	for b.Loop() {
		d, err := store.Open(filepath.Join(b.TempDir(), "e.db"), store.Options{EdgeID: "e", Key: ed25519.NewKeyFromSeed(make([]byte, 32))})
		if err != nil {
			b.Fatal(err)
		}
		for made := 0; made < 100000; made += ChunkSize {
			if err := d.Update(func(tx *store.Tx) error { return Generate(tx, gtin, Spec{Length: 12}, ChunkSize) }); err != nil {
				b.Fatal(err)
			}
		}
		err = d.Update(func(tx *store.Tx) error {
			_, err := Reserve(tx, gtin, "L1", 100000)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		d.Close()
	}
}
