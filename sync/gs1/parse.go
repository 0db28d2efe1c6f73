package gs1

import (
	"fmt"
	"strings"
)

// AIDef describes one application identifier.
// NOTE: this is the minimal starter table; it is to be generated from (or
// checked against) ../shared/gs1/gs1-syntax-dictionary.txt.
type AIDef struct {
	AI        string
	Title     string
	MinLen    int
	MaxLen    int
	Numeric   bool
	Fixed     bool // pre-defined length: no FNC1 separator needed
	CheckSum  bool
	DateYYMMD bool
}

var starterTable = map[string]AIDef{
	"00": {AI: "00", Title: "SSCC", MinLen: 18, MaxLen: 18, Numeric: true, Fixed: true, CheckSum: true},
	"01": {AI: "01", Title: "GTIN", MinLen: 14, MaxLen: 14, Numeric: true, Fixed: true, CheckSum: true},
	"10": {AI: "10", Title: "BATCH/LOT", MinLen: 1, MaxLen: 20},
	"11": {AI: "11", Title: "PROD DATE", MinLen: 6, MaxLen: 6, Numeric: true, Fixed: true, DateYYMMD: true},
	"17": {AI: "17", Title: "USE BY OR EXPIRY", MinLen: 6, MaxLen: 6, Numeric: true, Fixed: true, DateYYMMD: true},
	"21": {AI: "21", Title: "SERIAL", MinLen: 1, MaxLen: 20},
}

// Lookup returns the definition of an AI.
func Lookup(ai string) (AIDef, bool) {
	d, ok := starterTable[ai]
	return d, ok
}

// NeedsSeparator reports whether an element with this AI must be followed by
// FNC1 (GS) when it is not last.
func NeedsSeparator(ai string) bool {
	d, ok := Lookup(ai)
	return !ok || !d.Fixed
}

// lookupPrefix finds the AI at the start of s (AIs are 2 to 4 digits).
func lookupPrefix(s string) (AIDef, bool) {
	for n := 2; n <= 4 && n <= len(s); n++ {
		if d, ok := Lookup(s[:n]); ok {
			return d, true
		}
	}
	return AIDef{}, false
}

// Parse accepts scanner output ("]d2" + element string), a plain element
// string with GS separators, or the bracketed form, and returns the elements.
func Parse(data string) (Elements, error) {
	switch {
	case strings.HasPrefix(data, "("):
		return ParseBracketed(data)
	case strings.HasPrefix(data, "]"):
		if len(data) < 3 {
			return nil, fmt.Errorf("symbology identifier %q is incomplete", data)
		}
		if data[:3] != SymbologyDataMatrix && data[:3] != "]C1" && data[:3] != "]e0" && data[:3] != "]Q3" {
			return nil, fmt.Errorf("symbology identifier %q is not a GS1 symbology", data[:3])
		}
		return ParseElementString(data[3:])
	default:
		return ParseElementString(data)
	}
}

// ParseElementString parses AIs concatenated with GS separators.
func ParseElementString(s string) (Elements, error) {
	if s == "" {
		return nil, fmt.Errorf("empty element string")
	}
	var out Elements
	for len(s) > 0 {
		d, ok := lookupPrefix(s)
		if !ok {
			return nil, fmt.Errorf("unknown AI at %q", truncate(s, 8))
		}
		rest := s[len(d.AI):]
		var val string
		if d.Fixed {
			if len(rest) < d.MaxLen {
				return nil, fmt.Errorf("(%s) length: want %d, got %d", d.AI, d.MaxLen, len(rest))
			}
			val, rest = rest[:d.MaxLen], rest[d.MaxLen:]
			rest = strings.TrimPrefix(rest, GS)
		} else {
			if i := strings.Index(rest, GS); i >= 0 {
				val, rest = rest[:i], rest[i+1:]
			} else {
				val, rest = rest, ""
			}
		}
		if err := validateValue(d, val); err != nil {
			return nil, err
		}
		out = append(out, Element{AI: d.AI, Value: val})
		s = rest
	}
	return out, nil
}

// ParseBracketed parses "(01)...(21)..." form.
func ParseBracketed(s string) (Elements, error) {
	var out Elements
	for len(s) > 0 {
		if s[0] != '(' {
			return nil, fmt.Errorf("expected '(' at %q", truncate(s, 8))
		}
		end := strings.IndexByte(s, ')')
		if end < 0 {
			return nil, fmt.Errorf("unterminated AI at %q", truncate(s, 8))
		}
		ai := s[1:end]
		d, ok := Lookup(ai)
		if !ok {
			return nil, fmt.Errorf("unknown AI (%s)", ai)
		}
		s = s[end+1:]
		// The value runs to the next unescaped "(".
		var val strings.Builder
		for len(s) > 0 && s[0] != '(' {
			if strings.HasPrefix(s, `\(`) {
				val.WriteByte('(')
				s = s[2:]
				continue
			}
			val.WriteByte(s[0])
			s = s[1:]
		}
		if err := validateValue(d, val.String()); err != nil {
			return nil, err
		}
		out = append(out, Element{AI: ai, Value: val.String()})
	}
	return out, nil
}

func validateValue(d AIDef, v string) error {
	if len(v) < d.MinLen || len(v) > d.MaxLen {
		if d.MinLen == d.MaxLen {
			return fmt.Errorf("(%s) length: want %d, got %d", d.AI, d.MaxLen, len(v))
		}
		return fmt.Errorf("(%s) length: want %d..%d, got %d", d.AI, d.MinLen, d.MaxLen, len(v))
	}
	if d.Numeric && !isDigits(v) {
		return fmt.Errorf("(%s) must be numeric", d.AI)
	}
	if !d.Numeric {
		for i := 0; i < len(v); i++ {
			if !IsCSET82(v[i]) {
				return fmt.Errorf("(%s) character %q at position %d is not in CSET 82", d.AI, v[i], i+1)
			}
		}
	}
	if d.CheckSum {
		if err := VerifyCheckDigit(v); err != nil {
			return fmt.Errorf("(%s) %w", d.AI, err)
		}
	}
	if d.DateYYMMD {
		if err := checkYYMMDD(v, true); err != nil {
			return fmt.Errorf("(%s) date: %v", d.AI, err)
		}
	}
	return nil
}

// checkYYMMDD validates a GS1 date: month 01-12, a day that exists in that
// month (leap years included), or day 00 where allowed.
func checkYYMMDD(v string, dayZero bool) error {
	yy := int(v[0]-'0')*10 + int(v[1]-'0')
	mm := int(v[2]-'0')*10 + int(v[3]-'0')
	dd := int(v[4]-'0')*10 + int(v[5]-'0')
	if mm < 1 || mm > 12 {
		return fmt.Errorf("month %02d not valid", mm)
	}
	if dd == 0 {
		if dayZero {
			return nil
		}
		return fmt.Errorf("day 00 not allowed")
	}
	days := [13]int{0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}[mm]
	if mm == 2 && yy%4 == 0 { // 2000-2099: every year divisible by 4 is a leap year
		days = 29
	}
	if dd > days {
		return fmt.Errorf("day %02d not valid for month %02d", dd, mm)
	}
	return nil
}

// IsCSET82 reports whether c belongs to GS1 AI encodable character set 82.
func IsCSET82(c byte) bool {
	switch {
	case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!\"%&'()*+,-./:;<=>?_", c) >= 0
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
