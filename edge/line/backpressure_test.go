package line

import (
	"context"
	"crypto/ed25519"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/serialine/serialine/drivers"
	"github.com/serialine/serialine/edge/store"
	"github.com/serialine/serialine/sync/record"
)

// A full outbox holds the line with an alarm (no more units commissioned,
// nothing dropped) and the line resumes once the outbox drains.
func TestBackpressureHoldsAndResumes(t *testing.T) {
	cfg := testConfig(4, 3)
	db, err := store.Open(filepath.Join(t.TempDir(), "edge.db"), store.Options{EdgeID: cfg.Edge.ID, Key: ed25519.NewKeyFromSeed(make([]byte, 32))})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var full atomic.Bool
	printer := &fakePrinter{out: make(chan drivers.Label, 64)}
	camera := &fakeCamera{in: make(chan drivers.Reading, 64)}
	eng, err := New(Options{Config: cfg, Store: db, Log: zerolog.Nop(), StatusInterval: 50 * time.Millisecond,
		Devices: Devices{Printer: printer, PrinterName: "printer-1", Camera: camera, CameraName: "cam-1", PLC: &fakePLC{}, PLCName: "plc-1"},
		Backpressure: func() (bool, string) {
			if full.Load() {
				return true, "outbox holds 2.0 MiB unacknowledged (limit 1.0 MiB)"
			}
			return false, ""
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}()
	<-eng.Ready()
	printed := atomic.Int64{}
	go func() {
		n := 0
		for {
			select {
			case <-ctx.Done():
				return
			case l := <-printer.out:
				n++
				printed.Add(1)
				rd, _ := good(n, l)
				select {
				case camera.in <- rd:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	r := &rig{t: t, eng: eng}
	startBatch(t, r, "LOT1", 1000)
	r.waitFor("units flowing", func(s Status) bool { return s.Good >= 5 })
	full.Store(true)
	s := r.waitFor("the line held", func(s Status) bool { return s.BatchState == BatchHeld })
	if !hasAlarm(s.Alarms, AlarmOutboxFull) {
		t.Fatalf("held without the alarm: %+v", s)
	}
	// Held: in-flight units finish, no new labels go out.
	r.waitFor("in-flight units done", func(s Status) bool { return s.InFlight == 0 })
	before := printed.Load()
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		if printed.Load() != before {
			t.Fatal("labels printed while the outbox is full")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// An operator's resume while still full is held again.
	if err := eng.Resume(ctx, "sup", "try"); err != nil {
		t.Fatal(err)
	}
	r.waitFor("held again", func(s Status) bool { return s.BatchState == BatchHeld })
	full.Store(false)
	s = r.waitFor("resumed", func(s Status) bool { return s.BatchState == BatchRunning && s.Good > int(before)+3 })
	if hasAlarm(s.Alarms, AlarmOutboxFull) {
		t.Fatalf("alarm still active: %+v", s.Alarms)
	}
	cancel()
	<-done
	done <- nil
	recs, err := db.Records(1, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	var alarms []record.Alarm
	for _, rec := range recs {
		if rec.Kind == record.KindAlarm {
			var a record.Alarm
			mustJSON(t, rec.Body, &a)
			if a.Code == AlarmOutboxFull {
				alarms = append(alarms, a)
			}
		}
	}
	if len(alarms) != 2 || !alarms[0].Active || alarms[1].Active {
		t.Fatalf("outbox_full alarm records %+v", alarms)
	}
}

func hasAlarm(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
