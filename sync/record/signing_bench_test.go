package record

import (
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"testing"
)

// BenchmarkSigning measures the two signing schemes the protocol could use,
// per record, end to end: the edge chains and signs, central verifies the
// chain and the signatures. "per-record" signs every record; "checkpoint-N"
// signs the last record of every run of N chained records (a group commit),
// which authenticates the whole run through the hash chain. It reports the
// cost per record (ns/record, edge sign + central verify) and the envelope
// bytes per record (B/record), of which 64 per signature.
//
// The outcome (docs/sync.md, package doc): checkpoint signing. At a line's
// group commit of a few records per unit the saving is small; for backlog
// drains and bursts (hundreds of records per commit) it is most of the
// cost, and the envelope carries 64 signature bytes per commit instead of
// per record.
func BenchmarkSigning(b *testing.B) {
	key := testKey(b)
	pub := key.Public().(ed25519.PublicKey)
	for _, every := range []int{1, 4, 100} {
		name := fmt.Sprintf("checkpoint-%d", every)
		if every == 1 {
			name = "per-record"
		}
		b.Run(name, func(b *testing.B) {
			const n = 400
			recs := chain(b, key, n, n+1) // unsigned; signed below
			for i := range recs {
				recs[i].Sig = nil
			}
			envBytes := 0
			b.ResetTimer()
			for b.Loop() {
				// Edge: hash each record (chaining), sign checkpoints.
				for i := range recs {
					h := recs[i].Hash()
					if (i+1)%every == 0 || i == n-1 {
						recs[i].Sig = SignHash(key, h)
					} else {
						recs[i].Sig = nil
					}
				}
				// Central: verify the run.
				if _, err := VerifyRun(pub, Head{}, recs); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			for i := range recs {
				c := recs[i].Canonical()
				envBytes += binary.PutUvarint(make([]byte, 10), uint64(len(c))) + len(c) + 1 + len(recs[i].Sig)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
			b.ReportMetric(float64(envBytes)/n, "B/record")
		})
	}
}
