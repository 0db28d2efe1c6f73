// Package linesim starts a simulator for every device of a line config on
// real sockets (the same wire protocols as the real devices) and connects
// them like a conveyor: every label the printer prints passes the camera.
// Used by `serialine-sim` and `serialine demo`.
package linesim

import (
	"context"
	"fmt"
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
	PrinterFault                             zebrasim.Fault
	PrinterSlow                              time.Duration // delay of every printer status answer
	CameraDelay                              time.Duration // between a label passing and its result line
	PLCDelay                                 time.Duration // delay of every PLC answer
	Seed                                     uint64
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
}

func bind(opt Options, d config.Device) string {
	if opt.UseConfigAddrs {
		return d.Address
	}
	return "127.0.0.1:0"
}

// Start starts the simulators of every device in cfg.
func Start(ctx context.Context, cfg *config.Line, opt Options) (l *Line, err error) {
	ctx, cancel := context.WithCancel(ctx)
	l = &Line{Printers: map[string]*zebrasim.Sim{}, Cameras: map[string]*camerasim.Sim{}, PLCs: map[string]*modbussim.Sim{}, UAPLCs: map[string]*opcuasim.Sim{}, addrs: map[string]string{}, cancel: cancel}
	l.Videojets = map[string]*videojetsim.Sim{}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	for _, d := range cfg.Devices.Printers {
		if d.Driver == "videojet" || d.Driver == "videojet-cij" {
			if err := l.startVideojet(ctx, opt, d); err != nil {
				return nil, err
			}
			continue
		}
		if d.Driver != "zebra" {
			return nil, fmt.Errorf("printer %s: no simulator for driver %q", d.Name, d.Driver)
		}
		s := zebrasim.New(zebrasim.Options{Name: d.Name, LabelsPerSecond: opt.Rate}, opt.Log)
		s.SetFault(opt.PrinterFault)
		s.SetSlow(opt.PrinterSlow)
		a, err := s.Listen(bind(opt, d))
		if err != nil {
			return nil, fmt.Errorf("printer %s: %w", d.Name, err)
		}
		l.addrs[d.Name] = a.String()
		l.Printers[d.Name] = s
		l.serve(func() { s.Serve(ctx) })
	}
	for i, d := range cfg.Devices.Cameras {
		profile := "dataman"
		if o, ok := d.Decoded.(*camera.Options); ok && o.Profile != "" {
			profile = o.Profile
		} else if d.Driver == "keyence" {
			profile = "keyence"
		}
		s := camerasim.New(camerasim.Options{Name: d.Name, Profile: profile, Seed: opt.Seed + uint64(i), Delay: opt.CameraDelay,
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
		s := modbussim.New(modbussim.Options{Name: d.Name, UnitID: unit, Tags: tags}, opt.Log)
		s.SetDelay(opt.PLCDelay)
		a, err := s.Start(bind(opt, d))
		if err != nil {
			return nil, fmt.Errorf("PLC %s: %w", d.Name, err)
		}
		l.addrs[d.Name] = a
		l.PLCs[d.Name] = s
	}
	// The conveyor: printer i's labels pass camera i (the line's pairs).
	for i, p := range cfg.Devices.Printers {
		if i >= len(cfg.Devices.Cameras) {
			break
		}
		ps, cs := l.Printers[p.Name], l.Cameras[cfg.Devices.Cameras[i].Name]
		if vs, ok := l.Videojets[p.Name]; ok {
			l.serve(func() {
				for {
					select {
					case <-ctx.Done():
						return
					case lbl := <-vs.Printed():
						if lbl.Symbol == "datamatrix" {
							cs.See(lbl.Data)
						}
					}
				}
			})
			continue
		}
		l.serve(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case lbl := <-ps.Printed():
					if lbl.Symbol == "datamatrix" {
						cs.See(lbl.Data)
					}
				}
			}
		})
	}
	return l, nil
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
