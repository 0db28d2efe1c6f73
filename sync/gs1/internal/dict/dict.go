// Package dict reads GS1's Barcode Syntax Dictionary
// (gs1-syntax-dictionary.txt, Apache-2.0, GS1 AISBL) and renders it as the
// Go AI table of package gs1 (table_gen.go). The generator
// (sync/gs1/internal/gen) and the staleness test of package gs1 share it, so
// the committed table is exactly what this code produces from the
// dictionary.
package dict

import (
	"bufio"
	"bytes"
	"fmt"
	"go/format"
	"io"
	"sort"
	"strconv"
	"strings"
)

// Linters maps every linter name the dictionary may use to the Go constant
// that names its implementation in package gs1. A dictionary naming a
// linter that is not here is refused: implement it in sync/gs1/lint.go and
// list it here.
var Linters = map[string]string{
	"csum":           "LintCsum",
	"csumalpha":      "LintCsumAlpha",
	"gcppos1":        "LintGCPPos1",
	"gcppos2":        "LintGCPPos2",
	"pcenc":          "LintPercentEncoding",
	"iso3166":        "LintISO3166",
	"iso3166999":     "LintISO3166or999",
	"iso3166alpha2":  "LintISO3166Alpha2",
	"iso4217":        "LintISO4217",
	"iso5218":        "LintISO5218",
	"yymmdd":         "LintYYMMDD",
	"yymmd0":         "LintYYMMD0",
	"yyyymmdd":       "LintYYYYMMDD",
	"hhmi":           "LintHHMI",
	"hh":             "LintHH",
	"mi":             "LintMI",
	"ss":             "LintSS",
	"hyphen":         "LintHyphen",
	"yesno":          "LintYesNo",
	"zero":           "LintZero",
	"nonzero":        "LintNonZero",
	"nozeroprefix":   "LintNoZeroPrefix",
	"hasnondigit":    "LintHasNonDigit",
	"pieceoftotal":   "LintPieceOfTotal",
	"posinseqslash":  "LintPosInSeqSlash",
	"winding":        "LintWinding",
	"mediatype":      "LintMediaType",
	"packagetype":    "LintPackageType",
	"importeridx":    "LintImporterIndex",
	"latitude":       "LintLatitude",
	"longitude":      "LintLongitude",
	"iban":           "LintIBAN",
	"couponcode":     "LintCouponCode",
	"couponposoffer": "LintCouponPosOffer",
}

// Component is one part of an AI's data field, e.g. "N13,csum" or "[X..17]".
type Component struct {
	Charset  byte // N numeric, X CSET 82, Y CSET 39, Z CSET 64 (base64url)
	Min, Max int
	Optional bool
	Linters  []string
}

// Entry is one AI of the dictionary (ranges are expanded).
type Entry struct {
	AI         string
	Title      string
	Fixed      bool // flag "*": pre-defined length, no FNC1 separator
	DLAttr     bool // flag "?": permitted as a GS1 Digital Link data attribute
	Components []Component
	Req        [][][]string // each req= attribute: alternatives, each an AND of AI patterns
	Ex         []string     // ex= patterns (all ex= attributes together)
	DLPKey     bool
	Qualifiers [][]string // dlpkey=: alternative ordered qualifier sequences
	Line       int        // line in the dictionary (for messages)
}

// Dictionary is the parsed file.
type Dictionary struct {
	Release string // "# Release: YYYY-MM-DD"
	Entries []Entry
}

// Parse reads the dictionary. Errors name the line.
func Parse(r io.Reader) (*Dictionary, error) {
	d := &Dictionary{}
	sc := bufio.NewScanner(r)
	n := 0
	seen := map[string]int{}
	for sc.Scan() {
		n++
		line := sc.Text()
		if rel, ok := strings.CutPrefix(line, "# Release:"); ok {
			d.Release = strings.TrimSpace(rel)
		}
		if strings.HasPrefix(strings.TrimSpace(line), "#") || strings.TrimSpace(line) == "" {
			continue
		}
		es, err := parseLine(line)
		if err != nil {
			return nil, fmt.Errorf("gs1-syntax-dictionary.txt:%d: %w", n, err)
		}
		for _, e := range es {
			if prev, dup := seen[e.AI]; dup {
				return nil, fmt.Errorf("gs1-syntax-dictionary.txt:%d: AI %s already defined on line %d", n, e.AI, prev)
			}
			seen[e.AI] = n
			e.Line = n
			d.Entries = append(d.Entries, e)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(d.Entries) == 0 {
		return nil, fmt.Errorf("gs1-syntax-dictionary.txt: no AI entries")
	}
	sort.Slice(d.Entries, func(i, j int) bool { return d.Entries[i].AI < d.Entries[j].AI })
	if err := d.check(); err != nil {
		return nil, err
	}
	return d, nil
}

const flagChars = `*!?"$%&'()+,-./:;<=>@[\]^_` + "`{|}~"

func parseLine(line string) ([]Entry, error) {
	body, title, _ := strings.Cut(line, "#")
	toks := strings.Fields(body)
	if len(toks) < 2 {
		return nil, fmt.Errorf("want \"AIs [flags] specification ...\", got %q", line)
	}
	ais, err := expandAIs(toks[0])
	if err != nil {
		return nil, err
	}
	var e Entry
	e.Title = strings.TrimSpace(title)
	i := 1
	if t := toks[i]; strings.Trim(t, flagChars) == "" {
		for _, c := range t {
			switch c {
			case '*':
				e.Fixed = true
			case '?':
				e.DLAttr = true
			default:
				return nil, fmt.Errorf("flag %q is not known (the dictionary defines only \"*\" and \"?\")", c)
			}
		}
		i++
	}
	for ; i < len(toks) && isComponent(toks[i]); i++ {
		c, err := parseComponent(toks[i])
		if err != nil {
			return nil, err
		}
		e.Components = append(e.Components, c)
	}
	if len(e.Components) == 0 {
		return nil, fmt.Errorf("AI %s: no specification", toks[0])
	}
	for ; i < len(toks); i++ {
		if err := parseAttr(&e, toks[i]); err != nil {
			return nil, fmt.Errorf("AI %s: %w", toks[0], err)
		}
	}
	out := make([]Entry, 0, len(ais))
	for _, ai := range ais {
		x := e
		x.AI = ai
		out = append(out, x)
	}
	return out, nil
}

func expandAIs(s string) ([]string, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	if !isDigits(lo) || len(lo) < 2 || len(lo) > 4 {
		return nil, fmt.Errorf("AI %q: want 2 to 4 digits", s)
	}
	if !isRange {
		return []string{lo}, nil
	}
	if !isDigits(hi) || len(hi) != len(lo) {
		return nil, fmt.Errorf("AI range %q: both ends need the same number of digits", s)
	}
	a, _ := strconv.Atoi(lo)
	b, _ := strconv.Atoi(hi)
	if b < a {
		return nil, fmt.Errorf("AI range %q is empty", s)
	}
	var out []string
	for v := a; v <= b; v++ {
		out = append(out, fmt.Sprintf("%0*d", len(lo), v))
	}
	return out, nil
}

func isComponent(t string) bool {
	if t == "" {
		return false
	}
	switch t[0] {
	case 'N', 'X', 'Y', 'Z':
		return len(t) > 1 && (t[1] == '.' || (t[1] >= '0' && t[1] <= '9'))
	case '[':
		return true
	}
	return false
}

func parseComponent(t string) (Component, error) {
	var c Component
	spec := t
	if strings.HasPrefix(t, "[") {
		end := strings.IndexByte(t, ']')
		if end < 0 {
			return c, fmt.Errorf("component %q: unterminated [", t)
		}
		c.Optional = true
		spec = t[1:end] + t[end+1:]
	}
	parts := strings.Split(spec, ",")
	ty := parts[0]
	if len(ty) < 2 {
		return c, fmt.Errorf("component %q: want a type and a length such as N14 or X..20", t)
	}
	c.Charset = ty[0]
	switch c.Charset {
	case 'N', 'X', 'Y', 'Z':
	default:
		return c, fmt.Errorf("component %q: type %q: want N, X, Y or Z", t, c.Charset)
	}
	length := ty[1:]
	if rest, ok := strings.CutPrefix(length, ".."); ok {
		c.Min = 1
		v, err := strconv.Atoi(rest)
		if err != nil || v < 1 {
			return c, fmt.Errorf("component %q: length %q", t, length)
		}
		c.Max = v
	} else if lo, hi, ok := strings.Cut(length, ".."); ok {
		a, err1 := strconv.Atoi(lo)
		b, err2 := strconv.Atoi(hi)
		if err1 != nil || err2 != nil || a < 1 || b < a {
			return c, fmt.Errorf("component %q: length %q", t, length)
		}
		c.Min, c.Max = a, b
	} else {
		v, err := strconv.Atoi(length)
		if err != nil || v < 1 {
			return c, fmt.Errorf("component %q: length %q", t, length)
		}
		c.Min, c.Max = v, v
	}
	for _, l := range parts[1:] {
		if _, ok := Linters[l]; !ok {
			return c, fmt.Errorf("component %q: linter %q is not implemented (add it to sync/gs1/lint.go and to dict.Linters)", t, l)
		}
		c.Linters = append(c.Linters, l)
	}
	return c, nil
}

func isPattern(s string) bool {
	if len(s) < 2 || len(s) > 4 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if (s[i] < '0' || s[i] > '9') && s[i] != 'n' {
			return false
		}
	}
	return true
}

func parseAttr(e *Entry, t string) error {
	key, val, hasVal := strings.Cut(t, "=")
	switch {
	case key == "dlpkey" && !hasVal:
		e.DLPKey = true
	case key == "dlpkey":
		e.DLPKey = true
		for _, alt := range strings.Split(val, "|") {
			q := strings.Split(alt, ",")
			for _, ai := range q {
				if !isDigits(ai) {
					return fmt.Errorf("dlpkey qualifier %q: want an AI", ai)
				}
			}
			e.Qualifiers = append(e.Qualifiers, q)
		}
	case key == "req" && hasVal:
		var group [][]string
		for _, alt := range strings.Split(val, ",") {
			and := strings.Split(alt, "+")
			for _, p := range and {
				if !isPattern(p) {
					return fmt.Errorf("req pattern %q: want an AI, n for any digit", p)
				}
			}
			group = append(group, and)
		}
		e.Req = append(e.Req, group)
	case key == "ex" && hasVal:
		for _, p := range strings.Split(val, ",") {
			if !isPattern(p) {
				return fmt.Errorf("ex pattern %q: want an AI, n for any digit", p)
			}
			e.Ex = append(e.Ex, p)
		}
	default:
		return fmt.Errorf("attribute %q is not known (req=, ex=, dlpkey)", t)
	}
	return nil
}

// check enforces the dictionary's own rules the Go code relies on.
func (d *Dictionary) check() error {
	known := map[string]bool{}
	for _, e := range d.Entries {
		known[e.AI] = true
	}
	for _, e := range d.Entries {
		at := func(f string, a ...any) error {
			return fmt.Errorf("gs1-syntax-dictionary.txt:%d: AI %s: %s", e.Line, e.AI, fmt.Sprintf(f, a...))
		}
		opt := false
		for i, c := range e.Components {
			if c.Min != c.Max && i != len(e.Components)-1 {
				return at("only the final component may have a variable length")
			}
			if opt && !c.Optional {
				return at("a mandatory component follows an optional one")
			}
			opt = opt || c.Optional
		}
		if e.Fixed {
			for _, c := range e.Components {
				if c.Min != c.Max || c.Optional {
					return at("flag * (pre-defined length) on a variable-length AI")
				}
			}
		}
		for _, q := range e.Qualifiers {
			for _, ai := range q {
				if !known[ai] {
					return at("dlpkey qualifier %s is not an AI of the dictionary", ai)
				}
			}
		}
	}
	return nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Render writes the Go source of package gs1's table (gofmt'd).
func Render(d *Dictionary) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("// Code generated by \"go run ./internal/gen\" from gs1-syntax-dictionary.txt; DO NOT EDIT.\n\n")
	fmt.Fprintf(&b, "// Source: GS1 Barcode Syntax Dictionary, release %s. Copyright (c) 2020-2021\n", d.Release)
	b.WriteString("// BWIPP project, (c) 2020-2021 Zint Project, (c) 2021-2026 GS1 AISBL. Licensed\n")
	b.WriteString("// under the Apache License, Version 2.0 (http://www.apache.org/licenses/LICENSE-2.0).\n\n")
	b.WriteString("package gs1\n\n")
	fmt.Fprintf(&b, "// DictionaryRelease is the release of the GS1 Barcode Syntax Dictionary the\n// AI table was generated from.\nconst DictionaryRelease = %q\n\n", d.Release)
	b.WriteString("var aiTable = [...]AIDef{\n")
	for _, e := range d.Entries {
		fmt.Fprintf(&b, "{AI: %q, Title: %q", e.AI, e.Title)
		if e.Fixed {
			b.WriteString(", Fixed: true")
		}
		if e.DLAttr {
			b.WriteString(", DLAttr: true")
		}
		b.WriteString(", Components: []Component{")
		for i, c := range e.Components {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "{Charset: '%c', Min: %d, Max: %d", c.Charset, c.Min, c.Max)
			if c.Optional {
				b.WriteString(", Optional: true")
			}
			if len(c.Linters) > 0 {
				b.WriteString(", Linters: []Linter{")
				for j, l := range c.Linters {
					if j > 0 {
						b.WriteString(", ")
					}
					b.WriteString(Linters[l])
				}
				b.WriteString("}")
			}
			b.WriteString("}")
		}
		b.WriteString("}")
		if len(e.Req) > 0 {
			b.WriteString(", Req: [][][]string{")
			for i, g := range e.Req {
				if i > 0 {
					b.WriteString(", ")
				}
				b.WriteString("{")
				for j, alt := range g {
					if j > 0 {
						b.WriteString(", ")
					}
					b.WriteString(strList(alt))
				}
				b.WriteString("}")
			}
			b.WriteString("}")
		}
		if len(e.Ex) > 0 {
			b.WriteString(", Ex: []string" + strList(e.Ex))
		}
		if e.DLPKey {
			b.WriteString(", DLPKey: true")
		}
		if len(e.Qualifiers) > 0 {
			b.WriteString(", DLQualifiers: [][]string{")
			for i, q := range e.Qualifiers {
				if i > 0 {
					b.WriteString(", ")
				}
				b.WriteString(strList(q))
			}
			b.WriteString("}")
		}
		b.WriteString("},\n")
	}
	b.WriteString("}\n")
	out, err := format.Source(b.Bytes())
	if err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	return out, nil
}

func strList(s []string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = strconv.Quote(v)
	}
	return "{" + strings.Join(q, ", ") + "}"
}
