// Package gs1 handles GS1 identifiers and application identifier (AI) data.
//
// The AI table is generated from GS1's Barcode Syntax Dictionary
// (table_gen.go, `go generate`): formats, lengths, FNC1 requirement, the
// dictionary's linters (check digits, check character pairs, dates with day
// 00 where allowed, country and currency codes ...), requisite and exclusive
// AIs and GS1 Digital Link key qualifiers. Parsers accept element strings
// with FNC1 as GS, the bracketed form, scanner output with a symbology
// identifier (]d2, ]C1, ]Q3 ...) and GS1 Digital Link URIs; every parser
// validates what it returns. Errors name the AI and the rule, e.g. "(01)
// check digit: want 3, got 4". Also: SSCCs, NDC-10 to GTIN-14.
//
// It is shared by the edge (what to print, what the camera read) and central
// (trace, EPCIS), so it lives under sync/.
package gs1

import (
	"errors"
	"fmt"
	"strings"
)

// GS is the ASCII group separator that transmits FNC1 after a
// variable-length AI that is not last in the symbol.
const GS = "\x1d"

// SymbologyDataMatrix is the symbology identifier a scanner prefixes to GS1
// DataMatrix data.
const SymbologyDataMatrix = "]d2"

// Element is one AI and its value, e.g. {AI: "01", Value: "09506000134352"}.
type Element struct {
	AI    string
	Value string
}

// Elements is an ordered list of AI elements, as encoded in one symbol.
type Elements []Element

// Get returns the value of the first element with the given AI.
func (es Elements) Get(ai string) (string, bool) {
	for _, e := range es {
		if e.AI == ai {
			return e.Value, true
		}
	}
	return "", false
}

// Bracketed renders the human-readable form: (01)09506000134352(21)ABC.
// A "(" in data is written "\(" (as in GS1's Barcode Syntax Engine), so the
// form parses back unambiguously.
func (es Elements) Bracketed() string {
	var b strings.Builder
	for _, e := range es {
		b.WriteString("(")
		b.WriteString(e.AI)
		b.WriteString(")")
		b.WriteString(strings.ReplaceAll(e.Value, "(", `\(`))
	}
	return b.String()
}

// ElementString renders the data as transmitted by a scanner without the
// symbology identifier: AIs concatenated, with GS after every variable-length
// element that is not last. Pre-defined-length elements need no separator.
func (es Elements) ElementString() string {
	var b strings.Builder
	for i, e := range es {
		b.WriteString(e.AI)
		b.WriteString(e.Value)
		if i < len(es)-1 && NeedsSeparator(e.AI) {
			b.WriteString(GS)
		}
	}
	return b.String()
}

// Equal reports whether two element lists carry the same AIs and values in
// the same order.
func (es Elements) Equal(other Elements) bool {
	if len(es) != len(other) {
		return false
	}
	for i := range es {
		if es[i] != other[i] {
			return false
		}
	}
	return true
}

// CheckDigit computes the GS1 mod-10 check digit for the given digits
// (without the check digit): weights 3,1,3,... from the right.
func CheckDigit(digits string) (byte, error) {
	sum := 0
	n := len(digits)
	if n == 0 {
		return 0, errors.New("no digits")
	}
	for i := 0; i < n; i++ {
		c := digits[n-1-i]
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("non-digit %q at position %d", c, n-i)
		}
		d := int(c - '0')
		if i%2 == 0 {
			d *= 3
		}
		sum += d
	}
	return byte('0' + (10-sum%10)%10), nil
}

// VerifyCheckDigit checks the last digit of s against the digits before it.
func VerifyCheckDigit(s string) error {
	if len(s) < 2 {
		return fmt.Errorf("%w: too short", ErrCheckDigit)
	}
	want, err := CheckDigit(s[:len(s)-1])
	if err != nil {
		return err
	}
	if got := s[len(s)-1]; got != want {
		return fmt.Errorf("%w: want %c, got %c", ErrCheckDigit, want, got)
	}
	return nil
}

// SSCC builds an 18-digit SSCC from the extension digit, the GS1 company
// prefix and a serial reference, computing the check digit. The serial
// reference must fit in the 16 - len(prefix) digits left.
func SSCC(extension byte, companyPrefix string, serialRef uint64) (string, error) {
	if extension < '0' || extension > '9' {
		return "", fmt.Errorf("SSCC extension digit %q is not a digit", extension)
	}
	if l := len(companyPrefix); l < 4 || l > 12 || !isDigits(companyPrefix) {
		return "", fmt.Errorf("GS1 company prefix %q: want 4 to 12 digits", companyPrefix)
	}
	width := 16 - len(companyPrefix)
	ref := fmt.Sprintf("%0*d", width, serialRef)
	if len(ref) > width {
		return "", fmt.Errorf("SSCC serial reference %d does not fit in %d digits", serialRef, width)
	}
	body := string(extension) + companyPrefix + ref
	cd, err := CheckDigit(body)
	if err != nil {
		return "", err
	}
	return body + string(cd), nil
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
