package camera_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"gopkg.in/yaml.v3"

	"github.com/serialine/serialine/drivers"
	"github.com/serialine/serialine/drivers/camera"
	"github.com/serialine/serialine/drivers/camera/camerasim"
	"github.com/serialine/serialine/sync/gs1"
)

var update = flag.Bool("update", false, "rewrite golden files")

const unitData = "01095060001343521728113010L1\x1d21S1"

func parser(t testing.TB, o camera.Options) *camera.Parser {
	t.Helper()
	p, err := camera.NewParser("cam-1", o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseTable(t *testing.T) {
	dataman := camera.Options{Profile: "dataman"}
	params := camera.Options{Profile: "dataman", Format: camera.Format{Fields: []string{"data", "grade", "param:SC", "param:MOD", "-"}}}
	gs := camera.Options{Profile: "dataman", Format: camera.Format{GS: "<GS>"}}
	keyence := camera.Options{Profile: "keyence"}
	numeric := camera.Options{Format: camera.Format{Mode: "regex", Pattern: `^DATA=(?P<data>\S+) Q=(?P<grade>[0-9.]+) SC=(?P<p_SC>[A-F])$`}}
	tests := []struct {
		name  string
		opts  camera.Options
		line  string
		data  string
		sym   string
		grade drivers.Grade
		nr    bool
		err   string
	}{
		{"dataman good", dataman, "]d2" + unitData + "|A", unitData, "]d2", 4, false, ""},
		{"dataman no symbology id", dataman, unitData + "|B", unitData, "", 3, false, ""},
		{"dataman numeric grade", dataman, "]d2" + unitData + "|1.7", unitData, "]d2", 1.7, false, ""},
		{"dataman no-read", dataman, "NoRead", "", "", 0, true, ""},
		{"overall is the lowest parameter", params, "]d2" + unitData + "|A|B|C|x", unitData, "]d2", 2, false, ""},
		{"gs replacement", gs, "]d2" + strings.ReplaceAll(unitData, "\x1d", "<GS>") + "|A", unitData, "]d2", 4, false, ""},
		{"keyence good", keyence, unitData + ":B", unitData, "", 3, false, ""},
		{"keyence error", keyence, "ERROR", "", "", 0, true, ""},
		{"regex numeric", numeric, "DATA=]d2010950600013435217281130 Q=3.2 SC=C", "010950600013435217281130", "]d2", 2, false, ""},
		{"bad grade letter", dataman, "]d2" + unitData + "|Q", "", "", 0, false, `cam-1 result line field grade: malformed device data: grade "Q": want A-F or 0.0-4.0`},
		{"wrong field count", dataman, "]d2" + unitData, "", "", 0, false, "cam-1 result line : malformed device data: 1 fields, the format has 2 (data|grade)"},
		{"empty data", dataman, "|A", "", "", 0, false, "empty data"},
		{"regex mismatch", keyence, "garbage", "", "", 0, false, "does not match the configured pattern"},
		{"bad param", params, "]d2" + unitData + "|A|B|Z|x", "", "", 0, false, "field param:MOD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := parser(t, tt.opts).Parse([]byte(tt.line))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || !errors.Is(err, drivers.ErrMalformed) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				var de *drivers.DeviceError
				if !errors.As(err, &de) || de.Device != "cam-1" || len(de.Raw) == 0 {
					t.Fatalf("error does not name the device with the bytes: %#v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.NoRead != tt.nr || r.Data != tt.data || r.Symbology != tt.sym || r.Grade != tt.grade {
				t.Fatalf("got %+v", r)
			}
		})
	}
}

// Golden: captured-style lines of both profiles and their readings.
func TestParseGolden(t *testing.T) {
	raw, err := os.ReadFile("testdata/lines.txt")
	if err != nil {
		t.Fatal(err)
	}
	type out struct {
		Profile, Line, Data, Symbology, Error string
		NoRead                                bool
		Grade                                 float64
	}
	var got []out
	for _, l := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		profile, line, _ := strings.Cut(l, " ")
		line = strings.ReplaceAll(line, "<0x1d>", "\x1d")
		r, err := parser(t, camera.Options{Profile: profile}).Parse([]byte(line))
		o := out{Profile: profile, Line: line, Data: r.Data, Symbology: r.Symbology, NoRead: r.NoRead, Grade: float64(r.Grade)}
		if err != nil {
			o = out{Profile: profile, Line: line, Error: err.Error()}
		}
		got = append(got, o)
	}
	b, _ := json.MarshalIndent(got, "", "  ")
	if *update {
		os.WriteFile("testdata/lines.golden.json", b, 0o644)
	}
	want, _ := os.ReadFile("testdata/lines.golden.json")
	if string(b) != string(want) {
		t.Fatalf("differs from testdata/lines.golden.json (go test -update):\n%s", b)
	}
}

func TestOptionsValidate(t *testing.T) {
	bad := map[string]camera.Options{
		"profile":       {Profile: "sick"},
		"mode":          {Format: camera.Format{Mode: "json"}},
		"no data":       {Format: camera.Format{Fields: []string{"grade"}}},
		"bad field":     {Format: camera.Format{Fields: []string{"data", "qual"}}},
		"pattern":       {Format: camera.Format{Mode: "regex", Pattern: "("}},
		"pattern group": {Format: camera.Format{Mode: "regex", Pattern: "(?P<code>.*)"}},
	}
	for name, o := range bad {
		if err := o.Validate(); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

func startSim(t testing.TB, opt camerasim.Options) *camerasim.Sim {
	t.Helper()
	sim := camerasim.New(opt, zerolog.Nop())
	if _, err := sim.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { sim.Serve(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return sim
}

func connect(t testing.TB, addr string, o camera.Options) *camera.Camera {
	t.Helper()
	c, err := camera.New("cam-1", addr, time.Second, o, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	deadline := time.Now().Add(5 * time.Second)
	for c.Connect(context.Background()) != nil {
		if time.Now().After(deadline) {
			t.Fatal("cannot connect")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return c
}

func read(t *testing.T, c *camera.Camera) (drivers.Reading, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.Read(ctx)
}

// waitClients lets the sim register the client before lines are broadcast.
func seeWhenConnected(t *testing.T, c *camera.Camera, sim *camerasim.Sim, data string) drivers.Reading {
	t.Helper()
	for i := 0; ; i++ {
		sim.See(data)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		r, err := c.Read(ctx)
		cancel()
		if err == nil {
			return r
		}
		if i > 50 {
			t.Fatalf("no reading: %v", err)
		}
	}
}

func TestDriverAgainstSim(t *testing.T) {
	sim := startSim(t, camerasim.Options{Seed: 1})
	c := connect(t, sim.Addr(), camera.Options{})
	r := seeWhenConnected(t, c, sim, unitData)
	if r.Data != unitData || r.Grade != 4 || r.Symbology != "]d2" {
		t.Fatalf("good read: %+v", r)
	}
	for _, tc := range []struct {
		o     camerasim.Outcome
		check func(drivers.Reading, error) bool
	}{
		{camerasim.NoRead, func(r drivers.Reading, err error) bool { return err == nil && r.NoRead }},
		{camerasim.BadGrade, func(r drivers.Reading, err error) bool { return err == nil && r.Grade == 1 }},
		{camerasim.Mismatch, func(r drivers.Reading, err error) bool {
			return err == nil && r.Data != unitData && len(r.Data) == len(unitData)
		}},
		{camerasim.Duplicate, func(r drivers.Reading, err error) bool { return err == nil && r.Data == unitData }},
		{camerasim.Garbage, func(r drivers.Reading, err error) bool { return errors.Is(err, drivers.ErrMalformed) }},
		{camerasim.Good, func(r drivers.Reading, err error) bool { return err == nil && r.Data == "other" }},
	} {
		sim.Next(tc.o)
		data := unitData
		if tc.o == camerasim.Good {
			data = "other"
		}
		sim.See(data)
		r, err := read(t, c)
		if !tc.check(r, err) {
			t.Errorf("outcome %d: %+v %v", tc.o, r, err)
		}
	}
}

func TestKeyenceTrigger(t *testing.T) {
	sim := startSim(t, camerasim.Options{Profile: "keyence"})
	c := connect(t, sim.Addr(), camera.Options{Profile: "keyence", Trigger: camera.Trigger{Enabled: true}})
	sim.See(unitData)
	// Nothing comes before the trigger.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	if _, err := c.Read(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("read before trigger: %v", err)
	}
	cancel()
	if err := c.Trigger(context.Background()); err != nil {
		t.Fatal(err)
	}
	r, err := read(t, c)
	if err != nil || r.Data != unitData || r.Grade != 4 {
		t.Fatalf("after LON: %+v %v", r, err)
	}
	if err := c.Trigger(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r, err := read(t, c); err != nil || !r.NoRead {
		t.Fatalf("trigger with nothing in view: %+v %v", r, err)
	}
}

func TestReconnectAndLongLines(t *testing.T) {
	sim := startSim(t, camerasim.Options{})
	c := connect(t, sim.Addr(), camera.Options{})
	seeWhenConnected(t, c, sim, unitData)
	sim.DropClients()
	if _, err := read(t, c); !errors.Is(err, drivers.ErrNotConnected) {
		t.Fatalf("read after drop: %v", err)
	}
	if _, err := c.Read(context.Background()); !errors.Is(err, drivers.ErrNotConnected) {
		t.Fatalf("read on a dead link: %v", err)
	}
	c2 := connect(t, sim.Addr(), camera.Options{})
	seeWhenConnected(t, c2, sim, unitData)
	sim.See(strings.Repeat("x", camera.MaxLine+10))
	if _, err := read(t, c2); !errors.Is(err, drivers.ErrMalformed) {
		t.Fatalf("long line: %v", err)
	}
	sim.See(unitData)
	if r, err := read(t, c2); err != nil || r.Data != unitData {
		t.Fatalf("line after a long one: %+v %v", r, err)
	}
	if c2.Close() != nil || c2.Close() != nil {
		t.Fatal("close twice")
	}
}

// Command responses are not results: acknowledgements are skipped, refused
// commands are device faults.
func TestCommandResponses(t *testing.T) {
	k := parser(t, camera.Options{Profile: "keyence"})
	for _, line := range []string{"OK,LON", "OK,LOFF"} {
		if _, err := k.Parse([]byte(line)); !errors.Is(err, camera.ErrAcknowledgement) {
			t.Errorf("%s: %v", line, err)
		}
	}
	if _, err := k.Parse([]byte("ER,LON,05")); !errors.Is(err, drivers.ErrDeviceFault) || !strings.Contains(err.Error(), `cam-1 command response: device fault: the reader refused a command: "ER,LON,05"`) {
		t.Errorf("ER: %v", err)
	}
	d := parser(t, camera.Options{Profile: "dataman"})
	if _, err := d.Parse([]byte("||0:12[0]")); !errors.Is(err, camera.ErrAcknowledgement) {
		t.Errorf("DMCC ok: %v", err)
	}
	if _, err := d.Parse([]byte("||0:12[101]")); !errors.Is(err, drivers.ErrDeviceFault) || !strings.Contains(err.Error(), "status 101 (command invalid)") {
		t.Errorf("DMCC error: %v", err)
	}
	if _, err := d.Parse([]byte("||garbage")); !errors.Is(err, drivers.ErrMalformed) {
		t.Errorf("DMCC garbage: %v", err)
	}
}

// The data field may hold the delimiter: fields before it are cut from the
// left, those after it from the right.
func TestDelimiterInData(t *testing.T) {
	for _, c := range []struct {
		fields []string
		line   string
		data   string
		grade  drivers.Grade
	}{
		{[]string{"data", "grade"}, "]d201095060001343521A,B" + "\x1d" + "21S,1,C", "01095060001343521A,B\x1d21S,1", 2},
		{[]string{"grade", "data", "param:SC"}, "B,]d2010950600013435221X,Y,D", "010950600013435221X,Y", 1},
		{[]string{"-", "grade", "data"}, "cam7,A,]d2010950600013435221a,b,c", "010950600013435221a,b,c", 4},
	} {
		p := parser(t, camera.Options{Format: camera.Format{Delimiter: ",", Fields: c.fields}})
		r, err := p.Parse([]byte(c.line))
		if err != nil || r.Data != c.data || r.Grade != c.grade {
			t.Errorf("%v %q: %+v %v", c.fields, c.line, r, err)
		}
	}
	p := parser(t, camera.Options{Format: camera.Format{Delimiter: ",", Fields: []string{"grade", "data", "param:SC"}}})
	if _, err := p.Parse([]byte("A,nodelimiter")); !errors.Is(err, drivers.ErrMalformed) {
		t.Errorf("too few fields: %v", err)
	}
}

// What the camera reports is GS1 scanner output that sync/gs1 parses: the
// symbology identifier and GS separators survive the format layer.
func TestReadingsParseAsGS1(t *testing.T) {
	want := gs1.Elements{{AI: "01", Value: "09506000134352"}, {AI: "17", Value: "281130"}, {AI: "10", Value: "L1"}, {AI: "21", Value: "S1"}}
	for _, o := range []camera.Options{{Profile: "dataman"}, {Profile: "keyence"}, {Profile: "dataman", Format: camera.Format{GS: "<GS>"}}} {
		line := "]d2" + unitData + "|A"
		switch {
		case o.Profile == "keyence":
			line = unitData + ":A"
		case o.Format.GS != "":
			line = strings.ReplaceAll(line, "\x1d", "<GS>")
		}
		r, err := parser(t, o).Parse([]byte(line))
		if err != nil {
			t.Fatal(err)
		}
		els, err := gs1.Parse(r.Symbology + r.Data)
		if err != nil || !els.Equal(want) {
			t.Errorf("%+v: %v %v", o, els, err)
		}
	}
}

// Garbage from the device is a *drivers.DeviceError with the bytes, bounded.
func TestMalformedBytesBounded(t *testing.T) {
	line := []byte("\x01" + strings.Repeat("x", 1000))
	_, err := parser(t, camera.Options{}).Parse(line)
	var de *drivers.DeviceError
	if !errors.As(err, &de) || !errors.Is(err, drivers.ErrMalformed) || len(de.Raw) != 256 || de.Raw[0] != 1 {
		t.Fatalf("%#v", err)
	}
}

// A read that times out leaves the link usable.
func TestReadTimeoutKeepsLink(t *testing.T) {
	sim := startSim(t, camerasim.Options{})
	c := connect(t, sim.Addr(), camera.Options{})
	seeWhenConnected(t, c, sim, unitData)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	_, err := c.Read(ctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("read without a result: %v", err)
	}
	sim.See(unitData)
	if r, err := read(t, c); err != nil || r.Data != unitData {
		t.Fatalf("read after a timeout: %+v %v", r, err)
	}
	if h := c.Health(); !h.Connected || h.Fault != "" {
		t.Fatalf("health %+v", h)
	}
}

// A read cancelled in the middle of a line keeps what arrived: the next
// read returns the whole line.
func TestCancelledReadKeepsPartialLine(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	c := connect(t, ln.Addr().String(), camera.Options{})
	srv := <-accepted
	defer srv.Close()
	srv.Write([]byte("]d2" + unitData[:10]))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	_, err = c.Read(ctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("half a line: %v", err)
	}
	srv.Write([]byte(unitData[10:] + "|B\r\n"))
	if r, err := read(t, c); err != nil || r.Data != unitData || r.Grade != 3 {
		t.Fatalf("the rest of the line: %+v %v", r, err)
	}
}

// The keyence reader refuses unknown commands: a device fault, and the next
// trigger still works.
func TestKeyenceRefusedCommand(t *testing.T) {
	sim := startSim(t, camerasim.Options{Profile: "keyence"})
	c := connect(t, sim.Addr(), camera.Options{Profile: "keyence", Trigger: camera.Trigger{Enabled: true, Command: "LONX\r"}})
	if err := c.Trigger(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := read(t, c); !errors.Is(err, drivers.ErrDeviceFault) || !strings.Contains(err.Error(), "ER,LONX,00") {
		t.Fatalf("refused command: %v", err)
	}
}

// The embedded sample config decodes strictly into the options and
// validates.
func TestSampleConfig(t *testing.T) {
	var devs []struct {
		Name, Driver, Address string
		Options               camera.Options
	}
	dec := yaml.NewDecoder(strings.NewReader(camera.SampleConfig))
	dec.KnownFields(true)
	if err := dec.Decode(&devs); err != nil || len(devs) != 2 {
		t.Fatalf("%v %d", err, len(devs))
	}
	for _, d := range devs {
		if d.Options.Profile == "" {
			d.Options.Profile = d.Driver
		}
		if err := d.Options.Validate(); err != nil {
			t.Errorf("%s: %v", d.Name, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add("dataman", []byte("]d2"+unitData+"|A"))
	f.Add("keyence", []byte(unitData+":B"))
	f.Add("dataman", []byte("NoRead"))
	f.Fuzz(func(t *testing.T, profile string, line []byte) {
		if profile != "keyence" {
			profile = "dataman"
		}
		p, err := camera.NewParser("cam", camera.Options{Profile: profile})
		if err != nil {
			t.Fatal(err)
		}
		r, err := p.Parse(line)
		if err != nil {
			var de *drivers.DeviceError
			if !errors.Is(err, camera.ErrAcknowledgement) && (!errors.As(err, &de) || len(de.Raw) > 256 || !(errors.Is(err, drivers.ErrMalformed) || errors.Is(err, drivers.ErrDeviceFault))) {
				t.Fatalf("error is not a bounded device error: %v", err)
			}
			return
		}
		if r.NoRead && r.Data != "" {
			t.Fatal("no-read with data")
		}
		if r.Grade < 0 || r.Grade > 4 {
			t.Fatalf("grade %v out of range", r.Grade)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	p := parser(b, camera.Options{})
	line := []byte("]d2" + unitData + "|A")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Parse(line); err != nil {
			b.Fatal(err)
		}
	}
}

// Per-unit cost of a camera result: parsing alone, the driver reading from
// the simulator, and the raw limit (the same lines read with bufio from a
// plain TCP connection to the same simulator).
func BenchmarkRead(b *testing.B) {
	sim := startSim(b, camerasim.Options{})
	ctx := context.Background()
	b.Run("driver", func(b *testing.B) {
		c := connect(b, sim.Addr(), camera.Options{})
		defer c.Close()
		// Wait until the sim has registered the client.
		for {
			sim.See(unitData)
			cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
			_, err := c.Read(cctx)
			cancel()
			if err == nil {
				break
			}
		}
		b.ReportAllocs()
		for b.Loop() {
			sim.See(unitData)
			if _, err := c.Read(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("raw-tcp", func(b *testing.B) {
		conn, err := net.Dial("tcp", sim.Addr())
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		rd := bufio.NewReader(conn)
		for {
			sim.See(unitData)
			conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			if _, err := rd.ReadSlice('\n'); err == nil {
				break
			}
		}
		conn.SetReadDeadline(time.Time{})
		b.ReportAllocs()
		for b.Loop() {
			sim.See(unitData)
			if _, err := rd.ReadSlice('\n'); err != nil {
				b.Fatal(err)
			}
		}
	})
}
