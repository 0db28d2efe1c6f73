package gs1

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckDigit(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{"0950600013435", "2"}, {"39506000000000001", "6"}, {"950600000000", "8"}, {"0001234560001", "2"},
	} {
		got, err := CheckDigit(c.body)
		if err != nil || string(got) != c.want {
			t.Errorf("%s: %c %v, want %s", c.body, got, err, c.want)
		}
	}
	if err := VerifyCheckDigit("09506000134353"); !errors.Is(err, ErrCheckDigit) || err.Error() != "check digit: want 2, got 3" {
		t.Fatalf("bad check digit: %v", err)
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
}

func TestParseForms(t *testing.T) {
	want := Elements{{"01", "09506000134352"}, {"17", "281130"}, {"10", "LOT-7"}, {"21", "AB12"}}
	for _, in := range []string{
		"]d201095060001343521728113010LOT-7" + GS + "21AB12",
		"01095060001343521728113010LOT-7" + GS + "21AB12",
		"(01)09506000134352(17)281130(10)LOT-7(21)AB12",
	} {
		got, err := Parse(in)
		if err != nil || !got.Equal(want) {
			t.Errorf("%q: %v %v", in, got, err)
		}
	}
	if got := want.ElementString(); got != "01095060001343521728113010LOT-7"+GS+"21AB12" {
		t.Fatalf("element string %q", got)
	}
}

func TestParseErrors(t *testing.T) {
	cases := map[string]string{
		"(01)09506000134353":        "(01) check digit: want 2, got 3",
		"(17)281301":                "(17) date: month 13 not valid",
		"(17)280230":                "(17) date: day 30 not valid for month 02",
		"(21)AB#1":                  `(21) character '#' at position 3 is not in CSET 82`,
		"(21)123456789012345678901": "(21) length: want 1..20, got 21",
		"]X1010950600013435":        "not a GS1 symbology",
		"99":                        "unknown AI",
		"0109506000":                "(01) length: want 14, got 8",
	}
	for in, want := range cases {
		_, err := Parse(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
	if _, err := Parse("(17)280229"); err != nil {
		t.Errorf("29 Feb 2028 (leap year): %v", err)
	}
	if _, err := Parse("(17)281100"); err != nil {
		t.Errorf("day 00: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add("]d201095060001343521728113010LOT" + GS + "21S1")
	f.Add("(01)09506000134352(21)X")
	f.Fuzz(func(t *testing.T, s string) {
		els, err := Parse(s)
		if err != nil {
			return
		}
		// Whatever parses renders back to forms that parse to the same.
		for _, form := range []string{els.ElementString(), els.Bracketed()} {
			again, err := Parse(form)
			if err != nil || !again.Equal(els) {
				t.Fatalf("%q -> %q: %v %v", s, form, again, err)
			}
		}
	})
}
