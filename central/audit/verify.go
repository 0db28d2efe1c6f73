// Package audit re-verifies, in the background, every chain the
// compliance store holds (each line edge and each central journal): the
// records as stored must still hash to their stored hashes, link to their
// predecessors and be covered by a valid Ed25519 signature of their
// enrolled key. Ingest verified them on the way in; this catches what
// happened to them afterwards (an edited row, a restored backup with holes)
// and gives the audit trail its chain verification status.
package audit

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/sync/record"
)

// ChainStatus is the verification state of one chain (its newest epoch).
type ChainStatus struct {
	Edge  string      `json:"edge"`
	Epoch uint32      `json:"epoch"`
	Head  uint64      `json:"head_seq"` // stored head when last checked
	OK    uint64      `json:"verified_seq"`
	Err   string      `json:"error,omitempty"`
	At    time.Time   `json:"checked_at"`
	Hash  record.Hash `json:"-"`
}

// Verified reports whether record (epoch, seq) of this chain is verified.
func (c ChainStatus) Verified(epoch uint32, seq uint64) bool {
	return c.Err == "" && epoch == c.Epoch && seq <= c.OK
}

// Options configure the verifier.
type Options struct {
	Store    store.Store
	Log      zerolog.Logger
	Interval time.Duration // between passes; default 30 s
	Page     int           // records read at a time; default 2000
}

// Verifier verifies chains incrementally: each pass continues from where
// the last one stopped.
type Verifier struct {
	opt Options
	log zerolog.Logger

	mu     sync.Mutex
	chains map[string]*chainState
	kick   chan struct{}

	broken prometheus.Gauge
}

type chainState struct {
	status ChainStatus
	v      *record.Verifier
	// covered is the last seq covered by a verified signature; records
	// after it are linked but not yet authenticated.
	covered uint64
}

// New builds a verifier.
func New(opt Options) *Verifier {
	if opt.Interval <= 0 {
		opt.Interval = 30 * time.Second
	}
	if opt.Page <= 0 {
		opt.Page = 2000
	}
	return &Verifier{opt: opt, log: opt.Log.With().Str("component", "audit").Logger(), chains: map[string]*chainState{}, kick: make(chan struct{}, 1),
		broken: prometheus.NewGauge(prometheus.GaugeOpts{Name: "serialine_chains_broken", Help: "Stored chains that failed re-verification."})}
}

// Register adds the verifier's metrics.
func (v *Verifier) Register(reg prometheus.Registerer) error { return reg.Register(v.broken) }

// Kick asks for a pass soon (after new records were stored).
func (v *Verifier) Kick() {
	select {
	case v.kick <- struct{}{}:
	default:
	}
}

// Run verifies until ctx ends.
func (v *Verifier) Run(ctx context.Context) error {
	t := time.NewTicker(v.opt.Interval)
	defer t.Stop()
	for {
		if err := v.Pass(ctx); err != nil && ctx.Err() == nil {
			v.log.Error().Err(err).Msg("chain verification pass failed")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-v.kick:
		}
	}
}

// Pass verifies every chain up to its current head.
func (v *Verifier) Pass(ctx context.Context) error {
	edges, err := v.opt.Store.Edges(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range edges {
		if err := v.chain(ctx, e); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", e.ID, err))
		}
	}
	n := 0
	v.mu.Lock()
	for _, c := range v.chains {
		if c.status.Err != "" {
			n++
		}
	}
	v.mu.Unlock()
	v.broken.Set(float64(n))
	return errors.Join(errs...)
}

func (v *Verifier) chain(ctx context.Context, e store.Edge) error {
	h, ok, err := v.opt.Store.Head(ctx, e.ID)
	if err != nil || !ok {
		return err
	}
	v.mu.Lock()
	c := v.chains[e.ID]
	if c == nil || c.status.Epoch != h.Epoch {
		c = &chainState{status: ChainStatus{Edge: e.ID, Epoch: h.Epoch}, v: record.NewVerifier(ed25519.PublicKey(e.PublicKey), record.Head{Epoch: h.Epoch})}
		v.chains[e.ID] = c
	}
	v.mu.Unlock()
	if c.status.Err != "" {
		return nil // reported; a broken chain stays broken
	}
	from := c.v.Head().Seq + 1
	var fail string
	for from <= h.Seq && fail == "" {
		recs, err := v.opt.Store.Records(ctx, e.ID, h.Epoch, from, v.opt.Page)
		if err != nil {
			return err
		}
		if len(recs) == 0 {
			fail = fmt.Sprintf("records from seq %d to the head %d are missing", from, h.Seq)
			break
		}
		for i := range recs {
			got, err := c.v.Add(&recs[i].Record)
			if err != nil {
				fail = err.Error()
				break
			}
			if got != recs[i].Hash {
				fail = fmt.Sprintf("seq %d: stored hash differs from the record's hash", recs[i].Record.Seq)
				break
			}
			if len(recs[i].Record.Sig) > 0 {
				c.covered = recs[i].Record.Seq
			}
		}
		from = c.v.Head().Seq + 1
	}
	v.mu.Lock()
	c.status.Head, c.status.OK, c.status.At, c.status.Hash = h.Seq, c.covered, time.Now().UTC(), c.v.Head().Hash
	if fail != "" {
		c.status.Err = fail
		v.log.Error().Str("chain", e.ID).Str("problem", fail).Msg("stored chain fails verification")
	}
	v.mu.Unlock()
	return nil
}

// Status returns every chain's status, by edge id.
func (v *Verifier) Status() []ChainStatus {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make([]ChainStatus, 0, len(v.chains))
	for _, c := range v.chains {
		out = append(out, c.status)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Edge < out[j].Edge })
	return out
}

// Chain returns one chain's status.
func (v *Verifier) Chain(edge string) (ChainStatus, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	c, ok := v.chains[edge]
	if !ok {
		return ChainStatus{}, false
	}
	return c.status, true
}
