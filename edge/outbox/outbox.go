// Package outbox forwards the edge's record log to central over MQTT and
// prunes it only when central acknowledges that its store committed the
// records. The log in bbolt is the only durable queue.
//
// Sending: envelopes of consecutive records, each ending at a signed
// checkpoint record, are published (QoS 1) from `next`. A window bounds how
// far sending may run ahead of central's acknowledgements. If no
// acknowledgement progress is seen for ResendAfter, sending restarts from
// the first unacknowledged record; central drops what it already holds.
// Central asks for a replay when it sees a gap.
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
	Window      uint64        // max records sent beyond the last ack (default 20000)
	ResendAfter time.Duration // default 3s
	// Status returns the live status to publish (retained, QoS 0) every second.
	Status func() wire.Status
}

// Outbox runs the sender.
type Outbox struct {
	opt   Options
	db    *store.DB
	edge  string
	log   zerolog.Logger
	kick  chan struct{}
	mu    sync.Mutex
	next  uint64 // next seq to send
	ackAt time.Time
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
	o := &Outbox{opt: opt, db: opt.Store, edge: opt.Store.EdgeID(), kick: make(chan struct{}, 1)}
	o.log = opt.Log.With().Str("component", "outbox").Logger()
	o.next = o.db.Acked() + 1
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
	o.ackAt = time.Now()
	o.mu.Unlock()
	for {
		changed := o.db.Changed()
		if !cl.Connected() {
			select {
			case <-ctx.Done():
				return nil
			case <-cl.Up():
				// After a reconnect, resend everything not acknowledged.
				o.rewind("reconnected")
			}
			continue
		}
		sent, err := o.sendSome(ctx)
		if err != nil && ctx.Err() == nil {
			o.log.Warn().Err(err).Msg("send failed")
		}
		if sent {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-o.kick:
		case <-statusTick.C:
			o.publishStatus(ctx)
			o.maybeResend()
		}
	}
}

func (o *Outbox) rewind(why string) {
	acked := o.db.Acked()
	o.mu.Lock()
	if o.next != acked+1 {
		o.log.Debug().Uint64("from", acked+1).Uint64("was", o.next).Str("why", why).Msg("resending from first unacknowledged record")
	}
	o.next = acked + 1
	o.ackAt = time.Now()
	o.mu.Unlock()
}

func (o *Outbox) maybeResend() {
	head, acked := o.db.Head(), o.db.Acked()
	o.mu.Lock()
	stale := acked < head.Seq && o.next > acked+1 && time.Since(o.ackAt) > o.opt.ResendAfter
	o.mu.Unlock()
	if stale {
		o.rewind("no acknowledgement")
	}
}

// sendSome publishes one envelope if there is something to send within the
// window. It returns true if it sent.
func (o *Outbox) sendSome(ctx context.Context) (bool, error) {
	head, acked := o.db.Head(), o.db.Acked()
	o.mu.Lock()
	next := o.next
	if next <= acked {
		next = acked + 1
		o.next = next
	}
	o.mu.Unlock()
	if next > head.Seq || next > acked+o.opt.Window {
		return false, nil
	}
	raws, err := o.db.ReadLog(next, o.opt.Envelope, o.opt.EnvelopeMax)
	if err != nil {
		return false, err
	}
	if len(raws) == 0 {
		return false, nil
	}
	if raws[0].Seq != next {
		// Pruned below us (acked meanwhile) or a hole: start over from the log.
		o.mu.Lock()
		o.next = raws[0].Seq
		o.mu.Unlock()
		if raws[0].Seq < next {
			return false, fmt.Errorf("log starts at %d, wanted %d", raws[0].Seq, next)
		}
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
			return false, err
		}
		for i := range more {
			raws = append(raws, more[i])
			if len(more[i].Sig) > 0 {
				break
			}
		}
		cut = len(raws) - 1
		if len(raws[cut].Sig) == 0 {
			return false, nil // checkpoint not committed yet (cannot happen: commits are atomic)
		}
	}
	raws = raws[:cut+1]
	env := wire.EnvelopeHeader(len(raws))
	for _, r := range raws {
		env = wire.AppendRaw(env, r.Canonical, r.Sig)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := o.opt.Client.Publish(pctx, wire.Topic(o.edge, "records"), 1, false, env); err != nil {
		return false, err
	}
	o.mu.Lock()
	if o.next == next {
		o.next = raws[len(raws)-1].Seq + 1
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
	o.ackAt = time.Now()
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
	o.log.Info().Uint64("from", from).Str("reason", r.Reason).Msg("central requests a replay")
	o.mu.Lock()
	if from < o.next {
		o.next = from
	}
	o.ackAt = time.Now()
	o.mu.Unlock()
	o.poke()
}

func (o *Outbox) publishStatus(ctx context.Context) {
	if o.opt.Status == nil {
		return
	}
	s := o.opt.Status()
	raw, err := json.Marshal(s)
	if err != nil {
		return
	}
	done, errf := o.opt.Client.PublishAsync(wire.Topic(o.edge, "status"), 0, true, raw)
	_ = done
	_ = errf
}
