package videojet

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/serialine/serialine/drivers"
)

// WSI protocol (Videojet 1000 Line, TCP port 3100). A command is
// <STX><type><data><ETX>; the fields of data are separated by <LF>. The
// printer acknowledges with '$' (done) or '!' (refused) followed by two hex
// digits, the checksum of the command (the sum of the bytes from the type
// to the last data byte, modulo 256); requests are answered by a data
// packet <STX><data><ETX>.
const (
	STX = 0x02
	ETX = 0x03
	GS  = 0x1d
	// WSIPort is the printer's WSI TCP port.
	WSIPort = 3100
	// MaxWSIPacket bounds a packet between STX and ETX.
	MaxWSIPacket = 1024
)

// WSI packet types used here.
const (
	WSIMessageSelect  = 'M' // M<message name>
	WSIUpdateField    = 'U' // U<field name><LF><data>
	WSIClearField     = 'D' // D<field name>
	WSIErrorStatus    = 'E' // E → <STX>EEEEEEA<ETX>
	WSICounter        = 'G' // G<selector> → <STX>digits<ETX>
	WSIResetCounter   = 'R' // R<selector>
	WSICurrentMessage = 'Q' // Q → <STX>message name<ETX>
)

// ErrIncomplete means the bytes hold the start of a packet only.
var ErrIncomplete = errors.New("incomplete packet")

func errWSI(format string, a ...any) error {
	return fmt.Errorf("%w: WSI %s", drivers.ErrMalformed, fmt.Sprintf(format, a...))
}

// CheckWSIName reports whether a message or user field name is sendable:
// non-empty printable ASCII.
func CheckWSIName(n string) error {
	if n == "" {
		return errors.New("empty name")
	}
	for i := 0; i < len(n); i++ {
		if n[i] < 0x20 || n[i] > 0x7e {
			return fmt.Errorf("%q: byte 0x%02x at %d is not printable ASCII", n, n[i], i)
		}
	}
	return nil
}

// CheckWSIValue reports whether user field data is sendable: printable
// ASCII plus GS (the GS1 FNC1 separator); never STX, ETX or LF.
func CheckWSIValue(v string) error {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if (c < 0x20 || c > 0x7e) && c != GS {
			return fmt.Errorf("byte 0x%02x at %d cannot be sent in a WSI packet", c, i)
		}
	}
	return nil
}

// WSISum is the checksum the printer acknowledges a packet with.
func WSISum(typ byte, data []byte) byte {
	s := typ
	for _, c := range data {
		s += c
	}
	return s
}

// EncodeWSI renders <STX><typ>f1<LF>f2...<ETX>.
func EncodeWSI(typ byte, fields ...string) ([]byte, error) {
	if typ < 'A' || typ > 'Z' {
		return nil, fmt.Errorf("WSI packet type %q: want a capital letter", typ)
	}
	b := make([]byte, 0, 16)
	b = append(b, STX, typ)
	for i, f := range fields {
		if err := CheckWSIValue(f); err != nil {
			return nil, fmt.Errorf("WSI %c field %d: %v", typ, i+1, err)
		}
		if i > 0 {
			b = append(b, LF)
		}
		b = append(b, f...)
	}
	if len(b)-1 > MaxWSIPacket {
		return nil, fmt.Errorf("WSI %c packet of %d bytes: longer than %d", typ, len(b)-1, MaxWSIPacket)
	}
	return append(b, ETX), nil
}

// DecodeWSIFrame decodes one command packet at the front of b (which must
// start with STX). It returns the type, the fields and the bytes used, or
// ErrIncomplete when the ETX has not arrived yet.
func DecodeWSIFrame(b []byte) (typ byte, fields []string, n int, err error) {
	if len(b) == 0 {
		return 0, nil, 0, ErrIncomplete
	}
	if b[0] != STX {
		return 0, nil, 0, errWSI("packet starts with 0x%02x, not STX", b[0])
	}
	end := bytes.IndexByte(b[1:], ETX)
	if end < 0 {
		if len(b)-1 > MaxWSIPacket {
			return 0, nil, 0, errWSI("packet longer than %d bytes without ETX", MaxWSIPacket)
		}
		if bytes.IndexByte(b[1:], STX) >= 0 {
			return 0, nil, 0, errWSI("STX inside a packet")
		}
		return 0, nil, 0, ErrIncomplete
	}
	body := b[1 : 1+end]
	n = end + 2
	if len(body) > MaxWSIPacket {
		return 0, nil, n, errWSI("packet longer than %d bytes", MaxWSIPacket)
	}
	if len(body) == 0 {
		return 0, nil, n, errWSI("empty packet")
	}
	if bytes.IndexByte(body, STX) >= 0 {
		return 0, nil, n, errWSI("STX inside a packet")
	}
	typ = body[0]
	if typ < 'A' || typ > 'Z' {
		return 0, nil, n, errWSI("packet type 0x%02x is not a capital letter", typ)
	}
	if len(body) > 1 {
		fields = strings.Split(string(body[1:]), "\n")
	}
	return typ, fields, n, nil
}

// WSIReplyKind classifies a printer reply.
type WSIReplyKind int

// Reply kinds.
const (
	WSIAck  WSIReplyKind = iota + 1 // '$' + checksum
	WSINak                          // '!' + checksum
	WSIData                         // <STX>data<ETX>
)

// WSIReply is one decoded reply.
type WSIReply struct {
	Kind WSIReplyKind
	Sum  byte   // Ack, Nak: the checksum of the command acknowledged
	Data []byte // Data: the bytes between STX and ETX
}

// EncodeWSIAck renders '$XX' (done) or '!XX' (refused).
func EncodeWSIAck(sum byte, done bool) []byte {
	c := byte('!')
	if done {
		c = '$'
	}
	return fmt.Appendf(nil, "%c%02X", c, sum)
}

// EncodeWSIData renders <STX>data<ETX>.
func EncodeWSIData(data string) []byte {
	return append(append([]byte{STX}, data...), ETX)
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// DecodeWSIReply decodes one reply at the front of b; it returns the bytes
// used, or ErrIncomplete when b holds the start of a reply only. Anything
// else than '$XX', '!XX' or <STX>printable<ETX> is ErrMalformed.
func DecodeWSIReply(b []byte) (WSIReply, int, error) {
	if len(b) == 0 {
		return WSIReply{}, 0, ErrIncomplete
	}
	switch b[0] {
	case '$', '!':
		if len(b) < 3 {
			for _, c := range b[1:] {
				if _, ok := unhex(c); !ok {
					return WSIReply{}, 0, errWSI("acknowledgement %q: checksum is not hex", b)
				}
			}
			return WSIReply{}, 0, ErrIncomplete
		}
		hi, ok1 := unhex(b[1])
		lo, ok2 := unhex(b[2])
		if !ok1 || !ok2 {
			return WSIReply{}, 0, errWSI("acknowledgement %q: checksum is not hex", b[:3])
		}
		k := WSIAck
		if b[0] == '!' {
			k = WSINak
		}
		return WSIReply{Kind: k, Sum: hi<<4 | lo}, 3, nil
	case STX:
		limit := len(b)
		if limit > MaxWSIPacket+2 {
			limit = MaxWSIPacket + 2
		}
		for i := 1; i < limit; i++ {
			c := b[i]
			if c == ETX {
				return WSIReply{Kind: WSIData, Data: append([]byte(nil), b[1:i]...)}, i + 1, nil
			}
			if c < 0x20 || c > 0x7e {
				return WSIReply{}, 0, errWSI("byte 0x%02x at %d inside a data packet", c, i)
			}
		}
		if len(b) >= MaxWSIPacket+2 {
			return WSIReply{}, 0, errWSI("data packet longer than %d bytes", MaxWSIPacket)
		}
		return WSIReply{}, 0, ErrIncomplete
	}
	return WSIReply{}, 0, errWSI("reply starts with 0x%02x: not '$', '!' or STX", b[0])
}

// ErrorStatus is the answer to the error status request: six fault nibbles
// and the trafficator nibble, seven hex digits.
type ErrorStatus struct {
	Faults [6]byte // nibble values, in transmission order
	Lights byte    // 1 green, 2 amber, 4 red, 8 alarm output
}

// Trafficator bits.
const (
	LightGreen = 1
	LightAmber = 2
	LightRed   = 4
	LightAlarm = 8
)

// wsiFaults names the fault bits, nibble by nibble (bit 1, 2, 4, 8).
var wsiFaults = [6][4]string{
	{"charge_error", "eht_trip", "gutter_fault", "ink_core_empty"},
	{"pump_fault", "cabinet_too_hot", "ink_core_service_overdue", "viscosity_control_failed"},
	{"bad_nozzle", "mod_driver_over_temperature", "no_phase_response", "phasing_threshold_minimum"},
	{"phasing_threshold_maximum", "auto_modulation_failed", "initial_phasing_trim_failed", "modulation_readback_failed"},
	{"raster_memory_overflow", "valve_error", "core_not_filling", "insufficient_ink_to_fill_core"},
	{"date_time_not_set", "ink_reference_mismatch", "eht_calibration_required", "reserved_fault"},
}

// WSIFaultBit returns the nibble index and bit of a named fault.
func WSIFaultBit(name string) (nibble int, bit byte, ok bool) {
	for i, row := range wsiFaults {
		for j, n := range row {
			if n == name {
				return i, 1 << j, true
			}
		}
	}
	return 0, 0, false
}

// ParseErrorStatus parses the data of the answer to E.
func ParseErrorStatus(data []byte) (ErrorStatus, error) {
	var s ErrorStatus
	if len(data) != 7 {
		return s, errWSI("error status %q: want 7 hex digits", data)
	}
	for i, c := range data {
		v, ok := unhex(c)
		if !ok {
			return s, errWSI("error status %q: %q is not a hex digit", data, c)
		}
		if i < 6 {
			s.Faults[i] = v
		} else {
			s.Lights = v
		}
	}
	return s, nil
}

// String renders the seven hex digits.
func (s ErrorStatus) String() string {
	var b [7]byte
	for i, v := range s.Faults {
		b[i] = "0123456789ABCDEF"[v&0xf]
	}
	b[6] = "0123456789ABCDEF"[s.Lights&0xf]
	return string(b[:])
}

// FaultNames lists the faults set, in table order.
func (s ErrorStatus) FaultNames() []string {
	var out []string
	for i, v := range s.Faults {
		for j := 0; j < 4; j++ {
			if v&(1<<j) != 0 {
				out = append(out, wsiFaults[i][j])
			}
		}
	}
	return out
}

// Fault maps the status to a Health fault ("" when the printer prints):
// the first fault bit set, else "fault" on red, else "not_ready" when the
// green trafficator (jet running, ready to print) is off.
func (s ErrorStatus) Fault() string {
	if f := s.FaultNames(); len(f) > 0 {
		return f[0]
	}
	switch {
	case s.Lights&LightRed != 0:
		return "fault"
	case s.Lights&LightGreen == 0:
		return "not_ready"
	}
	return ""
}

// Detail is a one-line description for people.
func (s ErrorStatus) Detail() string {
	var lights []string
	for _, l := range []struct {
		bit  byte
		name string
	}{{LightGreen, "green"}, {LightAmber, "amber"}, {LightRed, "red"}, {LightAlarm, "alarm"}} {
		if s.Lights&l.bit != 0 {
			lights = append(lights, l.name)
		}
	}
	if len(lights) == 0 {
		lights = []string{"none"}
	}
	d := "status " + s.String() + ", lights " + strings.Join(lights, "+")
	if f := s.FaultNames(); len(f) > 0 {
		d += ", faults " + strings.Join(f, ", ")
	}
	return d
}

// ParseCounter parses the data of the answer to G.
func ParseCounter(data []byte) (uint64, error) {
	if len(data) == 0 || len(data) > 20 || strings.TrimLeft(string(data), "0123456789") != "" {
		return 0, errWSI("counter %q is not a number", data)
	}
	n, err := strconv.ParseUint(string(data), 10, 64)
	if err != nil {
		return 0, errWSI("counter %q is out of range", data)
	}
	return n, nil
}
