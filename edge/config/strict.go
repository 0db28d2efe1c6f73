package config

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Error is one configuration problem with its position.
type Error struct {
	File      string
	Line, Col int
	Path      string // e.g. devices.printers[0].address
	Msg       string
}

func (e Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Col > 0 {
			fmt.Fprintf(&b, ":%d", e.Col)
		}
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found, one per line.
type Errors struct{ List []Error }

func (e *Errors) Error() string {
	lines := make([]string, len(e.List))
	for i, x := range e.List {
		lines[i] = x.Error()
	}
	return strings.Join(lines, "\n")
}

type pos struct{ line, col int }

// strict decodes yaml.Node trees into Go values, refusing unknown and
// duplicate keys and wrong types, and remembering where each path is.
type strict struct {
	file string
	errs []Error
	at   map[string]pos
}

func (d *strict) errf(n *yaml.Node, path, format string, a ...any) {
	e := Error{File: d.file, Path: path, Msg: fmt.Sprintf(format, a...)}
	if n != nil {
		e.Line, e.Col = n.Line, n.Column
	}
	d.errs = append(d.errs, e)
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

var (
	durationType = reflect.TypeOf(Duration(0))
	timeDuration = reflect.TypeOf(time.Duration(0))
	nodeType     = reflect.TypeOf(yaml.Node{})
)

// isDuration: config.Duration, and time.Duration in driver options.
func isDuration(t reflect.Type) bool { return t == durationType || t == timeDuration }

// yamlFields maps yaml key names to struct field indexes.
func yamlFields(t reflect.Type) (map[string]int, []string) {
	m := map[string]int{}
	var names []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		m[name] = i
		names = append(names, name)
	}
	return m, names
}

func (d *strict) decode(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return
		}
		n = n.Content[0]
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if d.at != nil {
		if _, ok := d.at[path]; !ok {
			d.at[path] = pos{n.Line, n.Column}
		}
	}
	t := v.Type()
	switch {
	case t == nodeType:
		v.Set(reflect.ValueOf(*n))
		return
	case isDuration(t):
		if n.Kind != yaml.ScalarNode {
			d.errf(n, path, "want a duration like 250ms, 2s or 1h30m")
			return
		}
		dur, err := time.ParseDuration(n.Value)
		if err != nil {
			if _, nerr := strconv.ParseFloat(n.Value, 64); nerr == nil {
				d.errf(n, path, "duration %q needs a unit, e.g. %ss", n.Value, n.Value)
			} else {
				d.errf(n, path, "want a duration like 250ms, 2s or 1h30m, got %q", n.Value)
			}
			return
		}
		v.SetInt(int64(dur))
		return
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" && t.Kind() != reflect.String {
		return // explicit null keeps the default
	}
	switch t.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(t.Elem()))
		}
		d.decode(n, v.Elem(), path)
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			d.errf(n, path, "want a mapping (key: value lines), got %s", kindName(n))
			return
		}
		fields, names := yamlFields(t)
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			key := k.Value
			if seen[key] {
				d.errf(k, path, "duplicate key %q", key)
				continue
			}
			seen[key] = true
			idx, ok := fields[key]
			if !ok {
				where := path
				if where == "" {
					where = "the top level"
				}
				msg := fmt.Sprintf("unknown key %q in %s", key, where)
				if s := suggest(key, names); s != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", s)
				}
				e := Error{File: d.file, Line: k.Line, Col: k.Column, Msg: msg}
				d.errs = append(d.errs, e)
				continue
			}
			if d.at != nil {
				d.at[join(path, key)] = pos{k.Line, k.Column}
			}
			d.decode(val, v.Field(idx), join(path, key))
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.errf(n, path, "want a list, got %s", kindName(n))
			return
		}
		s := reflect.MakeSlice(t, len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.errf(n, path, "want a mapping, got %s", kindName(n))
			return
		}
		if v.IsNil() {
			v.Set(reflect.MakeMap(t))
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if seen[k.Value] {
				d.errf(k, path, "duplicate key %q", k.Value)
				continue
			}
			seen[k.Value] = true
			if d.at != nil {
				d.at[join(path, k.Value)] = pos{k.Line, k.Column}
			}
			ev := reflect.New(t.Elem()).Elem()
			d.decode(val, ev, join(path, k.Value))
			v.SetMapIndex(reflect.ValueOf(k.Value).Convert(t.Key()), ev)
		}
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.errf(n, path, "want a text value, got %s", kindName(n))
			return
		}
		if n.Tag == "!!null" {
			v.SetString("")
			return
		}
		v.SetString(n.Value) // the text as written: leading zeros of GTINs stay
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if n.Kind != yaml.ScalarNode {
			d.errf(n, path, "want an integer, got %s", kindName(n))
			return
		}
		i, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 10, t.Bits())
		if err != nil {
			d.errf(n, path, "want an integer, got %q", n.Value)
			return
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if n.Kind != yaml.ScalarNode {
			d.errf(n, path, "want a non-negative integer, got %s", kindName(n))
			return
		}
		i, err := strconv.ParseUint(strings.ReplaceAll(n.Value, "_", ""), 10, t.Bits())
		if err != nil {
			d.errf(n, path, "want a non-negative integer, got %q", n.Value)
			return
		}
		v.SetUint(i)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(n.Value, 64)
		if n.Kind != yaml.ScalarNode || err != nil {
			d.errf(n, path, "want a number, got %q", n.Value)
			return
		}
		v.SetFloat(f)
	case reflect.Bool:
		switch n.Value {
		case "true", "True", "TRUE", "yes":
			v.SetBool(true)
		case "false", "False", "FALSE", "no":
			v.SetBool(false)
		default:
			d.errf(n, path, "want true or false, got %q", n.Value)
		}
	case reflect.Interface:
		var x any
		if err := n.Decode(&x); err != nil {
			d.errf(n, path, "%v", err)
			return
		}
		if x != nil {
			v.Set(reflect.ValueOf(x))
		}
	default:
		d.errf(n, path, "cannot decode into %s", t)
	}
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "nothing"
}

// suggest returns the known name closest to key (edit distance <= 2).
func suggest(key string, names []string) string {
	best, bestD := "", 3
	sorted := append([]string(nil), names...)
	sort.Strings(sorted)
	for _, n := range sorted {
		if d := editDistance(key, n); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+c)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
