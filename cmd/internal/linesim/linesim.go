// Package linesim starts a simulator for every device of a line config on
// real sockets (the same wire protocols as the real devices) and connects
// them like a conveyor: every unit label the unit printer prints passes the
// (first) camera, and the PLC's product_present input, when mapped as a
// discrete input, pulses as the unit reaches the camera. Case and pallet
// labels (GS1-128, from the printers of those levels) are recorded
// (ContainerLabels), never seen by the camera. Used by `serialine-sim` and
// `serialine demo`.
package linesim

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/serialine/serialine/drivers/camera"
	"github.com/serialine/serialine/drivers/camera/camerasim"
	"github.com/serialine/serialine/drivers/modbus"
	"github.com/serialine/serialine/drivers/modbus/modbussim"
	"github.com/serialine/serialine/drivers/opcua"
	"github.com/serialine/serialine/drivers/opcua/opcuasim"
	"github.com/serialine/serialine/drivers/videojet"
	"github.com/serialine/serialine/drivers/videojet/videojetsim"
	"github.com/serialine/serialine/drivers/zebra/zebrasim"
	"github.com/serialine/serialine/edge/config"
)

// Options configure the simulated line.
type Options struct {
	Rate         float64 // labels per second the printer prints (line speed)
	BadGradeRate float64
	NoReadRate   float64
	// Faults injected from the start (serialine-sim flags); the control API
	// changes them while running.
	DuplicateRate, MismatchRate, GarbageRate float64
	// PrinterFault is injected into every printer from the start: a fault
	// name of its simulator (see SetPrinterFault); "" or none for none.
	PrinterFault string
	PrinterSlow  time.Duration // delay of every printer status answer
	CameraDelay  time.Duration // between a label passing and its result line
	PLCDelay     time.Duration // delay of every PLC answer
	Seed         uint64
	// UseConfigAddrs binds the addresses in the config (serialine-sim);
	// otherwise every simulator takes a free port on 127.0.0.1.
	UseConfigAddrs bool
	Log            zerolog.Logger
}

// Line is a running simulated line.
type Line struct {
	Printers map[string]*zebrasim.Sim
	Cameras  map[string]*camerasim.Sim
	PLCs     map[string]*modbussim.Sim
	UAPLCs   map[string]*opcuasim.Sim // OPC UA PLCs
	addrs    map[string]string
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	// Videojets are the Videojet printers (drivers videojet, videojet-cij).
	Videojets map[string]*videojetsim.Sim

	mu       sync.Mutex
	boxes    []ContainerLabel
	faults   map[string]string // printer -> fault injected through the Line
	presence map[string]uint16 // PLC -> discrete input of product_present
	pulses   []chan struct{}   // one product_present pulse per unit, per PLC
}

// ContainerLabel is a case or pallet label a printer printed.
type ContainerLabel struct {
	Printer string
	Symbol  string // gs1-128 (datamatrix if a unit label came out of a label printer)
	Data    string // as a scanner reads it (FNC1 as GS)
}

// ContainerLabels returns the case and pallet labels printed so far.
func (l *Line) ContainerLabels() []ContainerLabel {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]ContainerLabel(nil), l.boxes...)
}

func (l *Line) recordBox(printer, symbol, data string) {
	l.mu.Lock()
	l.boxes = append(l.boxes, ContainerLabel{Printer: printer, Symbol: symbol, Data: data})
	l.mu.Unlock()
}

func bind(opt Options, d config.Device) string {
	if opt.UseConfigAddrs {
		return d.Address
	}
	return "127.0.0.1:0"
}

// Start starts the simulators of every device in cfg.
func Start(ctx context.Context, cfg *config.Line, opt Options) (_ *Line, err error) {
	ctx, cancel := context.WithCancel(ctx)
	l := &Line{Printers: map[string]*zebrasim.Sim{}, Cameras: map[string]*camerasim.Sim{}, PLCs: map[string]*modbussim.Sim{}, UAPLCs: map[string]*opcuasim.Sim{}, addrs: map[string]string{}, cancel: cancel,
		Videojets: map[string]*videojetsim.Sim{}, faults: map[string]string{}, presence: map[string]uint16{}}
	defer func() {
		if err != nil {
			l.Close() // l, not the nil the failing return gives the caller
		}
	}()
	for _, d := range cfg.Devices.Printers {
		if d.Driver == "videojet" || d.Driver == "videojet-cij" {
			if err := l.startVideojet(ctx, opt, d); err != nil {
				return nil, err
			}
		} else {
			if d.Driver != "zebra" {
				return nil, fmt.Errorf("printer %s: no simulator for driver %q", d.Name, d.Driver)
			}
			s := zebrasim.New(zebrasim.Options{Name: d.Name, LabelsPerSecond: opt.Rate}, opt.Log)
			s.SetSlow(opt.PrinterSlow)
			a, err := s.Listen(bind(opt, d))
			if err != nil {
				return nil, fmt.Errorf("printer %s: %w", d.Name, err)
			}
			l.addrs[d.Name] = a.String()
			l.Printers[d.Name] = s
			l.serve(func() { s.Serve(ctx) })
		}
		if opt.PrinterFault != "" && opt.PrinterFault != "none" {
			if err := l.SetPrinterFault(d.Name, opt.PrinterFault); err != nil {
				return nil, err
			}
		}
	}
	for i, d := range cfg.Devices.Cameras {
		profile := "dataman"
		if o, ok := d.Decoded.(*camera.Options); ok && o.Profile != "" {
			profile = o.Profile
		} else if d.Driver == "keyence" {
			profile = "keyence"
		}
		// A reader triggered by command reads for a while when nothing is
		// in view yet (the label is on its way from the printer).
		var window time.Duration
		if o, ok := d.Decoded.(*camera.Options); ok && o.Trigger.Enabled {
			window = 2 * time.Second
		}
		s := camerasim.New(camerasim.Options{Name: d.Name, Profile: profile, Seed: opt.Seed + uint64(i), Delay: opt.CameraDelay, ReadWindow: window,
			Rates: camerasim.Rates{BadGrade: opt.BadGradeRate, NoRead: opt.NoReadRate, Duplicate: opt.DuplicateRate, Mismatch: opt.MismatchRate, Garbage: opt.GarbageRate}}, opt.Log)
		a, err := s.Listen(bind(opt, d))
		if err != nil {
			return nil, fmt.Errorf("camera %s: %w", d.Name, err)
		}
		l.addrs[d.Name] = a.String()
		l.Cameras[d.Name] = s
		l.serve(func() { s.Serve(ctx) })
	}
	for _, d := range cfg.Devices.PLCs {
		if d.Driver == "opcua" {
			if err := l.startOPCUA(opt, d); err != nil {
				return nil, err
			}
			continue
		}
		if d.Driver != "modbus" {
			return nil, fmt.Errorf("PLC %s: no simulator for driver %q", d.Name, d.Driver)
		}
		var tags map[string]modbus.Tag
		unit := uint8(1)
		if o, ok := d.Decoded.(*modbus.Options); ok {
			tags = o.Tags
			if o.UnitID != 0 {
				unit = o.UnitID
			}
		}
		if t, ok := tags["product_present"]; ok && t.DiscreteInput != nil {
			l.presence[d.Name] = *t.DiscreteInput
		}
		s := modbussim.New(modbussim.Options{Name: d.Name, UnitID: unit, Tags: tags}, opt.Log)
		s.SetDelay(opt.PLCDelay)
		a, err := s.Start(bind(opt, d))
		if err != nil {
			return nil, fmt.Errorf("PLC %s: %w", d.Name, err)
		}
		l.addrs[d.Name] = a
		l.PLCs[d.Name] = s
	}
	// The conveyor: the unit printer's labels pass the first camera; the
	// label printers' labels go on the cases and pallets.
	var cam *camerasim.Sim
	if len(cfg.Devices.Cameras) > 0 {
		cam = l.Cameras[cfg.Devices.Cameras[0].Name]
	}
	for name, addr := range l.presence {
		pulses := make(chan struct{}, 4096)
		l.pulses = append(l.pulses, pulses)
		p := l.PLCs[name]
		l.serve(func() { presencePulses(ctx, p, addr, pulses) })
	}
	unitPrinter := unitPrinterOf(cfg)
	for _, p := range cfg.Devices.Printers {
		isUnit := p.Name == unitPrinter
		if isUnit && cam == nil {
			continue // no camera: the caller reads the printer's labels
		}
		name := p.Name
		var zc <-chan zebrasim.Printed
		var vc <-chan videojetsim.Printed
		if zs, ok := l.Printers[name]; ok {
			zc = zs.Printed()
		}
		if vs, ok := l.Videojets[name]; ok {
			vc = vs.Printed()
		}
		handle := func(symbol, data string) {
			if isUnit && symbol == "datamatrix" {
				cam.See(data)
				l.pulsePresence()
				return
			}
			l.recordBox(name, symbol, data)
		}
		l.serve(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case p := <-zc:
					handle(p.Symbol, p.Data)
				case p := <-vc:
					handle(p.Symbol, p.Data)
				}
			}
		})
	}
	return l, nil
}

// unitPrinterOf names the printer of the unit labels: the one whose levels
// say unit, else the first (configs built in code, without defaults).
func unitPrinterOf(cfg *config.Line) string {
	for _, p := range cfg.Devices.Printers {
		if slices.Contains(p.Levels, "unit") {
			return p.Name
		}
	}
	if len(cfg.Devices.Printers) > 0 {
		return cfg.Devices.Printers[0].Name
	}
	return ""
}

// pulsePresence pulses each PLC's product_present input for one unit.
func (l *Line) pulsePresence() {
	for _, p := range l.pulses {
		select {
		case p <- struct{}{}:
		default: // a conveyor this far behind has stopped anyway
		}
	}
}

// Presence pulses: the input is high while a unit is in front of the camera
// and low between units, PresencePulse each, one unit after the other (a
// poller needs a pulse of at least twice its period to see every edge).
const PresencePulse = 40 * time.Millisecond

func presencePulses(ctx context.Context, p *modbussim.Sim, addr uint16, pulses <-chan struct{}) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-pulses:
		}
		p.SetDiscrete(addr, true)
		if !sleepCtx(ctx, PresencePulse) {
			return
		}
		p.SetDiscrete(addr, false)
		if !sleepCtx(ctx, PresencePulse) {
			return
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// SetPrinterFault injects a fault into a printer simulator by name: Zebra
// (none, paper_out, ribbon_out, head_open, paused, over_temperature,
// no_answer) or Videojet (none, fault, ribbon_out, ink_empty, offline,
// warning, no_answer, garbage).
func (l *Line) SetPrinterFault(name, fault string) error {
	if z, ok := l.Printers[name]; ok {
		f, err := zebrasim.ParseFault(fault)
		if err != nil {
			return fmt.Errorf("printer %s (zebra): %w", name, err)
		}
		z.SetFault(f)
	} else if v, ok := l.Videojets[name]; ok {
		f, err := videojetsim.ParseFault(fault)
		if err != nil {
			return fmt.Errorf("printer %s (videojet): %w", name, err)
		}
		v.SetFault(f)
	} else {
		return fmt.Errorf("%w %q", ErrNoPrinter, name)
	}
	l.mu.Lock()
	l.faults[name] = fault
	l.mu.Unlock()
	return nil
}

// ErrNoPrinter: the line simulates no printer of that name.
var ErrNoPrinter = errors.New("no printer")

// SetPrinterSlow delays every answer of a printer simulator.
func (l *Line) SetPrinterSlow(name string, d time.Duration) error {
	if z, ok := l.Printers[name]; ok {
		z.SetSlow(d)
		return nil
	}
	if v, ok := l.Videojets[name]; ok {
		v.SetSlow(d)
		return nil
	}
	return fmt.Errorf("%w %q", ErrNoPrinter, name)
}

// PrinterStatus describes a printer simulator for people and tools: the
// driver kind, counts and the fault injected (Videojet: also its state and
// selected job).
func (l *Line) PrinterStatus(name string) (map[string]any, bool) {
	boxes := 0
	for _, b := range l.ContainerLabels() {
		if b.Printer == name {
			boxes++
		}
	}
	if z, ok := l.Printers[name]; ok {
		rec, pr, bad, dropped := z.Counts()
		return map[string]any{"kind": "zebra", "received": rec, "printed": pr, "bad_formats": bad, "dropped": dropped, "fault": z.Fault().String(), "container_labels": boxes}, true
	}
	v, ok := l.Videojets[name]
	if !ok {
		return nil, false
	}
	rec, pr, refused, bad, dropped := v.Counts()
	state, job, _ := v.State()
	l.mu.Lock()
	fault := l.faults[name]
	l.mu.Unlock()
	if fault == "" {
		fault = "none"
	}
	return map[string]any{"kind": "videojet", "received": rec, "printed": pr, "refused": refused, "bad_formats": bad, "dropped": dropped,
		"fault": fault, "state": state.String(), "job": job, "queued": v.Queued(), "container_labels": boxes}, true
}

// PrinterNames lists the simulated printers.
func (l *Line) PrinterNames() []string {
	var out []string
	for n := range l.Printers {
		out = append(out, n)
	}
	for n := range l.Videojets {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// startVideojet starts a Videojet simulator that matches the driver's
// options (jobs or messages, code fields).
func (l *Line) startVideojet(ctx context.Context, opt Options, d config.Device) error {
	var so videojetsim.Options
	if d.Driver == "videojet-cij" {
		var o videojet.CIJOptions
		if p, ok := d.Decoded.(*videojet.CIJOptions); ok {
			o = *p
		}
		so = videojetsim.CIJOptions(d.Name, o, opt.Rate)
	} else {
		var o videojet.Options
		if p, ok := d.Decoded.(*videojet.Options); ok {
			o = *p
		}
		so = videojetsim.TextOptions(d.Name, o, opt.Rate)
	}
	s := videojetsim.New(so, opt.Log)
	a, err := s.Listen(bind(opt, d))
	if err != nil {
		return fmt.Errorf("printer %s: %w", d.Name, err)
	}
	l.addrs[d.Name] = a.String()
	l.Videojets[d.Name] = s
	l.serve(func() { s.Serve(ctx) })
	return nil
}

// startOPCUA simulates an OPC UA PLC with the nodes, security and user of
// the device's driver options.
func (l *Line) startOPCUA(opt Options, d config.Device) error {
	o, ok := d.Decoded.(*opcua.Options)
	if !ok {
		o = &opcua.Options{Tags: map[string]opcua.Tag{"reject": {Node: "nsu=" + opcuasim.DefaultNamespace + ";s=PLC.Reject"}}}
	}
	so, err := opcuasim.FromDriver(d.Name, o)
	if err != nil {
		return fmt.Errorf("PLC %s: %w", d.Name, err)
	}
	s, err := opcuasim.New(so, opt.Log)
	if err != nil {
		return fmt.Errorf("PLC %s: %w", d.Name, err)
	}
	a, err := s.Start(bind(opt, d))
	if err != nil {
		return fmt.Errorf("PLC %s: %w", d.Name, err)
	}
	l.addrs[d.Name] = a
	l.UAPLCs[d.Name] = s
	return nil
}

func (l *Line) serve(f func()) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		f()
	}()
}

// Apply points the config's devices at the simulators.
func (l *Line) Apply(cfg *config.Line) {
	for _, list := range []*[]config.Device{&cfg.Devices.Printers, &cfg.Devices.Cameras, &cfg.Devices.PLCs} {
		for i := range *list {
			if a, ok := l.addrs[(*list)[i].Name]; ok {
				(*list)[i].Address = a
			}
		}
	}
}

// Addr returns a device's simulator address.
func (l *Line) Addr(device string) string { return l.addrs[device] }

// Describe lists "name (kind) address" for people.
func (l *Line) Describe() []string {
	var out []string
	for n := range l.Printers {
		out = append(out, fmt.Sprintf("printer %s  ZPL   tcp://%s", n, l.addrs[n]))
	}
	for n := range l.Videojets {
		out = append(out, fmt.Sprintf("printer %s  Videojet tcp://%s", n, l.addrs[n]))
	}
	for n := range l.Cameras {
		out = append(out, fmt.Sprintf("camera  %s  lines tcp://%s", n, l.addrs[n]))
	}
	for n := range l.PLCs {
		out = append(out, fmt.Sprintf("PLC     %s  Modbus tcp://%s", n, l.addrs[n]))
	}
	for n := range l.UAPLCs {
		out = append(out, fmt.Sprintf("PLC     %s  OPC UA opc.tcp://%s", n, l.addrs[n]))
	}
	return out
}

// Close stops every simulator.
func (l *Line) Close() {
	if l.cancel != nil {
		l.cancel()
	}
	for _, p := range l.PLCs {
		p.Stop()
	}
	for _, p := range l.UAPLCs {
		p.Stop()
	}
	l.wg.Wait()
}
