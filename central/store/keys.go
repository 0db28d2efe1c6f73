package store

import (
	"context"
	"crypto/ed25519"
	"time"

	"github.com/serialine/serialine/sync/record"
)

// EdgeKey is one public key enrolled for an edge and the window of record
// times it may sign (ValidFrom <= record time < ValidUntil; a zero bound is
// open). EnrollEdge records an edge's first key, open at both ends;
// RotateEdgeKey adds the next one.
type EdgeKey struct {
	Edge       string
	PublicKey  []byte
	ValidFrom  time.Time
	ValidUntil time.Time
	EnrolledBy string
	EnrolledAt time.Time
}

// KeyStore is the key history part of the Store.
type KeyStore interface {
	// RotateEdgeKey enrolls k as the edge's new key, valid from
	// k.ValidFrom (zero: now). Every other key of the edge still valid at
	// k.ValidFrom+overlap is closed there: records signed by an old key
	// are accepted until the overlap ends (or until the edge's key.rotated
	// record, which closes the old key at its own time). ErrNotFound for
	// an edge never enrolled; the same key again is ErrExists.
	RotateEdgeKey(ctx context.Context, k EdgeKey, overlap time.Duration) error
	// EdgeKeys returns the edge's key history, oldest first.
	EdgeKeys(ctx context.Context, edge string) ([]EdgeKey, error)
	// Epochs lists the epochs of which records of the edge are stored, in order.
	Epochs(ctx context.Context, edge string) ([]uint32, error)
}

// Ring converts a key history into the verifier's key ring.
func Ring(keys []EdgeKey) record.KeyRing {
	ring := make(record.KeyRing, 0, len(keys))
	for _, k := range keys {
		ring = append(ring, record.Key{Pub: ed25519.PublicKey(k.PublicKey), From: k.ValidFrom, Until: k.ValidUntil})
	}
	return ring
}

// RotationCloses is the ValidUntil a key.rotated record made at t sets on
// the old key: the first microsecond after t (PostgreSQL keeps
// microseconds), so the rotation record itself stays covered by the old key.
func RotationCloses(t time.Time) time.Time {
	return t.Truncate(time.Microsecond).Add(time.Microsecond)
}
