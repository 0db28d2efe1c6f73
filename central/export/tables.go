package export

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"
)

// table spools one table's rows to a temporary file (CSV or JSON objects),
// so exports of any size stream with bounded memory; the package is
// assembled from the spooled files at the end.
type table struct {
	name  string
	cols  []string
	json  bool
	f     *os.File
	bw    *bufio.Writer
	cw    *csv.Writer
	rows  int64
	off   bool // html: count only
	scrap []byte
}

func newTable(dir, name string, cols []string, format string) (*table, error) {
	t := &table{name: name, cols: cols, json: format == FormatJSON, off: format == FormatHTML}
	if t.off {
		return t, nil
	}
	f, err := os.CreateTemp(dir, "export-"+name+"-*")
	if err != nil {
		return nil, err
	}
	t.f, t.bw = f, bufio.NewWriterSize(f, 64<<10)
	if !t.json {
		t.cw = csv.NewWriter(t.bw)
		if err := t.cw.Write(cols); err != nil {
			return nil, err
		}
	}
	return t, nil
}

func cell(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case time.Time:
		if x.IsZero() {
			return ""
		}
		return x.UTC().Format(time.RFC3339Nano)
	case json.RawMessage:
		return string(x)
	case bool:
		return strconv.FormatBool(x)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	default:
		return fmt.Sprint(x)
	}
}

func jsonValue(v any) any {
	switch x := v.(type) {
	case time.Time:
		if x.IsZero() {
			return nil
		}
		return x.UTC().Format(time.RFC3339Nano)
	case json.RawMessage:
		if len(x) == 0 {
			return nil
		}
	}
	return v
}

// row appends one row; vals follow t.cols.
func (t *table) row(vals ...any) error {
	if len(vals) != len(t.cols) {
		return fmt.Errorf("export table %s: %d values for %d columns", t.name, len(vals), len(t.cols))
	}
	t.rows++
	if t.off {
		return nil
	}
	if !t.json {
		rec := make([]string, len(vals))
		for i, v := range vals {
			rec[i] = cell(v)
		}
		return t.cw.Write(rec)
	}
	b := t.scrap[:0]
	if t.rows > 1 {
		b = append(b, ",\n"...)
	}
	b = append(b, '{')
	for i, c := range t.cols {
		if i > 0 {
			b = append(b, ',')
		}
		k, _ := json.Marshal(c)
		v, err := json.Marshal(jsonValue(vals[i]))
		if err != nil {
			return fmt.Errorf("export table %s column %s: %w", t.name, c, err)
		}
		b = append(append(append(b, k...), ':'), v...)
	}
	b = append(b, '}')
	t.scrap = b
	_, err := t.bw.Write(b)
	return err
}

// finish flushes the spool and rewinds it for copying.
func (t *table) finish() error {
	if t.off {
		return nil
	}
	if t.cw != nil {
		t.cw.Flush()
		if err := t.cw.Error(); err != nil {
			return err
		}
	}
	if err := t.bw.Flush(); err != nil {
		return err
	}
	_, err := t.f.Seek(0, io.SeekStart)
	return err
}

func (t *table) close() {
	if t.f != nil {
		t.f.Close()
		os.Remove(t.f.Name())
	}
}
