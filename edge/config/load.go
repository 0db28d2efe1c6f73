package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"reflect"
	"sort"
	"sync"
	"time"

	"gopkg.in/yaml.v3"
)

// Defaults are applied before the file is decoded (per-item defaults for
// products and devices are applied after, see applyDefaults).
func Defaults() Line {
	return Line{
		Edge: Edge{
			VerdictTimeout: Duration(2 * time.Second),
			PrintAhead:     3,
			GroupCommit:    256,
			RejectDeadline: Duration(500 * time.Millisecond),
			Challenge:      Challenge{Timeout: Duration(30 * time.Second)},
		},
		Central: Central{
			Broker:      "tcp://127.0.0.1:1883",
			Envelope:    500,
			ResendAfter: Duration(3 * time.Second),
			// Sized for days of a line's records without central.
			OutboxMaxBytes: 1 << 30,
			OutboxMaxAge:   Duration(72 * time.Hour),
		},
		Equipment: defaultEquipment(),
	}
}

func (l *Line) applyDefaults() {
	if l.Edge.DataDir == "" && l.Edge.ID != "" {
		l.Edge.DataDir = "./data/" + l.Edge.ID
	}
	for i := range l.Products {
		p := &l.Products[i]
		if p.MinGrade == "" {
			p.MinGrade = "C"
		}
		if p.Serials.Length == 0 {
			p.Serials.Length = 12
		}
		if p.Serials.Alphabet == "" {
			p.Serials.Alphabet = "numeric"
		}
		if p.Serials.Source == "" {
			p.Serials.Source = "generate"
		}
		if p.Aggregation == "" {
			p.Aggregation = "sequential"
		}
	}
	if len(l.Devices.Printers) > 0 && len(l.Devices.Printers[0].Levels) == 0 {
		l.Devices.Printers[0].Levels = []string{"unit"}
	}
	for _, list := range []*[]Device{&l.Devices.Printers, &l.Devices.Cameras, &l.Devices.PLCs} {
		for i := range *list {
			if (*list)[i].Timeout == 0 {
				(*list)[i].Timeout = Duration(2 * time.Second)
			}
		}
	}
}

// driver registry: kind -> name -> options constructor.
var (
	regMu   sync.RWMutex
	drivers = map[string]map[string]func() any{}
)

// RegisterDriver makes a driver known for a device kind ("printer",
// "camera", "plc"). newOptions returns a pointer to the driver's Options
// (decoded strictly from the device's `options:`; if it has a
// `Validate() error` method its error is reported at the options).
func RegisterDriver(kind, name string, newOptions func() any) {
	regMu.Lock()
	defer regMu.Unlock()
	if drivers[kind] == nil {
		drivers[kind] = map[string]func() any{}
	}
	drivers[kind][name] = newOptions
}

func driverOptions(kind, name string) (func() any, bool) {
	regMu.RLock()
	defer regMu.RUnlock()
	f, ok := drivers[kind][name]
	return f, ok
}

// DriverNames lists the registered drivers of a kind, sorted.
func DriverNames(kind string) []string {
	regMu.RLock()
	defer regMu.RUnlock()
	var out []string
	for n := range drivers[kind] {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Hash is the SHA-256 (hex) of a config file's bytes, recorded when applied.
func Hash(data []byte) string {
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}

// Load reads, decodes strictly and validates a line config file.
func Load(path string) (*Line, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse decodes data (named file in errors) strictly, applies defaults and
// validates. All problems are returned together as *Errors.
func Parse(file string, data []byte) (*Line, error) {
	l := Defaults()
	d := &strict{file: file, at: map[string]pos{}}
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if err.Error() == "EOF" {
			return nil, &Errors{List: []Error{{File: file, Line: 1, Msg: "the file is empty"}}}
		}
		return nil, &Errors{List: []Error{yamlSyntax(file, err)}}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &Errors{List: []Error{{File: file, Line: extra.Line, Msg: "a second YAML document in the file: one line config per file"}}}
	}
	d.decode(&root, reflect.ValueOf(&l).Elem(), "")
	l.File, l.Hash = file, Hash(data)
	l.applyDefaults()
	l.decodeOptions(d)
	l.pos = d.at
	errs := d.errs
	if len(errs) == 0 {
		if err := l.Validate(); err != nil {
			return nil, err
		}
		return &l, nil
	}
	return nil, &Errors{List: errs}
}

func yamlSyntax(file string, err error) Error {
	var line int
	msg := err.Error()
	if _, serr := fmt.Sscanf(msg, "yaml: line %d:", &line); serr == nil {
		if i := len(fmt.Sprintf("yaml: line %d: ", line)); i <= len(msg) {
			msg = msg[i:]
		}
	}
	return Error{File: file, Line: line, Msg: "YAML syntax: " + msg}
}

func (l *Line) decodeOptions(d *strict) {
	for _, sec := range []struct {
		kind, path string
		list       []Device
	}{{"printer", "devices.printers", l.Devices.Printers}, {"camera", "devices.cameras", l.Devices.Cameras}, {"plc", "devices.plcs", l.Devices.PLCs}} {
		for i := range sec.list {
			dev := &sec.list[i]
			newOpts, ok := driverOptions(sec.kind, dev.Driver)
			if !ok {
				continue // Validate reports the unknown driver
			}
			opts := newOpts()
			path := fmt.Sprintf("%s[%d].options", sec.path, i)
			if dev.Options.Kind != 0 {
				before := len(d.errs)
				d.decode(&dev.Options, reflect.ValueOf(opts).Elem(), path)
				if len(d.errs) > before {
					continue
				}
			}
			if v, ok := opts.(interface{ Validate() error }); ok {
				if err := v.Validate(); err != nil {
					n := &dev.Options
					e := Error{File: d.file, Path: fmt.Sprintf("%s[%d] (%s).options", sec.path, i, dev.Name), Msg: err.Error()}
					if n.Kind != 0 {
						e.Line, e.Col = n.Line, n.Column
					} else if p, ok := d.at[fmt.Sprintf("%s[%d]", sec.path, i)]; ok {
						e.Line, e.Col = p.line, p.col
					}
					d.errs = append(d.errs, e)
					continue
				}
			}
			dev.Decoded = opts
		}
	}
}
