package record

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"
)

// ChainError reports the first bad record of a set, exactly.
type ChainError struct {
	Edge  string
	Epoch uint32
	Seq   uint64
	Err   error
	Why   string
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("edge %s epoch %d seq %d: %v: %s", e.Edge, e.Epoch, e.Seq, e.Err, e.Why)
}

func (e *ChainError) Unwrap() error { return e.Err }

// Verifier checks a run of records of one edge against its chain head.
// Feed records in sequence order; call Finish when done.
type Verifier struct {
	ring KeyRing
	// enrolledOnly: a key.rotated record may only announce a key already
	// in the ring (central: the new key must have been enrolled by an
	// admin). Offline verification follows announcements instead.
	enrolledOnly bool
	head         Head
	// unsigned counts records since the last verified signature: they are
	// only authenticated once a later signed record verifies.
	unsigned   uint64
	started    bool
	firstUnsig uint64
	edge       string
	lastHash   Hash
}

// NewVerifier starts verification after the given head (zero head: from seq 1).
func NewVerifier(pub ed25519.PublicKey, head Head) *Verifier {
	return &Verifier{ring: Ring(pub), head: head}
}

// NewRingVerifier verifies with an edge's key history: a signature must
// verify with a key whose window covers the record's time. A key.rotated
// record switches the chain to the announced key; with enrolledOnly the
// announced key must be in the ring (central), otherwise it is trusted
// because the old key signed the announcement (offline verification).
func NewRingVerifier(ring KeyRing, head Head, enrolledOnly bool) *Verifier {
	return &Verifier{ring: ring, head: head, enrolledOnly: enrolledOnly}
}

// Ring returns the keys that may sign the next records.
func (v *Verifier) Ring() KeyRing { return v.ring }

// Head returns the last accepted record's head.
func (v *Verifier) Head() Head { return v.head }

// Add checks one record: sequence continuity, prev hash, and the signature if
// it carries one. It returns the record's hash.
func (v *Verifier) Add(r *Record) (Hash, error) {
	// Errors name the record by its position in the chain (the seq it
	// should have), not by its own seq field, which may be the altered byte.
	fail := func(err error, format string, a ...any) (Hash, error) {
		return Hash{}, &ChainError{Edge: r.Edge, Epoch: v.head.Epoch, Seq: v.head.Seq + 1, Err: err, Why: fmt.Sprintf(format, a...)}
	}
	if v.edge == "" {
		v.edge = r.Edge
	} else if r.Edge != v.edge {
		return fail(ErrMalformed, "record of edge %q in the chain of %q", r.Edge, v.edge)
	}
	if v.head.Seq == 0 {
		if v.head.Epoch == 0 {
			v.head.Epoch = r.Epoch
		}
		if r.Seq != 1 && !v.started {
			// A set that does not start at 1 is verified from its first
			// record: the caller vouches for the starting point.
			v.head.Seq = r.Seq - 1
			v.head.Hash = r.Prev
		}
	}
	v.started = true
	if r.Epoch != v.head.Epoch {
		return fail(ErrSequence, "epoch %d after epoch %d", r.Epoch, v.head.Epoch)
	}
	if r.Seq != v.head.Seq+1 {
		return fail(ErrSequence, "seq %d follows seq %d", r.Seq, v.head.Seq)
	}
	if r.Prev != v.head.Hash {
		return fail(ErrChain, "prev hash %s does not match hash %s of seq %d (this record or its predecessor was altered)", short(r.Prev), short(v.head.Hash), v.head.Seq)
	}
	h := r.Hash()
	if r.Kind == KindKeyRotated && len(r.Sig) == 0 {
		return fail(ErrSignature, "key.rotated record is not signed (it must be signed by the old key)")
	}
	if len(r.Sig) > 0 {
		if !v.ring.Verify(h, r.Time, r.Sig) {
			return fail(ErrSignature, "signature does not verify with the edge's key valid at %s (record altered or signed by another key)", r.Time.UTC().Format(time.RFC3339))
		}
		v.unsigned = 0
		if r.Kind == KindKeyRotated {
			old, pub, err := ParseKeyRotated(r)
			if err != nil {
				return fail(ErrMalformed, "%v", err)
			}
			if !v.ring.Has(old) {
				return fail(ErrSignature, "key.rotated names old key %s, which is not the chain's key", EncodePublicKey(old))
			}
			if v.enrolledOnly && !v.ring.Has(pub) {
				return fail(ErrSignature, "key.rotated announces key %s, which is not enrolled for this edge", EncodePublicKey(pub))
			}
			v.ring = v.ring.rotate(pub, r.Time)
		}
	} else {
		if v.unsigned == 0 {
			v.firstUnsig = r.Seq
		}
		v.unsigned++
	}
	v.head = Head{Epoch: r.Epoch, Seq: r.Seq, Hash: h}
	return h, nil
}

// Unsigned returns how many trailing records are not yet covered by a
// signature, and the first of them.
func (v *Verifier) Unsigned() (n uint64, first uint64) { return v.unsigned, v.firstUnsig }

func short(h Hash) string { return h.String()[:12] }

// VerifyRun verifies a run of records of one edge after head and reports
// the first bad record exactly. Where the streaming Verifier can only say
// that the link between records k and k+1 is broken, VerifyRun looks ahead
// to the next signed checkpoint: if the checkpoint's signature verifies and
// the chain from record k+1 up to it is intact, record k+1 is authentic and
// record k is the altered one; otherwise record k+1 is.
//
// It returns the number of records verified and covered by a signature, and
// the error for the first bad record (nil if all are good). Records after
// the last signature are reported as not authenticated.
func VerifyRun(pub ed25519.PublicKey, head Head, recs []Record) (int, error) {
	return VerifyRunRing(Ring(pub), head, recs, false)
}

// VerifyRunRing is VerifyRun with an edge's key history (see NewRingVerifier).
func VerifyRunRing(ring KeyRing, head Head, recs []Record, enrolledOnly bool) (int, error) {
	v := NewRingVerifier(ring, head, enrolledOnly)
	lastCovered := 0
	for i := range recs {
		if _, err := v.Add(&recs[i]); err != nil {
			var ce *ChainError
			if errors.As(err, &ce) && !errors.Is(err, ErrSignature) && i > 0 && len(recs[i-1].Sig) == 0 && authentic(v.ring, recs, i) {
				ce.Seq = recs[i].Seq - 1 // recs[i] is authentic: its seq is true
				ce.Epoch = recs[i].Epoch
				ce.Err = ErrChain
				ce.Why = fmt.Sprintf("does not match what seq %d (covered by a valid signature) records about its predecessor: this record was altered", ce.Seq+1)
			}
			return lastCovered, err
		}
		if len(recs[i].Sig) > 0 {
			lastCovered = i + 1
		}
	}
	if n, first := v.Unsigned(); n > 0 {
		last := recs[len(recs)-1]
		return lastCovered, &ChainError{Edge: last.Edge, Epoch: last.Epoch, Seq: first, Err: ErrSignature,
			Why: fmt.Sprintf("%d records from seq %d on are not covered by a signature", n, first)}
	}
	return lastCovered, nil
}

// authentic reports whether recs[i] is covered by the next valid signature
// through an intact chain.
func authentic(ring KeyRing, recs []Record, i int) bool {
	for j := i; j < len(recs); j++ {
		h := recs[j].Hash()
		if j+1 < len(recs) && len(recs[j].Sig) == 0 && recs[j+1].Prev != h {
			return false
		}
		if len(recs[j].Sig) > 0 {
			return ring.Verify(h, recs[j].Time, recs[j].Sig)
		}
	}
	return false
}
