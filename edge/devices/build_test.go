package devices

import (
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/serialine/serialine/drivers"
	"github.com/serialine/serialine/drivers/zebra"
	"github.com/serialine/serialine/edge/config"
	"github.com/serialine/serialine/edge/line"
	"github.com/serialine/serialine/sync/gs1"
)

const levelsLine = `line: {id: l}
edge: {id: e, reject_deadline: 400ms}
company: {gs1_prefix: "9506000"}
products:
  - gtin: "09506000134352"
    name: T
    packaging: {units_per_case: 1, cases_per_pallet: 1}
    labels:
      case: "^XA^FXproduct-case^BCN,100,N,N,N^FD{{.GS1128}}^FS^XZ"
devices:
  printers:
    - {name: unit-printer, driver: zebra, address: "127.0.0.1:1"}
    - {name: case-printer, driver: zebra, address: "127.0.0.1:2", levels: [case, pallet]}
  cameras: [{name: c, driver: keyence, address: "127.0.0.1:3", options: {trigger: {enabled: true}}}]
  plcs: [{name: l, driver: modbus, address: "127.0.0.1:4", options: {tags: {reject: {coil: 0, pulse: 100ms}}}}]
`

// Printers are built by level: the unit printer, and the case/pallet
// printer with the product's case template (the unit printer does not get
// it); a keyence camera with trigger.enabled is triggered by the engine.
func TestBuildPrintersByLevel(t *testing.T) {
	Register()
	cfg, err := config.Parse("levels.yaml", []byte(levelsLine))
	if err != nil {
		t.Fatal(err)
	}
	dev, err := Build(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if dev.PrinterName != "unit-printer" || len(dev.LabelPrinters) != 1 || dev.LabelPrinters[0].Name != "case-printer" ||
		len(dev.LabelPrinters[0].Levels) != 2 || dev.LabelPrinters[0].Levels[0] != drivers.LevelCase || dev.LabelPrinters[0].Levels[1] != drivers.LevelPallet {
		t.Fatalf("devices %+v", dev)
	}
	if !dev.TriggerCamera {
		t.Fatal("trigger.enabled: the engine should trigger the camera")
	}
	caseLabel := drivers.Label{Level: drivers.LevelCase, Data: gs1.Elements{{AI: "00", Value: "395060000000000016"}}, Text: map[string]string{"GTIN": "09506000134352"}}
	zpl, err := dev.LabelPrinters[0].Printer.(*zebra.Zebra).Render(caseLabel)
	if err != nil || !strings.HasPrefix(string(zpl), "^XA^FXproduct-case") {
		t.Fatalf("case printer: %s %v", zpl, err)
	}
	zpl, err = dev.Printer.(*zebra.Zebra).Render(caseLabel)
	if err != nil || strings.Contains(string(zpl), "product-case") {
		t.Fatalf("unit printer got the case template: %s %v", zpl, err)
	}

	for _, c := range []struct {
		name, from, to, want string
	}{
		{"no trigger", "options: {trigger: {enabled: true}}", "options: {}", ""},
		{"pulse too long", "pulse: 100ms", "pulse: 400ms", "devices.plcs[0] (l): the reject pulse (400ms) must be shorter than edge.reject_deadline (400ms)"},
		{"one printer for everything", "\n    - {name: case-printer, driver: zebra, address: \"127.0.0.1:2\", levels: [case, pallet]}", "", "products[0].labels.case: no printer labels cases on this line"},
	} {
		t.Run(c.name, func(t *testing.T) {
			// The config refuses what it can see; Build what needs the drivers.
			cfg, err := config.Parse("levels.yaml", []byte(strings.Replace(levelsLine, c.from, c.to, 1)))
			var built line.Devices
			if err == nil {
				built, err = Build(cfg, zerolog.Nop())
			}
			if c.want == "" {
				if err != nil || built.TriggerCamera {
					t.Fatalf("err %v, camera triggered %v: want no trigger without trigger.enabled", err, built.TriggerCamera)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want %q", err, c.want)
			}
		})
	}
}

// One printer may label units and cases: it is the unit printer and a label
// printer at once.
func TestOnePrinterForUnitsAndCases(t *testing.T) {
	Register()
	src := strings.Replace(levelsLine, "\n    - {name: case-printer, driver: zebra, address: \"127.0.0.1:2\", levels: [case, pallet]}", "", 1)
	src = strings.Replace(src, `{name: unit-printer, driver: zebra, address: "127.0.0.1:1"}`, `{name: unit-printer, driver: zebra, address: "127.0.0.1:1", levels: [unit, case]}`, 1)
	cfg, err := config.Parse("levels.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	dev, err := Build(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if len(dev.LabelPrinters) != 1 || dev.LabelPrinters[0].Name != "unit-printer" || dev.LabelPrinters[0].Printer != dev.Printer {
		t.Fatalf("label printers %+v", dev.LabelPrinters)
	}
}
