package dict

import (
	"strings"
	"testing"
)

func TestParseLines(t *testing.T) {
	d, err := Parse(strings.NewReader(`# Release: 2099-01-01
# comment
01         *?  N14,csum,gcppos2                  ex=255,37 dlpkey=22,10,21|235                    # GTIN
10          ?  X..20                             req=01,02                                        # BATCH/LOT
21             X..20                             req=01+10,03 ex=235                              # SERIAL
22             X..20                                                                              # CPV
235            X..28                                                                              # TPX
3100-3102  *?  N6                                ex=310n                                          # NET WEIGHT (kg)
253         ?  N13,csum,gcppos1 [X..17]          dlpkey                                           # GDTI
8110        ?  X..70,couponcode
`))
	if err != nil {
		t.Fatal(err)
	}
	if d.Release != "2099-01-01" || len(d.Entries) != 10 {
		t.Fatalf("release %q, %d entries", d.Release, len(d.Entries))
	}
	e := d.Entries[0]
	if e.AI != "01" || !e.Fixed || !e.DLAttr || !e.DLPKey || len(e.Qualifiers) != 2 || e.Qualifiers[1][0] != "235" || e.Ex[1] != "37" || e.Components[0].Linters[1] != "gcppos2" {
		t.Fatalf("01: %+v", e)
	}
	var s21, s3101, s253 Entry
	for _, e := range d.Entries {
		switch e.AI {
		case "21":
			s21 = e
		case "3101":
			s3101 = e
		case "253":
			s253 = e
		}
	}
	if len(s21.Req) != 1 || len(s21.Req[0]) != 2 || strings.Join(s21.Req[0][0], "+") != "01+10" || s21.Title != "SERIAL" {
		t.Fatalf("21: %+v", s21)
	}
	if s3101.Ex[0] != "310n" || !s3101.Fixed {
		t.Fatalf("3101: %+v", s3101)
	}
	if len(s253.Components) != 2 || !s253.Components[1].Optional || s253.Components[1].Max != 17 {
		t.Fatalf("253: %+v", s253)
	}
	src, err := Render(d)
	if err != nil || !strings.Contains(string(src), `const DictionaryRelease = "2099-01-01"`) {
		t.Fatalf("render: %v\n%s", err, src)
	}
}

func TestParseErrorsNameTheLine(t *testing.T) {
	for in, want := range map[string]string{
		"01 * N14,csum,nosuch # X": "gs1-syntax-dictionary.txt:1: component \"N14,csum,nosuch\": linter \"nosuch\" is not implemented",
		"\n01 ! N14 # X":           "gs1-syntax-dictionary.txt:2: flag '!' is not known",
		"01 * N14 foo=bar # X":     "gs1-syntax-dictionary.txt:1: AI 01: attribute \"foo=bar\" is not known",
		"01 * N..14 # X":           "flag * (pre-defined length) on a variable-length AI",
		"01 ? [N2] N3 # X":         "a mandatory component follows an optional one",
		"01 ? N..2 N3 # X":         "only the final component may have a variable length",
		"01 ? N2 # X\n01 ? N2 # Y": "gs1-syntax-dictionary.txt:2: AI 01 already defined on line 1",
		"3105-3100 ? N6 # X":       "AI range \"3105-3100\" is empty",
		"01 ? N2 dlpkey=99 # X":    "dlpkey qualifier 99 is not an AI of the dictionary",
		"# only comments":          "no AI entries",
		"01 ? N14 req=01x # X":     "req pattern \"01x\"",
	} {
		_, err := Parse(strings.NewReader(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
}

// Any input parses or fails with an error; what parses renders.
func FuzzParse(f *testing.F) {
	f.Add("01 *? N14,csum,gcppos2 ex=255,37 dlpkey=22,10,21|235 # GTIN\n21 X..20 req=01+10,03 # SERIAL\n10 ? X..20 # LOT\n22 X..20 # CPV\n235 X..28 # TPX\n")
	f.Add("3100-3105 *? N6 req=01,02 ex=310n # NET\n423 ? N3,iso3166 [N3],iso3166 # C\n")
	f.Fuzz(func(t *testing.T, s string) {
		d, err := Parse(strings.NewReader(s))
		if err != nil {
			return
		}
		if _, err := Render(d); err != nil {
			t.Fatalf("parsed but does not render: %v", err)
		}
	})
}
