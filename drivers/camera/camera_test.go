package camera_test

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/serialine/serialine/drivers"
	"github.com/serialine/serialine/drivers/camera"
	"github.com/serialine/serialine/drivers/camera/camerasim"
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
			if !errors.Is(err, drivers.ErrMalformed) {
				t.Fatalf("error not ErrMalformed: %v", err)
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

func BenchmarkRead(b *testing.B) {
	sim := startSim(b, camerasim.Options{})
	c := connect(b, sim.Addr(), camera.Options{})
	ctx := context.Background()
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
	b.ResetTimer()
	for b.Loop() {
		sim.See(unitData)
		if _, err := c.Read(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
