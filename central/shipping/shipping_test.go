package shipping

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/rs/zerolog"

	"github.com/serialine/serialine/central/auth"
	"github.com/serialine/serialine/central/config"
	"github.com/serialine/serialine/central/journal"
	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/central/store/storetest"
	"github.com/serialine/serialine/central/store/storetest/backends"
	"github.com/serialine/serialine/sync/record"
)

const pw = "shipper-password-1"

func setup(t *testing.T, st store.Store) (*Service, auth.User) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	c := storetest.NewChain("edge-1", 1, 51)
	if err := st.EnrollEdge(ctx, store.Edge{ID: c.Edge, PublicKey: c.Pub(), EnrolledBy: "t"}); err != nil {
		t.Fatal(err)
	}
	recs := c.Scenario()
	// A second, open case.
	recs = append(recs, c.Next(record.KindContainerOpened, record.ContainerOpened{Batch: "L1", SSCC: "395060000000000030", Level: "case"})...)
	if err := st.Append(ctx, c.Edge, record.Head{Epoch: 1}, recs); err != nil {
		t.Fatal(err)
	}
	j, err := journal.Open(ctx, journal.Options{Store: st, KeyPath: filepath.Join(dir, "central.key"), Instance: "c1", Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	users := auth.New(auth.Options{Store: st, Journal: j, Log: zerolog.Nop(), Cost: bcrypt.MinCost})
	by := auth.Actor{ID: "cli:test"}
	users.Add(ctx, by, "shipper", "Sam Shipper", auth.RoleOperator, pw, "")
	users.Add(ctx, by, "qa", "Quinn QA", auth.RoleQA, pw, "")
	u, err := users.Check(ctx, "shipper", pw, "login")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	return &Service{St: st, Journal: j, Users: users, GS1: config.GS1{GLN: "9506000000008", Name: "Demo plant"}, Now: func() time.Time { return now }}, u
}

var dest = record.Party{GLN: "9506000000015", Name: "Demo Wholesale DC"}

func TestShip(t *testing.T) {
	backends.Run(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		s, u := setup(t, st)
		sg := Signer{User: "shipper", Password: pw, Meaning: "shipped"}
		at := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
		out, err := s.Ship(ctx, u, sg, []Request{{ID: "DN-1", Containers: []string{storetest.ScenarioPallet}, Destination: dest, ShippedAt: at, Reference: "PO-9"}}, "api")
		if err != nil {
			t.Fatal(err)
		}
		if len(out) != 1 || out[0].ID != "DN-1" || !out[0].ShippedAt.Equal(at) || out[0].Destination != dest || out[0].ShipFrom != "9506000000008" {
			t.Fatalf("shipment %+v", out)
		}
		// The journal record is signed by central and carries the e-signature.
		recs, err := st.Records(ctx, out[0].Record.Edge, out[0].Record.Epoch, out[0].Record.Seq, 1)
		if err != nil || len(recs) != 1 || recs[0].Record.Kind != record.KindShipped || !strings.Contains(string(recs[0].Record.Body), `"meaning":"shipped"`) {
			t.Fatalf("journal: %v %v", recs, err)
		}
		e, _ := st.Edge(ctx, out[0].Record.Edge)
		if _, err := record.VerifyRun(e.PublicKey, record.Head{}, []record.Record{recs[0].Record}); err != nil {
			t.Fatal(err)
		}
		var body record.Shipped
		json.Unmarshal(recs[0].Record.Body, &body)
		if body.Signature == nil || body.Signature.Name != "Sam Shipper" || body.Signature.Meaning != "shipped" || body.By != "shipper" || body.Source != "api" {
			t.Fatalf("body %+v", body)
		}

		bad := []struct {
			req  Request
			want string
		}{
			{Request{Containers: []string{storetest.ScenarioPallet}, Destination: dest, ShippedAt: at}, "pallet 395060000000000023 was already shipped in DN-1 to 9506000000015"},
			{Request{Containers: []string{storetest.ScenarioCase}, Destination: dest, ShippedAt: at}, "case 395060000000000016 is on 395060000000000023"},
			{Request{Containers: []string{"395060000000000030"}, Destination: dest, ShippedAt: at}, "case 395060000000000030 is not closed"},
			{Request{Containers: []string{"395060000000000047"}, Destination: dest, ShippedAt: at}, "SSCC 395060000000000047 is not a known case or pallet"},
			{Request{Containers: []string{"395060000000000048"}, Destination: dest, ShippedAt: at}, "SSCC 395060000000000048: check digit"},
			{Request{Containers: []string{"395060000000000047"}, Destination: record.Party{GLN: "9506000000016", Name: "x"}, ShippedAt: at}, "destination GLN 9506000000016: check digit"},
			{Request{Containers: []string{"395060000000000047"}, Destination: record.Party{GLN: "9506000000015"}, ShippedAt: at}, "destination name is required"},
			{Request{Containers: []string{"395060000000000047"}, Destination: dest, ShippedAt: at.Add(24 * time.Hour)}, "is in the future"},
			{Request{ID: "DN-1", Containers: []string{"395060000000000047"}, Destination: dest, ShippedAt: at}, "shipment DN-1 was already recorded"},
			{Request{Destination: dest, ShippedAt: at}, "no SSCC to ship"},
		}
		// Validation runs after the signature check (bcrypt, slow under
		// -race), so the table calls it directly; Ship's own path is
		// covered above and by the import test.
		for _, b := range bad {
			err := s.validate(ctx, []Request{b.req})
			var ve *ValidationError
			if !errors.As(err, &ve) || !strings.Contains(err.Error(), b.want) || !strings.HasPrefix(err.Error(), "shipment 1: ") {
				t.Errorf("%+v: %v, want %q", b.req, err, b.want)
			}
		}
		for _, sgBad := range []Signer{{User: "shipper", Password: "wrong-password", Meaning: "shipped"}, {User: "qa", Password: pw, Meaning: "shipped"}, {User: "shipper", Password: pw}} {
			if _, err := s.Ship(ctx, u, sgBad, []Request{{Containers: []string{storetest.ScenarioPallet}, Destination: dest, ShippedAt: at}}, "api"); !errors.Is(err, ErrSignature) {
				t.Errorf("signer %+v: %v", sgBad, err)
			}
		}
		qa, _ := s.Users.Check(ctx, "qa", pw, "login")
		if _, err := s.Ship(ctx, qa, Signer{User: "qa", Password: pw, Meaning: "shipped"}, nil, ""); !errors.Is(err, ErrSignature) || !strings.Contains(err.Error(), "role qa") {
			t.Errorf("qa may not ship: %v", err)
		}
		// Refused shipments recorded no shipment (the refused signings
		// themselves are in the journal, as user actions).
		shipped := 0
		all, _ := st.Records(ctx, out[0].Record.Edge, out[0].Record.Epoch, 1, 100)
		for _, r := range all {
			if r.Record.Kind == record.KindShipped {
				shipped++
			}
		}
		if shipped != 1 {
			t.Fatalf("refused shipments wrote %d shipment records", shipped-1)
		}
	})
}

func TestImportCSV(t *testing.T) {
	ctx := context.Background()
	st := backends.SQLite(t)
	s, u := setup(t, st)
	sg := Signer{User: "shipper", Password: pw, Meaning: "shipped"}
	// Line 3 names an open case, line 4 a bad GLN: nothing is recorded and
	// both lines are named.
	file := "sscc,destination_gln,destination_name,shipped_at,shipment\n" +
		"395060000000000023,9506000000015,Demo Wholesale DC,2026-11-24T10:00:00Z,DN-7\n" +
		"(00)395060000000000030,9506000000015,Demo Wholesale DC,2026-11-24T10:00:00Z,DN-7\n" +
		"395060000000000047,9506000000016,Other,2026-11-24T10:00:00Z,\n"
	reqs, err := ParseCSV(strings.NewReader(file), "wms.csv")
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 2 || len(reqs[0].Containers) != 2 || reqs[0].Line != "wms.csv:2-3" || reqs[1].Line != "wms.csv:4" {
		t.Fatalf("requests %+v", reqs)
	}
	_, err = s.Ship(ctx, u, sg, reqs, "wms.csv")
	if err == nil || !strings.Contains(err.Error(), "wms.csv:2-3: case 395060000000000030 is not closed") || !strings.Contains(err.Error(), "wms.csv:4: destination GLN 9506000000016") {
		t.Fatalf("import errors: %v", err)
	}
	if l, _ := st.Shipments(ctx, store.ShipmentFilter{}); len(l) != 0 {
		t.Fatalf("a failed import recorded %d shipments", len(l))
	}
	good := "shipment,sscc,shipped_at,destination_name,destination_gln\nDN-8,395060000000000023,2026-11-24T10:00:00Z,Demo Wholesale DC,9506000000015\n"
	reqs, err = ParseCSV(strings.NewReader(good), "wms.csv")
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.Ship(ctx, u, sg, reqs, "wms.csv")
	if err != nil || len(out) != 1 || out[0].ID != "DN-8" {
		t.Fatalf("import: %+v %v", out, err)
	}
}

func TestParseCSVErrors(t *testing.T) {
	cases := map[string]string{
		"":                       "w.csv: empty file",
		"sscc,destination_gln\n": `w.csv:1: column "destination_name" missing`,
		"sscc,destination_gln,destination_name,shipped_at,colour\n":                                                                                       `w.csv:1: unknown column "colour"`,
		"sscc,destination_gln,destination_name,shipped_at\n":                                                                                              "w.csv: no shipment rows",
		"sscc,destination_gln,destination_name,shipped_at\n1,2,3,yesterday\n":                                                                             `w.csv:2: shipped_at "yesterday"`,
		"sscc,destination_gln,destination_name,shipped_at\n,2,3,2026-11-24T10:00:00Z\n":                                                                   "w.csv:2: sscc is empty",
		"sscc,destination_gln,destination_name,shipped_at\n1,2,\"3,2026\n":                                                                                "w.csv:2:",
		"sscc,destination_gln,destination_name,shipped_at,shipment\n0\"000":                                                                               `w.csv:2: bare " in non-quoted-field`, // found by FuzzParseCSV: a row that fails to parse has no field positions
		"sscc,destination_gln,destination_name,shipped_at,shipment\n1,9506000000015,a,2026-11-24T10:00:00Z,X\n2,9506000000015,b,2026-11-24T10:00:00Z,X\n": "w.csv:3: shipment X: destination or ship time differ from line 2",
	}
	for in, want := range cases {
		if _, err := ParseCSV(strings.NewReader(in), "w.csv"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
}

func FuzzParseCSV(f *testing.F) {
	f.Add("sscc,destination_gln,destination_name,shipped_at,shipment\n395060000000000023,9506000000015,DC,2026-11-24T10:00:00Z,A\n")
	f.Add("sscc,destination_gln\n\"x")
	f.Fuzz(func(t *testing.T, s string) {
		reqs, err := ParseCSV(strings.NewReader(s), "f.csv")
		if err != nil {
			return
		}
		for _, r := range reqs {
			if len(r.Containers) == 0 || r.ShippedAt.IsZero() || r.Line == "" {
				t.Fatalf("request without containers, time or line: %+v", r)
			}
		}
	})
}
