// Package ingest receives record envelopes from edges, verifies them
// (enrolled edge, well-formed, chain continuity, signatures), stores them
// and only then acknowledges, per edge, up to the last stored record.
//
// What does not verify is quarantined with its reason, never stored as
// valid and never silently dropped. Redeliveries are harmless: records at or
// below the stored head are compared with what is stored and skipped (a
// replayed seq whose content differs is quarantined).
//
// Envelopes that arrive ahead of the stored head (the edge interleaves live
// records with a backlog drain, or the broker re-delivers out of order) are
// kept in a bounded per-edge buffer and stored, strictly in seq order, as
// soon as the gap before them is filled; they are acknowledged only then. A
// gap that does not fill within ReplayAfter triggers a replay request for
// the missing range.
//
// Quarantine reasons (the `reason` label of
// serialine_ingest_quarantined_reason_total): bad_topic,
// malformed_envelope, unknown_edge, wrong_edge, out_of_epoch,
// replayed_differs, bad_signature, broken_chain, sequence, malformed_body,
// follows_bad (a record after the first bad one of its envelope).
package ingest

import (
	"context"
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
	Clear(ctx context.Context, key string) (bool, error)
}

// Options configure ingest.
type Options struct {
	Store  store.Store
	Client Client
	Log    zerolog.Logger
	// Alerts, if set, gets an alert for every edge whose records are
	// quarantined (one active alert per edge until cleared), and one for
	// every item whose reject did not reach the PLC, cleared by the
	// stored confirmation that it was found and removed.
	Alerts Alerter
	// Share, if set, subscribes through the MQTT shared subscription group
	// $share/<Share>/... so several central instances split the load.
	Share string
	// MaxQuarantinePayload bounds the bytes kept for a quarantined payload.
	MaxQuarantinePayload int
	// ReplayAfter is how long a gap may stay open (while envelopes beyond
	// it wait) before central asks the edge for a replay; default 1s.
	ReplayAfter time.Duration
	// MaxPendingBytes bounds the out-of-order envelopes kept per edge
	// (default 64 MiB); beyond it envelopes are dropped unacknowledged and
	// the edge resends them.
	MaxPendingBytes int
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// Quarantine reason codes.
const (
	ReasonBadTopic          = "bad_topic"
	ReasonMalformedEnvelope = "malformed_envelope"
	ReasonUnknownEdge       = "unknown_edge"
	ReasonWrongEdge         = "wrong_edge"
	ReasonOutOfEpoch        = "out_of_epoch"
	ReasonReplayedDiffers   = "replayed_differs"
	ReasonBadSignature      = "bad_signature"
	ReasonBrokenChain       = "broken_chain"
	ReasonSequence          = "sequence"
	ReasonMalformedBody     = "malformed_body"
	ReasonFollowsBad        = "follows_bad"
)

// Reasons lists every quarantine reason code.
var Reasons = []string{ReasonBadTopic, ReasonMalformedEnvelope, ReasonUnknownEdge, ReasonWrongEdge, ReasonOutOfEpoch,
	ReasonReplayedDiffers, ReasonBadSignature, ReasonBrokenChain, ReasonSequence, ReasonMalformedBody, ReasonFollowsBad}

// Stats are counters for metrics and tests.
type Stats struct {
	Envelopes   atomic.Int64
	Stored      atomic.Int64
	Duplicates  atomic.Int64
	Quarantined atomic.Int64
	Replays     atomic.Int64
	Conflicts   atomic.Int64
	// Buffered counts envelopes kept because they arrived ahead of the head.
	Buffered atomic.Int64
	// Repeats counts quarantines of an (edge, epoch, seq, reason) already
	// quarantined recently (a resent bad record): counted, not stored again.
	Repeats atomic.Int64

	mu       sync.Mutex
	byReason map[string]int64
}

// Quarantines returns how many records were quarantined for a reason code.
func (s *Stats) Quarantines(reason string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byReason[reason]
}

func (s *Stats) quarantined(reason string) {
	s.Quarantined.Add(1)
	s.mu.Lock()
	if s.byReason == nil {
		s.byReason = map[string]int64{}
	}
	s.byReason[reason]++
	s.mu.Unlock()
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
	keys    map[string]record.KeyRing
	edges   map[string]*edgeState
	seen    map[quarantineKey]time.Time // recent quarantines (repeat suppression)
	ctx     context.Context
	wg      sync.WaitGroup
}

// edgeState is one edge's out-of-order buffer; mu serialises the
// processing of that edge's envelopes.
type edgeState struct {
	mu         sync.Mutex
	pending    map[record.Head][]record.Record // keyed by (epoch, first seq)
	bytes      int
	gapSince   time.Time   // since when the head has not moved while envelopes wait
	progress   record.Head // the head when gapSince was set
	lastReplay time.Time
}

type quarantineKey struct {
	edge   string
	epoch  uint32
	seq    uint64
	reason string
}

// New builds an ingest.
func New(opt Options) *Ingest {
	if opt.MaxQuarantinePayload <= 0 {
		opt.MaxQuarantinePayload = 64 << 10
	}
	if opt.ReplayAfter <= 0 {
		opt.ReplayAfter = time.Second
	}
	if opt.MaxPendingBytes <= 0 {
		opt.MaxPendingBytes = 64 << 20
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	return &Ingest{
		opt: opt, st: opt.Store, log: opt.Log.With().Str("component", "ingest").Logger(),
		workers: map[string]chan []byte{}, heads: map[string]record.Head{},
		keys: map[string]record.KeyRing{}, edges: map[string]*edgeState{}, seen: map[quarantineKey]time.Time{},
	}
}

func (in *Ingest) state(edge string) *edgeState {
	in.mu.Lock()
	defer in.mu.Unlock()
	es, ok := in.edges[edge]
	if !ok {
		es = &edgeState{pending: map[record.Head][]record.Record{}}
		in.edges[edge] = es
	}
	return es
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
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			// Workers stop on ctx (their channels are never closed: a
			// delivery callback may still be sending). Envelopes still
			// queued are not acknowledged, so the edges send them again.
			in.wg.Wait()
			return nil
		case <-tick.C:
			in.Tick(ctx)
		}
	}
}

// onRecords dispatches an envelope to its edge's worker, so envelopes of
// one edge are processed in order and edges in parallel.
func (in *Ingest) onRecords(topic string, payload []byte) {
	edge, _, ok := wire.ParseTopic(topic)
	if !ok || wire.ValidEdgeID(edge) != nil {
		in.quarantine(context.Background(), ReasonBadTopic, store.Quarantined{Edge: edge, Reason: "bad topic " + topic, Payload: payload})
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
		var payload []byte
		select {
		case <-ctx.Done():
			return
		case payload = <-ch:
		}
		// Envelopes that queued up while the last ones were stored go
		// into one store transaction.
		batch := [][]byte{payload}
	more:
		for len(batch) < 64 {
			select {
			case p := <-ch:
				batch = append(batch, p)
			default:
				break more
			}
		}
		if err := in.ProcessBatch(ctx, edge, batch); err != nil && ctx.Err() == nil {
			in.log.Error().Err(err).Str("edge", edge).Msg("envelopes not processed")
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
	if _, err := in.ring(context.Background(), edge); err != nil {
		return // unknown edges get no dashboard row
	}
	if err := in.st.UpdateStatus(context.Background(), s); err != nil {
		in.log.Warn().Err(err).Str("edge", edge).Msg("status not stored")
	}
}

// ring returns the edge's enrolled keys (cached); store.ErrNotFound for an
// edge that is not enrolled.
func (in *Ingest) ring(ctx context.Context, edge string) (record.KeyRing, error) {
	in.mu.Lock()
	k, ok := in.keys[edge]
	in.mu.Unlock()
	if ok {
		return k, nil
	}
	keys, err := in.st.EdgeKeys(ctx, edge)
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		if _, err := in.st.Edge(ctx, edge); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("edge %s has no key: %w", edge, store.ErrNotFound)
	}
	ring := store.Ring(keys)
	in.mu.Lock()
	in.keys[edge] = ring
	in.mu.Unlock()
	return ring, nil
}

// ForgetKey drops a cached key ring (after enrollment or rotation changes).
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

func (in *Ingest) quarantine(ctx context.Context, reason string, q store.Quarantined) {
	if len(q.Payload) > in.opt.MaxQuarantinePayload {
		q.Payload = q.Payload[:in.opt.MaxQuarantinePayload]
	}
	now := in.opt.Now()
	if q.At.IsZero() {
		q.At = now.UTC()
	}
	if q.Seq > 0 {
		// The edge resends what central did not acknowledge: keep one copy
		// of a bad record per reason, count the repeats.
		k := quarantineKey{q.Edge, q.Epoch, q.Seq, reason}
		in.mu.Lock()
		last, dup := in.seen[k]
		if dup && now.Sub(last) < 10*time.Minute {
			in.mu.Unlock()
			in.Stats.Repeats.Add(1)
			return
		}
		if len(in.seen) > 100000 {
			for k, t := range in.seen {
				if now.Sub(t) >= 10*time.Minute {
					delete(in.seen, k)
				}
			}
		}
		in.seen[k] = now
		in.mu.Unlock()
	}
	in.Stats.quarantined(reason)
	in.log.Error().Str("edge", q.Edge).Uint32("epoch", q.Epoch).Uint64("seq", q.Seq).Str("code", reason).Str("reason", q.Reason).Msg("ALERT: record quarantined")
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
			Message: fmt.Sprintf("records of edge %q quarantined (%s): %s", q.Edge, reason, q.Reason),
		}); err != nil {
			in.log.Error().Err(err).Msg("quarantine alert not raised")
		}
	}
}

// lineAlerts raises an alert for a stored reject.not_delivered (a unit that
// may have gone downstream unverified; the edge holds the line) and clears
// it when the reject.removed confirmation is stored. Alerts deduplicate by
// key, so a record stored by any central instance raises it once; a failure
// is logged and never holds back the acknowledgement.
func (in *Ingest) lineAlerts(ctx context.Context, edge string, stored []store.Stored) {
	if in.opt.Alerts == nil {
		return
	}
	for i := range stored {
		r := &stored[i].Record
		switch r.Kind {
		case record.KindRejectNotDelivered:
			var nd record.RejectNotDelivered
			if json.Unmarshal(r.Body, &nd) != nil {
				continue // CheckBody passed: cannot happen
			}
			where := ""
			if nd.Case != "" {
				where = ", most likely in case " + nd.Case
			}
			item := nd.ID
			if nd.Unit != "" {
				item = nd.Unit
			}
			if _, err := in.opt.Alerts.Raise(ctx, store.Alert{
				Severity: store.SeverityCritical, Code: "reject_not_delivered", Key: rejectAlertKey(edge, nd.Batch, nd.ID), Edge: edge,
				Ref:     stored[i].Ref().String(),
				Message: fmt.Sprintf("batch %s: the reject of %s (%s) did not reach the PLC (%s); it may have gone downstream%s; the line is held until a supervisor confirms it was removed", nd.Batch, item, nd.Reason, nd.Detail, where),
			}); err != nil {
				in.log.Error().Err(err).Str("edge", edge).Msg("reject alert not raised")
			}
		case record.KindRejectRemoved:
			var rm record.RejectRemoved
			if json.Unmarshal(r.Body, &rm) != nil {
				continue
			}
			if _, err := in.opt.Alerts.Clear(ctx, rejectAlertKey(edge, rm.Batch, rm.ID)); err != nil {
				in.log.Error().Err(err).Str("edge", edge).Msg("reject alert not cleared")
			}
		}
	}
}

func rejectAlertKey(edge, batch, id string) string {
	return "reject_not_delivered:" + edge + "/" + batch + "/" + id
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
		reg.Register(c("serialine_ingest_buffered_total", "Envelopes kept because they arrived ahead of the stored head.", &in.Stats.Buffered)),
		reg.Register(c("serialine_ingest_quarantine_repeats_total", "Resent bad records already quarantined (counted, not stored again).", &in.Stats.Repeats)),
		reg.Register(reasonCollector{in}),
		reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "serialine_ingest_pending_envelopes", Help: "Out-of-order envelopes waiting for a gap to fill."},
			func() float64 { return float64(in.Pending()) })),
	)
}

var reasonDesc = prometheus.NewDesc("serialine_ingest_quarantined_reason_total", "Records or payloads quarantined, by reason code.", []string{"reason"}, nil)

type reasonCollector struct{ in *Ingest }

func (c reasonCollector) Describe(ch chan<- *prometheus.Desc) { ch <- reasonDesc }
func (c reasonCollector) Collect(ch chan<- prometheus.Metric) {
	for _, r := range Reasons {
		ch <- prometheus.MustNewConstMetric(reasonDesc, prometheus.CounterValue, float64(c.in.Stats.Quarantines(r)), r)
	}
}

// Pending returns how many out-of-order envelopes wait, over all edges.
func (in *Ingest) Pending() int {
	in.mu.Lock()
	states := make([]*edgeState, 0, len(in.edges))
	for _, es := range in.edges {
		states = append(states, es)
	}
	in.mu.Unlock()
	n := 0
	for _, es := range states {
		es.mu.Lock()
		n += len(es.pending)
		es.mu.Unlock()
	}
	return n
}

// Process verifies and stores one envelope of an edge (the edge named by
// the topic). Exported for tests and for offline import.
func (in *Ingest) Process(ctx context.Context, edge string, payload []byte) error {
	in.Stats.Envelopes.Add(1)
	recs, err := wire.DecodeEnvelope(payload)
	if err != nil {
		in.quarantine(ctx, ReasonMalformedEnvelope, store.Quarantined{Edge: edge, Reason: err.Error(), Payload: payload})
		return nil
	}
	ring, err := in.ring(ctx, edge)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			for i := range recs {
				in.quarantineRecord(ctx, edge, &recs[i], ReasonUnknownEdge, "unknown edge: not enrolled")
			}
			return nil
		}
		return err
	}
	es := in.state(edge)
	es.mu.Lock()
	defer es.mu.Unlock()
	if _, err := in.apply(ctx, edge, ring, es, recs); err != nil {
		return err
	}
	return in.drain(ctx, edge, es)
}

// outcome of apply.
type outcome int

const (
	applied outcome = iota // stored (or all duplicates, or quarantined): done with it
	ahead                  // beyond the head: buffered or dropped, not stored
)

// apply runs one envelope against the stored head, retrying when another
// instance moved the head meanwhile.
func (in *Ingest) apply(ctx context.Context, edge string, ring record.KeyRing, es *edgeState, recs []record.Record) (outcome, error) {
	var err error
	reloaded := false
	for attempt := 0; attempt < 4; attempt++ {
		var o outcome
		o, err = in.process(ctx, edge, ring, recs)
		if errors.Is(err, errRingChanged) {
			in.ForgetKey(edge)
			if ring, err = in.ring(ctx, edge); err != nil {
				return applied, err
			}
			continue
		}
		if errors.Is(err, store.ErrConflict) {
			// Another instance stored records meanwhile: reload the head and
			// look again (what it stored is now a duplicate).
			in.Stats.Conflicts.Add(1)
			in.dropHead(edge)
			continue
		}
		if err != nil || o == applied {
			return o, err
		}
		// Ahead of the head. The cached head may be stale (another
		// instance stored the records in between): look once more.
		if !reloaded {
			reloaded = true
			in.dropHead(edge)
			continue
		}
		in.buffer(edge, es, recs)
		return ahead, nil
	}
	return applied, err
}

var errRingChanged = errors.New("edge key ring changed")

func (in *Ingest) buffer(edge string, es *edgeState, recs []record.Record) {
	size := envSize(recs)
	k := record.Head{Epoch: recs[0].Epoch, Seq: recs[0].Seq}
	if _, ok := es.pending[k]; ok {
		return
	}
	if es.bytes+size > in.opt.MaxPendingBytes {
		in.log.Warn().Str("edge", edge).Uint64("seq", recs[0].Seq).Int("pending", len(es.pending)).Msg("out-of-order buffer full: envelope dropped (the edge resends it)")
		return
	}
	es.pending[k] = recs
	es.bytes += size
	if es.gapSince.IsZero() {
		es.gapSince = in.opt.Now()
	}
	in.Stats.Buffered.Add(1)
}

func envSize(recs []record.Record) int {
	n := 0
	for i := range recs {
		n += len(recs[i].Body) + len(recs[i].Edge) + len(recs[i].Kind) + 128
	}
	return n
}

// drain stores buffered envelopes that now continue the head, in order.
func (in *Ingest) drain(ctx context.Context, edge string, es *edgeState) error {
	for len(es.pending) > 0 {
		head, err := in.head(ctx, edge)
		if err != nil {
			return err
		}
		var next []record.Record
		var nextKey record.Head
		for k, recs := range es.pending {
			last := recs[len(recs)-1]
			switch {
			case k.Epoch < head.Epoch || k.Epoch == head.Epoch && last.Seq <= head.Seq:
				// Already stored (another envelope covered it).
				delete(es.pending, k)
				es.bytes -= envSize(recs)
			case k.Epoch == head.Epoch && k.Seq <= head.Seq+1 || k.Epoch > head.Epoch && k.Seq == 1:
				if next == nil || k.Seq < nextKey.Seq {
					next, nextKey = recs, k
				}
			}
		}
		if next == nil {
			break
		}
		delete(es.pending, nextKey)
		es.bytes -= envSize(next)
		ring, err := in.ring(ctx, edge)
		if err != nil {
			return err
		}
		if _, err := in.apply(ctx, edge, ring, es, next); err != nil {
			return err
		}
	}
	if len(es.pending) == 0 {
		es.gapSince = time.Time{}
		es.bytes = 0
	}
	return nil
}

// Tick re-examines edges with envelopes waiting beyond a gap: it reloads
// the head (another instance may have filled the gap) and asks the edge for
// a replay of the missing range when the head has not moved for
// ReplayAfter while envelopes wait (a gap that fills, as during a backlog
// drain with live records waiting, needs no replay).
// Run calls it every 25 ms.
func (in *Ingest) Tick(ctx context.Context) {
	in.mu.Lock()
	var edges []string
	for e := range in.edges {
		edges = append(edges, e)
	}
	in.mu.Unlock()
	for _, edge := range edges {
		es := in.state(edge)
		es.mu.Lock()
		if len(es.pending) > 0 {
			in.dropHead(edge)
			if err := in.drain(ctx, edge, es); err != nil && ctx.Err() == nil {
				in.log.Warn().Err(err).Str("edge", edge).Msg("buffered envelopes not stored")
			}
		}
		now := in.opt.Now()
		head, err := in.head(ctx, edge)
		if err == nil && head != es.progress {
			// The gap is filling (a backlog drains): no replay needed yet.
			es.progress, es.gapSince = head, now
		}
		if len(es.pending) > 0 && now.Sub(es.gapSince) >= in.opt.ReplayAfter && now.Sub(es.lastReplay) >= in.opt.ReplayAfter {
			if err == nil {
				first := record.Head{}
				for k := range es.pending {
					if first.Seq == 0 || k.Epoch < first.Epoch || k.Epoch == first.Epoch && k.Seq < first.Seq {
						first = k
					}
				}
				es.lastReplay = now
				in.requestReplay(ctx, edge, head, first)
			}
		}
		es.mu.Unlock()
	}
}

func (in *Ingest) quarantineRecord(ctx context.Context, edge string, r *record.Record, code, reason string) {
	raw := r.Canonical()
	in.quarantine(ctx, code, store.Quarantined{Edge: edge, Epoch: r.Epoch, Seq: r.Seq, Reason: reason, Payload: append(raw, r.Sig...)})
}

func chainReason(err error) string {
	switch {
	case errors.Is(err, record.ErrSignature):
		return ReasonBadSignature
	case errors.Is(err, record.ErrChain):
		return ReasonBrokenChain
	case errors.Is(err, record.ErrSequence):
		return ReasonSequence
	default:
		return ReasonMalformedBody
	}
}

// prepared is what one envelope brings against a head: the verified
// records to append after `after` (possibly none), or that it lies ahead.
type prepared struct {
	o       outcome
	after   record.Head
	stored  []store.Stored
	ack     bool // nothing new, but acknowledge the head (a redelivery)
	rotated bool // stored holds a key.rotated record
}

// prepare checks one envelope against head: quarantines what is bad,
// skips what is stored, verifies the rest. It writes nothing but
// quarantine entries.
func (in *Ingest) prepare(ctx context.Context, edge string, ring record.KeyRing, recs []record.Record, head record.Head) (prepared, error) {
	// 1. Records claiming another edge than the topic's are forgeries or
	// misrouted: quarantine the whole envelope.
	for i := range recs {
		if recs[i].Edge != edge {
			for j := range recs {
				in.quarantineRecord(ctx, edge, &recs[j], ReasonWrongEdge, fmt.Sprintf("record claims edge %q on the topic of edge %q", recs[i].Edge, edge))
			}
			return prepared{}, nil
		}
	}
	// 2. Epoch: older epochs are replays of a retired log.
	first := &recs[0]
	if head.Seq > 0 && first.Epoch < head.Epoch {
		for i := range recs {
			in.quarantineRecord(ctx, edge, &recs[i], ReasonOutOfEpoch, fmt.Sprintf("out-of-epoch: epoch %d is older than the stored epoch %d", recs[i].Epoch, head.Epoch))
		}
		return prepared{}, nil
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
			return prepared{}, err
		}
		in.Stats.Duplicates.Add(int64(start))
	}
	if start == len(recs) {
		return prepared{after: after, ack: true}, nil
	}
	rest := recs[start:]
	// 4. Beyond the head: the caller buffers it until the gap fills.
	if rest[0].Epoch != after.Epoch || rest[0].Seq != after.Seq+1 {
		return prepared{o: ahead}, nil
	}
	// 5. Verify the chain and signatures. Only records covered by a valid
	// signature are stored; the first bad record and what follows it in
	// the envelope are quarantined.
	v := record.NewRingVerifier(ring, after, true)
	stored := make([]store.Stored, 0, len(rest))
	lastSigned := -1
	var bad error
	badAt := -1
	badCode := ""
	rotated := false
	for i := range rest {
		h, err := v.Add(&rest[i])
		if err != nil {
			bad, badAt, badCode = err, i, chainReason(err)
			break
		}
		if rest[i].Kind == record.KindKeyRotated {
			rotated = true
		}
		stored = append(stored, store.Stored{Record: rest[i], Hash: h})
		if len(rest[i].Sig) > 0 {
			lastSigned = i
		}
	}
	if badAt >= 0 && badCode == ReasonBadSignature && !rotated {
		// A key enrolled (or rotated) since the ring was cached?
		in.mu.Lock()
		_, cached := in.keys[edge]
		in.mu.Unlock()
		if cached {
			if keys, err := in.st.EdgeKeys(ctx, edge); err == nil && len(keys) != len(ring) {
				return prepared{}, errRingChanged
			}
		}
	}
	if badAt >= 0 {
		for i := badAt; i < len(rest); i++ {
			reason, code := bad.Error(), badCode
			if i > badAt {
				reason, code = fmt.Sprintf("follows bad record seq %d in the same envelope", rest[badAt].Seq), ReasonFollowsBad
			}
			in.quarantineRecord(ctx, edge, &rest[i], code, reason)
		}
	}
	if lastSigned < len(stored)-1 && badAt < 0 {
		// Unsigned tail: not authenticated yet. Keep it for the next
		// envelope (the edge resends from the last ack).
		in.log.Warn().Str("edge", edge).Int("unsigned", len(stored)-1-lastSigned).Msg("envelope ends without a signed checkpoint")
	}
	return prepared{after: after, stored: stored[:lastSigned+1], rotated: rotated}, nil
}

// commit appends a verified run, moves the cached head and acknowledges.
//
// An authentic record whose body does not decode for its kind cannot be
// projected (the store refuses the run with store.ErrBody): it is
// quarantined, never stored as valid, with what follows it in the run; the
// signed records before it are stored. The chain stops there and the edge
// keeps the rest (nothing after it is acknowledged).
func (in *Ingest) commit(ctx context.Context, edge string, after record.Head, stored []store.Stored, rotated bool) error {
	if err := in.st.Append(ctx, edge, after, stored); err != nil {
		if errors.Is(err, store.ErrBody) {
			return in.commitAroundBadBody(ctx, edge, after, stored)
		}
		if !errors.Is(err, store.ErrConflict) {
			in.log.Error().Err(err).Str("edge", edge).Msg("append failed")
		}
		return err
	}
	in.lineAlerts(ctx, edge, stored)
	last := stored[len(stored)-1]
	newHead := record.Head{Epoch: last.Record.Epoch, Seq: last.Record.Seq, Hash: last.Hash}
	in.setHead(edge, newHead)
	in.Stats.Stored.Add(int64(len(stored)))
	if rotated {
		in.ForgetKey(edge) // the stored key.rotated closed the old key
	}
	return in.ack(ctx, edge, newHead)
}

func (in *Ingest) commitAroundBadBody(ctx context.Context, edge string, after record.Head, stored []store.Stored) error {
	bad := -1
	var cause error
	for i := range stored {
		if err := store.CheckBody(&stored[i].Record); err != nil {
			bad, cause = i, err
			break
		}
	}
	if bad < 0 {
		return fmt.Errorf("edge %s: the store refused a body, but every body decodes", edge)
	}
	for i := bad; i < len(stored); i++ {
		reason, code := cause.Error(), ReasonMalformedBody
		if i > bad {
			reason, code = fmt.Sprintf("follows bad record seq %d in the same envelope", stored[bad].Record.Seq), ReasonFollowsBad
		}
		in.quarantineRecord(ctx, edge, &stored[i].Record, code, reason)
	}
	cut := -1
	for i := bad - 1; i >= 0; i-- {
		if len(stored[i].Record.Sig) > 0 {
			cut = i
			break
		}
	}
	if cut < 0 {
		return nil
	}
	rotated := false
	for i := range stored[:cut+1] {
		rotated = rotated || stored[i].Record.Kind == record.KindKeyRotated
	}
	return in.commit(ctx, edge, after, stored[:cut+1], rotated)
}

func (in *Ingest) process(ctx context.Context, edge string, ring record.KeyRing, recs []record.Record) (outcome, error) {
	head, err := in.head(ctx, edge)
	if err != nil {
		return applied, err
	}
	p, err := in.prepare(ctx, edge, ring, recs, head)
	if err != nil || p.o == ahead {
		return p.o, err
	}
	if len(p.stored) == 0 {
		if p.ack {
			return applied, in.ack(ctx, edge, p.after)
		}
		return applied, nil
	}
	return applied, in.commit(ctx, edge, p.after, p.stored, p.rotated)
}

// maxRun bounds the records of one store transaction when queued envelopes
// of an edge are merged.
const maxRun = 4096

// ProcessBatch is Process for envelopes of one edge that arrived together:
// consecutive envelopes are verified one by one and stored in one
// transaction (one commit, one ack), which is what makes a backlog drain
// fast. Anything unusual (a gap, a conflict with another instance, a key
// change) falls back to one envelope at a time.
func (in *Ingest) ProcessBatch(ctx context.Context, edge string, payloads [][]byte) error {
	if len(payloads) == 1 {
		return in.Process(ctx, edge, payloads[0])
	}
	envs := make([][]record.Record, 0, len(payloads))
	for _, payload := range payloads {
		in.Stats.Envelopes.Add(1)
		recs, err := wire.DecodeEnvelope(payload)
		if err != nil {
			in.quarantine(ctx, ReasonMalformedEnvelope, store.Quarantined{Edge: edge, Reason: err.Error(), Payload: payload})
			continue
		}
		envs = append(envs, recs)
	}
	if len(envs) == 0 {
		return nil
	}
	ring, err := in.ring(ctx, edge)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			for _, recs := range envs {
				for i := range recs {
					in.quarantineRecord(ctx, edge, &recs[i], ReasonUnknownEdge, "unknown edge: not enrolled")
				}
			}
			return nil
		}
		return err
	}
	es := in.state(edge)
	es.mu.Lock()
	defer es.mu.Unlock()
	head, err := in.head(ctx, edge)
	if err != nil {
		return err
	}
	var run []store.Stored
	runAfter, virt := head, head
	runStart := 0 // first envelope with records in run
	ackDue, rotated := false, false
	flush := func() error {
		if len(run) == 0 {
			if ackDue {
				ackDue = false
				return in.ack(ctx, edge, virt)
			}
			return nil
		}
		err := in.commit(ctx, edge, runAfter, run, rotated)
		run, runAfter, ackDue, rotated = nil, virt, false, false
		return err
	}
	for i, recs := range envs {
		p, err := in.prepare(ctx, edge, ring, recs, virt)
		if err == nil && p.o == applied {
			if len(p.stored) > 0 && p.after != virt {
				// A new epoch starts: the run so far is stored first.
				if err := flush(); err != nil {
					return in.oneByOne(ctx, edge, ring, es, envs[runStart:], err)
				}
				runAfter = p.after
			}
			if len(p.stored) > 0 {
				if len(run) == 0 {
					runStart = i
				}
				run = append(run, p.stored...)
				virt = run[len(run)-1].Head()
				rotated = rotated || p.rotated
			}
			ackDue = ackDue || p.ack
			if rotated || len(run) >= maxRun {
				if err := flush(); err != nil {
					return in.oneByOne(ctx, edge, ring, es, envs[runStart:], err)
				}
				if p.rotated {
					if ring, err = in.ring(ctx, edge); err != nil {
						return err
					}
				}
			}
			continue
		}
		// Ahead of the run, a key change or an error: store what is
		// verified, then take the rest one envelope at a time.
		if ferr := flush(); ferr != nil {
			return in.oneByOne(ctx, edge, ring, es, envs[runStart:], ferr)
		}
		if err == nil {
			err = errFallBack
		}
		return in.oneByOne(ctx, edge, ring, es, envs[i:], err)
	}
	if err := flush(); err != nil {
		return in.oneByOne(ctx, edge, ring, es, envs[runStart:], err)
	}
	return in.drain(ctx, edge, es)
}

var errFallBack = errors.New("fall back to one envelope at a time")

// oneByOne processes envelopes singly (with conflict retries and
// buffering) after a merged run hit something unusual.
func (in *Ingest) oneByOne(ctx context.Context, edge string, ring record.KeyRing, es *edgeState, envs [][]record.Record, cause error) error {
	if cause != nil && !errors.Is(cause, errFallBack) && !errors.Is(cause, store.ErrConflict) && !errors.Is(cause, errRingChanged) {
		return cause
	}
	in.dropHead(edge)
	if errors.Is(cause, errRingChanged) {
		in.ForgetKey(edge)
		var err error
		if ring, err = in.ring(ctx, edge); err != nil {
			return err
		}
	}
	for _, recs := range envs {
		if _, err := in.apply(ctx, edge, ring, es, recs); err != nil {
			return err
		}
	}
	return in.drain(ctx, edge, es)
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
			in.quarantineRecord(ctx, edge, &dups[i], ReasonReplayedDiffers, fmt.Sprintf("replayed seq %d differs from the stored record (hash %s, stored %s)", dups[i].Seq, got, h))
		}
	}
	return nil
}

// requestReplay asks the edge to resend what lies between the stored head
// and the first waiting envelope.
func (in *Ingest) requestReplay(ctx context.Context, edge string, after record.Head, got record.Head) {
	in.Stats.Replays.Add(1)
	rp := wire.Replay{Epoch: got.Epoch, From: after.Seq + 1, Reason: fmt.Sprintf("gap: have %d, got %d", after.Seq, got.Seq)}
	if got.Seq > after.Seq+1 {
		rp.To = got.Seq - 1
	}
	if got.Epoch != after.Epoch {
		rp.From, rp.To = 1, 0
	}
	raw, _ := json.Marshal(rp)
	in.log.Info().Str("edge", edge).Uint64("from", rp.From).Uint64("to", rp.To).Str("reason", rp.Reason).Msg("requesting replay")
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
