package videojet_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/serialine/serialine/drivers"
	"github.com/serialine/serialine/drivers/videojet"
	"github.com/serialine/serialine/sync/gs1"
)

// Replies from the DataFlex 6530 service manual's examples and their
// neighbours; every bad one is ErrMalformed.
func TestParseReply(t *testing.T) {
	good := []struct {
		in   string
		kind videojet.ReplyKind
		st   videojet.PrinterStatus
	}{
		{"ACK", videojet.ReplyACK, videojet.PrinterStatus{}},
		{"ERR", videojet.ReplyERR, videojet.PrinterStatus{}},
		{"STS|3|0|Default 4 Line Text|4345|8253|", videojet.ReplyStatus, videojet.PrinterStatus{State: 3, Errors: 0, Job: "Default 4 Line Text", BatchCount: 4345, TotalCount: 8253}},
		{"STS|4|2||0|8253|", videojet.ReplyStatus, videojet.PrinterStatus{State: 4, Errors: 2, BatchCount: 0, TotalCount: 8253}},
		{"STS|3|", videojet.AsyncState, videojet.PrinterStatus{State: 3}},
		{"PRC", videojet.AsyncPrintEnd, videojet.PrinterStatus{}},
		{"PRC|12|", videojet.AsyncPrintEnd, videojet.PrinterStatus{}},
		{"PRS", videojet.AsyncPrintBeg, videojet.PrinterStatus{}},
		{"JOB|SERIAL|", videojet.AsyncJob, videojet.PrinterStatus{}},
		{"ERS|2|", videojet.AsyncError, videojet.PrinterStatus{}},
		{"OUT|QEM|", videojet.AsyncOutput, videojet.PrinterStatus{}},
	}
	for _, g := range good {
		r, err := videojet.ParseReply([]byte(g.in))
		if err != nil || r.Kind != g.kind || r.Status != g.st {
			t.Errorf("%q: %+v %v", g.in, r, err)
		}
	}
	bad := []string{"", "ack", "ACK ", "OK", "STS|3|0|job|1|2", "STS|5|0|j|1|2|", "STS|3|3|j|1|2|", "STS|3|0|j|-1|2|",
		"STS|3|0|j|1|99999999999999999999|", "STS|3|0|j|1||", "STS|3|0|j|1|2|3|", "STS||", "STS|3|0|", "XYZ|1|",
		"ACK\x00", "\xffACK", "PRC|x", strings.Repeat("A", videojet.MaxLine+1)}
	for _, b := range bad {
		if _, err := videojet.ParseReply([]byte(b)); !errors.Is(err, drivers.ErrMalformed) {
			t.Errorf("%q: want ErrMalformed, got %v", b, err)
		}
	}
}

func TestStatusFault(t *testing.T) {
	for _, c := range []struct {
		st   videojet.PrinterStatus
		want string
	}{
		{videojet.PrinterStatus{State: 3, Job: "J"}, ""},
		{videojet.PrinterStatus{State: 3, Errors: 1, Job: "J"}, ""}, // warnings: still printing
		{videojet.PrinterStatus{State: 3, Errors: 2, Job: "J"}, "fault"},
		{videojet.PrinterStatus{State: 4, Errors: 2}, "fault"},
		{videojet.PrinterStatus{State: 4, Job: "J"}, "offline"},
		{videojet.PrinterStatus{State: 0}, "shut_down"},
		{videojet.PrinterStatus{State: 1}, "starting_up"},
		{videojet.PrinterStatus{State: 2}, "shutting_down"},
		{videojet.PrinterStatus{State: 3}, "no_job"},
	} {
		if got := c.st.Fault(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.st, got, c.want)
		}
	}
}

func TestEncodeText(t *testing.T) {
	sla, err := videojet.EncodeSelect("Default 4 Line Text", []videojet.Field{{"Line 1", "First Line"}, {"Line 4", "Fourth Line"}})
	if err != nil || string(sla) != "SLA|Default 4 Line Text|Line 1=First Line|Line 4=Fourth Line|\r" {
		t.Fatalf("%q %v", sla, err)
	}
	jda, err := videojet.EncodeUpdate([]videojet.Field{{"DM", "0109506000134352\x1d21S1"}})
	if err != nil || string(jda) != "JDA|DM=0109506000134352\x1d21S1|\r" {
		t.Fatalf("%q %v", jda, err)
	}
	for _, c := range []struct {
		code string
		args []string
		want string
	}{{"GST", nil, "GST\r"}, {"CAF", nil, "CAF\r"}, {"SNO", []string{"PRC", "1"}, "SNO|PRC|1|\r"}, {"SST", []string{"3"}, "SST|3|\r"}} {
		b, err := videojet.EncodeCommand(c.code, c.args...)
		if err != nil || string(b) != c.want {
			t.Errorf("%s: %q %v", c.code, b, err)
		}
	}
	for _, bad := range []struct {
		job string
		f   videojet.Field
	}{{"A|B", videojet.Field{"X", "1"}}, {"J", videojet.Field{"X=Y", "1"}}, {"J", videojet.Field{"X", "a|b"}}, {"J", videojet.Field{"X", "a\rb"}},
		{"J", videojet.Field{"X", "é"}}, {"", videojet.Field{"X", "1"}}, {"J", videojet.Field{"", "1"}}} {
		if b, err := videojet.EncodeSelect(bad.job, []videojet.Field{bad.f}); err == nil {
			t.Errorf("%q %+v encoded as %q", bad.job, bad.f, b)
		}
	}
	if _, err := videojet.EncodeCommand("gst"); err == nil {
		t.Error("lower-case command encoded")
	}
}

func TestSymbolData(t *testing.T) {
	els := gs1.Elements{{AI: "01", Value: "09506000134352"}, {AI: "17", Value: "281130"}, {AI: "10", Value: "L1"}, {AI: "21", Value: "S1"}}
	gsForm, err := videojet.SymbolData(els, videojet.FNC1GS)
	if err != nil || gsForm != "01095060001343521728113010L1\x1d21S1" {
		t.Fatalf("gs: %q %v", gsForm, err)
	}
	br, err := videojet.SymbolData(els, videojet.FNC1Brackets)
	if err != nil || br != "(01)09506000134352(17)281130(10)L1(21)S1" {
		t.Fatalf("brackets: %q %v", br, err)
	}
	for _, in := range []string{gsForm, br} {
		if got, err := videojet.DecodeSymbolData(in); err != nil || got != gsForm {
			t.Errorf("decode %q: %q %v", in, got, err)
		}
	}
	if _, err := videojet.SymbolData(gs1.Elements{{AI: "21", Value: "A(1)"}}, videojet.FNC1Brackets); err == nil {
		t.Error("parenthesis in data sent in bracketed form")
	}
	if _, err := videojet.SymbolData(nil, videojet.FNC1GS); err == nil {
		t.Error("empty data accepted")
	}
}

func TestOptionsValidate(t *testing.T) {
	bad := []videojet.Options{
		{FNC1: "fnc"},
		{Jobs: map[string]videojet.Job{"box": {Name: "J", Code: "DM"}}},
		{Jobs: map[string]videojet.Job{"unit": {Name: "", Code: "DM"}}},
		{Jobs: map[string]videojet.Job{"unit": {Name: "J|K", Code: "DM"}}},
		{Jobs: map[string]videojet.Job{"unit": {Name: "J", Code: "D=M"}}},
		{Jobs: map[string]videojet.Job{"unit": {Name: "J", Code: "DM", Fields: map[string]string{"DM": "SN"}}}},
		{Jobs: map[string]videojet.Job{"unit": {Name: "J", Code: "DM", Fields: map[string]string{"SN": ""}}}},
	}
	for _, o := range bad {
		if err := o.Validate(); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	var ok videojet.Options
	if err := ok.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, o := range []videojet.CIJOptions{{CounterSelector: "ab"}, {FNC1: "x"}, {Messages: map[string]videojet.Job{"unit": {Name: "M\n", Code: "DM"}}}} {
		if err := o.Validate(); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}

func TestEncodeDecodeWSI(t *testing.T) {
	f, err := videojet.EncodeWSI('U', "DM", "0109506000134352\x1d21S1")
	if err != nil || string(f) != "\x02UDM\n0109506000134352\x1d21S1\x03" {
		t.Fatalf("%q %v", f, err)
	}
	typ, fields, n, err := videojet.DecodeWSIFrame(append(f, 'x'))
	if err != nil || typ != 'U' || n != len(f) || len(fields) != 2 || fields[1] != "0109506000134352\x1d21S1" {
		t.Fatalf("decode: %c %q %d %v", typ, fields, n, err)
	}
	if _, err := videojet.EncodeWSI('U', "DM", "a\nb"); err == nil {
		t.Error("LF in data encoded")
	}
	if _, err := videojet.EncodeWSI('u'); err == nil {
		t.Error("lower-case type encoded")
	}
	if _, err := videojet.EncodeWSI('U', "DM", strings.Repeat("1", videojet.MaxWSIPacket)); err == nil {
		t.Error("overlong packet encoded")
	}
	// 'Q' alone sums to 0x51, acknowledged as "$51" or refused as "!51".
	if s := videojet.WSISum('Q', nil); s != 0x51 || string(videojet.EncodeWSIAck(s, false)) != "!51" {
		t.Fatalf("sum %02X", s)
	}
	for _, bad := range []string{"\x02\x03", "\x02u\x03", "\x02M\x02x\x03", "M\x03", "\x02" + strings.Repeat("M", videojet.MaxWSIPacket+1)} {
		if _, _, _, err := videojet.DecodeWSIFrame([]byte(bad)); !errors.Is(err, drivers.ErrMalformed) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if _, _, _, err := videojet.DecodeWSIFrame([]byte("\x02MSER")); !errors.Is(err, videojet.ErrIncomplete) {
		t.Errorf("prefix: %v", err)
	}
}

func TestDecodeWSIReply(t *testing.T) {
	good := []struct {
		in   string
		kind videojet.WSIReplyKind
		sum  byte
		data string
		n    int
	}{
		{"$8D", videojet.WSIAck, 0x8d, "", 3},
		{"!51rest", videojet.WSINak, 0x51, "", 3},
		{"$c4", videojet.WSIAck, 0xc4, "", 3},
		{"\x020000001\x03", videojet.WSIData, 0, "0000001", 9},
		{"\x02\x03", videojet.WSIData, 0, "", 2},
		{"\x0212 MONTH\x03$00", videojet.WSIData, 0, "12 MONTH", 10},
	}
	for _, g := range good {
		r, n, err := videojet.DecodeWSIReply([]byte(g.in))
		if err != nil || r.Kind != g.kind || r.Sum != g.sum || string(r.Data) != g.data || n != g.n {
			t.Errorf("%q: %+v %d %v", g.in, r, n, err)
		}
	}
	for _, p := range []string{"", "$", "$8", "\x020000", "!"} {
		if _, _, err := videojet.DecodeWSIReply([]byte(p)); !errors.Is(err, videojet.ErrIncomplete) {
			t.Errorf("%q: want ErrIncomplete, got %v", p, err)
		}
	}
	for _, b := range []string{"ACK", "$G1", "!x", "\x02ab\ncd\x03", "\x02\xff\x03", "\x00", "#GARBAGE", "\x02" + strings.Repeat("1", videojet.MaxWSIPacket+2)} {
		if _, _, err := videojet.DecodeWSIReply([]byte(b)); !errors.Is(err, drivers.ErrMalformed) {
			t.Errorf("%q: want ErrMalformed, got %v", b, err)
		}
	}
}

func TestErrorStatus(t *testing.T) {
	for _, c := range []struct {
		in, fault string
		names     []string
	}{
		{"0000001", "", nil},
		{"0000003", "", nil}, // green + amber: warning, printing
		{"0000000", "not_ready", nil},
		{"0000004", "fault", nil},
		{"4000004", "gutter_fault", []string{"gutter_fault"}},
		{"800000C", "ink_core_empty", []string{"ink_core_empty"}},
		{"5100006", "charge_error", []string{"charge_error", "gutter_fault", "pump_fault"}},
		{"00000f1", "date_time_not_set", []string{"date_time_not_set", "ink_reference_mismatch", "eht_calibration_required", "reserved_fault"}},
	} {
		s, err := videojet.ParseErrorStatus([]byte(c.in))
		if err != nil || s.Fault() != c.fault || strings.Join(s.FaultNames(), ",") != strings.Join(c.names, ",") || !strings.EqualFold(s.String(), c.in) {
			t.Errorf("%s: %+v fault %q names %v %v", c.in, s, s.Fault(), s.FaultNames(), err)
		}
	}
	for _, b := range []string{"", "000001", "00000001", "ZZ00001", "000 001"} {
		if _, err := videojet.ParseErrorStatus([]byte(b)); !errors.Is(err, drivers.ErrMalformed) {
			t.Errorf("%q: %v", b, err)
		}
	}
	if n, err := videojet.ParseCounter([]byte("004711")); err != nil || n != 4711 {
		t.Fatalf("counter %d %v", n, err)
	}
	for _, b := range []string{"", "-1", "1 2", "99999999999999999999", "0x10"} {
		if _, err := videojet.ParseCounter([]byte(b)); !errors.Is(err, drivers.ErrMalformed) {
			t.Errorf("counter %q: %v", b, err)
		}
	}
}

// seeds reads the printer's lines of every golden transcript.
func seeds(f *testing.F, dir string) {
	for _, tr := range loadTranscripts(f, dir) {
		for _, m := range tr.msgs {
			if !m.out {
				f.Add(m.b)
			}
		}
	}
}

func FuzzParseReply(f *testing.F) {
	seeds(f, "text")
	f.Add([]byte("STS|3|0|Default 4 Line Text|4345|8253|"))
	f.Add([]byte("STS|4|2||0|8253|"))
	f.Fuzz(func(t *testing.T, b []byte) {
		line := b
		if i := strings.IndexByte(string(b), '\r'); i >= 0 {
			line = b[:i]
		}
		r, err := videojet.ParseReply(line)
		if err != nil {
			if !errors.Is(err, drivers.ErrMalformed) {
				t.Fatalf("error not ErrMalformed: %v", err)
			}
			return
		}
		if r.Kind == videojet.ReplyStatus {
			_ = r.Status.Fault()
			_ = r.Status.Detail()
		}
	})
}

func FuzzDecodeWSIReply(f *testing.F) {
	seeds(f, "wsi")
	f.Add([]byte("$8D"))
	f.Add([]byte("\x024000004\x03"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for len(b) > 0 {
			r, n, err := videojet.DecodeWSIReply(b)
			if errors.Is(err, videojet.ErrIncomplete) {
				return
			}
			if err != nil {
				if !errors.Is(err, drivers.ErrMalformed) {
					t.Fatalf("error not ErrMalformed: %v", err)
				}
				return
			}
			if n <= 0 || n > len(b) {
				t.Fatalf("used %d of %d bytes", n, len(b))
			}
			if r.Kind == videojet.WSIData {
				if s, err := videojet.ParseErrorStatus(r.Data); err == nil {
					_ = s.Fault() + s.Detail()
				} else if !errors.Is(err, drivers.ErrMalformed) {
					t.Fatal(err)
				}
				if _, err := videojet.ParseCounter(r.Data); err != nil && !errors.Is(err, drivers.ErrMalformed) {
					t.Fatal(err)
				}
			}
			b = b[n:]
		}
	})
}

// Any encodable packet decodes to what was encoded; arbitrary bytes never
// panic the decoder.
func FuzzWSIFrame(f *testing.F) {
	for _, tr := range loadTranscripts(f, "wsi") {
		for _, m := range tr.msgs {
			if m.out {
				f.Add(m.b, byte('U'), "DM", "01095060001343521728113010L1\x1d21S1")
			}
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte, typ byte, name, data string) {
		if _, _, n, err := videojet.DecodeWSIFrame(raw); err == nil && (n < 3 || n > len(raw)) {
			t.Fatalf("used %d of %d bytes", n, len(raw))
		}
		frame, err := videojet.EncodeWSI(typ, name, data)
		if err != nil {
			return
		}
		gt, fields, n, err := videojet.DecodeWSIFrame(frame)
		if err != nil || gt != typ || n != len(frame) {
			t.Fatalf("%q: %c %d %v", frame, gt, n, err)
		}
		if len(fields) != 2 || fields[0] != name || fields[1] != data {
			t.Fatalf("fields %q from %q %q", fields, name, data)
		}
	})
}
