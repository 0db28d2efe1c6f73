// Package journal is central's own record chain: what people do at central
// (user actions, e-signatures, alert acknowledgements, enrollments) and the
// facts central itself establishes, hash-chained and signed with central's
// Ed25519 key exactly like an edge's records, and stored in the same
// compliance store under the edge id "central.<instance>"
// (store.JournalPrefix). So the audit trail is append-only and
// tamper-evident by the same means as the line records (21 CFR 11.10(e)),
// and anyone with central's public key verifies an export of it offline
// (`serialine verify`).
//
// Each central instance has its own journal (its own key and chain), so
// instances sharing one PostgreSQL never write to the same chain.
package journal

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/sync/identity"
	"github.com/serialine/serialine/sync/record"
	"github.com/serialine/serialine/sync/wire"
)

// Options configure a journal.
type Options struct {
	Store store.Store
	// KeyPath is central's signing key file (created with mode 0600 on first start).
	KeyPath string
	// Instance is the central instance id (config id): the journal is
	// "central.<Instance>".
	Instance string
	Log      zerolog.Logger
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// Journal appends central's records.
type Journal struct {
	st  store.Store
	key ed25519.PrivateKey
	id  string
	now func() time.Time
	log zerolog.Logger

	mu   sync.Mutex
	head record.Head
}

// Open loads (or creates) central's key, enrolls the journal's public key in
// the store and resumes the chain from the stored head.
func Open(ctx context.Context, opt Options) (*Journal, error) {
	id := store.JournalPrefix + opt.Instance
	if err := wire.ValidEdgeID(id); err != nil {
		return nil, fmt.Errorf("journal: central id %q: %w", opt.Instance, err)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	key, created, err := identity.LoadOrCreate(opt.KeyPath)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	j := &Journal{st: opt.Store, key: key, id: id, now: opt.Now, log: opt.Log.With().Str("journal", id).Logger()}
	if created {
		j.log.Info().Str("key", opt.KeyPath).Msg("generated central's journal signing key")
	}
	err = opt.Store.EnrollEdge(ctx, store.Edge{ID: id, PublicKey: j.PublicKey(), EnrolledBy: "central:" + opt.Instance})
	if errors.Is(err, store.ErrExists) {
		return nil, fmt.Errorf("journal %s is enrolled with another key than %s: the key file was replaced or another instance uses the id %q (give each central instance its own id and key)", id, opt.KeyPath, opt.Instance)
	}
	if err != nil {
		return nil, fmt.Errorf("journal %s: enroll: %w", id, err)
	}
	if err := j.reload(ctx); err != nil {
		return nil, err
	}
	return j, nil
}

func (j *Journal) reload(ctx context.Context) error {
	h, ok, err := j.st.Head(ctx, j.id)
	if err != nil {
		return fmt.Errorf("journal %s: head: %w", j.id, err)
	}
	if !ok {
		h = record.Head{Epoch: uint32(j.now().Unix())}
	}
	j.head = h
	return nil
}

// ID is the journal's edge id ("central.<instance>").
func (j *Journal) ID() string { return j.id }

// PublicKey is central's public key, which verifies the journal.
func (j *Journal) PublicKey() ed25519.PublicKey { return j.key.Public().(ed25519.PublicKey) }

// Head is the journal's last record.
func (j *Journal) Head() record.Head {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.head
}

// Append chains, signs and durably stores one record; it returns the
// stored record once the store has committed it.
func (j *Journal) Append(ctx context.Context, kind record.Kind, body any) (store.Stored, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return store.Stored{}, fmt.Errorf("journal: %s body: %w", kind, err)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	r := record.Record{Edge: j.id, Epoch: j.head.Epoch, Seq: j.head.Seq + 1, Kind: kind, Time: j.now().UTC(), Body: raw, Prev: j.head.Hash}
	h := r.Hash()
	r.Sig = record.SignHash(j.key, h)
	st := store.Stored{Record: r, Hash: h}
	if err := j.st.Append(ctx, j.id, j.head, []store.Stored{st}); err != nil {
		if errors.Is(err, store.ErrConflict) {
			// Someone else writes this chain: a second instance with the
			// same id. Never fork the chain; pick up the stored head so
			// the operator can stop the duplicate and retry.
			if rerr := j.reload(ctx); rerr != nil {
				j.log.Error().Err(rerr).Msg("journal head reload failed")
			}
			return store.Stored{}, fmt.Errorf("journal %s: the stored chain moved under this instance (another central runs with the same id?): %w", j.id, err)
		}
		return store.Stored{}, fmt.Errorf("journal %s: %w", j.id, err)
	}
	j.head = st.Head()
	return st, nil
}

// Action records a user action.
func (j *Journal) Action(ctx context.Context, a record.UserAction) (store.Stored, error) {
	if a.User == "" || a.Action == "" {
		return store.Stored{}, errors.New("journal: a user action needs a user and an action")
	}
	return j.Append(ctx, record.KindUserAction, a)
}
