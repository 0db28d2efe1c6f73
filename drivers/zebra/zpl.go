package zebra

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"text/template"

	"github.com/serialine/serialine/drivers"
	"github.com/serialine/serialine/sync/gs1"
)

// HRILine is one human-readable line of a label, derived from the data that
// is encoded, so the text always matches the code.
type HRILine struct {
	AI, Value string
	Line      string // "(01) 09506000134352", ^FH-escaped
	Y         int    // the built-in unit template's y position of the line (40 + 35 per line)
}

// TemplateData is what label templates see.
type TemplateData struct {
	Level      string
	DataMatrix string // ^FD content for ^BX: FNC1 as <esc>1, the escape character doubled
	SSCC       string // for case and pallet labels
	GS1128     string // ^FD content for ^BC (no mode): >; start C, >8 FNC1, subsets switched as needed
	GS1128Text string // human-readable interpretation of the GS1-128, "(00) 3950...", ^FH-escaped
	HRI        []HRILine
	Escape     string
	Module     int
	Text       map[string]string // the label's extra text fields (product name ...), ^FH-escaped
}

// Built-in templates. The DataMatrix escape character is set explicitly as
// the 7th parameter of ^BX (firmware defaults differ: "_" on V60.13.0.12,
// "~" otherwise). Text fields use ^FH with "_" as the hex indicator. The
// GS1-128 is ^BC without mode: its field data starts subset C and FNC1
// itself (">;>8"), and the interpretation line is a separate text field,
// because mode D makes the printer compute the check digit.
const (
	unitTemplate = `^XA
^CI28
^FO40,40^BXN,{{.Module}},200,,,,{{.Escape}}^FD{{.DataMatrix}}^FS
{{range .HRI}}^FO260,{{.Y}}^A0N,26,26^FH^FD{{.Line}}^FS
{{end}}{{with index .Text "PRODUCT"}}^FO40,200^A0N,22,22^FH^FD{{.}}^FS
{{end}}^XZ
`
	ssccTemplate = `^XA
^CI28
^FO40,30^A0N,30,30^FH^FD{{index .Text "TITLE"}}^FS
^FO40,80^BY3^BCN,160,N,N,N^FD{{.GS1128}}^FS
^FO40,250^A0N,30,30^FH^FD{{.GS1128Text}}^FS
^XZ
`
)

var funcs = template.FuncMap{
	"add": func(a, b int) int { return a + b },
	"mul": func(a, b int) int { return a * b },
}

// escapeText prepares text for a ^FH field (hex indicator "_"): the
// indicator, the ZPL prefixes ^ and ~ and control bytes are written as _XX,
// so data can never end the field or start a command.
func escapeText(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '_' || c == '^' || c == '~' || c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, "_%02X", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// EncodeDataMatrix renders GS1 elements as ^BX (quality 200) field data: a
// leading FNC1 (<esc>1) selects GS1 mode, then AI and value, and <esc>1
// after every element that needs a separator (not of pre-defined length)
// and is not last. A data character equal to the escape character is
// doubled (ZPL: "_ in data is encoded by __"). GS1 data (CSET 82/39/64)
// never holds ^, ~ or control bytes; such bytes are refused, naming the AI.
func EncodeDataMatrix(els gs1.Elements, esc byte) (string, error) {
	var b strings.Builder
	b.WriteByte(esc)
	b.WriteByte('1')
	for i, e := range els {
		for _, s := range []string{e.AI, e.Value} {
			for j := 0; j < len(s); j++ {
				c := s[j]
				switch {
				case c == esc:
					b.WriteByte(esc)
					b.WriteByte(esc)
				case c == '^' || c == '~' || c < 0x20 || c >= 0x7f:
					return "", fmt.Errorf("(%s) byte %q cannot be sent as GS1 DataMatrix field data", e.AI, c)
				default:
					b.WriteByte(c)
				}
			}
		}
		if i < len(els)-1 && gs1.NeedsSeparator(e.AI) {
			b.WriteByte(esc)
			b.WriteByte('1')
		}
	}
	return b.String(), nil
}

// DecodeDataMatrix interprets ^BX quality 200 field data as the printer
// does and returns what a scanner transmits after the symbology identifier:
// FNC1 as GS (the leading FNC1 dropped). Escapes: <esc>1 FNC1, <esc><esc>
// the escape character, <esc>dNNN a byte in decimal, <esc>@ .. <esc>^ the
// control characters 0x00 .. 0x1E. FNC2, FNC3, code pages are refused.
func DecodeDataMatrix(fd string, esc byte) (string, error) {
	var b strings.Builder
	for i := 0; i < len(fd); i++ {
		c := fd[i]
		if c != esc {
			b.WriteByte(c)
			continue
		}
		if i+1 >= len(fd) {
			return "", errors.New("escape character at the end of the field")
		}
		n := fd[i+1]
		switch {
		case n == esc:
			b.WriteByte(esc)
			i++
		case n == '1':
			if i > 0 {
				b.WriteString(gs1.GS)
			}
			i++
		case n == 'd':
			if i+5 > len(fd) {
				return "", fmt.Errorf("escape %cd needs three digits", esc)
			}
			v, err := strconv.Atoi(fd[i+2 : i+5])
			if err != nil || v > 255 || !isDigits(fd[i+2:i+5]) {
				return "", fmt.Errorf("escape %cd%s is not a decimal byte", esc, fd[i+2:i+5])
			}
			b.WriteByte(byte(v))
			i += 4
		case n >= '@' && n <= '^':
			b.WriteByte(n - '@')
			i++
		default:
			return "", fmt.Errorf("escape %c%c not supported", esc, n)
		}
	}
	return b.String(), nil
}

// maxGS1128 is the GS1 limit of data characters in one GS1-128 symbol
// (AIs, data and FNC1 separators).
const maxGS1128 = 48

// EncodeGS1128 renders GS1 elements as ^BC field data with explicit Code 128
// invocation codes (ZPL II Programming Guide, ^BC: >; start subset C, >: start
// subset B, >5 switch to C, >6 switch to B, >8 FNC1, >< a ">" in subset B):
// FNC1 first, digit pairs in subset C, other characters in subset B, FNC1
// after every element that needs a separator and is not last. The data is
// printed exactly as given, check digits included (no mode D).
func EncodeGS1128(els gs1.Elements) (string, error) {
	// tokens: data bytes, with fnc1 marking a separator
	const fnc1 = 0
	var data []byte
	for i, e := range els {
		for _, s := range []string{e.AI, e.Value} {
			for j := 0; j < len(s); j++ {
				c := s[j]
				if c < 0x20 || c >= 0x7f || c == '^' || c == '~' {
					return "", fmt.Errorf("(%s) byte %q cannot be encoded in GS1-128", e.AI, c)
				}
				data = append(data, c)
			}
		}
		if i < len(els)-1 && gs1.NeedsSeparator(e.AI) {
			data = append(data, fnc1)
		}
	}
	if len(data) > maxGS1128 {
		return "", fmt.Errorf("GS1-128 carries at most %d data characters, these elements need %d", maxGS1128, len(data))
	}
	digitRun := func(i int) int {
		n := 0
		for i+n < len(data) && data[i+n] >= '0' && data[i+n] <= '9' {
			n++
		}
		return n
	}
	var b strings.Builder
	subsetC := digitRun(0) >= 4 && digitRun(0)%2 == 0 || digitRun(0) == len(data) && len(data)%2 == 0
	if subsetC {
		b.WriteString(">;>8")
	} else {
		b.WriteString(">:>8")
	}
	for i := 0; i < len(data); {
		c := data[i]
		if c == fnc1 {
			b.WriteString(">8")
			i++
			continue
		}
		if subsetC {
			if digitRun(i) >= 2 {
				b.WriteByte(data[i])
				b.WriteByte(data[i+1])
				i += 2
				continue
			}
			b.WriteString(">6")
			subsetC = false
			continue
		}
		if n := digitRun(i); n >= 4 && n%2 == 0 {
			b.WriteString(">5")
			subsetC = true
			continue
		}
		if c == '>' {
			b.WriteString("><")
		} else {
			b.WriteByte(c)
		}
		i++
	}
	return b.String(), nil
}

// DecodeGS1128 interprets ^BC field data written with invocation codes as
// the printer encodes it and returns what a scanner transmits after the
// symbology identifier ]C1 (FNC1 separators as GS). Data that does not start
// with a start code and FNC1 is not GS1-128.
func DecodeGS1128(fd string) (string, error) {
	if len(fd) < 4 || fd[0] != '>' || (fd[1] != ';' && fd[1] != ':') || fd[2:4] != ">8" {
		return "", errors.New("GS1-128 field data must start with >; or >: and FNC1 (>8)")
	}
	subsetC := fd[1] == ';'
	var b strings.Builder
	for i := 4; i < len(fd); {
		if fd[i] == '>' {
			if i+1 >= len(fd) {
				return "", errors.New("> at the end of the field data")
			}
			switch fd[i+1] {
			case '8':
				b.WriteString(gs1.GS)
			case '5':
				subsetC = true
			case '6':
				subsetC = false
			case '<':
				if subsetC {
					return "", errors.New(">< (a \">\") in subset C")
				}
				b.WriteByte('>')
			default:
				return "", fmt.Errorf("invocation code >%c not supported", fd[i+1])
			}
			i += 2
			continue
		}
		if subsetC {
			if i+1 >= len(fd) || !isDigits(fd[i:i+2]) {
				return "", fmt.Errorf("subset C wants digit pairs, got %q", fd[i:min(i+2, len(fd))])
			}
			b.WriteString(fd[i : i+2])
			i += 2
			continue
		}
		b.WriteByte(fd[i])
		i++
	}
	return b.String(), nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// Render builds the ZPL of a label (deterministic: tests compare goldens).
func (z *Zebra) Render(l drivers.Label) ([]byte, error) {
	z.tmu.RLock()
	defer z.tmu.RUnlock()
	return render(z.opts, z.templates, l)
}

// templateSet holds the parsed templates of the device and of products.
type templateSet struct {
	level   map[string]*template.Template            // device options.templates
	product map[string]map[string]*template.Template // GTIN -> level
}

var builtin = map[drivers.Level]*template.Template{
	drivers.LevelUnit:   template.Must(template.New("unit").Funcs(funcs).Option("missingkey=zero").Parse(unitTemplate)),
	drivers.LevelCase:   template.Must(template.New("case").Funcs(funcs).Option("missingkey=zero").Parse(ssccTemplate)),
	drivers.LevelPallet: template.Must(template.New("pallet").Funcs(funcs).Option("missingkey=zero").Parse(ssccTemplate)),
}

// parseTemplate compiles a template override and proves it on sample data:
// it must produce one format that carries the level's symbol.
func parseTemplate(o Options, level, src string) (*template.Template, error) {
	t, err := template.New(level).Funcs(funcs).Option("missingkey=zero").Parse(src)
	if err != nil {
		return nil, err
	}
	sample := drivers.Label{Level: drivers.Level(level), Data: gs1.Elements{{AI: "01", Value: "09506000134352"}, {AI: "17", Value: "281130"}, {AI: "10", Value: "LOT1"}, {AI: "21", Value: "SN1"}}}
	if level != string(drivers.LevelUnit) {
		sample.Data = gs1.Elements{{AI: "00", Value: "395060000000000016"}}
	}
	d, err := templateData(o, sample)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, d); err != nil {
		return nil, err
	}
	out := buf.String()
	symbol, what := d.GS1128, "{{.GS1128}} (the SSCC as GS1-128)"
	if level == string(drivers.LevelUnit) {
		symbol, what = d.DataMatrix, "{{.DataMatrix}} (the GS1 DataMatrix)"
	}
	switch {
	case !strings.Contains(out, "^XA") || !strings.Contains(out, "^XZ"):
		return nil, errors.New("the template must be one ^XA ... ^XZ format")
	case !strings.Contains(out, "^FD"+symbol+"^FS"):
		return nil, fmt.Errorf("the template does not print ^FD%s^FS", what)
	}
	return t, nil
}

func templateData(o Options, l drivers.Label) (TemplateData, error) {
	d := TemplateData{Level: string(l.Level), Escape: o.EscapeChar, Module: o.Module, Text: map[string]string{}}
	for k, v := range l.Text {
		d.Text[k] = escapeText(v)
	}
	if len(l.Data) == 0 {
		return d, fmt.Errorf("%s label without GS1 data", l.Level)
	}
	if err := l.Data.Validate(); err != nil {
		return d, fmt.Errorf("GS1 data %s: %w", l.Data.Bracketed(), err)
	}
	for i, e := range l.Data {
		d.HRI = append(d.HRI, HRILine{AI: e.AI, Value: e.Value, Line: escapeText("(" + e.AI + ") " + e.Value), Y: 40 + 35*i})
	}
	var err error
	switch l.Level {
	case drivers.LevelUnit:
		if d.DataMatrix, err = EncodeDataMatrix(l.Data, o.EscapeChar[0]); err != nil {
			return d, err
		}
	case drivers.LevelCase, drivers.LevelPallet:
		sscc, ok := l.Data.Get("00")
		if !ok {
			return d, fmt.Errorf("%s label without (00) SSCC", l.Level)
		}
		d.SSCC = sscc
		if d.GS1128, err = EncodeGS1128(l.Data); err != nil {
			return d, err
		}
		hri := make([]string, len(l.Data))
		for i, e := range l.Data {
			hri[i] = "(" + e.AI + ") " + e.Value
		}
		d.GS1128Text = escapeText(strings.Join(hri, " "))
		if d.Text["TITLE"] == "" {
			d.Text["TITLE"] = escapeText(strings.ToUpper(string(l.Level)) + " " + sscc)
		}
	default:
		return d, fmt.Errorf("label level %q: want unit, case or pallet", l.Level)
	}
	return d, nil
}

// labelGTIN is the GTIN that selects a product's templates: (01) of the data,
// else the label's GTIN text (case and pallet labels).
func labelGTIN(l drivers.Label) string {
	if g, ok := l.Data.Get("01"); ok {
		return g
	}
	return l.Text["GTIN"]
}

func render(o Options, ts templateSet, l drivers.Label) ([]byte, error) {
	d, err := templateData(o, l)
	if err != nil {
		return nil, err
	}
	var t *template.Template
	if x, ok := ts.level[string(l.Level)]; ok {
		t = x
	}
	if x, ok := ts.product[labelGTIN(l)][string(l.Level)]; ok {
		t = x
	}
	if t == nil {
		return renderBuiltin(d), nil
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, d); err != nil {
		return nil, fmt.Errorf("template %s: %w", l.Level, err)
	}
	return buf.Bytes(), nil
}

// renderBuiltin writes exactly what unitTemplate and ssccTemplate produce
// (TestBuiltinFastPath compares them), without text/template's reflection:
// the built-in labels are rendered once per unit on the line.
func renderBuiltin(d TemplateData) []byte {
	b := make([]byte, 0, 512)
	b = append(b, "^XA\n^CI28\n"...)
	if d.Level == string(drivers.LevelUnit) {
		b = append(b, "^FO40,40^BXN,"...)
		b = strconv.AppendInt(b, int64(d.Module), 10)
		b = append(b, ",200,,,,"...)
		b = append(b, d.Escape...)
		b = append(b, "^FD"...)
		b = append(b, d.DataMatrix...)
		b = append(b, "^FS\n"...)
		for _, l := range d.HRI {
			b = append(b, "^FO260,"...)
			b = strconv.AppendInt(b, int64(l.Y), 10)
			b = append(b, "^A0N,26,26^FH^FD"...)
			b = append(b, l.Line...)
			b = append(b, "^FS\n"...)
		}
		if p := d.Text["PRODUCT"]; p != "" {
			b = append(b, "^FO40,200^A0N,22,22^FH^FD"...)
			b = append(b, p...)
			b = append(b, "^FS\n"...)
		}
	} else {
		b = append(b, "^FO40,30^A0N,30,30^FH^FD"...)
		b = append(b, d.Text["TITLE"]...)
		b = append(b, "^FS\n^FO40,80^BY3^BCN,160,N,N,N^FD"...)
		b = append(b, d.GS1128...)
		b = append(b, "^FS\n^FO40,250^A0N,30,30^FH^FD"...)
		b = append(b, d.GS1128Text...)
		b = append(b, "^FS\n"...)
	}
	return append(b, "^XZ\n"...)
}

// renderTemplate renders a label with the built-in text/template of its
// level (what renderBuiltin does by hand).
func renderTemplate(o Options, l drivers.Label) ([]byte, error) {
	o.SetDefaults()
	d, err := templateData(o, l)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := builtin[l.Level].Execute(&buf, d); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
