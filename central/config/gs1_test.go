package config

import (
	"strings"
	"testing"
)

func TestGS1Section(t *testing.T) {
	good := `gs1:
  company_prefixes: ["9506000", "95060001"]
  gln: "9506000000008"
  name: Demo Pharma
  lines: [{edge: edge-line-1, extension: line1}]
  products:
    - {gtin: "09506000134352", ndc: "12345-678-90", name: Paracetamol 500 mg, dosage_form: TABLET}
`
	c, err := Parse("c.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ digits, want string }{
		{"9506000234350", "9506000"}, {"9506000100000", "95060001"}, {"9507000000000", ""},
	} {
		if got, ok := c.GS1.CompanyPrefix(tc.digits); got != tc.want || ok != (tc.want != "") {
			t.Errorf("company prefix of %s: %q %v, want %q", tc.digits, got, ok, tc.want)
		}
	}
	if p, ok := c.GS1.Product("09506000134352"); !ok || p.NDC != "12345-678-90" {
		t.Fatalf("product: %+v", p)
	}
	if ext, ok := c.GS1.LineExtension("edge-line-1"); !ok || ext != "line1" {
		t.Fatalf("line extension %q", ext)
	}
	bad := map[string]string{
		"gs1: {company_prefixes: [\"950\"]}\n":                    "gs1.company_prefixes[0]: \"950\" is not 4 to 12 digits",
		"gs1: {gln: \"9506000000009\"}\n":                         "gs1.gln: GLN 9506000000009: check digit",
		"gs1: {receiver_gln: \"95060\"}\n":                        "gs1.receiver_gln: \"95060\" is not a 13-digit GLN",
		"gs1: {products: [{gtin: \"09506000134353\"}]}\n":         "gs1.products[0].gtin: 09506000134353: check digit",
		"gs1: {products: [{gtin: \"09506000134352\", ndc: x}]}\n": "gs1.products[0].ndc",
		"gs1: {lines: [{edge: e, extension: \"a.b\"}]}\n":         "gs1.lines[0]",
		"gs1: {company_prefix: [\"9506000\"]}\n":                  "field company_prefix not found",
	}
	for in, want := range bad {
		if _, err := Parse("c.yaml", []byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
}
