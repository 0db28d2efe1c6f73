package line

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/serialine/serialine/drivers"
	"github.com/serialine/serialine/edge/config"
	"github.com/serialine/serialine/edge/store"
)

// In-process fake devices for engine tests and benchmarks: the drivers and
// their simulators are tested on real sockets in drivers/.

type fakePrinter struct {
	out     chan drivers.Label
	fail    atomic.Bool
	hang    atomic.Bool // Print blocks until the engine stops
	fault   atomic.Pointer[string]
	printed atomic.Int64
}

func (p *fakePrinter) Connect(ctx context.Context) error { return nil }
func (p *fakePrinter) Print(ctx context.Context, l drivers.Label) error {
	if p.hang.Load() {
		<-ctx.Done()
		return ctx.Err()
	}
	if p.fail.Load() {
		return drivers.ErrNotConnected
	}
	p.printed.Add(1)
	select {
	case p.out <- l:
	case <-ctx.Done():
	}
	return nil
}

func (p *fakePrinter) Status(ctx context.Context) (drivers.Health, error) {
	if f := p.fault.Load(); f != nil && *f != "" {
		return drivers.Health{Connected: true, Fault: *f}, drivers.ErrDeviceFault
	}
	return drivers.Health{Connected: true}, nil
}
func (p *fakePrinter) Close() error { return nil }

type fakeCamera struct {
	in       chan drivers.Reading
	triggers atomic.Int64
}

func (c *fakeCamera) Trigger(ctx context.Context) error {
	c.triggers.Add(1)
	return nil
}

func (c *fakeCamera) Connect(ctx context.Context) error { return nil }
func (c *fakeCamera) Read(ctx context.Context) (drivers.Reading, error) {
	select {
	case r := <-c.in:
		return r, nil
	case <-ctx.Done():
		return drivers.Reading{}, ctx.Err()
	}
}
func (c *fakeCamera) Close() error { return nil }

// Reject write behaviours of the fake PLC.
const (
	plcRejectOK     = iota
	plcRejectRefuse // a Modbus exception: the link is fine, the write refused
	plcRejectHang   // no answer: the write times out after hangFor
)

type fakePLC struct {
	mu       sync.Mutex
	rejects  int
	attempts int // reject writes tried
	uints    map[string]uint64
	onReject func() // called at every reject pulse (benchmarks)

	rejectMode    int
	hangFor       time.Duration
	failCounters  bool
	presence      bool // product_present is mapped
	present       bool
	presentReads  int
	presentSeenAs map[bool]int
}

func (p *fakePLC) Connect(ctx context.Context) error { return nil }
func (p *fakePLC) WriteBool(ctx context.Context, tag string, v bool) error {
	p.mu.Lock()
	if tag == "reject" && v {
		p.attempts++
		switch p.rejectMode {
		case plcRejectRefuse:
			p.mu.Unlock()
			return drivers.NewDeviceError("plc-1", "tag reject write", fmt.Errorf("%w: modbus exception 4", drivers.ErrDeviceFault), nil)
		case plcRejectHang:
			d := p.hangFor
			p.mu.Unlock()
			select {
			case <-time.After(d):
			case <-ctx.Done():
			}
			return drivers.NewDeviceError("plc-1", "tag reject write", fmt.Errorf("%w: no answer", drivers.ErrNotConnected), nil)
		}
		p.rejects++
		if p.onReject != nil {
			p.onReject()
		}
	}
	p.mu.Unlock()
	return nil
}
func (p *fakePLC) ReadBool(ctx context.Context, tag string) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if tag == "product_present" {
		p.presentReads++
		if p.presentSeenAs == nil {
			p.presentSeenAs = map[bool]int{}
		}
		p.presentSeenAs[p.present]++
		return p.present, nil
	}
	return true, nil
}
func (p *fakePLC) WriteUint(ctx context.Context, tag string, v uint64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failCounters {
		return drivers.NewDeviceError("plc-1", "tag "+tag+" write", fmt.Errorf("%w: broken pipe", drivers.ErrNotConnected), nil)
	}
	if p.uints == nil {
		p.uints = map[string]uint64{}
	}
	p.uints[tag] = v
	return nil
}
func (p *fakePLC) ReadUint(ctx context.Context, tag string) (uint64, error) { return 0, nil }
func (p *fakePLC) Close() error                                             { return nil }
func (p *fakePLC) HasTag(name string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return name == "reject" || name == "good_count" || name == "reject_count" || (name == "product_present" && p.presence)
}

// seen returns how often product_present was read with value v.
func (p *fakePLC) seen(v bool) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.presentSeenAs[v]
}

func (p *fakePLC) counter(tag string) uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.uints[tag]
}
func (p *fakePLC) Rejects() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rejects
}

// outcome decides what the camera reports for the n-th printed label (1-based).
type outcome func(n int, l drivers.Label) (drivers.Reading, bool)

func good(n int, l drivers.Label) (drivers.Reading, bool) {
	return drivers.Reading{Camera: "cam-1", Data: l.Data.ElementString(), Symbology: "]d2", Grade: 4}, true
}

type rig struct {
	mu      sync.Mutex
	labels  []drivers.Label // every label printed, in order
	boxes   []drivers.Label // every container label the label printer printed
	boxer   *fakePrinter    // the label printer (case, pallet), if any
	t       testing.TB
	cfg     *config.Line
	db      *store.DB
	eng     *Engine
	printer *fakePrinter
	camera  *fakeCamera
	plc     *fakePLC
	cancel  context.CancelFunc
	done    chan error
	dir     string
	key     ed25519.PrivateKey
}

func testConfig(unitsPerCase, casesPerPallet int) *config.Line {
	return &config.Line{
		Line: config.LineInfo{ID: "line-1"},
		// A reject deadline far beyond a loaded test machine's stalls: the
		// tests of the deadline set their own.
		Edge:     config.Edge{ID: "edge-1", PrintAhead: 3, VerdictTimeout: config.Duration(500 * time.Millisecond), GroupCommit: 256, RejectDeadline: config.Duration(10 * time.Second)},
		Company:  config.Company{GS1Prefix: "9506000", SSCCExtension: 3},
		Products: []config.Product{{GTIN: "09506000134352", Name: "Test tablets", MinGrade: "C", Packaging: config.Packaging{UnitsPerCase: unitsPerCase, CasesPerPallet: casesPerPallet}, Serials: config.Serials{Length: 12, Alphabet: "numeric"}}},
		Hash:     "cfg-hash-1",
	}
}

func newRig(t testing.TB, cfg *config.Line, dir string, out outcome) *rig {
	t.Helper()
	return newRigWith(t, cfg, dir, out, nil)
}

// newRigWith lets the caller adjust the engine options and the fakes
// before the engine starts.
func newRigWith(t testing.TB, cfg *config.Line, dir string, out outcome, mod func(*rig, *Options)) *rig {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	key := ed25519.NewKeyFromSeed(make([]byte, 32))
	db, err := store.Open(filepath.Join(dir, "edge.db"), store.Options{EdgeID: cfg.Edge.ID, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	r := &rig{t: t, cfg: cfg, db: db, dir: dir, key: key,
		printer: &fakePrinter{out: make(chan drivers.Label, 64)},
		camera:  &fakeCamera{in: make(chan drivers.Reading, 64)},
		plc:     &fakePLC{},
		done:    make(chan error, 1),
	}
	opt := Options{Config: cfg, Store: db, Log: zerolog.Nop(), StatusInterval: 50 * time.Millisecond,
		Devices: Devices{Printer: r.printer, PrinterName: "printer-1", Camera: r.camera, CameraName: "cam-1", PLC: r.plc, PLCName: "plc-1"}}
	if mod != nil {
		mod(r, &opt)
	}
	r.eng, err = New(opt)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- r.eng.Run(ctx) }()
	if r.boxer != nil {
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case l := <-r.boxer.out:
					r.mu.Lock()
					r.boxes = append(r.boxes, l)
					r.mu.Unlock()
				}
			}
		}()
	}
	// The conveyor: every printed label passes the camera.
	go func() {
		n := 0
		for {
			select {
			case <-ctx.Done():
				return
			case l := <-r.printer.out:
				n++
				r.mu.Lock()
				r.labels = append(r.labels, l)
				r.mu.Unlock()
				if out == nil {
					continue
				}
				if rd, ok := out(n, l); ok {
					select {
					case r.camera.in <- rd:
					case <-ctx.Done():
						return
					}
				}
			}
		}
	}()
	select {
	case <-r.eng.Ready():
	case err := <-r.done:
		t.Fatalf("engine stopped: %v", err)
	}
	return r
}

func (r *rig) stop() {
	r.cancel()
	if err := <-r.done; err != nil {
		r.t.Fatalf("engine: %v", err)
	}
}

// waitFor polls the engine status until cond holds.
func (r *rig) waitFor(what string, cond func(Status) bool) Status {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		s := r.eng.Status()
		if cond(s) {
			return s
		}
		time.Sleep(5 * time.Millisecond)
	}
	r.t.Fatalf("timed out waiting for %s; status %+v", what, r.eng.Status())
	return Status{}
}

func mustJSON(t testing.TB, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}
