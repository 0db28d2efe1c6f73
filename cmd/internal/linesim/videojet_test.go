package linesim_test

import (
	"context"
	"crypto/ed25519"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/serialine/serialine/cmd/internal/linesim"
	"github.com/serialine/serialine/configs"
	"github.com/serialine/serialine/drivers"
	"github.com/serialine/serialine/drivers/videojet"
	"github.com/serialine/serialine/edge/config"
	"github.com/serialine/serialine/edge/devices"
	"github.com/serialine/serialine/edge/line"
	"github.com/serialine/serialine/edge/store"
	"github.com/serialine/serialine/sync/record"
)

// The shipped Videojet line runs end to end on the real line engine: the
// Videojet driver talks to its simulator over TCP, every code it prints
// passes the camera simulator, the Modbus simulator takes the PLC tags;
// units are verified good and a case closes. Once with the thermal
// transfer printer of configs/videojet-line.yaml, once with a 1000 Line CIJ.
func TestVideojetLineEndToEnd(t *testing.T) {
	for _, drv := range []string{"videojet", "videojet-cij"} {
		t.Run(drv, func(t *testing.T) {
			devices.Register()
			raw, err := configs.Read("videojet-line.yaml")
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Parse("videojet-line.yaml", raw)
			if err != nil {
				t.Fatal(err)
			}
			// A short batch: the pool of serials is generated up front.
			cfg.Batch.Planned = 2 * cfg.Products[0].Packaging.UnitsPerCase
			if drv == "videojet-cij" {
				p := &cfg.Devices.Printers[0]
				p.Driver, p.Decoded = drv, &videojet.CIJOptions{}
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			sims, err := linesim.Start(ctx, cfg, linesim.Options{Rate: 500, Log: zerolog.Nop()})
			if err != nil {
				t.Fatal(err)
			}
			defer sims.Close()
			sims.Apply(cfg)
			vj := sims.Videojets["printer-1"]
			if vj == nil || len(sims.Printers) != 0 {
				t.Fatalf("simulators: videojet %v, zebra %d", vj, len(sims.Printers))
			}

			devs, err := devices.Build(cfg, zerolog.Nop())
			if err != nil {
				t.Fatal(err)
			}
			db, err := store.Open(filepath.Join(t.TempDir(), "edge.db"), store.Options{EdgeID: cfg.Edge.ID, Key: ed25519.NewKeyFromSeed(make([]byte, 32))})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			caseClosed := make(chan line.Status, 1)
			eng, err := line.New(line.Options{Config: cfg, Store: db, Devices: devs, Log: zerolog.Nop(), StatusInterval: 50 * time.Millisecond,
				OnStatus: func(s line.Status) {
					if s.CasesClosed >= 1 {
						select {
						case caseClosed <- s:
						default:
						}
					}
				}})
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- eng.Run(ctx) }()
			select {
			case <-eng.Ready():
			case err := <-done:
				t.Fatalf("engine stopped: %v", err)
			}
			if err := eng.StartAutoBatch(ctx); err != nil {
				t.Fatal(err)
			}
			perCase := cfg.Products[0].Packaging.UnitsPerCase
			var st line.Status
			select {
			case st = <-caseClosed:
			case <-time.After(30 * time.Second):
				t.Fatalf("no case closed: %+v", eng.Status())
			}
			if st.Good < perCase || st.Rejected != 0 || st.Devices["printer-1"] != "ok" {
				t.Fatalf("status %+v", st)
			}
			if _, printed, refused, bad, _ := vj.Counts(); printed < st.Good || refused != 0 || bad != 0 {
				t.Fatalf("printer printed %d, refused %d, bad %d for %d good units", printed, refused, bad, st.Good)
			}
			if pc, ok := devs.Printer.(drivers.PrintConfirmer); ok && pc.PrintsConfirmed() == 0 {
				t.Fatal("no print-complete notification reached the driver")
			} else if !ok && drv == "videojet" {
				t.Fatal("the thermal transfer driver does not confirm prints")
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("engine: %v", err)
			}
			recs, err := db.Records(1, 1<<30)
			if err != nil {
				t.Fatal(err)
			}
			kinds := map[record.Kind]int{}
			for _, r := range recs {
				kinds[r.Kind]++
			}
			if kinds[record.KindUnitVerified] < perCase || kinds[record.KindContainerClosed] < 1 {
				t.Fatalf("records %v", kinds)
			}
		})
	}
}

// The Videojet drivers' options are strict: unknown keys and bad values
// are errors at their file:line; the JSON Schema knows both drivers.
func TestVideojetOptionsStrict(t *testing.T) {
	devices.Register()
	bad := `line: {id: l}
edge: {id: e}
company: {gs1_prefix: "9506000"}
products: [{gtin: "09506000134352", name: T, packaging: {units_per_case: 1, cases_per_pallet: 1}}]
devices:
  printers:
    - {name: p, driver: videojet, address: "h:1", options: {fnc1: fnc2}}
    - {name: q, driver: videojet-cij, address: "h:2", options: {messages: {unit: {name: "A", code: "DM", fieldz: {}}}}}
    - {name: r, driver: videojet, address: "h:3", options: {jobs: {box: {name: J, code: DM}}}}
  cameras: [{name: c, driver: dataman, address: "h:4"}]
  plcs: [{name: l, driver: modbus, address: "h:5", options: {tags: {reject: {coil: 0}}}}]
`
	_, err := config.Parse("bad.yaml", []byte(bad))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		"bad.yaml:7:", `fnc1: "fnc2": want "gs" or "brackets"`,
		"bad.yaml:8:", "fieldz",
		"bad.yaml:9:", "jobs.box: level must be unit, case or pallet",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("errors lack %q:\n%v", want, err)
		}
	}
	// The driver's sample configuration is a valid device list.
	sample := strings.ReplaceAll("\n"+videojet.SampleConfig, "\n", "\n    ")
	good := strings.Replace(strings.Replace(bad, "  printers:\n", "  printers:"+sample+"\n", 1), "    - {name: p", "#", 1)
	good = strings.Replace(strings.Replace(good, "    - {name: q", "#", 1), "    - {name: r", "#", 1)
	// Its two printers are alternatives for the unit labels: as one line,
	// the second labels cases (a printer labels at least one level).
	good = strings.Replace(good, "- name: printer-2\n", "- name: printer-2\n      levels: [case]\n", 1)
	if l, err := config.Parse("sample.yaml", []byte(good)); err != nil || len(l.Devices.Printers) != 2 {
		t.Fatalf("sample.yaml in a line config: %v\n%s", err, good)
	}
	schema, err := config.Schema()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"videojet"`, `"videojet-cij"`, `"counter_selector"`, `"disable_notifications"`} {
		if !strings.Contains(string(schema), want) {
			t.Errorf("schema lacks %s", want)
		}
	}
}
