// Package web serves central's dashboard (html/template + embedded assets,
// no build step) and its JSON API.
package web

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"html/template"
	"io/fs"
	"net"
	"net/http"
	"time"

	"github.com/rs/zerolog"

	"github.com/serialine/serialine/central/auth"
	"github.com/serialine/serialine/central/store"
)

//go:embed assets templates
var content embed.FS

// Options configure the web server.
type Options struct {
	Listen string
	Store  store.Store
	Users  *auth.Users
	Log    zerolog.Logger
	// Ready reports readiness for /readyz.
	Ready func() error
	// Metrics serves /metrics (Prometheus text format), if set.
	Metrics http.Handler
	// Compliance configures trace, exports, reports and shipping (compliance.go).
	Compliance Compliance
}

// Server is the HTTP server.
type Server struct {
	opt  Options
	tpl  *template.Template
	ln   net.Listener
	srv  *http.Server
	log  zerolog.Logger
	addr string
}

// New binds the listener (so Addr is known at once).
func New(opt Options) (*Server, error) {
	tpl, err := template.New("").Funcs(template.FuncMap{
		"ago": func(t time.Time) string {
			if t.IsZero() {
				return "never"
			}
			return time.Since(t).Round(time.Second).String() + " ago"
		},
	}).ParseFS(content, "templates/*.html")
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", opt.Listen)
	if err != nil {
		return nil, err
	}
	s := &Server{opt: opt, tpl: tpl, ln: ln, log: opt.Log.With().Str("component", "web").Logger(), addr: ln.Addr().String()}
	mux := http.NewServeMux()
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
	mux.Handle("GET /api/v1/alerts", s.authed(s.apiAlerts))
	mux.Handle("GET /{$}", s.authed(s.dashboard))
	mux.Handle("GET /api/v1/lines", s.authed(s.apiLines))
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	s.compliance(mux)
	return s, nil
}

// Addr is the bound address.
func (s *Server) Addr() string { return s.addr }

// Run serves until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
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

type ctxUser struct{}

// authed requires a session cookie or HTTP basic credentials.
func (s *Server) authed(h func(http.ResponseWriter, *http.Request, auth.User)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, err := r.Cookie("serialine_session"); err == nil {
			if u, ok := s.opt.Users.Session(c.Value); ok {
				h(w, r, u)
				return
			}
		}
		if id, pw, ok := r.BasicAuth(); ok {
			u, err := s.opt.Users.Check(id, pw)
			if err == nil {
				h(w, r, u)
				return
			}
			httpError(w, http.StatusUnauthorized, err.Error())
			return
		}
		if isAPI(r) {
			w.Header().Set("WWW-Authenticate", `Basic realm="serialine"`)
			httpError(w, http.StatusUnauthorized, "login required")
			return
		}
		http.Redirect(w, r, "/login", http.StatusSeeOther)
	})
}

func isAPI(r *http.Request) bool { return len(r.URL.Path) >= 5 && r.URL.Path[:5] == "/api/" }

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, "login.html", map[string]any{"Error": r.URL.Query().Get("error")})
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Redirect(w, r, "/login?error=bad+form", http.StatusSeeOther)
		return
	}
	u, err := s.opt.Users.Check(r.PostForm.Get("user"), r.PostForm.Get("password"))
	if err != nil {
		s.log.Warn().Str("user", r.PostForm.Get("user")).Err(err).Msg("login failed")
		msg := "Unknown user or wrong password."
		if errors.Is(err, auth.ErrLocked) {
			msg = "Account locked after repeated failed logins. Try again later."
		}
		w.WriteHeader(http.StatusUnauthorized)
		s.render(w, "login.html", map[string]any{"Error": msg})
		return
	}
	tok := s.opt.Users.NewSession(u.ID)
	http.SetCookie(w, &http.Cookie{Name: "serialine_session", Value: tok, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie("serialine_session"); err == nil {
		s.opt.Users.EndSession(c.Value)
	}
	http.SetCookie(w, &http.Cookie{Name: "serialine_session", Value: "", Path: "/", MaxAge: -1})
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

func (s *Server) render(w http.ResponseWriter, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := s.tpl.ExecuteTemplate(w, name, data); err != nil {
		s.log.Error().Err(err).Str("template", name).Msg("render failed")
	}
}

// LineView is one line as shown by the dashboard and the API.
type LineView struct {
	Edge          string    `json:"edge"`
	Line          string    `json:"line"`
	State         string    `json:"state"`
	Batch         string    `json:"batch"`
	UnitsGood     int64     `json:"units_good"`
	UnitsRejected int64     `json:"units_rejected"`
	CasesClosed   int64     `json:"cases_closed"`
	PalletsClosed int64     `json:"pallets_closed"`
	Records       int64     `json:"records"`
	HeadSeq       uint64    `json:"head_seq"`
	PendingSync   uint64    `json:"pending_sync"`
	Quarantined   int64     `json:"quarantined"`
	LastSeen      time.Time `json:"last_seen"`
	UnitsPerMin   float64   `json:"units_per_min"`
}

func (s *Server) lines(ctx context.Context) ([]LineView, error) {
	ls, err := s.opt.Store.Lines(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]LineView, 0, len(ls))
	for _, l := range ls {
		v := LineView{
			Edge: l.Edge, Line: l.Line, State: l.State, Batch: l.Batch,
			UnitsGood: l.UnitsGood, UnitsRejected: l.UnitsRejected, CasesClosed: l.CasesClosed, PalletsClosed: l.PalletsClosed,
			Records: l.Records, HeadSeq: l.Head.Seq, PendingSync: l.PendingSync, Quarantined: l.QuarantinedNum, LastSeen: l.LastSeen,
		}
		if l.LastStatus != nil {
			v.UnitsPerMin = l.LastStatus.UnitsPerMin
		}
		out = append(out, v)
	}
	return out, nil
}

func (s *Server) apiLines(w http.ResponseWriter, r *http.Request, _ auth.User) {
	ls, err := s.lines(r.Context())
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"lines": ls})
}

func (s *Server) dashboard(w http.ResponseWriter, r *http.Request, u auth.User) {
	ls, err := s.lines(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	s.render(w, "dashboard.html", map[string]any{"User": u, "Lines": ls, "Now": time.Now().UTC().Format(time.RFC3339)})
}

// AlertView is an alert as the API shows it.
type AlertView struct {
	ID       int64      `json:"id"`
	At       time.Time  `json:"at"`
	Severity string     `json:"severity"`
	Code     string     `json:"code"`
	Edge     string     `json:"edge,omitempty"`
	Message  string     `json:"message"`
	Ref      string     `json:"ref,omitempty"`
	Active   bool       `json:"active"`
	AckedBy  string     `json:"acked_by,omitempty"`
	AckedAt  *time.Time `json:"acked_at,omitempty"`
	Cleared  *time.Time `json:"cleared_at,omitempty"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// apiAlerts lists alerts: ?active=1 for active ones only, ?edge=, ?code=.
func (s *Server) apiAlerts(w http.ResponseWriter, r *http.Request, _ auth.User) {
	q := r.URL.Query()
	list, err := s.opt.Store.Alerts(r.Context(), store.AlertFilter{ActiveOnly: q.Get("active") == "1", Edge: q.Get("edge"), Code: q.Get("code"), Limit: 500})
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	out := make([]AlertView, 0, len(list))
	for _, a := range list {
		out = append(out, AlertView{ID: a.ID, At: a.At, Severity: a.Severity, Code: a.Code, Edge: a.Edge, Message: a.Message, Ref: a.Ref,
			Active: a.Active, AckedBy: a.AckedBy, AckedAt: timePtr(a.AckedAt), Cleared: timePtr(a.ClearedAt)})
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"alerts": out})
}
