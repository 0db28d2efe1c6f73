package line

import (
	"fmt"
	"math"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/serialine/serialine/drivers"
	"github.com/serialine/serialine/edge/config"
	"github.com/serialine/serialine/edge/store"
	"github.com/serialine/serialine/sync/record"
)

// BenchmarkUnitCycle runs whole units through the engine with in-process
// fake devices: serial allocation, commissioning record, print, camera
// reading, verdict, durable records (fsync'd group commits), aggregation.
// Reports sustained units/s.
func BenchmarkUnitCycle(b *testing.B) {
	cfg := testConfig(10, 100)
	cfg.Edge.PrintAhead = 64
	cfg.Edge.VerdictTimeout = 0
	r := newRig(b, cfg, "", good)
	b.ResetTimer()
	start := time.Now()
	startBatch(b, r, "BENCH", b.N)
	r.waitFor("all verdicts", func(s Status) bool { return s.Good+s.Rejected >= b.N })
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "units/s")
	r.stop()
}

// BenchmarkUnitCycleLatency paces camera results at 20 units/s (b.N units;
// `make bench` runs 200) through the engine with in-process fake devices and
// measures, per unit, camera result in → verdict → records committed
// (fsync'd) → output: the PLC reject pulse for rejected units (every second
// unit reads with grade D), the committed status for good ones. Reports
// p50/p99/max in ms.
func BenchmarkUnitCycleLatency(b *testing.B) {
	n := b.N
	cfg := testConfig(10, 100)
	cfg.Edge.PrintAhead = 3
	cfg.Edge.VerdictTimeout = config.Duration(10 * time.Second)
	cfg.Products[0].Serials.OveragePercent = 100
	var mu sync.Mutex
	sent := make([]time.Time, n+1)  // unit k's reading went to the camera
	done := make([]time.Time, n+1)  // unit k's output happened
	var verdicts, rejects int       // committed verdicts; reject pulses seen
	rejectOf := make([]int, 0, n/2) // unit numbers of rejected units, in order
	r := newRigWith(b, cfg, "", nil, func(r *rig, o *Options) {
		o.OnStatus = func(s Status) {
			now := time.Now()
			mu.Lock()
			for ; verdicts < s.Good+s.Rejected && verdicts < n; verdicts++ {
				if k := verdicts + 1; k%2 == 1 {
					done[k] = now
				}
			}
			mu.Unlock()
		}
		r.plc.onReject = func() {
			now := time.Now()
			mu.Lock()
			if rejects < len(rejectOf) {
				done[rejectOf[rejects]] = now
			}
			rejects++
			mu.Unlock()
		}
	})
	startBatch(b, r, "LAT", (n+1)/2+1) // never complete: every unit is paced
	b.ResetTimer()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for k := 1; k <= n; k++ {
		<-tick.C
		deadline := time.Now().Add(5 * time.Second)
		var l drivers.Label
		for {
			r.mu.Lock()
			have := len(r.labels)
			if have >= k {
				l = r.labels[k-1]
			}
			r.mu.Unlock()
			if have >= k {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("label %d never printed; status %+v", k, r.eng.Status())
			}
			time.Sleep(100 * time.Microsecond)
		}
		rd, _ := good(k, l)
		mu.Lock()
		if k%2 == 0 {
			rd.Grade = 1
			rejectOf = append(rejectOf, k)
		}
		sent[k] = time.Now()
		mu.Unlock()
		r.camera.in <- rd
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		complete := verdicts >= n && rejects >= n/2
		mu.Unlock()
		if complete {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("verdicts %d rejects %d of %d", verdicts, rejects, n)
		}
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	mu.Lock()
	lat := make([]float64, 0, n)
	for k := 1; k <= n; k++ {
		lat = append(lat, float64(done[k].Sub(sent[k]))/1e6)
	}
	mu.Unlock()
	sort.Float64s(lat)
	b.ReportMetric(percentile(lat, 50), "p50_ms")
	b.ReportMetric(percentile(lat, 99), "p99_ms")
	b.ReportMetric(lat[len(lat)-1], "max_ms")
	r.stop()
}

func percentile(sorted []float64, p float64) float64 {
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// BenchmarkPalletCloseValidation measures the aggregation interlock on a
// pallet of 100 closed cases of 100 verified units (10,000 descendants):
// every case and unit below the pallet is re-validated.
func BenchmarkPalletCloseValidation(b *testing.B) {
	cfg := testConfig(100, 100)
	r := newRig(b, cfg, "", nil)
	r.stop()
	e := r.eng
	e.b = &batch{ID: "PAL", GTIN: "09506000134352", UnitsPerCase: 100, CasesPerPallet: 100, State: BatchRunning}
	var pallet *container
	err := r.db.Update(func(tx *store.Tx) error {
		sscc, err := e.openContainer(tx, LevelPallet)
		if err != nil {
			return err
		}
		for c := 0; c < 100; c++ {
			cs, err := e.openContainer(tx, LevelCase)
			if err != nil {
				return err
			}
			kids := make([]string, 0, 100)
			for u := 0; u < 100; u++ {
				serial := fmt.Sprintf("%06d%06d", c, u)
				if err := putUnit(tx, unitKey(e.b.GTIN, serial), &unit{Batch: "PAL", Seq: uint64(c*100 + u), Status: UnitGood, Parent: cs, Grade: 4}); err != nil {
					return err
				}
				kids = append(kids, record.UnitID(e.b.GTIN, serial))
			}
			cc := container{SSCC: cs, Level: LevelCase, Batch: "PAL", GTIN: e.b.GTIN, Parent: sscc, Children: kids, Closed: true}
			if err := tx.PutJSON(store.Containers, []byte(cs), &cc); err != nil {
				return err
			}
			if pallet == nil {
				pallet = &container{SSCC: sscc, Level: LevelPallet, Batch: "PAL", GTIN: e.b.GTIN}
			}
			pallet.Children = append(pallet.Children, record.ContainerID(cs))
		}
		return tx.PutJSON(store.Containers, []byte(sscc), pallet)
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		err := r.db.View(func(tx *store.Tx) error { return e.validateClose(tx, pallet, false) })
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/close")
	b.ReportMetric(10000, "units")
}
