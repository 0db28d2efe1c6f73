// Package videojetsim simulates Videojet coders on real TCP sockets: a
// DataFlex thermal transfer printer speaking the Text Communications
// Protocol, or a 1000 Line CIJ printer speaking WSI. Both share one state
// machine: jobs (messages) stored on the printer, the selected job and its
// variable fields, a print queue printed at a configurable rate, counters,
// and injected faults (printer fault, ribbon/ink out, offline, warnings, no
// answer, garbage bytes, slow answers, dropped links). Every printed code
// comes out of Printed(), which the line simulator hands to the camera
// simulator.
package videojetsim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/serialine/serialine/drivers/videojet"
)

// Protocol selects the wire protocol.
type Protocol int

// Protocols.
const (
	Text Protocol = iota // DataFlex thermal transfer, Text Communications Protocol
	WSI                  // 1000 Line CIJ, WSI
)

// Fault is an injected printer condition.
type Fault int

// Faults.
const (
	None          Fault = iota
	PrinterFault        // a fault that CAF clears (text) / gutter fault (WSI)
	ConsumableOut       // ribbon out (text) / ink core empty (WSI): CAF cannot clear it
	Offline             // printer taken offline (text) / jet stopped (WSI); not a fault
	Warning             // a warning: the printer keeps printing
	NoAnswer            // accepts bytes, processes and answers nothing
	Garbage             // answers every command with bytes that are no reply
)

var faultNames = map[string]Fault{"none": None, "fault": PrinterFault, "ribbon_out": ConsumableOut, "ink_empty": ConsumableOut,
	"offline": Offline, "warning": Warning, "no_answer": NoAnswer, "garbage": Garbage}

// ParseFault parses a fault name (as used by serialine-sim's API).
func ParseFault(s string) (Fault, error) {
	f, ok := faultNames[s]
	if !ok {
		return None, fmt.Errorf("printer fault %q: want none, fault, ribbon_out, ink_empty, offline, warning, no_answer or garbage", s)
	}
	return f, nil
}

// Job is a job (message) stored on the printer.
type Job struct {
	Code   string   // variable field whose data the symbol encodes
	Symbol string   // "datamatrix" (default) or "gs1-128"
	Fields []string // the other variable fields; nil accepts any name
}

// Options configure the simulator.
type Options struct {
	Name      string
	Protocol  Protocol
	Rate      float64        // prints per second; 0 = as soon as data is queued
	QueueSize int            // data updates held before printing (default 64); full → ERR / '!'
	Jobs      map[string]Job // stored jobs; default {"SERIAL": {Code: "DM"}}
	Job       string         // selected at start (default: the first by name); the printer starts Running
}

// TextOptions builds simulator options matching a thermal transfer driver's.
func TextOptions(name string, o videojet.Options, rate float64) Options {
	o.SetDefaults()
	return Options{Name: name, Protocol: Text, Rate: rate, Jobs: jobsOf(o.Jobs), Job: o.Jobs["unit"].Name}
}

// CIJOptions builds simulator options matching a CIJ driver's.
func CIJOptions(name string, o videojet.CIJOptions, rate float64) Options {
	o.SetDefaults()
	return Options{Name: name, Protocol: WSI, Rate: rate, Jobs: jobsOf(o.Messages), Job: o.Messages["unit"].Name}
}

func jobsOf(levels map[string]videojet.Job) map[string]Job {
	out := map[string]Job{}
	for level, j := range levels {
		sym := "datamatrix"
		if level != "unit" {
			sym = "gs1-128"
		}
		fields := []string{}
		for f := range j.Fields {
			fields = append(fields, f)
		}
		sort.Strings(fields)
		out[j.Name] = Job{Code: j.Code, Symbol: sym, Fields: fields}
	}
	return out
}

// Printed is one code that left the printer.
type Printed struct {
	Symbol string            // "datamatrix" or "gs1-128"
	Data   string            // as a scanner transmits it (FNC1 as GS)
	Job    string            // job/message it was printed with
	Fields map[string]string // every variable field as printed
	At     time.Time
}

type item struct {
	job    string
	fields map[string]string
}

// Sim is the simulated printer.
type Sim struct {
	opt Options
	log zerolog.Logger

	ln      net.Listener
	printed chan Printed
	queue   chan item
	wake    chan struct{}

	mu       sync.Mutex
	state    videojet.State
	fault    Fault
	slow     time.Duration
	job      string
	fields   map[string]string
	batch    uint64
	total    uint64
	pending  int // queue slots reserved, not yet committed
	head     int // 1 while the print loop holds the next print
	received int
	done     int
	refused  int
	bad      int
	dropped  int
	conns    map[*conn]bool
	wg       sync.WaitGroup
}

// conn is one client connection.
type conn struct {
	c   net.Conn
	wmu sync.Mutex
	prc bool // print-complete notifications on (guarded by Sim.mu)
}

func (c *conn) write(b []byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.c.SetWriteDeadline(time.Now().Add(2 * time.Second))
	c.c.Write(b)
}

// New creates a simulator.
func New(opt Options, log zerolog.Logger) *Sim {
	if opt.QueueSize <= 0 {
		opt.QueueSize = 64
	}
	if opt.Name == "" {
		opt.Name = "videojetsim"
	}
	if len(opt.Jobs) == 0 {
		opt.Jobs = map[string]Job{"SERIAL": {Code: "DM"}}
	}
	if _, ok := opt.Jobs[opt.Job]; !ok {
		names := make([]string, 0, len(opt.Jobs))
		for n := range opt.Jobs {
			names = append(names, n)
		}
		sort.Strings(names)
		opt.Job = names[0]
	}
	return &Sim{opt: opt, log: log.With().Str("sim", opt.Name).Logger(),
		printed: make(chan Printed, 4096), queue: make(chan item, opt.QueueSize), wake: make(chan struct{}, 1),
		state: videojet.StateRunning, job: opt.Job, fields: map[string]string{}, conns: map[*conn]bool{}}
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

// Printed delivers the codes the printer printed.
func (s *Sim) Printed() <-chan Printed { return s.printed }

// SetFault injects a fault. None (and Warning) put the printer back to
// Running (an operator fixed it and restarted); Offline takes it offline;
// NoAnswer and Garbage change how it answers, not its state.
func (s *Sim) SetFault(f Fault) {
	s.mu.Lock()
	switch f {
	case None, Warning:
		s.fault = f
		s.state = videojet.StateRunning
		if s.job == "" {
			s.state = videojet.StateOffline
		}
	case Offline:
		s.fault = None
		s.state = videojet.StateOffline
	case PrinterFault, ConsumableOut:
		s.fault = f
		s.state = videojet.StateOffline
	default:
		s.fault = f
	}
	s.mu.Unlock()
	s.kick()
}

func (s *Sim) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// SetSlow delays every answer.
func (s *Sim) SetSlow(d time.Duration) {
	s.mu.Lock()
	s.slow = d
	s.mu.Unlock()
}

// State returns the overall state, the selected job and a copy of its fields.
func (s *Sim) State() (videojet.State, string, map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := make(map[string]string, len(s.fields))
	for k, v := range s.fields {
		f[k] = v
	}
	return s.state, s.job, f
}

// Counts returns commands received, codes printed, commands refused (ERR,
// '!'), commands that did not parse, and prints dropped because nobody
// consumed Printed().
func (s *Sim) Counts() (received, printed, refused, bad, dropped int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.received, s.done, s.refused, s.bad, s.dropped
}

// Queued is the number of updates waiting to be printed.
func (s *Sim) Queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queuedLocked()
}

func (s *Sim) queuedLocked() int { return len(s.queue) + s.pending + s.head }

// DropClients closes every client connection (a network glitch).
func (s *Sim) DropClients() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.c.Close()
	}
}

// Serve accepts clients and prints until ctx ends.
func (s *Sim) Serve(ctx context.Context) error {
	if s.ln == nil {
		return errors.New("videojetsim: Listen first")
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
		cc := &conn{c: c}
		s.mu.Lock()
		s.conns[cc] = true
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				c.Close()
				s.mu.Lock()
				delete(s.conns, cc)
				s.mu.Unlock()
			}()
			if s.opt.Protocol == WSI {
				s.serveWSI(ctx, cc)
			} else {
				s.serveText(ctx, cc)
			}
		}()
	}
}

// blocked reports whether the printer holds its queue: not Running, or a
// fault that stops printing.
func (s *Sim) blocked() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state != videojet.StateRunning || s.fault == PrinterFault || s.fault == ConsumableOut
}

func (s *Sim) printLoop(ctx context.Context) {
	defer s.wg.Done()
	var tick <-chan time.Time
	if s.opt.Rate > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) / s.opt.Rate))
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
		var it item
		select {
		case <-ctx.Done():
			return
		case it = <-s.queue:
		}
		// The next print is at the head: it waits while the printer cannot
		// print, and still takes its place in the queue.
		s.mu.Lock()
		s.head = 1
		s.mu.Unlock()
		for s.blocked() {
			select {
			case <-ctx.Done():
				return
			case <-s.wake:
			}
		}
		s.print(it)
	}
}

func (s *Sim) print(it item) {
	job := s.opt.Jobs[it.job]
	p := Printed{Symbol: job.Symbol, Job: it.job, Fields: it.fields, At: time.Now()}
	if p.Symbol == "" {
		p.Symbol = "datamatrix"
	}
	raw := it.fields[job.Code]
	data, err := videojet.DecodeSymbolData(raw)
	if err != nil {
		s.log.Warn().Err(err).Str("data", raw).Msg("code field does not parse as bracketed GS1 data: printed as is")
		data = raw
	}
	p.Data = data
	s.mu.Lock()
	s.head = 0
	s.done++
	s.batch++
	s.total++
	var notify []*conn
	for c := range s.conns {
		if c.prc {
			notify = append(notify, c)
		}
	}
	s.mu.Unlock()
	select {
	case s.printed <- p:
	default:
		s.mu.Lock()
		s.dropped++
		s.mu.Unlock()
	}
	for _, c := range notify {
		c.write([]byte("PRC\r"))
	}
}

// reserveLocked reserves a queue slot for one print of the current data
// and returns it; nil when the queue is full. The printer acknowledges
// before it prints: commit the item after the reply is written.
func (s *Sim) reserveLocked() *item {
	if s.queuedLocked() >= cap(s.queue) {
		return nil
	}
	s.pending++
	f := make(map[string]string, len(s.fields))
	for k, v := range s.fields {
		f[k] = v
	}
	return &item{job: s.job, fields: f}
}

// commit queues a reserved print (never blocks: the slot is reserved).
func (s *Sim) commit(it *item) {
	if it == nil {
		return
	}
	s.queue <- *it
	s.mu.Lock()
	s.pending--
	s.mu.Unlock()
}

// knownField reports whether the selected job has this variable field.
func (s *Sim) knownField(name string) bool {
	j := s.opt.Jobs[s.job]
	if name == j.Code || j.Fields == nil {
		return true
	}
	for _, f := range j.Fields {
		if f == name {
			return true
		}
	}
	return false
}

// answerMode returns how to answer now: silently, with garbage, after a delay.
func (s *Sim) answerMode() (Fault, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fault, s.slow
}

func (s *Sim) wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
