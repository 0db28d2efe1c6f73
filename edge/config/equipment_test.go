package config

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

func TestEquipmentDefaults(t *testing.T) {
	l, err := Load("testdata/minimal.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	eq := l.Equipment
	if eq.ReportableAfter.D() != 4*time.Hour || eq.DueSoon.D() != 168*time.Hour || eq.AttributionWindow.D() != 30*time.Second || eq.OverrideValidFor.D() != 8*time.Hour {
		t.Fatalf("defaults: %+v", eq)
	}
	if strings.Join(eq.Interlock, ",") != "print,verification" {
		t.Fatalf("default interlock: %v", eq.Interlock)
	}
	names := l.EquipmentNames()
	for name, kind := range map[string]string{"p1": "printer", "c1": "camera", "l1": "plc", BuiltinEdgeServer: "edge_server", BuiltinCentralLink: "link"} {
		if names[name] != kind {
			t.Errorf("equipment %s: kind %q, want %q", name, names[name], kind)
		}
	}
}

func TestEquipmentValues(t *testing.T) {
	l, err := Load("testdata/equipment.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	eq := l.Equipment
	if eq.DueSoon.D() != 336*time.Hour || eq.AttributionWindow.D() != time.Minute || len(eq.Items) != 6 {
		t.Fatalf("equipment: %+v", eq)
	}
	p := eq.Items[0]
	if p.Name != "p1" || p.Serial != "52J184400123" || p.Asset != "PKG-L1-PR-01" || p.Calibration == nil || p.Calibration.Interval.D() != 4380*time.Hour ||
		p.Calibration.Tolerance.D() != 168*time.Hour || p.Calibration.LastDone != "2026-06-01" || p.Maintenance.Interval.D() != 720*time.Hour {
		t.Fatalf("item p1: %+v %+v", p, p.Calibration)
	}
	if st := eq.Items[3]; st.Critical == nil || *st.Critical || st.Class != "aggregation" || l.EquipmentNames()["case-station"] != "station" {
		t.Fatalf("case-station: %+v", st)
	}
	d, err := ParseDate(p.Calibration.LastDone)
	if err != nil || !d.Equal(time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("date: %v %v", d, err)
	}
	// An explicitly empty interlock list disables the interlock.
	raw, _ := os.ReadFile("testdata/minimal.good.yaml")
	l2, err := Parse("x.yaml", append(raw, []byte("equipment:\n  interlock: []\n")...))
	if err != nil || l2.Equipment.Interlock == nil || len(l2.Equipment.Interlock) != 0 {
		t.Fatalf("empty interlock: %v %v", l2, err)
	}
}

func TestEquipmentSchema(t *testing.T) {
	raw, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := jsonschema.UnmarshalJSON(strings.NewReader(string(raw)))
	c := jsonschema.NewCompiler()
	if err := c.AddResource("line.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("line.json")
	if err != nil {
		t.Fatal(err)
	}
	check := func(data []byte) error {
		var v any
		if err := yaml.Unmarshal(data, &v); err != nil {
			t.Fatal(err)
		}
		j, _ := json.Marshal(v)
		inst, _ := jsonschema.UnmarshalJSON(strings.NewReader(string(j)))
		return sch.Validate(inst)
	}
	good, _ := os.ReadFile("testdata/equipment.good.yaml")
	if err := check(good); err != nil {
		t.Fatalf("equipment.good.yaml does not validate: %v", err)
	}
	bad := strings.Replace(string(good), "serial: R740-XYZ", "serail: R740-XYZ", 1)
	if err := check([]byte(bad)); err == nil {
		t.Fatal("schema accepts an unknown equipment key")
	}
}

func FuzzParseEquipment(f *testing.F) {
	for _, name := range []string{"testdata/equipment.good.yaml", "testdata/equipment-class.bad.yaml", "testdata/equipment-deps.bad.yaml", "testdata/equipment-schedule.bad.yaml"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := Parse("fuzz.yaml", b)
		if err == nil {
			// A valid config has a valid, acyclic registry.
			names := l.EquipmentNames()
			for _, it := range l.Equipment.Items {
				for _, d := range it.DependsOn {
					if _, ok := names[d]; !ok || d == it.Name {
						t.Fatalf("accepted dependency %s -> %s", it.Name, d)
					}
				}
			}
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
