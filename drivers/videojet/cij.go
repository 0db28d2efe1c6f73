package videojet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/serialine/serialine/drivers"
)

// CIJ is one Videojet 1000 Line continuous ink jet printer on WSI.
type CIJ struct {
	name, addr string
	timeout    time.Duration
	opts       CIJOptions
	log        zerolog.Logger

	mu       sync.Mutex // one packet at a time
	wc       *wsiConn
	selected string // message selected by us on this connection

	hmu    sync.Mutex
	health drivers.Health
}

var (
	_ drivers.Printer        = (*CIJ)(nil)
	_ drivers.HealthReporter = (*CIJ)(nil)
)

// NewCIJ creates the driver; Connect opens the link.
func NewCIJ(name, address string, timeout time.Duration, opts CIJOptions, log zerolog.Logger) (*CIJ, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("printer %s: %w", name, err)
	}
	opts.SetDefaults()
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	return &CIJ{name: name, addr: address, timeout: timeout, opts: opts, log: log.With().Str("device", name).Logger()}, nil
}

// wsiConn is one connection; its reader goroutine hands the bytes over, so
// a link that died while idle is noticed before the next packet is sent.
type wsiConn struct {
	c    net.Conn
	in   chan []byte
	done chan struct{}
	err  error  // read after done
	buf  []byte // received, not yet decoded
}

func (w *wsiConn) closed() bool {
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

func (w *wsiConn) readLoop() {
	defer close(w.done)
	for {
		b := make([]byte, 512)
		n, err := w.c.Read(b)
		if n > 0 {
			w.in <- b[:n]
		}
		if err != nil {
			w.err = err
			return
		}
	}
}

func (c *CIJ) setHealth(h drivers.Health) drivers.Health {
	h.At = time.Now()
	c.hmu.Lock()
	c.health = h
	c.hmu.Unlock()
	return h
}

// Health returns the last known condition.
func (c *CIJ) Health() drivers.Health {
	c.hmu.Lock()
	defer c.hmu.Unlock()
	return c.health
}

func (c *CIJ) deadline(ctx context.Context) time.Time {
	dl := time.Now().Add(c.timeout)
	if x, ok := ctx.Deadline(); ok && x.Before(dl) {
		return x
	}
	return dl
}

func (c *CIJ) devErr(field string, err error, raw []byte) error {
	return drivers.NewDeviceError(c.name, field, err, raw)
}

// Connect dials the printer (closing a previous connection).
func (c *CIJ) Connect(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connectLocked(ctx)
}

func (c *CIJ) connectLocked(ctx context.Context) error {
	c.dropLocked()
	d := net.Dialer{Timeout: c.timeout}
	conn, err := d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		c.setHealth(drivers.Health{Fault: "disconnected", Detail: err.Error()})
		return c.devErr("connect", fmt.Errorf("%w: %v", drivers.ErrNotConnected, err), nil)
	}
	c.wc = &wsiConn{c: conn, in: make(chan []byte, 16), done: make(chan struct{})}
	go c.wc.readLoop()
	c.log.Debug().Str("addr", c.addr).Msg("connected")
	return nil
}

func (c *CIJ) dropLocked() {
	if c.wc != nil {
		c.wc.c.Close()
		// Unblock the reader if it waits to hand over bytes.
		go func(w *wsiConn) {
			for {
				select {
				case <-w.in:
				case <-w.done:
					return
				}
			}
		}(c.wc)
		c.wc = nil
	}
	c.selected = ""
}

func (c *CIJ) ready(ctx context.Context) error {
	if c.wc != nil && c.wc.closed() {
		c.dropLocked()
	}
	if c.wc == nil {
		return c.connectLocked(ctx)
	}
	return nil
}

// exchange sends one packet and returns the printer's reply. Every failure
// closes the connection: a late reply must never answer the next packet.
func (c *CIJ) exchange(ctx context.Context, op string, frame []byte) (WSIReply, []byte, error) {
	if err := c.ready(ctx); err != nil {
		return WSIReply{}, nil, err
	}
	w := c.wc
	for drained := false; !drained; {
		select {
		case b := <-w.in:
			w.buf = append(w.buf, b...)
		default:
			drained = true
		}
	}
	if len(w.buf) > 0 {
		c.log.Warn().Str("op", op).Str("raw", quoted(w.buf)).Msg("unsolicited bytes from printer before packet: discarded")
		w.buf = w.buf[:0]
	}
	dl := c.deadline(ctx)
	w.c.SetWriteDeadline(dl)
	if _, err := w.c.Write(frame); err != nil {
		c.dropLocked()
		c.setHealth(drivers.Health{Fault: "disconnected", Detail: err.Error()})
		return WSIReply{}, nil, c.devErr(op, fmt.Errorf("%w: %v", drivers.ErrNotConnected, err), nil)
	}
	t := time.NewTimer(time.Until(dl))
	defer t.Stop()
	for {
		if len(w.buf) > 0 {
			rep, n, err := DecodeWSIReply(w.buf)
			switch {
			case err == nil:
				raw := append([]byte(nil), w.buf[:n]...)
				w.buf = append(w.buf[:0], w.buf[n:]...)
				return rep, raw, nil
			case !errors.Is(err, ErrIncomplete):
				raw := append([]byte(nil), w.buf...)
				c.dropLocked()
				c.log.Warn().Str("op", op).Err(err).Str("raw", quoted(raw)).Msg("malformed reply from printer")
				c.setHealth(drivers.Health{Connected: true, Fault: "malformed_reply", Detail: err.Error()})
				return WSIReply{}, raw, c.devErr(op, err, raw)
			}
		}
		select {
		case b := <-w.in:
			w.buf = append(w.buf, b...)
		case <-w.done:
			if len(w.in) > 0 {
				continue
			}
			err := w.err
			c.dropLocked()
			c.setHealth(drivers.Health{Fault: "disconnected", Detail: fmt.Sprint(err)})
			return WSIReply{}, nil, c.devErr(op, fmt.Errorf("%w: link lost waiting for the reply: %v", drivers.ErrNotConnected, err), nil)
		case <-t.C:
			c.dropLocked()
			c.setHealth(drivers.Health{Connected: true, Fault: "no_answer", Detail: op + ": no answer"})
			return WSIReply{}, nil, c.devErr(op, fmt.Errorf("%w: no reply within %v", drivers.ErrTimeout, c.timeout), nil)
		case <-ctx.Done():
			c.dropLocked()
			return WSIReply{}, nil, c.devErr(op, ctx.Err(), nil)
		}
	}
}

// command sends a packet that is acknowledged: '$' is done, '!' refused.
// The checksum in the acknowledgement must be the packet's.
func (c *CIJ) command(ctx context.Context, op string, typ byte, refused string, fields ...string) error {
	frame, err := EncodeWSI(typ, fields...)
	if err != nil {
		return c.devErr(op, err, nil)
	}
	rep, raw, err := c.exchange(ctx, op, frame)
	if err != nil {
		return err
	}
	want := WSISum(typ, frame[2:len(frame)-1])
	switch {
	case rep.Kind == WSIData:
		c.dropLocked()
		c.log.Warn().Str("op", op).Str("raw", quoted(raw)).Msg("data packet where an acknowledgement was due")
		return c.devErr(op, errWSI("data packet where an acknowledgement was due"), raw)
	case rep.Sum != want:
		c.dropLocked()
		c.log.Warn().Str("op", op).Str("raw", quoted(raw)).Msg("acknowledgement of another packet")
		return c.devErr(op, errWSI("acknowledgement checksum %02X, packet checksum %02X", rep.Sum, want), raw)
	case rep.Kind == WSINak:
		return c.devErr(op, fmt.Errorf("%w: printer refused the packet: %s", drivers.ErrDeviceFault, refused), raw)
	}
	return nil
}

// request sends a packet answered by data; '!' is a refusal.
func (c *CIJ) request(ctx context.Context, op string, typ byte, fields ...string) ([]byte, error) {
	frame, err := EncodeWSI(typ, fields...)
	if err != nil {
		return nil, c.devErr(op, err, nil)
	}
	rep, raw, err := c.exchange(ctx, op, frame)
	if err != nil {
		return nil, err
	}
	switch rep.Kind {
	case WSIData:
		return rep.Data, nil
	case WSINak:
		return nil, c.devErr(op, fmt.Errorf("%w: printer refused the request", drivers.ErrDeviceFault), raw)
	}
	c.dropLocked()
	return nil, c.devErr(op, errWSI("acknowledgement where a data packet was due"), raw)
}

// Print selects the label's message when it is not the one selected on
// this connection (M), then updates its user fields one packet each (U):
// the text fields first, the code field last, so the symbol changes last.
func (c *CIJ) Print(ctx context.Context, l drivers.Label) error {
	msg, fields, err := labelFields(c.opts.Messages, c.opts.FNC1, l, CheckWSIValue)
	if err != nil {
		return c.devErr("label "+l.ID, err, nil)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.ready(ctx); err != nil {
		return err
	}
	if c.selected != msg.Name {
		if err := c.command(ctx, "message select "+msg.Name, WSIMessageSelect, "message not selected (not stored on the printer?)", msg.Name); err != nil {
			c.selected = ""
			return err
		}
		c.selected = msg.Name
	}
	for _, f := range fields {
		if err := c.command(ctx, "update user field "+f.Name, WSIUpdateField, "user field "+f.Name+" not updated (not in the selected message?)", f.Name, f.Value); err != nil {
			c.selected = ""
			return err
		}
	}
	return nil
}

// Status sends the error status request and maps faults and trafficator
// lights to a Health.
func (c *CIJ) Status(ctx context.Context) (drivers.Health, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	data, err := c.request(ctx, "error status request", WSIErrorStatus)
	if err != nil {
		if errors.Is(err, drivers.ErrMalformed) {
			c.setHealth(drivers.Health{Connected: true, Fault: "malformed_reply", Detail: err.Error()})
		}
		return c.Health(), err
	}
	st, err := ParseErrorStatus(data)
	if err != nil {
		c.dropLocked()
		c.log.Warn().Err(err).Str("raw", quoted(data)).Msg("malformed error status")
		h := c.setHealth(drivers.Health{Connected: true, Fault: "malformed_reply", Detail: err.Error()})
		return h, c.devErr("error status", err, data)
	}
	h := c.setHealth(drivers.Health{Connected: true, Fault: st.Fault(), Detail: st.Detail()})
	if h.Fault != "" {
		return h, c.devErr("error status", fmt.Errorf("%w: %s (%s)", drivers.ErrDeviceFault, h.Fault, h.Detail), nil)
	}
	return h, nil
}

// PrintCount asks the printer's print counter (G + counter selector).
func (c *CIJ) PrintCount(ctx context.Context) (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	data, err := c.request(ctx, "counter request", WSICounter, c.opts.CounterSelector)
	if err != nil {
		return 0, err
	}
	n, err := ParseCounter(data)
	if err != nil {
		c.dropLocked()
		return 0, c.devErr("counter", err, data)
	}
	return n, nil
}

// CurrentMessage asks which message is selected (Q).
func (c *CIJ) CurrentMessage(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	data, err := c.request(ctx, "current message request", WSICurrentMessage)
	if err != nil {
		return "", err
	}
	return string(data), nil
}

// Close closes the connection; safe twice.
func (c *CIJ) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dropLocked()
	return nil
}
