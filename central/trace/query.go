// Package trace answers recall questions from central's store: where is
// this unit (case, pallet, shipment, destination), what is in this case or
// pallet, and where did every unit, container and shipment of a lot go,
// with the line's downtime and maintenance history during the batch.
package trace

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/serialine/serialine/sync/gs1"
)

// What a query asks for.
const (
	QueryUnit      = "unit"      // GTIN + serial
	QuerySerial    = "serial"    // a serial without GTIN: every GTIN
	QueryContainer = "container" // SSCC
	QueryLot       = "lot"
)

// Query is a parsed trace request.
type Query struct {
	Kind   string `json:"kind"`
	GTIN   string `json:"gtin,omitempty"`
	Serial string `json:"serial,omitempty"`
	SSCC   string `json:"sscc,omitempty"`
	Lot    string `json:"lot,omitempty"`
	// Input is what was asked, as given.
	Input string `json:"input"`
}

// ParseQuery accepts every form a person or a scanner gives:
//
//	plain serial                      123456789012
//	18-digit SSCC (valid check digit) 395060000000000016
//	bracketed element string          (01)09506000134352(21)123456789012
//	element string with GS            0109506000134352 21123456789012 (GS after the serial when not last)
//	scanner output                    ]d20109506000134352 21123456789012
//	GS1 Digital Link URI              https://id.gs1.org/01/09506000134352/10/L1/21/123456789012
//	lot                               lot:DEMO2611A
//
// "<GS>", "{GS}" and the two characters \x1d stand for the GS separator
// when typed.
func ParseQuery(in string) (Query, error) {
	q := Query{Input: in}
	s := strings.TrimSpace(in)
	s = strings.NewReplacer(`\x1d`, gs1.GS, "<GS>", gs1.GS, "{GS}", gs1.GS).Replace(s)
	if s == "" {
		return q, errors.New("trace: empty query")
	}
	if lot, ok := strings.CutPrefix(s, "lot:"); ok {
		if lot == "" || len(lot) > 20 {
			return q, fmt.Errorf("trace: lot %q: want 1 to 20 characters", lot)
		}
		q.Kind, q.Lot = QueryLot, lot
		return q, nil
	}
	var els gs1.Elements
	var err error
	switch {
	case strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://"):
		els, err = ParseDigitalLink(s)
	case strings.HasPrefix(s, "]") || strings.HasPrefix(s, "(") || strings.Contains(s, gs1.GS):
		els, err = gs1.Parse(s)
	case len(s) == 18 && isDigits(s) && gs1.VerifyCheckDigit(s) == nil:
		q.Kind, q.SSCC = QueryContainer, s
		return q, nil
	case len(s) > 18 && strings.HasPrefix(s, "01") && isDigits(s[:16]):
		// An unbracketed element string typed without separators: a GTIN
		// then (21) serial last, or (10)/(17) before it.
		if e, perr := gs1.Parse(s); perr == nil {
			els = e
		} else {
			q.Kind, q.Serial = QuerySerial, s
			return q, nil
		}
	default:
		for i := 0; i < len(s); i++ {
			if !gs1.IsCSET82(s[i]) {
				return q, fmt.Errorf("trace: %q: character %q at %d is not in GS1 character set 82 (not a serial)", in, s[i], i+1)
			}
		}
		if len(s) > 20 {
			return q, fmt.Errorf("trace: %q is longer than a serial (20) and not GS1 data", in)
		}
		q.Kind, q.Serial = QuerySerial, s
		return q, nil
	}
	if err != nil {
		return q, fmt.Errorf("trace: %q: %w", in, err)
	}
	gtin, hasGTIN := els.Get("01")
	serial, hasSerial := els.Get("21")
	lot, hasLot := els.Get("10")
	if sscc, ok := els.Get("00"); ok {
		q.Kind, q.SSCC = QueryContainer, sscc
		return q, nil
	}
	switch {
	case hasGTIN && hasSerial:
		q.Kind, q.GTIN, q.Serial = QueryUnit, gtin, serial
	case hasLot:
		q.Kind, q.Lot, q.GTIN = QueryLot, lot, gtin
	default:
		return q, fmt.Errorf("trace: %q has neither (01)+(21), (00) nor (10)", in)
	}
	return q, nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// ParseDigitalLink reads the GS1 keys of an uncompressed GS1 Digital Link
// URI: path segments /AI/value after any path prefix (custom domains may
// put one before the primary key), and AIs in the query string.
//
// Kept here until sync/gs1 offers a Digital Link parser; the merge should
// switch to it.
func ParseDigitalLink(uri string) (gs1.Elements, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return nil, fmt.Errorf("digital link: %w", err)
	}
	segs := strings.Split(strings.Trim(u.EscapedPath(), "/"), "/")
	start := -1
	for i := 0; i+1 < len(segs); i++ {
		if segs[i] == "01" || segs[i] == "00" || segs[i] == "414" || segs[i] == "8006" {
			start = i
			break
		}
	}
	if start < 0 {
		return nil, fmt.Errorf("digital link %q: no primary key (01, 00 ...) in the path", uri)
	}
	if (len(segs)-start)%2 != 0 {
		return nil, fmt.Errorf("digital link %q: path AI %s has no value", uri, segs[len(segs)-1])
	}
	var data strings.Builder
	for i := start; i < len(segs); i += 2 {
		v, err := url.PathUnescape(segs[i+1])
		if err != nil {
			return nil, fmt.Errorf("digital link %q: AI %s: %w", uri, segs[i], err)
		}
		data.WriteString("(" + segs[i] + ")" + strings.ReplaceAll(v, "(", `\(`))
	}
	for k, vs := range u.Query() {
		if isDigits(k) && len(k) >= 2 && len(k) <= 4 && len(vs) > 0 {
			if _, ok := gs1.Lookup(k); ok {
				data.WriteString("(" + k + ")" + strings.ReplaceAll(vs[0], "(", `\(`))
			}
		}
	}
	els, err := gs1.ParseBracketed(data.String())
	if err != nil {
		return nil, fmt.Errorf("digital link %q: %w", uri, err)
	}
	return els, nil
}
