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
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"

	"github.com/serialine/serialine/edge/config"
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
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /api/v1/status", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, eng.Status()) })
	mux.HandleFunc("POST /api/v1/batches", s.role("supervisor", s.createBatch))
	mux.HandleFunc("POST /api/v1/batch/clearance", s.role("operator", s.clearance))
	mux.HandleFunc("POST /api/v1/batch/start", s.role("operator", s.start))
	mux.HandleFunc("POST /api/v1/batch/hold", s.role("operator", s.batchState(eng.Hold)))
	mux.HandleFunc("POST /api/v1/batch/resume", s.role("operator", s.batchState(eng.Resume)))
	mux.HandleFunc("POST /api/v1/batch/stop", s.role("supervisor", s.batchState(eng.Stop)))
	mux.HandleFunc("POST /api/v1/batch/close", s.role("supervisor", s.closeBatch))
	mux.HandleFunc("POST /api/v1/serials/import", s.role("supervisor", s.importSerials))
	mux.HandleFunc("POST /api/v1/units/{serial}/disposition", s.role("operator", s.dispose))
	mux.HandleFunc("POST /api/v1/units/{serial}/pull", s.role("operator", s.pull))
	mux.HandleFunc("POST /api/v1/containers", s.role("operator", s.openContainer))
	mux.HandleFunc("POST /api/v1/containers/{sscc}/pack", s.role("operator", s.pack))
	mux.HandleFunc("POST /api/v1/containers/{sscc}/unpack", s.role("operator", s.unpack))
	mux.HandleFunc("POST /api/v1/containers/{sscc}/close", s.role("operator", s.close))
	mux.HandleFunc("POST /api/v1/caseread", s.role("operator", s.caseRead))
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return s, nil
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
