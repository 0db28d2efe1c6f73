// Package web serves central's pages (html/template + embedded assets, no
// build step) and its JSON API: the live lines dashboard (server-sent
// events), alerts, batches and their release, the Part 11 audit trail,
// records and their corrections, user management and e-signatures.
//
// Pages need a session (the login form); the API also takes HTTP basic
// credentials. Every page and call names the lowest role allowed
// (operator < supervisor < qa < admin). The session cookie is HttpOnly and
// SameSite=Strict, and state-changing API calls take JSON bodies only, so
// another site cannot make a logged-in browser change anything.
package web

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"mime"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/serialine/serialine/central/alerts"
	"github.com/serialine/serialine/central/audit"
	"github.com/serialine/serialine/central/auth"
	"github.com/serialine/serialine/central/esign"
	"github.com/serialine/serialine/central/store"
)

//go:embed assets templates
var content embed.FS

// Options configure the web server.
type Options struct {
	Listen string
	Store  store.Store
	Users  *auth.Users
	// Signer signs (e-signatures); Alerts acknowledges alerts; Verifier
	// gives the chains' verification status. Pages that need one that is
	// nil answer 503.
	Signer   *esign.Service
	Alerts   *alerts.Alerter
	Verifier *audit.Verifier
	Log      zerolog.Logger
	// Ready reports readiness for /readyz.
	Ready func() error
	// Metrics serves /metrics (Prometheus text format), if set.
	Metrics http.Handler
	// Routes are further handlers (pattern -> handler) served behind the
	// same login as the dashboard; the handler checks the user's role.
	Routes map[string]func(http.ResponseWriter, *http.Request, auth.User)
	// Poll is how often the live dashboard reads the lines (default 1 s);
	// TrendBucket is the width of one point of the pass-rate trend (default
	// 1 minute, 30 points).
	Poll        time.Duration
	TrendBucket time.Duration
	// Compliance configures trace, exports, reports and shipping (compliance.go).
	Compliance Compliance
}

// Server is the HTTP server.
type Server struct {
	opt  Options
	tpl  *template.Template
	ln   net.Listener
	srv  *http.Server
	mux  *http.ServeMux
	log  zerolog.Logger
	addr string
	hub  *hub
}

// Nav is the navigation bar: pages of this package and of the packages
// that add theirs (trace, exports, reports, equipment, downtime).
var Nav = []struct{ Path, Label, Role string }{
	{"/", "Lines", auth.RoleOperator},
	{"/batches", "Batches", auth.RoleOperator},
	{"/trace", "Trace", auth.RoleSupervisor},
	{"/equipment", "Equipment", auth.RoleOperator},
	{"/downtime", "Downtime", auth.RoleOperator},
	{"/audit", "Audit trail", auth.RoleSupervisor},
	{"/exports", "Exports", auth.RoleQA},
	{"/reports", "Reports", auth.RoleSupervisor},
	{"/users", "Users", auth.RoleAdmin},
}

// New binds the listener (so Addr is known at once).
func New(opt Options) (*Server, error) {
	if opt.Poll <= 0 {
		opt.Poll = time.Second
	}
	if opt.TrendBucket <= 0 {
		opt.TrendBucket = time.Minute
	}
	tpl, err := template.New("").Funcs(funcs).ParseFS(content, "templates/*.html")
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", opt.Listen)
	if err != nil {
		return nil, err
	}
	s := &Server{opt: opt, tpl: tpl, ln: ln, log: opt.Log.With().Str("component", "web").Logger(), addr: ln.Addr().String()}
	s.hub = newHub(opt.Store, opt.Poll, opt.TrendBucket, s.log)
	mux := http.NewServeMux()
	s.mux = mux
	assets, _ := fs.Sub(content, "assets")
	mux.Handle("GET /assets/", http.StripPrefix("/assets/", http.FileServer(http.FS(assets))))
	mux.HandleFunc("GET /login", s.loginPage)
	mux.HandleFunc("POST /login", s.login)
	mux.HandleFunc("POST /logout", s.logout)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", s.readyz)
	if opt.Metrics != nil {
		mux.Handle("GET /metrics", opt.Metrics)
	}

	op, sup, admin := auth.RoleOperator, auth.RoleSupervisor, auth.RoleAdmin
	mux.Handle("GET /{$}", s.page(op, s.dashboard))
	mux.Handle("GET /api/v1/lines", s.api(op, s.apiLines))
	mux.Handle("GET /api/v1/events", s.api(op, s.events))
	mux.Handle("GET /api/v1/alerts", s.api(op, s.apiAlerts))
	mux.Handle("POST /api/v1/alerts/{id}/ack", s.api(sup, s.apiAckAlert))

	mux.Handle("GET /batches", s.page(op, s.batchesPage))
	mux.Handle("GET /batches/{edge}/{batch}", s.page(op, s.batchPage))
	mux.Handle("GET /api/v1/batches", s.api(op, s.apiBatches))
	mux.Handle("GET /api/v1/batches/{edge}/{batch}", s.api(op, s.apiBatch))

	mux.Handle("GET /audit", s.page(sup, s.auditPage))
	mux.Handle("GET /api/v1/audit", s.api(sup, s.apiAudit))
	mux.Handle("GET /api/v1/chains", s.api(sup, s.apiChains))
	mux.Handle("GET /records/{edge}/{epoch}/{seq}", s.page(sup, s.recordPage))
	mux.Handle("GET /api/v1/records/{edge}/{epoch}/{seq}", s.api(sup, s.apiRecord))

	mux.Handle("POST /api/v1/signatures", s.api(op, s.apiSign))
	mux.Handle("GET /api/v1/signatures/verify", s.api(sup, s.apiVerifySignature))

	mux.Handle("GET /users", s.page(admin, s.usersPage))
	mux.Handle("GET /api/v1/users", s.api(admin, s.apiUsers))
	mux.Handle("POST /api/v1/users", s.api(admin, s.apiAddUser))
	mux.Handle("POST /api/v1/users/{id}", s.api(admin, s.apiChangeUser))
	mux.Handle("POST /api/v1/me/password", s.api(op, s.apiOwnPassword))
	s.equipmentRoutes(mux)
	for pattern, h := range opt.Routes {
		mux.Handle(pattern, s.api(op, h)) // the handler checks the role it needs
	}

	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	s.compliance(mux)
	return s, nil
}

// Addr is the bound address.
func (s *Server) Addr() string { return s.addr }

// Handle adds a route (for pages other packages serve under this server),
// wrapped with the session/role check for role.
func (s *Server) Handle(pattern, role string, page bool, h func(http.ResponseWriter, *http.Request, auth.User)) {
	if page {
		s.mux.Handle(pattern, s.page(role, h))
	} else {
		s.mux.Handle(pattern, s.api(role, h))
	}
}

// Run serves until ctx ends. Request contexts derive from ctx, so the live
// event streams end when central stops.
func (s *Server) Run(ctx context.Context) error {
	s.srv.BaseContext = func(net.Listener) context.Context { return ctx }
	errc := make(chan error, 2)
	go func() { errc <- s.hub.run(ctx) }()
	go func() {
		if err := s.srv.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = s.srv.Shutdown(sctx)
		return nil
	}
}

const cookieName = "serialine_session"

// user authenticates a request: a session cookie, or HTTP basic
// credentials (API clients; a wrong password counts toward the lockout).
func (s *Server) user(r *http.Request) (auth.User, int, error) {
	if c, err := r.Cookie(cookieName); err == nil {
		u, ok, err := s.opt.Users.Session(r.Context(), c.Value)
		if err != nil {
			return auth.User{}, http.StatusInternalServerError, err
		}
		if ok {
			return u, 0, nil
		}
	}
	if id, pw, ok := r.BasicAuth(); ok {
		u, err := s.opt.Users.Check(r.Context(), id, pw, "login")
		if err != nil {
			return auth.User{}, http.StatusUnauthorized, err
		}
		return u, 0, nil
	}
	return auth.User{}, http.StatusUnauthorized, errors.New("login required")
}

func (s *Server) page(min string, h func(http.ResponseWriter, *http.Request, auth.User)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, code, err := s.user(r)
		if code == http.StatusUnauthorized {
			http.Redirect(w, r, "/login?next="+urlQueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		if err != nil {
			s.log.Error().Err(err).Msg("session lookup failed")
			http.Error(w, "session lookup failed", http.StatusInternalServerError)
			return
		}
		if !u.Can(min) {
			w.WriteHeader(http.StatusForbidden)
			s.render(w, "error.html", s.data(u, "", map[string]any{"Error": fmt.Sprintf("This page needs the %s role; you are %s.", min, u.Role)}))
			return
		}
		h(w, r, u)
	})
}

func (s *Server) api(min string, h func(http.ResponseWriter, *http.Request, auth.User)) http.Handler {
	return s.apiTaking(min, "application/json", h)
}

// upload is api for a POST of a file (multipart/form-data), such as a WMS
// shipment list.
func (s *Server) upload(min string, h func(http.ResponseWriter, *http.Request, auth.User)) http.Handler {
	return s.apiTaking(min, "multipart/form-data", h)
}

// apiTaking serves an API route for users of at least role min whose POST
// bodies are of content type ctype (never a plain HTML form type: a
// cross-site form cannot post them).
func (s *Server) apiTaking(min, ctype string, h func(http.ResponseWriter, *http.Request, auth.User)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, code, err := s.user(r)
		if code != 0 {
			if code == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Basic realm="serialine"`)
			}
			httpError(w, code, err.Error())
			return
		}
		if !u.Can(min) {
			httpError(w, http.StatusForbidden, fmt.Sprintf("user %s (%s) may not do this: needs %s", u.ID, u.Role, min))
			return
		}
		if r.Method == http.MethodPost {
			if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != ctype {
				httpError(w, http.StatusUnsupportedMediaType, "POST bodies are "+ctype)
				return
			}
		}
		h(w, r, u)
	})
}

func httpError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		httpError(w, http.StatusBadRequest, "request body: "+err.Error())
		return false
	}
	return true
}

// storeError answers an error of the store or a service with the right code.
func storeError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, esign.ErrUnknown):
		httpError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, esign.ErrRefused):
		httpError(w, http.StatusForbidden, err.Error())
	case errors.Is(err, store.ErrConflict):
		httpError(w, http.StatusConflict, err.Error())
	default:
		httpError(w, http.StatusInternalServerError, err.Error())
	}
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, "login.html", map[string]any{"Error": r.URL.Query().Get("error"), "Next": safeNext(r.URL.Query().Get("next"))})
}

// safeNext keeps a post-login redirect on this site.
func safeNext(n string) string {
	if !strings.HasPrefix(n, "/") || strings.HasPrefix(n, "//") || strings.Contains(n, "\\") {
		return "/"
	}
	return n
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Redirect(w, r, "/login?error=bad+form", http.StatusSeeOther)
		return
	}
	id, pw := r.PostForm.Get("user"), r.PostForm.Get("password")
	next := safeNext(r.PostForm.Get("next"))
	// An expired password is replaced on the login form itself: the
	// current one re-entered, the new one twice.
	if np := r.PostForm.Get("new_password"); np != "" {
		var err error
		if np != r.PostForm.Get("confirm_password") {
			err = errors.New("the two new passwords differ")
		} else {
			_, err = s.opt.Users.ChangeOwnPassword(r.Context(), id, pw, np)
		}
		if err != nil {
			s.log.Warn().Str("user", id).Err(err).Msg("password change at login failed")
			w.WriteHeader(http.StatusUnauthorized)
			s.render(w, "login.html", map[string]any{"Error": "Password not changed: " + err.Error(), "Next": next, "Expired": true, "ExpiredUser": id})
			return
		}
		pw = np
	}
	u, tok, err := s.opt.Users.Login(r.Context(), id, pw)
	if err != nil {
		s.log.Warn().Str("user", id).Err(err).Msg("login failed")
		msg := "Unknown user or wrong password."
		expired := false
		switch {
		case errors.Is(err, auth.ErrLocked):
			msg = "Account locked after repeated failed attempts. Try again later or ask an administrator."
		case errors.Is(err, auth.ErrDisabled):
			msg = "Account disabled."
		case errors.Is(err, auth.ErrPasswordExpired):
			msg, expired = "Your "+err.Error()+". Enter your current password and a new one.", true
		case !errors.Is(err, auth.ErrBadLogin):
			msg = "Login failed: " + err.Error()
		}
		w.WriteHeader(http.StatusUnauthorized)
		data := map[string]any{"Error": msg, "Next": next}
		if expired {
			data["Expired"], data["ExpiredUser"] = true, id
		}
		s.render(w, "login.html", data)
		return
	}
	s.log.Info().Str("user", u.ID).Msg("login")
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: tok, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(cookieName); err == nil {
		if err := s.opt.Users.Logout(r.Context(), c.Value); err != nil {
			s.log.Error().Err(err).Msg("logout not recorded")
		}
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", MaxAge: -1})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.opt.Ready != nil {
		if err := s.opt.Ready(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
	}
	w.Write([]byte("ready\n"))
}

// data builds a page's template data with the layout's fields.
func (s *Server) data(u auth.User, active string, m map[string]any) map[string]any {
	if m == nil {
		m = map[string]any{}
	}
	m["User"] = u
	m["Active"] = active
	var nav []map[string]string
	for _, n := range Nav {
		if u.Can(n.Role) {
			nav = append(nav, map[string]string{"Path": n.Path, "Label": n.Label})
		}
	}
	m["Nav"] = nav
	m["Meanings"] = esign.Meanings
	return m
}

func (s *Server) render(w http.ResponseWriter, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := s.tpl.ExecuteTemplate(w, name, data); err != nil {
		s.log.Error().Err(err).Str("template", name).Msg("render failed")
	}
}
