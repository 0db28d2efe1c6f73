package line

import (
	"testing"
	"time"
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
