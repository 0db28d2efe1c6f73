package epcis

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/serialine/serialine/central/config"
	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/central/store/sqlite"
	"github.com/serialine/serialine/central/store/storetest"
	"github.com/serialine/serialine/sync/record"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// Paths of GS1's official schemas (../shared beside the repository).
const (
	JSONSchemaPath = "../../../shared/epcis/json/EPCIS-JSON-Schema.json"
	XSDPath        = "../../../shared/epcis/xsd-1.2/EPCglobal-epcis-1_2.xsd"
)

func testGS1() config.GS1 {
	return config.GS1{
		CompanyPrefixes: []string{"9506000"}, GLN: "9506000000008", Name: "Demo plant",
		Lines: []config.LineLocation{{Edge: "edge-1", Extension: "line1"}},
		Products: []config.Product{{GTIN: storetest.ScenarioGTIN, NDC: "12345-678-90", Name: "Paracetamol 500 mg tablets, 20",
			DosageForm: "TABLET", Strength: "500 mg", NetContent: "20 TABLET", Manufacturer: "Demo Pharma"}},
	}
}

func TestEPCURIs(t *testing.T) {
	u := URIs{GS1: &config.GS1{CompanyPrefixes: []string{"9506000", "0614141"}}}
	cases := []struct {
		name, got, want string
		err             error
	}{}
	add := func(name string, want string) func(string, error) {
		return func(got string, err error) {
			cases = append(cases, struct {
				name, got, want string
				err             error
			}{name, got, want, err})
		}
	}
	add("sgtin", "urn:epc:id:sgtin:9506000.013435.S1")(u.SGTIN("09506000134352", "S1"))
	add("sgtin escaped", "urn:epc:id:sgtin:0614141.112345.A%2FB%25%26%3C%3E%3F%22'")(u.SGTIN("10614141123459", `A/B%&<>?"'`))
	add("idpat", "urn:epc:idpat:sgtin:9506000.013435.*")(u.SGTINPattern("09506000134352"))
	add("lgtin", "urn:epc:class:lgtin:9506000.013435.L1")(u.LGTIN("09506000134352", "L1"))
	add("sscc", "urn:epc:id:sscc:9506000.3000000001")(u.SSCC("395060000000000016"))
	add("sgln", "urn:epc:id:sgln:9506000.00000.0")(u.SGLN("9506000000008", ""))
	add("sgln ext", "urn:epc:id:sgln:9506000.00000.line1")(u.SGLN("9506000000008", "line1"))
	for _, c := range cases {
		if c.err != nil || c.got != c.want {
			t.Errorf("%s: %q %v, want %q", c.name, c.got, c.err, c.want)
		}
	}
	bad := []struct {
		err  error
		want string
	}{}
	chk := func(want string) func(string, error) {
		return func(_ string, err error) {
			bad = append(bad, struct {
				err  error
				want string
			}{err, want})
		}
	}
	chk("GTIN 09507000134359: no GS1 company prefix configured")(u.SGTIN("09507000134359", "S1"))
	chk("GTIN 09506000134353: check digit")(u.SGTIN("09506000134353", "S1"))
	chk("not in GS1 character set 82")(u.SGTIN("09506000134352", "S 1"))
	chk("want 1 to 20 characters")(u.SGTIN("09506000134352", strings.Repeat("1", 21)))
	chk("SSCC \"3950600\": want 18 digits")(u.SSCC("3950600"))
	chk("GLN 1234567890128: no GS1 company prefix")(u.SGLN("1234567890128", ""))
	for _, b := range bad {
		if b.err == nil || !strings.Contains(b.err.Error(), b.want) {
			t.Errorf("error %v, want %q", b.err, b.want)
		}
	}
}

func TestExpiryAndNDC(t *testing.T) {
	now := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	for in, want := range map[string]string{"281130": "2028-11-30", "280200": "2028-02-29", "270200": "2027-02-28", "991231": "1999-12-31", "751231": "2075-12-31"} {
		if got, err := ExpiryDate(in, now); err != nil || got != want {
			t.Errorf("expiry %s: %s %v, want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"281131", "281300", "28113", "2811x0"} {
		if _, err := ExpiryDate(in, now); err == nil {
			t.Errorf("expiry %s accepted", in)
		}
	}
	for in, want := range map[string]string{"1234-5678-90": "01234567890", "12345-678-90": "12345067890", "12345-6789-0": "12345678900"} {
		if got, err := NDC11(in); err != nil || got != want {
			t.Errorf("NDC %s: %s %v, want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"123-4567-890", "12345678901", "1234a-678-90"} {
		if _, err := NDC11(in); err == nil {
			t.Errorf("NDC %s accepted", in)
		}
	}
}

// ScenarioStore holds the storetest scenario (one batch, 5 units, a case,
// a pallet), a rework (S5 unpacked and repacked), and a shipment of the
// pallet in central's journal.
func ScenarioStore(t *testing.T) store.Store {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	loadScenario(t, st)
	return st
}

func loadScenario(t *testing.T, st store.Store) {
	ctx := context.Background()
	c := storetest.NewChain("edge-1", 1, 31)
	j := storetest.NewChain(store.JournalPrefix+"c1", 1, 32)
	for _, ch := range []*storetest.Chain{c, j} {
		if err := st.EnrollEdge(ctx, store.Edge{ID: ch.Edge, PublicKey: ch.Pub(), EnrolledBy: "t"}); err != nil {
			t.Fatal(err)
		}
	}
	recs := c.Scenario()
	recs = append(recs, c.Next(
		record.KindUnitDisposition, record.UnitDisposition{Batch: "L1", GTIN: storetest.ScenarioGTIN, Serial: "S3", Disposition: "destroyed"},
		record.KindBatchClosed, record.BatchClosed{Batch: "L1", Balanced: true},
	)...)
	if err := st.Append(ctx, c.Edge, record.Head{Epoch: 1}, recs); err != nil {
		t.Fatal(err)
	}
	if err := st.Append(ctx, j.Edge, record.Head{Epoch: 1}, j.Next(record.KindShipped, storetest.ShippedScenario("SH-1"))); err != nil {
		t.Fatal(err)
	}
}

func WriteScenario(t *testing.T, st store.Store, format string, opt Options) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w Writer = NewJSONWriter(&buf)
	if format == "xml" {
		w = NewXMLWriter(&buf)
	}
	segs := []Segment{{Edge: "edge-1", Batch: "L1"}}
	if err := Write(context.Background(), st, segs, opt, w); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func FixedOptions() Options {
	return Options{GS1: testGS1(), InstanceID: "golden-1", Now: time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from the golden file (go test -update rewrites it):\n%s", name, got)
	}
}

func TestGoldenDocuments(t *testing.T) {
	st := ScenarioStore(t)
	j := WriteScenario(t, st, "json", FixedOptions())
	golden(t, "scenario.epcis2.jsonld", j)
	x := WriteScenario(t, st, "xml", FixedOptions())
	golden(t, "scenario.epcis12.xml", x)

	var doc struct {
		Receiver string `json:"receiver"`
		Body     struct {
			Events []map[string]any `json:"eventList"`
		} `json:"epcisBody"`
	}
	if err := json.Unmarshal(j, &doc); err != nil {
		t.Fatal(err)
	}
	// 5 commissioned, 1 decommissioned (destroying), the case, the pallet,
	// the destroyed disposition, the shipment.
	var steps []string
	for _, e := range doc.Body.Events {
		steps = append(steps, e["type"].(string)+":"+e["action"].(string)+":"+e["bizStep"].(string))
	}
	want := strings.Repeat("ObjectEvent:ADD:commissioning ", 5) + "ObjectEvent:DELETE:destroying AggregationEvent:ADD:packing AggregationEvent:ADD:packing ObjectEvent:OBSERVE:destroying ObjectEvent:OBSERVE:shipping"
	if strings.Join(steps, " ") != want {
		t.Fatalf("events:\n%s\nwant\n%s", strings.Join(steps, " "), want)
	}
	caseEv := doc.Body.Events[6]
	if caseEv["parentID"] != "urn:epc:id:sscc:9506000.3000000001" || len(caseEv["childEPCs"].([]any)) != 4 {
		t.Fatalf("case aggregation: %v", caseEv)
	}
	if doc.Receiver != "urn:epc:id:sgln:9506000.00001.0" {
		t.Fatalf("receiver %q: the shipment's destination", doc.Receiver)
	}
	for _, need := range []string{"<sbdh:StandardBusinessDocumentHeader>", `<sbdh:Identifier Authority="SGLN">urn:epc:id:sgln:9506000.00000.0</sbdh:Identifier>`,
		`<attribute id="urn:epcglobal:cbv:mda#additionalTradeItemIdentification">12345067890</attribute>`, "<cbvmda:lotNumber>L1</cbvmda:lotNumber>",
		"<cbvmda:itemExpirationDate>2028-11-30</cbvmda:itemExpirationDate>", `<destination type="urn:epcglobal:cbv:sdt:owning_party">urn:epc:id:sgln:9506000.00001.0</destination>`} {
		if !bytes.Contains(x, []byte(need)) {
			t.Errorf("EPCIS 1.2 document lacks %s", need)
		}
	}
}

func TestRework(t *testing.T) {
	ctx := context.Background()
	st, _ := sqlite.Open(ctx, filepath.Join(t.TempDir(), "c.db"))
	defer st.Close()
	c := storetest.NewChain("edge-1", 1, 33)
	st.EnrollEdge(ctx, store.Edge{ID: c.Edge, PublicKey: c.Pub(), EnrolledBy: "t"})
	recs := c.Scenario()
	recs = append(recs, c.Next(
		record.KindContainerReopened, record.ContainerReopened{Batch: "L1", SSCC: storetest.ScenarioCase, Level: "case"},
		record.KindUnpacked, record.Unpacked{Batch: "L1", Parent: storetest.ScenarioCase, Level: "case", Children: []string{record.UnitID(storetest.ScenarioGTIN, "S5")}},
		record.KindContainerClosed, record.ContainerClosed{Batch: "L1", SSCC: storetest.ScenarioCase, Level: "case", Count: 3},
	)...)
	if err := st.Append(ctx, c.Edge, record.Head{Epoch: 1}, recs); err != nil {
		t.Fatal(err)
	}
	opt := FixedOptions()
	opt.GS1.ReceiverGLN = "9506000000008"
	var evs []*Event
	err := Write(ctx, st, []Segment{{Edge: c.Edge, Batch: "L1"}}, opt, collect{&evs})
	if err != nil {
		t.Fatal(err)
	}
	last := evs[len(evs)-1]
	if last.Type != "AggregationEvent" || last.Action != "DELETE" || last.BizStep != "unpacking" || len(last.Children) != 1 || last.Children[0] != "urn:epc:id:sgtin:9506000.013435.S5" {
		t.Fatalf("unpacking: %+v", last)
	}
	// A reopened container closed with nothing newly packed adds no event.
	if n := len(evs); evs[n-2].BizStep != "packing" || evs[n-2].Parent != "urn:epc:id:sscc:9506000.3000000002" {
		t.Fatalf("events before the rework: %+v", evs[n-2])
	}
}

type collect struct{ evs *[]*Event }

func (c collect) Begin(Header) error   { return nil }
func (c collect) Event(e *Event) error { *c.evs = append(*c.evs, e); return nil }
func (c collect) End() error           { return nil }

func TestMissingMasterDataNamesIt(t *testing.T) {
	st := ScenarioStore(t)
	cases := map[string]func(o *Options){
		"gs1.gln": func(o *Options) { o.GS1.GLN = "" },
		"GTIN 09506000134352: no GS1 company prefix": func(o *Options) { o.GS1.CompanyPrefixes = []string{"9506000000"} },
		"GLN 1234567890128: no GS1 company prefix":   func(o *Options) { o.Receiver = "1234567890128" },
	}
	for want, mod := range cases {
		opt := FixedOptions()
		mod(&opt)
		err := Write(context.Background(), st, []Segment{{Edge: "edge-1", Batch: "L1"}}, opt, NewJSONWriter(&bytes.Buffer{}))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v, want %q", err, want)
		}
	}
}
