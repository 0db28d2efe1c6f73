// Package outbox forwards the edge's record log to central over MQTT and
// prunes it only when central acknowledges that its store committed the
// records. The log in bbolt is the only durable queue; a broker's PUBACK is
// never taken as delivery.
//
// Sending: envelopes of consecutive records, each ending at a signed
// checkpoint record, are published (QoS 1). Two cursors share the link:
//
//   - the backlog cursor (next) walks the log from the first record central
//     has not acknowledged, at most Window records ahead of the last ack;
//   - the live cursor (live) sends records committed after the backlog was
//     found (at start, after a reconnect, after a resend), so that new
//     records reach central within milliseconds even while an outage's
//     backlog drains. One live envelope goes out between backlog envelopes.
//
// Central stores strictly in sequence: live envelopes that arrive before
// the backlog reaches them wait in central's buffer and are stored and
// acknowledged when the gap before them is filled. The backlog cursor also
// passes over what the live cursor sent (central skips those records as
// duplicates), so a live envelope that central could not keep (its buffer
// full, or central restarted) is never lost; when the backlog cursor
// reaches the live one they merge. If no acknowledgement progress is seen
// for ResendAfter, sending restarts from the first unacknowledged record;
// central drops what it already holds. Central asks for a replay when a gap
// stays open.
//
// Limits: when the unacknowledged records exceed MaxBytes, or the oldest of
// them is older than MaxAge, Backpressure reports it and the line engine
// holds the line (records are never dropped) until central acknowledges.
package outbox

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/serialine/serialine/edge/store"
	"github.com/serialine/serialine/sync/record"
	"github.com/serialine/serialine/sync/transport"
	"github.com/serialine/serialine/sync/wire"
)

// Options configure the outbox.
type Options struct {
	Store       *store.DB
	Client      *transport.Client
	Log         zerolog.Logger
	Envelope    int           // max records per envelope (default 500)
	EnvelopeMax int           // max bytes per envelope (default 1 MiB)
	Window      uint64        // max backlog records sent beyond the last ack (default 20000)
	ResendAfter time.Duration // default 3s
	// MaxBytes and MaxAge are the outbox limits (defaults 1 GiB, 72h).
	MaxBytes int64
	MaxAge   time.Duration
	// Status returns the live status to publish (retained, QoS 0) every second.
	Status func() wire.Status
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// Outbox runs the sender.
type Outbox struct {
	opt  Options
	db   *store.DB
	edge string
	log  zerolog.Logger
	kick chan struct{}

	mu    sync.Mutex
	next  uint64 // backlog cursor: next seq to send
	live  uint64 // live cursor: next seq to send live; live >= next
	ackAt time.Time

	acct accounting
}

// accounting tracks the unacknowledged bytes in chunks of records (exact
// to within one chunk) and the age of the oldest unacknowledged record.
type accounting struct {
	mu      sync.Mutex
	chunks  []chunk
	scanned uint64 // last seq counted
	bytes   int64
	oldest  time.Time
	hold    bool
	why     string
}

type chunk struct {
	last  uint64
	bytes int64
}

// New builds an outbox.
func New(opt Options) *Outbox {
	if opt.Envelope <= 0 {
		opt.Envelope = 500
	}
	if opt.EnvelopeMax <= 0 {
		opt.EnvelopeMax = 1 << 20
	}
	if opt.Window == 0 {
		opt.Window = 20000
	}
	if opt.ResendAfter <= 0 {
		opt.ResendAfter = 3 * time.Second
	}
	if opt.MaxBytes <= 0 {
		opt.MaxBytes = 1 << 30
	}
	if opt.MaxAge <= 0 {
		opt.MaxAge = 72 * time.Hour
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	o := &Outbox{opt: opt, db: opt.Store, edge: opt.Store.EdgeID(), kick: make(chan struct{}, 1)}
	o.log = opt.Log.With().Str("component", "outbox").Logger()
	o.next = o.db.Acked() + 1
	o.live = o.db.Head().Seq + 1
	return o
}

func (o *Outbox) poke() {
	select {
	case o.kick <- struct{}{}:
	default:
	}
}

// Run subscribes to acks and replay requests and sends until ctx ends.
func (o *Outbox) Run(ctx context.Context) error {
	cl := o.opt.Client
	if err := cl.Subscribe(wire.Topic(o.edge, "ack"), 1, o.onAck); err != nil {
		return err
	}
	if err := cl.Subscribe(wire.Topic(o.edge, "replay"), 1, o.onReplay); err != nil {
		return err
	}
	statusTick := time.NewTicker(time.Second)
	defer statusTick.Stop()
	o.mu.Lock()
	o.ackAt = o.opt.Now()
	o.mu.Unlock()
	o.Account()
	everySecond := func() {
		o.publishStatus()
		o.maybeResend()
		o.Account()
	}
	for {
		changed := o.db.Changed()
		if !cl.Connected() {
			select {
			case <-ctx.Done():
				return nil
			case <-cl.Up():
				// After a reconnect, resend everything not acknowledged.
				o.rewind("reconnected")
			case <-statusTick.C:
				o.Account()
			}
			continue
		}
		sentLive, err := o.sendLive(ctx)
		if err != nil && ctx.Err() == nil {
			o.log.Warn().Err(err).Msg("live send failed")
		}
		sent, err := o.sendBacklog(ctx)
		if err != nil && ctx.Err() == nil {
			o.log.Warn().Err(err).Msg("send failed")
		}
		if sent || sentLive {
			// Draining: status, resend checks and limits still run.
			select {
			case <-statusTick.C:
				everySecond()
			case <-ctx.Done():
				return nil
			default:
			}
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-o.kick:
		case <-statusTick.C:
			everySecond()
		}
	}
}

// rewind restarts the backlog from the first unacknowledged record; what
// is committed from now on goes live.
func (o *Outbox) rewind(why string) {
	acked, head := o.db.Acked(), o.db.Head()
	o.mu.Lock()
	if o.next != acked+1 {
		o.log.Debug().Uint64("from", acked+1).Uint64("was", o.next).Str("why", why).Msg("resending from first unacknowledged record")
	}
	o.next = acked + 1
	o.live = max(head.Seq+1, o.next)
	o.ackAt = o.opt.Now()
	o.mu.Unlock()
}

func (o *Outbox) maybeResend() {
	head, acked := o.db.Head(), o.db.Acked()
	o.mu.Lock()
	stale := acked < head.Seq && (o.next > acked+1 || o.live > acked+1) && o.opt.Now().Sub(o.ackAt) > o.opt.ResendAfter
	o.mu.Unlock()
	if stale {
		o.rewind("no acknowledgement")
	}
}

// envelope reads records from `from` (at most maxRecords), cut at the last
// signed checkpoint, and encodes them.
func (o *Outbox) envelope(from uint64, maxRecords int) ([]byte, uint64, error) {
	raws, err := o.db.ReadLog(from, maxRecords, o.opt.EnvelopeMax)
	if err != nil {
		return nil, 0, err
	}
	if len(raws) == 0 {
		return nil, 0, nil
	}
	if raws[0].Seq != from {
		return nil, raws[0].Seq, fmt.Errorf("log starts at %d, wanted %d", raws[0].Seq, from)
	}
	// End the envelope at the last signed record (a checkpoint), so central
	// can authenticate everything it receives.
	cut := -1
	for i := len(raws) - 1; i >= 0; i-- {
		if len(raws[i].Sig) > 0 {
			cut = i
			break
		}
	}
	if cut < 0 {
		// A group commit larger than the envelope: read on to its checkpoint.
		more, err := o.db.ReadLog(raws[len(raws)-1].Seq+1, 1<<20, 64<<20)
		if err != nil {
			return nil, 0, err
		}
		for i := range more {
			raws = append(raws, more[i])
			if len(more[i].Sig) > 0 {
				break
			}
		}
		cut = len(raws) - 1
		if len(raws[cut].Sig) == 0 {
			return nil, 0, nil // checkpoint not committed yet (cannot happen: commits are atomic)
		}
	}
	raws = raws[:cut+1]
	env := wire.EnvelopeHeader(len(raws))
	for _, r := range raws {
		env = wire.AppendRaw(env, r.Canonical, r.Sig)
	}
	return env, raws[len(raws)-1].Seq, nil
}

func (o *Outbox) publish(ctx context.Context, env []byte) error {
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return o.opt.Client.Publish(pctx, wire.Topic(o.edge, "records"), 1, false, env)
}

// sendLive publishes one envelope of records committed after the backlog
// began, if there are any and a backlog is still draining.
func (o *Outbox) sendLive(ctx context.Context) (bool, error) {
	head := o.db.Head()
	o.mu.Lock()
	live, next := o.live, o.next
	o.mu.Unlock()
	if live <= next || live > head.Seq {
		return false, nil
	}
	env, last, err := o.envelope(live, o.opt.Envelope)
	if err != nil || env == nil {
		return false, err
	}
	if err := o.publish(ctx, env); err != nil {
		return false, err
	}
	o.mu.Lock()
	if o.live == live {
		o.live = last + 1
	}
	o.mu.Unlock()
	return true, nil
}

// sendBacklog publishes one envelope from the backlog cursor within the
// window (up to the live cursor). It returns true if it sent.
func (o *Outbox) sendBacklog(ctx context.Context) (bool, error) {
	head, acked := o.db.Head(), o.db.Acked()
	o.mu.Lock()
	if o.next <= acked {
		o.next = acked + 1
	}
	if o.live < o.next {
		o.live = o.next
	}
	next, live := o.next, o.live
	o.mu.Unlock()
	if next > head.Seq || next > acked+o.opt.Window {
		return false, nil
	}
	limit := o.opt.Envelope
	if live > next && live-next < uint64(limit) {
		limit = int(live - next) // stop where the live cursor took over
	}
	env, last, err := o.envelope(next, limit)
	if err != nil {
		if last > next {
			// Pruned below us (acked meanwhile): start over from the log.
			o.mu.Lock()
			o.next = last
			o.mu.Unlock()
		}
		return false, err
	}
	if env == nil {
		return false, nil
	}
	if err := o.publish(ctx, env); err != nil {
		return false, err
	}
	o.mu.Lock()
	if o.next == next {
		o.next = last + 1
		if o.live < o.next {
			o.live = o.next
		}
	}
	o.mu.Unlock()
	return true, nil
}

func (o *Outbox) onAck(topic string, payload []byte) {
	var a wire.Ack
	if err := json.Unmarshal(payload, &a); err != nil {
		o.log.Error().Err(err).Msg("ack does not parse")
		return
	}
	var h record.Hash
	if err := h.UnmarshalText([]byte(a.Hash)); err != nil {
		o.log.Error().Err(err).Msg("ack hash does not parse")
		return
	}
	if err := o.db.Ack(a.Epoch, a.Seq, h); err != nil {
		o.log.Error().Err(err).Uint64("seq", a.Seq).Msg("ack refused")
		return
	}
	o.mu.Lock()
	o.ackAt = o.opt.Now()
	o.mu.Unlock()
	o.poke()
}

func (o *Outbox) onReplay(topic string, payload []byte) {
	var r wire.Replay
	if err := json.Unmarshal(payload, &r); err != nil {
		o.log.Error().Err(err).Msg("replay request does not parse")
		return
	}
	head, acked := o.db.Head(), o.db.Acked()
	if r.Epoch != head.Epoch {
		o.log.Warn().Uint32("epoch", r.Epoch).Msg("replay request for another epoch ignored")
		return
	}
	from := r.From
	if from <= acked {
		from = acked + 1
	}
	o.log.Info().Uint64("from", from).Uint64("to", r.To).Str("reason", r.Reason).Msg("central requests a replay")
	o.mu.Lock()
	if from < o.next {
		o.next = from
	}
	o.ackAt = o.opt.Now()
	o.mu.Unlock()
	o.poke()
}

func (o *Outbox) publishStatus() {
	if o.opt.Status == nil {
		return
	}
	raw, err := json.Marshal(o.opt.Status())
	if err != nil {
		o.log.Error().Err(err).Msg("status does not encode")
		return
	}
	// QoS 0, retained: the latest status replaces the last; a lost one is
	// replaced a second later.
	o.opt.Client.PublishAsync(wire.Topic(o.edge, "status"), 0, true, raw)
}

// Account recounts the unacknowledged records against the limits (Run
// does it every second; tests call it directly).
func (o *Outbox) Account() {
	acked, head := o.db.Acked(), o.db.Head()
	a := &o.acct
	a.mu.Lock()
	defer a.mu.Unlock()
	for len(a.chunks) > 0 && a.chunks[0].last <= acked {
		a.bytes -= a.chunks[0].bytes
		a.chunks = a.chunks[1:]
	}
	if len(a.chunks) == 0 {
		a.bytes = 0
	}
	from := max(a.scanned, acked) + 1
	for from <= head.Seq {
		raws, err := o.db.ReadLog(from, 4096, 16<<20)
		if err != nil {
			o.log.Error().Err(err).Msg("outbox accounting: log not readable")
			return
		}
		if len(raws) == 0 {
			break
		}
		var n int64
		for _, r := range raws {
			n += int64(len(r.Canonical) + len(r.Sig))
		}
		last := raws[len(raws)-1].Seq
		a.chunks = append(a.chunks, chunk{last: last, bytes: n})
		a.bytes += n
		a.scanned, from = last, last+1
	}
	a.oldest = time.Time{}
	if acked < head.Seq {
		if raws, err := o.db.ReadLog(acked+1, 1, 1<<30); err == nil && len(raws) == 1 {
			if r, err := record.Decode(raws[0].Canonical); err == nil {
				a.oldest = r.Time
			}
		}
	}
	now := o.opt.Now()
	hold, why := false, ""
	switch {
	case a.bytes >= o.opt.MaxBytes:
		hold, why = true, fmt.Sprintf("outbox holds %s not acknowledged by central (limit %s)", size(a.bytes), size(o.opt.MaxBytes))
	case !a.oldest.IsZero() && now.Sub(a.oldest) >= o.opt.MaxAge:
		hold, why = true, fmt.Sprintf("oldest record not acknowledged by central is %s old (limit %s)", now.Sub(a.oldest).Round(time.Second), o.opt.MaxAge)
	}
	if hold != a.hold {
		if hold {
			o.log.Error().Str("why", why).Msg("outbox full: holding the line until central acknowledges")
		} else {
			o.log.Info().Msg("outbox below its limits again")
		}
	}
	a.hold, a.why = hold, why
}

// Backpressure reports whether the line must hold because the outbox
// reached a limit (line.Options.Backpressure). Cheap: it reads what
// Account last computed.
func (o *Outbox) Backpressure() (hold bool, why string) {
	o.acct.mu.Lock()
	defer o.acct.mu.Unlock()
	return o.acct.hold, o.acct.why
}

// Unacknowledged returns the bytes of records central has not acknowledged
// (as of the last Account) and the time of the oldest of them.
func (o *Outbox) Unacknowledged() (int64, time.Time) {
	o.acct.mu.Lock()
	defer o.acct.mu.Unlock()
	return o.acct.bytes, o.acct.oldest
}

func size(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%d bytes", n)
	}
}
