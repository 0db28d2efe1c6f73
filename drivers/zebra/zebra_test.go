package zebra_test

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"gopkg.in/yaml.v3"

	"github.com/serialine/serialine/drivers"
	"github.com/serialine/serialine/drivers/zebra"
	"github.com/serialine/serialine/drivers/zebra/zebrasim"
	"github.com/serialine/serialine/sync/gs1"
)

var update = flag.Bool("update", false, "rewrite golden files")

func unitLabel(serial string) drivers.Label {
	return drivers.Label{ID: serial, Level: drivers.LevelUnit,
		Data: gs1.Elements{{AI: "01", Value: "09506000134352"}, {AI: "17", Value: "281130"}, {AI: "10", Value: "L_1>"}, {AI: "21", Value: serial}},
		Text: map[string]string{"PRODUCT": "Amoxi^cillin ~500 mg_"}}
}

func TestRenderGolden(t *testing.T) {
	z, err := zebra.New("p1", "127.0.0.1:1", time.Second, zebra.Options{}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]drivers.Label{
		"unit.zpl":   unitLabel("ABC_123"),
		"case.zpl":   {ID: "c", Level: drivers.LevelCase, Data: gs1.Elements{{AI: "00", Value: "395060000000000016"}}},
		"pallet.zpl": {ID: "p", Level: drivers.LevelPallet, Data: gs1.Elements{{AI: "00", Value: "395060000000000023"}}, Text: map[string]string{"TITLE": "PALLET ^1 ~JA"}},
		// A logistic label with content and lot: subsets C and B, FNC1 separators.
		"mixed.zpl": {ID: "m", Level: drivers.LevelPallet, Data: gs1.Elements{{AI: "00", Value: "395060000000000023"}, {AI: "02", Value: "09506000134352"}, {AI: "37", Value: "48"}, {AI: "10", Value: "L>1"}}},
	}
	for name, l := range cases {
		got, err := z.Render(l)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join("testdata", name)
		if *update {
			os.WriteFile(path, got, 0o644)
		}
		want, err := os.ReadFile(path)
		if err != nil || string(got) != string(want) {
			t.Errorf("%s differs from golden (go test -update):\n%s", name, got)
		}
		// Text can never start a command: one ^XA, one ^XZ, no ~ at all.
		if strings.Count(string(got), "^XA") != 1 || strings.Count(string(got), "^XZ") != 1 || strings.Contains(string(got), "~") {
			t.Errorf("%s: data leaks into ZPL commands:\n%s", name, got)
		}
	}
	for _, bad := range []drivers.Label{
		{Level: drivers.LevelCase},
		{Level: drivers.LevelCase, Data: gs1.Elements{{AI: "01", Value: "09506000134352"}}},
		{Level: drivers.LevelUnit, Data: gs1.Elements{{AI: "01", Value: "09506000134353"}}},
		{Level: drivers.LevelUnit, Data: gs1.Elements{{AI: "21", Value: "X"}}},
		{Level: "box", Data: gs1.Elements{{AI: "01", Value: "09506000134352"}}},
	} {
		if _, err := z.Render(bad); err == nil {
			t.Errorf("%+v rendered", bad)
		}
	}
	_, err = z.Render(drivers.Label{Level: drivers.LevelUnit, Data: gs1.Elements{{AI: "01", Value: "09506000134353"}}})
	if err == nil || !strings.Contains(err.Error(), "(01) check digit: want 2, got 3") {
		t.Errorf("invalid GS1 data: %v", err)
	}
}

// FNC1 and escapes survive the round trip through ZPL field data: what the
// printer encodes is what a scanner transmits.
func TestDataMatrixEncoding(t *testing.T) {
	els := unitLabel("S_1").Data
	fd, err := zebra.EncodeDataMatrix(els, '_')
	if err != nil {
		t.Fatal(err)
	}
	if want := "_1010950600013435217281130" + "10L__1>" + "_1" + "21S__1"; fd != want {
		t.Fatalf("field data %q, want %q", fd, want)
	}
	got, err := zebra.DecodeDataMatrix(fd, '_')
	if err != nil || got != els.ElementString() {
		t.Fatalf("decoded %q %v, want %q", got, err, els.ElementString())
	}
	// Another escape character works the same.
	fd, _ = zebra.EncodeDataMatrix(els, '%')
	if got, _ := zebra.DecodeDataMatrix(fd, '%'); got != els.ElementString() || !strings.HasPrefix(fd, "%101") {
		t.Fatalf("escape %%: %q -> %q", fd, got)
	}
	// The printer's other sequences.
	for in, want := range map[string]string{"_1AB_d065_]C": "AB" + "A" + "\x1d" + "C", "_101_1": "01\x1d", "___@": "_\x00"} {
		if got, err := zebra.DecodeDataMatrix(in, '_'); err != nil || got != want {
			t.Errorf("%q: %q %v, want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"_", "_x", "_d1", "_d999", "_d0a1", "_2"} {
		if _, err := zebra.DecodeDataMatrix(bad, '_'); err == nil {
			t.Errorf("%q decoded", bad)
		}
	}
	for _, v := range []string{"A^B", "A~B", "A\x1dB", "A\nB", "Ä"} {
		if _, err := zebra.EncodeDataMatrix(gs1.Elements{{AI: "10", Value: v}}, '_'); err == nil || !strings.Contains(err.Error(), "(10) byte") {
			t.Errorf("%q encoded: %v", v, err)
		}
	}
}

func TestGS1128Encoding(t *testing.T) {
	for _, c := range []struct {
		els  gs1.Elements
		want string
	}{
		{gs1.Elements{{AI: "00", Value: "395060000000000016"}}, ">;>800395060000000000016"},
		{gs1.Elements{{AI: "00", Value: "395060000000000016"}, {AI: "02", Value: "09506000134352"}, {AI: "37", Value: "12"}},
			">;>80039506000000000001602095060001343523712"},
		{gs1.Elements{{AI: "02", Value: "09506000134352"}, {AI: "37", Value: "5"}, {AI: "00", Value: "395060000000000016"}},
			">:>80>5209506000134352375>800395060000000000016"},
		{gs1.Elements{{AI: "01", Value: "09506000134352"}, {AI: "10", Value: "AB>1"}, {AI: "21", Value: "12345"}},
			">;>8010950600013435210>6AB><1>82>5112345"},
		{gs1.Elements{{AI: "400", Value: "A"}}, ">:>8400A"},
	} {
		got, err := zebra.EncodeGS1128(c.els)
		if err != nil || got != c.want {
			t.Errorf("%v: %q %v, want %q", c.els, got, err, c.want)
			continue
		}
		back, err := zebra.DecodeGS1128(got)
		if err != nil || back != c.els.ElementString() {
			t.Errorf("%q decodes to %q %v, want %q", got, back, err, c.els.ElementString())
		}
	}
	long := gs1.Elements{{AI: "00", Value: "395060000000000016"}, {AI: "02", Value: "09506000134352"}, {AI: "37", Value: "12345678"}, {AI: "400", Value: "1"}}
	if _, err := zebra.EncodeGS1128(long); err == nil || !strings.Contains(err.Error(), "at most 48") {
		t.Errorf("50 characters: %v", err)
	}
	for _, bad := range []string{"", ">;", ">;>8123", ">;>8>9", "00123", ">;>8>6>"} {
		if _, err := zebra.DecodeGS1128(bad); err == nil {
			t.Errorf("%q decoded", bad)
		}
	}
}

func TestTemplates(t *testing.T) {
	unit := "^XA^FO9,9^BXN,{{.Module}},200,,,,{{.Escape}}^FD{{.DataMatrix}}^FS{{range .HRI}}^FO9,9^FH^FD{{.Line}}^FS{{end}}^XZ"
	z, err := zebra.New("p1", "127.0.0.1:1", time.Second, zebra.Options{Module: 4, Templates: map[string]string{"unit": unit}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	got, err := z.Render(unitLabel("S1"))
	if err != nil || !strings.HasPrefix(string(got), "^XA^FO9,9^BXN,4,200,,,,_^FD_101095060001343521728113010L__1>_121S1^FS^FO9,9^FH^FD(01) 09506000134352^FS") {
		t.Fatalf("device template: %s %v", got, err)
	}
	// A product's templates win for its GTIN.
	if err := z.SetProductTemplates("09506000134352", map[string]string{"unit": "^XA^FX product^BXN,5,200,,,,_^FD{{.DataMatrix}}^FS^XZ"}); err != nil {
		t.Fatal(err)
	}
	got, _ = z.Render(unitLabel("S1"))
	if !strings.HasPrefix(string(got), "^XA^FX product^BXN,5") {
		t.Fatalf("product template not used: %s", got)
	}
	other := unitLabel("S1")
	other.Data[0].Value = "09506000134369"
	if got, _ := z.Render(other); !strings.Contains(string(got), "^BXN,4,") {
		t.Fatalf("other GTIN uses the product template: %s", got)
	}
	for name, tc := range map[string]struct {
		tpl  map[string]string
		want string
	}{
		"no datamatrix": {map[string]string{"unit": "^XA^FDhello^FS^XZ"}, "templates.unit: the template does not print ^FD{{.DataMatrix}}"},
		"no sscc":       {map[string]string{"case": "^XA^BCN,100^FD{{.SSCC}}^FS^XZ"}, "templates.case: the template does not print ^FD{{.GS1128}}"},
		"no format":     {map[string]string{"unit": "^FD{{.DataMatrix}}^FS"}, "templates.unit: the template must be one ^XA ... ^XZ format"},
		"syntax":        {map[string]string{"pallet": "^XA{{.GS1128"}, "templates.pallet: template: pallet:1: unclosed action"},
		"level":         {map[string]string{"box": "^XA^XZ"}, "templates.box: level must be unit, case or pallet"},
	} {
		_, err := zebra.New("p1", "x:1", time.Second, zebra.Options{Templates: tc.tpl}, zerolog.Nop())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
		if err := z.SetProductTemplates("09506000134352", tc.tpl); err == nil || !strings.Contains(err.Error(), "product 09506000134352 labels: "+tc.want) {
			t.Errorf("%s as product template: %v", name, err)
		}
	}
}

func TestParseHS(t *testing.T) {
	ok := zebrasim.HostStatus(false, 3, false)
	s, err := zebra.ParseHS([]byte(ok))
	if err != nil || s.Fault() != "" || s.FormatsInBuffer != 3 || s.LabelLength != 1245 {
		t.Fatalf("%+v %v", s, err)
	}
	for _, c := range []struct{ hs, fault string }{
		{zebrasim.HostStatus(true, 0, false), "paused"},
		{zebrasim.HostStatus(false, 64, true), "buffer_full"},
		// The ZPL guide's field order: string 1 b paper out, l over temperature;
		// string 2 o head up, p ribbon out.
		{"\x02030,1,0,1245,000,0,0,0,000,0,0,0\x03\r\n\x02001,0,0,0,1,2,6,0,00000000,1,000\x03\r\n\x021234,0\x03\r\n", "paper_out"},
		{"\x02030,0,0,1245,000,0,0,0,000,0,0,1\x03\r\n\x02001,0,0,0,1,2,6,0,00000000,1,000\x03\r\n\x021234,0\x03\r\n", "over_temperature"},
		{"\x02030,0,0,1245,000,0,0,0,000,0,0,0\x03\r\n\x02001,0,1,0,1,2,6,0,00000000,1,000\x03\r\n\x021234,0\x03\r\n", "head_open"},
		{"\x02030,0,0,1245,000,0,0,0,000,0,0,0\x03\r\n\x02001,0,1,1,1,2,6,0,00000000,1,000\x03\r\n\x021234,0\x03\r\n", "ribbon_out"},
		{"\x02030,0,0,1245,000,0,0,0,000,1,0,0\x03\r\n\x02001,0,0,0,1,2,6,0,00000000,1,000\x03\r\n\x021234,0\x03\r\n", "corrupt_ram"},
	} {
		s, err := zebra.ParseHS([]byte(c.hs))
		if err != nil || s.Fault() != c.fault {
			t.Errorf("%q: %q %v, want %q", c.hs, s.Fault(), err, c.fault)
		}
	}
	bad := []string{"", "\x02a\x03", "\x02030,0,0,x,000,0,0,0,000,0,0,0\x03\x02001,0,0,0,1,2,6,0,00000000,1,000\x03\x021234,0\x03", "\x02030,0\x03\x02001\x03\x021\x03",
		"\x02030,0,0,1245,000,0,0,0,000,0,0,0\x03\x02001,0,0,0,1,2,6,0,x,1,000\x03\x021234,0\x03"}
	for _, b := range bad {
		if _, err := zebra.ParseHS([]byte(b)); !errors.Is(err, drivers.ErrMalformed) {
			t.Errorf("%q: want ErrMalformed, got %v", b, err)
		}
	}
}

func TestParseHQES(t *testing.T) {
	tests := map[zebrasim.Fault]string{zebrasim.None: "", zebrasim.PaperOut: "paper_out", zebrasim.RibbonOut: "ribbon_out", zebrasim.HeadOpen: "head_open", zebrasim.OverTemp: "over_temperature"}
	for f, want := range tests {
		q, err := zebra.ParseHQES([]byte(zebrasim.HQES(f)))
		if err != nil || q.Fault() != want {
			t.Errorf("fault %d: got %q %v, want %q", f, q.Fault(), err, want)
		}
	}
	// Several bits: the most important is the fault, all are listed.
	q, err := zebra.ParseHQES([]byte("\x02\r\nPRINTER STATUS\r\nERRORS: 1 00000000 0000400C\r\nWARNINGS: 1 00000000 0000000A\r\n\x03"))
	if err != nil || q.Fault() != "head_open" || strings.Join(q.Errors(), ",") != "head_open,cutter_fault,paper_jam" || strings.Join(q.Warnings(), ",") != "clean_printhead,paper_near_end" {
		t.Fatalf("%+v %v %v %v", q, err, q.Errors(), q.Warnings())
	}
	if q, _ := zebra.ParseHQES([]byte("ERRORS: 1 00000000 00100000\nWARNINGS: 0 00000000 00000000")); q.Fault() != "error" {
		t.Fatalf("unknown bit: %q", q.Fault())
	}
	for _, b := range []string{"PRINTER STATUS\nERRORS: 1 0000 XYZ\n", "ERRORS: 0 00000000 00000000\n", "ERRORS: 2 00000000 00000000\nWARNINGS: 0 00000000 00000000",
		"ERRORS: 0 00000000 0000000G\nWARNINGS: 0 00000000 00000000", "ERRORS: 0 00000000 00000000\nERRORS: 0 00000000 00000000\nWARNINGS: 0 00000000 00000000"} {
		if _, err := zebra.ParseHQES([]byte(b)); !errors.Is(err, drivers.ErrMalformed) {
			t.Errorf("%q: %v", b, err)
		}
	}
}

func startSim(t testing.TB, rate float64) *zebrasim.Sim {
	t.Helper()
	sim := zebrasim.New(zebrasim.Options{LabelsPerSecond: rate}, zerolog.Nop())
	if _, err := sim.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { sim.Serve(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return sim
}

func newDriver(t testing.TB, addr string) *zebra.Zebra {
	z, err := zebra.New("printer-1", addr, 300*time.Millisecond, zebra.Options{}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { z.Close() })
	return z
}

func printed(t *testing.T, sim *zebrasim.Sim) zebrasim.Printed {
	t.Helper()
	select {
	case p := <-sim.Printed():
		return p
	case <-time.After(5 * time.Second):
		t.Fatal("label not printed")
	}
	return zebrasim.Printed{}
}

// Through the wire: the simulator decodes exactly the bytes a scanner would
// transmit, GS separators and escaped characters included.
func TestPrintAgainstSim(t *testing.T) {
	sim := startSim(t, 0)
	z := newDriver(t, sim.Addr())
	ctx := context.Background()
	if err := z.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	labels := []drivers.Label{unitLabel("S1"), unitLabel("S_2"), unitLabel("__"),
		{Level: drivers.LevelUnit, Data: gs1.Elements{{AI: "01", Value: "09506000134352"}, {AI: "21", Value: "X%y&z<>"}, {AI: "10", Value: "1"}, {AI: "17", Value: "281100"}}},
		{Level: drivers.LevelPallet, Data: gs1.Elements{{AI: "00", Value: "395060000000000023"}}},
		{Level: drivers.LevelCase, Data: gs1.Elements{{AI: "00", Value: "395060000000000016"}, {AI: "02", Value: "09506000134352"}, {AI: "37", Value: "48"}, {AI: "10", Value: "L>1"}}},
	}
	for _, l := range labels {
		if err := z.Print(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range labels {
		p := printed(t, sim)
		want := "datamatrix"
		if l.Level != drivers.LevelUnit {
			want = "gs1-128"
		}
		if p.Symbol != want || p.Data != l.Data.ElementString() {
			t.Fatalf("%s: printed %s %q, want %s %q", l.Data.Bracketed(), p.Symbol, p.Data, want, l.Data.ElementString())
		}
		back, err := gs1.Parse("]d2" + p.Data)
		if err != nil || !back.Equal(l.Data) {
			t.Fatalf("scanner data %q parses to %v %v", p.Data, back, err)
		}
	}
	h, err := z.Status(ctx)
	if err != nil || !h.OK() || z.Health() != h {
		t.Fatalf("status %+v %v", h, err)
	}
}

// A faulted printer does not answer ~HS: the driver asks ~HQES and reports
// the fault, not a dead link. A silent printer is no_answer, still connected.
func TestFaultsViaHQES(t *testing.T) {
	sim := startSim(t, 0)
	z := newDriver(t, sim.Addr())
	ctx := context.Background()
	for f, want := range map[zebrasim.Fault]string{zebrasim.PaperOut: "paper_out", zebrasim.HeadOpen: "head_open", zebrasim.RibbonOut: "ribbon_out", zebrasim.OverTemp: "over_temperature", zebrasim.Paused: "paused"} {
		sim.SetFault(f)
		h, err := z.Status(ctx)
		if h.Fault != want || !h.Connected || !errors.Is(err, drivers.ErrDeviceFault) || errors.Is(err, drivers.ErrNotConnected) {
			t.Errorf("fault %s: health %+v err %v", want, h, err)
		}
	}
	sim.SetFault(zebrasim.NoAnswer)
	start := time.Now()
	h, err := z.Status(ctx)
	if h.Fault != "no_answer" || !h.Connected || !errors.Is(err, drivers.ErrTimeout) {
		t.Errorf("no answer: %+v %v", h, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("no answer took %v with a 300ms timeout", d)
	}
	sim.SetFault(zebrasim.None)
	if h, err := z.Status(ctx); err != nil || !h.OK() {
		t.Errorf("after clearing: %+v %v", h, err)
	}
}

func TestFaultHoldsLabelsUntilCleared(t *testing.T) {
	sim := startSim(t, 0)
	z := newDriver(t, sim.Addr())
	ctx := context.Background()
	sim.SetFault(zebrasim.PaperOut)
	if err := z.Print(ctx, unitLabel("X1")); err != nil {
		t.Fatal(err)
	}
	// "Sent" is not "printed": the format waits in the printer.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if rec, _, _, _ := sim.Counts(); rec == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("format not received")
		}
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case <-sim.Printed():
		t.Fatal("printed while out of paper")
	default:
	}
	sim.SetFault(zebrasim.None)
	printed(t, sim)
}

// fakePrinter is a scripted TCP peer: answer decides what to send back for
// each tilde command on each connection (nil: stay silent).
type fakePrinter struct {
	ln     net.Listener
	mu     sync.Mutex
	conns  int
	answer func(conn int, cmd string) []byte
}

func newFake(t *testing.T, answer func(conn int, cmd string) []byte) *fakePrinter {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakePrinter{ln: ln, answer: answer}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns++
			n := f.conns
			f.mu.Unlock()
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				buf := ""
				for {
					b, err := r.ReadByte()
					if err != nil {
						return
					}
					buf += string(b)
					for _, cmd := range []string{"~HQES", "~HS"} {
						if strings.HasSuffix(buf, cmd) {
							if out := f.answer(n, cmd); out != nil {
								c.Write(out)
							}
							buf = ""
						}
					}
				}
			}()
		}
	}()
	return f
}

// Garbage to ~HS is a recorded fault with the bytes, the link is reset.
func TestMalformedStatus(t *testing.T) {
	f := newFake(t, func(conn int, cmd string) []byte {
		if cmd == "~HS" {
			return []byte("\x02garbage\x03\r\n\x02x\x03\r\n\x02y\x03\r\n")
		}
		return nil
	})
	z := newDriver(t, f.ln.Addr().String())
	h, err := z.Status(context.Background())
	var de *drivers.DeviceError
	if !errors.As(err, &de) || !errors.Is(err, drivers.ErrMalformed) || de.Device != "printer-1" || de.Field != "~HS" || !strings.Contains(string(de.Raw), "garbage") || h.Fault != "malformed_status" {
		t.Fatalf("health %+v err %#v", h, err)
	}
	f2 := newFake(t, func(conn int, cmd string) []byte {
		if cmd == "~HQES" {
			return []byte("\x02PRINTER STATUS\r\nERRORS: maybe\r\n\x03\r\n")
		}
		return nil
	})
	z2 := newDriver(t, f2.ln.Addr().String())
	if _, err := z2.Status(context.Background()); !errors.Is(err, drivers.ErrMalformed) || !strings.Contains(err.Error(), "~HQES") {
		t.Fatalf("~HQES garbage: %v", err)
	}
}

// ~HS answered too late: the late answer arrives on the old connection and
// is never read as the answer to ~HQES or to the next ~HS.
func TestLateAnswerNotTakenForTheNext(t *testing.T) {
	hs := zebrasim.HostStatus(false, 7, false)
	f := newFake(t, func(conn int, cmd string) []byte {
		switch {
		case conn == 1 && cmd == "~HS":
			time.Sleep(500 * time.Millisecond) // later than the driver's 300ms
			return []byte(zebrasim.HostStatus(true, 1, false))
		case cmd == "~HQES":
			return []byte(zebrasim.HQES(zebrasim.None))
		}
		return []byte(hs)
	})
	z := newDriver(t, f.ln.Addr().String())
	h, err := z.Status(context.Background())
	if h.Fault != "no_answer" || !errors.Is(err, drivers.ErrDeviceFault) {
		t.Fatalf("first: %+v %v", h, err)
	}
	h, err = z.Status(context.Background())
	if err != nil || !h.OK() || h.Detail != "7 formats in buffer" {
		t.Fatalf("second: %+v %v (a late answer would say paused, 1 format)", h, err)
	}
}

func TestReconnect(t *testing.T) {
	sim := startSim(t, 0)
	z := newDriver(t, sim.Addr())
	ctx := context.Background()
	if err := z.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	sim.DropClients()
	// The first write may still succeed into the dead socket's buffer; the
	// driver reconnects on the failure and the label arrives.
	deadline := time.Now().Add(5 * time.Second)
	for {
		z.Print(ctx, unitLabel("R1"))
		select {
		case <-sim.Printed():
			return
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no label after reconnect")
		}
	}
}

func TestConnectRefusedAndBackoff(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close() // nothing listens here now
	z := newDriver(t, addr)
	err := z.Connect(context.Background())
	if !errors.Is(err, drivers.ErrNotConnected) || !strings.Contains(err.Error(), "printer-1") {
		t.Fatalf("connect to a closed port: %v", err)
	}
	// Right after a failed dial, Print does not dial again: backoff.
	err = z.Print(context.Background(), unitLabel("B1"))
	if !errors.Is(err, drivers.ErrNotConnected) || !strings.Contains(err.Error(), "reconnect backoff") {
		t.Fatalf("print during backoff: %v", err)
	}
	if h := z.Health(); h.Connected || h.Fault != "disconnected" {
		t.Fatalf("health %+v", h)
	}
	if err := z.Close(); err != nil || z.Close() != nil {
		t.Fatal("close twice")
	}
}

func TestTimeoutHonoursContext(t *testing.T) {
	f := newFake(t, func(int, string) []byte { return nil })
	z, _ := zebra.New("printer-1", f.ln.Addr().String(), 10*time.Second, zebra.Options{}, zerolog.Nop())
	defer z.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := z.Status(ctx); err == nil {
		t.Fatal("silent printer answered")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Status ignored the context deadline: %v", d)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []zebra.Options{{EscapeChar: "ab"}, {EscapeChar: "^"}, {EscapeChar: "~"}, {EscapeChar: "1"}, {EscapeChar: "A"}, {Module: 500}, {Templates: map[string]string{"box": "x"}}} {
		if err := o.Validate(); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	for _, o := range []zebra.Options{{}, {EscapeChar: "%"}, {EscapeChar: "_", Module: 8}} {
		if err := o.Validate(); err != nil {
			t.Errorf("%+v: %v", o, err)
		}
	}
}

// The embedded sample config decodes strictly into the options and
// validates, its commented templates included.
func TestSampleConfig(t *testing.T) {
	var devs []struct {
		Name, Driver, Address, Timeout string
		Options                        zebra.Options
	}
	dec := yaml.NewDecoder(strings.NewReader(zebra.SampleConfig))
	dec.KnownFields(true)
	if err := dec.Decode(&devs); err != nil || len(devs) != 1 {
		t.Fatalf("%v %d", err, len(devs))
	}
	if err := devs[0].Options.Validate(); err != nil {
		t.Fatal(err)
	}
	// The templates shown in comments work as written.
	var tpl []string
	for _, l := range strings.Split(zebra.SampleConfig, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), ": "); ok && (k == "#   unit" || k == "#   case") {
			var s string
			if err := yaml.Unmarshal([]byte(v), &s); err != nil {
				t.Fatal(err)
			}
			tpl = append(tpl, strings.TrimPrefix(k, "#   "), s)
		}
	}
	if len(tpl) != 4 {
		t.Fatalf("sample templates %q", tpl)
	}
	o := zebra.Options{Templates: map[string]string{tpl[0]: tpl[1], tpl[2]: tpl[3]}}
	if err := o.Validate(); err != nil {
		t.Fatalf("sample templates: %v", err)
	}
}

func FuzzParseHS(f *testing.F) {
	f.Add([]byte(zebrasim.HostStatus(true, 12, true)))
	f.Add([]byte("\x02\x03\x02\x03\x02\x03"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := zebra.ParseHS(b)
		if err != nil && !errors.Is(err, drivers.ErrMalformed) {
			t.Fatalf("error not ErrMalformed: %v", err)
		}
		_ = s.Fault()
	})
}

func FuzzParseHQES(f *testing.F) {
	f.Add([]byte(zebrasim.HQES(zebrasim.PaperOut)))
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := zebra.ParseHQES(b)
		if err != nil && !errors.Is(err, drivers.ErrMalformed) {
			t.Fatalf("error not ErrMalformed: %v", err)
		}
		_, _, _ = q.Fault(), q.Errors(), q.Warnings()
	})
}

// Any valid GS1 data survives the ZPL encodings; garbage field data never
// panics the decoders.
func FuzzEncodings(f *testing.F) {
	f.Add("L1", "S_1>", "_1_d065")
	f.Fuzz(func(t *testing.T, lot, serial, fd string) {
		els := gs1.Elements{{AI: "01", Value: "09506000134352"}, {AI: "10", Value: lot}, {AI: "21", Value: serial}}
		_, _ = zebra.DecodeDataMatrix(fd, '_')
		_, _ = zebra.DecodeGS1128(fd)
		if els.Validate() != nil {
			return
		}
		dm, err := zebra.EncodeDataMatrix(els, '_')
		if err != nil || strings.ContainsAny(dm, "^~") {
			t.Fatalf("DataMatrix field data %q %v", dm, err)
		}
		if got, err := zebra.DecodeDataMatrix(dm, '_'); err != nil || got != els.ElementString() {
			t.Fatalf("DataMatrix %q -> %q %v, want %q", dm, got, err, els.ElementString())
		}
		c, err := zebra.EncodeGS1128(els)
		if err != nil {
			return // longer than 48 characters
		}
		if got, err := zebra.DecodeGS1128(c); err != nil || got != els.ElementString() || strings.ContainsAny(c, "^~") {
			t.Fatalf("GS1-128 %q -> %q %v, want %q", c, got, err, els.ElementString())
		}
	})
}

var benchLabel = drivers.Label{ID: "K7Q9X2M4P8R1", Level: drivers.LevelUnit,
	Data: gs1.Elements{{AI: "01", Value: "09506000134352"}, {AI: "17", Value: "281130"}, {AI: "10", Value: "1A2B3C4D"}, {AI: "21", Value: "K7Q9X2M4P8R1"}}}

// Per-unit cost of a print: rendering alone, the driver against the
// simulator, and the raw limit (the same bytes on a plain TCP connection to
// the same simulator).
func BenchmarkPrint(b *testing.B) {
	sim := startSim(b, 0)
	go func() {
		for range sim.Printed() {
		}
	}()
	z := newDriver(b, sim.Addr())
	ctx := context.Background()
	b.Run("render", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := z.Render(benchLabel); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("driver", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := z.Print(ctx, benchLabel); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("raw-tcp", func(b *testing.B) {
		zpl, _ := z.Render(benchLabel)
		c, err := net.Dial("tcp", sim.Addr())
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Write(zpl); err != nil {
				b.Fatal(err)
			}
		}
	})
}
