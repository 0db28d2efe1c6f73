package videojet_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/serialine/serialine/drivers"
	"github.com/serialine/serialine/drivers/videojet"
	"github.com/serialine/serialine/drivers/videojet/videojetsim"
)

var update = flag.Bool("update", false, "rewrite the golden transcripts from the simulator")

// A transcript is a captured request/reply stream: "> " lines are bytes the
// driver sent, "< " lines bytes the printer sent, each Go-quoted.
type transcript struct {
	name string
	msgs []msg
}

type msg struct {
	out bool
	b   []byte
}

func loadTranscripts(tb testing.TB, dir string) []transcript {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", dir, "*.golden"))
	if err != nil || len(files) == 0 {
		tb.Fatalf("no transcripts in testdata/%s: %v", dir, err)
	}
	var out []transcript
	for _, f := range files {
		out = append(out, readTranscript(tb, f))
	}
	return out
}

func readTranscript(tb testing.TB, file string) transcript {
	tb.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		tb.Fatal(err)
	}
	tr := transcript{name: strings.TrimSuffix(filepath.Base(file), ".golden")}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if len(line) < 3 || (line[0] != '>' && line[0] != '<') || line[1] != ' ' {
			tb.Fatalf("%s:%d: want '> \"...\"' or '< \"...\"'", file, n)
		}
		b, err := strconv.Unquote(line[2:])
		if err != nil {
			tb.Fatalf("%s:%d: %v", file, n, err)
		}
		tr.msgs = append(tr.msgs, msg{out: line[0] == '>', b: []byte(b)})
	}
	return tr
}

func (tr transcript) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Captured from videojetsim by TestTranscripts (go test -update rewrites it).\n# > bytes the driver sent, < bytes the printer sent.\n")
	for _, m := range tr.msgs {
		d := "<"
		if m.out {
			d = ">"
		}
		fmt.Fprintf(&b, "%s %s\n", d, strconv.Quote(string(m.b)))
	}
	return b.String()
}

// recorder is a TCP proxy in front of a simulator that logs both directions
// in causal order (a chunk is logged before it is forwarded).
type recorder struct {
	ln    net.Listener
	mu    sync.Mutex
	log   []msg
	wg    sync.WaitGroup
	conns []net.Conn
}

func newRecorder(t *testing.T, target string) *recorder {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{ln: ln}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			r.mu.Lock()
			r.conns = append(r.conns, c, s)
			r.mu.Unlock()
			r.wg.Add(2)
			go r.pipe(c, s, true)
			go r.pipe(s, c, false)
		}
	}()
	t.Cleanup(r.close)
	return r
}

func (r *recorder) pipe(from, to net.Conn, out bool) {
	defer r.wg.Done()
	b := make([]byte, 4096)
	for {
		n, err := from.Read(b)
		if n > 0 {
			r.mu.Lock()
			r.log = append(r.log, msg{out: out, b: append([]byte(nil), b[:n]...)})
			r.mu.Unlock()
			to.Write(b[:n])
		}
		if err != nil {
			to.Close()
			return
		}
	}
}

func (r *recorder) close() {
	r.ln.Close()
	r.mu.Lock()
	for _, c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// messages merges the chunks by direction and cuts them into protocol
// messages: text lines end with CR; WSI packets end with ETX, replies are
// cut by the reply decoder.
func (r *recorder) messages(t *testing.T, wsi bool) []msg {
	r.mu.Lock()
	defer r.mu.Unlock()
	var merged []msg
	for _, m := range r.log {
		if n := len(merged); n > 0 && merged[n-1].out == m.out {
			merged[n-1].b = append(merged[n-1].b, m.b...)
			continue
		}
		merged = append(merged, msg{out: m.out, b: append([]byte(nil), m.b...)})
	}
	var out []msg
	for _, m := range merged {
		b := m.b
		for len(b) > 0 {
			var n int
			switch {
			case !wsi:
				n = bytes.IndexByte(b, '\r') + 1
			case m.out:
				n = bytes.IndexByte(b, videojet.ETX) + 1
			default:
				_, used, err := videojet.DecodeWSIReply(b)
				if err != nil {
					t.Fatalf("recorded reply %q: %v", b, err)
				}
				n = used
			}
			if n <= 0 {
				n = len(b)
			}
			out = append(out, msg{out: m.out, b: b[:n]})
			b = b[n:]
		}
	}
	return out
}

// replayer plays a transcript as the printer: it reads exactly what the
// driver must send and answers with the captured bytes.
type replayer struct {
	ln   net.Listener
	errs chan error
	done chan struct{}
}

func newReplayer(t *testing.T, tr transcript) *replayer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &replayer{ln: ln, errs: make(chan error, 1), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		c, err := ln.Accept()
		if err != nil {
			p.errs <- err
			return
		}
		defer c.Close()
		for i, m := range tr.msgs {
			if !m.out {
				if _, err := c.Write(m.b); err != nil {
					p.errs <- fmt.Errorf("message %d: %v", i+1, err)
					return
				}
				continue
			}
			got := make([]byte, len(m.b))
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, m.b) {
				p.errs <- fmt.Errorf("message %d: driver sent %q (%v), transcript says %q", i+1, got, err, m.b)
				return
			}
		}
		p.errs <- nil
		// Stay connected until the driver closes.
		c.SetReadDeadline(time.Time{})
		io.Copy(io.Discard, c)
	}()
	t.Cleanup(func() { ln.Close() })
	return p
}

// env is what a scenario may do besides driving the printer.
type env interface {
	setFault(videojetsim.Fault) // the simulator's; nothing on replay
	waitPrinted(t *testing.T)   // until the printer printed the last label
}

type simEnv struct {
	sim *videojetsim.Sim
	tto *videojet.Videojet
}

func (e simEnv) setFault(f videojetsim.Fault) { e.sim.SetFault(f) }
func (e simEnv) waitPrinted(t *testing.T) {
	t.Helper()
	select {
	case <-e.sim.Printed():
	case <-time.After(5 * time.Second):
		t.Fatal("nothing printed")
	}
	if e.tto != nil {
		waitPRC(t, e.tto)
	}
}

type replayEnv struct{ tto *videojet.Videojet }

func (replayEnv) setFault(videojetsim.Fault) {}
func (e replayEnv) waitPrinted(t *testing.T) {
	t.Helper()
	if e.tto != nil {
		waitPRC(t, e.tto)
	}
}

func waitPRC(t *testing.T, d *videojet.Videojet) {
	t.Helper()
	select {
	case <-d.PrintCompleted():
	case <-time.After(5 * time.Second):
		t.Fatal("no print-complete notification")
	}
}

type scenario struct {
	name string
	wsi  bool
	run  func(t *testing.T, p drivers.Printer, e env)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantFault(t *testing.T, p drivers.Printer, fault string, sentinel error) {
	t.Helper()
	h, err := p.Status(context.Background())
	if h.Fault != fault || (sentinel == nil) != (err == nil) || (sentinel != nil && !errors.Is(err, sentinel)) {
		t.Fatalf("status: health %+v err %v, want fault %q (%v)", h, err, fault, sentinel)
	}
}

var scenarios = []scenario{
	{"print", false, func(t *testing.T, p drivers.Printer, e env) {
		ctx := context.Background()
		d := p.(*videojet.Videojet)
		must(t, d.Connect(ctx))
		must(t, d.Print(ctx, unitLabel("S1")))
		e.waitPrinted(t)
		must(t, d.Print(ctx, unitLabel("S2")))
		e.waitPrinted(t)
		wantFault(t, d, "", nil)
		must(t, d.ClearFaults(ctx))
		if n := d.PrintsConfirmed(); n != 2 {
			t.Fatalf("%d prints confirmed, want 2", n)
		}
	}},
	{"fault", false, func(t *testing.T, p drivers.Printer, e env) {
		ctx := context.Background()
		d := p.(*videojet.Videojet)
		e.setFault(videojetsim.PrinterFault)
		wantFault(t, d, "fault", drivers.ErrDeviceFault)
		// Held while faulted: the printer takes the data, prints later.
		must(t, d.Print(ctx, unitLabel("F1")))
		must(t, d.ClearFaults(ctx))
		wantFault(t, d, "offline", drivers.ErrDeviceFault)
		must(t, d.Start(ctx))
		e.waitPrinted(t)
		wantFault(t, d, "", nil)
	}},
	{"ribbon", false, func(t *testing.T, p drivers.Printer, e env) {
		ctx := context.Background()
		d := p.(*videojet.Videojet)
		e.setFault(videojetsim.ConsumableOut)
		wantFault(t, d, "fault", drivers.ErrDeviceFault)
		if err := d.ClearFaults(ctx); !errors.Is(err, drivers.ErrDeviceFault) {
			t.Fatalf("CAF with the ribbon out: %v", err)
		}
		if err := d.Start(ctx); !errors.Is(err, drivers.ErrDeviceFault) {
			t.Fatalf("SST|3| with the ribbon out: %v", err)
		}
	}},
	{"print", true, func(t *testing.T, p drivers.Printer, e env) {
		ctx := context.Background()
		c := p.(*videojet.CIJ)
		must(t, c.Connect(ctx))
		must(t, c.Print(ctx, unitLabel("S1")))
		e.waitPrinted(t)
		must(t, c.Print(ctx, unitLabel("S2")))
		e.waitPrinted(t)
		wantFault(t, c, "", nil)
		n, err := c.PrintCount(ctx)
		if err != nil || n != 2 {
			t.Fatalf("print counter %d %v, want 2", n, err)
		}
		m, err := c.CurrentMessage(ctx)
		if err != nil || m != "SERIAL" {
			t.Fatalf("current message %q %v", m, err)
		}
	}},
	{"fault", true, func(t *testing.T, p drivers.Printer, e env) {
		ctx := context.Background()
		c := p.(*videojet.CIJ)
		e.setFault(videojetsim.ConsumableOut)
		wantFault(t, c, "ink_core_empty", drivers.ErrDeviceFault)
		e.setFault(videojetsim.Offline)
		wantFault(t, c, "not_ready", drivers.ErrDeviceFault)
		e.setFault(videojetsim.Warning)
		wantFault(t, c, "", nil)
		must(t, c.Print(ctx, unitLabel("W1")))
		e.waitPrinted(t)
	}},
}

func dir(wsi bool) string {
	if wsi {
		return "wsi"
	}
	return "text"
}

func newPrinter(t *testing.T, wsi bool, addr string) drivers.Printer {
	t.Helper()
	var p drivers.Printer
	var err error
	if wsi {
		p, err = videojet.NewCIJ("printer-1", addr, 2*time.Second, videojet.CIJOptions{}, zerolog.Nop())
	} else {
		p, err = videojet.New("printer-1", addr, 2*time.Second, videojet.Options{}, zerolog.Nop())
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// TestTranscripts runs every scenario twice: against the simulator through
// a recording proxy (the stream must equal the golden transcript), and
// against the golden transcript played back (the driver must send exactly
// those bytes and draw the same conclusions from the captured replies).
func TestTranscripts(t *testing.T) {
	for _, sc := range scenarios {
		file := filepath.Join("testdata", dir(sc.wsi), sc.name+".golden")
		t.Run(dir(sc.wsi)+"/"+sc.name+"/simulator", func(t *testing.T) {
			sim := startSim(t, sc.wsi, 0)
			rec := newRecorder(t, sim.Addr())
			p := newPrinter(t, sc.wsi, rec.ln.Addr().String())
			e := simEnv{sim: sim}
			if !sc.wsi {
				e.tto = p.(*videojet.Videojet)
			}
			sc.run(t, p, e)
			p.Close()
			got := transcript{msgs: rec.messages(t, sc.wsi)}
			if *update {
				must(t, os.MkdirAll(filepath.Dir(file), 0o755))
				must(t, os.WriteFile(file, []byte(got.String()), 0o644))
			}
			want := readTranscript(t, file)
			if got.String() != want.String() {
				t.Fatalf("stream differs from %s (go test -update rewrites it):\n%s", file, got)
			}
		})
		t.Run(dir(sc.wsi)+"/"+sc.name+"/replay", func(t *testing.T) {
			tr := readTranscript(t, file)
			rp := newReplayer(t, tr)
			p := newPrinter(t, sc.wsi, rp.ln.Addr().String())
			e := replayEnv{}
			if !sc.wsi {
				e.tto = p.(*videojet.Videojet)
			}
			sc.run(t, p, e)
			select {
			case err := <-rp.errs:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("transcript not played to the end")
			}
		})
	}
}
