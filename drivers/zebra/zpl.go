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

// TemplateData is what label templates see.
type TemplateData struct {
	Level      string
	DataMatrix string // ^FD content for ^BX: FNC1 as <esc>1, escape character escaped
	SSCC       string // for case and pallet labels
	GS1128     string // ^FD content for ^BC mode D: (00)SSCC
	Escape     string
	Module     int
	Text       map[string]string // human-readable fields, already ^FH-escaped
}

// Built-in templates. The escape character is set explicitly as the 7th
// parameter of ^BX; ^FH makes '_' the hex escape of text fields.
const (
	unitTemplate = `^XA
^CI28
^FO40,40^BXN,{{.Module}},200,,,,{{.Escape}}^FD{{.DataMatrix}}^FS
^FO260,40^A0N,26,26^FH^FD(01) {{index .Text "GTIN"}}^FS
^FO260,75^A0N,26,26^FH^FD(21) {{index .Text "SN"}}^FS
^FO260,110^A0N,26,26^FH^FD(10) {{index .Text "LOT"}}^FS
^FO260,145^A0N,26,26^FH^FD(17) {{index .Text "EXP"}}^FS
^XZ
`
	ssccTemplate = `^XA
^CI28
^FO40,30^A0N,30,30^FH^FD{{index .Text "TITLE"}}^FS
^FO40,80^BY3^BCN,160,Y,N,N,D^FD{{.GS1128}}^FS
^XZ
`
)

func escapeText(s string) string {
	// ^FH: '_' introduces two hex digits. Escape the escape and the ZPL
	// command prefixes so data can never end the field or start a command.
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '_', '^', '~':
			fmt.Fprintf(&b, "_%02X", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// EncodeDataMatrix renders GS1 elements as ^BX field data: a leading FNC1
// (<esc>1), AI + value, FNC1 after every variable-length element that is not
// last. Data characters that are the escape character are sent as
// <esc>dNNN (ASCII decimal); '^' and '~' likewise, so they cannot start ZPL
// commands.
func EncodeDataMatrix(els gs1.Elements, esc byte) string {
	var b strings.Builder
	b.WriteByte(esc)
	b.WriteByte('1')
	for i, e := range els {
		for _, s := range []string{e.AI, e.Value} {
			for j := 0; j < len(s); j++ {
				c := s[j]
				if c == esc || c == '^' || c == '~' {
					fmt.Fprintf(&b, "%cd%03d", esc, c)
					continue
				}
				b.WriteByte(c)
			}
		}
		if i < len(els)-1 && gs1.NeedsSeparator(e.AI) {
			b.WriteByte(esc)
			b.WriteByte('1')
		}
	}
	return b.String()
}

// DecodeDataMatrix reverses EncodeDataMatrix: it returns the data as a
// scanner transmits it after the symbology identifier (FNC1 as GS, the
// leading FNC1 dropped).
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
		switch fd[i+1] {
		case '1':
			if b.Len() > 0 {
				b.WriteString(gs1.GS)
			}
			i++
		case 'd':
			if i+5 > len(fd) {
				return "", fmt.Errorf("escape %cd needs three digits", esc)
			}
			n, err := strconv.Atoi(fd[i+2 : i+5])
			if err != nil || n > 255 {
				return "", fmt.Errorf("escape %cd%s is not a decimal byte", esc, fd[i+2:i+5])
			}
			b.WriteByte(byte(n))
			i += 4
		default:
			return "", fmt.Errorf("escape %c%c not supported", esc, fd[i+1])
		}
	}
	return b.String(), nil
}

// Render builds the ZPL of a label (deterministic: tests compare goldens).
func (z *Zebra) Render(l drivers.Label) ([]byte, error) { return render(z.opts, l) }

func render(o Options, l drivers.Label) ([]byte, error) {
	esc := o.EscapeChar[0]
	d := TemplateData{Level: string(l.Level), Escape: o.EscapeChar, Module: o.Module, Text: map[string]string{}}
	for k, v := range l.Text {
		d.Text[k] = escapeText(v)
	}
	src := o.Templates[string(l.Level)]
	switch l.Level {
	case drivers.LevelUnit:
		if len(l.Data) == 0 {
			return nil, errors.New("unit label without GS1 data")
		}
		d.DataMatrix = EncodeDataMatrix(l.Data, esc)
		if src == "" {
			src = unitTemplate
		}
	case drivers.LevelCase, drivers.LevelPallet:
		sscc, ok := l.Data.Get("00")
		if !ok {
			return nil, fmt.Errorf("%s label without (00) SSCC", l.Level)
		}
		d.SSCC = sscc
		d.GS1128 = "(00)" + sscc
		if d.Text["TITLE"] == "" {
			d.Text["TITLE"] = escapeText(strings.ToUpper(string(l.Level)) + " " + sscc)
		}
		if src == "" {
			src = ssccTemplate
		}
	default:
		return nil, fmt.Errorf("label level %q", l.Level)
	}
	t, err := template.New(string(l.Level)).Option("missingkey=zero").Parse(src)
	if err != nil {
		return nil, fmt.Errorf("template %s: %w", l.Level, err)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, d); err != nil {
		return nil, fmt.Errorf("template %s: %w", l.Level, err)
	}
	return buf.Bytes(), nil
}
