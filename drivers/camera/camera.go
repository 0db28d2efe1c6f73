// Package camera reads verification results from vision readers over TCP:
// one result line per read, in the format configured on the reader
// (delimiter or regular expression with named groups), with ISO/IEC 15415
// grades. Profiles: dataman (Cognex DataMan style, continuous output, DMCC
// trigger `||>TRIGGER ON`) and keyence (SR series command style: `LON`
// triggers a read, `ERROR` is a no-read).
package camera

import (
	"bufio"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/serialine/serialine/drivers"
)

//go:embed sample.yaml
var SampleConfig string

// Options are the driver-specific settings (a device's `options:`).
type Options struct {
	Profile string  `yaml:"profile"` // dataman | keyence (set from the driver name)
	Format  Format  `yaml:"format"`
	Trigger Trigger `yaml:"trigger"`
	LineEnd string  `yaml:"line_end"` // default "\r\n" (dataman), "\r" (keyence)
}

// Trigger configures triggering by command.
type Trigger struct {
	Enabled bool   `yaml:"enabled"`
	Command string `yaml:"command"` // default per profile: "||>TRIGGER ON\r\n" or "LON\r"
}

// MaxLine bounds a result line; longer lines are malformed and skipped.
const MaxLine = 4096

// SetDefaults applies the profile's defaults to unset fields.
func (o *Options) SetDefaults() {
	if o.Profile == "" {
		o.Profile = "dataman"
	}
	switch o.Profile {
	case "keyence":
		if o.LineEnd == "" {
			o.LineEnd = "\r" // SR series: results and responses end with CR
		}
		if o.Format.Mode == "" {
			o.Format.Mode = "regex"
		}
		if o.Format.Mode == "regex" && o.Format.Pattern == "" {
			o.Format.Pattern = `^(?P<data>[^:]+):(?P<grade>[A-F0-4](\.\d)?)$`
		}
		if o.Format.NoRead == nil {
			o.Format.NoRead = []string{"ERROR"}
		}
		if o.Format.Ignore == nil {
			o.Format.Ignore = []string{"OK,LON", "OK,LOFF"}
		}
		if o.Format.Errors == nil {
			o.Format.Errors = []string{"ER,"}
		}
		if o.Trigger.Command == "" {
			o.Trigger.Command = "LON\r"
		}
	default:
		if o.LineEnd == "" {
			o.LineEnd = "\r\n"
		}
		if o.Format.Mode == "" {
			o.Format.Mode = "delimiter"
		}
		if o.Format.NoRead == nil {
			o.Format.NoRead = []string{"NoRead", "NOREAD", "ERROR"}
		}
		if o.Trigger.Command == "" {
			o.Trigger.Command = "||>TRIGGER ON\r\n"
		}
	}
	if o.Format.Mode == "delimiter" {
		if o.Format.Delimiter == "" {
			o.Format.Delimiter = "|"
		}
		if o.Format.Fields == nil {
			o.Format.Fields = []string{"data", "grade"}
		}
	}
}

// Validate checks the options, naming the field.
func (o *Options) Validate() error {
	c := *o
	c.SetDefaults()
	if c.Profile != "dataman" && c.Profile != "keyence" {
		return fmt.Errorf("profile: %q: want dataman or keyence", c.Profile)
	}
	switch c.Format.Mode {
	case "delimiter":
		data := 0
		for i, f := range c.Format.Fields {
			switch {
			case f == "data":
				data++
			case f == "grade", f == "-", strings.HasPrefix(f, "param:") && len(f) > 6:
			default:
				return fmt.Errorf("format.fields[%d]: %q: want data, grade, param:NAME or -", i, f)
			}
		}
		if data != 1 {
			return errors.New("format.fields: exactly one field must be data")
		}
	case "regex":
		re, err := regexp.Compile(c.Format.Pattern)
		if err != nil {
			return fmt.Errorf("format.pattern: %v", err)
		}
		if re.SubexpIndex("data") < 0 {
			return errors.New("format.pattern: missing named group data")
		}
	default:
		return fmt.Errorf("format.mode: %q: want delimiter or regex", c.Format.Mode)
	}
	return nil
}

// Camera is one reader.
type Camera struct {
	name, addr string
	timeout    time.Duration
	opts       Options
	parser     *Parser
	log        zerolog.Logger

	mu      sync.Mutex
	conn    net.Conn
	rd      *bufio.Reader
	health  drivers.Health
	last    time.Time
	partial []byte // the start of a line a cancelled Read left behind
}

var (
	_ drivers.Camera         = (*Camera)(nil)
	_ drivers.Triggerer      = (*Camera)(nil)
	_ drivers.HealthReporter = (*Camera)(nil)
)

// New creates the driver; Connect opens the link.
func New(name, address string, timeout time.Duration, opts Options, log zerolog.Logger) (*Camera, error) {
	opts.SetDefaults()
	p, err := NewParser(name, opts)
	if err != nil {
		return nil, fmt.Errorf("camera %s: %w", name, err)
	}
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	return &Camera{name: name, addr: address, timeout: timeout, opts: opts, parser: p, log: log.With().Str("device", name).Logger()}, nil
}

// Connect dials the reader (closing a previous connection).
func (c *Camera) Connect(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		c.conn.Close()
	}
	d := net.Dialer{Timeout: c.timeout}
	conn, err := d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		c.conn = nil
		c.health = drivers.Health{Fault: "disconnected", Detail: err.Error(), At: time.Now()}
		return drivers.NewDeviceError(c.name, "connect", fmt.Errorf("%w: %v", drivers.ErrNotConnected, err), nil)
	}
	c.conn, c.rd, c.partial = conn, bufio.NewReaderSize(conn, MaxLine+64), nil
	c.health = drivers.Health{Connected: true, At: time.Now()}
	return nil
}

// Health returns the last known condition.
func (c *Camera) Health() drivers.Health {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.health
	if !c.last.IsZero() {
		h.Detail = "last result " + time.Since(c.last).Round(time.Millisecond).String() + " ago"
	}
	return h
}

// Read blocks until the next result line. A malformed line returns a
// *drivers.DeviceError wrapping drivers.ErrMalformed; the link stays usable.
// Command acknowledgements (Format.Ignore, DMCC "[0]" responses) are
// skipped.
func (c *Camera) Read(ctx context.Context) (drivers.Reading, error) {
	c.mu.Lock()
	conn, rd := c.conn, c.rd
	c.mu.Unlock()
	if conn == nil {
		return drivers.Reading{}, drivers.NewDeviceError(c.name, "read", drivers.ErrNotConnected, nil)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) })
	defer stop()
	conn.SetReadDeadline(time.Time{})
	for {
		c.mu.Lock()
		partial := c.partial
		c.partial = nil
		c.mu.Unlock()
		line, err := readLine(rd, c.opts.LineEnd, partial)
		if err != nil {
			if errors.Is(err, errTooLong) {
				return drivers.Reading{}, c.parser.fail("", fmt.Errorf("longer than %d bytes", MaxLine), line)
			}
			if ctx.Err() != nil {
				// Keep what arrived of a line: the next Read continues it.
				c.mu.Lock()
				c.partial = append([]byte(nil), line...)
				c.mu.Unlock()
				return drivers.Reading{}, ctx.Err()
			}
			c.mu.Lock()
			if c.conn == conn {
				c.conn.Close()
				c.conn = nil
				c.health = drivers.Health{Fault: "disconnected", Detail: err.Error(), At: time.Now()}
			}
			c.mu.Unlock()
			return drivers.Reading{}, drivers.NewDeviceError(c.name, "read", fmt.Errorf("%w: %v", drivers.ErrNotConnected, err), nil)
		}
		c.mu.Lock()
		c.last = time.Now()
		c.mu.Unlock()
		r, perr := c.parser.Parse(line)
		if errors.Is(perr, ErrAcknowledgement) {
			continue // the result follows
		}
		return r, perr
	}
}

var errTooLong = errors.New("line too long")

// readLine reads up to the line end (its last byte), tolerating CR LF and
// LF; a line longer than MaxLine is consumed up to its end and refused.
func readLine(rd *bufio.Reader, lineEnd string, partial []byte) ([]byte, error) {
	end := lineEnd[len(lineEnd)-1]
	line := partial
	tooLong := false
	for {
		chunk, err := rd.ReadSlice(end)
		if len(line)+len(chunk) > MaxLine {
			tooLong = true
			if len(line) < 256 {
				line = append(line, chunk[:min(len(chunk), 256)]...)
			}
		} else {
			line = append(line, chunk...)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			return line, err
		}
		break
	}
	if tooLong {
		return line, errTooLong
	}
	line = line[:len(line)-1]
	return []byte(strings.TrimRight(string(line), "\r\n")), nil
}

// Trigger asks the reader for a read (DMCC `||>TRIGGER ON` or Keyence `LON`).
func (c *Camera) Trigger(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return drivers.NewDeviceError(c.name, "trigger", drivers.ErrNotConnected, nil)
	}
	dl := time.Now().Add(c.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	c.conn.SetWriteDeadline(dl)
	if _, err := c.conn.Write([]byte(c.opts.Trigger.Command)); err != nil {
		return drivers.NewDeviceError(c.name, "trigger", fmt.Errorf("%w: %v", drivers.ErrNotConnected, err), nil)
	}
	return nil
}

// Close closes the connection; safe twice.
func (c *Camera) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
	return nil
}
