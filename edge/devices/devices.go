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

// Build constructs the line's printer, camera and PLC.
func Build(cfg *config.Line, log zerolog.Logger) (line.Devices, error) {
	Register()
	var out line.Devices
	if len(cfg.Devices.Printers) == 0 || len(cfg.Devices.Cameras) == 0 || len(cfg.Devices.PLCs) == 0 {
		return out, fmt.Errorf("line %s needs a printer, a camera and a PLC", cfg.Line.ID)
	}
	p, err := build(cfg.Devices.Printers[0], log)
	if err != nil {
		return out, err
	}
	c, err := build(cfg.Devices.Cameras[0], log)
	if err != nil {
		return out, err
	}
	l, err := build(cfg.Devices.PLCs[0], log)
	if err != nil {
		return out, err
	}
	var ok bool
	if out.Printer, ok = p.(drivers.Printer); !ok {
		return out, fmt.Errorf("device %s is not a printer", cfg.Devices.Printers[0].Name)
	}
	// Products' label template overrides (products[].labels), for printers
	// that take templates.
	for i, prod := range cfg.Products {
		if len(prod.Labels) == 0 {
			continue
		}
		pt, ok := p.(drivers.ProductTemplater)
		if !ok {
			d := cfg.Devices.Printers[0]
			return out, fmt.Errorf("products[%d].labels: printer %s (driver %s) does not take label templates (its jobs live on the printer): remove the labels or use a printer that does", i, d.Name, d.Driver)
		}
		if err := pt.SetProductTemplates(prod.GTIN, prod.Labels); err != nil {
			return out, fmt.Errorf("products[%d].labels: %w", i, err)
		}
	}
	if out.Camera, ok = c.(drivers.Camera); !ok {
		return out, fmt.Errorf("device %s is not a camera", cfg.Devices.Cameras[0].Name)
	}
	if out.PLC, ok = l.(drivers.PLC); !ok {
		return out, fmt.Errorf("device %s is not a PLC", cfg.Devices.PLCs[0].Name)
	}
	out.PrinterName, out.CameraName, out.PLCName = cfg.Devices.Printers[0].Name, cfg.Devices.Cameras[0].Name, cfg.Devices.PLCs[0].Name
	return out, nil
}
