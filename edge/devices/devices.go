// Package devices builds the line's drivers from the line config and serves
// the edge's OPC UA tags from the engine's status. It is the one place that
// knows every driver package.
package devices

import (
	"fmt"
	"sync"

	"github.com/rs/zerolog"

	"github.com/serialine/serialine/drivers"
	"github.com/serialine/serialine/drivers/camera"
	"github.com/serialine/serialine/drivers/modbus"
	"github.com/serialine/serialine/drivers/opcua"
	"github.com/serialine/serialine/drivers/videojet"
	"github.com/serialine/serialine/drivers/zebra"
	"github.com/serialine/serialine/edge/config"
	"github.com/serialine/serialine/edge/line"
)

type driver struct {
	kind       string
	newOptions func() any
	build      func(d config.Device, opts any, log zerolog.Logger) (any, error)
}

var drivers_ = map[string]driver{
	"zebra": {"printer", func() any { return &zebra.Options{} }, func(d config.Device, o any, log zerolog.Logger) (any, error) {
		return zebra.New(d.Name, d.Address, d.Timeout.D(), *o.(*zebra.Options), log)
	}},
	"videojet": {"printer", func() any { return &videojet.Options{} }, func(d config.Device, o any, log zerolog.Logger) (any, error) {
		return videojet.New(d.Name, d.Address, d.Timeout.D(), *o.(*videojet.Options), log)
	}},
	"videojet-cij": {"printer", func() any { return &videojet.CIJOptions{} }, func(d config.Device, o any, log zerolog.Logger) (any, error) {
		return videojet.NewCIJ(d.Name, d.Address, d.Timeout.D(), *o.(*videojet.CIJOptions), log)
	}},
	"dataman": {"camera", func() any { return &camera.Options{Profile: "dataman"} }, func(d config.Device, o any, log zerolog.Logger) (any, error) {
		return camera.New(d.Name, d.Address, d.Timeout.D(), *o.(*camera.Options), log)
	}},
	"keyence": {"camera", func() any { return &camera.Options{Profile: "keyence"} }, func(d config.Device, o any, log zerolog.Logger) (any, error) {
		return camera.New(d.Name, d.Address, d.Timeout.D(), *o.(*camera.Options), log)
	}},
	"modbus": {"plc", func() any { return &modbus.Options{} }, func(d config.Device, o any, log zerolog.Logger) (any, error) {
		return modbus.New(d.Name, d.Address, d.Timeout.D(), *o.(*modbus.Options), log)
	}},
	"opcua": {"plc", func() any { return &opcua.Options{} }, func(d config.Device, o any, log zerolog.Logger) (any, error) {
		return opcua.New(d.Name, d.Address, d.Timeout.D(), *o.(*opcua.Options), log)
	}},
}

var registerOnce sync.Once

// Register makes the real drivers' options known to the config package
// (strict decoding and JSON Schema of each device's `options:`).
func Register() {
	registerOnce.Do(func() {
		for name, d := range drivers_ {
			config.RegisterDriver(d.kind, name, d.newOptions)
		}
	})
}

func build(d config.Device, log zerolog.Logger) (any, error) {
	drv, ok := drivers_[d.Driver]
	if !ok {
		return nil, fmt.Errorf("device %s: unknown driver %q", d.Name, d.Driver)
	}
	opts := d.Decoded
	if opts == nil {
		opts = drv.newOptions()
	}
	dev, err := drv.build(d, opts, log.With().Str("device", d.Name).Logger())
	if err != nil {
		return nil, fmt.Errorf("device %s (%s): %w", d.Name, d.Driver, err)
	}
	return dev, nil
}

// Build constructs the line's printers, camera and PLC: the printer of the
// unit labels, the printers of the case and pallet SSCC labels (by
// devices.printers[].levels), the first camera (triggered by the engine
// once per unit when its options say trigger.enabled) and the first PLC.
func Build(cfg *config.Line, log zerolog.Logger) (line.Devices, error) {
	Register()
	var out line.Devices
	if len(cfg.Devices.Printers) == 0 || len(cfg.Devices.Cameras) == 0 || len(cfg.Devices.PLCs) == 0 {
		return out, fmt.Errorf("line %s needs a printer, a camera and a PLC", cfg.Line.ID)
	}
	// Printers, each with the levels it labels.
	levelOf := map[string]int{} // level -> printer index
	built := make([]drivers.Printer, len(cfg.Devices.Printers))
	for i, d := range cfg.Devices.Printers {
		dev, err := build(d, log)
		if err != nil {
			return out, err
		}
		p, ok := dev.(drivers.Printer)
		if !ok {
			return out, fmt.Errorf("device %s is not a printer", d.Name)
		}
		built[i] = p
		var lp line.LabelPrinter
		for _, level := range d.Levels {
			if other, dup := levelOf[level]; dup {
				return out, fmt.Errorf("devices.printers[%d].levels: %s labels are printed by %s already", i, level, cfg.Devices.Printers[other].Name)
			}
			levelOf[level] = i
			switch level {
			case "unit":
				out.Printer, out.PrinterName = p, d.Name
			case "case", "pallet":
				lp.Levels = append(lp.Levels, drivers.Level(level))
			default:
				return out, fmt.Errorf("devices.printers[%d].levels: level %q: want unit, case or pallet", i, level)
			}
		}
		if len(lp.Levels) > 0 {
			lp.Name, lp.Printer = d.Name, p
			out.LabelPrinters = append(out.LabelPrinters, lp)
		}
	}
	if out.Printer == nil {
		return out, fmt.Errorf("line %s: no printer labels the units (devices.printers[].levels: [unit])", cfg.Line.ID)
	}
	// Products' label template overrides (products[].labels), each level's
	// on the printer that labels it.
	for i, prod := range cfg.Products {
		if len(prod.Labels) == 0 {
			continue
		}
		byPrinter := map[int]map[string]string{}
		for _, level := range sortedLevels(prod.Labels) {
			pi, ok := levelOf[level]
			if !ok {
				return out, fmt.Errorf("products[%d].labels.%s: no printer labels %ss on line %s (devices.printers[].levels)", i, level, level, cfg.Line.ID)
			}
			if byPrinter[pi] == nil {
				byPrinter[pi] = map[string]string{}
			}
			byPrinter[pi][level] = prod.Labels[level]
		}
		for pi, labels := range byPrinter {
			d := cfg.Devices.Printers[pi]
			pt, ok := built[pi].(drivers.ProductTemplater)
			if !ok {
				return out, fmt.Errorf("products[%d].labels: printer %s (driver %s) does not take label templates (its jobs live on the printer): remove the labels or use a printer that does", i, d.Name, d.Driver)
			}
			if err := pt.SetProductTemplates(prod.GTIN, labels); err != nil {
				return out, fmt.Errorf("products[%d].labels: %w", i, err)
			}
		}
	}
	camDev := cfg.Devices.Cameras[0]
	c, err := build(camDev, log)
	if err != nil {
		return out, err
	}
	var ok bool
	if out.Camera, ok = c.(drivers.Camera); !ok {
		return out, fmt.Errorf("device %s is not a camera", camDev.Name)
	}
	if o, isCam := camDev.Decoded.(*camera.Options); isCam && o.Trigger.Enabled {
		if _, ok := c.(drivers.Triggerer); !ok {
			return out, fmt.Errorf("devices.cameras[0] (%s): trigger.enabled, but driver %s cannot be triggered by command", camDev.Name, camDev.Driver)
		}
		out.TriggerCamera = true
	}
	plcDev := cfg.Devices.PLCs[0]
	l, err := build(plcDev, log)
	if err != nil {
		return out, err
	}
	if out.PLC, ok = l.(drivers.PLC); !ok {
		return out, fmt.Errorf("device %s is not a PLC", plcDev.Name)
	}
	if o, isModbus := plcDev.Decoded.(*modbus.Options); isModbus {
		if pulse := o.Tags["reject"].Pulse; pulse > 0 && pulse >= cfg.Edge.RejectDeadline.D() {
			return out, fmt.Errorf("devices.plcs[0] (%s): the reject pulse (%s) must be shorter than edge.reject_deadline (%s): the engine takes a pulse confirmed after the deadline as not delivered", plcDev.Name, pulse, cfg.Edge.RejectDeadline.D())
		}
	}
	out.CameraName, out.PLCName = camDev.Name, plcDev.Name
	return out, nil
}

func sortedLevels(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, l := range []string{"unit", "case", "pallet"} {
		if _, ok := m[l]; ok {
			out = append(out, l)
		}
	}
	for k := range m {
		if k != "unit" && k != "case" && k != "pallet" {
			out = append(out, k)
		}
	}
	return out
}
