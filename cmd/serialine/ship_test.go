package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/serialine/serialine/central/auth"
	"github.com/serialine/serialine/central/journal"
	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/central/store/sqlite"
	"github.com/serialine/serialine/central/store/storetest"
	"github.com/serialine/serialine/central/web"
	"github.com/serialine/serialine/sync/record"
)

// `serialine ship import` posts a WMS file to central's API; refused lines
// are printed with their file:line, accepted shipments are traceable.
func TestShipImportCommand(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := filepath.Join(dir, "c.db")
	st, err := sqlite.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c := storetest.NewChain("edge-1", 1, 91)
	st.EnrollEdge(ctx, store.Edge{ID: c.Edge, PublicKey: c.Pub(), EnrolledBy: "t"})
	if err := st.Append(ctx, c.Edge, record.Head{Epoch: 1}, c.Scenario()); err != nil {
		t.Fatal(err)
	}
	j, err := journal.Open(ctx, journal.Options{Store: st, KeyPath: filepath.Join(dir, "central.key"), Instance: "c1", Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	users := auth.New(auth.Options{Store: st, Journal: j, Log: zerolog.Nop()})
	users.Add(ctx, auth.Actor{ID: "cli:test"}, "sup", "Sue Supervisor", auth.RoleSupervisor, "supervisor-pw-1", "")
	s, err := web.New(web.Options{Listen: "127.0.0.1:0", Store: st, Users: users, Log: zerolog.Nop(), Compliance: web.Compliance{Journal: j}})
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go s.Run(sctx)
	pwFile := filepath.Join(dir, "pw")
	os.WriteFile(pwFile, []byte("supervisor-pw-1\n"), 0o600)
	csvFile := filepath.Join(dir, "wms.csv")
	url := "http://" + s.Addr()

	os.WriteFile(csvFile, []byte("sscc,destination_gln,destination_name,shipped_at\n395060000000000016,9506000000015,DC,2026-11-24T10:00:00Z\n"), 0o644)
	var out, errOut bytes.Buffer
	if code := run([]string{"ship", "import", "--url", url, "--user", "sup", "--password-file", pwFile, csvFile}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "wms.csv:2: case 395060000000000016 is on 395060000000000023") {
		t.Fatalf("refused import: exit %d\n%s", code, errOut.String())
	}
	os.WriteFile(csvFile, []byte("shipment,sscc,destination_gln,destination_name,shipped_at\nDN-5,395060000000000023,9506000000015,DC,2026-11-24T10:00:00Z\n"), 0o644)
	out.Reset()
	if code := run([]string{"ship", "import", "--url", url, "--user", "sup", "--password-file", pwFile, csvFile}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "shipment DN-5: 395060000000000023 to DC (GLN 9506000000015)") {
		t.Fatalf("import: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	out.Reset()
	if code := run([]string{"ship", "add", "--url", url, "--user", "sup", "--password-file", pwFile, "--sscc", "395060000000000023", "--gln", "9506000000015", "--name", "DC"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "already shipped in DN-5") {
		t.Fatalf("ship add twice: exit %d\n%s", code, errOut.String())
	}
	out.Reset()
	if code := run([]string{"trace", "--db", db, "S1"}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "shipment DN-5") {
		t.Fatalf("trace after import: exit %d\n%s%s", code, out.String(), errOut.String())
	}
}
