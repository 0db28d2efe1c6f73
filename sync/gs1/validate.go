package gs1

import (
	"errors"
	"fmt"
	"strings"
)

// Error is a GS1 data error naming the AI and the rule that failed, e.g.
// "(01) check digit: want 3, got 4" or "(21) requisite: needs (01), (03) or
// (8006)".
type Error struct {
	AI   string // the AI concerned; empty for structural errors
	Rule string // "check digit", "length", "character set", "date", "requisite", "exclusion", "duplicate", "unknown AI", "syntax", "Digital Link", ...
	Msg  string
}

func (e *Error) Error() string {
	if e.AI == "" {
		return e.Rule + ": " + e.Msg
	}
	return "(" + e.AI + ") " + e.Rule + ": " + e.Msg
}

// Is makes errors.Is(err, ErrCheckDigit) true for check digit failures.
func (e *Error) Is(target error) bool {
	return target == ErrCheckDigit && e.Rule == "check digit"
}

func errf(ai, rule, format string, a ...any) *Error {
	return &Error{AI: ai, Rule: rule, Msg: fmt.Sprintf(format, a...)}
}

// ErrCheckDigit is matched (errors.Is) by check-digit failures.
var ErrCheckDigit = errors.New("check digit")

// IsCSET82 reports whether c belongs to GS1 AI encodable character set 82.
func IsCSET82(c byte) bool { return cset82[c] }

var cset82, cset39, cset64 = func() (a, b, c [256]bool) {
	for i := 0; i < len(cset82Order); i++ {
		a[cset82Order[i]] = true
	}
	for _, ch := range "#-/0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ" {
		b[ch] = true
	}
	for _, ch := range "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz" {
		c[ch] = true
	}
	return
}()

// checkCharset validates s (a component starting at offset off of the value).
func checkCharset(ai string, cs Charset, s string, off int) *Error {
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := false
		var set string
		switch cs {
		case 'N':
			ok, set = c >= '0' && c <= '9', "a digit"
		case 'X':
			ok, set = cset82[c], "in CSET 82"
		case 'Y':
			ok, set = cset39[c], "in CSET 39"
		case 'Z':
			// base64url; "=" only as padding at the end.
			ok, set = cset64[c] || (c == '=' && strings.Trim(s[i:], "=") == "" && len(s)-i <= 2), "in CSET 64"
		}
		if !ok {
			return errf(ai, "character set", "%q at position %d is not %s", c, off+i+1, set)
		}
	}
	return nil
}

// ValidateValue checks one AI value against the dictionary: length, character
// set of each component and the component linters (check digits, dates,
// country codes ...). It does not check associations with other AIs.
func ValidateValue(ai, value string) error {
	d, ok := table[ai]
	if !ok {
		return errf(ai, "unknown AI", "not in the GS1 Barcode Syntax Dictionary (release %s)", DictionaryRelease)
	}
	if err := validateValue(d, value); err != nil {
		return err
	}
	return nil
}

func validateValue(d *AIDef, v string) *Error {
	if len(v) < d.MinLen || len(v) > d.MaxLen {
		if d.MinLen == d.MaxLen {
			return errf(d.AI, "length", "want %d, got %d", d.MaxLen, len(v))
		}
		return errf(d.AI, "length", "want %d..%d, got %d", d.MinLen, d.MaxLen, len(v))
	}
	pos := 0
	for i, c := range d.Components {
		rem := len(v) - pos
		if rem == 0 {
			if c.Optional {
				break
			}
			return errf(d.AI, "length", "component %d missing", i+1)
		}
		n := min(c.Max, rem)
		if n < c.Min {
			return errf(d.AI, "length", "component %d (characters %d..) wants %d, got %d", i+1, pos+1, c.Min, n)
		}
		part := v[pos : pos+n]
		if err := checkCharset(d.AI, c.Charset, part, pos); err != nil {
			return err
		}
		for _, l := range c.Linters {
			if le := l.check(part); le != nil {
				return &Error{AI: d.AI, Rule: le.rule, Msg: le.msg}
			}
		}
		pos += n
	}
	if pos != len(v) {
		return errf(d.AI, "length", "%d characters left after the last component", len(v)-pos)
	}
	return nil
}

// Validate checks every element (value rules as in ValidateValue) and the
// associations between them: the same AI twice with different values,
// requisite AIs (e.g. (21) needs (01)) and mutually exclusive AIs (e.g. (01)
// with (02)). Errors are *Error values naming the AI and rule.
func (es Elements) Validate() error {
	if len(es) == 0 {
		return errf("", "syntax", "no AI elements")
	}
	for _, e := range es {
		if err := ValidateValue(e.AI, e.Value); err != nil {
			return err
		}
	}
	if err := es.checkAssociations(); err != nil {
		return err
	}
	return nil
}

func (es Elements) checkAssociations() *Error {
	present := make(map[string]string, len(es))
	for _, e := range es {
		if v, dup := present[e.AI]; dup && v != e.Value {
			return errf(e.AI, "duplicate", "appears twice with different values %q and %q", v, e.Value)
		}
		present[e.AI] = e.Value
	}
	has := func(pattern string) bool {
		for ai := range present {
			if matchPattern(pattern, ai) {
				return true
			}
		}
		return false
	}
	for _, e := range es {
		d := table[e.AI]
		for _, group := range d.Req {
			ok := false
			for _, alt := range group {
				all := true
				for _, p := range alt {
					if !has(p) {
						all = false
						break
					}
				}
				if all {
					ok = true
					break
				}
			}
			if !ok {
				return errf(e.AI, "requisite", "needs %s", describeAlternatives(group))
			}
		}
		for _, p := range d.Ex {
			for _, o := range es {
				// An AI is not exclusive of itself even if it matches a pattern.
				if o.AI != e.AI && matchPattern(p, o.AI) {
					return errf(e.AI, "exclusion", "must not appear with (%s)", o.AI)
				}
			}
		}
	}
	return nil
}

// describeAlternatives renders [[01 21] [02]] as "(01)+(21) or (02)".
func describeAlternatives(group [][]string) string {
	parts := make([]string, len(group))
	for i, alt := range group {
		a := make([]string, len(alt))
		for j, p := range alt {
			a[j] = "(" + p + ")"
		}
		parts[i] = strings.Join(a, "+")
	}
	switch len(parts) {
	case 1:
		return parts[0]
	case 2:
		return parts[0] + " or " + parts[1]
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " or " + parts[len(parts)-1]
}
