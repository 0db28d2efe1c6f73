package equipment

import (
	"fmt"
	"testing"
	"time"

	"github.com/serialine/serialine/drivers"
	"github.com/serialine/serialine/edge/config"
	"github.com/serialine/serialine/edge/line"
	"github.com/serialine/serialine/edge/store"
	"github.com/serialine/serialine/sync/record"
)

// BenchmarkStep measures an engine step's store transaction (32 units
// commissioned, their records, one group commit) without the equipment
// hooks, with them, and with them while a downtime is open (every unit is
// then part of its affected range). The store does not fsync here, so the
// hooks' CPU cost is not hidden behind the disk; benchreport compares hooks
// against none.
func BenchmarkStep(b *testing.B) {
	const units = 32
	for _, mode := range []string{"none", "hooks", "hooks-downtime"} {
		b.Run(mode, func(b *testing.B) {
			h := &harness{t: b, cfg: loadConfig(b), dir: b.TempDir(), now: t0, noSync: true}
			h.open()
			h.b = line.EquipmentBatch{ID: "BENCH", State: line.BatchRunning}
			h.tick()
			if mode == "hooks-downtime" {
				h.health(config.BuiltinCentralLink, drivers.Health{Fault: "disconnected"})
			}
			n := 0
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				err := h.db.Update(func(tx *store.Tx) error {
					for u := 0; u < units; u++ {
						n++
						serial := fmt.Sprintf("%012d", n)
						if _, err := tx.Append(record.KindUnitCommissioned, record.UnitCommissioned{Batch: "BENCH", GTIN: "09506000134352", Serial: serial, Lot: "BENCH", Expiry: "281130"}); err != nil {
							return err
						}
						if mode != "none" {
							h.b.LastSerial = serial
							if err := h.tr.Commissioned(tx, h.b, serial, h.now); err != nil {
								return err
							}
						}
					}
					if mode != "none" {
						return h.tr.Tick(tx, h.b, h.now)
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*units)/time.Since(start).Seconds(), "units/s")
		})
	}
}

// BenchmarkHooks is the CPU cost of one Commissioned and one Tick call
// inside an open transaction (no commit per call).
func BenchmarkHooks(b *testing.B) {
	h := &harness{t: b, cfg: loadConfig(b), dir: b.TempDir(), now: t0, noSync: true}
	h.open()
	h.b = line.EquipmentBatch{ID: "BENCH", State: line.BatchRunning, InFlight: []string{"A", "B", "C"}}
	h.tick()
	for _, name := range []string{"Commissioned", "Tick"} {
		b.Run(name, func(b *testing.B) {
			err := h.db.Update(func(tx *store.Tx) error {
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					var err error
					if name == "Tick" {
						err = h.tr.Tick(tx, h.b, h.now)
					} else {
						err = h.tr.Commissioned(tx, h.b, "S", h.now)
					}
					if err != nil {
						return err
					}
				}
				b.StopTimer()
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		})
	}
}
