package devices

import (
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/serialine/serialine/drivers"
	"github.com/serialine/serialine/drivers/zebra"
	"github.com/serialine/serialine/edge/config"
	"github.com/serialine/serialine/sync/gs1"
)

const labelsLine = `line: {id: l}
edge: {id: e}
company: {gs1_prefix: "9506000"}
products:
  - gtin: "09506000134352"
    name: T
    packaging: {units_per_case: 1, cases_per_pallet: 1}
    labels:
      unit: "^XA^FXproduct^BXN,4,200,,,,{{.Escape}}^FD{{.DataMatrix}}^FS^XZ"
devices:
  printers: [{name: p, driver: zebra, address: "127.0.0.1:1"}]
  cameras: [{name: c, driver: dataman, address: "127.0.0.1:2"}]
  plcs: [{name: l, driver: modbus, address: "127.0.0.1:3", options: {tags: {reject: {coil: 0}}}}]
`

// products[].labels reach the printer: the product's unit template is used
// for its GTIN; a template that does not print the code is refused.
func TestProductLabelTemplates(t *testing.T) {
	Register()
	cfg, err := config.Parse("labels.yaml", []byte(labelsLine))
	if err != nil {
		t.Fatal(err)
	}
	dev, err := Build(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	z := dev.Printer.(*zebra.Zebra)
	zpl, err := z.Render(drivers.Label{Level: drivers.LevelUnit, Data: gs1.Elements{{AI: "01", Value: "09506000134352"}, {AI: "21", Value: "S1"}}})
	if err != nil || string(zpl) != "^XA^FXproduct^BXN,4,200,,,,_^FD_1010950600013435221S1^FS^XZ" {
		t.Fatalf("%s %v", zpl, err)
	}
	bad, err := config.Parse("labels.yaml", []byte(strings.Replace(labelsLine, "^FD{{.DataMatrix}}^FS", "", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Build(bad, zerolog.Nop()); err == nil || !strings.Contains(err.Error(), "products[0].labels: printer p: product 09506000134352 labels: templates.unit: the template does not print ^FD{{.DataMatrix}}") {
		t.Fatalf("bad template: %v", err)
	}
}

// A printer whose templates live on the printer (Videojet jobs) cannot take
// products[].labels: the config is refused, not silently half-applied.
func TestProductLabelsNeedATemplatePrinter(t *testing.T) {
	Register()
	src := strings.Replace(labelsLine, `{name: p, driver: zebra, address: "127.0.0.1:1"}`, `{name: p, driver: videojet, address: "127.0.0.1:1", options: {jobs: {unit: {name: J, code: DM}}}}`, 1)
	cfg, err := config.Parse("labels.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Build(cfg, zerolog.Nop()); err == nil || !strings.Contains(err.Error(), "products[0].labels: printer p (driver videojet) does not take label templates") {
		t.Fatalf("videojet with product labels: %v", err)
	}
}
