package line

import (
	"context"
	"fmt"
	"time"

	"github.com/serialine/serialine/drivers"
	"github.com/serialine/serialine/edge/config"
	"github.com/serialine/serialine/edge/store"
	"github.com/serialine/serialine/sync/gs1"
	"github.com/serialine/serialine/sync/record"
)

// BatchRequest creates and starts a batch.
type BatchRequest struct {
	GTIN    string
	Lot     string
	Expiry  string // YYMMDD
	Planned int
	By      string // user id
}

func (e *Engine) product(gtin string) config.Product {
	for _, p := range e.cfg.Products {
		if p.GTIN == gtin {
			return p
		}
	}
	return config.Product{}
}

// StartBatch creates and starts a batch; the batch id is the lot.
func (e *Engine) StartBatch(ctx context.Context, req BatchRequest) (string, error) {
	v, err := e.do(ctx, "start batch", func(tx *store.Tx) (any, error) {
		return e.startBatch(tx, req)
	})
	if err != nil {
		return "", err
	}
	return v.(string), nil
}

func (e *Engine) startBatch(tx *store.Tx, req BatchRequest) (string, error) {
	if e.b != nil && e.b.State != BatchClosed {
		return "", ruleErr("batch %s is %s on this line: close it before starting another", e.b.ID, e.b.State)
	}
	p := e.product(req.GTIN)
	if p.GTIN == "" {
		return "", ruleErr("GTIN %s is not a product of line %s", req.GTIN, e.cfg.Line.ID)
	}
	els := gs1.Elements{{AI: "01", Value: req.GTIN}, {AI: "17", Value: req.Expiry}, {AI: "10", Value: req.Lot}}
	if _, err := gs1.ParseBracketed(els.Bracketed()); err != nil {
		return "", ruleErr("batch data: %v", err)
	}
	if req.Planned <= 0 {
		return "", ruleErr("planned quantity must be positive")
	}
	if tx.Has(store.Batches, []byte(req.Lot)) {
		return "", ruleErr("batch %s already exists on this line", req.Lot)
	}
	minGrade, err := drivers.ParseGrade(p.MinGrade)
	if err != nil {
		return "", ruleErr("product %s min_grade: %v", p.GTIN, err)
	}
	b := &batch{
		ID: req.Lot, GTIN: p.GTIN, Product: p.Name, Lot: req.Lot, Expiry: req.Expiry, Planned: req.Planned,
		UnitsPerCase: p.Packaging.UnitsPerCase, CasesPerPallet: p.Packaging.CasesPerPallet,
		MinGrade: float64(minGrade), ConfigHash: e.cfg.Hash, State: BatchRunning,
	}
	if _, err := tx.Append(record.KindBatchStarted, record.BatchStarted{
		Batch: b.ID, Line: e.cfg.Line.ID, GTIN: b.GTIN, Product: b.Product, Lot: b.Lot, Expiry: b.Expiry,
		Planned: b.Planned, UnitsPerCase: b.UnitsPerCase, CasesPerPallet: b.CasesPerPallet,
		MinGrade: b.MinGrade, ConfigHash: b.ConfigHash, StartedBy: req.By,
	}); err != nil {
		return "", err
	}
	if err := tx.Put(store.State, []byte("active_batch"), []byte(b.ID)); err != nil {
		return "", err
	}
	e.b = b
	e.lastHeadMove = e.now()
	e.log.Info().Str("batch", b.ID).Str("gtin", b.GTIN).Int("planned", b.Planned).Msg("batch started")
	return b.ID, nil
}

// StartAutoBatch starts the config's batch: unless a batch with that lot
// already exists (a restart resumes it instead).
func (e *Engine) StartAutoBatch(ctx context.Context) error {
	ab := e.cfg.Batch
	if ab == nil {
		return nil
	}
	_, err := e.do(ctx, "auto batch", func(tx *store.Tx) (any, error) {
		if tx.Has(store.Batches, []byte(ab.Lot)) {
			return nil, nil
		}
		return e.startBatch(tx, BatchRequest{GTIN: ab.GTIN, Lot: ab.Lot, Expiry: ab.Expiry, Planned: ab.Planned, By: "config"})
	})
	return err
}

func (e *Engine) setState(tx *store.Tx, to, reason, by string) error {
	from := e.b.State
	e.b.State = to
	e.log.Info().Str("batch", e.b.ID).Str("from", from).Str("to", to).Str("reason", reason).Msg("batch state")
	_, err := tx.Append(record.KindBatchStateChanged, record.BatchState{Batch: e.b.ID, From: from, To: to, Reason: reason, By: by})
	return err
}

// Hold, Resume and Stop change the batch state.
func (e *Engine) Hold(ctx context.Context, by, reason string) error {
	return e.transition(ctx, by, reason, BatchHeld, BatchRunning)
}

// Resume continues a held batch.
func (e *Engine) Resume(ctx context.Context, by, reason string) error {
	return e.transition(ctx, by, reason, BatchRunning, BatchHeld)
}

// Stop stops a running or held batch (no more units).
func (e *Engine) Stop(ctx context.Context, by, reason string) error {
	return e.transition(ctx, by, reason, BatchStopped, BatchRunning, BatchHeld)
}

func (e *Engine) transition(ctx context.Context, by, reason, to string, from ...string) error {
	_, err := e.do(ctx, to, func(tx *store.Tx) (any, error) {
		if e.b == nil {
			return nil, ruleErr("no active batch")
		}
		ok := false
		for _, f := range from {
			ok = ok || e.b.State == f
		}
		if !ok {
			return nil, ruleErr("batch %s is %s: cannot go to %s", e.b.ID, e.b.State, to)
		}
		return nil, e.setState(tx, to, reason, by)
	})
	return err
}

// speedometer measures verdicts per minute over the last minute.
type speedometer struct {
	ring [256]int64
	n    int
}

func (s *speedometer) add(t time.Time) {
	s.ring[s.n%len(s.ring)] = t.UnixNano()
	s.n++
}

func (s *speedometer) perMinute(now time.Time) float64 {
	count := min(s.n, len(s.ring))
	if count < 2 {
		return 0
	}
	newest := s.ring[(s.n-1)%len(s.ring)]
	if now.UnixNano()-newest > int64(10*time.Second) {
		return 0
	}
	oldest := s.ring[(s.n-count)%len(s.ring)]
	span := time.Duration(newest - oldest)
	if span <= 0 {
		return 0
	}
	return float64(count-1) / span.Minutes()
}

var _ = fmt.Sprintf
