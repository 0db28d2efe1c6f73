package config

import (
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

var update = flag.Bool("update", false, "rewrite the .errors golden files")

type fakePrinterOptions struct {
	EscapeChar string `yaml:"escape_char"`
}

func (o *fakePrinterOptions) Validate() error {
	if o.EscapeChar != "" && len(o.EscapeChar) != 1 {
		return errors.New("escape_char: must be one printable ASCII character")
	}
	return nil
}

type fakeEmptyOptions struct{}

func init() {
	RegisterDriver("printer", "fakeprinter", func() any { return &fakePrinterOptions{} })
	RegisterDriver("camera", "fakecamera", func() any { return &fakeEmptyOptions{} })
	RegisterDriver("plc", "fakeplc", func() any { return &fakeEmptyOptions{} })
}

// TestFixtures loads every testdata/*.good.yaml (must be valid) and
// *.bad.yaml (must fail with exactly the errors in the .errors golden file).
func TestFixtures(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.yaml")
	if len(files) < 20 {
		t.Fatalf("only %d fixtures", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			l, err := Load(f)
			if strings.HasSuffix(f, ".good.yaml") {
				if err != nil {
					t.Fatalf("valid config refused:\n%v", err)
				}
				if l.Hash == "" || l.File != f {
					t.Fatal("hash or file not set")
				}
				return
			}
			if err == nil {
				t.Fatal("invalid config accepted")
			}
			var errs *Errors
			if !errors.As(err, &errs) {
				t.Fatalf("want *Errors, got %T: %v", err, err)
			}
			for _, e := range errs.List {
				if e.Line < 1 {
					t.Errorf("error without a line number: %v", e)
				}
			}
			golden := f + ".errors"
			got := err.Error() + "\n"
			if *update {
				os.WriteFile(golden, []byte(got), 0o644)
			}
			want, rerr := os.ReadFile(golden)
			if rerr != nil {
				t.Fatalf("no golden file (run go test -update): %v", rerr)
			}
			if got != string(want) {
				t.Fatalf("errors differ from %s:\ngot:\n%s\nwant:\n%s", golden, got, want)
			}
		})
	}
}

func TestDefaultsApplied(t *testing.T) {
	l, err := Load("testdata/minimal.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p := l.Products[0]
	if p.MinGrade != "C" || p.Serials.Length != 12 || p.Serials.Source != "generate" || p.Aggregation != "sequential" {
		t.Fatalf("product defaults: %+v", p)
	}
	if l.Edge.VerdictTimeout.D().Seconds() != 2 || l.Devices.Printers[0].Timeout.D().Seconds() != 2 || l.Central.Broker == "" {
		t.Fatalf("defaults: %+v", l.Edge)
	}
	if _, ok := l.Devices.Printers[0].Decoded.(*fakePrinterOptions); !ok {
		t.Fatalf("driver options not decoded: %T", l.Devices.Printers[0].Decoded)
	}
	if lv := l.Devices.Printers[0].Levels; len(lv) != 1 || lv[0] != "unit" || l.Edge.RejectDeadline.D().Milliseconds() != 500 {
		t.Fatalf("printer levels %v, reject deadline %v", lv, l.Edge.RejectDeadline.D())
	}
}

func TestFullConfigValues(t *testing.T) {
	l, err := Load("testdata/full.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Devices.Printers[0].Decoded.(*fakePrinterOptions).EscapeChar; got != "_" {
		t.Fatalf("options: %q", got)
	}
	if l.Edge.VerdictTimeout.D().Milliseconds() != 1500 || l.Batch.Lot != "A1-2026/11" || l.Products[0].Serials.Length != 14 {
		t.Fatalf("values: %+v %+v", l.Edge, l.Batch)
	}
	if p := l.Devices.Printers; len(p) != 2 || strings.Join(p[0].Levels, ",") != "unit" || strings.Join(p[1].Levels, ",") != "case,pallet" || l.Edge.RejectDeadline.D().Milliseconds() != 300 {
		t.Fatalf("printer levels %v %v, reject deadline %v", p[0].Levels, p[1].Levels, l.Edge.RejectDeadline.D())
	}
}

// The JSON Schema compiles, accepts the good fixtures and refuses an
// unknown key.
func TestSchema(t *testing.T) {
	raw, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("line.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("line.json")
	if err != nil {
		t.Fatal(err)
	}
	check := func(file string) error {
		data, _ := os.ReadFile(file)
		var v any
		if err := yaml.Unmarshal(data, &v); err != nil {
			t.Fatal(err)
		}
		j, _ := json.Marshal(v)
		inst, _ := jsonschema.UnmarshalJSON(strings.NewReader(string(j)))
		return sch.Validate(inst)
	}
	for _, f := range []string{"testdata/minimal.good.yaml", "testdata/full.good.yaml"} {
		if err := check(f); err != nil {
			t.Errorf("%s does not validate: %v", f, err)
		}
	}
	if err := check("testdata/typo-key.bad.yaml"); err == nil {
		t.Error("schema accepts an unknown key")
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"testdata/minimal.good.yaml", "testdata/full.good.yaml", "testdata/typo-key.bad.yaml"} {
		b, _ := os.ReadFile(name)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := Parse("fuzz.yaml", b)
		if err == nil {
			return
		}
		var errs *Errors
		if !errors.As(err, &errs) {
			t.Fatalf("error of type %T: %v", err, err)
		}
		for _, e := range errs.List {
			if e.File != "fuzz.yaml" || e.Msg == "" {
				t.Fatalf("error without file or message: %#v", e)
			}
		}
	})
}
