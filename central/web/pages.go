package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/serialine/serialine/central/audit"
	"github.com/serialine/serialine/central/auth"
	"github.com/serialine/serialine/central/esign"
	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/sync/record"
)

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

var funcs = template.FuncMap{
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return time.Since(t).Round(time.Second).String() + " ago"
	},
	"utc": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"pct": func(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) + "%" },
	"json": func(v any) template.JS {
		b, _ := json.Marshal(v)
		return template.JS(b)
	},
	"path": func(parts ...string) string {
		for i := range parts {
			parts[i] = url.PathEscape(parts[i])
		}
		return "/" + strings.Join(parts, "/")
	},
	"split": strings.Fields,
	// refpath links a record named edge/epoch/seq.
	"refpath": func(ref string) string {
		r, err := store.ParseRef(ref)
		if err != nil {
			return "#"
		}
		return fmt.Sprintf("/records/%s/%d/%d", url.PathEscape(r.Edge), r.Epoch, r.Seq)
	},
	"reflink": func(r store.Ref) string {
		return fmt.Sprintf("/records/%s/%d/%d", url.PathEscape(r.Edge), r.Epoch, r.Seq)
	},
}

// ---- dashboard and alerts

func (s *Server) dashboard(w http.ResponseWriter, r *http.Request, u auth.User) {
	lines, alerts := s.hub.snapshot()
	s.render(w, "dashboard.html", s.data(u, "/", map[string]any{"Lines": lines, "Alerts": alerts, "Now": time.Now().UTC().Format(time.RFC3339),
		"CanAck": u.Can(auth.RoleSupervisor)}))
}

func (s *Server) apiLines(w http.ResponseWriter, r *http.Request, _ auth.User) {
	ls, err := s.opt.Store.Lines(r.Context())
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	now := time.Now()
	out := make([]LineView, 0, len(ls))
	snap, _ := s.hub.snapshot()
	trends := map[string][]*float64{}
	for _, v := range snap {
		trends[v.Edge] = v.Trend
	}
	for _, l := range ls {
		v := lineView(l, now)
		v.Trend = trends[l.Edge]
		out = append(out, v)
	}
	writeJSON(w, 200, map[string]any{"lines": out})
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

func alertViews(list []store.Alert) []AlertView {
	out := make([]AlertView, 0, len(list))
	for _, a := range list {
		out = append(out, AlertView{ID: a.ID, At: a.At.UTC(), Severity: a.Severity, Code: a.Code, Edge: a.Edge, Message: a.Message, Ref: a.Ref,
			Active: a.Active, AckedBy: a.AckedBy, AckedAt: timePtr(a.AckedAt), Cleared: timePtr(a.ClearedAt)})
	}
	return out
}

// apiAlerts lists alerts: ?active=1 for active ones only, ?edge=, ?code=.
func (s *Server) apiAlerts(w http.ResponseWriter, r *http.Request, _ auth.User) {
	q := r.URL.Query()
	list, err := s.opt.Store.Alerts(r.Context(), store.AlertFilter{ActiveOnly: q.Get("active") == "1", Edge: q.Get("edge"), Code: q.Get("code"), Limit: 500})
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, 200, map[string]any{"alerts": alertViews(list)})
}

func (s *Server) apiAckAlert(w http.ResponseWriter, r *http.Request, u auth.User) {
	if s.opt.Alerts == nil {
		httpError(w, http.StatusServiceUnavailable, "alerts are not configured")
		return
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		httpError(w, http.StatusBadRequest, "alert id: "+err.Error())
		return
	}
	var req struct {
		Reason string `json:"reason"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	if strings.TrimSpace(req.Reason) == "" {
		httpError(w, http.StatusUnprocessableEntity, "acknowledging an alert needs a reason")
		return
	}
	if err := s.opt.Alerts.Ack(r.Context(), id, u.ID, u.Name, req.Reason); err != nil {
		storeError(w, err)
		return
	}
	writeJSON(w, 200, map[string]any{"acked": id, "by": u.ID})
}

// ---- batches

type batchRow struct {
	store.Batch
	Link string
}

func (s *Server) batchesPage(w http.ResponseWriter, r *http.Request, u auth.User) {
	q := r.URL.Query()
	list, err := s.opt.Store.Batches(r.Context(), store.BatchFilter{Edge: q.Get("edge"), State: q.Get("state"), Lot: q.Get("lot"), Limit: 500})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	rows := make([]batchRow, len(list))
	for i, b := range list {
		rows[i] = batchRow{b, "/batches/" + url.PathEscape(b.Edge) + "/" + url.PathEscape(b.Batch)}
	}
	s.render(w, "batches.html", s.data(u, "/batches", map[string]any{"Batches": rows, "Q": q}))
}

func (s *Server) apiBatches(w http.ResponseWriter, r *http.Request, _ auth.User) {
	q := r.URL.Query()
	list, err := s.opt.Store.Batches(r.Context(), store.BatchFilter{Edge: q.Get("edge"), State: q.Get("state"), Lot: q.Get("lot"), Limit: 500})
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	out := make([]map[string]any, len(list))
	for i, b := range list {
		out[i] = batchJSON(b)
	}
	writeJSON(w, 200, map[string]any{"batches": out})
}

func batchJSON(b store.Batch) map[string]any {
	m := map[string]any{"edge": b.Edge, "batch": b.Batch, "line": b.Line, "gtin": b.GTIN, "lot": b.Lot, "expiry": b.Expiry, "product": b.Product,
		"planned": b.Planned, "state": b.State, "started_at": timePtr(b.StartedAt), "closed_at": timePtr(b.ClosedAt)}
	if b.Reconciliation != nil {
		m["reconciliation"] = json.RawMessage(b.Reconciliation)
	}
	if b.Closed.Seq != 0 {
		m["closed_record"] = b.Closed.String()
	}
	if b.ReleasedBy != "" {
		m["released"] = map[string]any{"by": b.ReleasedBy, "name": b.ReleasedName, "at": b.ReleasedAt.UTC(), "signature": b.Release.String()}
	}
	if b.Units != nil {
		m["units"] = b.Units
		m["quarantined"], m["conflicts"] = b.Quarantined, b.Conflicts
	}
	return m
}

// SignatureView is an e-signature as pages and the API show it (11.50):
// printed name, date and time (UTC), meaning; what it signed and where it
// is recorded.
type SignatureView struct {
	User    string `json:"user"`
	Name    string `json:"name"`
	Meaning string `json:"meaning"`
	Time    string `json:"time"`
	Reason  string `json:"reason,omitempty"`
	Action  string `json:"action"`
	Target  string `json:"target,omitempty"`
	// Record is where the signature is recorded; Signed the record it signs.
	Record   store.Ref `json:"-"`
	RecordID string    `json:"record"`
	Signed   string    `json:"signed,omitempty"`
	Verified string    `json:"chain"` // verified, pending, broken
	Field    string    `json:"field,omitempty"`
	Old      string    `json:"old,omitempty"`
	New      string    `json:"new,omitempty"`
}

// entryView decodes an audit entry's record.
type entryView struct {
	store.AuditEntry
	Reason, Field, Old, New string
	Sig                     *record.Signature
	Chain                   string
	Body                    string
}

func (s *Server) chainState(ref store.Ref) string {
	if s.opt.Verifier == nil {
		return "unchecked"
	}
	c, ok := s.opt.Verifier.Chain(ref.Edge)
	switch {
	case !ok:
		return "pending"
	case c.Err != "":
		return "broken"
	case c.Verified(ref.Epoch, ref.Seq):
		return "verified"
	}
	return "pending"
}

func (s *Server) entry(e store.AuditEntry) entryView {
	v := entryView{AuditEntry: e, Chain: s.chainState(e.Ref)}
	if e.Record.Record.Hash() != e.Record.Hash {
		v.Chain = "broken"
	}
	body := e.Record.Record.Body
	v.Body = string(body)
	if e.Record.Record.Kind == record.KindUserAction {
		var a record.UserAction
		if json.Unmarshal(body, &a) == nil {
			v.Reason, v.Field, v.Old, v.New, v.Sig = a.Reason, a.Field, a.Old, a.New, a.Signature
		}
	} else {
		var b struct {
			Signature *record.Signature `json:"signature"`
		}
		if json.Unmarshal(body, &b) == nil {
			v.Sig = b.Signature
			if b.Signature != nil {
				v.Reason = b.Signature.Reason
			}
		}
	}
	return v
}

func (v entryView) signature() (SignatureView, bool) {
	if v.Sig == nil {
		return SignatureView{}, false
	}
	sv := SignatureView{User: v.Sig.User, Name: v.Sig.Name, Meaning: v.Sig.Meaning, Time: v.Sig.Time, Reason: v.Sig.Reason, Action: v.Action, Target: v.Target,
		Record: v.Ref, RecordID: v.Ref.String(), Signed: v.Sig.Ref, Verified: v.Chain, Field: v.Field, Old: v.Old, New: v.New}
	if sv.Signed == "" {
		sv.Signed = v.Ref.String() // signed inside its own record
	}
	return sv, true
}

type batchDetail struct {
	Batch      store.Batch
	Recon      *record.Reconciliation
	Closed     *record.BatchClosed
	Containers []store.Container
	Signatures []SignatureView
	// Rejects: items whose reject did not reach the PLC, with their
	// confirmed removal.
	Rejects    []esign.RejectEvent
	Problems   []string
	CanRelease bool
}

func (s *Server) batchDetail(r *http.Request) (batchDetail, error) {
	ctx := r.Context()
	edge, batch := r.PathValue("edge"), r.PathValue("batch")
	var d batchDetail
	b, err := s.opt.Store.Batch(ctx, edge, batch)
	if err != nil {
		return d, err
	}
	d.Batch = b
	if b.Reconciliation != nil {
		var rec record.Reconciliation
		if json.Unmarshal(b.Reconciliation, &rec) == nil {
			d.Recon = &rec
		}
	}
	_, closed, err := esign.ClosedRecord(ctx, s.opt.Store, b)
	if err != nil {
		return d, err
	}
	d.Closed = closed
	if d.Containers, err = s.opt.Store.Containers(ctx, store.ContainerFilter{Edge: edge, Batch: batch, Limit: 5000}); err != nil {
		return d, err
	}
	// Signatures: the edge's signed records of the batch, central's
	// decisions on the batch and on its partial containers.
	seen := map[store.Ref]bool{}
	add := func(f store.AuditFilter) error {
		list, err := s.opt.Store.Audit(ctx, f)
		if err != nil {
			return err
		}
		for _, e := range list {
			if seen[e.Ref] {
				continue
			}
			seen[e.Ref] = true
			if sv, ok := s.entry(e).signature(); ok {
				d.Signatures = append(d.Signatures, sv)
			}
		}
		return nil
	}
	if err := add(store.AuditFilter{Edge: edge, Batch: batch, SignedOnly: true, Limit: 1000}); err != nil {
		return d, err
	}
	if err := add(store.AuditFilter{Target: store.BatchTarget(edge, batch), SignedOnly: true, Limit: 100}); err != nil {
		return d, err
	}
	for _, c := range d.Containers {
		if c.Partial {
			if err := add(store.AuditFilter{Target: store.ContainerTarget(edge, c.SSCC), SignedOnly: true, Limit: 10}); err != nil {
				return d, err
			}
		}
	}
	sort.Slice(d.Signatures, func(i, j int) bool { return d.Signatures[i].Time < d.Signatures[j].Time })
	if d.Rejects, err = esign.UndeliveredRejects(ctx, s.opt.Store, b); err != nil {
		return d, err
	}
	if d.Problems, err = esign.ReleaseProblemsWith(ctx, s.opt.Store, b, closed, d.Rejects); err != nil {
		return d, err
	}
	d.CanRelease = len(d.Problems) == 0
	return d, nil
}

func (s *Server) batchPage(w http.ResponseWriter, r *http.Request, u auth.User) {
	d, err := s.batchDetail(r)
	if errors.Is(err, store.ErrNotFound) {
		w.WriteHeader(http.StatusNotFound)
		s.render(w, "error.html", s.data(u, "/batches", map[string]any{"Error": err.Error()}))
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	s.render(w, "batch.html", s.data(u, "/batches", map[string]any{"D": d, "IsQA": u.Can(auth.RoleQA)}))
}

func (s *Server) apiBatch(w http.ResponseWriter, r *http.Request, _ auth.User) {
	d, err := s.batchDetail(r)
	if err != nil {
		storeError(w, err)
		return
	}
	m := batchJSON(d.Batch)
	m["containers"] = d.Containers
	m["signatures"] = d.Signatures
	m["release_problems"] = d.Problems
	if d.Signatures == nil {
		m["signatures"] = []SignatureView{}
	}
	writeJSON(w, 200, m)
}

// ---- audit trail

func auditFilter(q url.Values) (store.AuditFilter, error) {
	f := store.AuditFilter{User: q.Get("user"), Action: q.Get("action"), Batch: q.Get("batch"), Edge: q.Get("edge"), Target: q.Get("target"),
		SignedOnly: q.Get("signed") == "1", Limit: 500}
	for _, x := range []struct {
		name string
		t    *time.Time
		end  bool
	}{{"from", &f.From, false}, {"to", &f.To, true}} {
		v := q.Get(x.name)
		if v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			d, derr := time.Parse("2006-01-02", v)
			if derr != nil {
				return f, fmt.Errorf("%s %q: want a date (2006-01-02) or an RFC 3339 time", x.name, v)
			}
			t = d
			if x.end {
				t = t.AddDate(0, 0, 1) // "to" a date includes that day
			}
		}
		*x.t = t
	}
	if n, err := strconv.Atoi(q.Get("limit")); err == nil && n > 0 && n <= 5000 {
		f.Limit = n
	}
	return f, nil
}

func (s *Server) auditEntries(r *http.Request) ([]entryView, error) {
	f, err := auditFilter(r.URL.Query())
	if err != nil {
		return nil, err
	}
	list, err := s.opt.Store.Audit(r.Context(), f)
	if err != nil {
		return nil, err
	}
	out := make([]entryView, len(list))
	for i, e := range list {
		out[i] = s.entry(e)
	}
	return out, nil
}

func (s *Server) chains() []audit.ChainStatus {
	if s.opt.Verifier == nil {
		return nil
	}
	return s.opt.Verifier.Status()
}

func (s *Server) auditPage(w http.ResponseWriter, r *http.Request, u auth.User) {
	list, err := s.auditEntries(r)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		s.render(w, "error.html", s.data(u, "/audit", map[string]any{"Error": err.Error()}))
		return
	}
	s.render(w, "audit.html", s.data(u, "/audit", map[string]any{"Entries": list, "Q": r.URL.Query(), "Chains": s.chains()}))
}

// AuditView is one audit entry in the API.
type AuditView struct {
	Record  string            `json:"record"` // edge/epoch/seq
	Hash    string            `json:"hash"`
	At      time.Time         `json:"at"`
	User    string            `json:"user"`
	Name    string            `json:"name,omitempty"`
	Action  string            `json:"action"`
	Target  string            `json:"target,omitempty"`
	Batch   string            `json:"batch,omitempty"`
	Field   string            `json:"field,omitempty"`
	Old     string            `json:"old,omitempty"`
	New     string            `json:"new,omitempty"`
	Reason  string            `json:"reason,omitempty"`
	Sig     *record.Signature `json:"signature,omitempty"`
	Chain   string            `json:"chain"`
	Kind    string            `json:"kind"`
	Journal bool              `json:"central"`
}

func (s *Server) apiAudit(w http.ResponseWriter, r *http.Request, _ auth.User) {
	list, err := s.auditEntries(r)
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	out := make([]AuditView, len(list))
	for i, e := range list {
		out[i] = AuditView{Record: e.Ref.String(), Hash: e.Record.Hash.String(), At: e.At, User: e.User, Name: e.Name, Action: e.Action, Target: e.Target,
			Batch: e.Batch, Field: e.Field, Old: e.Old, New: e.New, Reason: e.Reason, Sig: e.Sig, Chain: e.Chain, Kind: string(e.Record.Record.Kind), Journal: store.IsJournal(e.Ref.Edge)}
	}
	writeJSON(w, 200, map[string]any{"entries": out, "chains": s.chains()})
}

func (s *Server) apiChains(w http.ResponseWriter, r *http.Request, _ auth.User) {
	c := s.chains()
	if c == nil {
		c = []audit.ChainStatus{}
	}
	writeJSON(w, 200, map[string]any{"chains": c})
}

// ---- records and corrections

type recordDetail struct {
	Stored      store.Stored
	Ref         store.Ref
	Body        string
	Chain       string
	Corrections []entryView
	Signatures  []SignatureView
	IsJournal   bool
}

func (s *Server) recordDetail(r *http.Request) (recordDetail, error) {
	var d recordDetail
	ref, err := store.ParseRef(r.PathValue("edge") + "/" + r.PathValue("epoch") + "/" + r.PathValue("seq"))
	if err != nil {
		return d, fmt.Errorf("%w: %v", store.ErrNotFound, err)
	}
	st, err := esign.Record(r.Context(), s.opt.Store, ref)
	if err != nil {
		return d, err
	}
	d.Stored, d.Ref, d.Chain, d.IsJournal = st, ref, s.chainState(ref), store.IsJournal(ref.Edge)
	var pretty bytes.Buffer
	if json.Indent(&pretty, st.Record.Body, "", "  ") == nil {
		d.Body = pretty.String()
	} else {
		d.Body = string(st.Record.Body)
	}
	list, err := s.opt.Store.Audit(r.Context(), store.AuditFilter{Target: ref.String(), Limit: 500})
	if err != nil {
		return d, err
	}
	for _, e := range list {
		v := s.entry(e)
		if e.Action == store.ActionRecordCorrected {
			d.Corrections = append(d.Corrections, v)
		}
		if sv, ok := v.signature(); ok {
			d.Signatures = append(d.Signatures, sv)
		}
	}
	return d, nil
}

func (s *Server) recordPage(w http.ResponseWriter, r *http.Request, u auth.User) {
	d, err := s.recordDetail(r)
	if err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, esign.ErrUnknown) {
			code = http.StatusNotFound
		}
		w.WriteHeader(code)
		s.render(w, "error.html", s.data(u, "/audit", map[string]any{"Error": err.Error()}))
		return
	}
	s.render(w, "record.html", s.data(u, "/audit", map[string]any{"D": d, "IsQA": u.Can(auth.RoleQA)}))
}

func (s *Server) apiRecord(w http.ResponseWriter, r *http.Request, _ auth.User) {
	d, err := s.recordDetail(r)
	if err != nil {
		storeError(w, err)
		return
	}
	rec := d.Stored.Record
	corr := make([]map[string]any, 0, len(d.Corrections))
	for _, c := range d.Corrections {
		corr = append(corr, map[string]any{"record": c.Ref.String(), "field": c.Field, "old": c.Old, "new": c.New, "reason": c.Reason, "signature": c.Sig})
	}
	sigs := d.Signatures
	if sigs == nil {
		sigs = []SignatureView{}
	}
	writeJSON(w, 200, map[string]any{"record": d.Ref.String(), "kind": rec.Kind, "time": rec.Time, "hash": d.Stored.Hash.String(), "prev": rec.Prev.String(),
		"signed": len(rec.Sig) > 0, "body": json.RawMessage(rec.Body), "chain": d.Chain, "corrections": corr, "signatures": sigs})
}

// ---- e-signatures

// SignRequest is the body of POST /api/v1/signatures.
type SignRequest struct {
	// Action names the signing: batch.release, container.approve_partial,
	// record.correct, record.review, or one another package registered.
	Action string            `json:"action"`
	Target string            `json:"target"`
	Params map[string]string `json:"params,omitempty"`
	esign.Credentials
}

func (s *Server) apiSign(w http.ResponseWriter, r *http.Request, u auth.User) {
	if s.opt.Signer == nil {
		httpError(w, http.StatusServiceUnavailable, "e-signatures are not configured")
		return
	}
	var req SignRequest
	if !readJSON(w, r, &req) {
		return
	}
	res, err := s.opt.Signer.SignNamed(r.Context(), u, req.Action, req.Target, req.Params, req.Credentials)
	if s.opt.Verifier != nil {
		s.opt.Verifier.Kick() // the signature record (or a failed-attempt record) is new
	}
	if err != nil {
		s.log.Warn().Err(err).Str("user", u.ID).Str("action", req.Action).Str("target", req.Target).Msg("signature refused")
		storeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, res)
}

func (s *Server) apiVerifySignature(w http.ResponseWriter, r *http.Request, _ auth.User) {
	ref, err := store.ParseRef(r.URL.Query().Get("record"))
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	sig, err := esign.VerifyRef(r.Context(), s.opt.Store, ref)
	if err != nil {
		if errors.Is(err, esign.ErrUnknown) {
			httpError(w, http.StatusNotFound, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"valid": false, "error": err.Error(), "signature": sig})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"valid": true, "signature": sig})
}

// ---- users

func (s *Server) usersPage(w http.ResponseWriter, r *http.Request, u auth.User) {
	list, err := s.opt.Users.List(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	s.render(w, "users.html", s.data(u, "/users", map[string]any{"Users": list, "Roles": []string{auth.RoleOperator, auth.RoleSupervisor, auth.RoleQA, auth.RoleAdmin}}))
}

func (s *Server) apiUsers(w http.ResponseWriter, r *http.Request, _ auth.User) {
	list, err := s.opt.Users.List(r.Context())
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	out := make([]map[string]any, len(list))
	for i, a := range list {
		out[i] = map[string]any{"id": a.ID, "name": a.Name, "role": a.Role, "disabled": a.Disabled, "locked": a.Locked, "failed": a.Failed,
			"created": timePtr(a.Created), "password_changed": timePtr(a.PasswordChanged), "last_login": timePtr(a.LastLogin)}
	}
	writeJSON(w, 200, map[string]any{"users": out})
}

func (s *Server) apiAddUser(w http.ResponseWriter, r *http.Request, u auth.User) {
	var req struct {
		ID, Name, Role, Password, Reason string
	}
	if !readJSON(w, r, &req) {
		return
	}
	if err := s.opt.Users.Add(r.Context(), auth.ActorOf(u), req.ID, req.Name, req.Role, req.Password, req.Reason); err != nil {
		httpError(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"created": req.ID})
}

func (s *Server) apiChangeUser(w http.ResponseWriter, r *http.Request, u auth.User) {
	var req struct {
		Change string `json:"change"` // disable, enable, unlock, role, name, password
		Value  string `json:"value"`
		Reason string `json:"reason"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	if strings.TrimSpace(req.Reason) == "" {
		httpError(w, http.StatusUnprocessableEntity, "a change to an account needs a reason")
		return
	}
	id, by, ctx := r.PathValue("id"), auth.ActorOf(u), r.Context()
	var err error
	switch req.Change {
	case "disable":
		err = s.opt.Users.SetDisabled(ctx, by, id, true, req.Reason)
	case "enable":
		err = s.opt.Users.SetDisabled(ctx, by, id, false, req.Reason)
	case "unlock":
		err = s.opt.Users.Unlock(ctx, by, id, req.Reason)
	case "role":
		err = s.opt.Users.SetRole(ctx, by, id, req.Value, req.Reason)
	case "name":
		err = s.opt.Users.SetName(ctx, by, id, req.Value, req.Reason)
	case "password":
		err = s.opt.Users.SetPassword(ctx, by, id, req.Value, req.Reason)
	default:
		httpError(w, http.StatusBadRequest, fmt.Sprintf("change %q: want disable, enable, unlock, role, name or password", req.Change))
		return
	}
	if err != nil {
		httpError(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	writeJSON(w, 200, map[string]string{"changed": id, "change": req.Change})
}

// apiOwnPassword: a user changes their own password (the current one re-entered).
func (s *Server) apiOwnPassword(w http.ResponseWriter, r *http.Request, u auth.User) {
	var req struct {
		Current string `json:"current"`
		New     string `json:"new"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	if _, err := s.opt.Users.ChangeOwnPassword(r.Context(), u.ID, req.Current, req.New); err != nil {
		code := http.StatusUnprocessableEntity
		if errors.Is(err, auth.ErrBadLogin) || errors.Is(err, auth.ErrLocked) || errors.Is(err, auth.ErrDisabled) {
			code = http.StatusForbidden
		}
		httpError(w, code, err.Error())
		return
	}
	writeJSON(w, 200, map[string]string{"changed": u.ID})
}
