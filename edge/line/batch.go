package line

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/serialine/serialine/drivers"
	"github.com/serialine/serialine/edge/config"
	"github.com/serialine/serialine/edge/serials"
	"github.com/serialine/serialine/edge/store"
	"github.com/serialine/serialine/sync/gs1"
	"github.com/serialine/serialine/sync/record"
)

// BatchRequest creates a batch (work order).
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

func serialSpec(p config.Product) serials.Spec {
	spec := serials.Spec{Length: p.Serials.Length, Alphabet: p.Serials.Alphabet}
	if spec.Length == 0 {
		spec.Length = 12
	}
	return spec
}

// CreateBatch creates a batch; the batch id is the lot. It runs after a
// supervisor signs the line clearance and someone starts it.
func (e *Engine) CreateBatch(ctx context.Context, req BatchRequest) (string, error) {
	v, err := e.do(ctx, "create batch", func(tx *store.Tx) (any, error) { return e.createBatch(tx, req) })
	if err != nil {
		return "", err
	}
	return v.(string), nil
}

func (e *Engine) createBatch(tx *store.Tx, req BatchRequest) (string, error) {
	if e.b != nil && e.b.State != BatchClosed {
		return "", ruleErr("batch %s is %s on this line: close it before creating another", e.b.ID, e.b.State)
	}
	if e.restartRequested() {
		return "", ruleErr("a changed line config is being applied: the edge restarts before the next batch")
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
	minGrade, err := drivers.ParseMinGrade(p.MinGrade)
	if err != nil {
		return "", ruleErr("product %s min_grade: %v", p.GTIN, err)
	}
	b := &batch{
		ID: req.Lot, GTIN: p.GTIN, Product: p.Name, Lot: req.Lot, Expiry: req.Expiry, Planned: req.Planned,
		UnitsPerCase: p.Packaging.UnitsPerCase, CasesPerPallet: p.Packaging.CasesPerPallet,
		MinGrade: float64(minGrade), ConfigHash: e.cfg.Hash, State: BatchCreated, SamplesPlanned: p.Samples,
	}
	if _, err := tx.Append(record.KindBatchCreated, record.BatchCreated{
		Batch: b.ID, Line: e.cfg.Line.ID, GTIN: b.GTIN, Product: b.Product, Lot: b.Lot, Expiry: b.Expiry, Planned: b.Planned, CreatedBy: req.By,
	}); err != nil {
		return "", err
	}
	if err := tx.Put(store.State, []byte("active_batch"), []byte(b.ID)); err != nil {
		return "", err
	}
	e.b = b
	e.log.Info().Str("batch", b.ID).Str("gtin", b.GTIN).Int("planned", b.Planned).Msg("batch created")
	return b.ID, nil
}

// ClearLine records the supervisor's line clearance for the active batch.
func (e *Engine) ClearLine(ctx context.Context, by string, sig *record.Signature, note string) error {
	_, err := e.do(ctx, "line clearance", func(tx *store.Tx) (any, error) {
		if e.b == nil || e.b.State != BatchCreated {
			return nil, ruleErr("line clearance applies to a created batch (active: %s)", e.describe())
		}
		if sig == nil && by != "config" {
			return nil, ruleErr("line clearance needs a supervisor's e-signature")
		}
		if _, err := tx.Append(record.KindLineClearance, record.LineClearance{Batch: e.b.ID, Signature: sig, By: by, Note: note}); err != nil {
			return nil, err
		}
		return nil, e.setState(tx, BatchCleared, "line clearance", by)
	})
	return err
}

// Start starts the active batch after line clearance: it reserves the
// batch's serials (planned + overage) from the pool and, if configured,
// runs the start-of-batch challenge before the first product unit.
func (e *Engine) Start(ctx context.Context, by string) error {
	st := e.Status()
	if st.BatchState == BatchCleared {
		if err := e.preparePool(ctx, st.GTIN, st.Planned, by); err != nil {
			return err
		}
	}
	_, err := e.do(ctx, "start", func(tx *store.Tx) (any, error) { return nil, e.start(tx, by) })
	return err
}

func (e *Engine) start(tx *store.Tx, by string) error {
	b := e.b
	if b == nil || b.State != BatchCleared {
		return ruleErr("a batch starts after line clearance (active: %s)", e.describe())
	}
	if err := e.equipmentCheckStart(tx, by); err != nil {
		return err
	}
	p := e.product(b.GTIN)
	need := serialsNeeded(p, b.Planned)
	if have := serials.Available(tx, b.GTIN); have < need {
		return ruleErr("GTIN %s has %d serials in its pool; batch %s needs %d (planned %d + %d%% overage): import more from the Level 4 system", b.GTIN, have, b.ID, need, b.Planned, p.Serials.OveragePercent)
	}
	list, err := serials.Reserve(tx, b.GTIN, b.ID, need)
	if err != nil {
		return err
	}
	if err := appendSerials(tx, record.KindSerialsReserved, b.ID, b.GTIN, list, by); err != nil {
		return err
	}
	b.Allocated = need
	if _, err := tx.Append(record.KindBatchStarted, record.BatchStarted{
		Batch: b.ID, Line: e.cfg.Line.ID, GTIN: b.GTIN, Product: b.Product, Lot: b.Lot, Expiry: b.Expiry,
		Planned: b.Planned, UnitsPerCase: b.UnitsPerCase, CasesPerPallet: b.CasesPerPallet,
		MinGrade: b.MinGrade, ConfigHash: b.ConfigHash, StartedBy: by,
	}); err != nil {
		return err
	}
	if err := e.checkPool(tx); err != nil {
		return err
	}
	e.lastHeadMove = e.now()
	if kinds := e.cfg.Edge.Challenge.AtStart; len(kinds) > 0 {
		b.Challenge = &challenge{Pending: append([]string(nil), kinds...), Trigger: "batch_start"}
	}
	if every := e.cfg.Edge.Challenge.Every; every > 0 {
		b.NextChallenge = every
	}
	return e.setState(tx, BatchRunning, "start", by)
}

// topUp reserves more serials for a running batch whose reserved serials
// ran out before the planned good quantity (rejects beyond the overage).
// When the pool cannot provide them the line is held with an alarm.
func (e *Engine) topUp(tx *store.Tx) error {
	b := e.b
	p := e.product(b.GTIN)
	n := max(b.Planned-b.Good-len(b.InFlight), 1)
	n = min(max(n, (b.Planned*p.Serials.OveragePercent+99)/100), serials.ChunkSize)
	if have := serials.Available(tx, b.GTIN); have < n {
		if p.Serials.Source == "import" {
			msg := fmt.Sprintf("batch %s needs %d more serials and the pool of GTIN %s has %d: import more; line held", b.ID, n, b.GTIN, have)
			if err := e.alarm(tx, "serials_exhausted", true, msg); err != nil {
				return err
			}
			return e.setState(tx, BatchHeld, msg, "system")
		}
		if err := serials.Generate(tx, b.GTIN, serialSpec(p), n-have); err != nil {
			msg := fmt.Sprintf("batch %s: %v; line held", b.ID, err)
			if aerr := e.alarm(tx, "serials_exhausted", true, msg); aerr != nil {
				return aerr
			}
			return e.setState(tx, BatchHeld, msg, "system")
		}
		if _, err := tx.Append(record.KindSerialsGenerated, record.Serials{GTIN: b.GTIN, Count: n - have, Source: "generated", By: "system"}); err != nil {
			return err
		}
	}
	list, err := serials.Reserve(tx, b.GTIN, b.ID, n)
	if err != nil {
		return err
	}
	b.Allocated += n
	e.log.Info().Str("batch", b.ID).Int("serials", n).Msg("batch topped up with more serials")
	return appendSerials(tx, record.KindSerialsReserved, b.ID, b.GTIN, list, "system")
}

// ImportSerials validates a Level 4 system's serial list (all of it, every
// problem reported by line; nothing is imported if any) and adds it to the
// GTIN's pool in chunks, each chunk with the record listing it.
func (e *Engine) ImportSerials(ctx context.Context, gtin string, list []serials.Entry, source, by string) error {
	_, err := e.doRaw(ctx, "import serials", func() (any, error) {
		p := e.product(gtin)
		if p.GTIN == "" {
			return nil, ruleErr("GTIN %s is not a product of line %s", gtin, e.cfg.Line.ID)
		}
		if len(list) == 0 {
			return nil, ruleErr("the serial list is empty")
		}
		err := e.db.View(func(tx *store.Tx) error { return serials.Validate(tx, gtin, serialSpec(p), list) })
		var ie *serials.ImportError
		if errors.As(err, &ie) {
			return nil, &RuleError{Msg: ie.Error()}
		}
		if err != nil {
			return nil, err
		}
		parts := (len(list) + serials.ChunkSize - 1) / serials.ChunkSize
		for i := 0; i < parts; i++ {
			chunk := list[i*serials.ChunkSize : min(len(list), (i+1)*serials.ChunkSize)]
			err := e.db.Update(func(tx *store.Tx) error {
				if err := serials.Add(tx, gtin, chunk); err != nil {
					return err
				}
				got := make([]string, len(chunk))
				for j, x := range chunk {
					got[j] = x.Serial
				}
				_, err := tx.Append(record.KindSerialsImported, record.Serials{GTIN: gtin, Count: len(list), Serials: got, Part: i + 1, Parts: parts, Source: source, By: by})
				return err
			})
			if err != nil {
				return nil, err
			}
		}
		return nil, nil
	})
	return err
}

func serialsNeeded(p config.Product, planned int) int {
	return planned + (planned*p.Serials.OveragePercent+99)/100
}

// preparePool generates the serials a batch of GTIN needs beyond what the
// pool holds, in chunks (one transaction and one record each), when the
// product's serials are generated locally. Imported-only products are left
// alone: Start then refuses with a clear message.
func (e *Engine) preparePool(ctx context.Context, gtin string, planned int, by string) error {
	_, err := e.doRaw(ctx, "prepare serials", func() (any, error) {
		p := e.product(gtin)
		if p.GTIN == "" || p.Serials.Source == "import" {
			return nil, nil
		}
		need := serialsNeeded(p, planned)
		for {
			var made int
			err := e.db.Update(func(tx *store.Tx) error {
				missing := need - serials.Available(tx, gtin)
				if missing <= 0 {
					return nil
				}
				made = min(missing, serials.ChunkSize)
				if err := serials.Generate(tx, gtin, serialSpec(p), made); err != nil {
					return ruleErr("GTIN %s: %v", gtin, err)
				}
				_, err := tx.Append(record.KindSerialsGenerated, record.Serials{GTIN: gtin, Count: made, Source: "generated", By: by})
				return err
			})
			if err != nil || made == 0 {
				return nil, err
			}
		}
	})
	return err
}

// appendSerials records a serial list in parts of at most 5,000 serials.
func appendSerials(tx *store.Tx, kind record.Kind, batch, gtin string, list []string, by string) error {
	const part = 5000
	parts := (len(list) + part - 1) / part
	for i := 0; i < parts; i++ {
		chunk := list[i*part : min(len(list), (i+1)*part)]
		if _, err := tx.Append(kind, record.Serials{Batch: batch, GTIN: gtin, Count: len(list), Serials: chunk, Part: i + 1, Parts: parts, By: by}); err != nil {
			return err
		}
	}
	return nil
}

// checkPool raises (once) or clears the pool low-water alarm.
func (e *Engine) checkPool(tx *store.Tx) error {
	p := e.product(e.b.GTIN)
	if p.Serials.LowWater <= 0 {
		return nil
	}
	have := serials.Available(tx, p.GTIN)
	return e.alarm(tx, "pool_low", have < p.Serials.LowWater,
		fmt.Sprintf("serial pool of GTIN %s is low: %d left (low water %d)", p.GTIN, have, p.Serials.LowWater))
}

// alarm raises or clears a named alarm on the active batch, recording the change.
func (e *Engine) alarm(tx *store.Tx, code string, active bool, msg string) error {
	b := e.b
	on := false
	for _, a := range b.Alarms {
		on = on || a == code
	}
	if on == active {
		return nil
	}
	if active {
		b.Alarms = append(b.Alarms, code)
		e.log.Warn().Str("alarm", code).Msg(msg)
	} else {
		out := b.Alarms[:0]
		for _, a := range b.Alarms {
			if a != code {
				out = append(out, a)
			}
		}
		b.Alarms = out
	}
	_, err := tx.Append(record.KindAlarm, record.Alarm{Code: code, Active: active, Message: msg})
	return err
}

func (e *Engine) describe() string {
	if e.b == nil {
		return "none"
	}
	return e.b.ID + " " + e.b.State
}

// StartBatch creates a batch, records the line clearance and starts it.
func (e *Engine) StartBatch(ctx context.Context, req BatchRequest, clearance *record.Signature) (string, error) {
	if err := e.preparePool(ctx, req.GTIN, req.Planned, req.By); err != nil {
		return "", err
	}
	v, err := e.do(ctx, "start batch", func(tx *store.Tx) (any, error) {
		id, err := e.createBatch(tx, req)
		if err != nil {
			return nil, err
		}
		by := req.By
		if clearance == nil && by != "config" {
			return nil, ruleErr("line clearance needs a supervisor's e-signature")
		}
		if _, err := tx.Append(record.KindLineClearance, record.LineClearance{Batch: id, Signature: clearance, By: by}); err != nil {
			return nil, err
		}
		if err := e.setState(tx, BatchCleared, "line clearance", by); err != nil {
			return nil, err
		}
		return id, e.start(tx, by)
	})
	if err != nil {
		return "", err
	}
	return v.(string), nil
}

// StartAutoBatch starts the config's batch (unattended lines and the demo)
// unless a batch with that lot already exists: a restart resumes it. The
// line clearance is recorded as given by the configuration, not e-signed.
func (e *Engine) StartAutoBatch(ctx context.Context) error {
	ab := e.cfg.Batch
	if ab == nil {
		return nil
	}
	exists := false
	if err := e.db.View(func(tx *store.Tx) error { exists = tx.Has(store.Batches, []byte(ab.Lot)); return nil }); err != nil || exists {
		return err
	}
	if err := e.preparePool(ctx, ab.GTIN, ab.Planned, "config"); err != nil {
		return err
	}
	_, err := e.do(ctx, "auto batch", func(tx *store.Tx) (any, error) {
		if tx.Has(store.Batches, []byte(ab.Lot)) {
			return nil, nil
		}
		id, err := e.createBatch(tx, BatchRequest{GTIN: ab.GTIN, Lot: ab.Lot, Expiry: ab.Expiry, Planned: ab.Planned, By: "config"})
		if err != nil {
			return nil, err
		}
		if _, err := tx.Append(record.KindLineClearance, record.LineClearance{Batch: id, By: "config", Note: "unattended start from the line configuration"}); err != nil {
			return nil, err
		}
		if err := e.setState(tx, BatchCleared, "line clearance (configured)", "config"); err != nil {
			return nil, err
		}
		return nil, e.start(tx, "config")
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

// Hold pauses a running batch: no new labels; units in flight finish.
func (e *Engine) Hold(ctx context.Context, by, reason string) error {
	return e.transition(ctx, by, reason, BatchHeld, BatchRunning)
}

// Resume continues a held batch.
func (e *Engine) Resume(ctx context.Context, by, reason string) error {
	return e.transition(ctx, by, reason, BatchRunning, BatchHeld)
}

// Stop ends production of a running or held batch; it can then be closed.
func (e *Engine) Stop(ctx context.Context, by, reason string) error {
	return e.transition(ctx, by, reason, BatchStopped, BatchRunning, BatchHeld, BatchComplete)
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
		if to == BatchRunning {
			if err := e.undeliveredBlocks("resume"); err != nil {
				return nil, err
			}
		}
		if to == BatchRunning && e.b.Challenge != nil && e.b.Challenge.Active == "failed" {
			// A failed challenge holds the line until a new challenge passes.
			e.b.Challenge = &challenge{Pending: append([]string(nil), e.cfg.Edge.Challenge.AtStart...), Trigger: "after_failure"}
			if len(e.b.Challenge.Pending) == 0 {
				e.b.Challenge.Pending = []string{ChallengeWrongData}
			}
		}
		return nil, e.setState(tx, to, reason, by)
	})
	return err
}

// CloseRequest closes a batch.
type CloseRequest struct {
	By string
	// LooseReason explains good units not in a closed container (e.g. an
	// open case at the end of the batch).
	LooseReason string
	// Signature approves a reconciliation with unexplained differences.
	Signature *record.Signature
}

// CloseBatch returns the batch's unused serials to the pool and records the
// reconciliation: allocated = commissioned + returned unused; commissioned =
// good + rejected + samples + destroyed; good = aggregated + loose. A batch
// whose numbers do not balance (or with loose units and no reason) closes
// only with a supervisor's e-signature and reason.
func (e *Engine) CloseBatch(ctx context.Context, req CloseRequest) (record.Reconciliation, error) {
	v, err := e.do(ctx, "close batch", func(tx *store.Tx) (any, error) {
		b := e.b
		if b == nil || (b.State != BatchStopped && b.State != BatchComplete) {
			return nil, ruleErr("a batch closes after it is stopped or complete (active: %s)", e.describe())
		}
		if len(b.InFlight) > 0 {
			return nil, ruleErr("batch %s still has %d units awaiting a verdict", b.ID, len(b.InFlight))
		}
		if err := e.closeBlockers(); err != nil {
			return nil, err
		}
		returned, err := serials.Release(tx, b.ID)
		if err != nil {
			return nil, err
		}
		b.Returned = len(returned)
		rec := record.Reconciliation{
			Allocated: b.Allocated, Commissioned: b.Commissioned, ReturnedUnused: b.Returned,
			Good: b.Good - b.Samples - b.Destroyed, Rejected: b.Rejected, Samples: b.Samples, Destroyed: b.Destroyed,
			Aggregated: b.Aggregated,
		}
		rec.Loose = rec.Good - rec.Aggregated
		var problems []string
		if rec.Allocated != rec.Commissioned+rec.ReturnedUnused {
			problems = append(problems, fmt.Sprintf("allocated %d != commissioned %d + returned %d", rec.Allocated, rec.Commissioned, rec.ReturnedUnused))
		}
		if rec.Commissioned != rec.Good+rec.Rejected+rec.Samples+rec.Destroyed {
			problems = append(problems, fmt.Sprintf("commissioned %d != good %d + rejected %d + samples %d + destroyed %d", rec.Commissioned, rec.Good, rec.Rejected, rec.Samples, rec.Destroyed))
		}
		if b.SamplesPlanned > 0 && rec.Samples < b.SamplesPlanned {
			problems = append(problems, fmt.Sprintf("%d QA samples pulled, product %s plans %d per batch", rec.Samples, b.GTIN, b.SamplesPlanned))
		}
		if rec.Loose > 0 && req.LooseReason == "" {
			problems = append(problems, fmt.Sprintf("%d good units are not in a closed container and no reason was given", rec.Loose))
		}
		balanced := len(problems) == 0
		if !balanced && (req.Signature == nil || req.Signature.Reason == "") {
			return nil, ruleErr("batch %s does not reconcile: %s; closing needs a supervisor's e-signature with a reason", b.ID, joinProblems(problems))
		}
		if len(returned) > 0 {
			if err := appendSerials(tx, record.KindSerialsReturned, b.ID, b.GTIN, returned, req.By); err != nil {
				return nil, err
			}
		}
		body := record.BatchClosed{Batch: b.ID, Reconciliation: rec, Balanced: balanced, Signature: req.Signature}
		if req.LooseReason != "" || len(problems) > 0 {
			body.Notes = req.LooseReason
			body.Problems = problems
		}
		if _, err := tx.Append(record.KindBatchClosed, body); err != nil {
			return nil, err
		}
		if err := e.setState(tx, BatchClosed, "close", req.By); err != nil {
			return nil, err
		}
		pending := b.PendingConfig
		if pending != "" {
			msg := fmt.Sprintf("batch %s closed: line config %s is applied now (the edge restarts)", b.ID, short(pending))
			b.Alarms = removeString(b.Alarms, alarmConfigPending)
			if _, err := tx.Append(record.KindAlarm, record.Alarm{Code: alarmConfigPending, Active: false, Message: msg}); err != nil {
				return nil, err
			}
		}
		if err := e.saveBatch(tx); err != nil {
			return nil, err
		}
		e.b = nil
		if pending != "" {
			// After the commit: the reply goes out, then the daemon restarts.
			e.fx.replies = append(e.fx.replies, func() { e.requestRestart("batch closed with a config pending") })
		}
		return rec, tx.Delete(store.State, []byte("active_batch"))
	})
	if err != nil {
		return record.Reconciliation{}, err
	}
	return v.(record.Reconciliation), nil
}

func joinProblems(p []string) string {
	s := ""
	for i, x := range p {
		if i > 0 {
			s += "; "
		}
		s += x
	}
	return s
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
