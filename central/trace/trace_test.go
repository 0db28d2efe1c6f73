package trace

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/central/store/storetest"
	"github.com/serialine/serialine/central/store/storetest/backends"
	"github.com/serialine/serialine/sync/gs1"
	"github.com/serialine/serialine/sync/record"
)

func TestParseQuery(t *testing.T) {
	const g = storetest.ScenarioGTIN
	cases := []struct{ in, want string }{
		{"S1", "serial::S1::"},
		{"123456789012", "serial::123456789012::"},
		{"(01)" + g + "(21)S1", "unit:" + g + ":S1::"},
		{"01" + g + "21S1", "unit:" + g + ":S1::"},
		{"]d201" + g + "21ABC" + gs1.GS + "10L1", "unit:" + g + ":ABC::"},
		{"]d201" + g + `21ABC\x1d10L1`, "unit:" + g + ":ABC::"},
		{"01" + g + "17281130" + "10L1<GS>21S9", "unit:" + g + ":S9::"},
		{"https://id.gs1.org/01/" + g + "/10/L1/21/S1?17=281130", "unit:" + g + ":S1::"},
		{"https://brand.example/p/01/" + g + "/21/A%2FB", "unit:" + g + ":A/B::"},
		{"https://id.gs1.org/00/395060000000000016", "container:::395060000000000016:"},
		{"395060000000000016", "container:::395060000000000016:"},
		{"(00)395060000000000016", "container:::395060000000000016:"},
		{"(01)" + g + "(10)L1", "lot:" + g + ":::L1"},
		{"lot:DEMO2611A", "lot::::DEMO2611A"},
		{"  S1 \n", "serial::S1::"},
	}
	for _, c := range cases {
		q, err := ParseQuery(c.in)
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if got := strings.Join([]string{q.Kind, q.GTIN, q.Serial, q.SSCC, q.Lot}, ":"); got != c.want {
			t.Errorf("%q: %s, want %s", c.in, got, c.want)
		}
	}
	bad := map[string]string{
		"":                                   "empty query",
		"(01)09506000134353(21)S1":           "check digit",
		"https://id.gs1.org/p/q":             "no primary key",
		"https://id.gs1.org/01/" + g:         "neither",
		"https://id.gs1.org/01/" + g + "/21": "has no value",
		"S 1":                                "not in GS1 character set 82",
		"lot:":                               "lot",
		strings.Repeat("A", 21):              "longer than a serial",
	}
	for in, want := range bad {
		if _, err := ParseQuery(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
}

func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{"S1", "]d20109506000134352215", "(00)395060000000000016", "https://id.gs1.org/01/09506000134352/21/x", "lot:A", "0109506000134352211"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := ParseQuery(s)
		if err != nil {
			return
		}
		switch q.Kind {
		case QueryUnit:
			if len(q.GTIN) != 14 || q.Serial == "" {
				t.Fatalf("%q: unit without GTIN/serial: %+v", s, q)
			}
		case QueryContainer:
			if len(q.SSCC) != 18 {
				t.Fatalf("%q: container %+v", s, q)
			}
		case QuerySerial:
			if q.Serial == "" {
				t.Fatalf("%q: empty serial", s)
			}
		case QueryLot:
			if q.Lot == "" {
				t.Fatalf("%q: empty lot", s)
			}
		default:
			t.Fatalf("%q: kind %q", s, q.Kind)
		}
	})
}

func load(t *testing.T, st store.Store) {
	ctx := context.Background()
	c := storetest.NewChain("edge-1", 1, 41)
	j := storetest.NewChain(store.JournalPrefix+"c1", 1, 42)
	for _, ch := range []*storetest.Chain{c, j} {
		if err := st.EnrollEdge(ctx, store.Edge{ID: ch.Edge, PublicKey: ch.Pub(), EnrolledBy: "t"}); err != nil {
			t.Fatal(err)
		}
	}
	recs := c.Scenario()
	recs = append(recs, c.Next(
		record.KindDowntimeStarted, record.DowntimeStarted{ID: "DT-1", Equipment: "camera-1", Class: "verification", Critical: true, Source: "driver", Fault: "disconnected", Start: "2026-11-24T08:00:00.010Z", Batch: "L1"},
		record.KindDowntimeEnded, record.DowntimeEnded{ID: "DT-1", Equipment: "camera-1", Class: "verification", Critical: true, Source: "driver", Fault: "disconnected", Start: "2026-11-24T08:00:00.010Z", End: "2026-11-24T08:00:00.020Z", DurationS: 0.01, Batch: "L1", Batches: []string{"L1"}},
		record.KindBatchClosed, record.BatchClosed{Batch: "L1", Balanced: true},
	)...)
	if err := st.Append(ctx, c.Edge, record.Head{Epoch: 1}, recs); err != nil {
		t.Fatal(err)
	}
	if err := st.Append(ctx, j.Edge, record.Head{Epoch: 1}, j.Next(record.KindShipped, storetest.ShippedScenario("SH-1"))); err != nil {
		t.Fatal(err)
	}
}

func TestTrace(t *testing.T) {
	backends.Run(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		load(t, st)
		tr := &Tracer{St: st}
		find := func(in string) *Result {
			t.Helper()
			q, err := ParseQuery(in)
			if err != nil {
				t.Fatal(err)
			}
			r, err := tr.Find(ctx, q)
			if err != nil {
				t.Fatalf("%s: %v", in, err)
			}
			return r
		}
		for _, in := range []string{"S1", "(01)" + storetest.ScenarioGTIN + "(21)S1", "https://id.gs1.org/01/" + storetest.ScenarioGTIN + "/21/S1"} {
			r := find(in)
			if len(r.Units) != 1 {
				t.Fatalf("%s: %d units", in, len(r.Units))
			}
			u := r.Units[0]
			if u.Unit.Serial != "S1" || len(u.Containers) != 2 || u.Containers[0].SSCC != storetest.ScenarioCase || u.Containers[1].SSCC != storetest.ScenarioPallet ||
				u.Shipment == nil || u.Shipment.ID != "SH-1" || u.Shipment.Destination.GLN != "9506000000015" || u.ShippedIn != storetest.ScenarioPallet ||
				u.Batch == nil || u.Batch.Lot != "L1" {
				t.Fatalf("%s: %+v", in, u)
			}
		}
		// The rejected unit is nowhere.
		if r := find("S3"); r.Units[0].Unit.Status != "decommissioned" || len(r.Units[0].Containers) != 0 || r.Units[0].Shipment != nil {
			t.Fatalf("S3: %+v", r.Units[0])
		}
		r := find(storetest.ScenarioCase)
		if r.Container == nil || r.Container.Container.Level != "case" || len(r.Container.Ancestors) != 1 || r.Container.Shipment == nil || r.Container.ShippedIn != storetest.ScenarioPallet {
			t.Fatalf("case: %+v", r.Container)
		}
		var in []string
		if err := tr.Contents(ctx, storetest.ScenarioPallet, func(u store.Unit) error { in = append(in, u.Serial+"@"+u.Parent); return nil }); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(in) != "[S1@"+storetest.ScenarioCase+" S2@"+storetest.ScenarioCase+" S4@"+storetest.ScenarioCase+" S5@"+storetest.ScenarioCase+"]" {
			t.Fatalf("pallet contents: %v", in)
		}
		for _, q := range []Query{{Kind: QuerySerial, Serial: "nope", Input: "nope"}, {Kind: QueryContainer, SSCC: "395060000000000030", Input: "(00)395060000000000030"}} {
			if _, err := tr.Find(ctx, q); !errors.Is(err, ErrNotFound) {
				t.Fatalf("%+v: %v", q, err)
			}
		}

		var units []LotUnit
		lt, err := tr.Lot(ctx, "L1", func(u LotUnit) error { units = append(units, u); return nil })
		if err != nil {
			t.Fatal(err)
		}
		if lt.Units != 5 || len(units) != 5 || len(lt.Batches) != 1 || len(lt.Containers) != 2 || len(lt.Shipments) != 1 || len(lt.Equipment) != 2 {
			t.Fatalf("lot: %+v", lt)
		}
		if e := lt.Equipment[0]; e.Kind != record.KindDowntimeStarted || e.Equipment != "camera-1" || e.Class != "verification" {
			t.Fatalf("equipment: %+v", e)
		}
		u1 := units[0]
		if u1.Unit.Serial != "S1" || u1.Case != storetest.ScenarioCase || u1.Pallet != storetest.ScenarioPallet || u1.Shipment != "SH-1" || u1.ShippedTo != "9506000000015" {
			t.Fatalf("lot unit: %+v", u1)
		}
		if units[2].Unit.Serial != "S3" || units[2].Case != "" || units[2].Shipment != "" {
			t.Fatalf("lot unit S3: %+v", units[2])
		}
		if _, err := tr.Lot(ctx, "nope", nil); !errors.Is(err, ErrNotFound) {
			t.Fatalf("unknown lot: %v", err)
		}
	})
}
