package gs1

import (
	"strings"
)

// CanonicalDLStem is the domain of canonical GS1 Digital Link URIs.
const CanonicalDLStem = "https://id.gs1.org"

// ParseDigitalLink parses an uncompressed GS1 Digital Link URI, e.g.
// https://example.com/any/prefix/01/09506000134352/10/LOT1/21/S1?17=281130.
//
// Any domain and path prefix are accepted; the GS1 part of the path is found
// from the right: /AI/value pairs back to a primary key (dlpkey in the
// dictionary). Key qualifiers must follow the key in the dictionary's order
// (01 takes 22, 10, 21 in that order, or 235). Numeric query parameters are
// data attributes (AIs the dictionary permits there); other parameters
// (linkType, context ...) and the fragment are ignored. Values are
// percent-decoded ("+" is a space in the query only). A GTIN-8, -12 or -13
// in the path is zero-padded to 14 digits. The result is validated like
// every other form.
//
// Compressed GS1 Digital Link URIs are not supported: their path carries no
// /AI/value pairs and is refused as having no GS1 key.
func ParseDigitalLink(uri string) (Elements, error) {
	fail := func(format string, a ...any) (Elements, error) {
		return nil, errf("", "Digital Link", format, a...)
	}
	var rest string
	switch {
	case hasPrefixFold(uri, "https://"):
		rest = uri[8:]
	case hasPrefixFold(uri, "http://"):
		rest = uri[7:]
	default:
		return fail("%q: want an http:// or https:// URI", truncate(uri, 16))
	}
	for i := 0; i < len(rest); i++ {
		if !uriChar(rest[i]) {
			return fail("character %q at position %d is not allowed in a URI", rest[i], len(uri)-len(rest)+i+1)
		}
	}
	if i := strings.IndexByte(rest, '#'); i >= 0 {
		rest = rest[:i]
	}
	path, query, _ := strings.Cut(rest, "?")
	domain, path, ok := strings.Cut(path, "/")
	if domain == "" || !ok {
		return fail("no domain and path")
	}
	if strings.ContainsAny(domain, "_~?#@!$&'()*+,;=%") {
		return fail("domain %q has characters a host name cannot have", domain)
	}
	segs := strings.Split(path, "/")
	if n := len(segs); n > 1 && n%2 == 1 && segs[n-1] == "" {
		segs = segs[:n-1] // tolerate a trailing slash after a value
	}
	// Walk /AI/value pairs back from the end to a primary key.
	root := -1
	for j := len(segs) - 2; j >= 0; j -= 2 {
		d, ok := table[segs[j]]
		if !ok {
			break
		}
		if d.DLPKey {
			root = j
			break
		}
	}
	if root < 0 {
		return fail("no GS1 key in the path %q (compressed GS1 Digital Link URIs are not supported)", truncate("/"+path, 40))
	}
	var out Elements
	var pathAIs []string
	for j := root; j < len(segs); j += 2 {
		ai := segs[j]
		if segs[j+1] == "" {
			return nil, errf(ai, "Digital Link", "empty value in the path")
		}
		v, err := percentDecode(ai, segs[j+1], false)
		if err != nil {
			return nil, err
		}
		if ai == "01" && (len(v) == 8 || len(v) == 12 || len(v) == 13) && isDigits(v) {
			v = strings.Repeat("0", 14-len(v)) + v
		}
		out = append(out, Element{AI: ai, Value: v})
		pathAIs = append(pathAIs, ai)
	}
	key := table[pathAIs[0]]
	if !qualifiersInOrder(key, pathAIs[1:]) {
		return nil, errf(key.AI, "Digital Link", "key qualifiers %s: %s", bracketList(pathAIs[1:]), qualifierRule(key))
	}
	if query != "" {
		for _, p := range strings.Split(query, "&") {
			if p == "" {
				continue
			}
			k, v, _ := strings.Cut(p, "=")
			if !isDigits(k) {
				continue // not a GS1 data attribute (linkType, context ...)
			}
			d, ok := table[k]
			if !ok {
				return nil, errf(k, "unknown AI", "query parameter is not an AI of the GS1 Barcode Syntax Dictionary (release %s)", DictionaryRelease)
			}
			if isQualifierOf(key, k) {
				return nil, errf(k, "Digital Link", "a key qualifier of (%s) belongs in the path, not the query", key.AI)
			}
			if !d.DLAttr {
				return nil, errf(k, "Digital Link", "not permitted as a query data attribute")
			}
			if v == "" {
				return nil, errf(k, "Digital Link", "empty value in the query")
			}
			dv, err := percentDecode(k, v, true)
			if err != nil {
				return nil, err
			}
			out = append(out, Element{AI: k, Value: dv})
		}
	}
	return validated(out)
}

// DigitalLink builds the GS1 Digital Link URI of the elements on a stem
// (CanonicalDLStem if empty): the first primary key and its qualifiers in
// the dictionary's order in the path, the other elements as query data
// attributes in their order, e.g.
// https://id.gs1.org/01/09506000134352/10/LOT1/21/S1?17=281130.
func (es Elements) DigitalLink(stem string) (string, error) {
	if err := es.Validate(); err != nil {
		return "", err
	}
	if stem == "" {
		stem = CanonicalDLStem
	}
	stem = strings.TrimRight(stem, "/")
	if !hasPrefixFold(stem, "https://") && !hasPrefixFold(stem, "http://") {
		return "", errf("", "Digital Link", "stem %q: want http:// or https://", stem)
	}
	ki := -1
	for i, e := range es {
		if table[e.AI].DLPKey {
			ki = i
			break
		}
	}
	if ki < 0 {
		return "", errf("", "Digital Link", "no primary key (such as (01) or (00)) among %s", bracketList(aisOf(es)))
	}
	key := table[es[ki].AI]
	// The qualifier sequence that carries the most of the present AIs.
	var quals []string
	best := -1
	for _, alt := range key.DLQualifiers {
		n := 0
		for _, q := range alt {
			if _, ok := es.Get(q); ok {
				n++
			}
		}
		if n > best {
			best, quals = n, alt
		}
	}
	var b strings.Builder
	b.WriteString(stem)
	used := map[int]bool{ki: true}
	carried := map[Element]bool{es[ki]: true}
	writeSeg := func(ai, v string) {
		b.WriteByte('/')
		b.WriteString(ai)
		b.WriteByte('/')
		b.WriteString(percentEncode(v, false))
	}
	writeSeg(key.AI, es[ki].Value)
	for _, q := range quals {
		for i, e := range es {
			if e.AI == q && !used[i] {
				writeSeg(q, e.Value)
				used[i], carried[e] = true, true
				break
			}
		}
	}
	sep := byte('?')
	for i, e := range es {
		if used[i] {
			continue
		}
		if carried[e] {
			continue // the same AI and value again
		}
		carried[e] = true
		if !table[e.AI].DLAttr {
			return "", errf(e.AI, "Digital Link", "cannot be carried with key (%s): neither one of its qualifiers %s nor a permitted data attribute", key.AI, qualifierRule(key))
		}
		b.WriteByte(sep)
		sep = '&'
		b.WriteString(e.AI)
		b.WriteByte('=')
		b.WriteString(percentEncode(e.Value, true))
	}
	return b.String(), nil
}

// qualifiersInOrder reports whether qs is an ordered subsequence of one of
// the key's qualifier alternatives.
func qualifiersInOrder(key *AIDef, qs []string) bool {
	if len(qs) == 0 {
		return true
	}
	for _, alt := range key.DLQualifiers {
		i := 0
		for _, q := range alt {
			if i < len(qs) && qs[i] == q {
				i++
			}
		}
		if i == len(qs) {
			return true
		}
	}
	return false
}

func isQualifierOf(key *AIDef, ai string) bool {
	for _, alt := range key.DLQualifiers {
		for _, q := range alt {
			if q == ai {
				return true
			}
		}
	}
	return false
}

func qualifierRule(key *AIDef) string {
	if len(key.DLQualifiers) == 0 {
		return "the key takes no qualifiers"
	}
	alts := make([]string, len(key.DLQualifiers))
	for i, alt := range key.DLQualifiers {
		alts[i] = strings.Join(bracketSlice(alt), ", ")
	}
	return "want a subset in the order " + strings.Join(alts, " or ")
}

func bracketSlice(ais []string) []string {
	out := make([]string, len(ais))
	for i, a := range ais {
		out[i] = "(" + a + ")"
	}
	return out
}

func bracketList(ais []string) string {
	if len(ais) == 0 {
		return "none"
	}
	return strings.Join(bracketSlice(ais), "/")
}

func aisOf(es Elements) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.AI
	}
	return out
}

// uriChar: the characters RFC 3986 allows in a URI, "%" included.
func uriChar(c byte) bool {
	return isAlnum(c) || strings.IndexByte("-._~:/?#[]@!$&'()*+,;=%", c) >= 0
}

func percentDecode(ai, s string, query bool) (string, error) {
	if !strings.ContainsAny(s, "%+") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return "", errf(ai, "Digital Link", "percent-encoding %q is not %%XX", s[i:min(i+3, len(s))])
			}
			v := unhex(s[i+1])<<4 | unhex(s[i+2])
			if v == 0 {
				return "", errf(ai, "Digital Link", "percent-encoded NUL")
			}
			b.WriteByte(v)
			i += 2
		case c == '+' && query:
			b.WriteByte(' ')
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// percentEncode escapes everything but RFC 3986 unreserved characters.
func percentEncode(s string, query bool) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case isAlnum(c) || c == '-' || c == '.' || c == '_' || c == '~':
			b.WriteByte(c)
		case c == ' ' && query:
			b.WriteByte('+')
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}
