package videojetsim

import (
	"bufio"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/serialine/serialine/drivers/videojet"
)

func start(t *testing.T, opt Options) *Sim {
	t.Helper()
	s := New(opt, zerolog.Nop())
	if _, err := s.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Serve(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return s
}

// session sends text commands on one connection and returns the replies.
type session struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, s *Sim) *session {
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &session{t: t, c: c, r: bufio.NewReader(c)}
}

func (s *session) line() string {
	s.t.Helper()
	s.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	l, err := s.r.ReadString('\r')
	if err != nil {
		s.t.Fatalf("no reply: %v", err)
	}
	return strings.TrimSuffix(l, "\r")
}

func (s *session) cmd(c string) string {
	s.t.Helper()
	if _, err := s.c.Write([]byte(c + "\r")); err != nil {
		s.t.Fatal(err)
	}
	return s.line()
}

func (s *session) expect(c string, want ...string) {
	s.t.Helper()
	got := s.cmd(c)
	for _, w := range want {
		if got == w {
			return
		}
	}
	s.t.Fatalf("%q answered %q, want %q", c, got, want)
}

// The text protocol state machine, command by command.
func TestTextStateMachine(t *testing.T) {
	s := start(t, Options{Jobs: map[string]Job{"A": {Code: "DM", Fields: []string{"SN"}}, "B": {Code: "DM"}}, Job: "A", QueueSize: 2})
	c := dial(t, s)
	c.expect("GST", "STS|3|0|A|0|0|")
	c.expect("SLA|C|", "ERR")                                   // unknown job
	c.expect("JDA|", "ERR")                                     // no data
	c.expect("FOO", "ERR")                                      // unknown command
	c.expect("gst", "ERR")                                      // not a command
	c.expect("SST|4|", "ACK")                                   // offline: prints are held
	c.expect("JDA|SN=1|DM=0112345678901231|XX=ignored|", "ACK") // unknown fields are ignored
	c.expect("JDA|SN=2|", "ACK")
	c.expect("JDA|SN=3|", "ERR") // update queue of 2 is full
	if _, _, f := s.State(); f["SN"] != "2" || f["XX"] != "" {
		t.Fatalf("fields %v", f)
	}
	c.expect("SST|0|", "ERR") // not directly
	c.expect("SST|3|", "ACK")
	for _, sn := range []string{"1", "2"} {
		select {
		case p := <-s.Printed():
			if p.Fields["SN"] != sn || p.Data != "0112345678901231" || p.Symbol != "datamatrix" {
				t.Fatalf("printed %+v", p)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("not printed")
		}
	}
	c.expect("SEL|B|0112345678901231|", "ACK") // consecutive: VarField00, not the code field
	if _, job, f := s.State(); job != "B" || f["VarField00"] != "0112345678901231" {
		t.Fatalf("after SEL: %s %v", job, f)
	}
	<-s.Printed()
	c.expect("SNO|PRC|1|", "ACK")
	c.expect("SNO|STS|1|", "ERR") // only PRC is simulated
	c.expect("PRN", "ACK")
	if got := c.line(); got != "PRC" {
		t.Fatalf("notification %q", got)
	}
	<-s.Printed()
	c.expect("DAN", "ACK")
	c.expect("SST|4|", "ACK")
	c.expect("SST|2|", "ACK")
	c.expect("GST", "STS|0|0|B|2|4|")
	c.expect("SST|1|", "ACK")
	c.expect("GST", "STS|4|0|B|2|4|")
	s.SetFault(PrinterFault)
	c.expect("SST|3|", "ERR")
	c.expect("CAF", "ACK")
	c.expect("GST", "STS|4|0|B|2|4|")
	s.SetFault(ConsumableOut)
	c.expect("CAF", "ERR")
	s.SetFault(Warning)
	c.expect("GST", "STS|3|1|B|2|4|")
	c.expect(strings.Repeat("X", videojet.MaxLine+10), "ERR")
	c.expect("\rGST", "STS|3|1|B|2|4|") // a lone CR only resets the parser: no reply of its own
}

func (s *session) wsi(typ byte, fields ...string) []byte {
	s.t.Helper()
	f, err := videojet.EncodeWSI(typ, fields...)
	if err != nil {
		s.t.Fatal(err)
	}
	if _, err := s.c.Write(f); err != nil {
		s.t.Fatal(err)
	}
	var buf []byte
	s.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		b, err := s.r.ReadByte()
		if err != nil {
			s.t.Fatalf("no reply to %q: %v", f, err)
		}
		buf = append(buf, b)
		if _, n, err := videojet.DecodeWSIReply(buf); err == nil && n == len(buf) {
			return buf
		}
	}
}

func TestWSIStateMachine(t *testing.T) {
	s := start(t, Options{Protocol: WSI, Jobs: map[string]Job{"A": {Code: "DM", Fields: []string{"SN"}}}, Job: "A"})
	c := dial(t, s)
	for _, step := range []struct {
		typ    byte
		fields []string
		want   string
	}{
		{'Q', nil, "\x02A\x03"},
		{'M', []string{"NOPE"}, "!7F"},
		{'U', []string{"XX", "1"}, "!40"},
		{'U', []string{"SN", "7"}, "$37"},
		{'U', []string{"DM", "0112345678901231"}, "$25"},
		{'E', nil, "\x020000001\x03"},
		{'K', nil, "!4B"},
	} {
		if got := string(c.wsi(step.typ, step.fields...)); got != step.want {
			t.Fatalf("%c %q: %q, want %q", step.typ, step.fields, got, step.want)
		}
	}
	p := <-s.Printed()
	if p.Fields["SN"] != "7" || p.Data != "0112345678901231" {
		t.Fatalf("printed %+v", p)
	}
	if got := string(c.wsi('G', "A")); got != "\x021\x03" {
		t.Fatalf("counter %q", got)
	}
	c.wsi('R', "A")
	if got := string(c.wsi('G', "A")); got != "\x020\x03" {
		t.Fatalf("counter after reset %q", got)
	}
	// Noise between packets and a trailing checksum after ETX are skipped.
	c.c.Write([]byte("noise\x02\x03"))
	if got := string(c.wsi('E')); got != "\x020000001\x03" {
		t.Fatalf("after noise %q", got)
	}
	_, _, _, bad, _ := s.Counts()
	if bad != 1 {
		t.Fatalf("%d bad packets, want 1 (the empty one)", bad)
	}
}

// Any split of the stream yields the same lines and packets.
func TestSplitters(t *testing.T) {
	text := "\rSNO|PRC|1|\r\nJDA|DM=01\x1d21|\rGST\r"
	var want []string
	(&LineSplitter{}).Feed([]byte(text), func(l []byte, _ bool) { want = append(want, string(l)) })
	if strings.Join(want, ",") != ",SNO|PRC|1|,JDA|DM=01\x1d21|,GST" {
		t.Fatalf("lines %q", want)
	}
	wsi := "x\x02MSERIAL\x0351\x02UDM\n0101\x03\x02E\x03"
	var wantF []string
	(&FrameSplitter{}).Feed([]byte(wsi), func(typ byte, f []string, err error) { wantF = append(wantF, string(typ)+strings.Join(f, "/")) })
	if strings.Join(wantF, ",") != "MSERIAL,UDM/0101,E" {
		t.Fatalf("frames %q", wantF)
	}
	for i := 0; i <= len(text); i++ {
		var got []string
		var p LineSplitter
		for _, part := range []string{text[:i], text[i:]} {
			p.Feed([]byte(part), func(l []byte, _ bool) { got = append(got, string(l)) })
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("text split %d: %q", i, got)
		}
	}
	for i := 0; i <= len(wsi); i++ {
		var got []string
		var p FrameSplitter
		for _, part := range []string{wsi[:i], wsi[i:]} {
			p.Feed([]byte(part), func(typ byte, f []string, err error) { got = append(got, string(typ)+strings.Join(f, "/")) })
		}
		if strings.Join(got, ",") != strings.Join(wantF, ",") {
			t.Fatalf("wsi split %d: %q", i, got)
		}
	}
}

func TestParseFault(t *testing.T) {
	for name, want := range map[string]Fault{"none": None, "ribbon_out": ConsumableOut, "ink_empty": ConsumableOut, "garbage": Garbage} {
		if f, err := ParseFault(name); err != nil || f != want {
			t.Errorf("%s: %v %v", name, f, err)
		}
	}
	if _, err := ParseFault("paper_out"); err == nil {
		t.Error("unknown fault accepted")
	}
}

// What the driver sends is parsed by the simulator without panics and with
// bounded memory, however it is cut.
func FuzzTextStream(f *testing.F) {
	f.Add([]byte("\rSLA|SERIAL|SN=1|DM=01\x1d21|\rGST\r"), 5)
	f.Add([]byte(strings.Repeat("A", videojet.MaxLine+3)+"\r"), 1)
	f.Fuzz(func(t *testing.T, b []byte, split int) {
		if split < 0 || split > len(b) {
			split = len(b) / 2
		}
		var p LineSplitter
		for _, part := range [][]byte{b[:split], b[split:]} {
			p.Feed(part, func(line []byte, over bool) {
				if len(line) > videojet.MaxLine {
					t.Fatalf("line of %d bytes", len(line))
				}
				if cmd, err := ParseCommand(line); err == nil && len(cmd.Code) != 3 {
					t.Fatalf("command %+v", cmd)
				}
			})
		}
	})
}

func FuzzWSIStream(f *testing.F) {
	f.Add([]byte("x\x02MSERIAL\x0351\x02UDM\n0101\x03\x02E\x03"), 7)
	f.Fuzz(func(t *testing.T, b []byte, split int) {
		if split < 0 || split > len(b) {
			split = len(b) / 2
		}
		var p FrameSplitter
		for _, part := range [][]byte{b[:split], b[split:]} {
			p.Feed(part, func(typ byte, fields []string, err error) {
				if err == nil && (typ < 'A' || typ > 'Z') {
					t.Fatalf("type %q", typ)
				}
			})
		}
		if len(p.buf) > videojet.MaxWSIPacket+1 {
			t.Fatalf("splitter holds %d bytes", len(p.buf))
		}
	})
}
