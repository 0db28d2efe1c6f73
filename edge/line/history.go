package line

import (
	"fmt"
	"math/rand/v2"

	"github.com/serialine/serialine/edge/serials"
	"github.com/serialine/serialine/edge/store"
)

// SeedHistory writes the serial history of a line that has run for years
// into a store: used serials of GTIN (verified good units of closed past
// batches of 100,000) plus avail serials still in the pool. Serials are
// distinct 12-digit numbers written in key order in transactions of 200,000
// (appends, fast). It is for the memory and start-up benchmarks; use a
// store opened with NoSync.
func SeedHistory(db *store.DB, gtin string, used, avail int, seed uint64, progress func(done int)) error {
	rng := rand.New(rand.NewPCG(seed, seed^0x5e71a1))
	total := used + avail
	// Sorted distinct serials: random gaps over the 10^12 space.
	gap := uint64(1e12) / uint64(total+1)
	if gap < 2 {
		return fmt.Errorf("%d serials do not fit 12 digits", total)
	}
	next := uint64(0)
	const chunk = 200000
	list := make([]string, 0, chunk)
	for done := 0; done < total; {
		list = list[:0]
		for len(list) < chunk && done+len(list) < total {
			next += 1 + rng.Uint64N(gap-1)
			list = append(list, fmt.Sprintf("%012d", next))
		}
		err := db.Update(func(tx *store.Tx) error { return serials.Load(tx, gtin, list) })
		if err != nil {
			return err
		}
		done += len(list)
		if progress != nil {
			progress(done)
		}
	}
	for done := 0; done < used; {
		n := min(chunk, used-done)
		err := db.Update(func(tx *store.Tx) error {
			got, err := serials.Consume(tx, gtin, n)
			if err != nil {
				return err
			}
			for i, s := range got {
				k := done + i
				u := unit{Batch: fmt.Sprintf("HIST%05d", k/100000), Seq: uint64(k%100000 + 1), Status: UnitGood, Grade: 4}
				if err := putUnit(tx, unitKey(gtin, s), &u); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		done += n
		if progress != nil {
			progress(total + done)
		}
	}
	return nil
}
