package record

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"time"
)

// KindKeyRotated is written by an edge that switches its signing key. The
// record itself is signed by the old key (it is the checkpoint of its own
// commit) and announces the new key; every record after it is signed by the
// new key. Anyone who trusts the old key can therefore follow the rotation
// offline from the chain alone, and central (which also requires the new
// key to be enrolled by an admin) knows from this point on that the old key
// is retired for this chain.
const KindKeyRotated Kind = "key.rotated"

// KeyRotated is the body of a key.rotated record.
type KeyRotated struct {
	Old    string `json:"old_public_key"` // base64 Ed25519
	New    string `json:"new_public_key"` // base64 Ed25519
	Reason string `json:"reason,omitempty"`
}

// Key is one public key of an edge with the window of record times it may
// sign: From <= record time < Until (a zero bound is open).
type Key struct {
	Pub   ed25519.PublicKey
	From  time.Time
	Until time.Time
}

// Covers reports whether the key may sign a record made at t.
func (k Key) Covers(t time.Time) bool {
	return (k.From.IsZero() || !t.Before(k.From)) && (k.Until.IsZero() || t.Before(k.Until))
}

// KeyRing is an edge's key history: the keys enrolled for it, each with its
// validity window. During a rotation's overlap two keys cover the same time.
type KeyRing []Key

// Ring makes a ring of one key valid at all times.
func Ring(pub ed25519.PublicKey) KeyRing { return KeyRing{{Pub: pub}} }

// Verify reports whether sig over h verifies with a key of the ring that
// covers the record time t.
func (kr KeyRing) Verify(h Hash, t time.Time, sig []byte) bool {
	for _, k := range kr {
		if k.Covers(t) && VerifySig(k.Pub, h, sig) {
			return true
		}
	}
	return false
}

// Has reports whether pub is in the ring.
func (kr KeyRing) Has(pub ed25519.PublicKey) bool {
	for _, k := range kr {
		if k.Pub.Equal(pub) {
			return true
		}
	}
	return false
}

// rotate returns the ring after a key.rotated record at time t announcing
// pub: only pub may sign what follows (with its enrolled window if it was
// enrolled, from t on if the ring follows announcements).
func (kr KeyRing) rotate(pub ed25519.PublicKey, t time.Time) KeyRing {
	for _, k := range kr {
		if k.Pub.Equal(pub) {
			return KeyRing{k}
		}
	}
	return KeyRing{{Pub: pub, From: t}}
}

// ParseKeyRotated decodes a key.rotated body.
func ParseKeyRotated(r *Record) (old, new ed25519.PublicKey, err error) {
	var b KeyRotated
	if err := json.Unmarshal(r.Body, &b); err != nil {
		return nil, nil, fmt.Errorf("%w: key.rotated body: %v", ErrMalformed, err)
	}
	if old, err = ParsePublicKey(b.Old); err != nil {
		return nil, nil, fmt.Errorf("%w: key.rotated old_public_key: %v", ErrMalformed, err)
	}
	if new, err = ParsePublicKey(b.New); err != nil {
		return nil, nil, fmt.Errorf("%w: key.rotated new_public_key: %v", ErrMalformed, err)
	}
	return old, new, nil
}
