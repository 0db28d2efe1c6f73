package gs1

//go:generate go run ./internal/gen -in ../../../shared/gs1/gs1-syntax-dictionary.txt -out table_gen.go

// Charset is the character set of a component: 'N' digits, 'X' CSET 82,
// 'Y' CSET 39, 'Z' CSET 64 (base64url).
type Charset byte

// Component is one part of an AI's data field as the GS1 Barcode Syntax
// Dictionary specifies it (e.g. "N13,csum" then "[X..17]" for GDTI).
type Component struct {
	Charset  Charset
	Min, Max int
	Optional bool
	Linters  []Linter
}

// AIDef describes one application identifier. The table (table_gen.go) is
// generated from GS1's Barcode Syntax Dictionary by `go generate`; a test
// regenerates it in memory and fails when the committed table is stale.
type AIDef struct {
	AI         string
	Title      string
	Fixed      bool // pre-defined length: never followed by FNC1 (flag "*")
	DLAttr     bool // permitted as a GS1 Digital Link query data attribute (flag "?")
	Components []Component
	// Req lists the requisite rules (one per req= attribute): each is a set
	// of alternatives; an alternative is a list of AI patterns ("n" matches
	// any digit) that must all be present.
	Req [][][]string
	// Ex lists the AI patterns this AI must not appear with.
	Ex []string
	// DLPKey: a GS1 Digital Link primary key; DLQualifiers are the
	// alternative ordered key-qualifier sequences of the path.
	DLPKey       bool
	DLQualifiers [][]string
	// MinLen and MaxLen bound the whole value (computed from Components).
	MinLen, MaxLen int
}

var table = func() map[string]*AIDef {
	m := make(map[string]*AIDef, len(aiTable))
	for i := range aiTable {
		d := &aiTable[i]
		for _, c := range d.Components {
			if !c.Optional {
				d.MinLen += c.Min
			}
			d.MaxLen += c.Max
		}
		m[d.AI] = d
	}
	return m
}()

// Lookup returns the definition of an AI.
func Lookup(ai string) (AIDef, bool) {
	d, ok := table[ai]
	if !ok {
		return AIDef{}, false
	}
	return *d, true
}

// AIs returns every AI of the table in lexical order.
func AIs() []string {
	out := make([]string, len(aiTable))
	for i := range aiTable {
		out[i] = aiTable[i].AI
	}
	return out
}

// NeedsSeparator reports whether an element with this AI must be followed by
// FNC1 (GS) when it is not last: every AI except those of pre-defined length.
func NeedsSeparator(ai string) bool {
	d, ok := table[ai]
	return !ok || !d.Fixed
}

// lookupPrefix finds the AI at the start of s (AIs are 2 to 4 digits; no AI
// is a prefix of another).
func lookupPrefix(s string) (*AIDef, bool) {
	for n := 2; n <= 4 && n <= len(s); n++ {
		if d, ok := table[s[:n]]; ok {
			return d, true
		}
	}
	return nil, false
}

// matchPattern reports whether ai matches a dictionary pattern such as
// "310n" ("n" is any digit).
func matchPattern(pattern, ai string) bool {
	if len(pattern) != len(ai) {
		return false
	}
	for i := 0; i < len(ai); i++ {
		if pattern[i] != ai[i] && !(pattern[i] == 'n' && ai[i] >= '0' && ai[i] <= '9') {
			return false
		}
	}
	return true
}
