package camera

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/serialine/serialine/drivers"
	"github.com/serialine/serialine/sync/gs1"
)

// Format describes the reader's configured result line.
type Format struct {
	Mode      string   `yaml:"mode"`      // delimiter | regex
	Delimiter string   `yaml:"delimiter"` // delimiter mode; default "|" (not in GS1 CSET 82, so data never contains it)
	Fields    []string `yaml:"fields"`    // delimiter mode: data, grade, param:NAME, or - to ignore
	Pattern   string   `yaml:"pattern"`   // regex mode: named groups data, grade, p_NAME
	NoRead    []string `yaml:"no_read"`   // whole lines that mean no-read
	GS        string   `yaml:"gs"`        // how the reader writes FNC1/GS in data if not as 0x1D, e.g. "<GS>"
}

// Parser turns result lines into readings.
type Parser struct {
	name   string
	f      Format
	re     *regexp.Regexp
	noRead map[string]bool
}

// NewParser compiles a format (options with defaults applied).
func NewParser(name string, o Options) (*Parser, error) {
	o.SetDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	p := &Parser{name: name, f: o.Format, noRead: map[string]bool{}}
	for _, s := range o.Format.NoRead {
		p.noRead[s] = true
	}
	if o.Format.Mode == "regex" {
		p.re = regexp.MustCompile(o.Format.Pattern) // validated
	}
	return p, nil
}

func (p *Parser) fail(field string, err error, line []byte) error {
	return drivers.NewDeviceError(p.name, "result line "+field, fmt.Errorf("%w: %v", drivers.ErrMalformed, err), line)
}

// Parse parses one result line (without its line end).
func (p *Parser) Parse(line []byte) (drivers.Reading, error) {
	r := drivers.Reading{Camera: p.name, At: time.Now(), Raw: append([]byte(nil), line[:min(len(line), 256)]...)}
	s := string(line)
	if p.noRead[strings.TrimSpace(s)] {
		r.NoRead = true
		return r, nil
	}
	var data, grade string
	params := map[string]string{}
	switch p.f.Mode {
	case "regex":
		m := p.re.FindStringSubmatch(s)
		if m == nil {
			return r, p.fail("", errors.New("does not match the configured pattern"), line)
		}
		for i, name := range p.re.SubexpNames() {
			switch {
			case name == "data":
				data = m[i]
			case name == "grade":
				grade = m[i]
			case strings.HasPrefix(name, "p_") && m[i] != "":
				params[strings.TrimPrefix(name, "p_")] = m[i]
			}
		}
	default:
		parts := strings.Split(s, p.f.Delimiter)
		if len(parts) != len(p.f.Fields) {
			return r, p.fail("", fmt.Errorf("%d fields, the format has %d (%s)", len(parts), len(p.f.Fields), strings.Join(p.f.Fields, p.f.Delimiter)), line)
		}
		for i, f := range p.f.Fields {
			switch {
			case f == "data":
				data = parts[i]
			case f == "grade":
				grade = parts[i]
			case strings.HasPrefix(f, "param:"):
				params[strings.TrimPrefix(f, "param:")] = parts[i]
			}
		}
	}
	if data == "" {
		return r, p.fail("field data", errors.New("empty data (a no-read must be one of the no_read strings)"), line)
	}
	if len(data) >= 3 && data[0] == ']' {
		r.Symbology, data = data[:3], data[3:]
	}
	if p.f.GS != "" {
		data = strings.ReplaceAll(data, p.f.GS, gs1.GS)
	}
	r.Data = data
	overall := drivers.Grade(-1)
	if grade != "" {
		g, err := drivers.ParseGrade(strings.TrimSpace(grade))
		if err != nil {
			return r, p.fail("field grade", err, line)
		}
		overall = g
	}
	if len(params) > 0 {
		r.Params = make(map[string]drivers.Grade, len(params))
		for name, v := range params {
			g, err := drivers.ParseGrade(strings.TrimSpace(v))
			if err != nil {
				return r, p.fail("field param:"+name, err, line)
			}
			r.Params[name] = g
			// ISO/IEC 15415: the overall grade is the lowest parameter grade.
			if overall < 0 || g < overall {
				overall = g
			}
		}
	}
	if overall < 0 {
		return r, p.fail("field grade", errors.New("no grade in the result (configure grade or param fields)"), line)
	}
	r.Grade = overall
	return r, nil
}
