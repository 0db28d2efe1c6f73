// Package linetest provides in-process fake line devices (printer, camera,
// PLC) joined by a conveyor, for tests and benchmarks of the line engine,
// the API, the edge app and the CLI. The real drivers and their simulators
// are tested on real sockets in drivers/.
package linetest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/serialine/serialine/drivers"
	"github.com/serialine/serialine/edge/line"
	"github.com/serialine/serialine/sync/gs1"
)

// Outcome decides what the camera reports for the n-th printed label
// (1-based); false means the camera reports nothing for it.
type Outcome func(n int, l drivers.Label) (drivers.Reading, bool)

// Good reads every label back with grade A.
func Good(n int, l drivers.Label) (drivers.Reading, bool) {
	return drivers.Reading{Camera: "camera-1", Data: l.Data.ElementString(), Symbology: gs1.SymbologyDataMatrix, Grade: 4}, true
}

// Line is a conveyor of fake devices: every label the printer prints passes
// the camera, which reports what the Outcome says.
type Line struct {
	Printer *Printer
	Camera  *Camera
	PLC     *PLC

	mu     sync.Mutex
	labels []drivers.Label
	seen   chan struct{} // closed and replaced at every printed label
	boxes  []drivers.Label
	ctx    context.Context
}

// New starts the conveyor; it stops with ctx.
func New(ctx context.Context, out Outcome) *Line {
	l := &Line{
		Printer: &Printer{out: make(chan drivers.Label, 4096)},
		Camera:  &Camera{in: make(chan drivers.Reading, 4096)},
		PLC:     &PLC{},
		seen:    make(chan struct{}),
		ctx:     ctx,
	}
	go func() {
		n := 0
		for {
			select {
			case <-ctx.Done():
				return
			case lb := <-l.Printer.out:
				n++
				l.mu.Lock()
				l.labels = append(l.labels, lb)
				close(l.seen)
				l.seen = make(chan struct{})
				l.mu.Unlock()
				if out == nil {
					continue
				}
				if rd, ok := out(n, lb); ok {
					select {
					case l.Camera.in <- rd:
					case <-ctx.Done():
						return
					}
				}
			}
		}
	}()
	return l
}

// Devices returns the devices for line.Options (named printer-1, camera-1, plc-1).
func (l *Line) Devices() line.Devices {
	return line.Devices{Printer: l.Printer, PrinterName: "printer-1", Camera: l.Camera, CameraName: "camera-1", PLC: l.PLC, PLCName: "plc-1"}
}

// LabelPrinter returns a fake printer of container labels for the levels
// (named label-printer); the labels it prints are kept (Boxes), never seen
// by the camera.
func (l *Line) LabelPrinter(levels ...drivers.Level) line.LabelPrinter {
	p := &Printer{out: make(chan drivers.Label, 256)}
	go func() {
		for {
			select {
			case <-l.ctx.Done():
				return
			case lb := <-p.out:
				l.mu.Lock()
				l.boxes = append(l.boxes, lb)
				l.mu.Unlock()
			}
		}
	}()
	return line.LabelPrinter{Name: "label-printer", Printer: p, Levels: levels}
}

// Boxes returns the container labels the label printer printed, in order.
func (l *Line) Boxes() []drivers.Label {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]drivers.Label(nil), l.boxes...)
}

// Labels returns every label printed so far, in order.
func (l *Line) Labels() []drivers.Label {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]drivers.Label(nil), l.labels...)
}

// WaitLabels waits until n labels were printed (or the timeout passes).
func (l *Line) WaitLabels(n int, timeout time.Duration) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		have, ch := len(l.labels), l.seen
		l.mu.Unlock()
		if have >= n {
			return true
		}
		select {
		case <-ch:
		case <-deadline.C:
			return false
		}
	}
}

// Read makes the camera report r (for labels the Outcome left alone).
func (l *Line) Read(r drivers.Reading) { l.Camera.in <- r }

// Printer is a fake printer; Fail makes Print fail as if disconnected.
type Printer struct {
	out     chan drivers.Label
	Fail    atomic.Bool
	printed atomic.Int64
}

func (p *Printer) Connect(ctx context.Context) error { return nil }
func (p *Printer) Print(ctx context.Context, l drivers.Label) error {
	if p.Fail.Load() {
		return drivers.ErrNotConnected
	}
	p.printed.Add(1)
	select {
	case p.out <- l:
	case <-ctx.Done():
	}
	return nil
}

// Printed counts labels printed.
func (p *Printer) Printed() int64 { return p.printed.Load() }
func (p *Printer) Status(ctx context.Context) (drivers.Health, error) {
	return drivers.Health{Connected: true}, nil
}
func (p *Printer) Close() error { return nil }

// Camera is a fake camera fed by the conveyor.
type Camera struct{ in chan drivers.Reading }

func (c *Camera) Connect(ctx context.Context) error { return nil }
func (c *Camera) Read(ctx context.Context) (drivers.Reading, error) {
	select {
	case r := <-c.in:
		return r, nil
	case <-ctx.Done():
		return drivers.Reading{}, ctx.Err()
	}
}
func (c *Camera) Close() error { return nil }

// PLC is a fake PLC that counts reject pulses; OnReject, if set before the
// engine runs, is called at every reject pulse. With RefuseRejects set it
// refuses every reject write (a Modbus exception).
type PLC struct {
	mu            sync.Mutex
	rejects       int
	uints         map[string]uint64
	OnReject      func()
	RefuseRejects atomic.Bool
}

func (p *PLC) Connect(ctx context.Context) error { return nil }
func (p *PLC) WriteBool(ctx context.Context, tag string, v bool) error {
	if tag == "reject" && v && p.RefuseRejects.Load() {
		return drivers.NewDeviceError("plc-1", "tag reject write", fmt.Errorf("%w: modbus exception 4 (server device failure)", drivers.ErrDeviceFault), nil)
	}
	if tag == "reject" && v {
		if p.OnReject != nil {
			p.OnReject()
		}
		p.mu.Lock()
		p.rejects++
		p.mu.Unlock()
	}
	return nil
}
func (p *PLC) ReadBool(ctx context.Context, tag string) (bool, error) { return true, nil }
func (p *PLC) WriteUint(ctx context.Context, tag string, v uint64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.uints == nil {
		p.uints = map[string]uint64{}
	}
	p.uints[tag] = v
	return nil
}
func (p *PLC) ReadUint(ctx context.Context, tag string) (uint64, error) { return 0, nil }
func (p *PLC) Close() error                                             { return nil }

// HasTag implements line.TagLister.
func (p *PLC) HasTag(name string) bool {
	return name == "reject" || name == "good_count" || name == "reject_count"
}

// Rejects counts reject pulses.
func (p *PLC) Rejects() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rejects
}
