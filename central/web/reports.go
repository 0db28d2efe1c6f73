package web

import (
	"bytes"
	"html/template"
	"net/http"
	"time"

	"github.com/serialine/serialine/central/auth"
	"github.com/serialine/serialine/central/report"
)

func (c *complianceHandlers) daily(r *http.Request) (*report.Daily, int, error) {
	now := time.Now()
	day, err := report.ParseDate(r.URL.Query().Get("date"), now)
	if err != nil {
		return nil, http.StatusBadRequest, err
	}
	d, err := report.Compute(r.Context(), c.s.opt.Store, day, now)
	if err != nil {
		return nil, http.StatusInternalServerError, err
	}
	return d, http.StatusOK, nil
}

func (c *complianceHandlers) reportsPage(w http.ResponseWriter, r *http.Request, u auth.User) {
	data := map[string]any{"User": u, "Date": r.URL.Query().Get("date")}
	d, _, err := c.daily(r)
	if err != nil {
		data["Error"] = err.Error()
	} else {
		var buf bytes.Buffer
		if err := report.WriteHTML(&buf, d); err != nil {
			data["Error"] = err.Error()
		}
		data["Report"], data["Body"] = d, template.HTML(buf.String()) // html/template output of package report: already escaped
		data["Date"] = d.Date
	}
	c.s.render(w, "reports.html", data)
}

// apiReportDaily serves ?date=YYYY-MM-DD&format=json|csv|html.
func (c *complianceHandlers) apiReportDaily(w http.ResponseWriter, r *http.Request, _ auth.User) {
	d, code, err := c.daily(r)
	if err != nil {
		httpError(w, code, err.Error())
		return
	}
	switch r.URL.Query().Get("format") {
	case "", "json":
		writeJSON(w, http.StatusOK, d)
	case "csv":
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="serialine-daily-`+d.Date+`.csv"`)
		if err := report.WriteCSV(w, d); err != nil {
			c.s.log.Error().Err(err).Msg("daily report CSV")
		}
	case "html":
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Daily compliance report ` + d.Date + `</title><link rel="stylesheet" href="/assets/style.css"></head><body><main>`))
		if err := report.WriteHTML(w, d); err != nil {
			c.s.log.Error().Err(err).Msg("daily report HTML")
		}
		w.Write([]byte(`</main></body></html>`))
	default:
		httpError(w, http.StatusBadRequest, "format: want json, csv or html")
	}
}
