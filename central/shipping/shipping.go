// Package shipping records shipments: cases and pallets (SSCCs) leaving
// for a destination (GLN, name), entered through the API or imported from a
// WMS file. Each shipment is validated against the store (the SSCC exists,
// is closed, is not inside another container and was not shipped before,
// the GLN's check digit is right), e-signed by the user who records it (id
// and password re-entered, 21 CFR 11.200) and written to central's journal
// as a KindShipped record, whose projection is the shipments table.
package shipping

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/serialine/serialine/central/auth"
	"github.com/serialine/serialine/central/config"
	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/sync/gs1"
	"github.com/serialine/serialine/sync/record"
)

// Journal appends to central's journal (central/journal.Journal).
type Journal interface {
	Append(ctx context.Context, kind record.Kind, body any) (store.Stored, error)
}

// Service records shipments.
type Service struct {
	St      store.Store
	Journal Journal
	Users   *auth.Users
	GS1     config.GS1 // ship-from GLN and name
	Now     func() time.Time

	mu sync.Mutex // one validation+recording at a time: no SSCC shipped twice by this instance
}

// Request is one shipment to record.
type Request struct {
	// ID is the shipment id (WMS delivery number); empty: generated.
	ID          string       `json:"id,omitempty"`
	Containers  []string     `json:"containers"` // SSCCs
	Destination record.Party `json:"destination"`
	ShippedAt   time.Time    `json:"shipped_at"`
	Reference   string       `json:"reference,omitempty"`
	// Line names where the request came from ("wms.csv:3-5"); set by the
	// CSV import, shown in errors.
	Line string `json:"-"`
}

// Signer is the e-signature a user gives by re-entering id and password.
type Signer struct {
	User     string `json:"user"`
	Password string `json:"password"`
	Meaning  string `json:"meaning"` // e.g. "shipped"
	Reason   string `json:"reason,omitempty"`
}

// Problem is one validation failure.
type Problem struct {
	Where string `json:"where"` // "shipment 2", or file:line of an import
	What  string `json:"problem"`
}

// ValidationError lists every problem; nothing was recorded.
type ValidationError struct{ Problems []Problem }

func (e *ValidationError) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString(p.Where + ": " + p.What)
	}
	return b.String()
}

// ErrSignature: the e-signature was refused (wrong password, another user,
// a role that may not ship, no meaning).
var ErrSignature = errors.New("e-signature refused")

// mayShip are the roles that may record shipments (21 CFR 11.10(g)).
func mayShip(role string) bool {
	return role == auth.RoleOperator || role == auth.RoleSupervisor || role == auth.RoleAdmin
}

// Sign verifies a re-entered signature for the logged-in user and returns
// the signature to store in the shipment record itself (11.70: the
// signature is part of the signed record). The password check counts
// toward the account's lockout like every signing (central/auth).
func (s *Service) Sign(ctx context.Context, session auth.User, sg Signer) (*record.Signature, error) {
	if sg.User != session.ID {
		return nil, fmt.Errorf("%w: signer %q is not the logged-in user %q", ErrSignature, sg.User, session.ID)
	}
	if strings.TrimSpace(sg.Meaning) == "" {
		return nil, fmt.Errorf("%w: the meaning of the signature is required (e.g. \"shipped\")", ErrSignature)
	}
	u, err := s.Users.Check(ctx, sg.User, sg.Password, "shipment signature")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSignature, err)
	}
	if !mayShip(u.Role) {
		return nil, fmt.Errorf("%w: role %s may not record shipments", ErrSignature, u.Role)
	}
	return &record.Signature{User: u.ID, Name: u.Name, Meaning: sg.Meaning, Reason: sg.Reason, Time: s.now().UTC().Format(time.RFC3339Nano)}, nil
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Ship validates every request and, only if all are valid, records each as
// one signed journal record. It returns the stored shipments.
func (s *Service) Ship(ctx context.Context, session auth.User, sg Signer, reqs []Request, source string) ([]store.Shipment, error) {
	sig, err := s.Sign(ctx, session, sg)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.validate(ctx, reqs); err != nil {
		return nil, err
	}
	var from *record.Party
	if s.GS1.GLN != "" {
		from = &record.Party{GLN: s.GS1.GLN, Name: s.GS1.Name}
	}
	out := make([]store.Shipment, 0, len(reqs))
	for i, r := range reqs {
		src := source
		if r.Line != "" {
			src = r.Line
		}
		body := record.Shipped{Shipment: r.ID, Containers: r.Containers, Destination: r.Destination, ShipFrom: from,
			ShippedAt: r.ShippedAt.UTC().Format(time.RFC3339Nano), Reference: r.Reference, Source: src, By: session.ID, Signature: sig}
		if _, err := s.Journal.Append(ctx, record.KindShipped, body); err != nil {
			return out, fmt.Errorf("shipment %s (%d of %d) not recorded (the ones before it are): %w", r.ID, i+1, len(reqs), err)
		}
		sh, err := s.St.Shipment(ctx, r.ID)
		if err != nil {
			return out, err
		}
		out = append(out, sh)
	}
	return out, nil
}

func newID(now time.Time) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return "SHP-" + now.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b)
}

func validID(id string) error {
	if len(id) == 0 || len(id) > 64 {
		return errors.New("want 1 to 64 characters")
	}
	for i := 0; i < len(id); i++ {
		if !gs1.IsCSET82(id[i]) {
			return fmt.Errorf("character %q is not allowed", id[i])
		}
	}
	return nil
}

func (s *Service) validate(ctx context.Context, reqs []Request) error {
	var probs []Problem
	if len(reqs) == 0 {
		return &ValidationError{Problems: []Problem{{"request", "no shipment"}}}
	}
	seen := map[string]string{}   // SSCC -> where, in this request set
	seenID := map[string]string{} // shipment id -> where
	now := s.now()
	for i := range reqs {
		r := &reqs[i]
		where := r.Line
		if where == "" {
			where = fmt.Sprintf("shipment %d", i+1)
		}
		bad := func(format string, a ...any) { probs = append(probs, Problem{where, fmt.Sprintf(format, a...)}) }
		if r.ID == "" {
			r.ID = newID(now)
		} else if err := validID(r.ID); err != nil {
			bad("shipment id %q: %v", r.ID, err)
		} else if _, err := s.St.Shipment(ctx, r.ID); err == nil {
			bad("shipment %s was already recorded", r.ID)
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if w, ok := seenID[r.ID]; ok {
			bad("shipment id %s is also used by %s", r.ID, w)
		}
		seenID[r.ID] = where
		g := r.Destination.GLN
		switch {
		case len(g) != 13 || !isDigits(g):
			bad("destination GLN %q: want 13 digits", g)
		default:
			if err := gs1.VerifyCheckDigit(g); err != nil {
				bad("destination GLN %s: %v", g, err)
			}
		}
		if strings.TrimSpace(r.Destination.Name) == "" {
			bad("destination name is required")
		}
		if r.ShippedAt.IsZero() {
			bad("ship time is required")
		} else if r.ShippedAt.After(now.Add(5 * time.Minute)) {
			bad("ship time %s is in the future", r.ShippedAt.UTC().Format(time.RFC3339))
		}
		if len(r.Containers) == 0 {
			bad("no SSCC to ship")
		}
		for _, sscc := range r.Containers {
			if w, ok := seen[sscc]; ok {
				bad("SSCC %s is also shipped by %s", sscc, w)
				continue
			}
			seen[sscc] = where
			if msg, err := s.checkContainer(ctx, sscc, r.ShippedAt); err != nil {
				return err
			} else if msg != "" {
				bad("%s", msg)
			}
		}
	}
	if len(probs) > 0 {
		return &ValidationError{Problems: probs}
	}
	return nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// checkContainer returns what is wrong with shipping sscc ("" when fine).
func (s *Service) checkContainer(ctx context.Context, sscc string, at time.Time) (string, error) {
	if len(sscc) != 18 || !isDigits(sscc) {
		return fmt.Sprintf("SSCC %q: want 18 digits", sscc), nil
	}
	if err := gs1.VerifyCheckDigit(sscc); err != nil {
		return fmt.Sprintf("SSCC %s: %v", sscc, err), nil
	}
	c, err := s.St.Container(ctx, sscc)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Sprintf("SSCC %s is not a known case or pallet", sscc), nil
	}
	if err != nil {
		return "", err
	}
	if !c.Closed {
		return fmt.Sprintf("%s %s is not closed", c.Level, sscc), nil
	}
	if c.Parent != "" {
		return fmt.Sprintf("%s %s is on %s: ship the outer container, or unpack it first", c.Level, sscc, c.Parent), nil
	}
	if !at.IsZero() && !c.ClosedAt.IsZero() && at.Before(c.ClosedAt) {
		return fmt.Sprintf("%s %s was closed at %s, after the ship time", c.Level, sscc, c.ClosedAt.UTC().Format(time.RFC3339)), nil
	}
	// Neither it nor anything inside it was shipped.
	var msg string
	var walk func(sscc string, depth int) error
	walk = func(x string, depth int) error {
		if depth > 8 || msg != "" {
			return nil
		}
		sh, err := s.St.ShipmentOf(ctx, x)
		if err == nil {
			if x == sscc {
				msg = fmt.Sprintf("%s %s was already shipped in %s to %s", c.Level, sscc, sh.ID, sh.Destination.GLN)
			} else {
				msg = fmt.Sprintf("%s %s holds %s, already shipped in %s", c.Level, sscc, x, sh.ID)
			}
			return nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		var inner []string
		if err := s.St.ScanContainers(ctx, store.ContainerFilter{Parent: x}, func(c store.Container) error {
			inner = append(inner, c.SSCC)
			return nil
		}); err != nil {
			return err
		}
		for _, in := range inner {
			if err := walk(in, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(sscc, 0); err != nil {
		return "", err
	}
	return msg, nil
}
