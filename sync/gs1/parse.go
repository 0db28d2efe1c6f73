package gs1

import (
	"bytes"
	"encoding/json"
	"strings"
)

// Symbology identifiers (ISO/IEC 15424) of GS1 carriers whose data is an
// element string (FNC1 in first position).
var gs1Symbologies = map[string]string{
	"]d2": "GS1 DataMatrix",
	"]C1": "GS1-128",
	"]e0": "GS1 DataBar",
	"]Q3": "GS1 QR Code",
	"]J1": "GS1 DotCode",
}

// Parse accepts any of the forms GS1 data reaches us in and returns the
// validated elements:
//   - a GS1 Digital Link URI (http:// or https://, any domain);
//   - the bracketed form "(01)09506000134352(21)ABC";
//   - scanner output with a symbology identifier, "]d2" + element string
//     (]C1, ]e0, ]Q3, ]J1 likewise; ]E0/]E4 EAN/UPC are read as a GTIN);
//   - a plain element string with GS (0x1D) after variable-length AIs.
//
// Validation covers every value (ValidateValue) and the associations
// between AIs (Elements.Validate). Errors are *Error values such as
// "(01) check digit: want 3, got 4".
func Parse(data string) (Elements, error) {
	switch {
	case hasPrefixFold(data, "https://") || hasPrefixFold(data, "http://"):
		return ParseDigitalLink(data)
	case strings.HasPrefix(data, "("):
		return ParseBracketed(data)
	case strings.HasPrefix(data, "]"):
		return ParseScanner(data)
	default:
		return ParseElementString(data)
	}
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// ParseScanner parses scanner output that starts with a symbology
// identifier.
func ParseScanner(data string) (Elements, error) {
	if len(data) < 3 || data[0] != ']' {
		return nil, errf("", "symbology identifier", "%q: want ]XY followed by the data", truncate(data, 8))
	}
	id, rest := data[:3], data[3:]
	switch id {
	case "]E0": // EAN-13 / UPC-A: 13 digits, a GTIN-13
		if len(rest) != 13 || !isDigits(rest) {
			return nil, errf("", "symbology identifier", "]E0 (EAN-13) wants 13 digits, got %q", truncate(rest, 20))
		}
		return validated(Elements{{AI: "01", Value: "0" + rest}})
	case "]E4": // EAN-8
		if len(rest) != 8 || !isDigits(rest) {
			return nil, errf("", "symbology identifier", "]E4 (EAN-8) wants 8 digits, got %q", truncate(rest, 20))
		}
		return validated(Elements{{AI: "01", Value: "000000" + rest}})
	}
	if _, ok := gs1Symbologies[id]; !ok {
		return nil, errf("", "symbology identifier", "%q is not a GS1 symbology (no FNC1 in first position)", id)
	}
	// Some readers transmit the leading FNC1 as GS as well.
	return ParseElementString(strings.TrimPrefix(rest, GS))
}

// ParseElementString parses AIs concatenated with GS separators, as a
// scanner transmits them after the symbology identifier. An AI of
// pre-defined length takes exactly its length (a GS after it is tolerated);
// any other AI runs to the next GS or the end.
func ParseElementString(s string) (Elements, error) {
	if s == "" {
		return nil, errf("", "syntax", "empty element string")
	}
	var out Elements
	for len(s) > 0 {
		d, ok := lookupPrefix(s)
		if !ok {
			if len(s) >= 2 && isDigits(s[:2]) {
				return nil, errf("", "unknown AI", "data %q does not start with an AI of the GS1 Barcode Syntax Dictionary", truncate(s, 8))
			}
			return nil, errf("", "syntax", "data %q does not start with an AI", truncate(s, 8))
		}
		rest := s[len(d.AI):]
		var val string
		if d.Fixed {
			if len(rest) < d.MaxLen {
				n := len(rest)
				if i := strings.Index(rest, GS); i >= 0 {
					n = i
				}
				return nil, errf(d.AI, "length", "want %d, got %d", d.MaxLen, n)
			}
			val, rest = rest[:d.MaxLen], rest[d.MaxLen:]
			rest = strings.TrimPrefix(rest, GS)
		} else if i := strings.Index(rest, GS); i >= 0 {
			val, rest = rest[:i], rest[i+1:]
			if rest == "" {
				return nil, errf(d.AI, "syntax", "GS separator at the end of the data: no AI follows")
			}
		} else {
			val, rest = rest, ""
		}
		if err := validateValue(d, val); err != nil {
			return nil, err
		}
		out = append(out, Element{AI: d.AI, Value: val})
		s = rest
	}
	if err := out.checkAssociations(); err != nil {
		return nil, err
	}
	return out, nil
}

// ParseBracketed parses "(01)...(21)..." form. A "(" in data is written
// "\(" (as in GS1's Barcode Syntax Engine); Bracketed renders it so.
func ParseBracketed(s string) (Elements, error) {
	if s == "" {
		return nil, errf("", "syntax", "empty bracketed data")
	}
	var out Elements
	for len(s) > 0 {
		if s[0] != '(' {
			return nil, errf("", "syntax", "expected '(' at %q", truncate(s, 8))
		}
		end := strings.IndexByte(s, ')')
		if end < 0 {
			return nil, errf("", "syntax", "unterminated AI at %q", truncate(s, 8))
		}
		ai := s[1:end]
		d, ok := table[ai]
		if !ok {
			if len(ai) >= 2 && len(ai) <= 4 && isDigits(ai) {
				return nil, errf(ai, "unknown AI", "not in the GS1 Barcode Syntax Dictionary (release %s)", DictionaryRelease)
			}
			return nil, errf("", "syntax", "(%s) is not an AI", truncate(ai, 8))
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
	if err := out.checkAssociations(); err != nil {
		return nil, err
	}
	return out, nil
}

func validated(es Elements) (Elements, error) {
	if err := es.Validate(); err != nil {
		return nil, err
	}
	return es, nil
}

// JSONObject renders the elements as a JSON object AI → value in the order
// of the data, e.g. {"01":"09506000134352","21":"ABC"} (an AI present twice
// with the same value appears once).
func (es Elements) JSONObject() []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // CSET 82 has < > &: keep them readable
	str := func(s string) {
		enc.Encode(s) // a string always encodes
		b.Truncate(b.Len() - 1)
	}
	b.WriteByte('{')
	seen := map[string]bool{}
	for _, e := range es {
		if seen[e.AI] {
			continue
		}
		seen[e.AI] = true
		if len(seen) > 1 {
			b.WriteByte(',')
		}
		str(e.AI)
		b.WriteByte(':')
		str(e.Value)
	}
	b.WriteByte('}')
	return b.Bytes()
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
