// Package zebrasim simulates a Zebra ZPL printer on a real TCP socket: it
// parses the ZPL stream (formats ^XA..^XZ and tilde commands, split across
// reads or several per read), "prints" the GS1 DataMatrix or GS1-128 of each
// format at a configurable rate from a bounded buffer, answers ~HS and
// ~HQES as the printer does, and injects faults. Printed labels come out of
// Printed(), which the camera simulator consumes.
package zebrasim

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/serialine/serialine/drivers/zebra"
)

// Fault is an injected printer condition.
type Fault int

// Faults.
const (
	None Fault = iota
	PaperOut
	RibbonOut
	HeadOpen
	Paused
	OverTemp
	NoAnswer // accepts data but answers nothing
)

var faultNames = map[string]Fault{"none": None, "paper_out": PaperOut, "ribbon_out": RibbonOut, "head_open": HeadOpen, "paused": Paused, "over_temperature": OverTemp, "no_answer": NoAnswer}

// String is the fault's name as ParseFault takes it.
func (f Fault) String() string {
	for n, v := range faultNames {
		if v == f {
			return n
		}
	}
	return fmt.Sprintf("Fault(%d)", int(f))
}

// ParseFault parses a fault name (as used by serialine-sim's API).
func ParseFault(s string) (Fault, error) {
	f, ok := faultNames[s]
	if !ok {
		return None, fmt.Errorf("printer fault %q: want none, paper_out, ribbon_out, head_open, paused, over_temperature or no_answer", s)
	}
	return f, nil
}

// Options configure the simulator.
type Options struct {
	Name            string
	LabelsPerSecond float64 // print rate; 0 = as fast as received
	BufferSize      int     // formats held before the buffer is full (default 64)
}

// Printed is one label that left the printer.
type Printed struct {
	Symbol string // "datamatrix" or "gs1-128"
	Data   string // as a scanner transmits it after the symbology id (FNC1 as GS)
	ZPL    []byte
	At     time.Time
}

// Sim is the simulated printer.
type Sim struct {
	opt Options
	log zerolog.Logger

	ln      net.Listener
	printed chan Printed
	queue   chan Printed
	wake    chan struct{}

	mu       sync.Mutex
	fault    Fault
	slow     time.Duration
	received int
	done     int
	bad      int
	dropped  int
	conns    map[net.Conn]bool
	wg       sync.WaitGroup
}

// New creates a simulator.
func New(opt Options, log zerolog.Logger) *Sim {
	if opt.BufferSize <= 0 {
		opt.BufferSize = 64
	}
	if opt.Name == "" {
		opt.Name = "zebrasim"
	}
	return &Sim{opt: opt, log: log.With().Str("sim", opt.Name).Logger(),
		printed: make(chan Printed, 4096), queue: make(chan Printed, opt.BufferSize), wake: make(chan struct{}, 1), conns: map[net.Conn]bool{}}
}

// Listen binds the TCP port (127.0.0.1:0 picks a free one).
func (s *Sim) Listen(addr string) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s.ln = ln
	return ln.Addr(), nil
}

// Addr is the bound address.
func (s *Sim) Addr() string { return s.ln.Addr().String() }

// Printed delivers the labels the printer printed.
func (s *Sim) Printed() <-chan Printed { return s.printed }

// SetFault injects a fault (None clears).
func (s *Sim) SetFault(f Fault) {
	s.mu.Lock()
	s.fault = f
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Fault is the injected condition.
func (s *Sim) Fault() Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fault
}

// SetSlow delays every status answer.
func (s *Sim) SetSlow(d time.Duration) {
	s.mu.Lock()
	s.slow = d
	s.mu.Unlock()
}

// Counts returns formats received, labels printed, formats that did not
// parse, and labels dropped because nobody consumed Printed().
func (s *Sim) Counts() (received, printed, bad, dropped int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.received, s.done, s.bad, s.dropped
}

// DropClients closes every client connection (a network glitch).
func (s *Sim) DropClients() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}

// Serve accepts clients and prints until ctx ends.
func (s *Sim) Serve(ctx context.Context) error {
	if s.ln == nil {
		return errors.New("zebrasim: Listen first")
	}
	go func() {
		<-ctx.Done()
		s.ln.Close()
		s.DropClients()
	}()
	s.wg.Add(1)
	go s.printLoop(ctx)
	for {
		c, err := s.ln.Accept()
		if err != nil {
			s.wg.Wait()
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		s.mu.Lock()
		s.conns[c] = true
		s.mu.Unlock()
		s.wg.Add(1)
		go s.serveConn(ctx, c)
	}
}

func (s *Sim) blocked() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fault != None && s.fault != NoAnswer
}

func (s *Sim) printLoop(ctx context.Context) {
	defer s.wg.Done()
	var tick <-chan time.Time
	if s.opt.LabelsPerSecond > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) / s.opt.LabelsPerSecond))
		defer t.Stop()
		tick = t.C
	}
	for {
		if tick != nil {
			select {
			case <-ctx.Done():
				return
			case <-tick:
			}
		}
		for s.blocked() {
			select {
			case <-ctx.Done():
				return
			case <-s.wake:
			}
		}
		var p Printed
		select {
		case <-ctx.Done():
			return
		case p = <-s.queue:
		}
		// A fault that came while waiting for the format holds it too.
		for s.blocked() {
			select {
			case <-ctx.Done():
				return
			case <-s.wake:
			}
		}
		p.At = time.Now()
		s.mu.Lock()
		s.done++
		s.mu.Unlock()
		select {
		case s.printed <- p:
		default:
			s.mu.Lock()
			s.dropped++
			s.mu.Unlock()
		}
	}
}

func (s *Sim) serveConn(ctx context.Context, c net.Conn) {
	defer s.wg.Done()
	defer func() {
		c.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	p := &Parser{}
	r := bufio.NewReader(c)
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			for _, item := range p.Feed(buf[:n]) {
				s.handle(ctx, c, item)
			}
		}
		if err != nil {
			return
		}
	}
}

func (s *Sim) handle(ctx context.Context, c net.Conn, it Item) {
	switch it.Kind {
	case ItemFormat:
		s.mu.Lock()
		s.received++
		s.mu.Unlock()
		lbl, err := Decode(it.Bytes)
		if err != nil {
			s.mu.Lock()
			s.bad++
			s.mu.Unlock()
			s.log.Warn().Err(err).Msg("format does not parse: not printed")
			return
		}
		select {
		case s.queue <- lbl:
		case <-ctx.Done():
		}
	case ItemStatus, ItemHQES:
		s.mu.Lock()
		fault, slow := s.fault, s.slow
		queued := len(s.queue)
		s.mu.Unlock()
		if fault == NoAnswer {
			return
		}
		if slow > 0 {
			select {
			case <-time.After(slow):
			case <-ctx.Done():
				return
			}
		}
		var out string
		if it.Kind == ItemStatus {
			// A real printer does not answer ~HS while media or ribbon is
			// out, the head is open or it is too hot.
			if fault == PaperOut || fault == RibbonOut || fault == HeadOpen || fault == OverTemp {
				return
			}
			out = HostStatus(fault == Paused, queued, queued >= s.opt.BufferSize)
		} else {
			out = HQES(fault)
		}
		c.SetWriteDeadline(time.Now().Add(2 * time.Second))
		c.Write([]byte(out))
	}
}

// HostStatus renders a ~HS answer.
func HostStatus(paused bool, formats int, full bool) string {
	b := func(v bool) string {
		if v {
			return "1"
		}
		return "0"
	}
	return fmt.Sprintf("\x02030,0,%s,1245,%03d,%s,0,0,000,0,0,0\x03\r\n\x02001,0,0,0,1,2,6,0,00000000,1,000\x03\r\n\x021234,0\x03\r\n", b(paused), formats, b(full))
}

// HQES renders a ~HQES answer for a fault.
func HQES(f Fault) string {
	var bits uint32
	switch f {
	case PaperOut:
		bits = zebra.ErrMediaOut
	case RibbonOut:
		bits = zebra.ErrRibbonOut
	case HeadOpen:
		bits = zebra.ErrHeadOpen
	case OverTemp:
		bits = zebra.ErrHeadOverTemp
	}
	e := "0"
	if bits != 0 {
		e = "1"
	}
	return fmt.Sprintf("\x02\r\n  PRINTER STATUS\r\n   ERRORS:         %s 00000000 %08X\r\n   WARNINGS:       0 00000000 00000000\r\n\x03\r\n", e, bits)
}

// ItemKind is what the parser found in the stream.
type ItemKind int

// Items.
const (
	ItemFormat ItemKind = iota + 1 // ^XA ... ^XZ
	ItemStatus                     // ~HS
	ItemHQES                       // ~HQES
)

// Item is one complete thing from the ZPL stream.
type Item struct {
	Kind  ItemKind
	Bytes []byte
}

// Parser splits a ZPL byte stream into formats and tilde commands. It is
// incremental: Feed may receive any split of the stream. Bytes outside a
// format that are not a known tilde command are ignored, as the printer
// does; a format longer than 64 KiB is dropped.
type Parser struct {
	buf []byte
}

// Feed adds bytes and returns the complete items in the order they
// completed: a tilde command acts as soon as it arrives, even in the middle
// of a format (as on the printer).
func (p *Parser) Feed(b []byte) []Item {
	p.buf = append(p.buf, b...)
	var out []Item
	for {
		s := string(p.buf)
		tilde, tlen, tkind := -1, 0, ItemKind(0)
		if i := strings.Index(s, "~HQES"); i >= 0 {
			tilde, tlen, tkind = i, 5, ItemHQES
		}
		if i := strings.Index(s, "~HS"); i >= 0 && (tilde < 0 || i < tilde) {
			tilde, tlen, tkind = i, 3, ItemStatus
		}
		fmtEnd := -1
		xa := strings.Index(s, "^XA")
		if xa >= 0 {
			if xz := strings.Index(s[xa:], "^XZ"); xz >= 0 {
				fmtEnd = xa + xz + 3
			}
		}
		switch {
		case tilde >= 0 && (fmtEnd < 0 || tilde+tlen <= fmtEnd):
			out = append(out, Item{Kind: tkind})
			p.buf = append(p.buf[:tilde], p.buf[tilde+tlen:]...)
		case fmtEnd >= 0:
			out = append(out, Item{Kind: ItemFormat, Bytes: append([]byte(nil), p.buf[xa:fmtEnd]...)})
			p.buf = append([]byte(nil), p.buf[fmtEnd:]...)
		default:
			switch {
			case xa >= 0 && len(p.buf)-xa > 64<<10:
				p.buf = nil // a format too long to be real
			case xa > 0:
				p.buf = append([]byte(nil), p.buf[xa:]...)
			case xa < 0 && len(p.buf) > 4:
				// Keep only a tail that may start "^XA" or "~HQES".
				p.buf = append([]byte(nil), p.buf[len(p.buf)-4:]...)
			}
			return out
		}
	}
}

// Decode extracts the symbol of a format as the printer would encode it and
// returns what a scanner transmits after the symbology identifier:
//   - ^BX (quality 200) with the escape character of its 7th parameter
//     (the firmware default "~" when it is empty), field data through ^FH
//     hex escapes first if ^FH precedes ^FD, then the ^BX escape sequences
//     (zebra.DecodeDataMatrix);
//   - ^BC without mode (or mode N) with Code 128 invocation codes
//     (zebra.DecodeGS1128); mode D (the printer strips parentheses and
//     computes check digits itself) is refused: the driver never sends it.
func Decode(format []byte) (Printed, error) {
	s := string(format)
	p := Printed{ZPL: format}
	if i := strings.Index(s, "^BX"); i >= 0 {
		params, fd, err := field(s[i+3:])
		if err != nil {
			return p, fmt.Errorf("^BX: %w", err)
		}
		if len(params) < 3 || strings.TrimSpace(params[2]) != "200" {
			return p, errors.New("^BX is not quality 200 (ECC 200)")
		}
		esc := byte('~')
		if len(params) >= 7 && params[6] != "" {
			esc = params[6][0]
		}
		data, err := zebra.DecodeDataMatrix(fd, esc)
		if err != nil {
			return p, fmt.Errorf("^BX field data: %w", err)
		}
		if !strings.HasPrefix(fd, string(esc)+"1") {
			return p, errors.New("^BX field data does not start with FNC1: not GS1 DataMatrix")
		}
		p.Symbol, p.Data = "datamatrix", data
		return p, nil
	}
	if i := strings.Index(s, "^BC"); i >= 0 {
		params, fd, err := field(s[i+3:])
		if err != nil {
			return p, fmt.Errorf("^BC: %w", err)
		}
		if len(params) >= 6 && params[5] != "" && params[5] != "N" {
			return p, fmt.Errorf("^BC mode %q: the simulator decodes invocation codes without a mode only", params[5])
		}
		data, err := zebra.DecodeGS1128(fd)
		if err != nil {
			return p, fmt.Errorf("^BC field data: %w", err)
		}
		p.Symbol, p.Data = "gs1-128", data
		return p, nil
	}
	return p, errors.New("no ^BX or ^BC symbol in the format")
}

// field returns the comma parameters of a barcode command and the data of
// the next ^FD..^FS, hex-decoded if a ^FH precedes the ^FD.
func field(s string) ([]string, string, error) {
	end := strings.IndexAny(s, "^~")
	if end < 0 {
		return nil, "", errors.New("unterminated command")
	}
	params := strings.Split(s[:end], ",")
	fd := strings.Index(s, "^FD")
	if fd < 0 {
		return nil, "", errors.New("no ^FD")
	}
	fs := strings.Index(s[fd:], "^FS")
	if fs < 0 {
		return nil, "", errors.New("^FD without ^FS")
	}
	data := s[fd+3 : fd+fs]
	if h := strings.Index(s[:fd], "^FH"); h >= 0 {
		ind := byte('_')
		if h+3 < fd {
			ind = s[h+3]
		}
		var err error
		if data, err = unhex(data, ind); err != nil {
			return nil, "", fmt.Errorf("^FH: %w", err)
		}
	}
	return params, data, nil
}

// unhex applies ^FH: the indicator followed by two hex digits is that byte.
func unhex(s string, ind byte) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != ind {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("%c at the end of the field", ind)
		}
		v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", fmt.Errorf("%c%s is not a hex byte", ind, s[i+1:i+3])
		}
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), nil
}
