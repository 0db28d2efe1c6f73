package zebrasim

import (
	"testing"
)

// Any split of the stream yields the same items.
func TestParserSplits(t *testing.T) {
	stream := "junk^XA^FO1,1^BXN,6,200,,,,_^FD_101095060001343521728113010L1_121S1^FS^XZ~HS^XA^BCN,100,Y,N,N,D^FD(00)395060000000000016^FS^XZ~HQES"
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

func FuzzParser(f *testing.F) {
	f.Add([]byte("^XA^BXN,6,200,,,,_^FD_10112^FS^XZ~HS"), 3)
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
