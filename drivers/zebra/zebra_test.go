package zebra_test

import (
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/serialine/serialine/drivers"
	"github.com/serialine/serialine/drivers/zebra"
	"github.com/serialine/serialine/drivers/zebra/zebrasim"
	"github.com/serialine/serialine/sync/gs1"
)

var update = flag.Bool("update", false, "rewrite golden files")

func unitLabel(serial string) drivers.Label {
	return drivers.Label{ID: serial, Level: drivers.LevelUnit,
		Data: gs1.Elements{{AI: "01", Value: "09506000134352"}, {AI: "17", Value: "281130"}, {AI: "10", Value: "L_1^~"}, {AI: "21", Value: serial}},
		Text: map[string]string{"GTIN": "09506000134352", "SN": serial, "LOT": "L_1^~", "EXP": "281130"}}
}

func TestRenderGolden(t *testing.T) {
	z, err := zebra.New("p1", "127.0.0.1:1", time.Second, zebra.Options{}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]drivers.Label{
		"unit.zpl":   unitLabel("ABC_123"),
		"case.zpl":   {ID: "c", Level: drivers.LevelCase, Data: gs1.Elements{{AI: "00", Value: "395060000000000016"}}},
		"pallet.zpl": {ID: "p", Level: drivers.LevelPallet, Data: gs1.Elements{{AI: "00", Value: "395060000000000023"}}, Text: map[string]string{"TITLE": "PALLET ^1"}},
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
	}
	if _, err := z.Render(drivers.Label{Level: drivers.LevelCase}); err == nil {
		t.Error("case label without SSCC rendered")
	}
}

// FNC1 and escapes survive a round trip through ZPL field data: what the
// printer encodes is what a scanner will transmit.
func TestDataMatrixRoundTrip(t *testing.T) {
	els := unitLabel("S_1").Data
	fd := zebra.EncodeDataMatrix(els, '_')
	if !strings.HasPrefix(fd, "_1010950600013435217281130") || strings.Contains(fd, "^") || strings.Contains(fd, "~") {
		t.Fatalf("field data %q", fd)
	}
	got, err := zebra.DecodeDataMatrix(fd, '_')
	if err != nil {
		t.Fatal(err)
	}
	if want := els.ElementString(); got != want {
		t.Fatalf("decoded %q, want %q", got, want)
	}
	for _, bad := range []string{"_", "_x", "_d1", "_d999"} {
		if _, err := zebra.DecodeDataMatrix(bad, '_'); err == nil {
			t.Errorf("%q decoded", bad)
		}
	}
}

func TestParseHS(t *testing.T) {
	ok := zebrasim.HostStatus(false, 3, false)
	s, err := zebra.ParseHS([]byte(ok))
	if err != nil || s.Fault() != "" || s.FormatsInBuffer != 3 {
		t.Fatalf("%+v %v", s, err)
	}
	paused, _ := zebra.ParseHS([]byte(zebrasim.HostStatus(true, 0, false)))
	if paused.Fault() != "paused" {
		t.Fatalf("paused: %q", paused.Fault())
	}
	headUp := "\x02030,0,0,1245,000,0,0,0,000,0,0,0\x03\r\n\x02001,0,1,1,1,2,6,0,00000000,1,000\x03\r\n\x021234,0\x03\r\n"
	h, _ := zebra.ParseHS([]byte(headUp))
	if h.Fault() != "ribbon_out" || !h.HeadUp {
		t.Fatalf("head up + ribbon: %+v", h)
	}
	bad := []string{"", "\x02a\x03", "\x02030,0,0,x,000,0,0,0,000,0,0,0\x03\x02001,0,0,0,1,2,6,0,00000000,1,000\x03\x021234,0\x03", "\x02030,0\x03\x02001\x03\x021\x03"}
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
	if _, err := zebra.ParseHQES([]byte("PRINTER STATUS\nERRORS: 1 0000 XYZ\n")); !errors.Is(err, drivers.ErrMalformed) {
		t.Fatalf("malformed ~HQES: %v", err)
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

func TestPrintAgainstSim(t *testing.T) {
	sim := startSim(t, 0)
	z := newDriver(t, sim.Addr())
	ctx := context.Background()
	if err := z.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, sn := range []string{"S1", "S_2", "S3"} {
		l := unitLabel(sn)
		want[l.Data.ElementString()] = true
		if err := z.Print(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	if err := z.Print(ctx, drivers.Label{Level: drivers.LevelPallet, Data: gs1.Elements{{AI: "00", Value: "395060000000000023"}}}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		select {
		case p := <-sim.Printed():
			if i < 3 && (p.Symbol != "datamatrix" || !want[p.Data]) {
				t.Fatalf("label %d: %q %q", i, p.Symbol, p.Data)
			}
			if i == 3 && (p.Symbol != "gs1-128" || p.Data != "00395060000000000023") {
				t.Fatalf("SSCC label: %q %q", p.Symbol, p.Data)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("label not printed")
		}
	}
	h, err := z.Status(ctx)
	if err != nil || !h.OK() {
		t.Fatalf("status %+v %v", h, err)
	}
}

// A faulted printer does not answer ~HS: the driver asks ~HQES and reports
// the fault, not a dead link. A silent printer is no_answer.
func TestFaultsViaHQES(t *testing.T) {
	sim := startSim(t, 0)
	z := newDriver(t, sim.Addr())
	ctx := context.Background()
	for f, want := range map[zebrasim.Fault]string{zebrasim.PaperOut: "paper_out", zebrasim.HeadOpen: "head_open", zebrasim.RibbonOut: "ribbon_out", zebrasim.OverTemp: "over_temperature", zebrasim.Paused: "paused"} {
		sim.SetFault(f)
		h, err := z.Status(ctx)
		if h.Fault != want || !h.Connected || !errors.Is(err, drivers.ErrDeviceFault) {
			t.Errorf("fault %s: health %+v err %v", want, h, err)
		}
	}
	sim.SetFault(zebrasim.NoAnswer)
	h, err := z.Status(ctx)
	if h.Fault != "no_answer" || !errors.Is(err, drivers.ErrTimeout) {
		t.Errorf("no answer: %+v %v", h, err)
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
	select {
	case <-sim.Printed():
		t.Fatal("printed while out of paper")
	case <-time.After(100 * time.Millisecond):
	}
	sim.SetFault(zebrasim.None)
	select {
	case <-sim.Printed():
	case <-time.After(5 * time.Second):
		t.Fatal("not printed after the paper came back")
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

func TestConnectRefused(t *testing.T) {
	z := newDriver(t, "127.0.0.1:1")
	err := z.Connect(context.Background())
	if !errors.Is(err, drivers.ErrNotConnected) || !strings.Contains(err.Error(), "printer-1") {
		t.Fatalf("connect to a closed port: %v", err)
	}
	if err := z.Close(); err != nil || z.Close() != nil {
		t.Fatal("close twice")
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []zebra.Options{{EscapeChar: "ab"}, {EscapeChar: "^"}, {Module: 500}, {Templates: map[string]string{"box": "x"}}} {
		if err := o.Validate(); err == nil {
			t.Errorf("%+v accepted", o)
		}
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
		_ = q.Fault()
	})
}

func FuzzDataMatrix(f *testing.F) {
	f.Add("010950600013435217281130", "L1", "S_1^~")
	f.Fuzz(func(t *testing.T, fixed, lot, serial string) {
		els := gs1.Elements{{AI: "10", Value: lot}, {AI: "21", Value: serial}}
		fd := zebra.EncodeDataMatrix(els, '_')
		if strings.ContainsAny(fd, "^~") {
			t.Fatalf("field data %q carries a ZPL command prefix", fd)
		}
		got, err := zebra.DecodeDataMatrix(fd, '_')
		if err != nil || got != els.ElementString() {
			t.Fatalf("round trip %q -> %q (%v), want %q", fd, got, err, els.ElementString())
		}
		_, _ = zebra.DecodeDataMatrix(fixed, '_')
	})
}

func BenchmarkPrint(b *testing.B) {
	sim := startSim(b, 0)
	z := newDriver(b, sim.Addr())
	ctx := context.Background()
	go func() {
		for range sim.Printed() {
		}
	}()
	l := unitLabel("123456789012")
	b.ResetTimer()
	for b.Loop() {
		if err := z.Print(ctx, l); err != nil {
			b.Fatal(err)
		}
	}
}
