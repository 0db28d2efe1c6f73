package videojet

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/serialine/serialine/drivers"
	"github.com/serialine/serialine/sync/gs1"
)

// Job names a job (thermal transfer) or message (CIJ) stored on the printer
// and says which of its variable fields get what.
type Job struct {
	// Name of the job/message as stored on the printer.
	Name string `yaml:"name"`
	// Code is the variable field that feeds the job's GS1 symbol (a GS1
	// DataMatrix for units, GS1-128 for SSCC labels).
	Code string `yaml:"code"`
	// Fields maps further variable fields to keys of the label's text
	// (GTIN, SN, LOT, EXP, PRODUCT): human-readable lines.
	Fields map[string]string `yaml:"fields"`
}

// FNC1 encodings of the GS1 symbol data.
const (
	// FNC1GS sends the element string as a scanner transmits it: AIs
	// concatenated, ASCII GS (0x1D) after every variable-length element
	// that is not last. The job's barcode must be a GS1 DataMatrix (or
	// GS1-128) that encodes GS as FNC1.
	FNC1GS = "gs"
	// FNC1Brackets sends "(01)...(21)..." for barcodes that take AIs in
	// brackets and insert FNC1 themselves. Data containing '(' or ')' is
	// refused: such a printer cannot tell it from an AI.
	FNC1Brackets = "brackets"
)

var levels = map[string]bool{"unit": true, "case": true, "pallet": true}

func defaultJobs() map[string]Job {
	return map[string]Job{"unit": {Name: "SERIAL", Code: "DM", Fields: map[string]string{"GTIN": "GTIN", "SN": "SN", "LOT": "LOT", "EXP": "EXP"}}}
}

func validateJobs(what string, jobs map[string]Job, checkName func(string) error) error {
	if len(jobs) == 0 {
		return fmt.Errorf("%s: at least one level (unit, case, pallet) is needed", what)
	}
	for _, level := range sortedKeys(jobs) {
		j := jobs[level]
		if !levels[level] {
			return fmt.Errorf("%s.%s: level must be unit, case or pallet", what, level)
		}
		if err := checkName(j.Name); err != nil {
			return fmt.Errorf("%s.%s.name: %v", what, level, err)
		}
		if err := checkName(j.Code); err != nil {
			return fmt.Errorf("%s.%s.code: %v", what, level, err)
		}
		for _, f := range sortedKeys(j.Fields) {
			if err := checkName(f); err != nil {
				return fmt.Errorf("%s.%s.fields: %v", what, level, err)
			}
			if f == j.Code {
				return fmt.Errorf("%s.%s.fields.%s: is also the code field", what, level, f)
			}
			if j.Fields[f] == "" {
				return fmt.Errorf("%s.%s.fields.%s: empty label text key", what, level, f)
			}
		}
	}
	return nil
}

func validateFNC1(v string) error {
	if v != FNC1GS && v != FNC1Brackets {
		return fmt.Errorf("fnc1: %q: want %q or %q", v, FNC1GS, FNC1Brackets)
	}
	return nil
}

// Options are the thermal transfer driver's settings (a device's `options:`).
type Options struct {
	// Jobs per label level; default: unit → job "SERIAL", code field "DM",
	// fields GTIN, SN, LOT, EXP.
	Jobs map[string]Job `yaml:"jobs"`
	// FNC1 is how the GS1 symbol data is sent: "gs" (default) or "brackets".
	FNC1 string `yaml:"fnc1"`
	// DisableNotifications leaves print-complete notifications (PRC) off.
	DisableNotifications bool `yaml:"disable_notifications"`
}

// SetDefaults fills unset options.
func (o *Options) SetDefaults() {
	if len(o.Jobs) == 0 {
		o.Jobs = defaultJobs()
	}
	if o.FNC1 == "" {
		o.FNC1 = FNC1GS
	}
}

// Validate checks the options, naming the field.
func (o *Options) Validate() error {
	c := *o
	c.SetDefaults()
	if err := validateFNC1(c.FNC1); err != nil {
		return err
	}
	return validateJobs("jobs", c.Jobs, CheckName)
}

// CIJOptions are the 1000 Line CIJ driver's settings.
type CIJOptions struct {
	// Messages per label level; default: unit → message "SERIAL", user
	// field "DM" for the code, user fields GTIN, SN, LOT, EXP.
	Messages map[string]Job `yaml:"messages"`
	// FNC1 is how the GS1 symbol data is sent: "gs" (default) or "brackets".
	FNC1 string `yaml:"fnc1"`
	// CounterSelector follows G in the counter request; default "A".
	CounterSelector string `yaml:"counter_selector"`
}

// SetDefaults fills unset options.
func (o *CIJOptions) SetDefaults() {
	if len(o.Messages) == 0 {
		o.Messages = defaultJobs()
	}
	if o.FNC1 == "" {
		o.FNC1 = FNC1GS
	}
	if o.CounterSelector == "" {
		o.CounterSelector = "A"
	}
}

// Validate checks the options, naming the field.
func (o *CIJOptions) Validate() error {
	c := *o
	c.SetDefaults()
	if err := validateFNC1(c.FNC1); err != nil {
		return err
	}
	if len(c.CounterSelector) != 1 || c.CounterSelector[0] < 'A' || c.CounterSelector[0] > 'Z' {
		return fmt.Errorf("counter_selector: %q: want one capital letter", c.CounterSelector)
	}
	return validateJobs("messages", c.Messages, CheckWSIName)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// SymbolData renders the GS1 data of a label for the printer's code field.
func SymbolData(els gs1.Elements, fnc1 string) (string, error) {
	if len(els) == 0 {
		return "", errors.New("label has no GS1 data")
	}
	if fnc1 != FNC1Brackets {
		return els.ElementString(), nil
	}
	var b strings.Builder
	for _, e := range els {
		if strings.ContainsAny(e.Value, "()") {
			return "", fmt.Errorf("(%s) %q contains '(' or ')': not sendable with fnc1: brackets", e.AI, e.Value)
		}
		b.WriteString("(" + e.AI + ")" + e.Value)
	}
	return b.String(), nil
}

// DecodeSymbolData is the inverse of SymbolData as a printer applies it:
// bracketed AIs become the element string a scanner transmits; anything
// else is taken as an element string already.
func DecodeSymbolData(v string) (string, error) {
	if !strings.HasPrefix(v, "(") {
		return v, nil
	}
	els, err := gs1.ParseBracketed(v)
	if err != nil {
		return "", err
	}
	return els.ElementString(), nil
}

// labelFields resolves the fields to send for a label: the job, then the
// fields in a fixed order (text fields by name, the code field last, so a
// printer that applies fields one by one changes the symbol last).
func labelFields(jobs map[string]Job, fnc1 string, l drivers.Label, check func(string) error) (Job, []Field, error) {
	level := string(l.Level)
	if level == "" {
		level = "unit"
	}
	j, ok := jobs[level]
	if !ok {
		return j, nil, fmt.Errorf("no job configured for %s labels", level)
	}
	code, err := SymbolData(l.Data, fnc1)
	if err != nil {
		return j, nil, err
	}
	if err := check(code); err != nil {
		return j, nil, fmt.Errorf("GS1 data: %v", err)
	}
	out := make([]Field, 0, len(j.Fields)+1)
	for _, name := range sortedKeys(j.Fields) {
		key := j.Fields[name]
		v, ok := l.Text[key]
		if !ok {
			// The printer would keep the previous unit's value.
			return j, nil, fmt.Errorf("field %s: the label has no %q text", name, key)
		}
		if err := check(v); err != nil {
			return j, nil, fmt.Errorf("field %s: %v", name, err)
		}
		out = append(out, Field{Name: name, Value: v})
	}
	out = append(out, Field{Name: j.Code, Value: code})
	return j, out, nil
}
