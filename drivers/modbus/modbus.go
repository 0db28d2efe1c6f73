// Package modbus drives line PLCs over Modbus TCP (github.com/goburrow/modbus):
// named tags mapped to coils, discrete inputs, holding and input registers,
// 16/32/64-bit values with configurable word order, and pulsed outputs for
// the reject gate.
//
// goburrow/modbus never reconnects after a broken connection, and after a
// timeout it keeps the socket: the late answer is then read as the answer to
// the next request (goburrow checks the transaction id and fails, but the
// stream stays one answer behind). This driver closes the handler on ANY
// error, so the next call dials a fresh connection and stale answers die
// with the old one.
package modbus

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/binary"
	"errors"
	"fmt"
	"log"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	gbmodbus "github.com/goburrow/modbus"
	"github.com/rs/zerolog"

	"github.com/serialine/serialine/drivers"
)

//go:embed sample.yaml
var SampleConfig string

// Tag maps a name to one Modbus item. Addresses are 0-based protocol
// addresses (the "40001" notation of some manuals is 1-based and includes
// the table: holding register 40001 is holding_register: 0).
type Tag struct {
	Coil            *uint16       `yaml:"coil"`
	DiscreteInput   *uint16       `yaml:"discrete_input"`
	HoldingRegister *uint16       `yaml:"holding_register"`
	InputRegister   *uint16       `yaml:"input_register"`
	Words           int           `yaml:"words"`      // registers: 1, 2 or 4 (default 1)
	WordOrder       string        `yaml:"word_order"` // high_first (default) or low_first
	Pulse           time.Duration `yaml:"pulse"`      // bool outputs: write true, then false after this
}

// Options are the driver-specific settings (a device's `options:`).
type Options struct {
	UnitID uint8          `yaml:"unit_id"` // slave id, default 1
	Tags   map[string]Tag `yaml:"tags"`
}

// Tags the edge writes (they must be writable) and reads.
var (
	writtenTags = map[string]bool{"reject": true, "good_count": true, "reject_count": true}
)

func (t Tag) kind() (string, uint16, int) {
	n, kind, addr := 0, "", uint16(0)
	for _, x := range []struct {
		name string
		a    *uint16
	}{{"coil", t.Coil}, {"discrete_input", t.DiscreteInput}, {"holding_register", t.HoldingRegister}, {"input_register", t.InputRegister}} {
		if x.a != nil {
			n++
			kind, addr = x.name, *x.a
		}
	}
	return kind, addr, n
}

// Validate checks the options, naming the tag and field.
func (o *Options) Validate() error {
	if len(o.Tags) == 0 {
		return errors.New("tags: at least the reject tag is required")
	}
	names := make([]string, 0, len(o.Tags))
	for n := range o.Tags {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		t := o.Tags[name]
		kind, addr, n := t.kind()
		if n != 1 {
			return fmt.Errorf("tags.%s: exactly one of coil, discrete_input, holding_register, input_register", name)
		}
		if addr >= 40001 || (addr >= 30001 && kind == "input_register") {
			return fmt.Errorf("tags.%s: address %d looks like 1-based 4xxxx/3xxxx notation; use the 0-based protocol address (40001 is holding_register: 0)", name, addr)
		}
		reg := kind == "holding_register" || kind == "input_register"
		if t.Words != 0 && (!reg || (t.Words != 1 && t.Words != 2 && t.Words != 4)) {
			return fmt.Errorf("tags.%s.words: %d: registers take 1, 2 or 4 words; coils and inputs none", name, t.Words)
		}
		if t.WordOrder != "" && t.WordOrder != "high_first" && t.WordOrder != "low_first" {
			return fmt.Errorf("tags.%s.word_order: %q: want high_first or low_first", name, t.WordOrder)
		}
		if t.Pulse < 0 || (t.Pulse > 0 && kind != "coil") {
			return fmt.Errorf("tags.%s.pulse: only coils can be pulsed", name)
		}
		if writtenTags[name] && (kind == "discrete_input" || kind == "input_register") {
			return fmt.Errorf("tags.%s: the edge writes this tag; a %s is read-only", name, kind)
		}
		if name == "reject" && kind != "coil" {
			return fmt.Errorf("tags.reject: the reject output must be a coil")
		}
	}
	if _, ok := o.Tags["reject"]; !ok {
		return errors.New("tags.reject: required (the reject gate output)")
	}
	return nil
}

// PLC is one Modbus TCP device.
type PLC struct {
	name, addr string
	timeout    time.Duration
	opts       Options
	log        zerolog.Logger

	mu      sync.Mutex
	handler *gbmodbus.TCPClientHandler
	client  gbmodbus.Client
	wire    wireLog // the bytes goburrow sent and received in the current call
	health  drivers.Health
}

// wireLog captures goburrow's transmission log ("modbus: received % x") so a
// malformed answer can be reported with its bytes.
type wireLog struct{ last []byte }

func (w *wireLog) Write(b []byte) (int, error) {
	if rest, ok := bytes.CutPrefix(bytes.TrimSpace(b), []byte("modbus: received ")); ok {
		w.last = w.last[:0]
		for _, f := range bytes.Fields(rest) {
			if v, err := strconv.ParseUint(string(f), 16, 8); err == nil && len(w.last) < 256 {
				w.last = append(w.last, byte(v))
			}
		}
	}
	return len(b), nil
}

var (
	_ drivers.PLC            = (*PLC)(nil)
	_ drivers.HealthReporter = (*PLC)(nil)
)

// New creates the driver; Connect opens the link.
func New(name, address string, timeout time.Duration, opts Options, log zerolog.Logger) (*PLC, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("PLC %s: %w", name, err)
	}
	if opts.UnitID == 0 {
		opts.UnitID = 1
	}
	if timeout <= 0 {
		timeout = time.Second
	}
	return &PLC{name: name, addr: address, timeout: timeout, opts: opts, log: log.With().Str("device", name).Logger()}, nil
}

// HasTag reports whether a tag is mapped (the engine writes counters only then).
func (p *PLC) HasTag(name string) bool { _, ok := p.opts.Tags[name]; return ok }

// Health returns the last known condition.
func (p *PLC) Health() drivers.Health {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.health
}

// Connect dials the PLC.
func (p *PLC) Connect(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.connectLocked(ctx)
}

func (p *PLC) connectLocked(ctx context.Context) error {
	p.closeLocked()
	h := gbmodbus.NewTCPClientHandler(p.addr)
	h.SlaveId = p.opts.UnitID
	h.Timeout = p.callTimeout(ctx)
	h.Logger = log.New(&p.wire, "", 0)
	if err := h.Connect(); err != nil {
		p.health = drivers.Health{Fault: "disconnected", Detail: err.Error(), At: time.Now()}
		return drivers.NewDeviceError(p.name, "connect", fmt.Errorf("%w: %v", drivers.ErrNotConnected, err), nil)
	}
	p.handler, p.client = h, gbmodbus.NewClient(h)
	p.health = drivers.Health{Connected: true, At: time.Now()}
	return nil
}

func (p *PLC) callTimeout(ctx context.Context) time.Duration {
	d := p.timeout
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); left < d {
			d = left
		}
	}
	if d < time.Millisecond {
		d = time.Millisecond
	}
	return d
}

func (p *PLC) closeLocked() {
	if p.handler != nil {
		p.handler.Close()
		p.handler, p.client = nil, nil
	}
}

// Close closes the link; safe twice.
func (p *PLC) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closeLocked()
	return nil
}

// call runs one request with reconnect-on-error semantics.
func (p *PLC) call(ctx context.Context, tag, op string, fn func(c gbmodbus.Client) error) (err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	if p.client == nil {
		if err := p.connectLocked(ctx); err != nil {
			return err
		}
	}
	p.handler.Timeout = p.callTimeout(ctx)
	p.wire.last = p.wire.last[:0]
	field := "tag " + tag + " " + op
	defer func() {
		// Device bytes must never crash the edge, whatever the library does.
		if r := recover(); r != nil {
			p.closeLocked()
			p.health = drivers.Health{Fault: "malformed_answer", Detail: fmt.Sprint(r), At: time.Now()}
			err = drivers.NewDeviceError(p.name, field, fmt.Errorf("%w: the Modbus client failed on the answer: %v", drivers.ErrMalformed, r), p.wire.last)
		}
	}()
	err = fn(p.client)
	if err == nil {
		return nil
	}
	var me *gbmodbus.ModbusError
	if errors.As(err, &me) && me.FunctionCode&0x80 != 0 && me.ExceptionCode >= 1 && me.ExceptionCode <= 11 {
		// The PLC answered with an exception: the link is in step.
		return drivers.NewDeviceError(p.name, field, fmt.Errorf("%w: modbus exception %d (%s)", drivers.ErrDeviceFault, me.ExceptionCode, exceptionName(me.ExceptionCode)), nil)
	}
	// Anything else — timeout, broken pipe, transaction id mismatch, an
	// answer that does not fit the request — drops the connection, so a
	// late or stray answer can never be taken for the next one.
	p.closeLocked()
	if me != nil || errors.Is(err, drivers.ErrMalformed) || isMalformed(err) {
		p.health = drivers.Health{Fault: "malformed_answer", Detail: err.Error(), At: time.Now()}
		return drivers.NewDeviceError(p.name, field, fmt.Errorf("%w (link reset): %v", drivers.ErrMalformed, err), p.wire.last)
	}
	p.health = drivers.Health{Fault: "disconnected", Detail: err.Error(), At: time.Now()}
	return drivers.NewDeviceError(p.name, field, fmt.Errorf("%w: %v", drivers.ErrNotConnected, err), nil)
}

// isMalformed recognises goburrow's errors about answers that arrived but do
// not fit the request (sizes, echoed values, protocol id); a transaction id
// mismatch is a stale answer, not garbage.
func isMalformed(err error) bool {
	m := err.Error()
	if strings.Contains(m, "transaction id") {
		return false
	}
	for _, s := range []string{"does not match", "must not", "is empty", "length in response"} {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}

func exceptionName(c byte) string {
	switch c {
	case 1:
		return "illegal function"
	case 2:
		return "illegal data address"
	case 3:
		return "illegal data value"
	case 4:
		return "server device failure"
	case 5:
		return "acknowledge"
	case 6:
		return "server device busy"
	case 8:
		return "memory parity error"
	case 10:
		return "gateway path unavailable"
	case 11:
		return "gateway target device failed to respond"
	}
	return "exception"
}

func (p *PLC) tag(name string) (Tag, string, uint16, error) {
	t, ok := p.opts.Tags[name]
	if !ok {
		return t, "", 0, drivers.NewDeviceError(p.name, "tag "+name, errors.New("no such tag in the PLC's options"), nil)
	}
	kind, addr, _ := t.kind()
	return t, kind, addr, nil
}

// WriteBool writes a coil; a pulsed coil goes back to false after the pulse.
func (p *PLC) WriteBool(ctx context.Context, name string, v bool) error {
	t, kind, addr, err := p.tag(name)
	if err != nil {
		return err
	}
	if kind != "coil" {
		return drivers.NewDeviceError(p.name, "tag "+name, fmt.Errorf("a %s cannot be written as a bool", kind), nil)
	}
	val := uint16(0)
	if v {
		val = 0xFF00
	}
	if err := p.call(ctx, name, "write", func(c gbmodbus.Client) error { _, err := c.WriteSingleCoil(addr, val); return err }); err != nil {
		return err
	}
	if v && t.Pulse > 0 {
		select {
		case <-time.After(t.Pulse):
		case <-ctx.Done():
			// Still reset the output: a gate must not stay open.
		}
		// The gate must not stay open: retry the reset once on a fresh
		// connection before giving up (a repeated reject would pulse again
		// and could throw out the next, good unit).
		var rerr error
		for attempt := 0; attempt < 2; attempt++ {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.timeout)
			rerr = p.call(rctx, name, "pulse reset", func(c gbmodbus.Client) error { _, err := c.WriteSingleCoil(addr, 0); return err })
			cancel()
			if rerr == nil {
				return nil
			}
		}
		return fmt.Errorf("%w (the pulse was sent; the output may still be on)", rerr)
	}
	return nil
}

// ReadBool reads a coil or discrete input.
func (p *PLC) ReadBool(ctx context.Context, name string) (bool, error) {
	_, kind, addr, err := p.tag(name)
	if err != nil {
		return false, err
	}
	var out bool
	err = p.call(ctx, name, "read", func(c gbmodbus.Client) error {
		var b []byte
		var err error
		switch kind {
		case "coil":
			b, err = c.ReadCoils(addr, 1)
		case "discrete_input":
			b, err = c.ReadDiscreteInputs(addr, 1)
		default:
			return fmt.Errorf("a %s cannot be read as a bool", kind)
		}
		if err != nil {
			return err
		}
		if len(b) < 1 {
			return errors.New("empty answer")
		}
		out = b[0]&1 == 1
		return nil
	})
	return out, err
}

// Compose builds an unsigned value from registers (big-endian words).
func Compose(b []byte, words int, lowFirst bool) (uint64, error) {
	if len(b) != 2*words {
		return 0, fmt.Errorf("%w: %d bytes for %d registers", drivers.ErrMalformed, len(b), words)
	}
	var v uint64
	for i := 0; i < words; i++ {
		j := i
		if lowFirst {
			j = words - 1 - i
		}
		v = v<<16 | uint64(binary.BigEndian.Uint16(b[2*j:]))
	}
	return v, nil
}

// Split is Compose's inverse.
func Split(v uint64, words int, lowFirst bool) []byte {
	b := make([]byte, 2*words)
	for i := 0; i < words; i++ {
		w := uint16(v >> (16 * uint(words-1-i)))
		j := i
		if lowFirst {
			j = words - 1 - i
		}
		binary.BigEndian.PutUint16(b[2*j:], w)
	}
	return b
}

func (t Tag) words() int {
	if t.Words == 0 {
		return 1
	}
	return t.Words
}

// WriteUint writes a holding register value (1, 2 or 4 words).
func (p *PLC) WriteUint(ctx context.Context, name string, v uint64) error {
	t, kind, addr, err := p.tag(name)
	if err != nil {
		return err
	}
	if kind != "holding_register" {
		return drivers.NewDeviceError(p.name, "tag "+name, fmt.Errorf("a %s cannot be written as a number", kind), nil)
	}
	w := t.words()
	if w < 4 && v>>(16*uint(w)) != 0 {
		return drivers.NewDeviceError(p.name, "tag "+name, fmt.Errorf("value %d does not fit in %d registers", v, w), nil)
	}
	data := Split(v, w, t.WordOrder == "low_first")
	return p.call(ctx, name, "write", func(c gbmodbus.Client) error {
		_, err := c.WriteMultipleRegisters(addr, uint16(w), data)
		return err
	})
}

// ReadUint reads a holding or input register value.
func (p *PLC) ReadUint(ctx context.Context, name string) (uint64, error) {
	t, kind, addr, err := p.tag(name)
	if err != nil {
		return 0, err
	}
	w := t.words()
	var out uint64
	err = p.call(ctx, name, "read", func(c gbmodbus.Client) error {
		var b []byte
		var err error
		switch kind {
		case "holding_register":
			b, err = c.ReadHoldingRegisters(addr, uint16(w))
		case "input_register":
			b, err = c.ReadInputRegisters(addr, uint16(w))
		default:
			return fmt.Errorf("a %s cannot be read as a number", kind)
		}
		if err != nil {
			return err
		}
		out, err = Compose(b, w, t.WordOrder == "low_first")
		return err
	})
	return out, err
}
