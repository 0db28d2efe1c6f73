package main

import (
	"bytes"
	"strings"
	"testing"
)

// `serialine gs1 parse` through the CLI's run function: every input form,
// JSON AI → value, exit 1 naming the AI and rule.
func TestGS1Parse(t *testing.T) {
	const unitJSON = `{"01":"09506000134352","17":"281130","10":"LOT-7","21":"AB12"}`
	cases := []struct {
		args   []string
		stdin  string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"gs1", "parse", `]d201095060001343521728113010LOT-7\x1d21AB12`}, "", 0, unitJSON, ""},
		{[]string{"gs1", "parse", "01095060001343521728113010LOT-7<GS>21AB12"}, "", 0, unitJSON, ""},
		{[]string{"gs1", "parse", "01095060001343521728113010LOT-7\x1d21AB12"}, "", 0, unitJSON, ""},
		{[]string{"gs1", "parse", "(01)09506000134352(17)281130(10)LOT-7(21)AB12"}, "", 0, unitJSON, ""},
		{[]string{"gs1", "parse", "https://id.gs1.org/01/09506000134352/17/x/10/LOT-7/21/AB12"}, "", 1, "", "serialine gs1: (01) Digital Link: key qualifiers (17)/(10)/(21): want a subset in the order (22), (10), (21) or (235)"},
		{[]string{"gs1", "parse", "https://example.com/p/01/09506000134352/10/LOT-7/21/AB12?17=281130"}, "", 0,
			`{"01":"09506000134352","10":"LOT-7","21":"AB12","17":"281130"}`, ""},
		{[]string{"gs1", "parse", "-"}, "]d201095060001343521728113010LOT-7\x1d21AB12\r\n", 0, unitJSON, ""},
		{[]string{"gs1", "parse", "--out", "dl", "(01)09506000134352(17)281130(10)LOT-7(21)AB12"}, "", 0,
			"https://id.gs1.org/01/09506000134352/10/LOT-7/21/AB12?17=281130", ""},
		{[]string{"gs1", "parse", "--out", "dl", "--stem", "https://dl.example.com", "(01)09506000134352"}, "", 0, "https://dl.example.com/01/09506000134352", ""},
		{[]string{"gs1", "parse", "--out", "element", "(01)09506000134352(10)L(21)S"}, "", 0, `010950600013435210L\x1d21S`, ""},
		{[]string{"gs1", "parse", "--out", "bracketed", "https://id.gs1.org/01/09506000134352/21/S?17=281130"}, "", 0, "(01)09506000134352(21)S(17)281130", ""},
		{[]string{"gs1", "parse", "(01)09506000134353"}, "", 1, "", "serialine gs1: (01) check digit: want 2, got 3"},
		{[]string{"gs1", "parse", "(01)09506000134352(17)270229"}, "", 1, "", "serialine gs1: (17) date: day 29 not valid for month 02 of 2027"},
		{[]string{"gs1", "parse", "(21)ABC"}, "", 1, "", "serialine gs1: (21) requisite: needs (01), (03) or (8006)"},
		{[]string{"gs1", "parse", "(01)09506000134352(21)A(235)B"}, "", 1, "", "serialine gs1: (21) exclusion: must not appear with (235)"},
		{[]string{"gs1", "parse", "]d1010950600013435"}, "", 1, "", `serialine gs1: symbology identifier: "]d1" is not a GS1 symbology`},
		{[]string{"gs1", "parse", "--out", "dl", "(400)PO1"}, "", 1, "", "serialine gs1: Digital Link: no primary key"},
		{[]string{"gs1", "parse", "--out", "xml", "(01)09506000134352"}, "", 2, "", `--out "xml"`},
		{[]string{"gs1", "parse"}, "", 2, "", "usage: serialine gs1 parse"},
		{[]string{"gs1"}, "", 2, "", "usage: serialine gs1 parse"},
		{[]string{"gs1", "check", "x"}, "", 2, "", `unknown subcommand "check"`},
		{[]string{"gs1", "ndc", "68462-0188-1"}, "", 0, `{"format":"5-4-1","gtin":"00368462018811","ndc10":"68462-0188-1","ndc11":"68462-0188-01"}`, ""},
		{[]string{"gs1", "ndc", "--format", "5-4-1", "--indicator", "3", "6846201881"}, "", 0, `{"format":"5-4-1","gtin":"30368462018812","ndc10":"68462-0188-1","ndc11":"68462-0188-01"}`, ""},
		{[]string{"gs1", "ndc", "6846201881"}, "", 1, "", "give its format"},
	}
	for _, c := range cases {
		stdin = strings.NewReader(c.stdin)
		var out, errOut bytes.Buffer
		code := run(c.args, &out, &errOut)
		if code != c.code || strings.TrimSpace(out.String()) != c.stdout || !strings.Contains(errOut.String(), c.stderr) {
			t.Errorf("%q: exit %d\nstdout %s\nstderr %s\nwant exit %d stdout %s stderr ~ %s", c.args, code, out.String(), errOut.String(), c.code, c.stdout, c.stderr)
		}
	}
}
