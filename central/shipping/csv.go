package shipping

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/serialine/serialine/sync/record"
)

// CSV columns of a WMS shipment file (header row required, any order).
// Rows with the same non-empty shipment id form one shipment and must
// agree on destination and ship time; a row without one is a shipment of
// its own.
var (
	csvRequired = []string{"sscc", "destination_gln", "destination_name", "shipped_at"}
	csvOptional = []string{"shipment", "reference"}
)

// MaxCSVRows bounds an import.
const MaxCSVRows = 100_000

// ParseCSV reads a WMS shipment file. Errors name the file and line; all
// problems of the file are reported together.
func ParseCSV(r io.Reader, name string) ([]Request, error) {
	cr := csv.NewReader(r)
	cr.TrimLeadingSpace = true
	cr.ReuseRecord = false
	head, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: empty file (want a header row: %s)", name, strings.Join(csvRequired, ","))
	}
	if err != nil {
		return nil, csvErr(name, err)
	}
	col := map[string]int{}
	var probs []Problem
	for i, h := range head {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		known := false
		for _, k := range append(append([]string{}, csvRequired...), csvOptional...) {
			known = known || k == h
		}
		if !known {
			probs = append(probs, Problem{fmt.Sprintf("%s:1", name), fmt.Sprintf("unknown column %q (columns: %s, optional %s)", h, strings.Join(csvRequired, ", "), strings.Join(csvOptional, ", "))})
			continue
		}
		if _, dup := col[h]; dup {
			probs = append(probs, Problem{fmt.Sprintf("%s:1", name), fmt.Sprintf("column %q twice", h)})
		}
		col[h] = i
	}
	for _, k := range csvRequired {
		if _, ok := col[k]; !ok {
			probs = append(probs, Problem{fmt.Sprintf("%s:1", name), fmt.Sprintf("column %q missing", k)})
		}
	}
	if len(probs) > 0 {
		return nil, &ValidationError{probs}
	}
	get := func(row []string, k string) string {
		if i, ok := col[k]; ok && i < len(row) {
			return strings.TrimSpace(row[i])
		}
		return ""
	}
	var out []Request
	byID := map[string]int{}
	first := map[string]int{} // shipment id -> first line
	for n := 0; ; n++ {
		row, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// FieldPos is only defined for a row that was read: a parse
			// error names its own line.
			probs = append(probs, Problem{fmt.Sprintf("%s:%d", name, lineOf(err, n+2)), errText(err)})
			var pe *csv.ParseError
			if !errors.As(err, &pe) {
				break // not a parse error: the reader cannot go on
			}
			continue
		}
		line, _ := cr.FieldPos(0)
		if n >= MaxCSVRows {
			return nil, fmt.Errorf("%s: more than %d rows", name, MaxCSVRows)
		}
		where := fmt.Sprintf("%s:%d", name, line)
		bad := func(format string, a ...any) { probs = append(probs, Problem{where, fmt.Sprintf(format, a...)}) }
		sscc := get(row, "sscc")
		if strings.HasPrefix(sscc, "(00)") {
			sscc = sscc[4:]
		}
		if sscc == "" {
			bad("sscc is empty")
			continue
		}
		at, terr := time.Parse(time.RFC3339, get(row, "shipped_at"))
		if terr != nil {
			bad("shipped_at %q: want RFC 3339, e.g. 2026-11-24T10:00:00Z", get(row, "shipped_at"))
			continue
		}
		dest := record.Party{GLN: get(row, "destination_gln"), Name: get(row, "destination_name")}
		id := get(row, "shipment")
		if i, ok := byID[id]; ok && id != "" {
			r := &out[i]
			if r.Destination != dest || !r.ShippedAt.Equal(at) {
				bad("shipment %s: destination or ship time differ from line %d", id, first[id])
				continue
			}
			r.Containers = append(r.Containers, sscc)
			r.Line = fmt.Sprintf("%s:%d-%d", name, first[id], line)
			continue
		}
		out = append(out, Request{ID: id, Containers: []string{sscc}, Destination: dest, ShippedAt: at, Reference: get(row, "reference"), Line: where})
		if id != "" {
			byID[id], first[id] = len(out)-1, line
		}
	}
	if len(probs) > 0 {
		return nil, &ValidationError{probs}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no shipment rows after the header", name)
	}
	return out, nil
}

func lineOf(err error, fallback int) int {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return pe.StartLine
	}
	return fallback
}

func errText(err error) string {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

func csvErr(name string, err error) error {
	return fmt.Errorf("%s:%d: %s", name, lineOf(err, 1), errText(err))
}
