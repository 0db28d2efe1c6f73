// Package ingest receives record envelopes from edges, verifies them
// (enrolled edge, well-formed, chain continuity, signatures), stores them
// and only then acknowledges, per edge, up to the last stored record.
//
// What does not verify is quarantined with its reason, never stored as
// valid and never silently dropped. Redeliveries are harmless: records at or
// below the stored head are compared with what is stored and skipped. A gap
// (records beyond head+1) triggers a replay request.
package ingest

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/sync/record"
	"github.com/serialine/serialine/sync/transport"
	"github.com/serialine/serialine/sync/wire"
)

// Client is the MQTT side ingest needs (transport.Client in production).
type Client interface {
	Subscribe(topic string, qos byte, h transport.Handler) error
	Publish(ctx context.Context, topic string, qos byte, retained bool, payload []byte) error
}

// Alerter raises alerts (central/alerts.Alerter in production).
type Alerter interface {
	Raise(ctx context.Context, a store.Alert) (store.Alert, error)
}

// Options configure ingest.
type Options struct {
	Store  store.Store
	Client Client
	Log    zerolog.Logger
	// Alerts, if set, gets an alert for every edge whose records are
	// quarantined (one active alert per edge until cleared).
	Alerts Alerter
	// Share, if set, subscribes through the MQTT shared subscription group
	// $share/<Share>/... so several central instances split the load.
	Share string
	// MaxQuarantinePayload bounds the bytes kept for a quarantined payload.
	MaxQuarantinePayload int
}

// Stats are counters for metrics and tests.
type Stats struct {
	Envelopes   atomic.Int64
	Stored      atomic.Int64
	Duplicates  atomic.Int64
	Quarantined atomic.Int64
	Replays     atomic.Int64
	Conflicts   atomic.Int64
}

// Ingest is the receiver.
type Ingest struct {
	opt   Options
	st    store.Store
	log   zerolog.Logger
	Stats Stats

	mu      sync.Mutex
	workers map[string]chan []byte
	heads   map[string]record.Head // cache of stored heads
	keys    map[string]ed25519.PublicKey
	replays map[string]time.Time // last replay request per edge (rate limit)
	ctx     context.Context
	wg      sync.WaitGroup
}

// New builds an ingest.
func New(opt Options) *Ingest {
	if opt.MaxQuarantinePayload <= 0 {
		opt.MaxQuarantinePayload = 64 << 10
	}
	return &Ingest{
		opt: opt, st: opt.Store, log: opt.Log.With().Str("component", "ingest").Logger(),
		workers: map[string]chan []byte{}, heads: map[string]record.Head{},
		keys: map[string]ed25519.PublicKey{}, replays: map[string]time.Time{},
	}
}

// Run subscribes and processes until ctx ends.
func (in *Ingest) Run(ctx context.Context) error {
	in.mu.Lock()
	in.ctx = ctx
	in.mu.Unlock()
	prefix := ""
	if in.opt.Share != "" {
		prefix = "$share/" + in.opt.Share + "/"
	}
	if err := in.opt.Client.Subscribe(prefix+wire.TopicPrefix+"+/records", 1, in.onRecords); err != nil {
		return err
	}
	if err := in.opt.Client.Subscribe(wire.TopicPrefix+"+/status", 0, in.onStatus); err != nil {
		return err
	}
	<-ctx.Done()
	// Workers stop on ctx (their channels are never closed: a delivery
	// callback may still be sending). Envelopes still queued are not
	// acknowledged, so the edges send them again.
	in.wg.Wait()
	return nil
}

// onRecords dispatches an envelope to its edge's worker, so envelopes of
// one edge are processed in order and edges in parallel.
func (in *Ingest) onRecords(topic string, payload []byte) {
	edge, _, ok := wire.ParseTopic(topic)
	if !ok || wire.ValidEdgeID(edge) != nil {
		in.quarantine(context.Background(), store.Quarantined{Edge: edge, Reason: "bad topic " + topic, Payload: payload})
		return
	}
	in.mu.Lock()
	if in.ctx == nil || in.ctx.Err() != nil {
		in.mu.Unlock()
		return
	}
	ctx := in.ctx
	ch, ok := in.workers[edge]
	if !ok {
		ch = make(chan []byte, 256)
		in.workers[edge] = ch
		in.wg.Add(1)
		go in.worker(ctx, edge, ch)
	}
	in.mu.Unlock()
	select {
	case ch <- payload:
	case <-ctx.Done():
	}
}

func (in *Ingest) worker(ctx context.Context, edge string, ch chan []byte) {
	defer in.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case payload := <-ch:
			if err := in.Process(ctx, edge, payload); err != nil && ctx.Err() == nil {
				in.log.Error().Err(err).Str("edge", edge).Msg("envelope not processed")
			}
		}
	}
}

func (in *Ingest) onStatus(topic string, payload []byte) {
	edge, ch, ok := wire.ParseTopic(topic)
	if !ok || ch != "status" {
		return
	}
	var s wire.Status
	if err := json.Unmarshal(payload, &s); err != nil {
		in.log.Warn().Err(err).Str("edge", edge).Msg("status does not parse")
		return
	}
	s.Edge = edge // the topic (ACL-checked) names the edge, not the payload
	if _, err := in.key(context.Background(), edge); err != nil {
		return // unknown edges get no dashboard row
	}
	if err := in.st.UpdateStatus(context.Background(), s); err != nil {
		in.log.Warn().Err(err).Str("edge", edge).Msg("status not stored")
	}
}

func (in *Ingest) key(ctx context.Context, edge string) (ed25519.PublicKey, error) {
	in.mu.Lock()
	k, ok := in.keys[edge]
	in.mu.Unlock()
	if ok {
		return k, nil
	}
	e, err := in.st.Edge(ctx, edge)
	if err != nil {
		return nil, err
	}
	in.mu.Lock()
	in.keys[edge] = ed25519.PublicKey(e.PublicKey)
	in.mu.Unlock()
	return e.PublicKey, nil
}

// ForgetKey drops a cached key (after enrollment changes).
func (in *Ingest) ForgetKey(edge string) {
	in.mu.Lock()
	delete(in.keys, edge)
	in.mu.Unlock()
}

func (in *Ingest) head(ctx context.Context, edge string) (record.Head, error) {
	in.mu.Lock()
	h, ok := in.heads[edge]
	in.mu.Unlock()
	if ok {
		return h, nil
	}
	h, _, err := in.st.Head(ctx, edge)
	if err != nil {
		return h, err
	}
	in.mu.Lock()
	in.heads[edge] = h
	in.mu.Unlock()
	return h, nil
}

func (in *Ingest) setHead(edge string, h record.Head) {
	in.mu.Lock()
	in.heads[edge] = h
	in.mu.Unlock()
}

func (in *Ingest) dropHead(edge string) {
	in.mu.Lock()
	delete(in.heads, edge)
	in.mu.Unlock()
}

func (in *Ingest) quarantine(ctx context.Context, q store.Quarantined) {
	if len(q.Payload) > in.opt.MaxQuarantinePayload {
		q.Payload = q.Payload[:in.opt.MaxQuarantinePayload]
	}
	if q.At.IsZero() {
		q.At = time.Now().UTC()
	}
	in.Stats.Quarantined.Add(1)
	in.log.Error().Str("edge", q.Edge).Uint32("epoch", q.Epoch).Uint64("seq", q.Seq).Str("reason", q.Reason).Msg("ALERT: record quarantined")
	if err := in.st.Quarantine(ctx, q); err != nil {
		in.log.Error().Err(err).Msg("quarantine not stored")
	}
	if in.opt.Alerts != nil {
		ref := ""
		if q.Seq > 0 {
			ref = fmt.Sprintf("%s/%d/%d", q.Edge, q.Epoch, q.Seq)
		}
		if _, err := in.opt.Alerts.Raise(ctx, store.Alert{
			Severity: store.SeverityCritical, Code: "quarantine", Key: "quarantine:" + q.Edge, Edge: q.Edge, Ref: ref,
			Message: fmt.Sprintf("records of edge %q quarantined: %s", q.Edge, q.Reason),
		}); err != nil {
			in.log.Error().Err(err).Msg("quarantine alert not raised")
		}
	}
}

// Register exposes the ingest counters as Prometheus metrics.
func (in *Ingest) Register(reg prometheus.Registerer) error {
	c := func(name, help string, v *atomic.Int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(v.Load()) })
	}
	return errors.Join(
		reg.Register(c("serialine_ingest_envelopes_total", "Record envelopes received from edges.", &in.Stats.Envelopes)),
		reg.Register(c("serialine_ingest_records_stored_total", "Records verified and stored.", &in.Stats.Stored)),
		reg.Register(c("serialine_ingest_records_duplicate_total", "Redelivered records already stored (skipped).", &in.Stats.Duplicates)),
		reg.Register(c("serialine_ingest_quarantined_total", "Records or payloads quarantined (bad signature, broken chain, unknown edge, malformed).", &in.Stats.Quarantined)),
		reg.Register(c("serialine_ingest_replay_requests_total", "Replay requests sent to edges after a gap.", &in.Stats.Replays)),
		reg.Register(c("serialine_ingest_conflicts_total", "Appends retried because another instance moved the chain head.", &in.Stats.Conflicts)),
	)
}

// Process verifies and stores one envelope of an edge (the edge named by
// the topic). Exported for tests and for offline import.
func (in *Ingest) Process(ctx context.Context, edge string, payload []byte) error {
	in.Stats.Envelopes.Add(1)
	recs, err := wire.DecodeEnvelope(payload)
	if err != nil {
		in.quarantine(ctx, store.Quarantined{Edge: edge, Reason: err.Error(), Payload: payload})
		return nil
	}
	pub, err := in.key(ctx, edge)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			for i := range recs {
				in.quarantineRecord(ctx, edge, &recs[i], "unknown edge: not enrolled")
			}
			return nil
		}
		return err
	}
	for attempt := 0; attempt < 3; attempt++ {
		err = in.process(ctx, edge, pub, recs)
		if !errors.Is(err, store.ErrConflict) {
			return err
		}
		// Another instance stored records meanwhile: reload the head and
		// look again (what it stored is now a duplicate).
		in.Stats.Conflicts.Add(1)
		in.dropHead(edge)
	}
	return err
}

func (in *Ingest) quarantineRecord(ctx context.Context, edge string, r *record.Record, reason string) {
	raw := r.Canonical()
	in.quarantine(ctx, store.Quarantined{Edge: edge, Epoch: r.Epoch, Seq: r.Seq, Reason: reason, Payload: append(raw, r.Sig...)})
}

func (in *Ingest) process(ctx context.Context, edge string, pub ed25519.PublicKey, recs []record.Record) error {
	head, err := in.head(ctx, edge)
	if err != nil {
		return err
	}
	// 1. Records claiming another edge than the topic's are forgeries or
	// misrouted: quarantine the whole envelope.
	for i := range recs {
		if recs[i].Edge != edge {
			for j := range recs {
				in.quarantineRecord(ctx, edge, &recs[j], fmt.Sprintf("record claims edge %q on the topic of edge %q", recs[i].Edge, edge))
			}
			return nil
		}
	}
	// 2. Epoch: older epochs are replays of a retired log.
	first := &recs[0]
	if head.Seq > 0 && first.Epoch < head.Epoch {
		for i := range recs {
			in.quarantineRecord(ctx, edge, &recs[i], fmt.Sprintf("out-of-epoch: epoch %d is older than the stored epoch %d", recs[i].Epoch, head.Epoch))
		}
		return nil
	}
	after := head
	if first.Epoch > head.Epoch || head.Seq == 0 {
		after = record.Head{Epoch: first.Epoch}
	}
	// 3. Skip what is already stored (redelivery), checking it is the same.
	start := 0
	for start < len(recs) && recs[start].Epoch == after.Epoch && recs[start].Seq <= after.Seq {
		start++
	}
	if start > 0 {
		if err := in.checkDuplicates(ctx, edge, recs[:start]); err != nil {
			return err
		}
		in.Stats.Duplicates.Add(int64(start))
	}
	if start == len(recs) {
		return in.ack(ctx, edge, after)
	}
	rest := recs[start:]
	// 4. A gap: ask for a replay from the first missing record.
	if rest[0].Epoch != after.Epoch || rest[0].Seq != after.Seq+1 {
		in.requestReplay(ctx, edge, after, rest[0])
		return nil
	}
	// 5. Verify the chain and signatures. Only records covered by a valid
	// signature are stored; the first bad record and what follows it in
	// the envelope are quarantined.
	v := record.NewVerifier(pub, after)
	stored := make([]store.Stored, 0, len(rest))
	lastSigned := -1
	var bad error
	badAt := -1
	for i := range rest {
		h, err := v.Add(&rest[i])
		if err != nil {
			bad, badAt = err, i
			break
		}
		stored = append(stored, store.Stored{Record: rest[i], Hash: h})
		if len(rest[i].Sig) > 0 {
			lastSigned = i
		}
	}
	if badAt >= 0 {
		for i := badAt; i < len(rest); i++ {
			reason := bad.Error()
			if i > badAt {
				reason = fmt.Sprintf("follows bad record seq %d in the same envelope", rest[badAt].Seq)
			}
			in.quarantineRecord(ctx, edge, &rest[i], reason)
		}
	}
	if lastSigned < len(stored)-1 && badAt < 0 {
		// Unsigned tail: not authenticated yet. Keep it for the next
		// envelope (the edge resends from the last ack).
		in.log.Warn().Str("edge", edge).Int("unsigned", len(stored)-1-lastSigned).Msg("envelope ends without a signed checkpoint")
	}
	stored = stored[:lastSigned+1]
	if len(stored) == 0 {
		return nil
	}
	if err := in.st.Append(ctx, edge, after, stored); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return err
		}
		// A body that does not decode for a known kind fails the append:
		// quarantine the envelope's records so nothing is lost, and stop.
		in.log.Error().Err(err).Str("edge", edge).Msg("append failed")
		return err
	}
	last := stored[len(stored)-1]
	newHead := record.Head{Epoch: last.Record.Epoch, Seq: last.Record.Seq, Hash: last.Hash}
	in.setHead(edge, newHead)
	in.Stats.Stored.Add(int64(len(stored)))
	return in.ack(ctx, edge, newHead)
}

func (in *Ingest) checkDuplicates(ctx context.Context, edge string, dups []record.Record) error {
	stored, err := in.st.Records(ctx, edge, dups[0].Epoch, dups[0].Seq, len(dups))
	if err != nil {
		return err
	}
	bySeq := make(map[uint64]record.Hash, len(stored))
	for _, s := range stored {
		bySeq[s.Record.Seq] = s.Hash
	}
	for i := range dups {
		h, ok := bySeq[dups[i].Seq]
		if !ok {
			continue // pruned or older epoch: nothing to compare
		}
		if got := dups[i].Hash(); got != h {
			in.quarantineRecord(ctx, edge, &dups[i], fmt.Sprintf("replayed seq %d differs from the stored record (hash %s, stored %s)", dups[i].Seq, got, h))
		}
	}
	return nil
}

func (in *Ingest) requestReplay(ctx context.Context, edge string, after record.Head, got record.Record) {
	in.mu.Lock()
	last := in.replays[edge]
	now := time.Now()
	if now.Sub(last) < 500*time.Millisecond {
		in.mu.Unlock()
		return
	}
	in.replays[edge] = now
	in.mu.Unlock()
	in.Stats.Replays.Add(1)
	rp := wire.Replay{Epoch: got.Epoch, From: after.Seq + 1, Reason: fmt.Sprintf("gap: have %d, got %d", after.Seq, got.Seq)}
	if got.Epoch != after.Epoch {
		rp.From = 1
	}
	raw, _ := json.Marshal(rp)
	in.log.Info().Str("edge", edge).Uint64("from", rp.From).Str("reason", rp.Reason).Msg("requesting replay")
	if err := in.opt.Client.Publish(ctx, wire.Topic(edge, "replay"), 1, false, raw); err != nil {
		in.log.Warn().Err(err).Str("edge", edge).Msg("replay request not sent")
	}
}

func (in *Ingest) ack(ctx context.Context, edge string, h record.Head) error {
	if h.Seq == 0 {
		return nil
	}
	raw, _ := json.Marshal(wire.Ack{Epoch: h.Epoch, Seq: h.Seq, Hash: h.Hash.String()})
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := in.opt.Client.Publish(pctx, wire.Topic(edge, "ack"), 1, true, raw); err != nil {
		// Not fatal: the edge resends and gets a fresh ack.
		in.log.Warn().Err(err).Str("edge", edge).Msg("ack not sent")
	}
	return nil
}
