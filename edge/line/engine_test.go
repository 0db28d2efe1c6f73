package line

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/serialine/serialine/drivers"
	"github.com/serialine/serialine/edge/store"
	"github.com/serialine/serialine/sync/record"
)

func startBatch(t testing.TB, r *rig, lot string, planned int) {
	t.Helper()
	sig := &record.Signature{User: "sup", Name: "Sue Pervisor", Meaning: "line clearance"}
	if _, err := r.eng.StartBatch(context.Background(), BatchRequest{GTIN: "09506000134352", Lot: lot, Expiry: "281130", Planned: planned, By: "sup"}, sig); err != nil {
		t.Fatal(err)
	}
}

func records(t testing.TB, r *rig) []record.Record {
	t.Helper()
	recs, err := r.db.Records(1, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func kinds(recs []record.Record) map[record.Kind]int {
	m := map[record.Kind]int{}
	for _, r := range recs {
		m[r.Kind]++
	}
	return m
}

func TestHappyPathPacksPallets(t *testing.T) {
	r := newRig(t, testConfig(4, 3), "", good)
	startBatch(t, r, "LOT1", 24)
	s := r.waitFor("24 good units and 2 pallets", func(s Status) bool { return s.Good == 24 && s.PalletsClosed == 2 })
	if s.Rejected != 0 || s.CasesClosed != 6 || s.State != "Complete" {
		t.Fatalf("status %+v", s)
	}
	r.stop()
	recs := records(t, r)
	k := kinds(recs)
	if k[record.KindUnitCommissioned] != 24 || k[record.KindUnitVerified] != 24 || k[record.KindContainerClosed] != 8 || k[record.KindPacked] != 30 {
		t.Fatalf("record kinds %v", k)
	}
	if _, err := record.VerifyRun(r.db.PublicKey(), record.Head{}, recs); err != nil {
		t.Fatal(err)
	}
}

func TestRejectReasonsAndPLC(t *testing.T) {
	out := func(n int, l drivers.Label) (drivers.Reading, bool) {
		rd, _ := good(n, l)
		switch n {
		case 2:
			return drivers.Reading{Camera: "cam-1", NoRead: true}, true
		case 3:
			rd.Grade = 1.0 // D: below C
		case 5:
			rd.Data = strings.Replace(rd.Data, "LOT2", "LOT9", 1) // wrong lot
		case 7:
			rd.Data = "garbage" // does not parse
		}
		return rd, true
	}
	r := newRig(t, testConfig(4, 10), "", out)
	startBatch(t, r, "LOT2", 6)
	s := r.waitFor("6 good units", func(s Status) bool { return s.State == "Complete" })
	want := map[string]int{ReasonNoRead: 1, ReasonGrade: 1, ReasonMismatch: 1, ReasonUnparseable: 1}
	for reason, n := range want {
		if s.Reasons[reason] != n {
			t.Errorf("reason %s: %d, want %d (all: %v)", reason, s.Reasons[reason], n, s.Reasons)
		}
	}
	if s.Good != 6 || s.Commissioned != 10 || s.CasesClosed != 1 || s.OpenCaseFill != 2 {
		t.Fatalf("status %+v", s)
	}
	r.waitFor("PLC rejects", func(Status) bool { return r.plc.Rejects() == 4 })
	r.stop()
	// Every rejected serial is decommissioned.
	if k := kinds(records(t, r)); k[record.KindUnitDecommissioned] != 4 {
		t.Fatalf("decommissioned %d", k[record.KindUnitDecommissioned])
	}
}

func TestNoVerdictInTimeIsRejected(t *testing.T) {
	out := func(n int, l drivers.Label) (drivers.Reading, bool) {
		if n == 2 {
			return drivers.Reading{}, false // the camera never reports unit 2
		}
		return good(n, l)
	}
	r := newRig(t, testConfig(4, 10), "", out)
	startBatch(t, r, "LOT3", 5)
	s := r.waitFor("5 good units", func(s Status) bool { return s.State == "Complete" })
	// Unit 2 is missed: either the next read skips it (out of sequence) or
	// its deadline passes first. Both reject, never pass.
	if s.Good != 5 || s.Rejected != 1 || s.Reasons[ReasonOutOfSequence]+s.Reasons[ReasonTimeout] != 1 {
		t.Fatalf("status %+v", s)
	}
	r.stop()
}

func TestLastUnitWithoutReadTimesOut(t *testing.T) {
	out := func(n int, l drivers.Label) (drivers.Reading, bool) {
		if n == 3 {
			return drivers.Reading{}, false
		}
		return good(n, l)
	}
	r := newRig(t, testConfig(4, 10), "", out)
	startBatch(t, r, "LOT3B", 3)
	s := r.waitFor("3 good units", func(s Status) bool { return s.State == "Complete" })
	if s.Good != 3 || s.Reasons[ReasonTimeout] != 1 {
		t.Fatalf("status %+v", s)
	}
	r.stop()
}

func TestDuplicateReadRejectsSecondUnit(t *testing.T) {
	var first drivers.Label
	out := func(n int, l drivers.Label) (drivers.Reading, bool) {
		if n == 1 {
			first = l
		}
		if n == 3 {
			return good(n, first) // unit 3 carries unit 1's code
		}
		return good(n, l)
	}
	r := newRig(t, testConfig(4, 10), "", out)
	startBatch(t, r, "LOT4", 4)
	s := r.waitFor("4 good units", func(s Status) bool { return s.State == "Complete" })
	if s.Good != 4 || s.Rejected != 1 || s.Reasons[ReasonDuplicate] != 1 {
		t.Fatalf("status %+v", s)
	}
	r.stop()
}

// The aggregation interlock: a case cannot close with an unverified or a
// rejected unit, and a rejected unit can never be packed.
func TestCloseInterlock(t *testing.T) {
	hold := make(chan struct{})
	out := func(n int, l drivers.Label) (drivers.Reading, bool) {
		if n == 2 {
			<-hold // unit 2's verdict comes later
			return drivers.Reading{Camera: "cam-1", NoRead: true}, true
		}
		if n > 2 {
			return drivers.Reading{}, false
		}
		return good(n, l)
	}
	cfg := testConfig(4, 10)
	cfg.Edge.PrintAhead = 2
	r := newRig(t, cfg, "", out)
	defer close(hold)
	startBatch(t, r, "LOT5", 2)
	s := r.waitFor("unit 1 good, unit 2 in flight", func(s Status) bool { return s.Good == 1 && s.InFlight == 1 })
	ctx := context.Background()
	sscc, err := r.eng.OpenContainer(ctx, LevelCase)
	if err != nil {
		t.Fatal(err)
	}
	unit2 := record.UnitID("09506000134352", s.LastSerial)
	if err := r.eng.Pack(ctx, sscc, unit2); err != nil {
		t.Fatal(err)
	}
	err = r.eng.CloseContainer(ctx, sscc, true, &record.Signature{User: "sup", Meaning: "approval", Reason: "end of batch"})
	var re *RuleError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "is not verified") {
		t.Fatalf("close with an unverified unit: %v", err)
	}
	hold <- struct{}{}
	r.waitFor("unit 2 rejected", func(s Status) bool { return s.Rejected == 1 })
	err = r.eng.CloseContainer(ctx, sscc, true, &record.Signature{User: "sup", Meaning: "approval", Reason: "end of batch"})
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "rejected") && !strings.Contains(err.Error(), "decommissioned") {
		t.Fatalf("close with a rejected unit: %v", err)
	}
	other, _ := r.eng.OpenContainer(ctx, LevelCase)
	if err := r.eng.Pack(ctx, other, unit2); err == nil || !strings.Contains(err.Error(), "can never be packed") {
		t.Fatalf("pack of a rejected unit: %v", err)
	}
	// A partial close without a signature is refused.
	if err := r.eng.CloseContainer(ctx, sscc, true, nil); err == nil {
		t.Fatal("partial close without a signature accepted")
	}
	r.stop()
	// The refusals wrote nothing: no container.closed record.
	if k := kinds(records(t, r)); k[record.KindContainerClosed] != 0 {
		t.Fatalf("%d containers closed", k[record.KindContainerClosed])
	}
}

// A restart mid-batch: units in flight at the crash are decommissioned and
// hold the line until found, no serial is ever issued twice, and the chain
// continues.
func TestRestartMidBatch(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(5, 100)
	stall := make(chan struct{})
	out := func(n int, l drivers.Label) (drivers.Reading, bool) {
		if n > 7 {
			<-stall
			return drivers.Reading{}, false
		}
		return good(n, l)
	}
	r := newRig(t, cfg, dir, out)
	startBatch(t, r, "LOT6", 50)
	r.waitFor("7 good and units in flight", func(s Status) bool { return s.Good == 7 && s.InFlight > 0 })
	close(stall)
	r.stop()
	first := records(t, r)
	r.db.Close()

	r2 := newRig(t, cfg, dir, good)
	// The units in flight may have gone on unverified: the line is held
	// until a supervisor confirms each was found and removed.
	held := r2.waitFor("held for the units in flight", func(s Status) bool { return s.BatchState == "held" && len(s.RejectsNotDelivered) > 0 })
	if held.Reasons[ReasonRestart] != len(held.RejectsNotDelivered) {
		t.Fatalf("%d decommissioned at restart, %d to find", held.Reasons[ReasonRestart], len(held.RejectsNotDelivered))
	}
	ctx := context.Background()
	if err := r2.eng.Resume(ctx, "sup", "too early"); err == nil {
		t.Fatal("resumed before the units in flight were found")
	}
	for _, u := range held.RejectsNotDelivered {
		if u.Reason != ReasonRestart || u.Unit == "" {
			t.Fatalf("item to find: %+v", u)
		}
		if err := r2.eng.ConfirmRemoval(ctx, u.ID, "found before the camera", &record.Signature{User: "sup", Meaning: "the unit was found and removed"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := r2.eng.Resume(ctx, "sup", "units in flight removed"); err != nil {
		t.Fatal(err)
	}
	s := r2.waitFor("batch complete", func(s Status) bool { return s.State == "Complete" })
	r2.stop()
	recs := records(t, r2)
	if recs[0].Seq != 1 || len(recs) <= len(first) {
		t.Fatalf("log shrank: %d then %d", len(first), len(recs))
	}
	for i := range first {
		if recs[i].Hash() != first[i].Hash() {
			t.Fatalf("record %d changed across the restart", i+1)
		}
	}
	if _, err := record.VerifyRun(r2.db.PublicKey(), record.Head{}, recs); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	restart := 0
	for _, rec := range recs {
		switch rec.Kind {
		case record.KindUnitCommissioned:
			var u record.UnitCommissioned
			mustJSON(t, rec.Body, &u)
			if seen[u.Serial] {
				t.Fatalf("serial %s commissioned twice", u.Serial)
			}
			seen[u.Serial] = true
		case record.KindUnitDecommissioned:
			var u record.UnitDecommissioned
			mustJSON(t, rec.Body, &u)
			if u.Reason == ReasonRestart {
				restart++
			}
		}
	}
	if s.Good != 50 || restart == 0 || len(seen) != s.Good+s.Rejected || s.Reasons[ReasonRestart] != restart {
		t.Fatalf("%d serials, %d decommissioned at restart, status %+v", len(seen), restart, s)
	}
	_ = store.State
}
