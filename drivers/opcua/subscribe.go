package opcua

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/ua"

	"github.com/serialine/serialine/drivers"
)

// Subscriber is implemented by PLC drivers that push tag changes
// (line_running, product_present ...) instead of being polled.
type Subscriber interface {
	// Subscribe calls fn with the current value of each tag, then with
	// every change, until ctx ends (it returns nil then). It rides out
	// disconnects: after a reconnect the subscription is created again and
	// fn gets the current values again. Notifications are latest-value:
	// fast flickers between two publishing intervals may be missed.
	Subscribe(ctx context.Context, tags []string, fn func(Change)) error
}

// Change is one notification.
type Change struct {
	Tag   string
	Value any // bool for Boolean nodes, uint64 for integer nodes; nil with Err
	// Err is set when the server reports a Bad or Uncertain value (the
	// tag's state is unknown) or the value does not convert.
	Err error
	At  time.Time
}

// heartbeat is how often Subscribe reads the server's state to notice a
// dead peer that closed nothing (a power cut): gopcua does not surface
// subscription keep-alives.
var heartbeat = 2 * time.Second

// Subscribe implements Subscriber with its own session.
func (p *PLC) Subscribe(ctx context.Context, tags []string, fn func(Change)) error {
	if len(tags) == 0 {
		return errors.New("subscribe: no tags")
	}
	for _, t := range tags {
		if _, ok := p.refs[t]; !ok {
			return p.devErr("tag "+t, errors.New("no such tag in the PLC's options"))
		}
	}
	tags = append([]string(nil), tags...)
	sort.Strings(tags)
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		start := time.Now()
		err := p.subscribeOnce(ctx, tags, fn)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(start) > 10*time.Second {
			backoff = 100 * time.Millisecond // it ran for a while: start over
		}
		p.log.Warn().Err(err).Dur("retry_in", backoff).Msg("OPC UA subscription lost; re-subscribing")
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		if backoff *= 2; backoff > 5*time.Second {
			backoff = 5 * time.Second
		}
	}
	return nil
}

// subscribeOnce runs one session: subscribe, deliver, return on loss.
func (p *PLC) subscribeOnce(ctx context.Context, tags []string, fn func(Change)) error {
	dctx, cancel := context.WithTimeout(ctx, 2*p.timeout)
	c, err := p.dial(dctx, tags)
	cancel()
	if err != nil {
		return err
	}
	defer c.close()
	notes := make(chan *opcua.PublishNotificationData, 64)
	sctx, scancel := context.WithTimeout(ctx, p.timeout)
	sub, err := c.client.Subscribe(sctx, &opcua.SubscriptionParameters{Interval: p.opts.PublishInterval}, notes)
	scancel()
	if err != nil {
		return p.devErr("subscribe", sessionErr(ctx, err))
	}
	items := make([]*ua.MonitoredItemCreateRequest, len(tags))
	for i, t := range tags {
		items[i] = opcua.NewMonitoredItemCreateRequestWithDefaults(c.nodes[t], ua.AttributeIDValue, uint32(i+1))
	}
	mctx, mcancel := context.WithTimeout(ctx, p.timeout)
	resp, err := sub.Monitor(mctx, ua.TimestampsToReturnSource, items...)
	mcancel()
	if err != nil {
		return p.devErr("subscribe", sessionErr(ctx, err))
	}
	if len(resp.Results) != len(tags) {
		return p.devErr("subscribe", fmt.Errorf("%w: %d results for %d monitored items", drivers.ErrMalformed, len(resp.Results), len(tags)))
	}
	for i, r := range resp.Results {
		if r.StatusCode != ua.StatusOK {
			return p.devErr(p.field(tags[i], "subscribe"), fmt.Errorf("%w: %s", drivers.ErrDeviceFault, statusText(r.StatusCode)))
		}
	}
	p.log.Info().Strs("tags", tags).Msg("OPC UA subscription active")
	hb := time.NewTicker(heartbeat)
	defer hb.Stop()
	state := &ua.ReadRequest{TimestampsToReturn: ua.TimestampsToReturnNeither, NodesToRead: []*ua.ReadValueID{
		{NodeID: ua.NewNumericNodeID(0, id.Server_ServerStatus_State), AttributeID: ua.AttributeIDValue, DataEncoding: &ua.QualifiedName{}}}}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c.lost:
			return p.devErr("subscribe", fmt.Errorf("%w: connection lost", drivers.ErrNotConnected))
		case <-hb.C:
			rctx, cancel := context.WithTimeout(ctx, p.timeout)
			_, err := c.client.Read(rctx, state)
			cancel()
			if err != nil && ctx.Err() == nil {
				return p.devErr("subscribe heartbeat", linkErr(rctx, err))
			}
		case n := <-notes:
			if n.Error != nil {
				return p.devErr("subscribe", sessionErr(ctx, n.Error))
			}
			dc, ok := n.Value.(*ua.DataChangeNotification)
			if !ok {
				continue
			}
			for _, it := range dc.MonitoredItems {
				if it == nil || it.ClientHandle < 1 || int(it.ClientHandle) > len(tags) {
					continue // not ours: ignore rather than guess
				}
				fn(p.change(tags[it.ClientHandle-1], it.Value))
			}
		}
	}
}

func (p *PLC) change(tag string, dv *ua.DataValue) Change {
	ch := Change{Tag: tag, At: time.Now()}
	if dv == nil {
		ch.Err = p.devErr(p.field(tag, "notification"), fmt.Errorf("%w: no value", drivers.ErrMalformed))
		return ch
	}
	if !dv.SourceTimestamp.IsZero() {
		ch.At = dv.SourceTimestamp
	}
	if err := p.checkStatus(tag, "notification", dv.Status); err != nil {
		ch.Err = err
		return ch
	}
	if dv.Value == nil {
		ch.Err = p.devErr(p.field(tag, "notification"), fmt.Errorf("%w: no value", drivers.ErrMalformed))
		return ch
	}
	switch v := dv.Value.Value().(type) {
	case bool:
		ch.Value = v
	default:
		n, err := FromValue(v)
		if err != nil {
			ch.Err = p.devErr(p.field(tag, "notification"), err)
			return ch
		}
		ch.Value = n
	}
	return ch
}
