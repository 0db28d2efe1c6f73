package zebra

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"github.com/serialine/serialine/drivers"
)

// HostStatus is the answer to ~HS (three <STX>...<ETX><CR><LF> strings).
// Field positions per the ZPL II Programming Guide, ~HS:
// string 1: aaa comm settings, b paper out, c pause, dddd label length,
// eee formats in receive buffer, f buffer full, g comm diagnostics,
// h partial format, iii unused, j corrupt RAM, k under temperature,
// l over temperature; string 2: mmm function settings, n unused, o head up,
// p ribbon out, q thermal transfer, r print mode, s print width mode,
// t label waiting, uuuuuuuu labels remaining in batch, v format while
// printing, www graphic images stored; string 3: xxxx password, y static RAM.
type HostStatus struct {
	PaperOut, Paused, BufferFull, PartialFormat, CorruptRAM, UnderTemp, OverTemp bool
	LabelLength, FormatsInBuffer                                                 int
	HeadUp, RibbonOut, ThermalTransfer, LabelWaiting                             bool
	LabelsRemaining                                                              int
}

func flag(f string) bool { return strings.TrimSpace(f) == "1" }

func num(field, v string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return 0, fmt.Errorf("%w: ~HS %s: %q is not a number", drivers.ErrMalformed, field, v)
	}
	return n, nil
}

// splitSTX returns the <STX>...<ETX> frames of b.
func splitSTX(b []byte) [][]byte {
	var out [][]byte
	for {
		i := bytes.IndexByte(b, 0x02)
		if i < 0 {
			return out
		}
		j := bytes.IndexByte(b[i+1:], 0x03)
		if j < 0 {
			return out
		}
		out = append(out, b[i+1:i+1+j])
		b = b[i+1+j+1:]
	}
}

// ParseHS parses the three ~HS strings.
func ParseHS(b []byte) (HostStatus, error) {
	var s HostStatus
	frames := splitSTX(b)
	if len(frames) != 3 {
		return s, fmt.Errorf("%w: ~HS: want 3 <STX>..<ETX> strings, got %d", drivers.ErrMalformed, len(frames))
	}
	f1 := strings.Split(string(frames[0]), ",")
	f2 := strings.Split(string(frames[1]), ",")
	if len(f1) < 12 {
		return s, fmt.Errorf("%w: ~HS string 1: want 12 fields, got %d", drivers.ErrMalformed, len(f1))
	}
	if len(f2) < 11 {
		return s, fmt.Errorf("%w: ~HS string 2: want 11 fields, got %d", drivers.ErrMalformed, len(f2))
	}
	var err error
	s.PaperOut, s.Paused = flag(f1[1]), flag(f1[2])
	if s.LabelLength, err = num("string 1 label length", f1[3]); err != nil {
		return s, err
	}
	if s.FormatsInBuffer, err = num("string 1 formats in buffer", f1[4]); err != nil {
		return s, err
	}
	s.BufferFull, s.PartialFormat, s.CorruptRAM, s.UnderTemp, s.OverTemp = flag(f1[5]), flag(f1[7]), flag(f1[9]), flag(f1[10]), flag(f1[11])
	s.HeadUp, s.RibbonOut, s.ThermalTransfer, s.LabelWaiting = flag(f2[2]), flag(f2[3]), flag(f2[4]), flag(f2[7])
	if s.LabelsRemaining, err = num("string 2 labels remaining", f2[8]); err != nil {
		return s, err
	}
	return s, nil
}

// Fault returns the most important fault of a host status ("" if none).
func (s HostStatus) Fault() string {
	switch {
	case s.PaperOut:
		return "paper_out"
	case s.RibbonOut:
		return "ribbon_out"
	case s.HeadUp:
		return "head_open"
	case s.OverTemp:
		return "over_temperature"
	case s.CorruptRAM:
		return "corrupt_ram"
	case s.Paused:
		return "paused"
	case s.BufferFull:
		return "buffer_full"
	}
	return ""
}

// ~HQES error flags, group 1 (the last 8 hex digits; ZPL Programming Guide,
// ~HQ "Error Flags"): nibble 1 media out 1, ribbon out 2, head open 4,
// cutter fault 8; nibble 2 printhead over temperature 1, motor over
// temperature 2, bad printhead element 4, printhead detection error 8;
// nibble 3 invalid firmware configuration 1, printhead thermistor open 2;
// nibble 4 (kiosk printers) paper jam during retract 1, presenter not
// running 2, paper feed error 4, clear paper path failed 8; nibble 5 black
// mark calibrate error 4, black mark not found 8.
const (
	ErrMediaOut            = 0x00000001
	ErrRibbonOut           = 0x00000002
	ErrHeadOpen            = 0x00000004
	ErrCutterFault         = 0x00000008
	ErrHeadOverTemp        = 0x00000010
	ErrMotorOverTemp       = 0x00000020
	ErrBadHeadElement      = 0x00000040
	ErrHeadDetection       = 0x00000080
	ErrInvalidFirmware     = 0x00000100
	ErrThermistorOpen      = 0x00000200
	ErrPaperJamRetract     = 0x00001000
	ErrPresenterNotRunning = 0x00002000
	ErrPaperFeed           = 0x00004000
	ErrClearPaperPath      = 0x00008000
	ErrBlackMarkCalibrate  = 0x00040000
	ErrBlackMarkNotFound   = 0x00080000
)

// ~HQES warning flags, group 1, nibble 1: need to calibrate media 1, clean
// printhead 2, replace printhead 4, paper near end 8.
const (
	WarnNeedCalibration = 0x00000001
	WarnCleanHead       = 0x00000002
	WarnReplaceHead     = 0x00000004
	WarnPaperNearEnd    = 0x00000008
)

// errorNames in order of importance (the first set bit is the Fault).
var errorNames = []struct {
	bit  uint64
	name string
}{
	{ErrMediaOut, "paper_out"}, {ErrRibbonOut, "ribbon_out"}, {ErrHeadOpen, "head_open"},
	{ErrHeadOverTemp, "over_temperature"}, {ErrMotorOverTemp, "over_temperature"},
	{ErrCutterFault, "cutter_fault"}, {ErrBadHeadElement, "printhead_fault"}, {ErrHeadDetection, "printhead_fault"},
	{ErrThermistorOpen, "printhead_fault"}, {ErrInvalidFirmware, "firmware_config"},
	{ErrPaperJamRetract, "paper_jam"}, {ErrPaperFeed, "paper_jam"}, {ErrClearPaperPath, "paper_jam"},
	{ErrPresenterNotRunning, "presenter_fault"},
	{ErrBlackMarkCalibrate, "black_mark"}, {ErrBlackMarkNotFound, "black_mark"},
}

var warningNames = []struct {
	bit  uint64
	name string
}{
	{WarnNeedCalibration, "need_calibration"}, {WarnCleanHead, "clean_printhead"},
	{WarnReplaceHead, "replace_printhead"}, {WarnPaperNearEnd, "paper_near_end"},
}

// HQES is the answer to ~HQES.
type HQES struct {
	Error, Warning      bool
	ErrorBits, WarnBits uint64 // group 1 (the last 8 hex digits)
	ErrorHigh, WarnHigh uint64 // group 2 (the first 8 hex digits)
}

// ParseHQES parses the answer
//
//	<STX><CR><LF>PRINTER STATUS<CR><LF>ERRORS: 1 00000000 00000005<CR><LF>WARNINGS: 0 00000000 00000000<CR><LF><ETX>
//
// flag (0|1), group 2 and group 1 as 8 hex digits each.
func ParseHQES(b []byte) (HQES, error) {
	var q HQES
	text := string(b)
	if f := splitSTX(b); len(f) > 0 {
		text = string(f[0])
	}
	found := map[string]bool{}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		var name string
		switch {
		case strings.HasPrefix(line, "ERRORS:"):
			name = "ERRORS"
		case strings.HasPrefix(line, "WARNINGS:"):
			name = "WARNINGS"
		default:
			continue
		}
		if found[name] {
			return q, fmt.Errorf("%w: ~HQES: %s line twice", drivers.ErrMalformed, name)
		}
		f := strings.Fields(strings.TrimPrefix(line, name+":"))
		if len(f) != 3 || (f[0] != "0" && f[0] != "1") || len(f[1]) != 8 || len(f[2]) != 8 {
			return q, fmt.Errorf("%w: ~HQES %s line %q: want \"%s: 0|1 XXXXXXXX XXXXXXXX\"", drivers.ErrMalformed, name, line, name)
		}
		hi, err1 := strconv.ParseUint(f[1], 16, 32)
		lo, err2 := strconv.ParseUint(f[2], 16, 32)
		if err1 != nil || err2 != nil {
			return q, fmt.Errorf("%w: ~HQES %s: %q %q are not hex", drivers.ErrMalformed, name, f[1], f[2])
		}
		if name == "ERRORS" {
			q.Error, q.ErrorHigh, q.ErrorBits = f[0] == "1", hi, lo
		} else {
			q.Warning, q.WarnHigh, q.WarnBits = f[0] == "1", hi, lo
		}
		found[name] = true
	}
	if !found["ERRORS"] || !found["WARNINGS"] {
		return q, fmt.Errorf("%w: ~HQES: want ERRORS and WARNINGS lines", drivers.ErrMalformed)
	}
	return q, nil
}

// Fault names the most important error ("" if none); "error" for an error
// flag without a known bit.
func (q HQES) Fault() string {
	for _, e := range errorNames {
		if q.ErrorBits&e.bit != 0 {
			return e.name
		}
	}
	if q.Error || q.ErrorBits != 0 || q.ErrorHigh != 0 {
		return "error"
	}
	return ""
}

// Errors lists every error set, by name (duplicates folded).
func (q HQES) Errors() []string { return names(q.ErrorBits, errorNames) }

// Warnings lists every warning set, by name (paper near end, clean head ...).
func (q HQES) Warnings() []string { return names(q.WarnBits, warningNames) }

func names(bits uint64, table []struct {
	bit  uint64
	name string
}) []string {
	var out []string
	seen := map[string]bool{}
	for _, e := range table {
		if bits&e.bit != 0 && !seen[e.name] {
			seen[e.name] = true
			out = append(out, e.name)
		}
	}
	return out
}
