package gs1

import (
	"fmt"
	"strings"
)

// NDC is a US National Drug Code of 10 digits in one of the FDA's three
// segmentations: labeler-product-package 4-4-2, 5-3-2 or 5-4-1.
type NDC struct {
	Labeler, Product, Package string
}

// NDC formats.
const (
	NDC442 = "4-4-2"
	NDC532 = "5-3-2"
	NDC541 = "5-4-1"
)

var ndcWidths = map[string][3]int{NDC442: {4, 4, 2}, NDC532: {5, 3, 2}, NDC541: {5, 4, 1}}

// ParseNDC parses an NDC-10. A hyphenated NDC carries its format; 10 digits
// without hyphens need the format ("4-4-2", "5-3-2" or "5-4-1") because
// they are ambiguous. A format given with a hyphenated NDC must match it.
func ParseNDC(s, format string) (NDC, error) {
	if format != "" {
		if _, ok := ndcWidths[format]; !ok {
			return NDC{}, fmt.Errorf("NDC format %q: want 4-4-2, 5-3-2 or 5-4-1", format)
		}
	}
	parts := strings.Split(s, "-")
	switch len(parts) {
	case 1:
		if len(s) != 10 || !isDigits(s) {
			return NDC{}, fmt.Errorf("NDC %q: want 10 digits, or the hyphenated 4-4-2, 5-3-2 or 5-4-1 form", s)
		}
		if format == "" {
			return NDC{}, fmt.Errorf("NDC %q has no hyphens: give its format (4-4-2, 5-3-2 or 5-4-1); 10 digits alone are ambiguous", s)
		}
		w := ndcWidths[format]
		return NDC{s[:w[0]], s[w[0] : w[0]+w[1]], s[w[0]+w[1]:]}, nil
	case 3:
		got := fmt.Sprintf("%d-%d-%d", len(parts[0]), len(parts[1]), len(parts[2]))
		if _, ok := ndcWidths[got]; !ok || !isDigits(parts[0]+parts[1]+parts[2]) {
			return NDC{}, fmt.Errorf("NDC %q: want digits in 4-4-2, 5-3-2 or 5-4-1 segments", s)
		}
		if format != "" && format != got {
			return NDC{}, fmt.Errorf("NDC %q is %s, not %s", s, got, format)
		}
		return NDC{parts[0], parts[1], parts[2]}, nil
	}
	return NDC{}, fmt.Errorf("NDC %q: want three hyphenated segments or 10 digits", s)
}

// Format is the NDC's segmentation, e.g. "5-4-1".
func (n NDC) Format() string {
	return fmt.Sprintf("%d-%d-%d", len(n.Labeler), len(n.Product), len(n.Package))
}

// String is the hyphenated NDC-10.
func (n NDC) String() string { return n.Labeler + "-" + n.Product + "-" + n.Package }

// Digits is the NDC-10 without hyphens.
func (n NDC) Digits() string { return n.Labeler + n.Product + n.Package }

// NDC11 is the 11-digit 5-4-2 form used in billing (HIPAA): the short
// segment is padded with a leading zero, e.g. 1234-5678-90 → 01234-5678-90.
func (n NDC) NDC11() string {
	pad := func(s string, w int) string { return strings.Repeat("0", w-len(s)) + s }
	return pad(n.Labeler, 5) + "-" + pad(n.Product, 4) + "-" + pad(n.Package, 2)
}

// GTIN returns the GTIN-14 of the NDC at a packaging indicator digit
// ('0' for the unit of sale, '1'..'8' for higher levels): indicator, "03",
// the 10 NDC digits, check digit (the US drug GTIN: GS1 prefix 03 + NDC).
func (n NDC) GTIN(indicator byte) (string, error) {
	if indicator < '0' || indicator > '8' {
		return "", fmt.Errorf("GTIN indicator digit %q: want 0..8", indicator)
	}
	d := n.Digits()
	if len(d) != 10 || !isDigits(d) {
		return "", fmt.Errorf("NDC %q is not 10 digits", n.String())
	}
	body := string(indicator) + "03" + d
	cd, err := CheckDigit(body)
	if err != nil {
		return "", err
	}
	return body + string(cd), nil
}

// NDCFromGTIN extracts the NDC-10 of a US drug GTIN-14 (indicator, "03",
// NDC, check digit) in the given format.
func NDCFromGTIN(gtin, format string) (NDC, error) {
	if len(gtin) != 14 || !isDigits(gtin) {
		return NDC{}, fmt.Errorf("GTIN %q: want 14 digits", gtin)
	}
	if err := VerifyCheckDigit(gtin); err != nil {
		return NDC{}, fmt.Errorf("GTIN %s: %w", gtin, err)
	}
	if gtin[1:3] != "03" {
		return NDC{}, fmt.Errorf("GTIN %s does not carry an NDC (digits 2-3 are %s, not 03)", gtin, gtin[1:3])
	}
	return ParseNDC(gtin[3:13], format)
}
