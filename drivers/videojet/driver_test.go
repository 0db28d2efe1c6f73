package videojet_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/serialine/serialine/drivers"
	"github.com/serialine/serialine/drivers/videojet"
	"github.com/serialine/serialine/drivers/videojet/videojetsim"
	"github.com/serialine/serialine/sync/gs1"
)

func unitLabel(serial string) drivers.Label {
	return drivers.Label{ID: serial, Level: drivers.LevelUnit,
		Data: gs1.Elements{{AI: "01", Value: "09506000134352"}, {AI: "17", Value: "281130"}, {AI: "10", Value: "L1"}, {AI: "21", Value: serial}},
		Text: map[string]string{"GTIN": "09506000134352", "SN": serial, "LOT": "L1", "EXP": "281130", "PRODUCT": "Tablets"}}
}

func startSimOpts(t testing.TB, opt videojetsim.Options) *videojetsim.Sim {
	t.Helper()
	sim := videojetsim.New(opt, zerolog.Nop())
	if _, err := sim.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { sim.Serve(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return sim
}

func startSim(t testing.TB, wsi bool, rate float64) *videojetsim.Sim {
	t.Helper()
	if wsi {
		return startSimOpts(t, videojetsim.CIJOptions("sim", videojet.CIJOptions{}, rate))
	}
	return startSimOpts(t, videojetsim.TextOptions("sim", videojet.Options{}, rate))
}

func driver(t testing.TB, wsi bool, addr string, timeout time.Duration) drivers.Printer {
	t.Helper()
	var p drivers.Printer
	var err error
	if wsi {
		p, err = videojet.NewCIJ("printer-1", addr, timeout, videojet.CIJOptions{}, zerolog.Nop())
	} else {
		p, err = videojet.New("printer-1", addr, timeout, videojet.Options{}, zerolog.Nop())
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func protocols(t *testing.T, f func(t *testing.T, wsi bool)) {
	for _, wsi := range []bool{false, true} {
		t.Run(dir(wsi), func(t *testing.T) { f(t, wsi) })
	}
}

func nextPrinted(t *testing.T, sim *videojetsim.Sim) videojetsim.Printed {
	t.Helper()
	select {
	case p := <-sim.Printed():
		return p
	case <-time.After(5 * time.Second):
		t.Fatal("nothing printed")
	}
	return videojetsim.Printed{}
}

// Every label is printed with its own final data; the code reaches the
// camera as a scanner transmits it; human-readable fields follow.
func TestPrintAgainstSim(t *testing.T) {
	protocols(t, func(t *testing.T, wsi bool) {
		sim := startSim(t, wsi, 0)
		p := driver(t, wsi, sim.Addr(), time.Second)
		ctx := context.Background()
		if err := p.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		for _, sn := range []string{"S1", "S2", "S3"} {
			l := unitLabel(sn)
			if err := p.Print(ctx, l); err != nil {
				t.Fatal(err)
			}
			got := nextPrinted(t, sim)
			if got.Symbol != "datamatrix" || got.Data != l.Data.ElementString() || got.Fields["SN"] != sn || got.Fields["LOT"] != "L1" || got.Job != "SERIAL" {
				t.Fatalf("printed %+v", got)
			}
		}
		h, err := p.Status(ctx)
		if err != nil || !h.OK() {
			t.Fatalf("status %+v %v", h, err)
		}
		_, printed, refused, bad, _ := sim.Counts()
		if printed != 3 || refused != 0 || bad != 0 {
			t.Fatalf("sim counts printed %d refused %d bad %d", printed, refused, bad)
		}
	})
}

func TestBracketedFNC1(t *testing.T) {
	sim := startSim(t, false, 0)
	d, err := videojet.New("p", sim.Addr(), time.Second, videojet.Options{FNC1: videojet.FNC1Brackets}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	l := unitLabel("B1")
	if err := d.Print(context.Background(), l); err != nil {
		t.Fatal(err)
	}
	got := nextPrinted(t, sim)
	if got.Fields["DM"] != "(01)09506000134352(17)281130(10)L1(21)B1" || got.Data != l.Data.ElementString() {
		t.Fatalf("printed %+v", got)
	}
	bad := unitLabel("B(2)")
	err = d.Print(context.Background(), bad)
	var de *drivers.DeviceError
	if !errors.As(err, &de) || !strings.Contains(err.Error(), "label B(2)") {
		t.Fatalf("parenthesis in bracketed data: %v", err)
	}
}

// A label that cannot be sent faithfully is refused before anything is sent.
func TestLabelRefused(t *testing.T) {
	protocols(t, func(t *testing.T, wsi bool) {
		sim := startSim(t, wsi, 0)
		p := driver(t, wsi, sim.Addr(), time.Second)
		noText := unitLabel("N1")
		delete(noText.Text, "LOT")
		pipe := unitLabel("N2")
		pipe.Text["LOT"] = "L|1"
		nl := unitLabel("N3")
		nl.Text["LOT"] = "L\n1"
		caseLabel := drivers.Label{ID: "C1", Level: drivers.LevelCase, Data: gs1.Elements{{AI: "00", Value: "395060000000000016"}}}
		labels := []drivers.Label{noText, nl, caseLabel, {ID: "E1", Level: drivers.LevelUnit}}
		if !wsi {
			labels = append(labels, pipe) // '|' ends a text protocol field; WSI carries it
		}
		for _, l := range labels {
			err := p.Print(context.Background(), l)
			var de *drivers.DeviceError
			if !errors.As(err, &de) || de.Device != "printer-1" || !strings.Contains(de.Field, l.ID) {
				t.Errorf("label %s: %v", l.ID, err)
			}
		}
		if rec, _, _, _, _ := sim.Counts(); rec != 0 {
			t.Fatalf("%d commands reached the printer", rec)
		}
	})
}

// The link drops: the driver says ErrNotConnected or reconnects before
// sending, never resends a command the printer may have had.
func TestReconnect(t *testing.T) {
	protocols(t, func(t *testing.T, wsi bool) {
		sim := startSim(t, wsi, 0)
		p := driver(t, wsi, sim.Addr(), time.Second)
		ctx := context.Background()
		if err := p.Print(ctx, unitLabel("R1")); err != nil {
			t.Fatal(err)
		}
		nextPrinted(t, sim)
		sim.DropClients()
		// The reader sees the close: the next label goes on a new link.
		deadline := time.Now().Add(5 * time.Second)
		for {
			err := p.Print(ctx, unitLabel("R2"))
			if err == nil {
				break
			}
			if !errors.Is(err, drivers.ErrNotConnected) {
				t.Fatalf("after drop: %v", err)
			}
			if time.Now().After(deadline) {
				t.Fatal("never reconnected")
			}
		}
		if got := nextPrinted(t, sim); got.Fields["SN"] != "R2" {
			t.Fatalf("printed %+v", got)
		}
		if h, err := p.Status(ctx); err != nil || !h.OK() {
			t.Fatalf("status %+v %v", h, err)
		}
	})
}

// The link drops between a command and its reply: ErrNotConnected, and the
// command is not sent again.
func TestLinkLostAwaitingReply(t *testing.T) {
	protocols(t, func(t *testing.T, wsi bool) {
		// A printer that reads one command and hangs up.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		got := make(chan []byte, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			var all []byte
			buf := make([]byte, 512)
			for {
				n, err := c.Read(buf)
				all = append(all, buf[:n]...)
				if strings.Contains(strings.TrimPrefix(string(all), "\r"), "\r") || strings.Contains(string(all), "\x03") || err != nil {
					got <- all
					return
				}
			}
		}()
		p := driver(t, wsi, ln.Addr().String(), 3*time.Second)
		start := time.Now()
		_, err = p.Status(context.Background())
		if !errors.Is(err, drivers.ErrNotConnected) || time.Since(start) > 2*time.Second {
			t.Fatalf("link lost while waiting: %v after %v", err, time.Since(start))
		}
		if sent := <-got; len(sent) == 0 {
			t.Fatal("nothing sent")
		}
	})
}

// A silent printer: every call returns ErrTimeout within the timeout.
func TestSilentPrinterTimesOut(t *testing.T) {
	protocols(t, func(t *testing.T, wsi bool) {
		sim := startSim(t, wsi, 0)
		p := driver(t, wsi, sim.Addr(), 200*time.Millisecond)
		sim.SetFault(videojetsim.NoAnswer)
		ctx := context.Background()
		for i := 0; i < 2; i++ {
			start := time.Now()
			err := p.Print(ctx, unitLabel("T1"))
			if !errors.Is(err, drivers.ErrTimeout) || time.Since(start) > time.Second {
				t.Fatalf("print to a silent printer: %v after %v", err, time.Since(start))
			}
			h, err := p.Status(ctx)
			if !errors.Is(err, drivers.ErrTimeout) || h.Fault != "no_answer" {
				t.Fatalf("status of a silent printer: %+v %v", h, err)
			}
		}
		// A context deadline shorter than the timeout wins.
		ctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		if _, err := p.Status(ctx); err == nil || time.Since(start) > 150*time.Millisecond {
			t.Fatalf("context deadline: %v after %v", err, time.Since(start))
		}
		sim.SetFault(videojetsim.None)
		if h, err := p.Status(context.Background()); err != nil || !h.OK() {
			t.Fatalf("after the printer answers again: %+v %v", h, err)
		}
	})
}

func TestSlowAnswers(t *testing.T) {
	protocols(t, func(t *testing.T, wsi bool) {
		sim := startSim(t, wsi, 0)
		p := driver(t, wsi, sim.Addr(), 300*time.Millisecond)
		sim.SetSlow(20 * time.Millisecond)
		if err := p.Print(context.Background(), unitLabel("W1")); err != nil {
			t.Fatalf("slow but in time: %v", err)
		}
		sim.SetSlow(time.Second)
		if _, err := p.Status(context.Background()); !errors.Is(err, drivers.ErrTimeout) {
			t.Fatalf("slower than the timeout: %v", err)
		}
		sim.SetSlow(0)
		if _, err := p.Status(context.Background()); err != nil {
			t.Fatalf("a late answer must not be read as the next one: %v", err)
		}
	})
}

// Garbage from the printer: ErrMalformed naming the device, with at most
// 256 of the bytes; the next call works on a fresh link.
func TestGarbageIsMalformed(t *testing.T) {
	protocols(t, func(t *testing.T, wsi bool) {
		sim := startSim(t, wsi, 0)
		p := driver(t, wsi, sim.Addr(), time.Second)
		sim.SetFault(videojetsim.Garbage)
		for _, call := range []func() error{
			func() error { return p.Print(context.Background(), unitLabel("G1")) },
			func() error { _, err := p.Status(context.Background()); return err },
		} {
			err := call()
			var de *drivers.DeviceError
			if !errors.Is(err, drivers.ErrMalformed) || !errors.As(err, &de) || de.Device != "printer-1" || len(de.Raw) == 0 || len(de.Raw) > 256 {
				t.Fatalf("garbage: %v", err)
			}
			// Text lines arrive whole; WSI bytes may be cut anywhere.
			if (!wsi && !strings.Contains(string(de.Raw), "GARBAGE")) || (wsi && de.Raw[0] != '#') {
				t.Fatalf("garbage bytes kept: %q", de.Raw)
			}
		}
		if h := p.(drivers.HealthReporter).Health(); h.Fault != "malformed_reply" {
			t.Fatalf("health after garbage: %+v", h)
		}
		sim.SetFault(videojetsim.None)
		if err := p.Print(context.Background(), unitLabel("G2")); err != nil {
			t.Fatal(err)
		}
		if got := nextPrinted(t, sim); got.Fields["SN"] != "G2" {
			t.Fatalf("printed %+v", got)
		}
	})
}

// Device faults: the state reports them; labels are held, not lost.
func TestFaultHoldsLabels(t *testing.T) {
	protocols(t, func(t *testing.T, wsi bool) {
		sim := startSim(t, wsi, 0)
		p := driver(t, wsi, sim.Addr(), time.Second)
		ctx := context.Background()
		sim.SetFault(videojetsim.ConsumableOut)
		h, err := p.Status(ctx)
		if !errors.Is(err, drivers.ErrDeviceFault) || !h.Connected || h.Fault == "" {
			t.Fatalf("status with the consumable out: %+v %v", h, err)
		}
		if err := p.Print(ctx, unitLabel("H1")); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-sim.Printed():
			t.Fatalf("printed while faulted: %+v", got)
		case <-time.After(100 * time.Millisecond):
		}
		sim.SetFault(videojetsim.None)
		if got := nextPrinted(t, sim); got.Fields["SN"] != "H1" {
			t.Fatalf("printed %+v", got)
		}
	})
}

// ERR / '!': the printer refuses; a device fault naming the command.
func TestRefusal(t *testing.T) {
	protocols(t, func(t *testing.T, wsi bool) {
		sim := startSimOpts(t, videojetsim.Options{Protocol: map[bool]videojetsim.Protocol{false: videojetsim.Text, true: videojetsim.WSI}[wsi],
			Jobs: map[string]videojetsim.Job{"OTHER": {Code: "DM"}}})
		p := driver(t, wsi, sim.Addr(), time.Second)
		err := p.Print(context.Background(), unitLabel("X1"))
		var de *drivers.DeviceError
		if !errors.Is(err, drivers.ErrDeviceFault) || !errors.As(err, &de) || !strings.Contains(de.Field, "SERIAL") {
			t.Fatalf("unknown job: %v", err)
		}
	})
}

// The job is selected once per connection; a job changed at the printer is
// selected again.
func TestJobSelectedOnce(t *testing.T) {
	sim := startSimOpts(t, videojetsim.Options{Jobs: map[string]videojetsim.Job{"SERIAL": {Code: "DM"}, "OTHER": {Code: "DM"}}, Job: "OTHER"})
	rec := newRecorder(t, sim.Addr())
	p := driver(t, false, rec.ln.Addr().String(), time.Second)
	ctx := context.Background()
	for _, sn := range []string{"J1", "J2"} {
		if err := p.Print(ctx, unitLabel(sn)); err != nil {
			t.Fatal(err)
		}
		nextPrinted(t, sim)
	}
	// An operator selects another job at the printer.
	c, err := net.Dial("tcp", sim.Addr())
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("SLA|OTHER|\r"))
	buf := make([]byte, 4)
	c.Read(buf)
	c.Close()
	if _, err := p.Status(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Print(ctx, unitLabel("J3")); err != nil {
		t.Fatal(err)
	}
	if got := nextPrinted(t, sim); got.Job != "SERIAL" || got.Fields["SN"] != "J3" {
		t.Fatalf("printed %+v", got)
	}
	var cmds []string
	for _, m := range rec.messages(t, false) {
		if m.out && len(m.b) > 3 {
			cmds = append(cmds, string(m.b[:3]))
		}
	}
	if got := strings.Join(cmds, " "); got != "SNO SLA JDA GST SLA" {
		t.Fatalf("commands %s", got)
	}
}

func TestConnectRefusedAndClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	protocols(t, func(t *testing.T, wsi bool) {
		p := driver(t, wsi, addr, time.Second)
		err := p.Connect(context.Background())
		if !errors.Is(err, drivers.ErrNotConnected) || !strings.Contains(err.Error(), "printer-1") {
			t.Fatalf("connect to a closed port: %v", err)
		}
		if err := p.Print(context.Background(), unitLabel("C1")); !errors.Is(err, drivers.ErrNotConnected) {
			t.Fatalf("print without a printer: %v", err)
		}
		if h, err := p.Status(context.Background()); !errors.Is(err, drivers.ErrNotConnected) || h.Connected || h.Fault != "disconnected" {
			t.Fatalf("status without a printer: %+v %v", h, err)
		}
		if err := p.Close(); err != nil || p.Close() != nil {
			t.Fatal("close twice")
		}
	})
}

func TestNewRejectsBadOptions(t *testing.T) {
	if _, err := videojet.New("p", "h:1", 0, videojet.Options{FNC1: "x"}, zerolog.Nop()); err == nil || !strings.Contains(err.Error(), "printer p: fnc1") {
		t.Fatalf("text: %v", err)
	}
	if _, err := videojet.NewCIJ("p", "h:1", 0, videojet.CIJOptions{CounterSelector: "1"}, zerolog.Nop()); err == nil || !strings.Contains(err.Error(), "counter_selector") {
		t.Fatalf("cij: %v", err)
	}
}

// A printer without notifications (protocol before version 6) answers SNO
// with ERR: the driver prints without them.
func TestNoNotifications(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		var sp videojetsim.LineSplitter
		buf := make([]byte, 512)
		for {
			n, err := c.Read(buf)
			sp.Feed(buf[:n], func(line []byte, _ bool) {
				switch {
				case len(line) == 0:
				case strings.HasPrefix(string(line), "SNO"):
					c.Write([]byte("ERR\r"))
				default:
					c.Write([]byte("ACK\r"))
				}
			})
			if err != nil {
				return
			}
		}
	}()
	p := driver(t, false, ln.Addr().String(), time.Second)
	if err := p.Print(context.Background(), unitLabel("V1")); err != nil {
		t.Fatal(err)
	}
	if err := p.Print(context.Background(), unitLabel("V2")); err != nil {
		t.Fatal(err)
	}
}
