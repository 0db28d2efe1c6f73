package gs1

import (
	"strings"
	"testing"
)

func TestNDC(t *testing.T) {
	for _, c := range []struct {
		in, format       string
		ndc11, gtin0, fm string
	}{
		// FDA NDC directory style examples in each segmentation.
		{"0777-3105-02", "", "00777-3105-02", "00307773105025", NDC442},
		{"50580-449-03", "", "50580-0449-03", "00350580449035", NDC532},
		{"68462-0188-1", "", "68462-0188-01", "00368462018811", NDC541},
		{"0777310502", NDC442, "00777-3105-02", "00307773105025", NDC442},
		{"5058044903", NDC532, "50580-0449-03", "00350580449035", NDC532},
		{"6846201881", NDC541, "68462-0188-01", "00368462018811", NDC541},
	} {
		n, err := ParseNDC(c.in, c.format)
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		g, err := n.GTIN('0')
		if err != nil || g != c.gtin0 || n.NDC11() != c.ndc11 || n.Format() != c.fm {
			t.Errorf("%s: GTIN %s %v, NDC-11 %s, format %s", c.in, g, err, n.NDC11(), n.Format())
		}
		if err := VerifyCheckDigit(g); err != nil {
			t.Errorf("%s: %v", g, err)
		}
		if err := ValidateValue("01", g); err != nil {
			t.Errorf("%s: %v", g, err)
		}
		back, err := NDCFromGTIN(g, c.fm)
		if err != nil || back != n {
			t.Errorf("%s back: %v %v", g, back, err)
		}
		// Higher packaging levels keep the NDC with another indicator.
		g3, _ := n.GTIN('3')
		if g3[0] != '3' || g3[1:13] != g[1:13] {
			t.Errorf("indicator 3: %s", g3)
		}
	}
	for in, want := range map[[2]string]string{
		{"0777310502", ""}:       "has no hyphens: give its format",
		{"0777-3105-02", NDC532}: "is 4-4-2, not 5-3-2",
		{"077-3105-02", ""}:      "want digits in 4-4-2, 5-3-2 or 5-4-1 segments",
		{"0777-31O5-02", ""}:     "want digits",
		{"07773105", NDC442}:     "want 10 digits",
		{"0777310502", "5-5-0"}:  "NDC format \"5-5-0\"",
		{"1-2", ""}:              "want three hyphenated segments",
	} {
		if _, err := ParseNDC(in[0], in[1]); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v: %v, want %q", in, err, want)
		}
	}
	n, _ := ParseNDC("0777-3105-02", "")
	if _, err := n.GTIN('9'); err == nil {
		t.Error("indicator 9 accepted")
	}
	if _, err := NDCFromGTIN("09506000134352", NDC442); err == nil || !strings.Contains(err.Error(), "does not carry an NDC") {
		t.Errorf("non-NDC GTIN: %v", err)
	}
	if _, err := NDCFromGTIN("00307773105024", NDC442); err == nil {
		t.Error("bad check digit accepted")
	}
}
