package store

import (
	"crypto/ed25519"
	"errors"
	"math"
	"path/filepath"
	"sort"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/serialine/serialine/sync/record"
)

func key() ed25519.PrivateKey { return ed25519.NewKeyFromSeed(make([]byte, 32)) }

func open(t *testing.T, path string) *DB {
	t.Helper()
	db, err := Open(path, Options{EdgeID: "edge-1", Key: key(), Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestUpdateChainsAndSignsLastRecord(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "edge.db"))
	for g := 0; g < 3; g++ {
		err := db.Update(func(tx *Tx) error {
			for i := 0; i < 4; i++ {
				if _, err := tx.Append(record.KindPacked, map[string]int{"g": g, "i": i}); err != nil {
					return err
				}
			}
			return tx.Put(State, []byte("k"), []byte{byte(g)})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	recs, err := db.Records(1, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 12 || db.Head().Seq != 12 {
		t.Fatalf("got %d records, head %d", len(recs), db.Head().Seq)
	}
	for i, r := range recs {
		signed := len(r.Sig) > 0
		if signed != ((i+1)%4 == 0) {
			t.Fatalf("record %d signed=%v: only the last record of each transaction is signed", i+1, signed)
		}
	}
	if n, err := record.VerifyRun(db.PublicKey(), record.Head{}, recs); err != nil || n != 12 {
		t.Fatalf("chain does not verify: %d %v", n, err)
	}
}

func TestFailedUpdateWritesNothing(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "edge.db"))
	boom := errors.New("rule refused")
	err := db.Update(func(tx *Tx) error {
		tx.Append(record.KindPacked, 1)
		tx.Put(State, []byte("k"), []byte("v"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if db.Head().Seq != 0 {
		t.Fatal("head moved after a failed transaction")
	}
	db.View(func(tx *Tx) error {
		if tx.Get(State, []byte("k")) != nil {
			t.Fatal("state written by a failed transaction")
		}
		return nil
	})
}

func TestReopenKeepsHeadAndEpoch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "edge.db")
	db := open(t, path)
	db.Update(func(tx *Tx) error { _, err := tx.Append(record.KindPacked, 1); return err })
	h := db.Head()
	db.Close()
	db2 := open(t, path)
	if db2.Head() != h {
		t.Fatalf("head after reopen %+v, want %+v", db2.Head(), h)
	}
	db2.Update(func(tx *Tx) error { _, err := tx.Append(record.KindPacked, 2); return err })
	recs, _ := db2.Records(1, 10)
	if _, err := record.VerifyRun(db2.PublicKey(), record.Head{}, recs); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRefusesOtherEdgeAndLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "edge.db")
	db := open(t, path)
	_, err := Open(path, Options{EdgeID: "edge-1", Key: key(), Timeout: 50 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: want ErrLocked, got %v", err)
	}
	db.Close()
	if _, err := Open(path, Options{EdgeID: "edge-2", Key: key(), Timeout: 50 * time.Millisecond}); err == nil {
		t.Fatal("opened another edge's store")
	}
}

func TestAckPrunesOnlyWhatMatches(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "edge.db"))
	for i := 0; i < 5; i++ {
		db.Update(func(tx *Tx) error { _, err := tx.Append(record.KindPacked, i); return err })
	}
	recs, _ := db.Records(1, 10)
	h := db.Head()
	if err := db.Ack(h.Epoch, 3, record.Hash{1}); err == nil {
		t.Fatal("ack with a wrong hash accepted")
	}
	if err := db.Ack(h.Epoch, 9, recs[4].Hash()); err == nil {
		t.Fatal("ack beyond head accepted")
	}
	if err := db.Ack(h.Epoch+1, 3, recs[2].Hash()); err == nil {
		t.Fatal("ack for another epoch accepted")
	}
	if err := db.Ack(h.Epoch, 3, recs[2].Hash()); err != nil {
		t.Fatal(err)
	}
	left, _ := db.Records(1, 10)
	if len(left) != 2 || left[0].Seq != 4 || db.Acked() != 3 {
		t.Fatalf("after ack 3: %d records left starting at %d, acked %d", len(left), left[0].Seq, db.Acked())
	}
	// An older ack is a no-op.
	if err := db.Ack(h.Epoch, 2, recs[1].Hash()); err != nil || db.Acked() != 3 {
		t.Fatalf("older ack: %v, acked %d", err, db.Acked())
	}
}

func TestChangedIsClosedOnCommit(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "edge.db"))
	ch := db.Changed()
	db.Update(func(tx *Tx) error { return tx.Put(State, []byte("x"), []byte("y")) })
	select {
	case <-ch:
		t.Fatal("Changed fired without records")
	default:
	}
	db.Update(func(tx *Tx) error { _, err := tx.Append(record.KindPacked, 1); return err })
	select {
	case <-ch:
	default:
		t.Fatal("Changed not fired after appending records")
	}
}

// BenchmarkGroupCommit measures the durable record rate through Update
// (chain + checkpoint signature + log) against raw bbolt puts of the same
// record size in the same transaction sizes: the ratio is printed by
// `make bench`.
func BenchmarkGroupCommit(b *testing.B) {
	body := map[string]any{"batch": "L1", "gtin": "09506000134352", "serial": "123456789012", "pass": true, "grade": 4.0, "camera": "cam-1"}
	for _, raw := range []bool{false, true} {
		name := "store"
		if raw {
			name = "raw-bbolt"
		}
		b.Run(name, func(b *testing.B) {
			db, err := Open(filepath.Join(b.TempDir(), "e.db"), Options{EdgeID: "edge-1", Key: key()})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			const group = 256
			// Raw puts use the size of the records the store writes for
			// this body (canonical record + signature framing).
			val := make([]byte, storedRecordSize(b, body))
			n := uint64(0)
			b.ResetTimer()
			for i := 0; i < b.N; i += group {
				if raw {
					err = db.bolt.Update(func(tx *boltTx) error {
						bk := tx.Bucket(bucketLog)
						for j := 0; j < group; j++ {
							n++
							if err := bk.Put(u64(n), val); err != nil {
								return err
							}
						}
						return nil
					})
				} else {
					err = db.Update(func(tx *Tx) error {
						for j := 0; j < group; j++ {
							if _, err := tx.Append(record.KindUnitVerified, body); err != nil {
								return err
							}
						}
						return nil
					})
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(len(val)), "B/record")
		})
	}
}

type boltTx = bolt.Tx

// storedRecordSize is the log value size of one unsigned record with body.
func storedRecordSize(b *testing.B, body any) int {
	db, err := Open(filepath.Join(b.TempDir(), "size.db"), Options{EdgeID: "edge-1", Key: key(), NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *Tx) error {
		for i := 0; i < 2; i++ {
			if _, err := tx.Append(record.KindUnitVerified, body); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	size := 0
	db.bolt.View(func(tx *bolt.Tx) error {
		size = len(tx.Bucket(bucketLog).Get(u64(1))) // the first of two: not signed
		return nil
	})
	return size
}

// BenchmarkCommitLatency is the raw limit of the unit-cycle latency: one
// bbolt transaction with one record-sized put and its fsync, paced at 20
// per second like the units of BenchmarkUnitCycleLatency (b.N commits;
// `make bench` runs 200). Reports p50/p99/max in ms.
func BenchmarkCommitLatency(b *testing.B) {
	db, err := Open(filepath.Join(b.TempDir(), "e.db"), Options{EdgeID: "edge-1", Key: key()})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	val := make([]byte, 180)
	lat := make([]float64, 0, b.N)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		<-tick.C
		t0 := time.Now()
		err := db.bolt.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketLog).Put(u64(uint64(i+1)), val) })
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, float64(time.Since(t0))/1e6)
	}
	b.StopTimer()
	sort.Float64s(lat)
	at := func(p float64) float64 {
		return lat[max(0, min(len(lat)-1, int(math.Ceil(p/100*float64(len(lat))))-1))]
	}
	b.ReportMetric(at(50), "p50_ms")
	b.ReportMetric(at(99), "p99_ms")
	b.ReportMetric(lat[len(lat)-1], "max_ms")
}
