package web

import (
	"context"
	"net/http"

	"github.com/serialine/serialine/central/auth"
	"github.com/serialine/serialine/central/config"
	"github.com/serialine/serialine/central/shipping"
	"github.com/serialine/serialine/central/trace"
)

// Compliance is what the trace, export, report and shipping pages need
// beyond the store and the users.
type Compliance struct {
	// Journal is central's journal: shipments and user actions are
	// recorded there. Without it the shipping API answers 503.
	Journal shipping.Journal
	// GS1 is the master data for EPCIS exports and ship-from.
	GS1 config.GS1
	// TempDir holds export spools and finished exports (default: the OS
	// temporary directory).
	TempDir string
}

// compliance registers the recall trace, exports, reports and shipping
// pages and API (trace.go, exports.go, reports.go, shipments.go).
func (s *Server) compliance(mux *http.ServeMux) {
	ctx, cancel := context.WithCancel(context.Background())
	s.srv.RegisterOnShutdown(cancel)
	c := &complianceHandlers{s: s, opt: s.opt.Compliance, tracer: &trace.Tracer{St: s.opt.Store}, jobs: newJobs(ctx, s.opt.Compliance.TempDir, s.log)}
	c.ship = &shipping.Service{St: s.opt.Store, Journal: c.opt.Journal, Users: s.opt.Users, GS1: c.opt.GS1}

	mux.Handle("GET /trace", s.authed(c.tracePage))
	mux.Handle("GET /api/v1/trace", s.authed(c.apiTrace))
	mux.Handle("GET /api/v1/trace/lot", s.authed(c.apiTraceLot))

	mux.Handle("GET /exports", s.authed(c.exportsPage))
	mux.Handle("POST /exports", s.authed(c.exportCreate))
	mux.Handle("GET /exports/{id}", s.authed(c.exportJobPage))
	mux.Handle("GET /exports/{id}/download", s.authed(c.exportDownload))
	mux.Handle("POST /api/v1/exports", s.authed(c.exportCreate))
	mux.Handle("GET /api/v1/exports/{id}", s.authed(c.apiExportJob))
	mux.Handle("GET /api/v1/export", s.authed(c.apiExportStream))

	mux.Handle("GET /reports", s.authed(c.reportsPage))
	mux.Handle("GET /api/v1/reports/daily", s.authed(c.apiReportDaily))

	mux.Handle("POST /api/v1/shipments", s.authed(c.apiShip))
	mux.Handle("POST /api/v1/shipments/import", s.authed(c.apiShipImport))
	mux.Handle("GET /api/v1/shipments/{id}", s.authed(c.apiShipment))
}

type complianceHandlers struct {
	s      *Server
	opt    Compliance
	tracer *trace.Tracer
	jobs   *jobs
	ship   *shipping.Service
}

// mayExport: exports of compliance data are for QA, supervisors and admins.
func mayExport(u auth.User) bool {
	return u.Role == auth.RoleQA || u.Role == auth.RoleSupervisor || u.Role == auth.RoleAdmin
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := jsonEncoder(w)
	enc.Encode(v)
}
