package modbus_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	gbmodbus "github.com/goburrow/modbus"
	"github.com/rs/zerolog"
	"gopkg.in/yaml.v3"

	"github.com/serialine/serialine/drivers"
	"github.com/serialine/serialine/drivers/modbus"
	"github.com/serialine/serialine/drivers/modbus/modbussim"
)

func u16(v uint16) *uint16 { return &v }

func tags() map[string]modbus.Tag {
	return map[string]modbus.Tag{
		"reject":       {Coil: u16(0), Pulse: 20 * time.Millisecond},
		"level":        {Coil: u16(1)},
		"line_running": {DiscreteInput: u16(0)},
		"good_count":   {HoldingRegister: u16(10), Words: 2},
		"reject_count": {HoldingRegister: u16(12), Words: 2, WordOrder: "low_first"},
		"big":          {HoldingRegister: u16(20), Words: 4},
		"small":        {HoldingRegister: u16(30)},
		"speed":        {InputRegister: u16(5)},
	}
}

func TestValidate(t *testing.T) {
	bad := map[string]struct {
		tags map[string]modbus.Tag
		want string
	}{
		"two kinds":      {map[string]modbus.Tag{"reject": {Coil: u16(0), HoldingRegister: u16(1)}}, "tags.reject: exactly one of"},
		"4xxxx notation": {map[string]modbus.Tag{"reject": {Coil: u16(0)}, "x": {HoldingRegister: u16(40001)}}, "1-based 4xxxx/3xxxx notation"},
		"words":          {map[string]modbus.Tag{"reject": {Coil: u16(0)}, "x": {HoldingRegister: u16(1), Words: 3}}, "tags.x.words"},
		"read-only":      {map[string]modbus.Tag{"reject": {Coil: u16(0)}, "good_count": {InputRegister: u16(1)}}, "tags.good_count: the edge writes this tag"},
		"reject kind":    {map[string]modbus.Tag{"reject": {HoldingRegister: u16(0)}}, "tags.reject: the reject output must be a coil"},
		"no reject":      {map[string]modbus.Tag{"x": {Coil: u16(0)}}, "tags.reject: required"},
		"word order":     {map[string]modbus.Tag{"reject": {Coil: u16(0)}, "x": {HoldingRegister: u16(1), WordOrder: "middle"}}, "tags.x.word_order"},
		"pulse":          {map[string]modbus.Tag{"reject": {Coil: u16(0)}, "x": {HoldingRegister: u16(1), Pulse: time.Second}}, "tags.x.pulse"},
	}
	for name, tc := range bad {
		o := modbus.Options{Tags: tc.tags}
		if err := o.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
	o := modbus.Options{Tags: tags()}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestComposeSplit(t *testing.T) {
	cases := []struct {
		v     uint64
		words int
		low   bool
		bytes string
	}{
		{0x12345678, 2, false, "\x12\x34\x56\x78"},
		{0x12345678, 2, true, "\x56\x78\x12\x34"},
		{0x0102030405060708, 4, false, "\x01\x02\x03\x04\x05\x06\x07\x08"},
		{0x0102030405060708, 4, true, "\x07\x08\x05\x06\x03\x04\x01\x02"},
	}
	for _, c := range cases {
		if got := string(modbus.Split(c.v, c.words, c.low)); got != c.bytes {
			t.Errorf("Split(%x): % x", c.v, got)
		}
		if got, err := modbus.Compose([]byte(c.bytes), c.words, c.low); err != nil || got != c.v {
			t.Errorf("Compose: %x %v", got, err)
		}
	}
	if _, err := modbus.Compose([]byte{1}, 1, false); !errors.Is(err, drivers.ErrMalformed) {
		t.Error("short answer accepted")
	}
}

func startSim(t testing.TB) *modbussim.Sim {
	t.Helper()
	sim := modbussim.New(modbussim.Options{UnitID: 1, Tags: tags()}, zerolog.Nop())
	if _, err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Stop)
	return sim
}

func newPLC(t testing.TB, addr string, timeout time.Duration) *modbus.PLC {
	t.Helper()
	p, err := modbus.New("plc-1", addr, timeout, modbus.Options{UnitID: 1, Tags: tags()}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestReadWriteAgainstSim(t *testing.T) {
	sim := startSim(t)
	p := newPLC(t, sim.Addr(), time.Second)
	ctx := context.Background()
	if err := p.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := p.WriteBool(ctx, "reject", true); err != nil {
			t.Fatal(err)
		}
	}
	if sim.RejectCount() != 3 || sim.Coil(0) {
		t.Fatalf("rejects %d, coil after pulse %v", sim.RejectCount(), sim.Coil(0))
	}
	if err := p.WriteBool(ctx, "level", true); err != nil {
		t.Fatal(err)
	}
	if v, err := p.ReadBool(ctx, "level"); err != nil || !v {
		t.Fatalf("level coil %v %v", v, err)
	}
	if v, err := p.ReadBool(ctx, "line_running"); err != nil || !v {
		t.Fatalf("line_running %v %v", v, err)
	}
	for tag, v := range map[string]uint64{"good_count": 0x12345678, "reject_count": 70000, "big": 1<<63 + 5, "small": 65535} {
		if err := p.WriteUint(ctx, tag, v); err != nil {
			t.Fatal(err)
		}
		if got, err := p.ReadUint(ctx, tag); err != nil || got != v {
			t.Fatalf("%s: %d %v, want %d", tag, got, err, v)
		}
	}
	if sim.HoldingRegister(10) != 0x1234 || sim.HoldingRegister(11) != 0x5678 {
		t.Fatal("high_first word order not on the wire")
	}
	if sim.HoldingRegister(12) != 70000&0xffff || sim.HoldingRegister(13) != 70000>>16 {
		t.Fatal("low_first word order not on the wire")
	}
	if err := p.WriteUint(ctx, "small", 70000); err == nil {
		t.Fatal("value larger than one register written")
	}
	sim.SetInputRegister(5, 420)
	if v, err := p.ReadUint(ctx, "speed"); err != nil || v != 420 {
		t.Fatalf("input register %d %v", v, err)
	}
	if err := p.WriteUint(ctx, "speed", 1); err == nil {
		t.Fatal("wrote an input register")
	}
	if _, err := p.ReadBool(ctx, "nope"); err == nil || !strings.Contains(err.Error(), "plc-1 tag nope") {
		t.Fatalf("unknown tag: %v", err)
	}
}

func TestReconnectAfterDropAndRestart(t *testing.T) {
	sim := startSim(t)
	p := newPLC(t, sim.Addr(), 500*time.Millisecond)
	ctx := context.Background()
	if err := p.WriteBool(ctx, "reject", true); err != nil {
		t.Fatal(err)
	}
	if err := sim.DropClients(); err != nil {
		t.Fatal(err)
	}
	// The first call on the dead connection fails and drops it; the next dials again.
	if err := p.WriteBool(ctx, "reject", true); err != nil && !errors.Is(err, drivers.ErrNotConnected) {
		t.Fatalf("write on a dropped link: %v", err)
	}
	if err := p.WriteBool(ctx, "reject", true); err != nil {
		t.Fatalf("after reconnect: %v", err)
	}
	sim.Stop()
	if err := p.WriteBool(ctx, "reject", true); !errors.Is(err, drivers.ErrNotConnected) {
		t.Fatalf("write to a stopped PLC: %v", err)
	}
	if _, err := sim.Start(sim.Addr()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for p.WriteBool(ctx, "reject", true) != nil {
		if time.Now().After(deadline) {
			t.Fatal("no reconnect after the PLC restarted")
		}
	}
	if sim.RejectCount() < 3 {
		t.Fatalf("rejects %d", sim.RejectCount())
	}
}

// After a timeout the late answer must never be read as the answer to the
// next request (goburrow's transaction-id desync).
func TestNoStaleAnswerAfterTimeout(t *testing.T) {
	sim := startSim(t)
	sim.SetHoldingRegister(30, 111)
	sim.SetHoldingRegister(10, 0)
	sim.SetHoldingRegister(11, 222)
	p := newPLC(t, sim.Addr(), 100*time.Millisecond)
	ctx := context.Background()
	sim.SetDelay(250 * time.Millisecond)
	if _, err := p.ReadUint(ctx, "small"); !errors.Is(err, drivers.ErrNotConnected) {
		t.Fatalf("slow answer: want a timeout error, got %v", err)
	}
	sim.SetDelay(0)
	// The late answer to "small" (111) arrives on the old connection; the
	// driver dropped it, so this read gets its own answer.
	for i := 0; i < 5; i++ {
		v, err := p.ReadUint(ctx, "good_count")
		if err != nil {
			t.Fatal(err)
		}
		if v != 222 {
			t.Fatalf("read %d: got %d, a stale answer", i, v)
		}
	}
}

func TestExceptionKeepsLink(t *testing.T) {
	sim := startSim(t)
	p := newPLC(t, sim.Addr(), time.Second)
	ctx := context.Background()
	sim.SetException(modbussim.ErrDeviceFailure)
	err := p.WriteBool(ctx, "level", true)
	if !errors.Is(err, drivers.ErrDeviceFault) || !strings.Contains(err.Error(), "exception 4") {
		t.Fatalf("exception: %v", err)
	}
	sim.SetException(nil)
	if err := p.WriteBool(ctx, "level", true); err != nil {
		t.Fatal(err)
	}
	if p.Close() != nil || p.Close() != nil {
		t.Fatal("close twice")
	}
}

// Interoperability: the third-party tool mbpoll reads the simulator.
func TestMbpollReadsSim(t *testing.T) {
	bin, err := exec.LookPath("mbpoll")
	if err != nil {
		if os.Getenv("SERIALINE_REQUIRE_TOOLS") == "1" {
			t.Fatal("mbpoll required (SERIALINE_REQUIRE_TOOLS=1) but not installed")
		}
		t.Skip("mbpoll not installed")
	}
	sim := startSim(t)
	sim.SetHoldingRegister(10, 4242)
	sim.SetHoldingRegister(11, 17)
	host, port, _ := strings.Cut(sim.Addr(), ":")
	// -r is 1-based in mbpoll: holding register 10 is -r 11.
	out, err := exec.Command(bin, "-m", "tcp", "-a", "1", "-t", "4", "-r", "11", "-c", "2", "-p", port, "-1", host).CombinedOutput()
	if err != nil {
		t.Fatalf("mbpoll: %v\n%s", err, out)
	}
	for _, want := range []string{"4242", "17"} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("mbpoll output lacks %s:\n%s", want, out)
		}
	}
	// And it writes the reject coil (-t 0, value 1).
	if out, err := exec.Command(bin, "-m", "tcp", "-a", "1", "-t", "0", "-r", "1", "-p", port, "-1", host, "1").CombinedOutput(); err != nil {
		t.Fatalf("mbpoll write: %v\n%s", err, out)
	}
	if sim.RejectCount() != 1 {
		t.Fatalf("reject written by mbpoll not counted: %d", sim.RejectCount())
	}
	// Word order as a third party sees it: the driver writes the 32-bit
	// counters, mbpoll reads them as 32-bit integers (-B: high word first).
	p := newPLC(t, sim.Addr(), time.Second)
	ctx := context.Background()
	if err := p.WriteUint(ctx, "good_count", 305419896); err != nil { // 0x12345678, high_first at 10
		t.Fatal(err)
	}
	if err := p.WriteUint(ctx, "reject_count", 70000); err != nil { // low_first at 12
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-t", "4:int", "-B", "-r", "11", "-c", "1"}, "[11]: \t305419896"},
		{[]string{"-t", "4:int", "-r", "13", "-c", "1"}, "[13]: \t70000"},
		{[]string{"-t", "1", "-r", "1", "-c", "1"}, "[1]: \t1"}, // line_running discrete input
	} {
		args := append([]string{"-m", "tcp", "-a", "1", "-p", port, "-1"}, c.args...)
		out, err := exec.Command(bin, append(args, host)...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), c.want) {
			t.Errorf("mbpoll %v: %v\n%s\nwant %q", c.args, err, out, c.want)
		}
	}
}

func FuzzComposeSplit(f *testing.F) {
	f.Add(uint64(0x12345678), 2, true)
	f.Fuzz(func(t *testing.T, v uint64, words int, low bool) {
		words = []int{1, 2, 4}[((words%3)+3)%3]
		if words < 4 {
			v &= 1<<(16*uint(words)) - 1
		}
		got, err := modbus.Compose(modbus.Split(v, words, low), words, low)
		if err != nil || got != v {
			t.Fatalf("%x %d %v: %x %v", v, words, low, got, err)
		}
	})
}

// Per-unit cost of a PLC write (the reject signal's coil write, without the
// pulse wait): the driver, and the raw limit (goburrow's client alone on
// one connection to the same simulator).
func BenchmarkWriteBool(b *testing.B) {
	sim := startSim(b)
	ctx := context.Background()
	b.Run("driver", func(b *testing.B) {
		p := newPLC(b, sim.Addr(), time.Second)
		b.ReportAllocs()
		for b.Loop() {
			if err := p.WriteBool(ctx, "level", true); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("raw-goburrow", func(b *testing.B) {
		h := gbmodbus.NewTCPClientHandler(sim.Addr())
		h.SlaveId, h.Timeout = 1, time.Second
		if err := h.Connect(); err != nil {
			b.Fatal(err)
		}
		defer h.Close()
		c := gbmodbus.NewClient(h)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.WriteSingleCoil(1, 0xFF00); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// The embedded sample config decodes strictly into the options and
// validates.
func TestSampleConfig(t *testing.T) {
	var devs []struct {
		Name, Driver, Address, Timeout string
		Options                        modbus.Options
	}
	dec := yaml.NewDecoder(strings.NewReader(modbus.SampleConfig))
	dec.KnownFields(true)
	if err := dec.Decode(&devs); err != nil || len(devs) != 1 {
		t.Fatalf("%v %d", err, len(devs))
	}
	if err := devs[0].Options.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, ok := devs[0].Options.Tags["reject"]; !ok {
		t.Fatal("sample has no reject tag")
	}
}
