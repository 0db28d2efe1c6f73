// Package enroll is the admin's side of edge identities at central:
// enrolling an edge's public key and rotating it with an overlap period.
// Only admins may do either, and every attempt is a user action in
// central's journal (21 CFR 11.10(e)): recorded before the store changes,
// and a failed change is recorded as failed.
//
// Key rotation, end to end:
//
//  1. On the edge, `serialine-edge key rotate --config FILE` writes the next
//     key (edge.key.next) and prints its public key.
//  2. An admin enrolls it at central: `serialine-central enroll --edge ID
//     --key NEW --from TIME --overlap 24h` (or POST
//     /api/v1/edges/{id}/keys). Records signed by the old key stay valid
//     until TIME+overlap.
//  3. The edge switches at its next start: it appends a key.rotated record
//     signed by the old key that announces the new one, and signs
//     everything after it with the new key. Central stores that record
//     only once the new key is enrolled, and from then on refuses the old
//     key for this chain.
package enroll

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/serialine/serialine/central/auth"
	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/sync/record"
)

// Journal records user actions (central/journal.Journal).
type Journal interface {
	Action(ctx context.Context, a record.UserAction) (store.Stored, error)
}

// Service enrolls edges and rotates their keys.
type Service struct {
	Store   store.Store
	Journal Journal
	// Changed is called after an edge's keys changed (central's ingest
	// drops its cached key ring).
	Changed func(edge string)
	Now     func() time.Time
}

// ErrJournal: the action could not be recorded, so it was not done.
var ErrJournal = errors.New("journal unavailable")

// ErrForbidden: the user is not an admin.
var ErrForbidden = errors.New("only an admin may enroll edges or rotate their keys")

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Service) record(ctx context.Context, u auth.User, action, target, old, new, reason string) error {
	_, err := s.Journal.Action(ctx, record.UserAction{User: u.ID, Name: u.Name, Role: u.Role, Action: action, Target: target, Old: old, New: new, Reason: reason})
	if err != nil {
		return fmt.Errorf("%s of edge %s not done: it could not be recorded in the journal: %w: %w", action, target, ErrJournal, err)
	}
	return nil
}

// Enroll registers a new edge id with its public key.
func (s *Service) Enroll(ctx context.Context, u auth.User, edge string, pub []byte, reason string) error {
	if u.Role != auth.RoleAdmin {
		return ErrForbidden
	}
	if err := store.ValidLineEdgeID(edge); err != nil {
		return err
	}
	if len(pub) != 32 {
		return fmt.Errorf("edge %s: public key must be 32 bytes (Ed25519)", edge)
	}
	if e, err := s.Store.Edge(ctx, edge); err == nil {
		if string(e.PublicKey) == string(pub) {
			return nil // already enrolled with this key
		}
		return fmt.Errorf("edge %s: %w with another key (rotate its key instead)", edge, store.ErrExists)
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	key := record.EncodePublicKey(pub)
	if err := s.record(ctx, u, "edge.enrolled", edge, "", key, reason); err != nil {
		return err
	}
	if err := s.Store.EnrollEdge(ctx, store.Edge{ID: edge, PublicKey: pub, EnrolledBy: u.ID, EnrolledAt: s.now()}); err != nil {
		_ = s.record(ctx, u, "edge.enroll_failed", edge, "", key, err.Error())
		return err
	}
	if s.Changed != nil {
		s.Changed(edge)
	}
	return nil
}

// Rotate enrolls the edge's next key, valid from `from` (zero: now); the
// keys in force stay valid for `overlap` after it.
func (s *Service) Rotate(ctx context.Context, u auth.User, edge string, pub []byte, from time.Time, overlap time.Duration, reason string) error {
	if u.Role != auth.RoleAdmin {
		return ErrForbidden
	}
	if len(pub) != 32 {
		return fmt.Errorf("edge %s: public key must be 32 bytes (Ed25519)", edge)
	}
	if overlap < 0 {
		return fmt.Errorf("edge %s: overlap %s is negative", edge, overlap)
	}
	cur, err := s.Store.Edge(ctx, edge)
	if err != nil {
		return err
	}
	if from.IsZero() {
		from = s.now()
	}
	from = from.UTC().Truncate(time.Microsecond)
	key := record.EncodePublicKey(pub)
	detail := fmt.Sprintf("%s valid from %s, old key valid until %s", key, from.Format(time.RFC3339), from.Add(overlap).Format(time.RFC3339))
	if err := s.record(ctx, u, "edge.key_rotated", edge, record.EncodePublicKey(cur.PublicKey), detail, reason); err != nil {
		return err
	}
	if err := s.Store.RotateEdgeKey(ctx, store.EdgeKey{Edge: edge, PublicKey: pub, ValidFrom: from, EnrolledBy: u.ID, EnrolledAt: s.now()}, overlap); err != nil {
		_ = s.record(ctx, u, "edge.key_rotation_failed", edge, record.EncodePublicKey(cur.PublicKey), detail, err.Error())
		return err
	}
	if s.Changed != nil {
		s.Changed(edge)
	}
	return nil
}

// Routes are the admin API (mounted behind central's login):
//
//	GET  /api/v1/edges             edges and their key history
//	POST /api/v1/edges             {"id", "public_key", "reason"}
//	POST /api/v1/edges/{id}/keys   {"public_key", "valid_from" (RFC 3339, optional), "overlap" ("24h"), "reason"}
//
// The POSTs need the admin's id and password on the request itself (HTTP
// basic, as for an e-signature) and a JSON body.
func (s *Service) Routes() map[string]func(http.ResponseWriter, *http.Request, auth.User) {
	return map[string]func(http.ResponseWriter, *http.Request, auth.User){
		"GET /api/v1/edges":            s.list,
		"POST /api/v1/edges":           s.postEdge,
		"POST /api/v1/edges/{id}/keys": s.postKey,
	}
}

type keyJSON struct {
	PublicKey  string `json:"public_key"`
	ValidFrom  string `json:"valid_from,omitempty"`
	ValidUntil string `json:"valid_until,omitempty"`
	EnrolledBy string `json:"enrolled_by"`
	EnrolledAt string `json:"enrolled_at"`
}

type edgeJSON struct {
	ID   string    `json:"id"`
	Keys []keyJSON `json:"keys"`
}

func ts(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func (s *Service) list(w http.ResponseWriter, r *http.Request, u auth.User) {
	edges, err := s.Store.Edges(r.Context())
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	out := []edgeJSON{}
	for _, e := range edges {
		keys, err := s.Store.EdgeKeys(r.Context(), e.ID)
		if err != nil {
			httpError(w, http.StatusInternalServerError, err.Error())
			return
		}
		ej := edgeJSON{ID: e.ID, Keys: []keyJSON{}}
		for _, k := range keys {
			ej.Keys = append(ej.Keys, keyJSON{PublicKey: record.EncodePublicKey(k.PublicKey), ValidFrom: ts(k.ValidFrom), ValidUntil: ts(k.ValidUntil), EnrolledBy: k.EnrolledBy, EnrolledAt: ts(k.EnrolledAt)})
		}
		out = append(out, ej)
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}

// signed checks what a changing request must carry.
func signed(w http.ResponseWriter, r *http.Request, u auth.User) bool {
	if u.Role != auth.RoleAdmin {
		httpError(w, http.StatusForbidden, ErrForbidden.Error())
		return false
	}
	if _, _, ok := r.BasicAuth(); !ok {
		httpError(w, http.StatusUnauthorized, "this action needs the admin's id and password on the request (HTTP basic)")
		return false
	}
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		httpError(w, http.StatusUnsupportedMediaType, "want a JSON body (Content-Type: application/json)")
		return false
	}
	return true
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		httpError(w, http.StatusBadRequest, "request body: "+err.Error())
		return false
	}
	return true
}

func (s *Service) postEdge(w http.ResponseWriter, r *http.Request, u auth.User) {
	if !signed(w, r, u) {
		return
	}
	var req struct {
		ID        string `json:"id"`
		PublicKey string `json:"public_key"`
		Reason    string `json:"reason"`
	}
	if !decode(w, r, &req) {
		return
	}
	pub, err := record.ParsePublicKey(req.PublicKey)
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := s.Enroll(r.Context(), u, req.ID, pub, req.Reason); err != nil {
		httpError(w, status(err), err.Error())
		return
	}
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(map[string]string{"id": req.ID, "public_key": req.PublicKey})
}

func (s *Service) postKey(w http.ResponseWriter, r *http.Request, u auth.User) {
	if !signed(w, r, u) {
		return
	}
	var req struct {
		PublicKey string `json:"public_key"`
		ValidFrom string `json:"valid_from"`
		Overlap   string `json:"overlap"`
		Reason    string `json:"reason"`
	}
	if !decode(w, r, &req) {
		return
	}
	pub, err := record.ParsePublicKey(req.PublicKey)
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	var from time.Time
	if req.ValidFrom != "" {
		if from, err = time.Parse(time.RFC3339, req.ValidFrom); err != nil {
			httpError(w, http.StatusBadRequest, "valid_from: want RFC 3339: "+err.Error())
			return
		}
	}
	var overlap time.Duration
	if req.Overlap != "" {
		if overlap, err = time.ParseDuration(req.Overlap); err != nil {
			httpError(w, http.StatusBadRequest, "overlap: "+err.Error())
			return
		}
	}
	if err := s.Rotate(r.Context(), u, r.PathValue("id"), pub, from, overlap, req.Reason); err != nil {
		httpError(w, status(err), err.Error())
		return
	}
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(map[string]string{"id": r.PathValue("id"), "public_key": req.PublicKey})
}

func status(err error) int {
	switch {
	case errors.Is(err, ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, store.ErrExists):
		return http.StatusConflict
	case errors.Is(err, ErrJournal):
		return http.StatusServiceUnavailable
	default:
		return http.StatusBadRequest
	}
}

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
