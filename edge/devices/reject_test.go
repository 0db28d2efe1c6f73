package devices

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/serialine/serialine/drivers"
	"github.com/serialine/serialine/drivers/modbus"
	"github.com/serialine/serialine/drivers/modbus/modbussim"
	"github.com/serialine/serialine/edge/config"
	"github.com/serialine/serialine/edge/line"
	"github.com/serialine/serialine/edge/line/linetest"
	"github.com/serialine/serialine/edge/store"
	"github.com/serialine/serialine/sync/record"
)

const rejectLine = `line: {id: l}
edge: {id: e, reject_deadline: %s, verdict_timeout: 30s}
company: {gs1_prefix: "9506000"}
products:
  - gtin: "09506000134352"
    name: T
    packaging: {units_per_case: 10, cases_per_pallet: 10}
devices:
  printers: [{name: printer-1, driver: zebra, address: "127.0.0.1:1"}]
  cameras: [{name: camera-1, driver: dataman, address: "127.0.0.1:2"}]
  plcs:
    - name: plc-1
      driver: modbus
      address: "%s"
      timeout: 200ms
      options: {tags: {reject: {coil: 0}, reject_count: {holding_register: 2, words: 2}}}
`

// The real Modbus driver against the PLC simulator, fault injected at the
// reject of the second unit: a link the driver gets back in time delivers
// the pulse (retried within the deadline); a PLC that stays away past the
// deadline gets no pulse, not even once it is back: the batch is held and
// the unit named. Counters, not actuations, reach the PLC once it is back.
func TestRejectDeadlineOnModbus(t *testing.T) {
	for _, c := range []struct {
		name     string
		deadline string
		fault    func(sim *modbussim.Sim)
		held     bool
	}{
		{"dropped clients, back in time", "5s", func(sim *modbussim.Sim) { sim.DropClients() }, false},
		{"PLC away past the deadline", "300ms", func(sim *modbussim.Sim) { sim.Stop() }, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			Register()
			sim := modbussim.New(modbussim.Options{Name: "plc-1", UnitID: 1, Tags: map[string]modbus.Tag{"reject": {Coil: u16(0)}}}, zerolog.Nop())
			addr, err := sim.Start("127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer sim.Stop()
			cfg, err := config.Parse("line.yaml", []byte(fmt.Sprintf(rejectLine, c.deadline, addr)))
			if err != nil {
				t.Fatal(err)
			}
			devs, err := Build(cfg, zerolog.Nop())
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			faulted := make(chan struct{})
			fl := linetest.New(ctx, func(n int, l drivers.Label) (drivers.Reading, bool) {
				if n == 2 {
					c.fault(sim) // the PLC goes away as unit 2 comes up for rejection
					close(faulted)
					return drivers.Reading{Camera: "camera-1", NoRead: true}, true
				}
				return linetest.Good(n, l)
			})
			fake := fl.Devices()
			devs.Printer, devs.Camera = fake.Printer, fake.Camera
			db, err := store.Open(filepath.Join(t.TempDir(), "edge.db"), store.Options{EdgeID: "e", Key: ed25519.NewKeyFromSeed(make([]byte, 32))})
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
			sig := &record.Signature{User: "sup", Name: "Sue", Meaning: "approval"}
			if _, err := eng.StartBatch(ctx, line.BatchRequest{GTIN: "09506000134352", Lot: "LMB", Expiry: "281130", Planned: 3, By: "op"}, sig); err != nil {
				t.Fatal(err)
			}
			<-faulted
			wait := func(what string, cond func(line.Status) bool) line.Status {
				t.Helper()
				deadline := time.Now().Add(15 * time.Second)
				for {
					s := eng.Status()
					if cond(s) {
						return s
					}
					if time.Now().After(deadline) {
						t.Fatalf("timed out waiting for %s: %+v", what, s)
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
			if !c.held {
				wait("the pulse", func(line.Status) bool { return sim.RejectCount() == 1 })
				s := wait("the batch to complete", func(s line.Status) bool { return s.State == "Complete" })
				if s.Rejected != 1 || len(s.RejectsNotDelivered) != 0 {
					t.Fatalf("status %+v", s)
				}
				return
			}
			s := wait("the batch held", func(s line.Status) bool { return s.BatchState == line.BatchHeld && len(s.RejectsNotDelivered) == 1 })
			serial, _ := fl.Labels()[1].Data.Get("21")
			if u := s.RejectsNotDelivered[0]; u.ID != serial || u.Reason != line.ReasonNoRead || u.Unit != record.UnitID("09506000134352", serial) {
				t.Fatalf("undelivered %+v, want unit 2 (%s)", u, serial)
			}
			// The PLC comes back: the engine reconnects and writes the
			// counters (retried), never the reject of unit 2.
			if _, err := sim.Start(addr); err != nil {
				t.Fatal(err)
			}
			wait("the counters", func(line.Status) bool { return sim.HoldingRegister(3) == 1 })
			if n := sim.RejectCount(); n != 0 {
				t.Fatalf("%d reject pulses reached the PLC after the deadline", n)
			}
			u, err := eng.Unit("", serial)
			if err != nil || u.Status != line.UnitDecommissioned {
				t.Fatalf("unit 2: %+v %v", u, err)
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		})
	}
}

func u16(v uint16) *uint16 { return &v }
