package zebrasim

import (
	"strings"
	"testing"
)

// Any split of the stream yields the same items.
func TestParserSplits(t *testing.T) {
	stream := "junk^XA^FO1,1^BXN,6,200,,,,_^FD_101095060001343521728113010L1_121S1^FS^XZ~HS^XA^BCN,100,N,N,N^FD>;>800395060000000000016^FS^XZ~HQES"
	for split := 1; split < len(stream); split++ {
		p := &Parser{}
		var items []Item
		items = append(items, p.Feed([]byte(stream[:split]))...)
		items = append(items, p.Feed([]byte(stream[split:]))...)
		if len(items) != 4 || items[0].Kind != ItemFormat || items[1].Kind != ItemStatus || items[2].Kind != ItemFormat || items[3].Kind != ItemHQES {
			t.Fatalf("split %d: %+v", split, items)
		}
		l, err := Decode(items[0].Bytes)
		if err != nil || l.Data != "01095060001343521728113010L1\x1d21S1" {
			t.Fatalf("split %d: %q %v", split, l.Data, err)
		}
		c, err := Decode(items[2].Bytes)
		if err != nil || c.Data != "00395060000000000016" || c.Symbol != "gs1-128" {
			t.Fatalf("split %d: %+v %v", split, c, err)
		}
	}
}

// The simulator reads field data as the printer does.
func TestDecode(t *testing.T) {
	for zpl, want := range map[string]string{
		// ^FH hex escapes are applied before the ^BX escape sequences.
		"^XA^BXN,6,200,,,,_^FH\\^FD_10110950600013435\\32\\5F\\5F_1^FS^XZ": "01109506000134352_\x1d", // ^FH turns \\5F\\5F into "__", a literal "_"; then _1 is FNC1
		// Empty 7th parameter: the firmware default escape "~".
		"^XA^BXN,6,200^FD~1010950600013435221A~121B^FS^XZ": "010950600013435221A\x1d21B",
		// GS1-128 with a subset switch.
		"^XA^BCN,100,N,N,N^FD>;>8010950600013435210>6AB><1^FS^XZ": "010950600013435210AB>1",
	} {
		p, err := Decode([]byte(zpl))
		if err != nil || p.Data != want {
			t.Errorf("%s: %q %v, want %q", zpl, p.Data, err, want)
		}
	}
	for zpl, want := range map[string]string{
		"^XA^BXN,6,140,,,,_^FD_101^FS^XZ":             "not quality 200",
		"^XA^BXN,6,200,,,,_^FD0109506000134352^FS^XZ": "does not start with FNC1",
		"^XA^BCN,100,Y,N,N,D^FD(00)39506^FS^XZ":       `mode "D"`,
		"^XA^BCN,100^FD12345^FS^XZ":                   "must start with >; or >:",
		"^XA^BXN,6,200,,,,_^FH^FD_1_G^FS^XZ":          "^FH: _1_ is not a hex byte",
		"^XA^FDtext^FS^XZ":                            "no ^BX or ^BC",
		"^XA^BXN,6,200,,,,_^FD_101^XZ":                "^FD without ^FS",
	} {
		if _, err := Decode([]byte(zpl)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", zpl, err, want)
		}
	}
}

func FuzzParser(f *testing.F) {
	f.Add([]byte("^XA^BXN,6,200,,,,_^FD_10112^FS^XZ~HS"), 3)
	f.Add([]byte("^XA^BCN,100,N,N,N^FH^FD>;>8_3E00^FS^XZ~HQES"), 9)
	f.Fuzz(func(t *testing.T, b []byte, split int) {
		p := &Parser{}
		if split < 0 || split > len(b) {
			split = len(b) / 2
		}
		items := append(p.Feed(b[:split]), p.Feed(b[split:])...)
		for _, it := range items {
			if it.Kind == ItemFormat {
				_, _ = Decode(it.Bytes)
			}
		}
		if len(p.buf) > 64<<10+len(b) {
			t.Fatalf("parser buffer grew to %d", len(p.buf))
		}
	})
}
