package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/serialine/serialine/central/auth"
	"github.com/serialine/serialine/central/config"
	"github.com/serialine/serialine/central/epcis/epcistest"
	"github.com/serialine/serialine/central/journal"
	"github.com/serialine/serialine/central/shipping"
	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/central/store/sqlite"
	"github.com/serialine/serialine/sync/record"
)

const (
	sharedJSONSchema = "../../../shared/epcis/json/EPCIS-JSON-Schema.json"
	sharedXSD        = "../../../shared/epcis/xsd-1.2/EPCglobal-epcis-1_2.xsd"
)

// TestExportsOfADemoRun runs the demo in-process until one pallet is
// closed, ships that pallet through the shipping service (central's own
// journal and users, as the API does), then exports the batch with
// `serialine export` in every format, validates the EPCIS documents against
// GS1's schemas, and traces a unit with `serialine trace`.
func TestExportsOfADemoRun(t *testing.T) {
	dir := t.TempDir()
	o := demoOptions{pallets: 1, dir: filepath.Join(dir, "demo"), timeout: 3 * time.Minute, rate: 60, badGrade: 0.05, noRead: 0.03}
	sum, err := runDemo(context.Background(), o, &bytes.Buffer{}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if sum.PalletsClosed < 1 {
		t.Fatalf("demo: %+v", sum)
	}
	ctx := context.Background()
	db := filepath.Join(o.dir, "central", "central.db")
	st, err := sqlite.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	var pallet string
	bs, _ := st.Batches(ctx, store.BatchFilter{Lot: "DEMO2611A"})
	if len(bs) != 1 {
		t.Fatalf("batches %+v", bs)
	}
	st.ScanContainers(ctx, store.ContainerFilter{Edge: bs[0].Edge, Batch: bs[0].Batch}, func(c store.Container) error {
		if c.Level == "pallet" && c.Closed && pallet == "" {
			pallet = c.SSCC
		}
		return nil
	})
	centralID, err := os.ReadFile(filepath.Join(o.dir, "central-id"))
	if err != nil {
		t.Fatal(err)
	}
	j, err := journal.Open(ctx, journal.Options{Store: st, KeyPath: filepath.Join(o.dir, "central", "central.key"), Instance: strings.TrimSpace(string(centralID)), Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	users := auth.New(auth.Options{Store: st, Journal: j, Log: zerolog.Nop()})
	pw, _ := os.ReadFile(filepath.Join(o.dir, "admin-password"))
	admin, err := users.Check(ctx, "admin", strings.TrimSpace(string(pw)), "login")
	if err != nil {
		t.Fatal(err)
	}
	svc := &shipping.Service{St: st, Journal: j, Users: users, GS1: config.GS1{GLN: "9506000000008", Name: "Demo plant"}}
	if _, err := svc.Ship(ctx, admin, shipping.Signer{User: "admin", Password: strings.TrimSpace(string(pw)), Meaning: "shipped"},
		[]shipping.Request{{ID: "DEMO-SHIP-1", Containers: []string{pallet}, Destination: record.Party{GLN: "9506000000015", Name: "Demo Wholesale DC"}, ShippedAt: time.Now()}}, "test"); err != nil {
		t.Fatal(err)
	}
	edge, _ := st.Edge(ctx, bs[0].Edge)
	var unit store.Unit
	st.ScanUnits(ctx, store.UnitFilter{Parent: firstCase(t, st, pallet)}, func(u store.Unit) error { unit = u; return errStopScan })
	st.Close()

	files := map[string][]byte{}
	for _, f := range []string{"epcis-2.0", "epcis-1.2", "csv", "json", "html"} {
		out := filepath.Join(dir, "export-"+f)
		var stdout, stderr bytes.Buffer
		args := []string{"export", "--db", db, "--batch", "DEMO2611A", "--format", f, "-o", out, "--company-prefix", "9506000", "--gln", "9506000000008", "--progress", "never"}
		if code := run(args, &stdout, &stderr); code != 0 {
			t.Fatalf("export %s: exit %d\n%s\n%s", f, code, stdout.String(), stderr.String())
		}
		if f == "csv" && !strings.Contains(stdout.String(), "hash chain intact") {
			t.Fatalf("export csv says: %s", stdout.String())
		}
		files[f], _ = os.ReadFile(out)
	}
	epcistest.AssertValid(t, sharedJSONSchema, sharedXSD, files["epcis-2.0"], files["epcis-1.2"])
	for _, need := range []string{`"bizStep":"commissioning"`, `"bizStep":"packing"`, `"bizStep":"shipping"`, `"cbvmda:lotNumber":"DEMO2611A"`} {
		if !bytes.Contains(files["epcis-2.0"], []byte(need)) {
			t.Errorf("EPCIS 2.0 export lacks %s", need)
		}
	}
	if sum.UnitsRejected > 0 && !bytes.Contains(files["epcis-2.0"], []byte(`"action":"DELETE"`)) {
		t.Errorf("rejected units but no decommissioning event")
	}
	zr, err := zip.NewReader(bytes.NewReader(files["csv"]), int64(len(files["csv"])))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range zr.File {
		if f.Name == "records-"+edge.ID+".jsonl" {
			r, _ := f.Open()
			n, err := record.VerifyExport(r, edge.PublicKey)
			r.Close()
			if err != nil || n == 0 {
				t.Fatalf("the package's records do not verify offline: %d %v", n, err)
			}
		}
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(files["json"], &doc); err != nil || len(doc["units"]) < 100 {
		t.Fatalf("JSON export: %v", err)
	}
	if !bytes.Contains(files["html"], []byte("DEMO-SHIP-1")) || !bytes.Contains(files["html"], []byte("every record verified")) {
		t.Fatalf("HTML summary lacks the shipment or the verification")
	}

	var stdout, stderr bytes.Buffer
	if code := run([]string{"trace", "--db", db, "https://id.gs1.org/01/" + unit.GTIN + "/21/" + unit.Serial}, &stdout, &stderr); code != 0 {
		t.Fatalf("trace: exit %d %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "shipment DEMO-SHIP-1 ("+pallet+")") || !strings.Contains(stdout.String(), "Demo Wholesale DC, GLN 9506000000015") {
		t.Fatalf("trace: %s", stdout.String())
	}
	stdout.Reset()
	if code := run([]string{"trace", "--db", db, "--lot", "DEMO2611A"}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "shipment DEMO-SHIP-1") {
		t.Fatalf("trace lot: exit %d %s %s", code, stdout.String(), stderr.String())
	}
	if code := run([]string{"trace", "--db", db, "no-such-serial"}, &stdout, &stderr); code != 3 {
		t.Fatalf("trace of an unknown serial: exit %d", code)
	}
	if code := run([]string{"export", "--db", db, "--batch", "NOPE", "--format", "csv", "-o", filepath.Join(dir, "x.zip")}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "no batch matches") {
		t.Fatalf("export of an unknown batch: exit %d %s", code, stderr.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "x.zip")); !os.IsNotExist(err) {
		t.Fatal("a failed export left a file")
	}
}

var errStopScan = os.ErrClosed

func firstCase(t *testing.T, st store.Store, pallet string) string {
	t.Helper()
	var c string
	st.ScanContainers(context.Background(), store.ContainerFilter{Parent: pallet}, func(x store.Container) error {
		if c == "" {
			c = x.SSCC
		}
		return nil
	})
	if c == "" {
		t.Fatalf("pallet %s holds no case", pallet)
	}
	return c
}
