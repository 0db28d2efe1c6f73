package linesim_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/serialine/serialine/cmd/internal/linesim"
	"github.com/serialine/serialine/edge/config"
	"github.com/serialine/serialine/edge/devices"
	"github.com/serialine/serialine/edge/line"
	"github.com/serialine/serialine/edge/store"
	"github.com/serialine/serialine/sync/gs1"
	"github.com/serialine/serialine/sync/record"
)

const keyenceLine = `line: {id: line-k}
edge: {id: edge-k, verdict_timeout: 5s, reject_deadline: 5s}
company: {gs1_prefix: "9506000", sscc_extension: 3}
products:
  - gtin: "09506000134352"
    name: Tablets
    packaging: {units_per_case: 3, cases_per_pallet: 2}
batch: {gtin: "09506000134352", lot: KEY1, expiry: "281130", planned: 6}
devices:
  printers:
    - {name: printer-1, driver: zebra, address: "127.0.0.1:0"}
    - {name: case-printer, driver: zebra, address: "127.0.0.1:0", levels: [case, pallet]}
  cameras: [{name: camera-1, driver: keyence, address: "127.0.0.1:0", options: {trigger: {enabled: true}}}]
  plcs: [{name: plc-1, driver: modbus, address: "127.0.0.1:0", options: {tags: {reject: {coil: 0}PRESENT}}}]
`

// A Keyence reader triggered by the engine (LON) on the simulated line,
// real drivers on real sockets: once at each product_present edge of the
// PLC, once right after each unit label when that tag is not mapped. Every
// unit is verified with exactly one trigger; the case printer labels the
// cases and the pallet with their SSCCs, and the camera never sees those
// labels.
func TestKeyenceTriggeredLine(t *testing.T) {
	for _, c := range []struct{ name, present string }{
		{"product_present", ", product_present: {discrete_input: 1}"},
		{"after each label", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			devices.Register()
			cfg, err := config.Parse("keyence.yaml", []byte(strings.Replace(keyenceLine, "PRESENT", c.present, 1)))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			sims, err := linesim.Start(ctx, cfg, linesim.Options{Rate: 20, Log: zerolog.Nop()})
			if err != nil {
				t.Fatal(err)
			}
			defer sims.Close()
			sims.Apply(cfg)
			devs, err := devices.Build(cfg, zerolog.Nop())
			if err != nil {
				t.Fatal(err)
			}
			if !devs.TriggerCamera {
				t.Fatal("the keyence camera is not triggered by the engine")
			}
			db, err := store.Open(filepath.Join(t.TempDir(), "edge.db"), store.Options{EdgeID: cfg.Edge.ID, Key: ed25519.NewKeyFromSeed(make([]byte, 32))})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			eng, err := line.New(line.Options{Config: cfg, Store: db, Devices: devs, Log: zerolog.Nop(), StatusInterval: 50 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- eng.Run(ctx) }()
			<-eng.Ready()
			if err := eng.StartAutoBatch(ctx); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(30 * time.Second)
			for {
				st := eng.Status()
				if st.State == "Complete" && len(sims.ContainerLabels()) == 3 {
					if st.Good != 6 || st.Rejected != 0 || st.CasesClosed != 2 || st.PalletsClosed != 1 {
						t.Fatalf("status %+v", st)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("batch not complete: %+v, %d container labels", st, len(sims.ContainerLabels()))
				}
				time.Sleep(20 * time.Millisecond)
			}
			cam := sims.Cameras["camera-1"]
			if seen, _ := cam.Counts(); seen != 6 || cam.Triggers() != 6 {
				t.Fatalf("camera saw %d units and got %d triggers, want 6 and 6", seen, cam.Triggers())
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			// The labels carry the SSCCs of the containers that closed.
			closed := map[string]string{}
			recs, err := db.Records(1, 1<<30)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				if r.Kind == record.KindContainerClosed {
					var cc record.ContainerClosed
					json.Unmarshal(r.Body, &cc)
					closed[cc.SSCC] = cc.Level
				}
			}
			for _, b := range sims.ContainerLabels() {
				els, err := gs1.Parse(b.Data)
				sscc, _ := els.Get("00")
				if err != nil || b.Printer != "case-printer" || b.Symbol != "gs1-128" || closed[sscc] == "" {
					t.Fatalf("container label %+v (%v): not the SSCC of a closed container %v", b, err, closed)
				}
				delete(closed, sscc)
			}
			if len(closed) != 0 {
				t.Fatalf("containers without a label: %v", closed)
			}
		})
	}
}
