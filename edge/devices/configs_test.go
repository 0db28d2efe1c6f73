package devices

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/serialine/serialine/edge/config"
)

// Every line config shipped in configs/ is valid with the real drivers.
func TestShippedLineConfigs(t *testing.T) {
	Register()
	files, err := filepath.Glob("../../configs/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains("\n"+string(raw), "\nline:") {
			continue
		}
		n++
		if _, err := config.Load(f); err != nil {
			t.Errorf("%v", err)
		}
	}
	if n == 0 {
		t.Fatal("no line config in configs/")
	}
}

// The real drivers' options are strict too.
func TestDriverOptionErrorsCarryLines(t *testing.T) {
	Register()
	bad := `line: {id: l}
edge: {id: e}
company: {gs1_prefix: "9506000"}
products: [{gtin: "09506000134352", name: T, packaging: {units_per_case: 1, cases_per_pallet: 1}}]
devices:
  printers: [{name: p, driver: zebra, address: "h:1", options: {escape_char: "^"}}]
  cameras: [{name: c, driver: dataman, address: "h:2", options: {format: {mode: regex, pattern: "(x"}}}]
  plcs: [{name: l, driver: modbus, address: "h:3", options: {tags: {reject: {holding_register: 40001}}}}]
`
	_, err := config.Parse("bad.yaml", []byte(bad))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		"bad.yaml:6:", "escape_char: must be one printable ASCII character other than ^ and ~",
		"bad.yaml:7:", "format.pattern: error parsing regexp",
		"bad.yaml:8:", "tags.reject: address 40001 looks like 1-based",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("errors lack %q:\n%v", want, err)
		}
	}
}
