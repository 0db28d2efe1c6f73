package gs1

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/serialine/serialine/sync/gs1/internal/dict"
)

// dictionaryPath is GS1's Barcode Syntax Dictionary beside the repository
// (../shared in CI), or SERIALINE_GS1_DICTIONARY.
func dictionaryPath(t *testing.T) string {
	t.Helper()
	p := os.Getenv("SERIALINE_GS1_DICTIONARY")
	if p == "" {
		p = filepath.Join("..", "..", "..", "shared", "gs1", "gs1-syntax-dictionary.txt")
	}
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("SERIALINE_REQUIRE_TOOLS") == "1" {
			t.Fatalf("GS1 syntax dictionary required (SERIALINE_REQUIRE_TOOLS=1) but not found at %s: %v", p, err)
		}
		t.Skipf("GS1 syntax dictionary not found at %s (set SERIALINE_GS1_DICTIONARY, or keep ../shared beside the repository): cannot check table_gen.go", p)
	}
	return p
}

// The committed table is exactly what the generator makes of the
// dictionary: regenerate in memory and compare.
func TestTableIsGeneratedFromDictionary(t *testing.T) {
	f, err := os.Open(dictionaryPath(t))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d, err := dict.Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	want, err := dict.Render(d)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("table_gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("table_gen.go is stale against the dictionary (release %s): run `go generate ./sync/gs1`", d.Release)
	}
	if len(d.Entries) != len(aiTable) {
		t.Fatalf("%d dictionary entries, %d in the table", len(d.Entries), len(aiTable))
	}
}

// Every linter the generator knows has an implementation here.
func TestEveryLinterImplemented(t *testing.T) {
	byName := map[string]Linter{}
	for l, n := range linterNames {
		byName[n] = l
	}
	for name := range dict.Linters {
		l, ok := byName[name]
		if !ok {
			t.Errorf("linter %s: no Linter constant", name)
			continue
		}
		if e := l.check(""); e != nil && e.rule == "linter" {
			t.Errorf("linter %s: %s", name, e.msg)
		}
	}
	if len(byName) != len(dict.Linters) {
		t.Errorf("%d linters implemented, the generator knows %d", len(byName), len(dict.Linters))
	}
}

// Spot checks of the table against GS1 General Specifications facts.
func TestTableFacts(t *testing.T) {
	for _, c := range []struct {
		ai            string
		fixed, dl     bool
		min, max      int
		key           bool
		firstLinterOK bool
	}{
		{"00", true, true, 18, 18, true, true},
		{"01", true, true, 14, 14, true, true},
		{"10", false, true, 1, 20, false, false},
		{"17", true, true, 6, 6, false, true},
		{"21", false, false, 1, 20, false, false},
		{"253", false, true, 13, 30, true, true},
		{"3103", true, true, 6, 6, false, false},
		{"8006", false, true, 18, 18, true, true},
		{"99", false, true, 1, 90, false, false},
	} {
		d, ok := Lookup(c.ai)
		if !ok {
			t.Errorf("(%s) missing", c.ai)
			continue
		}
		if d.Fixed != c.fixed || d.DLAttr != c.dl || d.MinLen != c.min || d.MaxLen != c.max || d.DLPKey != c.key {
			t.Errorf("(%s): %+v", c.ai, d)
		}
	}
	if d, _ := Lookup("01"); len(d.DLQualifiers) != 2 || len(d.DLQualifiers[0]) != 3 || d.DLQualifiers[0][2] != "21" {
		t.Errorf("(01) qualifiers %v", d.DLQualifiers)
	}
	if d, _ := Lookup("17"); d.Components[0].Linters[0] != LintYYMMD0 {
		t.Errorf("(17) linters %v: want yymmd0 (day 00 allowed)", d.Components[0].Linters)
	}
	if d, _ := Lookup("21"); len(d.Req) != 1 || d.Ex[0] != "235" {
		t.Errorf("(21) req %v ex %v", d.Req, d.Ex)
	}
	if _, ok := Lookup("23"); ok {
		t.Error("(23) is not an AI")
	}
	if !NeedsSeparator("10") || NeedsSeparator("01") || NeedsSeparator("3103") || !NeedsSeparator("8006") {
		t.Error("FNC1 requirement wrong")
	}
}
