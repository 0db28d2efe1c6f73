// Package esign is central's electronic signature service (21 CFR Part 11
// subpart C). A signing is always both components, the signer's id and
// password re-entered (11.200(a)), checked by central/auth and counted
// toward the lockout; the signer must be the logged-in user. The
// signature is a user action in central's journal that shows the printed
// name, the date and time (UTC) and the meaning (11.50), and carries the
// signed record's reference and SHA-256, so it verifies against that record
// and no other (11.70): Verify fails for any other record.
//
// What can be signed is named: handlers turn a target ("edge/batch",
// "edge/sscc", "edge/epoch/seq") into an Intent (the journal action, the
// record signed, the minimum role, and the checks that must pass). The
// built-in ones are batch release, partial close approval, record
// correction and record review; other packages add theirs with Handle
// (downtime remediation sign-off, calibration acceptance).
package esign

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/serialine/serialine/central/auth"
	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/sync/record"
)

// Meanings a signature may carry (11.50(a)(3)).
var Meanings = []string{"approval", "review", "responsibility", "authorship", "verification"}

// ValidMeaning reports whether m is one of Meanings.
func ValidMeaning(m string) bool { return slices.Contains(Meanings, m) }

// Credentials are what the signer enters for one signing.
type Credentials struct {
	User     string `json:"user"`
	Password string `json:"password"`
	Meaning  string `json:"meaning"`
	Reason   string `json:"reason"`
}

// Intent is what a signing does: the journal action, its target, the
// record signed, who may sign it and what must hold first.
type Intent struct {
	Action  string
	Target  string
	Ref     store.Ref // the record the signature is bound to
	MinRole string
	// Field, Old, New describe a change (record corrections, state changes).
	Field, Old, New string
	// Check runs just before the signature is written, with the signed
	// record (verified against its stored hash): an error refuses the
	// signing.
	Check func(ctx context.Context, signed store.Stored) error
}

// Handler resolves a named signing's target (and parameters) to an Intent.
type Handler func(ctx context.Context, target string, params map[string]string) (Intent, error)

// Journal appends user actions (central/journal.Journal).
type Journal interface {
	Action(ctx context.Context, a record.UserAction) (store.Stored, error)
}

// Checker verifies a signer's id and password (central/auth.Users).
type Checker interface {
	Check(ctx context.Context, id, password, what string) (auth.User, error)
}

// Signer is the signing service as other packages use it.
type Signer interface {
	// Sign signs an intent for the logged-in user by (empty by.ID: no
	// session, e.g. a command).
	Sign(ctx context.Context, by auth.User, in Intent, cred Credentials) (Result, error)
	// SignNamed resolves a registered handler and signs its intent.
	SignNamed(ctx context.Context, by auth.User, name, target string, params map[string]string, cred Credentials) (Result, error)
	// Handle registers a named signing.
	Handle(name string, h Handler)
}

// Result is a written signature.
type Result struct {
	// Journal is the signature's record in central's journal, Hash its hash.
	Journal store.Ref   `json:"journal"`
	Hash    record.Hash `json:"hash"`
	Action  string      `json:"action"`
	Target  string      `json:"target"`
	record.Signature
}

// Errors.
var (
	// ErrRefused: the signing was refused (credentials, role, meaning,
	// reason, or a check of the intent); the message says why.
	ErrRefused = errors.New("signature refused")
	// ErrUnknown: no handler of that name, or the target does not exist.
	ErrUnknown = errors.New("nothing to sign")
)

func refused(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrRefused, fmt.Sprintf(format, a...))
}

// Options configure the service.
type Options struct {
	Store   store.Store
	Journal Journal
	Users   Checker
	Log     zerolog.Logger
	Now     func() time.Time
}

// Service signs.
type Service struct {
	opt Options
	log zerolog.Logger

	mu       sync.Mutex // one signing at a time: checks and the signature are not interleaved
	handlers map[string]Handler
}

var _ Signer = (*Service)(nil)

// New builds the service with the built-in handlers.
func New(opt Options) *Service {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	s := &Service{opt: opt, log: opt.Log.With().Str("component", "esign").Logger(), handlers: map[string]Handler{}}
	s.Handle("batch.release", s.batchRelease)
	s.Handle("container.approve_partial", s.approvePartial)
	s.Handle("record.correct", s.correct)
	s.Handle("record.review", s.review)
	return s
}

// Handle implements Signer.
func (s *Service) Handle(name string, h Handler) {
	s.mu.Lock()
	s.handlers[name] = h
	s.mu.Unlock()
}

// Names lists the registered signings.
func (s *Service) Names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for n := range s.handlers {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// SignNamed implements Signer.
func (s *Service) SignNamed(ctx context.Context, by auth.User, name, target string, params map[string]string, cred Credentials) (Result, error) {
	s.mu.Lock()
	h, ok := s.handlers[name]
	s.mu.Unlock()
	if !ok {
		return Result{}, fmt.Errorf("%w: no signing named %q (known: %s)", ErrUnknown, name, strings.Join(s.Names(), ", "))
	}
	in, err := h(ctx, target, params)
	if err != nil {
		return Result{}, err
	}
	return s.Sign(ctx, by, in, cred)
}

// Record reads one stored record and checks that its bytes still hash to
// the stored hash.
func Record(ctx context.Context, st store.Store, ref store.Ref) (store.Stored, error) {
	recs, err := st.Records(ctx, ref.Edge, ref.Epoch, ref.Seq, 1)
	if err != nil {
		return store.Stored{}, err
	}
	if len(recs) == 0 || recs[0].Record.Seq != ref.Seq {
		return store.Stored{}, fmt.Errorf("%w: record %s is not stored", ErrUnknown, ref)
	}
	if recs[0].Record.Hash() != recs[0].Hash {
		return store.Stored{}, fmt.Errorf("record %s: stored bytes do not match its stored hash", ref)
	}
	return recs[0], nil
}

// Sign implements Signer.
func (s *Service) Sign(ctx context.Context, by auth.User, in Intent, cred Credentials) (Result, error) {
	if in.Action == "" || in.Ref.Seq == 0 || in.MinRole == "" {
		return Result{}, errors.New("esign: an intent needs an action, a record and a minimum role")
	}
	if !ValidMeaning(cred.Meaning) {
		return Result{}, refused("meaning %q: want one of %s", cred.Meaning, strings.Join(Meanings, ", "))
	}
	if strings.TrimSpace(cred.Reason) == "" {
		return Result{}, refused("a reason is required")
	}
	if cred.User == "" || cred.Password == "" {
		return Result{}, refused("re-enter your user id and password to sign")
	}
	if by.ID != "" && cred.User != by.ID {
		return Result{}, refused("signed in as %s: a signature is made by the logged-in user only", by.ID)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	signer, err := s.opt.Users.Check(ctx, cred.User, cred.Password, "signature")
	if err != nil {
		if errors.Is(err, auth.ErrBadLogin) || errors.Is(err, auth.ErrLocked) || errors.Is(err, auth.ErrDisabled) {
			return Result{}, refused("%v", err)
		}
		return Result{}, err
	}
	if !signer.Can(in.MinRole) {
		return Result{}, refused("%s is %s; %s needs %s", signer.ID, signer.Role, in.Action, in.MinRole)
	}
	signed, err := Record(ctx, s.opt.Store, in.Ref)
	if err != nil {
		return Result{}, err
	}
	if in.Check != nil {
		if err := in.Check(ctx, signed); err != nil {
			if errors.Is(err, ErrRefused) {
				return Result{}, err
			}
			return Result{}, refused("%v", err)
		}
	}
	sig := record.Signature{User: signer.ID, Name: signer.Name, Meaning: cred.Meaning, Reason: cred.Reason,
		Time: s.opt.Now().UTC().Format(time.RFC3339), Ref: in.Ref.String(), RefHash: signed.Hash.String()}
	st, err := s.opt.Journal.Action(ctx, record.UserAction{User: signer.ID, Name: signer.Name, Role: signer.Role, Action: in.Action, Target: in.Target,
		Field: in.Field, Old: in.Old, New: in.New, Reason: cred.Reason, Signature: &sig})
	if err != nil {
		return Result{}, fmt.Errorf("signature not recorded: %w", err)
	}
	s.log.Info().Str("user", signer.ID).Str("action", in.Action).Str("target", in.Target).Str("meaning", cred.Meaning).Str("signed", in.Ref.String()).Msg("e-signature recorded")
	return Result{Journal: st.Ref(), Hash: st.Hash, Action: in.Action, Target: in.Target, Signature: sig}, nil
}

// Verify checks a signature record against a record: the signature record
// is intact and signed by its journal's key (as enrolled in the store), it
// carries an e-signature, and that signature names this record's reference
// and hash. Any other record fails (11.70).
func Verify(ctx context.Context, st store.Store, sigRec, signed store.Stored) error {
	e, err := st.Edge(ctx, sigRec.Record.Edge)
	if err != nil {
		return fmt.Errorf("signature %s: %w", sigRec.Ref(), err)
	}
	h := sigRec.Record.Hash()
	if h != sigRec.Hash || !record.VerifySig(ed25519.PublicKey(e.PublicKey), h, sigRec.Record.Sig) {
		return fmt.Errorf("signature %s: the record is altered or not signed by %s's key", sigRec.Ref(), sigRec.Record.Edge)
	}
	if sigRec.Record.Kind != record.KindUserAction {
		return fmt.Errorf("signature %s: a %s record is not a signature", sigRec.Ref(), sigRec.Record.Kind)
	}
	var a record.UserAction
	if err := json.Unmarshal(sigRec.Record.Body, &a); err != nil || a.Signature == nil {
		return fmt.Errorf("signature %s: carries no e-signature", sigRec.Ref())
	}
	if signed.Record.Hash() != signed.Hash {
		return fmt.Errorf("record %s: stored bytes do not match its stored hash", signed.Ref())
	}
	if a.Signature.Ref != signed.Ref().String() || a.Signature.RefHash != signed.Hash.String() {
		return fmt.Errorf("signature %s signs record %s (hash %.12s), not record %s (hash %.12s)", sigRec.Ref(), a.Signature.Ref, a.Signature.RefHash, signed.Ref(), signed.Hash.String())
	}
	return nil
}

// VerifyRef reads a signature record and the record it names and verifies
// them (Verify); it returns the signature.
func VerifyRef(ctx context.Context, st store.Store, sig store.Ref) (record.Signature, error) {
	sr, err := Record(ctx, st, sig)
	if err != nil {
		return record.Signature{}, err
	}
	var a record.UserAction
	if err := json.Unmarshal(sr.Record.Body, &a); err != nil || a.Signature == nil {
		return record.Signature{}, fmt.Errorf("record %s carries no e-signature", sig)
	}
	ref, err := store.ParseRef(a.Signature.Ref)
	if err != nil {
		return *a.Signature, fmt.Errorf("signature %s: %w", sig, err)
	}
	signed, err := Record(ctx, st, ref)
	if err != nil {
		return *a.Signature, err
	}
	return *a.Signature, Verify(ctx, st, sr, signed)
}
