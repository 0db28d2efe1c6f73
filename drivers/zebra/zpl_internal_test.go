package zebra

import (
	"testing"

	"github.com/serialine/serialine/drivers"
	"github.com/serialine/serialine/sync/gs1"
)

func unitOf(lot, serial string) drivers.Label {
	return drivers.Label{Level: drivers.LevelUnit, Data: gs1.Elements{{AI: "01", Value: "09506000134352"}, {AI: "17", Value: "281130"}, {AI: "10", Value: lot}, {AI: "21", Value: serial}},
		Text: map[string]string{"PRODUCT": "Tabs ^_~"}}
}

// The hand-written rendering of the built-in templates is exactly what the
// text/template sources produce.
func TestBuiltinFastPath(t *testing.T) {
	o := Options{Module: 5}
	o.SetDefaults()
	for _, l := range []drivers.Label{
		unitOf("L_1", "S>1"),
		{Level: drivers.LevelUnit, Data: gs1.Elements{{AI: "01", Value: "09506000134352"}}},
		{Level: drivers.LevelCase, Data: gs1.Elements{{AI: "00", Value: "395060000000000016"}}},
		{Level: drivers.LevelPallet, Data: gs1.Elements{{AI: "00", Value: "395060000000000023"}, {AI: "02", Value: "09506000134352"}, {AI: "37", Value: "4"}}, Text: map[string]string{"TITLE": "P ~1"}},
	} {
		compareFast(t, o, l)
	}
}

func compareFast(t *testing.T, o Options, l drivers.Label) {
	t.Helper()
	fast, err := render(o, templateSet{}, l)
	if err != nil {
		t.Fatal(err)
	}
	slow, err := renderTemplate(o, l)
	if err != nil || string(fast) != string(slow) {
		t.Fatalf("%v:\nfast %s\ntemplate %s %v", l.Data, fast, slow, err)
	}
}

func FuzzBuiltinFastPath(f *testing.F) {
	f.Add("L1", "S_1", "Product ^1")
	f.Fuzz(func(t *testing.T, lot, serial, product string) {
		l := unitOf(lot, serial)
		l.Text["PRODUCT"] = product
		if l.Data.Validate() != nil {
			return
		}
		o := Options{}
		o.SetDefaults()
		compareFast(t, o, l)
	})
}
