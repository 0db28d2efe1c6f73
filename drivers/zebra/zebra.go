// Package zebra drives Zebra printers in ZPL over raw TCP (port 9100):
// unit labels with a GS1 DataMatrix, SSCC labels (GS1-128) for cases and
// pallets, and status by ~HS, falling back to ~HQES when the printer does
// not answer ~HS (it stays silent while media or ribbon is out, the head is
// open or it is too hot).
package zebra

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/rs/zerolog"

	"github.com/serialine/serialine/drivers"
)

//go:embed sample.yaml
var SampleConfig string

// Options are the driver-specific settings (a device's `options:`).
type Options struct {
	EscapeChar string            `yaml:"escape_char"` // ^BX escape character, default "_"
	Module     int               `yaml:"module"`      // DataMatrix module size in dots, default 6
	Templates  map[string]string `yaml:"templates"`   // ZPL text/template per level: unit, case, pallet
}

// SetDefaults fills unset options.
func (o *Options) SetDefaults() {
	if o.EscapeChar == "" {
		o.EscapeChar = "_"
	}
	if o.Module == 0 {
		o.Module = 6
	}
}

// Validate checks the options, naming the field. Templates are compiled and
// proven on sample data (they must print the level's symbol).
func (o *Options) Validate() error {
	c := *o
	c.SetDefaults()
	if e := c.EscapeChar; len(e) != 1 || e[0] <= ' ' || e[0] > '~' || strings.IndexByte("^~1d", e[0]) >= 0 || (e[0] >= '@' && e[0] <= '^') {
		return errors.New(`escape_char: must be one printable ASCII character other than ^ and ~ (and not 1, d or @..^, which follow it in ^BX escape sequences); "_" is usual`)
	}
	if c.Module < 1 || c.Module > 100 {
		return fmt.Errorf("module: %d dots: want 1..100", c.Module)
	}
	_, err := c.compile()
	return err
}

func (o Options) compile() (map[string]*template.Template, error) {
	out := map[string]*template.Template{}
	for level, src := range o.Templates {
		if level != "unit" && level != "case" && level != "pallet" {
			return nil, fmt.Errorf("templates.%s: level must be unit, case or pallet", level)
		}
		t, err := parseTemplate(o, level, src)
		if err != nil {
			return nil, fmt.Errorf("templates.%s: %w", level, err)
		}
		out[level] = t
	}
	return out, nil
}

// Zebra is one printer.
type Zebra struct {
	name, addr string
	timeout    time.Duration
	opts       Options
	log        zerolog.Logger

	tmu       sync.RWMutex
	templates templateSet

	mu      sync.Mutex // one operation at a time on the connection
	conn    net.Conn
	rd      *bufio.Reader
	backoff time.Duration // wait before the next implicit redial
	retryAt time.Time
	health  drivers.Health
	hmu     sync.Mutex
}

// Reconnect backoff of implicit redials (after a broken link, Print and
// Status dial again at most this often; an explicit Connect always dials).
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
)

var (
	_ drivers.Printer          = (*Zebra)(nil)
	_ drivers.HealthReporter   = (*Zebra)(nil)
	_ drivers.ProductTemplater = (*Zebra)(nil)
)

// New creates the driver; Connect opens the link.
func New(name, address string, timeout time.Duration, opts Options, log zerolog.Logger) (*Zebra, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("printer %s: %w", name, err)
	}
	opts.SetDefaults()
	tpl, err := opts.compile()
	if err != nil {
		return nil, fmt.Errorf("printer %s: %w", name, err)
	}
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	return &Zebra{name: name, addr: address, timeout: timeout, opts: opts, log: log.With().Str("device", name).Logger(),
		templates: templateSet{level: tpl, product: map[string]map[string]*template.Template{}}}, nil
}

// SetProductTemplates installs a product's label template overrides per
// level (the line config's products[].labels), used for labels whose GTIN is
// gtin instead of the device's templates. Each is proven like the device's.
func (z *Zebra) SetProductTemplates(gtin string, labels map[string]string) error {
	o := z.opts
	o.Templates = labels
	tpl, err := o.compile()
	if err != nil {
		return fmt.Errorf("printer %s: product %s labels: %w", z.name, gtin, err)
	}
	z.tmu.Lock()
	z.templates.product[gtin] = tpl
	z.tmu.Unlock()
	return nil
}

// setHealth stamps and stores the device's condition.
func (z *Zebra) setHealth(h *drivers.Health) {
	h.At = time.Now()
	z.hmu.Lock()
	z.health = *h
	z.hmu.Unlock()
}

// Health returns the last known condition.
func (z *Zebra) Health() drivers.Health {
	z.hmu.Lock()
	defer z.hmu.Unlock()
	return z.health
}

// Connect dials the printer (closing a previous connection).
func (z *Zebra) Connect(ctx context.Context) error {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.connectLocked(ctx)
}

func (z *Zebra) connectLocked(ctx context.Context) error {
	if z.conn != nil {
		z.conn.Close()
		z.conn = nil
	}
	d := net.Dialer{Timeout: z.timeout}
	c, err := d.DialContext(ctx, "tcp", z.addr)
	if err != nil {
		z.backoff = min(max(2*z.backoff, minBackoff), maxBackoff)
		z.retryAt = time.Now().Add(z.backoff)
		z.setHealth(&drivers.Health{Fault: "disconnected", Detail: err.Error()})
		return drivers.NewDeviceError(z.name, "connect", fmt.Errorf("%w: %v", drivers.ErrNotConnected, err), nil)
	}
	z.backoff, z.retryAt = 0, time.Time{}
	z.conn, z.rd = c, bufio.NewReader(c)
	z.log.Debug().Str("addr", z.addr).Msg("connected")
	return nil
}

// redialLocked dials again after a broken link unless the backoff since the
// last failed dial has not passed.
func (z *Zebra) redialLocked(ctx context.Context) error {
	if wait := time.Until(z.retryAt); wait > 0 {
		return drivers.NewDeviceError(z.name, "connect", fmt.Errorf("%w: reconnect backoff, next attempt in %v", drivers.ErrNotConnected, wait.Round(time.Millisecond)), nil)
	}
	return z.connectLocked(ctx)
}

func (z *Zebra) deadline(ctx context.Context) time.Time {
	d := time.Now().Add(z.timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(d) {
		return dl
	}
	return d
}

// write sends bytes, reconnecting once if the link was dropped.
func (z *Zebra) write(ctx context.Context, b []byte) error {
	for attempt := 0; attempt < 2; attempt++ {
		if z.conn == nil {
			if err := z.redialLocked(ctx); err != nil {
				return err
			}
		}
		z.conn.SetWriteDeadline(z.deadline(ctx))
		_, err := z.conn.Write(b)
		if err == nil {
			return nil
		}
		z.conn.Close()
		z.conn = nil
		if attempt == 1 || ctx.Err() != nil {
			z.setHealth(&drivers.Health{Fault: "disconnected", Detail: err.Error()})
			return drivers.NewDeviceError(z.name, "write", fmt.Errorf("%w: %v", drivers.ErrNotConnected, err), nil)
		}
	}
	return nil
}

// Print sends one label. "Sent" is not "printed": the camera read proves it.
func (z *Zebra) Print(ctx context.Context, l drivers.Label) error {
	zpl, err := z.Render(l)
	if err != nil {
		return drivers.NewDeviceError(z.name, "label "+l.ID, err, nil)
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.write(ctx, zpl)
}

// readFrames reads until n <STX>..<ETX> frames arrived or the deadline.
func (z *Zebra) readFrames(ctx context.Context, n int) ([]byte, error) {
	z.conn.SetReadDeadline(z.deadline(ctx))
	var buf bytes.Buffer
	for len(splitSTX(buf.Bytes())) < n {
		b, err := z.rd.ReadByte()
		if err != nil {
			return buf.Bytes(), err
		}
		buf.WriteByte(b)
		if buf.Len() > 4096 {
			return buf.Bytes(), fmt.Errorf("answer longer than 4096 bytes")
		}
	}
	// Swallow the trailing CR LF of the last frame if it is there already.
	for z.rd.Buffered() > 0 {
		if b, _ := z.rd.Peek(1); b[0] != '\r' && b[0] != '\n' {
			break
		}
		z.rd.ReadByte()
	}
	return buf.Bytes(), nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Status asks ~HS; if the printer does not answer it asks ~HQES: a printer
// that answers ~HQES with errors has a fault (paper out, head open ...), not
// a dead link. Only when both time out is it "no_answer".
func (z *Zebra) Status(ctx context.Context) (drivers.Health, error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if err := z.write(ctx, []byte("~HS")); err != nil {
		return z.Health(), err
	}
	raw, err := z.readFrames(ctx, 3)
	if err == nil {
		hs, perr := ParseHS(raw)
		if perr != nil {
			z.resetLocked()
			h := drivers.Health{Connected: true, Fault: "malformed_status", Detail: perr.Error()}
			z.setHealth(&h)
			return h, drivers.NewDeviceError(z.name, "~HS", perr, raw)
		}
		h := drivers.Health{Connected: true, Fault: hs.Fault(), Detail: fmt.Sprintf("%d formats in buffer", hs.FormatsInBuffer)}
		z.setHealth(&h)
		if h.Fault != "" {
			return h, drivers.NewDeviceError(z.name, "~HS", fmt.Errorf("%w: %s", drivers.ErrDeviceFault, h.Fault), nil)
		}
		return h, nil
	}
	if !isTimeout(err) {
		z.resetLocked()
		h := drivers.Health{Fault: "disconnected", Detail: err.Error()}
		z.setHealth(&h)
		return h, drivers.NewDeviceError(z.name, "~HS", fmt.Errorf("%w: %v", drivers.ErrNotConnected, err), raw)
	}
	// ~HS timed out: a faulted printer stays silent to ~HS. Ask ~HQES on a
	// fresh connection (the old one may still deliver the late ~HS answer).
	z.resetLocked()
	if err := z.write(ctx, []byte("~HQES")); err != nil {
		return z.Health(), err
	}
	raw, err = z.readFrames(ctx, 1)
	if err != nil {
		z.resetLocked()
		h := drivers.Health{Connected: true, Fault: "no_answer", Detail: "no answer to ~HS nor ~HQES"}
		z.setHealth(&h)
		return h, drivers.NewDeviceError(z.name, "~HQES", fmt.Errorf("%w: no answer to ~HS nor ~HQES", drivers.ErrTimeout), raw)
	}
	q, perr := ParseHQES(raw)
	if perr != nil {
		z.resetLocked()
		h := drivers.Health{Connected: true, Fault: "malformed_status", Detail: perr.Error()}
		z.setHealth(&h)
		return h, drivers.NewDeviceError(z.name, "~HQES", perr, raw)
	}
	fault := q.Fault()
	if fault == "" {
		fault = "no_answer" // answers ~HQES without errors but not ~HS: still not usable
	}
	h := drivers.Health{Connected: true, Fault: fault, Detail: fmt.Sprintf("no answer to ~HS; ~HQES errors %08X %v warnings %08X %v", q.ErrorBits, q.Errors(), q.WarnBits, q.Warnings())}
	z.setHealth(&h)
	return h, drivers.NewDeviceError(z.name, "~HQES", fmt.Errorf("%w: %s", drivers.ErrDeviceFault, fault), nil)
}

func (z *Zebra) resetLocked() {
	if z.conn != nil {
		z.conn.Close()
		z.conn = nil
	}
}

// Close closes the connection; safe twice.
func (z *Zebra) Close() error {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.resetLocked()
	return nil
}
