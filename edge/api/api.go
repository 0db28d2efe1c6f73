// Package api is the edge's HTTP JSON API for operators, supervisors and the
// `serialine` CLI. Every write needs a line user (HTTP basic auth, bcrypt);
// supervisor actions also need an e-signature (the signer's id and password
// re-entered, and the meaning of the signature). No anonymous writes.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"

	"github.com/serialine/serialine/edge/config"
	"github.com/serialine/serialine/edge/equipment"
	"github.com/serialine/serialine/edge/line"
	"github.com/serialine/serialine/edge/serials"
	"github.com/serialine/serialine/sync/record"
)

// Server is the edge API.
type Server struct {
	eng   *line.Engine
	users map[string]config.User
	log   zerolog.Logger
	ln    net.Listener
	srv   *http.Server
	mux   *http.ServeMux
	now   func() time.Time

	equip *equipment.Tracker // equipment.go

	reloadMu sync.Mutex
	reload   func(ctx context.Context) (line.ConfigChange, error)
}

// SetReload installs what POST /api/v1/config/reload does: the daemon
// re-reads its line config file and proposes it to the engine.
func (s *Server) SetReload(fn func(ctx context.Context) (line.ConfigChange, error)) {
	s.reloadMu.Lock()
	s.reload = fn
	s.reloadMu.Unlock()
}

// New binds the listener.
func New(listen string, eng *line.Engine, users []config.User, log zerolog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	s := &Server{eng: eng, users: map[string]config.User{}, log: log.With().Str("component", "api").Logger(), ln: ln, now: time.Now}
	for _, u := range users {
		s.users[u.ID] = u
	}
	mux := http.NewServeMux()
	s.mux = mux // metrics.go: ServeMetrics
	for _, rt := range s.routes() {
		h := rt.read
		if rt.role != "" {
			h = s.role(rt.role, rt.write)
		}
		mux.HandleFunc(rt.pattern, h)
	}
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return s, nil
}

type route struct {
	pattern string
	role    string // minimum role of the logged-in user; "" for reads
	write   func(http.ResponseWriter, *http.Request, config.User)
	read    http.HandlerFunc
}

// routes is the API: reads are open, every write needs a line user with
// at least the role given (and supervisor actions an e-signature).
func (s *Server) routes() []route {
	eng := s.eng
	var hold, resume, stop func(context.Context, string, string) error
	if eng != nil {
		hold, resume, stop = eng.Hold, eng.Resume, eng.Stop
	}
	return append([]route{
		{pattern: "GET /healthz", read: func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) }},
		{pattern: "GET /api/v1/status", read: func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, eng.Status()) }},
		{pattern: "GET /api/v1/containers/{sscc}", read: s.container},
		{pattern: "GET /api/v1/units/{serial}", read: s.unit},
		{pattern: "POST /api/v1/batches", role: "supervisor", write: s.createBatch},
		{pattern: "POST /api/v1/batch/clearance", role: "operator", write: s.clearance},
		{pattern: "POST /api/v1/batch/start", role: "operator", write: s.start},
		{pattern: "POST /api/v1/batch/hold", role: "operator", write: s.batchState(hold)},
		{pattern: "POST /api/v1/batch/resume", role: "operator", write: s.batchState(resume)},
		{pattern: "POST /api/v1/batch/stop", role: "supervisor", write: s.batchState(stop)},
		{pattern: "POST /api/v1/batch/close", role: "supervisor", write: s.closeBatch},
		{pattern: "POST /api/v1/serials/import", role: "supervisor", write: s.importSerials},
		{pattern: "POST /api/v1/units/{serial}/disposition", role: "operator", write: s.dispose},
		{pattern: "POST /api/v1/units/{serial}/pull", role: "operator", write: s.pull},
		{pattern: "POST /api/v1/containers", role: "operator", write: s.openContainer},
		{pattern: "POST /api/v1/containers/{sscc}/pack", role: "operator", write: s.pack},
		{pattern: "POST /api/v1/containers/{sscc}/unpack", role: "operator", write: s.unpack},
		{pattern: "POST /api/v1/containers/{sscc}/close", role: "operator", write: s.close},
		{pattern: "POST /api/v1/containers/{sscc}/label", role: "operator", write: s.reprintLabel},
		{pattern: "POST /api/v1/rejects/{id}/removed", role: "operator", write: s.confirmRemoval},
		{pattern: "POST /api/v1/caseread", role: "operator", write: s.caseRead},
		{pattern: "POST /api/v1/challenge", role: "operator", write: s.challenge},
		{pattern: "POST /api/v1/config/reload", role: "supervisor", write: s.reloadConfig},
	}, s.equipmentRoutes()...)
}

// Routes lists the API's routes ("METHOD /path/{param}").
func Routes() []string {
	var out []string
	for _, r := range (&Server{}).routes() {
		out = append(out, r.pattern)
	}
	return out
}

// Addr is the bound address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Run serves until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = s.srv.Shutdown(sctx)
		return nil
	}
}

var rank = map[string]int{"operator": 1, "supervisor": 2, "qa": 3, "admin": 4}

func (s *Server) check(id, password string) (config.User, bool) {
	u, ok := s.users[id]
	if !ok || bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(password)) != nil {
		return config.User{}, false
	}
	return u, true
}

func (s *Server) role(min string, h func(w http.ResponseWriter, r *http.Request, u config.User)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, pw, ok := r.BasicAuth()
		if !ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="serialine-edge"`)
			writeErr(w, http.StatusUnauthorized, "login required")
			return
		}
		u, ok := s.check(id, pw)
		if !ok {
			writeErr(w, http.StatusUnauthorized, "unknown user or wrong password")
			return
		}
		if rank[u.Role] < rank[min] {
			writeErr(w, http.StatusForbidden, "user "+u.ID+" ("+u.Role+") may not do this: needs "+min)
			return
		}
		h(w, r, u)
	}
}

// Signature is an e-signature in a request: the signer re-enters id and password.
type Signature struct {
	User     string `json:"user"`
	Password string `json:"password"`
	Meaning  string `json:"meaning"`
	Reason   string `json:"reason"`
}

func (s *Server) sign(sig *Signature, min string) (*record.Signature, error) {
	if sig == nil || sig.User == "" || sig.Password == "" || sig.Meaning == "" {
		return nil, errors.New("e-signature required: user, password and meaning")
	}
	u, ok := s.check(sig.User, sig.Password)
	if !ok {
		return nil, errors.New("e-signature refused: unknown user or wrong password")
	}
	if rank[u.Role] < rank[min] {
		return nil, errors.New("e-signature refused: " + u.ID + " is " + u.Role + ", needs " + min)
	}
	return &record.Signature{User: u.ID, Name: u.Name, Meaning: sig.Meaning, Reason: sig.Reason, Time: s.now().UTC().Format(time.RFC3339)}, nil
}

func (s *Server) createBatch(w http.ResponseWriter, r *http.Request, u config.User) {
	var req struct {
		GTIN    string `json:"gtin"`
		Lot     string `json:"lot"`
		Expiry  string `json:"expiry"`
		Planned int    `json:"planned"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	id, err := s.eng.CreateBatch(r.Context(), line.BatchRequest{GTIN: req.GTIN, Lot: req.Lot, Expiry: req.Expiry, Planned: req.Planned, By: u.ID})
	if err != nil {
		writeEngineErr(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"batch": id})
}

// signed reads a request body holding an e-signature (and other fields)
// and checks the signature for the minimum role.
func (s *Server) signed(w http.ResponseWriter, r *http.Request, minRole string, body any, sig **Signature) (*record.Signature, bool) {
	if !readJSON(w, r, body) {
		return nil, false
	}
	rs, err := s.sign(*sig, minRole)
	if err != nil {
		writeErr(w, http.StatusForbidden, err.Error())
		return nil, false
	}
	return rs, true
}

func (s *Server) clearance(w http.ResponseWriter, r *http.Request, u config.User) {
	var req struct {
		Note      string     `json:"note"`
		Signature *Signature `json:"signature"`
	}
	sig, ok := s.signed(w, r, "supervisor", &req, &req.Signature)
	if !ok {
		return
	}
	if err := s.eng.ClearLine(r.Context(), sig.User, sig, req.Note); err != nil {
		writeEngineErr(w, err)
		return
	}
	writeJSON(w, 200, s.eng.Status())
}

func (s *Server) start(w http.ResponseWriter, r *http.Request, u config.User) {
	if err := s.eng.Start(r.Context(), u.ID); err != nil {
		writeEngineErr(w, err)
		return
	}
	writeJSON(w, 200, s.eng.Status())
}

func (s *Server) closeBatch(w http.ResponseWriter, r *http.Request, u config.User) {
	var req struct {
		LooseReason string     `json:"loose_reason"`
		Signature   *Signature `json:"signature"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	var sig *record.Signature
	if req.Signature != nil {
		var err error
		if sig, err = s.sign(req.Signature, "supervisor"); err != nil {
			writeErr(w, http.StatusForbidden, err.Error())
			return
		}
	}
	rec, err := s.eng.CloseBatch(r.Context(), line.CloseRequest{By: u.ID, LooseReason: req.LooseReason, Signature: sig})
	if err != nil {
		writeEngineErr(w, err)
		return
	}
	writeJSON(w, 200, rec)
}

func (s *Server) importSerials(w http.ResponseWriter, r *http.Request, u config.User) {
	gtin, format := r.URL.Query().Get("gtin"), r.URL.Query().Get("format")
	list, err := serials.ParseList(http.MaxBytesReader(w, r.Body, 256<<20), format)
	if err != nil {
		writeErr(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := s.eng.ImportSerials(r.Context(), gtin, list, "api:"+r.URL.Query().Get("source"), u.ID); err != nil {
		writeEngineErr(w, err)
		return
	}
	writeJSON(w, 200, map[string]any{"gtin": gtin, "imported": len(list)})
}

func (s *Server) dispose(w http.ResponseWriter, r *http.Request, u config.User) {
	var req struct {
		Disposition string     `json:"disposition"`
		Reason      string     `json:"reason"`
		Signature   *Signature `json:"signature"`
	}
	sig, ok := s.signed(w, r, "supervisor", &req, &req.Signature)
	if !ok {
		return
	}
	if err := s.eng.Dispose(r.Context(), r.PathValue("serial"), req.Disposition, req.Reason, sig); err != nil {
		writeEngineErr(w, err)
		return
	}
	writeJSON(w, 200, map[string]string{"serial": r.PathValue("serial"), "disposition": req.Disposition})
}

func (s *Server) pull(w http.ResponseWriter, r *http.Request, u config.User) {
	var req struct {
		Disposition string     `json:"disposition"`
		Reason      string     `json:"reason"`
		Signature   *Signature `json:"signature"`
	}
	sig, ok := s.signed(w, r, "supervisor", &req, &req.Signature)
	if !ok {
		return
	}
	if err := s.eng.PullGood(r.Context(), r.PathValue("serial"), req.Disposition, req.Reason, sig); err != nil {
		writeEngineErr(w, err)
		return
	}
	writeJSON(w, 200, map[string]string{"serial": r.PathValue("serial"), "disposition": req.Disposition})
}

func (s *Server) unpack(w http.ResponseWriter, r *http.Request, u config.User) {
	var req struct {
		Child     string     `json:"child"`
		Reason    string     `json:"reason"`
		Signature *Signature `json:"signature"`
	}
	sig, ok := s.signed(w, r, "supervisor", &req, &req.Signature)
	if !ok {
		return
	}
	if err := s.eng.Unpack(r.Context(), r.PathValue("sscc"), req.Child, req.Reason, sig); err != nil {
		writeEngineErr(w, err)
		return
	}
	writeJSON(w, 200, map[string]string{"unpacked": req.Child, "from": r.PathValue("sscc")})
}

func (s *Server) caseRead(w http.ResponseWriter, r *http.Request, u config.User) {
	var req struct {
		Camera string   `json:"camera"`
		Codes  []string `json:"codes"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	sscc, err := s.eng.CaseRead(r.Context(), req.Camera, req.Codes)
	if err != nil {
		writeEngineErr(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"sscc": sscc})
}

func (s *Server) challenge(w http.ResponseWriter, r *http.Request, u config.User) {
	var req struct {
		Kinds []string `json:"kinds"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	if err := s.eng.ChallengeNow(r.Context(), u.ID, req.Kinds); err != nil {
		writeEngineErr(w, err)
		return
	}
	writeJSON(w, 200, s.eng.Status())
}

func (s *Server) reloadConfig(w http.ResponseWriter, r *http.Request, u config.User) {
	s.reloadMu.Lock()
	fn := s.reload
	s.reloadMu.Unlock()
	if fn == nil {
		writeErr(w, http.StatusNotImplemented, "this edge was not started from a config file: nothing to reload")
		return
	}
	ch, err := fn(r.Context())
	if err != nil {
		var re *line.RuleError
		if errors.As(err, &re) {
			writeErr(w, http.StatusConflict, re.Msg)
			return
		}
		var ce *config.Errors
		if errors.As(err, &ce) {
			writeErr(w, http.StatusUnprocessableEntity, "the config file is not valid, nothing changed:\n"+ce.Error())
			return
		}
		writeErr(w, http.StatusInternalServerError, err.Error())
		return
	}
	s.log.Info().Str("user", u.ID).Str("status", ch.Status).Str("hash", ch.Hash).Msg("config reload requested")
	writeJSON(w, 200, ch)
}

func (s *Server) container(w http.ResponseWriter, r *http.Request) {
	c, err := s.eng.Container(r.PathValue("sscc"))
	if err != nil {
		writeEngineErr(w, err)
		return
	}
	writeJSON(w, 200, c)
}

func (s *Server) unit(w http.ResponseWriter, r *http.Request) {
	u, err := s.eng.Unit(r.URL.Query().Get("gtin"), r.PathValue("serial"))
	if err != nil {
		writeEngineErr(w, err)
		return
	}
	writeJSON(w, 200, u)
}

func (s *Server) batchState(fn func(ctx context.Context, by, reason string) error) func(http.ResponseWriter, *http.Request, config.User) {
	return func(w http.ResponseWriter, r *http.Request, u config.User) {
		var req struct {
			Reason string `json:"reason"`
		}
		if !readJSON(w, r, &req) {
			return
		}
		if err := fn(r.Context(), u.ID, req.Reason); err != nil {
			writeEngineErr(w, err)
			return
		}
		writeJSON(w, 200, s.eng.Status())
	}
}

func (s *Server) openContainer(w http.ResponseWriter, r *http.Request, u config.User) {
	var req struct {
		Level string `json:"level"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	sscc, err := s.eng.OpenContainer(r.Context(), req.Level)
	if err != nil {
		writeEngineErr(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"sscc": sscc})
}

func (s *Server) pack(w http.ResponseWriter, r *http.Request, u config.User) {
	var req struct {
		Child string `json:"child"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	if err := s.eng.Pack(r.Context(), r.PathValue("sscc"), req.Child); err != nil {
		writeEngineErr(w, err)
		return
	}
	writeJSON(w, 200, map[string]string{"packed": req.Child, "into": r.PathValue("sscc")})
}

func (s *Server) close(w http.ResponseWriter, r *http.Request, u config.User) {
	var req struct {
		Partial   bool       `json:"partial"`
		Signature *Signature `json:"signature"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	var sig *record.Signature
	if req.Partial {
		var err error
		if sig, err = s.sign(req.Signature, "supervisor"); err != nil {
			writeErr(w, http.StatusForbidden, err.Error())
			return
		}
		if sig.Reason == "" {
			writeErr(w, http.StatusUnprocessableEntity, "partial close needs a reason")
			return
		}
	}
	if err := s.eng.CloseContainer(r.Context(), r.PathValue("sscc"), req.Partial, sig); err != nil {
		writeEngineErr(w, err)
		return
	}
	writeJSON(w, 200, map[string]string{"closed": r.PathValue("sscc")})
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeErr(w, http.StatusBadRequest, "request body: "+err.Error())
		return false
	}
	return true
}

func writeEngineErr(w http.ResponseWriter, err error) {
	var re *line.RuleError
	if errors.As(err, &re) {
		writeErr(w, http.StatusConflict, re.Msg)
		return
	}
	writeErr(w, http.StatusInternalServerError, err.Error())
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
