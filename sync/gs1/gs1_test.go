package gs1

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestCheckDigit(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{"0950600013435", "2"}, {"39506000000000001", "6"}, {"950600000000", "8"}, {"0001234560001", "2"},
		{"0952012345678", "8"},     // GS1 example GTIN 09520123456788
		{"10614141234567890", "8"}, // GS1 General Specifications example SSCC 106141412345678908
		{"629104150021", "3"},      // GS1 check digit calculator example GTIN-13 6291041500213
	} {
		got, err := CheckDigit(c.body)
		if err != nil || string(got) != c.want {
			t.Errorf("%s: %c %v, want %s", c.body, got, err, c.want)
		}
	}
	if err := VerifyCheckDigit("09506000134353"); !errors.Is(err, ErrCheckDigit) || err.Error() != "check digit: want 2, got 3" {
		t.Fatalf("bad check digit: %v", err)
	}
	if _, err := CheckDigit("12a"); err == nil {
		t.Fatal("non-digit accepted")
	}
}

func TestSSCC(t *testing.T) {
	s, err := SSCC('3', "9506000", 1)
	if err != nil || s != "395060000000000016" {
		t.Fatalf("%s %v", s, err)
	}
	if _, err := SSCC('3', "9506000", 1e9); err == nil {
		t.Fatal("serial reference overflow accepted")
	}
	if _, err := SSCC('x', "9506000", 1); err == nil {
		t.Fatal("bad extension digit accepted")
	}
	if err := ValidateValue("00", s); err != nil {
		t.Fatal(err)
	}
}

// Every form of the same data parses to the same elements.
func TestParseForms(t *testing.T) {
	want := Elements{{"01", "09506000134352"}, {"17", "281130"}, {"10", "LOT-7"}, {"21", "AB12"}}
	for _, in := range []string{
		"]d201095060001343521728113010LOT-7" + GS + "21AB12",
		"]d2" + GS + "01095060001343521728113010LOT-7" + GS + "21AB12", // leading FNC1 as GS
		"]Q301095060001343521728113010LOT-7" + GS + "21AB12",
		"01095060001343521728113010LOT-7" + GS + "21AB12",
		"0109506000134352" + GS + "1728113010LOT-7" + GS + "21AB12", // GS after a fixed-length AI is tolerated
		"(01)09506000134352(17)281130(10)LOT-7(21)AB12",
		"https://id.gs1.org/01/09506000134352/10/LOT-7/21/AB12?17=281130",
		"HTTPS://example.com/shop/products/01/09506000134352/10/LOT%2D7/21/AB12?17=281130&linkType=gs1:pip#frag",
	} {
		got, err := Parse(in)
		if err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		// The Digital Link carries 17 in the query: compare as sets.
		if len(got) != len(want) {
			t.Errorf("%q: %v", in, got)
		}
		for _, e := range want {
			if v, _ := got.Get(e.AI); v != e.Value {
				t.Errorf("%q: (%s) = %q, want %q", in, e.AI, v, e.Value)
			}
		}
	}
	if got := want.ElementString(); got != "01095060001343521728113010LOT-7"+GS+"21AB12" {
		t.Fatalf("element string %q", got)
	}
	if got := want.Bracketed(); got != "(01)09506000134352(17)281130(10)LOT-7(21)AB12" {
		t.Fatalf("bracketed %q", got)
	}
	dl, err := want.DigitalLink("")
	if err != nil || dl != "https://id.gs1.org/01/09506000134352/10/LOT-7/21/AB12?17=281130" {
		t.Fatalf("digital link %q %v", dl, err)
	}
	if got, _ := Parse("]E05012345678900"); !got.Equal(Elements{{"01", "05012345678900"}}) {
		t.Fatalf("]E0 EAN-13: %v", got)
	}
	if got, _ := Parse("]E496385074"); !got.Equal(Elements{{"01", "00000096385074"}}) {
		t.Fatalf("]E4 EAN-8: %v", got)
	}
}

// Errors name the AI and the rule exactly.
func TestParseErrors(t *testing.T) {
	cases := []struct{ in, want string }{
		{"(01)09506000134353", "(01) check digit: want 2, got 3"},
		{"0109506000134353", "(01) check digit: want 2, got 3"},
		{"(01)09506000134352(17)281301", "(17) date: month 13 not valid"},
		{"(01)09506000134352(17)270230", "(17) date: day 30 not valid for month 02 of 2027"},
		{"(01)09506000134352(17)270229", "(17) date: day 29 not valid for month 02 of 2027"},
		{"(01)09506000134352(21)AB#1", `(21) character set: '#' at position 3 is not in CSET 82`},
		{"(01)09506000134352(21)123456789012345678901", "(21) length: want 1..20, got 21"},
		{"(01)0950600013435A", `(01) character set: 'A' at position 14 is not a digit`},
		{"0109506000", "(01) length: want 14, got 8"},
		{"]X1010950600013435", "symbology identifier: \"]X1\" is not a GS1 symbology"},
		{"]d1010950600013435", "symbology identifier: \"]d1\" is not a GS1 symbology"},
		{"]E01234", "symbology identifier: ]E0 (EAN-13) wants 13 digits"},
		{"99", "(99) length: want 1..90, got 0"},
		{"2312", "unknown AI: data \"2312\" does not start with an AI"},
		{"(23)12", "(23) unknown AI: not in the GS1 Barcode Syntax Dictionary"},
		{"(ab)12", "syntax: (ab) is not an AI"},
		{"x01", "syntax: data \"x01\" does not start with an AI"},
		{"(01)09506000134352(21", "syntax: unterminated AI"},
		{"", "syntax: empty element string"},
		{"(21)ABC", "(21) requisite: needs (01), (03) or (8006)"},
		{"(01)09506000134352(7004)1", "(7004) requisite: needs (01)+(10)"},
		{"(01)09506000134352(10)A(21)S(235)X", "(21) exclusion: must not appear with (235)"},
		{"(01)09506000134352(3103)000100(3102)001000", "(3103) exclusion: must not appear with (3102)"},
		{"(01)09506000134352(10)A(10)B", `(10) duplicate: appears twice with different values "A" and "B"`},
		{"0109506000134352" + "10A" + GS, "(10) syntax: GS separator at the end of the data"},
		{"(01)09506000134352(7006)200100", "(7006) date: day 00 not allowed"},
		{"(01)09506000134352(422)999", `(422) country code: "999" is not an ISO 3166-1 numeric country code`},
		{"(8013)1987654Ad4X4bL5ttr2310cXK", "(8013) check character pair: want 2K, got XK"},
		{"http://example.com/foo/bar", "Digital Link: no GS1 key in the path \"/foo/bar\" (compressed GS1 Digital Link URIs are not supported)"},
		{"https://id.gs1.org/01/09506000134352/21/S1/10/L1", "(01) Digital Link: key qualifiers (21)/(10): want a subset in the order (22), (10), (21) or (235)"},
		{"https://id.gs1.org/01/09506000134352?21=S1", "(21) Digital Link: a key qualifier of (01) belongs in the path, not the query"},
		{"https://id.gs1.org/01/09506000134352?8200=x", "(8200) Digital Link: not permitted as a query data attribute"},
		{"https://id.gs1.org/01/09506000134352/10/A%2", `(10) Digital Link: percent-encoding "%2" is not %XX`},
		{"https://id.gs1.org/01/09506000134352/10/A%00", "(10) Digital Link: percent-encoded NUL"},
		{"https://id.gs1.org/01/09506000134352/10/A B", "Digital Link: character ' ' at position 42 is not allowed in a URI"},
		{"https://id.gs1.org/01/09506000134353", "(01) check digit: want 2, got 3"},
		{"https://id.gs1.org/01/09506000134352?17=2811", "(17) length: want 6, got 4"},
		{"https://id.gs1.org/01/09506000134352/10/", "(10) Digital Link: empty value in the path"},
		{"ftp://id.gs1.org/01/09506000134352", "syntax: data \"ftp://id…\" does not start with an AI"},
	}
	for _, c := range cases {
		_, err := Parse(c.in)
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%q:\n got %v\nwant %s", c.in, err, c.want)
			continue
		}
		var ge *Error
		if !errors.As(err, &ge) {
			t.Errorf("%q: %T is not a *gs1.Error", c.in, err)
		}
	}
	if _, err := Parse("(01)09506000134353"); !errors.Is(err, ErrCheckDigit) {
		t.Error("check digit error does not match ErrCheckDigit")
	}
}

// Dates: leap years in the century GS1's two-digit-year rule gives, day 00
// only where the AI's linter allows it.
func TestDates(t *testing.T) {
	defer func(f func() int) { currentYear = f }(currentYear)
	currentYear = func() int { return 2026 }
	for _, c := range []struct {
		ai, v string
		ok    bool
	}{
		{"17", "280229", true}, // 2028 is a leap year
		{"17", "270229", false},
		{"17", "000229", true}, // 2000: divisible by 400
		{"17", "281100", true}, // (17) allows day 00
		{"17", "281200", true},
		{"17", "281232", false},
		{"17", "280431", false},
		{"17", "280430", true},
		{"17", "281300", false},
		{"17", "280000", false},
		{"11", "961231", true},    // 96 → 1996
		{"11", "770229", false},   // 77 → 1977 (51+ years ahead is last century): not leap
		{"11", "760229", true},    // 76 → 2076: leap
		{"7006", "280100", false}, // yymmdd: day 00 not allowed
		{"7006", "280131", true},
		{"7250", "19000229", false}, // 1900 is not a leap year
		{"7250", "20000229", true},
		{"7250", "20240229", true},
		{"7003", "2812312359", true},
		{"7003", "2812312400", false},
		{"7003", "2812312360", false},
		{"4324", "2812000000", true}, // yymmd0 + hhmi
	} {
		err := ValidateValue(c.ai, c.v)
		if (err == nil) != c.ok {
			t.Errorf("(%s)%s: %v, want ok=%v", c.ai, c.v, err, c.ok)
		}
	}
	// GS1 General Specifications §7.12: the century follows the current year.
	for _, c := range []struct{ now, yy, want int }{
		{2026, 26, 2026}, {2026, 76, 2076}, {2026, 77, 1977}, {2026, 0, 2000},
		{2080, 29, 2129}, {2080, 30, 2130}, {2080, 31, 2031}, {2080, 99, 2099}, {2099, 48, 2148},
	} {
		currentYear = func() int { return c.now }
		if got := FullYear(c.yy); got != c.want {
			t.Errorf("in %d, YY %02d = %d, want %d", c.now, c.yy, got, c.want)
		}
	}
	currentYear = func() int { return 2080 }
	if err := ValidateValue("11", "000229"); err == nil {
		t.Error("in 2080, 00 is 2100, not a leap year: 29 February accepted")
	}
}

// Each linter, through an AI that uses it (values only, no associations).
func TestLinters(t *testing.T) {
	for _, c := range []struct {
		ai, v, err string
	}{
		{"00", "106141412345678908", ""},
		{"8013", "1987654Ad4X4bL5ttr2310c2K", ""}, // GS1 General Specifications GMN example
		{"8013", "12345_ABCDEFGHIJKLMCP", ""},
		{"8013", "1987654Ad4X4bL5ttr2310c2I", "(8013) check character pair: 'I' at position 25 is not in CSET 32"},
		{"8014", "1234567890123CP", "(8014) check character pair: want WV, got CP"},
		{"8014", "950600100462", "(8014) non-digit: \"950600100462\" needs at least one character that is not a digit"},
		{"8014", "12345678901234567890123NT", ""},
		{"8004", "1234ABC", ""},
		{"8004", "12A4", "(8004) company prefix"},
		{"4300", "ACME%20Corp", ""},
		{"4300", "ACME%2GCorp", `(4300) percent-encoding: "%2G" at position 5 is not %XX`},
		{"422", "276", ""},
		{"7030", "999ABC", ""},
		{"7030", "998ABC", "(7030) country code"},
		{"4307", "DE", ""},
		{"4307", "XX", `(4307) country code: "XX" is not an ISO 3166-1 alpha-2 country code`},
		{"3911", "978123", ""},
		{"3911", "000123", "(3911) currency code"},
		{"7252", "9", ""},
		{"7252", "3", "(7252) sex code"},
		{"8008", "28113023", ""},
		{"8008", "2811302460", "(8008) time: hour 24 not valid"},
		{"8008", "2811302360", "(8008) time: minute 60 not valid"},
		{"8008", "281130235960", "(8008) time: second 60 not valid"},
		{"4330", "001234-", ""},
		{"4330", "001234#", "(4330) character set"},
		{"4330", "001234+", `(4330) hyphen: "+": want only -`},
		{"4330", "001234A", "(4330) hyphen"},
		{"4321", "1", ""},
		{"4321", "2", `(4321) flag: "2": want 0 or 1`},
		{"8003", "01234567890128ABC", ""},
		{"8003", "11234567890128ABC", "(8003) zero"},
		{"8001", "00100005000191", ""},
		{"8001", "00000005000191", "(8001) non-zero"},
		{"8001", "00100005000131", "(8001) winding direction"},
		{"8011", "120", ""},
		{"8011", "0120", "(8011) zero prefix"},
		{"8006", "095060001343520102", ""},
		{"8006", "095060001343520002", "(8006) piece of total: piece number 00 is zero"},
		{"8006", "095060001343520100", "(8006) piece of total: total 00 is zero"},
		{"7258", "1/3", ""},
		{"7258", "4/3", "(7258) position in sequence"},
		{"7258", "0/3", "(7258) position in sequence"},
		{"7241", "10", ""},
		{"7241", "50", "(7241) media type"},
		{"7041", "PX", ""},
		{"7041", "QQQ", "(7041) package type"},
		{"7040", "1A2_", ""},
		{"7040", "1A2.", "(7040) importer index"},
		{"4309", "02790858483015297971", ""},
		{"4309", "18000000013015297971", "(4309) latitude"},
		{"4309", "02790858483600000001", "(4309) longitude"},
		{"8007", "GB82WEST12345698765432", ""},
		{"8007", "GB83WEST12345698765432", "(8007) IBAN: check digits 83 do not verify"},
		{"8007", "XX82WEST12345698765432", "(8007) IBAN"},
		{"8010", "9506000ABC#-/1", ""},
		{"8010", "ABC#-/123", "(8010) company prefix"},
		{"8010", "abc", "(8010) character set: 'a' at position 1 is not in CSET 39"},
		{"8030", "abc-_XYZ0==", ""},
		{"8030", "ab=c", "(8030) character set: '=' at position 3 is not in CSET 64"},
		{"423", "276250", ""},
		{"423", "2762", "(423) length: component 2 (characters 4..) wants 3, got 1"},
		{"253", "950600013435", "(253) length: want 13..30, got 12"},
		{"253", "9506000134352", ""},
		{"8110", "106141416543213500110000310123196000", ""}, // structure not checked (documented)
	} {
		err := ValidateValue(c.ai, c.v)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("(%s)%s: %v", c.ai, c.v, err)
		case c.err != "" && (err == nil || !strings.HasPrefix(err.Error(), c.err)):
			t.Errorf("(%s)%s: %v, want %s", c.ai, c.v, err, c.err)
		}
	}
}

// Identical duplicates are fine; an AI does not exclude itself.
func TestAssociations(t *testing.T) {
	for _, in := range []string{
		"(01)09506000134352(10)A(10)A",
		"(01)09506000134352(3103)000100(3103)000100",
		"(01)09506000134352(7004)1(10)L",
		"(00)106141412345678908(37)12(02)09506000134352",
		"(8010)9506000ABC123(8011)1",
	} {
		if _, err := Parse(in); err != nil {
			t.Errorf("%s: %v", in, err)
		}
	}
	els := Elements{{"21", "S"}}
	if err := els.Validate(); err == nil || err.Error() != "(21) requisite: needs (01), (03) or (8006)" {
		t.Errorf("Validate: %v", err)
	}
	if err := (Elements{}).Validate(); err == nil {
		t.Error("no elements validated")
	}
}

func TestJSONObject(t *testing.T) {
	els, err := Parse("(01)09506000134352(17)281130(10)L\"<&>1(21)S1(10)L\"<&>1")
	if err != nil {
		t.Fatal(err)
	}
	if got := string(els.JSONObject()); got != `{"01":"09506000134352","17":"281130","10":"L\"<&>1","21":"S1"}` {
		t.Fatalf("%s", got)
	}
}

func TestDigitalLinkBuild(t *testing.T) {
	for _, c := range []struct {
		els  Elements
		stem string
		want string
	}{
		{Elements{{"01", "09506000134352"}, {"21", "S/1%2"}, {"10", "L&1"}, {"17", "281130"}, {"3103", "000195"}}, "",
			"https://id.gs1.org/01/09506000134352/10/L%261/21/S%2F1%252?17=281130&3103=000195"},
		{Elements{{"00", "106141412345678908"}, {"02", "09506000134352"}, {"37", "12"}}, "https://example.com/dl/",
			"https://example.com/dl/00/106141412345678908?02=09506000134352&37=12"},
		{Elements{{"414", "9506000000008"}, {"254", "EXT1"}}, "", "https://id.gs1.org/414/9506000000008/254/EXT1"},
		{Elements{{"01", "09506000134352"}, {"235", "TPX1"}}, "", "https://id.gs1.org/01/09506000134352/235/TPX1"},
	} {
		if err := c.els.Validate(); err != nil {
			t.Fatalf("%v: %v", c.els, err)
		}
		got, err := c.els.DigitalLink(c.stem)
		if err != nil || got != c.want {
			t.Errorf("%v:\n got %s %v\nwant %s", c.els, got, err, c.want)
			continue
		}
		back, err := ParseDigitalLink(got)
		if err != nil || len(back) != len(c.els) {
			t.Errorf("%s parses back to %v %v", got, back, err)
		}
	}
	for els, want := range map[string]string{
		"(10)A(01)09506000134352(8200)https://x":        "(8200) Digital Link: cannot be carried with key (01)",
		"(02)09506000134352(37)5(00)106141412345678908": "", // key (00) found after data attributes
	} {
		e, err := Parse(els)
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.DigitalLink("")
		if (want == "") != (err == nil) || (err != nil && !strings.HasPrefix(err.Error(), want)) {
			t.Errorf("%s: %v, want %q", els, err, want)
		}
	}
	if _, err := (Elements{{"400", "PO-1"}, {"90", "X"}}).DigitalLink(""); err == nil || !strings.Contains(err.Error(), "no primary key") {
		t.Errorf("no key: %v", err)
	}
	if _, err := (Elements{{"01", "09506000134352"}}).DigitalLink("ftp://x"); err == nil {
		t.Error("ftp stem accepted")
	}
	// Zero-suppressed GTINs in the path are padded.
	if els, err := Parse("https://id.gs1.org/01/9506000134352"); err != nil || els[0].Value != "09506000134352" {
		t.Errorf("GTIN-13 in path: %v %v", els, err)
	}
}

// Golden: every line of testdata/parse.txt and what Parse makes of it.
func TestParseGolden(t *testing.T) {
	defer func(f func() int) { currentYear = f }(currentYear)
	currentYear = func() int { return 2026 }
	raw, err := os.ReadFile("testdata/parse.txt")
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		in := strings.ReplaceAll(line, "<GS>", GS)
		els, err := Parse(in)
		if err != nil {
			fmt.Fprintf(&out, "%s\n  error: %v\n", line, err)
			continue
		}
		dl, derr := els.DigitalLink("")
		if derr != nil {
			dl = "error: " + derr.Error()
		}
		fmt.Fprintf(&out, "%s\n  json: %s\n  bracketed: %s\n  dl: %s\n", line, els.JSONObject(), els.Bracketed(), dl)
	}
	if *update {
		os.WriteFile("testdata/parse.golden", []byte(out.String()), 0o644)
	}
	want, _ := os.ReadFile("testdata/parse.golden")
	if out.String() != string(want) {
		t.Fatalf("differs from testdata/parse.golden (go test ./sync/gs1 -run Golden -update):\n%s", out.String())
	}
}

// roundTrip checks that valid elements render to every form and parse back.
func roundTrip(t *testing.T, in string, els Elements) {
	t.Helper()
	for _, form := range []string{els.ElementString(), els.Bracketed(), "]d2" + els.ElementString(), "]C1" + els.ElementString()} {
		again, err := Parse(form)
		if err != nil || !again.Equal(els) {
			t.Fatalf("%q -> %q: %v %v", in, form, again, err)
		}
	}
	if dl, err := els.DigitalLink(""); err == nil {
		back, err := ParseDigitalLink(dl)
		if err != nil {
			t.Fatalf("%q -> %s does not parse: %v", in, dl, err)
		}
		dl2, err := back.DigitalLink("")
		if err != nil || dl2 != dl {
			t.Fatalf("%q -> %s -> %s %v", in, dl, dl2, err)
		}
	}
}

var fuzzSeeds = []string{
	"01095060001343521728113010LOT-7" + GS + "21AB12",
	"(01)09506000134352(21)X",
	"(01)09506000134352(17)281100(10)L\\((21)S",
	"(00)106141412345678908(37)12(02)09506000134352",
	"(8013)1987654Ad4X4bL5ttr2310c2K",
	"(01)09506000134352(3103)000195(3922)0299(99)XYZ",
	"01095060001343521100011010(",
}

func FuzzParseElementString(f *testing.F) {
	for _, s := range fuzzSeeds {
		if e, err := Parse(s); err == nil {
			f.Add(e.ElementString())
		}
	}
	f.Add("0109506000134352" + GS + "10A")
	f.Fuzz(func(t *testing.T, s string) {
		els, err := ParseElementString(s)
		if err != nil {
			var ge *Error
			if !errors.As(err, &ge) {
				t.Fatalf("%q: error %T", s, err)
			}
			return
		}
		roundTrip(t, s, els)
	})
}

func FuzzParseBracketed(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		els, err := ParseBracketed(s)
		if err != nil {
			return
		}
		roundTrip(t, s, els)
	})
}

func FuzzParseScanner(f *testing.F) {
	for _, s := range fuzzSeeds {
		if e, err := Parse(s); err == nil {
			f.Add("]d2" + e.ElementString())
		}
	}
	f.Add("]E05012345678900")
	f.Add("]Q3" + GS + "0109506000134352")
	f.Fuzz(func(t *testing.T, s string) {
		els, err := ParseScanner(s)
		if err != nil {
			return
		}
		roundTrip(t, s, els)
	})
}

func FuzzParseDigitalLink(f *testing.F) {
	f.Add("https://id.gs1.org/01/09506000134352/10/LOT-7/21/AB12?17=281130")
	f.Add("https://example.com/a/b/01/09506000134352/22/X/10/%28L%29/21/S%2F1?17=281100&linkType=x#f")
	f.Add("http://e.x/414/9506000000008/254/E?3103=000195")
	f.Add("https://id.gs1.org/00/106141412345678908?02=09506000134352&37=12")
	f.Fuzz(func(t *testing.T, s string) {
		els, err := ParseDigitalLink(s)
		if err != nil {
			return
		}
		if err := els.Validate(); err != nil {
			t.Fatalf("%q parsed to invalid %v: %v", s, els, err)
		}
		roundTrip(t, s, els)
	})
}

var benchUnit = "]d2010950600013435217281130101A2B3C4D" + GS + "21K7Q9X2M4P8R1"

func BenchmarkParseScanner(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(benchUnit); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseDigitalLink(b *testing.B) {
	dl := "https://id.gs1.org/01/09506000134352/10/1A2B3C4D/21/K7Q9X2M4P8R1?17=281130"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(dl); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRender(b *testing.B) {
	els, _ := Parse(benchUnit)
	b.ReportAllocs()
	for b.Loop() {
		_ = els.ElementString()
		if _, err := els.DigitalLink(""); err != nil {
			b.Fatal(err)
		}
	}
}
