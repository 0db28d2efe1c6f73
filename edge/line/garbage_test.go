package line

import (
	"context"
	"crypto/ed25519"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/serialine/serialine/drivers"
	"github.com/serialine/serialine/drivers/camera"
	"github.com/serialine/serialine/drivers/camera/camerasim"
	"github.com/serialine/serialine/edge/store"
	"github.com/serialine/serialine/sync/record"
)

// Garbage from the camera, end to end with the real driver and simulator:
// the line that does not parse is a recorded device fault carrying the
// bytes, the unit concerned is rejected (and pulsed out), and the line goes
// on with the next unit.
func TestGarbageFromCamera(t *testing.T) {
	sim := camerasim.New(camerasim.Options{Name: "cam-1"}, zerolog.Nop())
	if _, err := sim.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	simDone := make(chan struct{})
	go func() { sim.Serve(ctx); close(simDone) }()
	defer func() { cancel(); <-simDone }()

	cam, err := camera.New("cam-1", sim.Addr(), time.Second, camera.Options{}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(10, 10)
	db, err := store.Open(filepath.Join(t.TempDir(), "edge.db"), store.Options{EdgeID: cfg.Edge.ID, Key: ed25519.NewKeyFromSeed(make([]byte, 32))})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	printer := &fakePrinter{out: make(chan drivers.Label, 64)}
	plc := &fakePLC{}
	eng, err := New(Options{Config: cfg, Store: db, Log: zerolog.Nop(), StatusInterval: 50 * time.Millisecond,
		Devices: Devices{Printer: printer, PrinterName: "printer-1", Camera: cam, CameraName: "cam-1", PLC: plc, PLCName: "plc-1"}})
	if err != nil {
		t.Fatal(err)
	}
	engDone := make(chan error, 1)
	go func() { engDone <- eng.Run(ctx) }()
	<-eng.Ready()
	// The conveyor: the second unit's result line is garbage.
	sim.Next(camerasim.Good)
	sim.Next(camerasim.Garbage)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case l := <-printer.out:
				sim.See(l.Data.ElementString())
			}
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for sim.Clients() == 0 || eng.Status().Devices["cam-1"] != "ok" {
		if time.Now().After(deadline) {
			t.Fatalf("camera not connected: %v", eng.Status().Devices)
		}
		time.Sleep(5 * time.Millisecond)
	}
	r := &rig{t: t, eng: eng, db: db}
	startBatch(t, r, "LOTG", 3)
	s := r.waitFor("3 good units", func(s Status) bool { return s.State == "Complete" })
	if s.Good != 3 || s.Rejected != 1 || s.Reasons[ReasonUnparseable] != 1 {
		t.Fatalf("status %+v", s)
	}
	r.waitFor("the reject pulse", func(Status) bool { return plc.Rejects() == 1 })
	cancel()
	if err := <-engDone; err != nil {
		t.Fatal(err)
	}
	var fault *record.DeviceFault
	var rejected *record.UnitVerified
	for _, rec := range records(t, r) {
		switch rec.Kind {
		case record.KindDeviceFault:
			var f record.DeviceFault
			mustJSON(t, rec.Body, &f)
			if f.Fault == "malformed_result" {
				fault = &f
			}
		case record.KindUnitVerified:
			var v record.UnitVerified
			mustJSON(t, rec.Body, &v)
			if !v.Pass {
				rejected = &v
			}
		}
	}
	if fault == nil || fault.Device != "cam-1" || fault.Kind != "camera" || fault.Raw != `\x01garbage without fields` || !strings.Contains(fault.Detail, "malformed device data") {
		t.Fatalf("device fault record %+v", fault)
	}
	if rejected == nil || rejected.Reason != ReasonUnparseable || rejected.Camera != "cam-1" || rejected.Serial == "" {
		t.Fatalf("reject record %+v", rejected)
	}
}
