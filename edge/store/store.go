// Package store is the edge's durable state: the only importer of bbolt.
//
// Every state change and the compliance record that documents it are written
// in one bbolt transaction (Update): there is never a state without its
// record, nor a record without its state. Records are chained (SHA-256) and
// the last record of every transaction is signed with the edge key, so one
// signature per group commit authenticates the whole run.
//
// The log bucket is also the outbox: records stay there until central
// acknowledges them (Ack), and replays are served from it.
package store

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/serialine/serialine/sync/record"
)

// Options for Open.
type Options struct {
	EdgeID string
	Key    ed25519.PrivateKey
	// Now is the clock for record times (tests); default time.Now.
	Now func() time.Time
	// NoSync disables fsync (benchmarks of the raw rate only; never in production).
	NoSync bool
	// Timeout waits for the file lock held by another process.
	Timeout time.Duration
}

// DB is the edge store.
type DB struct {
	bolt *bolt.DB
	opt  Options

	mu     sync.Mutex // guards head, acked, notify
	head   record.Head
	acked  uint64
	notify chan struct{} // closed and replaced on every commit that appends records
}

// ErrLocked: another process holds the store.
var ErrLocked = errors.New("store is locked by another process")

// Open opens (creating if needed) the store at path. It never panics: a
// corrupt or foreign file is an error naming the file.
func Open(path string, opt Options) (db *DB, err error) {
	if opt.EdgeID == "" {
		return nil, errors.New("store: edge id is required")
	}
	if len(opt.Key) != ed25519.PrivateKeySize {
		return nil, errors.New("store: edge signing key is required")
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Timeout == 0 {
		opt.Timeout = 2 * time.Second
	}
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("store %s: cannot open: %v", path, r)
		}
	}()
	b, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:        opt.Timeout,
		FreelistType:   bolt.FreelistMapType,
		NoFreelistSync: false,
		NoSync:         opt.NoSync,
	})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("store %s: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	db = &DB{bolt: b, opt: opt, notify: make(chan struct{})}
	if err := db.init(); err != nil {
		b.Close()
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	return db, nil
}

func (db *DB) init() error {
	return db.bolt.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets() {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		m := tx.Bucket(bucketMeta)
		if v := m.Get(keySchema); v == nil {
			// New store: a new epoch. Epoch = creation time in seconds, so a
			// store recreated later has a higher epoch than the one it replaces.
			if err := m.Put(keySchema, u64(SchemaVersion)); err != nil {
				return err
			}
			if err := m.Put(keyEdge, []byte(db.opt.EdgeID)); err != nil {
				return err
			}
			epoch := uint32(db.opt.Now().Unix())
			if err := m.Put(keyEpoch, u64(uint64(epoch))); err != nil {
				return err
			}
		} else if got := binary.BigEndian.Uint64(v); got != SchemaVersion {
			return fmt.Errorf("schema version %d, this build reads %d", got, SchemaVersion)
		}
		if got := string(m.Get(keyEdge)); got != db.opt.EdgeID {
			return fmt.Errorf("store belongs to edge %q, config says %q", got, db.opt.EdgeID)
		}
		db.head.Epoch = uint32(getU64(m, keyEpoch))
		db.head.Seq = getU64(m, keyHeadSeq)
		copy(db.head.Hash[:], m.Get(keyHead))
		db.acked = getU64(m, keyAcked)
		return nil
	})
}

// Close closes the store; safe to call twice.
func (db *DB) Close() error {
	if db == nil || db.bolt == nil {
		return nil
	}
	err := db.bolt.Close()
	if errors.Is(err, bolt.ErrDatabaseNotOpen) {
		return nil
	}
	return err
}

// Path returns the file path.
func (db *DB) Path() string { return db.bolt.Path() }

// EdgeID returns the edge id the store belongs to.
func (db *DB) EdgeID() string { return db.opt.EdgeID }

// PublicKey returns the edge's public key.
func (db *DB) PublicKey() ed25519.PublicKey { return db.opt.Key.Public().(ed25519.PublicKey) }

// Head returns the chain head (last record).
func (db *DB) Head() record.Head {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.head
}

// Acked returns the highest sequence central acknowledged.
func (db *DB) Acked() uint64 {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.acked
}

// Changed returns a channel closed at the next commit that appends records.
func (db *DB) Changed() <-chan struct{} {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.notify
}

// Tx is one bbolt transaction plus the records appended in it.
type Tx struct {
	tx   *bolt.Tx
	db   *DB
	head record.Head
	now  time.Time
	recs []record.Record
	// open caches the engine's buckets for the transaction: bbolt opens a
	// bucket afresh on every Tx.Bucket of a read-only transaction (an
	// allocation and a root lookup per call), which dominated the pallet
	// close check's 10,000 unit reads.
	open [numBuckets]*bolt.Bucket
}

// bucket returns the transaction's handle of b.
func (t *Tx) bucket(b Bucket) *bolt.Bucket {
	if h := t.open[b]; h != nil {
		return h
	}
	h := t.tx.Bucket(b.name())
	t.open[b] = h
	return h
}

// Get returns a copy of the value (nil when absent).
func (t *Tx) Get(b Bucket, key []byte) []byte {
	v := t.bucket(b).Get(key)
	if v == nil {
		return nil
	}
	return append([]byte(nil), v...)
}

// Peek returns the stored value itself, without a copy: valid only until
// the transaction ends and never to be modified (decode it at once).
func (t *Tx) Peek(b Bucket, key []byte) []byte { return t.bucket(b).Get(key) }

// Has reports whether key exists.
func (t *Tx) Has(b Bucket, key []byte) bool { return t.bucket(b).Get(key) != nil }

// GetJSON decodes a JSON value; ok=false when absent.
func (t *Tx) GetJSON(b Bucket, key []byte, v any) (bool, error) {
	raw := t.bucket(b).Get(key)
	if raw == nil {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return true, fmt.Errorf("store: %s/%q: %w", b.name(), key, err)
	}
	return true, nil
}

// Put stores a value.
func (t *Tx) Put(b Bucket, key, val []byte) error { return t.bucket(b).Put(key, val) }

// PutJSON stores a JSON-encoded value.
func (t *Tx) PutJSON(b Bucket, key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return t.bucket(b).Put(key, raw)
}

// Delete removes a key.
func (t *Tx) Delete(b Bucket, key []byte) error { return t.bucket(b).Delete(key) }

// First returns the first key/value with the prefix (copies), or nil.
func (t *Tx) First(b Bucket, prefix []byte) (k, v []byte) {
	c := t.bucket(b).Cursor()
	k, v = c.Seek(prefix)
	if k == nil || !bytes.HasPrefix(k, prefix) {
		return nil, nil
	}
	return append([]byte(nil), k...), append([]byte(nil), v...)
}

// ForEachPrefix calls fn for every key with the prefix (copies are passed).
func (t *Tx) ForEachPrefix(b Bucket, prefix []byte, fn func(k, v []byte) error) error {
	c := t.bucket(b).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return nil
}

// Now is the time used for records of this transaction.
func (t *Tx) Now() time.Time { return t.now }

// Append adds a record with the JSON-encoded body to the chain. It is
// written (and the last one signed) when the transaction commits.
func (t *Tx) Append(kind record.Kind, body any) (uint64, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return 0, fmt.Errorf("store: record %s body: %w", kind, err)
	}
	if len(raw) > record.MaxBody {
		return 0, fmt.Errorf("store: record %s body of %d bytes exceeds %d", kind, len(raw), record.MaxBody)
	}
	r := record.Record{
		Edge:  t.db.opt.EdgeID,
		Epoch: t.head.Epoch,
		Seq:   t.head.Seq + 1,
		Kind:  kind,
		Time:  t.now,
		Body:  raw,
		Prev:  t.head.Hash,
	}
	t.head = record.Head{Epoch: r.Epoch, Seq: r.Seq, Hash: r.Hash()}
	t.recs = append(t.recs, r)
	return r.Seq, nil
}

// Update runs fn in one write transaction. Records appended by fn are
// chained, the last one is signed, and all are written to the log in the
// same transaction as fn's state changes. If fn returns an error nothing is
// written.
func (db *DB) Update(fn func(tx *Tx) error) error {
	db.mu.Lock()
	head := db.head
	db.mu.Unlock()
	var t *Tx
	err := db.bolt.Update(func(btx *bolt.Tx) error {
		t = &Tx{tx: btx, db: db, head: head, now: db.opt.Now().UTC()}
		if err := fn(t); err != nil {
			return err
		}
		if len(t.recs) == 0 {
			return nil
		}
		last := &t.recs[len(t.recs)-1]
		last.Sig = record.SignHash(db.opt.Key, t.head.Hash)
		lb := btx.Bucket(bucketLog)
		for i := range t.recs {
			// bbolt keeps references to keys and values until commit: each
			// record gets its own buffer.
			buf := encodeStored(make([]byte, 0, 96+len(t.recs[i].Body)+len(t.recs[i].Edge)+len(t.recs[i].Kind)), &t.recs[i])
			if err := lb.Put(u64(t.recs[i].Seq), buf); err != nil {
				return err
			}
		}
		m := btx.Bucket(bucketMeta)
		if err := m.Put(keyHeadSeq, u64(t.head.Seq)); err != nil {
			return err
		}
		return m.Put(keyHead, t.head.Hash[:])
	})
	if err != nil {
		return err
	}
	if len(t.recs) > 0 {
		db.mu.Lock()
		db.head = t.head
		close(db.notify)
		db.notify = make(chan struct{})
		db.mu.Unlock()
	}
	return nil
}

// View runs fn in a read-only transaction. Append must not be called.
func (db *DB) View(fn func(tx *Tx) error) error {
	return db.bolt.View(func(btx *bolt.Tx) error {
		return fn(&Tx{tx: btx, db: db})
	})
}

// stored record layout in the log: uvarint sig len | sig | canonical bytes.
func encodeStored(b []byte, r *record.Record) []byte {
	b = binary.AppendUvarint(b, uint64(len(r.Sig)))
	b = append(b, r.Sig...)
	return r.AppendCanonical(b)
}

// Raw is a record as stored in the log.
type Raw struct {
	Seq       uint64
	Canonical []byte
	Sig       []byte
}

func decodeStored(seq uint64, v []byte) (Raw, error) {
	n, k := binary.Uvarint(v)
	if k <= 0 || n > 64 || int(n) > len(v)-k {
		return Raw{}, fmt.Errorf("store: log record %d is corrupt", seq)
	}
	return Raw{
		Seq:       seq,
		Sig:       append([]byte(nil), v[k:k+int(n)]...),
		Canonical: append([]byte(nil), v[k+int(n):]...),
	}, nil
}

// ReadLog returns up to maxRecords records (and about maxBytes) with seq >=
// from, in order. Bytes are copied out of the transaction.
func (db *DB) ReadLog(from uint64, maxRecords, maxBytes int) ([]Raw, error) {
	var out []Raw
	err := db.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketLog).Cursor()
		size := 0
		for k, v := c.Seek(u64(from)); k != nil && len(out) < maxRecords; k, v = c.Next() {
			if size > 0 && size+len(v) > maxBytes {
				break
			}
			r, err := decodeStored(binary.BigEndian.Uint64(k), v)
			if err != nil {
				return err
			}
			out = append(out, r)
			size += len(v)
		}
		return nil
	})
	return out, err
}

// Records decodes log records with seq >= from (for export and tests).
func (db *DB) Records(from uint64, max int) ([]record.Record, error) {
	raws, err := db.ReadLog(from, max, 1<<62)
	if err != nil {
		return nil, err
	}
	out := make([]record.Record, 0, len(raws))
	for _, r := range raws {
		rec, err := record.Decode(r.Canonical)
		if err != nil {
			return nil, fmt.Errorf("store: log record %d: %w", r.Seq, err)
		}
		rec.Sig = r.Sig
		out = append(out, rec)
	}
	return out, nil
}

// Ack records that central durably stored records up to seq (with the given
// hash, which must match ours) and prunes them from the log.
func (db *DB) Ack(epoch uint32, seq uint64, hash record.Hash) error {
	db.mu.Lock()
	head, acked := db.head, db.acked
	db.mu.Unlock()
	if epoch != head.Epoch {
		return fmt.Errorf("ack for epoch %d, store is at epoch %d", epoch, head.Epoch)
	}
	if seq > head.Seq {
		return fmt.Errorf("ack for seq %d beyond head %d", seq, head.Seq)
	}
	if seq <= acked {
		return nil
	}
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		// Acks may arrive out of order and concurrently: decide against
		// the acked seq in this transaction, not the one read before it.
		if seq <= getU64(tx.Bucket(bucketMeta), keyAcked) {
			return nil
		}
		lb := tx.Bucket(bucketLog)
		v := lb.Get(u64(seq))
		if v == nil {
			return fmt.Errorf("ack for seq %d: record not in log", seq)
		}
		r, err := decodeStored(seq, v)
		if err != nil {
			return err
		}
		rec, err := record.Decode(r.Canonical)
		if err != nil {
			return err
		}
		if rec.Hash() != hash {
			return fmt.Errorf("ack for seq %d carries hash %s, ours is %s", seq, hash, rec.Hash())
		}
		// Collect the keys first, then delete them (deleting while
		// stepping with Next skips keys in bbolt; re-seeking First after
		// every delete walks the emptied pages again and again).
		var keys [][]byte
		c := lb.Cursor()
		for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) <= seq; k, _ = c.Next() {
			keys = append(keys, append([]byte(nil), k...))
		}
		for _, k := range keys {
			if err := lb.Delete(k); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keyAcked, u64(seq))
	})
	if err != nil {
		return err
	}
	db.mu.Lock()
	if seq > db.acked {
		db.acked = seq
	}
	db.mu.Unlock()
	return nil
}

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

func getU64(b *bolt.Bucket, k []byte) uint64 {
	v := b.Get(k)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// U64Key encodes a sequence number as a big-endian key.
func U64Key(v uint64) []byte { return u64(v) }

// Size returns the store file size in bytes.
func (db *DB) Size() int64 {
	fi, err := os.Stat(db.bolt.Path())
	if err != nil {
		return 0
	}
	return fi.Size()
}
