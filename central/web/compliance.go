package web

import (
	"context"
	"net/http"
	"strings"

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
// pages and API (trace.go, exports.go, reports.go, shipments.go). Every
// route needs a login; the handlers check the role each action needs
// (mayExport, shipping.mayShip).
func (s *Server) compliance(mux *http.ServeMux) {
	ctx, cancel := context.WithCancel(context.Background())
	s.srv.RegisterOnShutdown(cancel)
	c := &complianceHandlers{s: s, opt: s.opt.Compliance, tracer: &trace.Tracer{St: s.opt.Store}, jobs: newJobs(ctx, s.opt.Compliance.TempDir, s.log)}
	c.ship = &shipping.Service{St: s.opt.Store, Journal: c.opt.Journal, Users: s.opt.Users, GS1: c.opt.GS1}

	mux.Handle("GET /trace", s.page(auth.RoleOperator, c.tracePage))
	mux.Handle("GET /api/v1/trace", s.api(auth.RoleOperator, c.apiTrace))
	mux.Handle("GET /api/v1/trace/lot", s.api(auth.RoleOperator, c.apiTraceLot))

	mux.Handle("GET /exports", s.page(auth.RoleOperator, c.exportsPage))
	mux.Handle("POST /exports", s.page(auth.RoleOperator, c.exportCreate))
	mux.Handle("GET /exports/{id}", s.page(auth.RoleOperator, c.exportJobPage))
	mux.Handle("GET /exports/{id}/download", s.page(auth.RoleOperator, c.exportDownload))
	mux.Handle("POST /api/v1/exports", s.api(auth.RoleOperator, c.exportCreate))
	mux.Handle("GET /api/v1/exports/{id}", s.api(auth.RoleOperator, c.apiExportJob))
	mux.Handle("GET /api/v1/export", s.api(auth.RoleOperator, c.apiExportStream))

	mux.Handle("GET /reports", s.page(auth.RoleOperator, c.reportsPage))
	mux.Handle("GET /api/v1/reports/daily", s.api(auth.RoleOperator, c.apiReportDaily))

	mux.Handle("POST /api/v1/shipments", s.api(auth.RoleOperator, c.apiShip))
	mux.Handle("POST /api/v1/shipments/import", s.upload(auth.RoleOperator, c.apiShipImport))
	mux.Handle("GET /api/v1/shipments/{id}", s.api(auth.RoleOperator, c.apiShipment))
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

// isAPI reports whether a request is to the JSON API (errors as JSON, not
// a redirect to a page).
func isAPI(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/api/") }
