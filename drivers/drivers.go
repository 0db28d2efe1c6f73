// Package drivers holds the small, context-first contracts between the edge
// line engine and the devices of a packaging line: printers, verification
// cameras and PLCs. One package per device kind implements them (zebra,
// videojet, camera, modbus, opcua), each with a simulator beside it that
// speaks the same wire protocol.
//
// drivers never imports edge or central; the only shared code is under sync/.
package drivers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/serialine/serialine/sync/gs1"
)

// Sentinel errors. A driver wraps them so the host knows what to do.
var (
	// ErrNotConnected: the link is down; the host should (re)Connect.
	ErrNotConnected = errors.New("not connected")
	// ErrTimeout: the device did not answer in time.
	ErrTimeout = errors.New("device did not answer in time")
	// ErrDeviceFault: the device answered and reports a fault (paper out,
	// head open, ...). The link is fine; the device is not.
	ErrDeviceFault = errors.New("device fault")
	// ErrMalformed: the device sent bytes that do not parse.
	ErrMalformed = errors.New("malformed device data")
)

// DeviceError names the device and field a problem came from.
type DeviceError struct {
	Device string // device name from the line config
	Field  string // protocol field or operation, e.g. "~HS string 1", "result line"
	Err    error
	Raw    []byte // offending bytes, bounded (at most 256)
}

func (e *DeviceError) Error() string {
	s := e.Device
	if e.Field != "" {
		s += " " + e.Field
	}
	s += ": " + e.Err.Error()
	if len(e.Raw) > 0 {
		s += fmt.Sprintf(" (bytes %q)", e.Raw)
	}
	return s
}

func (e *DeviceError) Unwrap() error { return e.Err }

// NewDeviceError builds a DeviceError keeping at most 256 raw bytes.
func NewDeviceError(device, field string, err error, raw []byte) *DeviceError {
	if len(raw) > 256 {
		raw = raw[:256]
	}
	return &DeviceError{Device: device, Field: field, Err: err, Raw: append([]byte(nil), raw...)}
}

// Health is a device's last known condition.
type Health struct {
	Connected bool
	// Fault is empty when the device is fine; otherwise a short machine-
	// readable cause such as "paper_out", "ribbon_out", "head_open",
	// "paused", "over_temperature", "no_answer", "disconnected".
	Fault  string
	Detail string
	At     time.Time
}

// OK reports whether the device is connected and without fault.
func (h Health) OK() bool { return h.Connected && h.Fault == "" }

// Level is a packaging level: unit, case, pallet.
type Level string

const (
	LevelUnit   Level = "unit"
	LevelCase   Level = "case"
	LevelPallet Level = "pallet"
)

// Label is what the line engine asks a printer to print. The engine always
// sends the final data (serial included): a printer is never allowed to
// increment serials itself.
type Label struct {
	ID    string       // engine's identifier for the job (unit/container id)
	Level Level        // selects the template
	Data  gs1.Elements // the GS1 data to encode (DataMatrix for units, GS1-128 for SSCC labels)
	Text  map[string]string
}

// Printer prints labels (Zebra ZPL, Videojet).
type Printer interface {
	Connect(ctx context.Context) error
	Print(ctx context.Context, l Label) error
	Status(ctx context.Context) (Health, error)
	Close() error
}

// Grade is an ISO/IEC 15415 grade on the 4.0 (A) .. 0.0 (F) scale.
type Grade float64

// Letter maps the numeric grade to A..F (A >= 3.5, B >= 2.5, C >= 1.5, D >= 0.5).
func (g Grade) Letter() string {
	switch {
	case g >= 3.5:
		return "A"
	case g >= 2.5:
		return "B"
	case g >= 1.5:
		return "C"
	case g >= 0.5:
		return "D"
	default:
		return "F"
	}
}

// ParseGrade accepts a letter A..F (D and E are 1.0/0.5-ish; E is treated as
// D) or a number 0.0..4.0.
func ParseGrade(s string) (Grade, error) {
	switch s {
	case "A", "a":
		return 4, nil
	case "B", "b":
		return 3, nil
	case "C", "c":
		return 2, nil
	case "D", "d":
		return 1, nil
	case "E", "e", "F", "f":
		return 0, nil
	}
	var f float64
	if _, err := fmt.Sscanf(s, "%g", &f); err != nil || f < 0 || f > 4 || fmt.Sprint(f) == "NaN" {
		return 0, fmt.Errorf("grade %q: want A-F or 0.0-4.0", s)
	}
	return Grade(f), nil
}

// ParseMinGrade parses a minimum acceptable grade. A letter means the
// lowest value of its band (ISO/IEC 15415: A >= 3.5, B >= 2.5, C >= 1.5,
// D >= 0.5), so that a measured 1.7 passes a minimum of C; a number is
// taken as is.
func ParseMinGrade(s string) (Grade, error) {
	switch s {
	case "A", "a":
		return 3.5, nil
	case "B", "b":
		return 2.5, nil
	case "C", "c":
		return 1.5, nil
	case "D", "d":
		return 0.5, nil
	}
	return ParseGrade(s)
}

// Reading is one verification result from a camera.
type Reading struct {
	Camera string // device name
	// Data is the decoded data with the symbology identifier removed and
	// FNC1 separators as GS; empty on a no-read.
	Data      string
	Symbology string // e.g. "]d2", if the reader transmitted one
	NoRead    bool
	Grade     Grade            // overall grade (lowest parameter grade when parameters are given)
	Params    map[string]Grade // parameter grades by name (e.g. "SC", "MOD", "AN")
	Raw       []byte           // the result line as received (bounded)
	At        time.Time
}

// Camera delivers verification results.
type Camera interface {
	Connect(ctx context.Context) error
	// Read blocks until the next result line, ctx is done or the link fails.
	// A line that does not parse returns a *DeviceError wrapping ErrMalformed;
	// the link stays usable.
	Read(ctx context.Context) (Reading, error)
	Close() error
}

// Triggerer is implemented by cameras that can be triggered by command.
type Triggerer interface {
	Trigger(ctx context.Context) error
}

// PLC exchanges named tags with a line PLC (Modbus TCP or OPC UA). Tag names
// used by the edge: "reject" (bool output: pulse to reject the unit at the
// gate), "line_running", "product_present" (bool inputs), "good_count",
// "reject_count" (counters the edge writes).
type PLC interface {
	Connect(ctx context.Context) error
	WriteBool(ctx context.Context, tag string, v bool) error
	ReadBool(ctx context.Context, tag string) (bool, error)
	WriteUint(ctx context.Context, tag string, v uint64) error
	ReadUint(ctx context.Context, tag string) (uint64, error)
	Close() error
}

// ProductTemplater is implemented by printers that take per-product label
// templates (the line config's products[].labels, by packaging level): the
// driver checks each template when it is installed and prints a product's
// labels with them instead of its own.
type ProductTemplater interface {
	SetProductTemplates(gtin string, labels map[string]string) error
}

// HealthReporter is implemented by drivers that track their device's health.
type HealthReporter interface {
	Health() Health
}

// PrintConfirmer is implemented by printers that notify each label they
// have printed (Videojet print-complete notifications). It counts the
// confirmations since the driver was created. A confirmation is the
// printer's word only: the camera read stays the proof of printing.
type PrintConfirmer interface {
	PrintsConfirmed() uint64
}
