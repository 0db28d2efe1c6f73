package export

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"sort"
	"time"
)

//go:embed summary.html
var summaryHTML string

var summaryTpl = template.Must(template.New("summary").Funcs(template.FuncMap{
	"ts": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"sorted": func(m map[string]int64) []kv {
		out := make([]kv, 0, len(m))
		for k, v := range m {
			if k == "" {
				k = "(none)"
			}
			out = append(out, kv{k, v})
		}
		sort.Slice(out, func(i, j int) bool { return out[i].V > out[j].V || out[i].V == out[j].V && out[i].K < out[j].K })
		return out
	},
	"more": func(total int64, shown int) string {
		if total > int64(shown) {
			return fmt.Sprintf("%d more in the CSV/JSON export", total-int64(shown))
		}
		return ""
	},
	"json": func(b []byte) string { return string(b) },
}).Parse(summaryHTML))

type kv struct {
	K string
	V int64
}

// WriteHTML writes the printable summary of an export.
func WriteHTML(w io.Writer, s *Summary) error {
	return summaryTpl.Execute(w, s)
}
