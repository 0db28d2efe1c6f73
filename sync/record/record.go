// Package record defines Serialine's compliance record: its canonical,
// versioned binary encoding, the per-edge SHA-256 hash chain and the Ed25519
// signatures that make a record set verifiable offline by anyone holding the
// edge's public key.
//
// Canonical encoding (version 1), all integers big-endian:
//
//	"SLR" 0x01                  magic and version
//	uvarint len | edge id       UTF-8
//	uint32 epoch                incarnation of the edge's log
//	uint64 seq                  gap-free per (edge, epoch), first is 1
//	uvarint len | kind          e.g. "unit.verified"
//	int64 time                  UTC, Unix nanoseconds
//	[32]byte prev               hash of the previous record (zero for seq 1)
//	uvarint len | body          compact JSON, stored byte for byte
//
// hash = SHA-256(canonical bytes). A signature is Ed25519 over
// "serialine/record/v1" || hash. The edge signs checkpoints: the last record
// of every group commit carries a signature, and because every record's hash
// is chained into its successor, a valid signature on record N authenticates
// records 1..N of that chain.
//
// Per-record or checkpoint signatures: both were measured
// (BenchmarkSigning, edge sign + central verify per record, on the 2-core
// machine this project targets): per record ~95 µs and 175 envelope
// bytes/record, checkpoints of 4 records ~22 µs and 127 B, of 100 records
// ~1.7 µs and 112 B. Per-record signing alone would cap a backlog drain
// near 10k records/s per core, below the 20k/s target, so records are
// signed per checkpoint. What it costs: a record is authenticated only once
// its checkpoint arrives (central stores nothing past the last signature of
// an envelope, and the outbox always ends an envelope at a checkpoint), and
// locating an altered record needs the look-ahead of VerifyRun.
//
// Keys rotate through the chain itself: a key.rotated record (KeyRotated),
// signed by the old key, announces the new one; see KeyRing.
package record

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Version is the canonical encoding version.
const Version = 1

const magic = "SLR"

// MaxBody bounds a record body; larger bodies are malformed.
const MaxBody = 1 << 20

// Hash is a SHA-256 digest.
type Hash [32]byte

func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// IsZero reports whether h is all zeros.
func (h Hash) IsZero() bool { return h == Hash{} }

// MarshalText encodes the hash as hex.
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText decodes a hex hash.
func (h *Hash) UnmarshalText(b []byte) error {
	if len(b) != 64 {
		return fmt.Errorf("hash: want 64 hex characters, got %d", len(b))
	}
	_, err := hex.Decode(h[:], b)
	return err
}

// Record is one compliance record.
type Record struct {
	Edge  string
	Epoch uint32
	Seq   uint64
	Kind  Kind
	Time  time.Time // UTC, nanosecond precision
	Body  []byte    // compact JSON
	Prev  Hash
	Sig   []byte // Ed25519 signature over the hash; present on checkpoints
}

// Errors returned by Decode and the verifiers.
var (
	ErrMalformed = errors.New("malformed record")
	ErrChain     = errors.New("hash chain broken")
	ErrSignature = errors.New("bad signature")
	ErrSequence  = errors.New("sequence gap")
)

// Canonical returns the canonical bytes (without the signature).
func (r *Record) Canonical() []byte {
	b := make([]byte, 0, 4+len(r.Edge)+len(r.Kind)+len(r.Body)+64)
	return r.AppendCanonical(b)
}

// AppendCanonical appends the canonical bytes to b.
func (r *Record) AppendCanonical(b []byte) []byte {
	b = append(b, magic...)
	b = append(b, Version)
	b = binary.AppendUvarint(b, uint64(len(r.Edge)))
	b = append(b, r.Edge...)
	b = binary.BigEndian.AppendUint32(b, r.Epoch)
	b = binary.BigEndian.AppendUint64(b, r.Seq)
	b = binary.AppendUvarint(b, uint64(len(r.Kind)))
	b = append(b, r.Kind...)
	b = binary.BigEndian.AppendUint64(b, uint64(r.Time.UnixNano()))
	b = append(b, r.Prev[:]...)
	b = binary.AppendUvarint(b, uint64(len(r.Body)))
	b = append(b, r.Body...)
	return b
}

// Hash returns SHA-256 of the canonical bytes.
func (r *Record) Hash() Hash { return sha256.Sum256(r.Canonical()) }

// Decode parses canonical bytes (as produced by Canonical). The returned
// record's Body aliases nothing in b.
func Decode(b []byte) (Record, error) {
	var r Record
	d := decoder{b: b}
	if len(b) < 4 || string(b[:3]) != magic {
		return r, fmt.Errorf("%w: bad magic", ErrMalformed)
	}
	if b[3] != Version {
		return r, fmt.Errorf("%w: unknown version %d", ErrMalformed, b[3])
	}
	d.b = b[4:]
	r.Edge = string(d.bytes("edge", 256))
	r.Epoch = d.u32("epoch")
	r.Seq = d.u64("seq")
	r.Kind = Kind(d.bytes("kind", 64))
	r.Time = time.Unix(0, int64(d.u64("time"))).UTC()
	copy(r.Prev[:], d.fixed("prev", 32))
	r.Body = append([]byte(nil), d.bytes("body", MaxBody)...)
	if d.err != nil {
		return Record{}, d.err
	}
	if len(d.b) != 0 {
		return Record{}, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(d.b))
	}
	if r.Edge == "" {
		return Record{}, fmt.Errorf("%w: empty edge id", ErrMalformed)
	}
	if r.Seq == 0 {
		return Record{}, fmt.Errorf("%w: seq 0", ErrMalformed)
	}
	if !r.Kind.Valid() {
		return Record{}, fmt.Errorf("%w: invalid kind %q", ErrMalformed, r.Kind)
	}
	if !json.Valid(r.Body) {
		return Record{}, fmt.Errorf("%w: body of seq %d is not JSON", ErrMalformed, r.Seq)
	}
	return r, nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(field, why string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s: %s", ErrMalformed, field, why)
	}
}

func (d *decoder) bytes(field string, max int) []byte {
	if d.err != nil {
		return nil
	}
	n, k := Uvarint(d.b)
	if k <= 0 {
		d.fail(field, "bad length")
		return nil
	}
	if n > uint64(max) || n > uint64(len(d.b)-k) {
		d.fail(field, fmt.Sprintf("length %d out of range", n))
		return nil
	}
	v := d.b[k : k+int(n)]
	d.b = d.b[k+int(n):]
	return v
}

func (d *decoder) fixed(field string, n int) []byte {
	if d.err != nil {
		return make([]byte, n)
	}
	if len(d.b) < n {
		d.fail(field, "truncated")
		return make([]byte, n)
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u32(field string) uint32 { return binary.BigEndian.Uint32(d.fixed(field, 4)) }
func (d *decoder) u64(field string) uint64 { return binary.BigEndian.Uint64(d.fixed(field, 8)) }

const sigDomain = "serialine/record/v1"

func sigMessage(h Hash) []byte {
	m := make([]byte, 0, len(sigDomain)+32)
	m = append(m, sigDomain...)
	return append(m, h[:]...)
}

// Sign signs the record's hash with the edge key and stores the signature.
func (r *Record) Sign(key ed25519.PrivateKey) {
	r.Sig = ed25519.Sign(key, sigMessage(r.Hash()))
}

// SignHash is Sign for a caller that already computed the hash.
func SignHash(key ed25519.PrivateKey, h Hash) []byte {
	return ed25519.Sign(key, sigMessage(h))
}

// VerifySig checks the record's signature against the public key.
func VerifySig(pub ed25519.PublicKey, h Hash, sig []byte) bool {
	if len(pub) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
		return false
	}
	return ed25519.Verify(pub, sigMessage(h), sig)
}

// Head is the tip of an edge's chain: the last record's (epoch, seq, hash).
type Head struct {
	Epoch uint32
	Seq   uint64
	Hash  Hash
}

// Uvarint is binary.Uvarint restricted to the minimal encoding, so that every
// accepted byte string is canonical (k <= 0 on error, as binary.Uvarint).
func Uvarint(b []byte) (uint64, int) {
	n, k := binary.Uvarint(b)
	if k > 0 && k != uvarintLen(n) {
		return 0, -k
	}
	return n, k
}

func uvarintLen(n uint64) int {
	k := 1
	for n >= 0x80 {
		n >>= 7
		k++
	}
	return k
}
