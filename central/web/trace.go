package web

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/serialine/serialine/central/auth"
	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/central/trace"
)

func jsonEncoder(w io.Writer) *json.Encoder { return json.NewEncoder(w) }

// lotPageUnits bounds the units listed on the trace page (the API and the
// CSV download list all of them).
const lotPageUnits = 500

func (c *complianceHandlers) tracePage(w http.ResponseWriter, r *http.Request, u auth.User) {
	in := r.URL.Query().Get("q")
	data := map[string]any{"User": u, "Q": in}
	if in != "" {
		q, err := trace.ParseQuery(in)
		switch {
		case err != nil:
			data["Error"] = err.Error()
		case q.Kind == trace.QueryLot:
			var units []trace.LotUnit
			lt, err := c.tracer.Lot(r.Context(), q.Lot, func(lu trace.LotUnit) error {
				if len(units) < lotPageUnits {
					units = append(units, lu)
				}
				return nil
			})
			if err != nil {
				data["Error"] = err.Error()
			} else {
				data["Lot"], data["LotUnits"] = lt, units
				data["More"] = lt.Units - int64(len(units))
			}
		default:
			res, err := c.tracer.Find(r.Context(), q)
			if err != nil {
				data["Error"] = err.Error()
			} else {
				data["Result"] = res
				if res.Container != nil {
					var units []store.Unit
					var n int64
					err := c.tracer.Contents(r.Context(), res.Container.Container.SSCC, func(u store.Unit) error {
						n++
						if len(units) < lotPageUnits {
							units = append(units, u)
						}
						return nil
					})
					if err != nil {
						data["Error"] = err.Error()
					}
					data["Contents"], data["ContentsN"] = units, n
				}
			}
		}
	}
	c.s.render(w, "trace.html", data)
}

func traceStatus(err error) int {
	if errors.Is(err, trace.ErrNotFound) {
		return http.StatusNotFound
	}
	return http.StatusInternalServerError
}

// apiTrace answers ?q= (any form ParseQuery accepts). A container answer
// lists every unit inside it; a lot query is answered by /api/v1/trace/lot.
func (c *complianceHandlers) apiTrace(w http.ResponseWriter, r *http.Request, _ auth.User) {
	q, err := trace.ParseQuery(r.URL.Query().Get("q"))
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	if q.Kind == trace.QueryLot {
		http.Redirect(w, r, "/api/v1/trace/lot?lot="+q.Lot, http.StatusSeeOther)
		return
	}
	res, err := c.tracer.Find(r.Context(), q)
	if err != nil {
		httpError(w, traceStatus(err), err.Error())
		return
	}
	out := map[string]any{"result": res}
	if res.Container != nil {
		units := []store.Unit{}
		if err := c.tracer.Contents(r.Context(), res.Container.Container.SSCC, func(u store.Unit) error { units = append(units, u); return nil }); err != nil {
			httpError(w, http.StatusInternalServerError, err.Error())
			return
		}
		out["units"] = units
	}
	writeJSON(w, http.StatusOK, out)
}

// apiTraceLot streams a lot trace: ?lot=, &format=json (default) or csv.
// JSON is {"lot": {...batches, containers, shipments, equipment}, "units": [...]}.
func (c *complianceHandlers) apiTraceLot(w http.ResponseWriter, r *http.Request, _ auth.User) {
	lot := r.URL.Query().Get("lot")
	if lot == "" {
		httpError(w, http.StatusBadRequest, "lot required")
		return
	}
	// The lot's metadata first (it is small), so errors still get a status.
	lt, err := c.tracer.Lot(r.Context(), lot, nil)
	if err != nil {
		httpError(w, traceStatus(err), err.Error())
		return
	}
	if r.URL.Query().Get("format") == "csv" {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="trace-`+safeName(lot)+`.csv"`)
		cw := csv.NewWriter(w)
		cw.Write([]string{"gtin", "serial", "batch", "status", "case", "pallet", "shipment", "shipped_to"})
		_, err := c.tracer.Lot(r.Context(), lot, func(lu trace.LotUnit) error {
			return cw.Write([]string{lu.Unit.GTIN, lu.Unit.Serial, lu.Unit.Batch, lu.Unit.Status, lu.Case, lu.Pallet, lu.Shipment, lu.ShippedTo})
		})
		cw.Flush()
		if err != nil {
			c.s.log.Error().Err(err).Str("lot", lot).Msg("lot trace CSV stopped")
		}
		return
	}
	w.Header().Set("Content-Type", "application/json")
	head, _ := json.Marshal(lt)
	w.Write([]byte(`{"lot":`))
	w.Write(head)
	w.Write([]byte(`,"units":[`))
	n := 0
	_, err = c.tracer.Lot(r.Context(), lot, func(lu trace.LotUnit) error {
		b, err := json.Marshal(lu)
		if err != nil {
			return err
		}
		if n > 0 {
			w.Write([]byte(",\n"))
		}
		n++
		_, err = w.Write(b)
		return err
	})
	if err != nil {
		c.s.log.Error().Err(err).Str("lot", lot).Msg("lot trace stream stopped")
		return // the truncated document does not parse: the client sees the failure
	}
	w.Write([]byte("],\"count\":" + strconv.Itoa(n) + "}\n"))
}

func safeName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			b[i] = '_'
		}
	}
	return string(b)
}
