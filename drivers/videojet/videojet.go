// Package videojet drives Videojet coders over TCP:
//
//   - Videojet thermal transfer overprinters (DataFlex) in the Text
//     Communications Protocol (Zipher): job select with data (SLA), job data
//     update (JDA), printer state (GST), clear faults (CAF), start (SST) and
//     asynchronous print-complete notifications (PRC). Driver "videojet".
//   - Videojet 1000 Line continuous ink jet printers in the WSI protocol
//     (TCP 3100): message select (M), update user field (U), error status
//     request (E) and print counter request (G). Driver "videojet-cij".
//
// The engine always sends the final data, serial included; the printer
// never increments anything. The simulator beside it, videojetsim, speaks
// both protocols on real sockets.
package videojet

import (
	"bufio"
	"context"
	_ "embed"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/serialine/serialine/drivers"
)

//go:embed sample.yaml
var SampleConfig string

// Videojet is one thermal transfer printer on the text protocol.
type Videojet struct {
	name, addr string
	timeout    time.Duration
	opts       Options
	log        zerolog.Logger

	mu       sync.Mutex // one command at a time
	tc       *textConn
	selected string // job selected by us on this connection ("" = unknown)

	confirmed atomic.Uint64 // PRC notifications received
	prc       chan struct{} // signalled on every PRC (tests, optional waiters)

	hmu    sync.Mutex
	health drivers.Health
}

var (
	_ drivers.Printer        = (*Videojet)(nil)
	_ drivers.HealthReporter = (*Videojet)(nil)
	_ drivers.PrintConfirmer = (*Videojet)(nil)
)

// New creates the driver; Connect opens the link.
func New(name, address string, timeout time.Duration, opts Options, log zerolog.Logger) (*Videojet, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("printer %s: %w", name, err)
	}
	opts.SetDefaults()
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	return &Videojet{name: name, addr: address, timeout: timeout, opts: opts,
		log: log.With().Str("device", name).Logger(), prc: make(chan struct{}, 1)}, nil
}

// textConn is one TCP connection and its reader goroutine, which splits the
// stream into lines, counts notifications and hands replies over.
type textConn struct {
	c       net.Conn
	replies chan textLine
	done    chan struct{} // closed when the reader stops
	err     error         // why it stopped (read after done)
	ready   bool          // notifications set up on this connection
}

type textLine struct {
	raw []byte
	rep Reply
	err error
}

func (tc *textConn) closed() bool {
	select {
	case <-tc.done:
		return true
	default:
		return false
	}
}

func (d *Videojet) setHealth(h drivers.Health) drivers.Health {
	h.At = time.Now()
	d.hmu.Lock()
	d.health = h
	d.hmu.Unlock()
	return h
}

// Health returns the last known condition.
func (d *Videojet) Health() drivers.Health {
	d.hmu.Lock()
	defer d.hmu.Unlock()
	return d.health
}

// PrintsConfirmed counts the print-complete notifications (PRC) received
// since the driver was created. A confirmation is the printer's word that
// it printed; the camera read stays the proof of a readable code.
func (d *Videojet) PrintsConfirmed() uint64 { return d.confirmed.Load() }

// PrintCompleted is signalled (coalesced) on every PRC notification.
func (d *Videojet) PrintCompleted() <-chan struct{} { return d.prc }

func (d *Videojet) deadline(ctx context.Context) time.Time {
	dl := time.Now().Add(d.timeout)
	if c, ok := ctx.Deadline(); ok && c.Before(dl) {
		return c
	}
	return dl
}

func (d *Videojet) devErr(field string, err error, raw []byte) error {
	return drivers.NewDeviceError(d.name, field, err, raw)
}

// Connect dials the printer (closing a previous connection).
func (d *Videojet) Connect(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.connectLocked(ctx)
}

func (d *Videojet) connectLocked(ctx context.Context) error {
	d.dropLocked()
	dl := net.Dialer{Timeout: d.timeout}
	c, err := dl.DialContext(ctx, "tcp", d.addr)
	if err != nil {
		d.setHealth(drivers.Health{Fault: "disconnected", Detail: err.Error()})
		return d.devErr("connect", fmt.Errorf("%w: %v", drivers.ErrNotConnected, err), nil)
	}
	tc := &textConn{c: c, replies: make(chan textLine, 8), done: make(chan struct{})}
	go d.readLoop(tc)
	// A lone <CR> resets the printer's parser (recommended before a session).
	c.SetWriteDeadline(d.deadline(ctx))
	if _, err := c.Write([]byte{CR}); err != nil {
		c.Close()
		d.setHealth(drivers.Health{Fault: "disconnected", Detail: err.Error()})
		return d.devErr("connect", fmt.Errorf("%w: %v", drivers.ErrNotConnected, err), nil)
	}
	d.tc = tc
	d.log.Debug().Str("addr", d.addr).Msg("connected")
	return nil
}

// dropLocked closes the connection; the selected job is unknown afterwards.
func (d *Videojet) dropLocked() {
	if d.tc != nil {
		d.tc.c.Close()
		d.tc = nil
	}
	d.selected = ""
}

func (d *Videojet) readLoop(tc *textConn) {
	defer close(tc.done)
	r := bufio.NewReaderSize(tc.c, 4096)
	line := make([]byte, 0, 128)
	over := false
	for {
		b, err := r.ReadByte()
		if err != nil {
			tc.err = err
			return
		}
		switch {
		case b == LF:
			continue
		case b != CR:
			if len(line) < MaxLine {
				line = append(line, b)
			} else {
				over = true // keep the first MaxLine bytes as evidence
			}
			continue
		}
		if len(line) == 0 {
			continue
		}
		raw := append([]byte(nil), line...)
		var rep Reply
		var perr error
		if over {
			perr = errText("reply longer than %d bytes", MaxLine)
		} else {
			rep, perr = ParseReply(raw)
		}
		line, over = line[:0], false
		if perr == nil && rep.Kind.Async() {
			d.notification(rep)
			continue
		}
		select {
		case tc.replies <- textLine{raw: raw, rep: rep, err: perr}:
		default:
			d.log.Warn().Str("raw", quoted(raw)).Msg("unsolicited line from printer dropped: nobody is waiting for it")
		}
	}
}

func (d *Videojet) notification(rep Reply) {
	switch rep.Kind {
	case AsyncPrintEnd:
		d.confirmed.Add(1)
		select {
		case d.prc <- struct{}{}:
		default:
		}
	default:
		d.log.Debug().Stringer("kind", rep.Kind).Strs("fields", rep.Fields).Msg("printer notification")
	}
}

// quoted renders device bytes for a log line: at most 256, Go-quoted.
func quoted(b []byte) string {
	if len(b) > 256 {
		b = b[:256]
	}
	return strconv.Quote(string(b))
}

// exchange sends one command on the current connection and waits for its
// reply. Any failure but a clean ACK/ERR/answer closes the connection: a
// late reply must never be taken for the next command's.
func (d *Videojet) exchange(ctx context.Context, op string, cmd []byte) (Reply, []byte, error) {
	tc := d.tc
	for drained := false; !drained; {
		select {
		case stale := <-tc.replies:
			d.log.Warn().Str("op", op).Str("raw", quoted(stale.raw)).Msg("unsolicited line from printer before command: discarded")
		default:
			drained = true
		}
	}
	dl := d.deadline(ctx)
	tc.c.SetWriteDeadline(dl)
	if _, err := tc.c.Write(cmd); err != nil {
		d.dropLocked()
		d.setHealth(drivers.Health{Fault: "disconnected", Detail: err.Error()})
		return Reply{}, nil, d.devErr(op, fmt.Errorf("%w: %v", drivers.ErrNotConnected, err), nil)
	}
	t := time.NewTimer(time.Until(dl))
	defer t.Stop()
	select {
	case l := <-tc.replies:
		if l.err != nil {
			d.dropLocked()
			d.log.Warn().Str("op", op).Err(l.err).Str("raw", quoted(l.raw)).Msg("malformed reply from printer")
			d.setHealth(drivers.Health{Connected: true, Fault: "malformed_reply", Detail: l.err.Error()})
			return Reply{}, l.raw, d.devErr(op, l.err, l.raw)
		}
		return l.rep, l.raw, nil
	case <-tc.done:
		select {
		case l := <-tc.replies: // the reply came just before the link closed
			if l.err == nil {
				return l.rep, l.raw, nil
			}
		default:
		}
		err := tc.err
		d.dropLocked()
		d.setHealth(drivers.Health{Fault: "disconnected", Detail: fmt.Sprint(err)})
		return Reply{}, nil, d.devErr(op, fmt.Errorf("%w: link lost waiting for the reply: %v", drivers.ErrNotConnected, err), nil)
	case <-t.C:
		d.dropLocked()
		d.setHealth(drivers.Health{Connected: true, Fault: "no_answer", Detail: op + ": no answer"})
		return Reply{}, nil, d.devErr(op, fmt.Errorf("%w: no reply within %v", drivers.ErrTimeout, d.timeout), nil)
	case <-ctx.Done():
		d.dropLocked()
		return Reply{}, nil, d.devErr(op, ctx.Err(), nil)
	}
}

// ready returns a usable connection: it dials if there is none or the link
// was found dead before anything was sent (nothing can be lost then), and
// enables print-complete notifications once per connection.
func (d *Videojet) ready(ctx context.Context) error {
	if d.tc != nil && d.tc.closed() {
		d.dropLocked()
	}
	if d.tc == nil {
		if err := d.connectLocked(ctx); err != nil {
			return err
		}
	}
	if d.tc.ready || d.opts.DisableNotifications {
		d.tc.ready = true
		return nil
	}
	cmd, _ := EncodeCommand(CmdNotify, "PRC", "1")
	rep, raw, err := d.exchange(ctx, "SNO|PRC", cmd)
	if err != nil {
		return err
	}
	switch rep.Kind {
	case ReplyACK:
	case ReplyERR:
		// Protocol versions before 6 have no notifications: printing works
		// without them, only PrintsConfirmed stays still.
		d.log.Warn().Msg("printer refused print-complete notifications (SNO|PRC|1|): printing without them")
	default:
		d.dropLocked()
		return d.devErr("SNO|PRC", errText("answer to SNO is not ACK or ERR"), raw)
	}
	d.tc.ready = true
	return nil
}

// command is ready + exchange, expecting ACK; ERR is a device fault.
func (d *Videojet) command(ctx context.Context, op string, cmd []byte, refused string) error {
	if err := d.ready(ctx); err != nil {
		return err
	}
	rep, raw, err := d.exchange(ctx, op, cmd)
	if err != nil {
		return err
	}
	switch rep.Kind {
	case ReplyACK:
		return nil
	case ReplyERR:
		return d.devErr(op, fmt.Errorf("%w: printer answered ERR: %s", drivers.ErrDeviceFault, refused), nil)
	}
	d.dropLocked()
	d.log.Warn().Str("op", op).Str("raw", quoted(raw)).Msg("unexpected reply from printer")
	return d.devErr(op, errText("answer is not ACK or ERR"), raw)
}

// Print selects the label's job when it is not the one selected on this
// connection (SLA, data included) or updates the job's fields (JDA), and
// waits for ACK. ACK means the printer holds the data, not that it printed:
// the camera read is the proof.
func (d *Videojet) Print(ctx context.Context, l drivers.Label) error {
	job, fields, err := labelFields(d.opts.Jobs, d.opts.FNC1, l, CheckValue)
	if err != nil {
		return d.devErr("label "+l.ID, err, nil)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.ready(ctx); err != nil {
		return err
	}
	op, refused := "JDA", "fields not updated (no job selected, or the update queue is full)"
	var cmd []byte
	if d.selected == job.Name {
		cmd, err = EncodeUpdate(fields)
	} else {
		op, refused = "SLA "+job.Name, "job not selected (unknown job, or the update queue is full)"
		cmd, err = EncodeSelect(job.Name, fields)
	}
	if err != nil {
		return d.devErr("label "+l.ID, err, nil)
	}
	if err := d.command(ctx, op, cmd, refused); err != nil {
		d.selected = ""
		return err
	}
	d.selected = job.Name
	return nil
}

// Status asks GST and maps the overall and error states to a Health.
func (d *Videojet) Status(ctx context.Context) (drivers.Health, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.ready(ctx); err != nil {
		return d.Health(), err
	}
	cmd, _ := EncodeCommand(CmdGetState)
	rep, raw, err := d.exchange(ctx, "GST", cmd)
	if err != nil {
		return d.Health(), err
	}
	if rep.Kind != ReplyStatus {
		d.dropLocked()
		err := errText("answer to GST is not STS|state|errors|job|batch|total|")
		d.log.Warn().Str("raw", quoted(raw)).Msg("unexpected answer to GST")
		h := d.setHealth(drivers.Health{Connected: true, Fault: "malformed_reply", Detail: err.Error()})
		return h, d.devErr("GST", err, raw)
	}
	st := rep.Status
	if st.Job != d.selected {
		d.selected = "" // changed at the printer: select again on the next label
	}
	h := d.setHealth(drivers.Health{Connected: true, Fault: st.Fault(), Detail: st.Detail()})
	if h.Fault != "" {
		return h, d.devErr("GST", fmt.Errorf("%w: %s (%s)", drivers.ErrDeviceFault, h.Fault, h.Detail), nil)
	}
	return h, nil
}

// ClearFaults sends CAF: the printer clears every fault that can be
// cleared from its user interface. ERR means a fault is left.
func (d *Videojet) ClearFaults(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	cmd, _ := EncodeCommand(CmdClearFaults)
	return d.command(ctx, "CAF", cmd, "a fault that cannot be cleared remotely is present")
}

// Start asks the printer to go to Running (SST|3|); it refuses without a
// selected job or while a fault is present.
func (d *Videojet) Start(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	cmd, _ := EncodeCommand(CmdSetState, "3")
	return d.command(ctx, "SST|3", cmd, "printer did not go to Running")
}

// Close closes the connection; safe twice.
func (d *Videojet) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dropLocked()
	return nil
}
