// Package camerasim simulates a vision reader on a real TCP socket. The
// camera "sees" units (See, fed by the printer simulator) and emits one
// result line per unit in the driver's default format for its profile:
// dataman "]d2<data>|<grade>" continuously, keyence "<data>:<grade>" or
// "ERROR" after each "LON" trigger (preceded by the command response
// "OK,LON", as the SR series answers). A keyence trigger with nothing in view
// keeps reading for Options.ReadWindow (the SR series' read time): the next
// unit seen within it is the result, else "ERROR". Outcomes are drawn from
// configured rates with a seeded generator, or forced one by one for
// scenario tests.
package camerasim

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Outcome of one read.
type Outcome int

// Outcomes.
const (
	Random    Outcome = iota // drawn from the rates
	Good                     // data as printed, grade A
	NoRead                   // the no-read string
	BadGrade                 // data as printed, grade D
	Mismatch                 // one character of the data changed
	Duplicate                // the previous unit's data again
	Garbage                  // a line that does not parse
)

// Options configure the simulator.
type Options struct {
	Name    string
	Profile string // dataman (default) or keyence
	Seed    uint64
	Rates   Rates
	Delay   time.Duration // between seeing a unit and its result line
	// ReadWindow (keyence) is how long a trigger keeps reading when no
	// unit is in view; 0 answers ERROR at once.
	ReadWindow time.Duration
}

// Rates are the probabilities of each bad outcome per unit.
type Rates struct {
	NoRead, BadGrade, Mismatch, Duplicate, Garbage float64
}

// Sim is the simulated camera.
type Sim struct {
	opt Options
	log zerolog.Logger
	ln  net.Listener

	mu      sync.Mutex
	rng     *rand.Rand
	forced  []Outcome
	prev    string
	silent  bool
	conns   map[net.Conn]bool
	pending []string  // keyence: lines waiting for a trigger
	waiters []*waiter // keyence: triggers reading, waiting for a unit
	trigs   int
	seen    int
	counts  map[Outcome]int
	lines   chan string
	wg      sync.WaitGroup
}

// New creates a simulator.
func New(opt Options, log zerolog.Logger) *Sim {
	if opt.Profile == "" {
		opt.Profile = "dataman"
	}
	if opt.Name == "" {
		opt.Name = "camerasim"
	}
	return &Sim{opt: opt, log: log.With().Str("sim", opt.Name).Logger(), rng: rand.New(rand.NewPCG(opt.Seed, opt.Seed^0x5e71a1)),
		conns: map[net.Conn]bool{}, counts: map[Outcome]int{}, lines: make(chan string, 4096)}
}

// Listen binds the TCP port.
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

// SetRates changes the outcome probabilities.
func (s *Sim) SetRates(r Rates) {
	s.mu.Lock()
	s.opt.Rates = r
	s.mu.Unlock()
}

// Rates returns the outcome probabilities.
func (s *Sim) Rates() Rates {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opt.Rates
}

// ParseOutcome parses an outcome name: good, noread, bad_grade, mismatch,
// duplicate, garbage.
func ParseOutcome(name string) (Outcome, error) {
	for o, n := range outcomeNames {
		if n == name {
			return o, nil
		}
	}
	return 0, fmt.Errorf("camera outcome %q: want good, noread, bad_grade, mismatch, duplicate or garbage", name)
}

var outcomeNames = map[Outcome]string{Good: "good", NoRead: "noread", BadGrade: "bad_grade", Mismatch: "mismatch", Duplicate: "duplicate", Garbage: "garbage"}

// Next forces the outcome of the next unit seen.
func (s *Sim) Next(o Outcome) {
	s.mu.Lock()
	s.forced = append(s.forced, o)
	s.mu.Unlock()
}

// SetDelay changes the time between seeing a unit and its result line (a
// slow reader, or a longer conveyor).
func (s *Sim) SetDelay(d time.Duration) {
	s.mu.Lock()
	s.opt.Delay = d
	s.mu.Unlock()
}

// SetSilent stops (or resumes) sending result lines: a hung camera.
func (s *Sim) SetSilent(v bool) {
	s.mu.Lock()
	s.silent = v
	s.mu.Unlock()
}

// Counts returns the units seen and how many of each outcome.
func (s *Sim) Counts() (seen int, outcomes map[Outcome]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[Outcome]int, len(s.counts))
	for k, v := range s.counts {
		m[k] = v
	}
	return s.seen, m
}

// Triggers is the number of read triggers (LON) received.
func (s *Sim) Triggers() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.trigs
}

// waiter is a keyence trigger reading within its window.
type waiter struct{ t *time.Timer }

// Clients is the number of connected clients.
func (s *Sim) Clients() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// DropClients closes every client connection.
func (s *Sim) DropClients() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}

func (s *Sim) draw() Outcome {
	if len(s.forced) > 0 {
		o := s.forced[0]
		s.forced = s.forced[1:]
		if o != Random {
			return o
		}
	}
	r := s.opt.Rates
	x := s.rng.Float64()
	switch {
	case x < r.NoRead:
		return NoRead
	case x < r.NoRead+r.BadGrade:
		return BadGrade
	case x < r.NoRead+r.BadGrade+r.Mismatch:
		return Mismatch
	case x < r.NoRead+r.BadGrade+r.Mismatch+r.Duplicate:
		return Duplicate
	case x < r.NoRead+r.BadGrade+r.Mismatch+r.Duplicate+r.Garbage:
		return Garbage
	}
	return Good
}

// Line renders the result line of an outcome for a profile.
func Line(profile string, o Outcome, data, prev string) string {
	keyence := profile == "keyence"
	grade := "A"
	switch o {
	case NoRead:
		if keyence {
			return "ERROR"
		}
		return "NoRead"
	case Garbage:
		return "\x01garbage without fields"
	case BadGrade:
		grade = "D"
	case Mismatch:
		if n := len(data); n > 0 {
			c := data[n-1]
			if c == '0' {
				c = '1'
			} else {
				c = '0'
			}
			data = data[:n-1] + string(c)
		}
	case Duplicate:
		if prev != "" {
			data = prev
		}
	}
	if keyence {
		return data + ":" + grade
	}
	return "]d2" + data + "|" + grade
}

// Challenge labels (serial prefix CHKNR / CHKBG, see edge/line) stand for
// the defaced challenge cards a plant puts on the line: the camera cannot
// read a CHKNR label and grades a CHKBG label D.
func challengeOutcome(data string) Outcome {
	i := strings.Index(data, "21CHK")
	if i < 0 || len(data) < i+7 {
		return Random
	}
	switch data[i+5 : i+7] {
	case "NR":
		return NoRead
	case "BG":
		return BadGrade
	}
	return Random
}

// See makes the camera read a unit whose printed data is data (element
// string with GS separators, no symbology identifier).
func (s *Sim) See(data string) {
	s.mu.Lock()
	o := challengeOutcome(data)
	if o == Random {
		o = s.draw()
	}
	line := Line(s.opt.Profile, o, data, s.prev)
	s.prev = data
	s.seen++
	s.counts[o]++
	silent, delay := s.silent, s.opt.Delay
	s.mu.Unlock()
	if silent {
		return
	}
	if delay > 0 {
		time.Sleep(delay) // the conveyor between printer and camera
	}
	select {
	case s.lines <- line:
	default:
		s.log.Warn().Msg("result line dropped: no client keeps up")
	}
}

// Serve accepts clients and sends result lines until ctx ends.
func (s *Sim) Serve(ctx context.Context) error {
	if s.ln == nil {
		return errors.New("camerasim: Listen first")
	}
	go func() {
		<-ctx.Done()
		s.ln.Close()
		s.DropClients()
	}()
	s.wg.Add(1)
	go s.broadcast(ctx)
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
		go s.readCommands(c)
	}
}

func (s *Sim) send(line string) {
	s.mu.Lock()
	conns := make([]net.Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	end := "\r\n"
	if s.opt.Profile == "keyence" {
		end = "\r" // the SR series' default terminator
	}
	for _, c := range conns {
		c.SetWriteDeadline(time.Now().Add(2 * time.Second))
		if _, err := fmt.Fprintf(c, "%s%s", line, end); err != nil {
			c.Close()
		}
	}
}

// broadcast sends lines to every client (dataman: at once; keyence: one
// per trigger received).
func (s *Sim) broadcast(ctx context.Context) {
	defer s.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case line := <-s.lines:
			if s.opt.Profile == "keyence" {
				s.mu.Lock()
				if len(s.waiters) > 0 {
					// A trigger is reading: this unit is its result.
					w := s.waiters[0]
					s.waiters = s.waiters[1:]
					w.t.Stop()
					s.mu.Unlock()
					s.send(line)
					continue
				}
				s.pending = append(s.pending, line)
				s.mu.Unlock()
				continue
			}
			s.send(line)
		}
	}
}

// expire ends a trigger's read window with a no-read, unless a unit came.
func (s *Sim) expire(w *waiter) {
	s.mu.Lock()
	for i, x := range s.waiters {
		if x == w {
			s.waiters = append(s.waiters[:i:i], s.waiters[i+1:]...)
			s.mu.Unlock()
			s.send("ERROR")
			return
		}
	}
	s.mu.Unlock()
}

func (s *Sim) readCommands(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		c.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\r')
		if err != nil {
			return
		}
		cmd := strings.TrimSpace(line)
		switch {
		case cmd == "LON":
			s.mu.Lock()
			s.trigs++
			var out string
			switch {
			case len(s.pending) > 0:
				out, s.pending = s.pending[0], s.pending[1:]
			case s.opt.ReadWindow > 0:
				// Nothing in view yet: read until a unit comes or the
				// window ends.
				w := &waiter{}
				w.t = time.AfterFunc(s.opt.ReadWindow, func() { s.expire(w) })
				s.waiters = append(s.waiters, w)
			default:
				out = "ERROR" // triggered with nothing in view
			}
			s.mu.Unlock()
			s.send("OK,LON") // the command response, then the read result
			if out != "" {
				s.send(out)
			}
		case cmd == "LOFF":
			s.send("OK,LOFF")
		case cmd != "" && s.opt.Profile == "keyence" && !strings.HasPrefix(cmd, "||"):
			s.send("ER," + cmd + ",00") // unknown command
		case strings.HasPrefix(cmd, "||>TRIGGER ON"):
			// DataMan in continuous mode ignores the trigger.
		}
	}
}
