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
	Delimiter string   `yaml:"delimiter"` // delimiter mode; default "|" (not in GS1 CSET 82)
	Fields    []string `yaml:"fields"`    // delimiter mode: data, grade, param:NAME, or - to ignore
	Pattern   string   `yaml:"pattern"`   // regex mode: named groups data, grade, p_NAME
	NoRead    []string `yaml:"no_read"`   // whole lines that mean no-read
	GS        string   `yaml:"gs"`        // how the reader writes FNC1/GS in data if not as 0x1D, e.g. "<GS>"
	// Ignore lists whole lines that acknowledge a command and carry no
	// result (keyence default: OK,LON and OK,LOFF).
	Ignore []string `yaml:"ignore"`
	// Errors lists prefixes of lines that report a refused command
	// (keyence default: ER,), a device fault rather than a result.
	Errors []string `yaml:"errors"`
}

// ErrAcknowledgement is returned by Parse for a line that acknowledges a
// command (Format.Ignore, a DMCC "||...[0]" response): not a result, Read
// skips it.
var ErrAcknowledgement = errors.New("command acknowledgement, not a result")

// Parser turns result lines into readings.
type Parser struct {
	name   string
	f      Format
	re     *regexp.Regexp
	noRead map[string]bool
	ignore map[string]bool
	dmcc   bool // dataman: recognise DMCC responses
	dataAt int  // delimiter mode: index of the data field
}

// split cuts a delimited line into the format's fields. The fields before
// the data field are cut from the left and those after it from the right,
// so the data may itself contain the delimiter.
func (p *Parser) split(s string) ([]string, bool) {
	n, d := len(p.f.Fields), p.f.Delimiter
	out := make([]string, n)
	for i := 0; i < p.dataAt; i++ {
		f, rest, ok := strings.Cut(s, d)
		if !ok {
			return nil, false
		}
		out[i], s = f, rest
	}
	for i := n - 1; i > p.dataAt; i-- {
		j := strings.LastIndex(s, d)
		if j < 0 {
			return nil, false
		}
		out[i], s = s[j+len(d):], s[:j]
	}
	out[p.dataAt] = s
	return out, true
}

func dmccStatus(s string) string {
	switch s {
	case "1":
		return "reader initiated read-string"
	case "100":
		return "unidentified error"
	case "101":
		return "command invalid"
	case "102":
		return "parameter invalid"
	case "103":
		return "checksum incorrect"
	case "104":
		return "parameter rejected or altered due to reader state"
	case "105":
		return "reader unavailable"
	}
	return "unknown status"
}

// NewParser compiles a format (options with defaults applied).
func NewParser(name string, o Options) (*Parser, error) {
	o.SetDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	p := &Parser{name: name, f: o.Format, noRead: map[string]bool{}, ignore: map[string]bool{}, dmcc: o.Profile == "dataman"}
	for _, s := range o.Format.NoRead {
		p.noRead[s] = true
	}
	for _, s := range o.Format.Ignore {
		p.ignore[s] = true
	}
	for i, f := range o.Format.Fields {
		if f == "data" {
			p.dataAt = i
		}
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
	t := strings.TrimSpace(s)
	if p.noRead[t] {
		r.NoRead = true
		return r, nil
	}
	if p.ignore[t] {
		return r, ErrAcknowledgement
	}
	for _, pre := range p.f.Errors {
		if strings.HasPrefix(t, pre) {
			return r, drivers.NewDeviceError(p.name, "command response", fmt.Errorf("%w: the reader refused a command: %q", drivers.ErrDeviceFault, t), line)
		}
	}
	if p.dmcc && strings.HasPrefix(t, "||") {
		// A DMCC response in the Extended response mode: ||checksum:id[status].
		i, j := strings.IndexByte(t, '['), strings.IndexByte(t, ']')
		if i < 0 || j < i {
			return r, p.fail("", errors.New("DMCC response without [status]"), line)
		}
		switch st := t[i+1 : j]; st {
		case "0":
			return r, ErrAcknowledgement
		default:
			return r, drivers.NewDeviceError(p.name, "DMCC response", fmt.Errorf("%w: status %s (%s)", drivers.ErrDeviceFault, st, dmccStatus(st)), line)
		}
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
		parts, ok := p.split(s)
		if !ok {
			return r, p.fail("", fmt.Errorf("%d fields, the format has %d (%s)", strings.Count(s, p.f.Delimiter)+1, len(p.f.Fields), strings.Join(p.f.Fields, p.f.Delimiter)), line)
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
