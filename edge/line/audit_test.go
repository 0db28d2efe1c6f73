package line

import (
	"strings"
	"testing"

	"github.com/serialine/serialine/drivers"
	"github.com/serialine/serialine/edge/serials"
	"github.com/serialine/serialine/edge/store"
)

// Audit finds what it promises to find: a clean store has no problems; a
// rejected unit in a closed case and a pooled serial that is also used are
// reported.
func TestAuditFindsCorruption(t *testing.T) {
	r := newRig(t, testConfig(4, 3), "", good)
	startBatch(t, r, "AUD", 24)
	r.waitFor("2 pallets", func(s Status) bool { return s.PalletsClosed == 2 })
	r.stop()
	rep, err := Audit(r.db)
	if err != nil || len(rep.Problems) > 0 || rep.Units < 24 || rep.Closed != 8 {
		t.Fatalf("clean store: %+v %v", rep, err)
	}
	var victim string
	err = r.db.Update(func(tx *store.Tx) error {
		// A unit of a closed case turns rejected.
		var c container
		k, _ := tx.First(store.Containers, nil)
		if _, err := tx.GetJSON(store.Containers, k, &c); err != nil {
			return err
		}
		if c.Level != LevelCase {
			t.Fatalf("first container is a %s", c.Level)
		}
		gtin, serial, _ := parseUnitID(c.Children[0])
		var u unit
		if _, err := getUnit(tx, unitKey(gtin, serial), &u); err != nil {
			return err
		}
		u.Status = UnitRejected
		if err := putUnit(tx, unitKey(gtin, serial), &u); err != nil {
			return err
		}
		// A serial still in the pool is used without being drawn.
		if err := serials.Generate(tx, gtin, serials.Spec{Length: 12}, 1); err != nil {
			return err
		}
		next := serials.Available(tx, gtin)
		list, err := serials.Reserve(tx, gtin, "OTHER", next)
		if err != nil {
			return err
		}
		victim = list[0]
		if _, err := serials.Release(tx, "OTHER"); err != nil {
			return err
		}
		return putUnit(tx, unitKey(gtin, victim), &unit{Batch: "AUD", Status: UnitGood})
	})
	if err != nil {
		t.Fatal(err)
	}
	rep, err = Audit(r.db)
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(rep.Problems, "\n")
	for _, want := range []string{"which is rejected", "serial " + victim + " is available and also used", "units commissioned"} {
		if !strings.Contains(all, want) {
			t.Errorf("audit did not report %q:\n%s", want, all)
		}
	}
}

// Audit checks container labels and rejects against their batch: a label
// marked pending that the batch does not list, a pending label of an open
// container, and a reject waiting for a unit that is good are reported.
func TestAuditLabelsAndRejects(t *testing.T) {
	cfg := testConfig(4, 3)
	r := newRigWith(t, cfg, "", good, func(r *rig, o *Options) {
		r.boxer = &fakePrinter{out: make(chan drivers.Label, 64)}
		o.Devices.LabelPrinters = []LabelPrinter{{Name: "case-printer", Printer: r.boxer, Levels: []drivers.Level{drivers.LevelCase}}}
	})
	startBatch(t, r, "AUDL", 8)
	r.waitFor("2 cases", func(s Status) bool { return s.CasesClosed == 2 && s.State == "Complete" })
	r.waitFor("labels sent", func(Status) bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.boxes) == 2
	})
	r.stop()
	if rep, err := Audit(r.db); err != nil || len(rep.Problems) > 0 {
		t.Fatalf("clean store: %+v %v", rep, err)
	}
	err := r.db.Update(func(tx *store.Tx) error {
		var b batch
		if _, err := tx.GetJSON(store.Batches, []byte("AUDL"), &b); err != nil {
			return err
		}
		var first container
		k, _ := tx.First(store.Containers, nil)
		if _, err := tx.GetJSON(store.Containers, k, &first); err != nil {
			return err
		}
		first.Label = labelPending // the batch does not list it
		if err := tx.PutJSON(store.Containers, k, &first); err != nil {
			return err
		}
		b.LabelsPending = append(b.LabelsPending, b.OpenPallet) // an open pallet has no label yet
		_, serial, _ := parseUnitID(first.Children[0])
		b.Undelivered = append(b.Undelivered, pendingReject{ID: serial, Serial: serial, Reason: ReasonNoRead})
		return tx.PutJSON(store.Batches, []byte("AUDL"), &b)
	})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Audit(r.db)
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(rep.Problems, "\n")
	for _, want := range []string{"has its label pending, batch AUDL does not list it", "label pending for pallet", "not a rejected unit"} {
		if !strings.Contains(all, want) {
			t.Errorf("audit did not report %q:\n%s", want, all)
		}
	}
}
