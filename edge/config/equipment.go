package config

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Equipment is the line's equipment registry and its rules. Every device
// under devices: is equipment already (class from its kind), and so are the
// edge server itself and its link to central (BuiltinEdgeServer,
// BuiltinCentralLink); items describe them further (serial and asset
// numbers, dependencies, calibration and maintenance schedules) or add
// equipment without a driver (a manual aggregation station).
type Equipment struct {
	// ReportableAfter: a downtime of serialization-critical equipment that
	// lasts this long is reportable (FDA notification). Default 4h.
	ReportableAfter Duration `yaml:"reportable_after"`
	// DueSoon is how long before its due date a calibration or maintenance
	// is "due soon" and its work order is opened. Default 168h (7 days).
	DueSoon Duration `yaml:"due_soon"`
	// Interlock lists the classes whose lapsed calibration refuses a batch
	// start. Default [print, verification]; [] disables the interlock.
	Interlock []string `yaml:"interlock"`
	// AttributionWindow: a downtime of equipment whose dependency goes down
	// up to this long after it is attributed to the dependency. Default 30s.
	AttributionWindow Duration `yaml:"attribution_window"`
	// OverrideValidFor bounds how long a QA override of the interlock stays
	// usable for its batch. Default 8h.
	OverrideValidFor Duration        `yaml:"override_valid_for"`
	Items            []EquipmentItem `yaml:"items"`
}

// EquipmentItem describes one piece of equipment.
type EquipmentItem struct {
	// Name is a device name from devices:, a built-in (edge-server,
	// central-link), or a new equipment (then Class is required).
	Name string `yaml:"name"`
	// Class: print, verification, aggregation or network. Devices default
	// by kind (printers print, cameras and PLCs verification), built-ins
	// network.
	Class string `yaml:"class"`
	// Critical marks serialization-critical equipment (its downtime can
	// become reportable). Default true.
	Critical  *bool    `yaml:"critical"`
	DependsOn []string `yaml:"depends_on"`
	Model     string   `yaml:"model"`
	Serial    string   `yaml:"serial"` // manufacturer's serial number
	Asset     string   `yaml:"asset"`  // plant asset number
	Location  string   `yaml:"location"`

	Calibration *Schedule `yaml:"calibration"`
	Maintenance *Schedule `yaml:"maintenance"`
}

// Schedule is a calibration or preventive maintenance schedule.
type Schedule struct {
	Interval Duration `yaml:"interval"` // e.g. 4380h (half a year)
	// Tolerance is the window either side of the due date: work done in it
	// keeps the schedule (the next due date follows the planned one), and
	// the equipment is overdue only after due + tolerance.
	Tolerance Duration `yaml:"tolerance"`
	// LastDone (YYYY-MM-DD or RFC 3339) is the last activity before
	// Serialine kept the history, with Reference naming its paper record.
	// It is recorded once as a baseline and ignored once the equipment has
	// a recorded calibration.
	LastDone  string `yaml:"last_done"`
	Reference string `yaml:"reference"`
}

// Built-in equipment names.
const (
	BuiltinEdgeServer  = "edge-server"
	BuiltinCentralLink = "central-link"
)

// Equipment classes.
var equipmentClasses = []string{"print", "verification", "aggregation", "network"}

func defaultEquipment() Equipment {
	return Equipment{
		ReportableAfter:   Duration(4 * time.Hour),
		DueSoon:           Duration(7 * 24 * time.Hour),
		Interlock:         []string{"print", "verification"},
		AttributionWindow: Duration(30 * time.Second),
		OverrideValidFor:  Duration(8 * time.Hour),
	}
}

func init() {
	docs["equipment"] = "Equipment registry: downtime, calibration and maintenance rules, and the devices' details."
	docs["equipment.reportable_after"] = "A downtime of critical equipment this long is FDA-reportable (default 4h)."
	docs["equipment.due_soon"] = "Lead time of due-soon alerts and work orders (default 168h)."
	docs["equipment.interlock"] = "Classes whose overdue calibration refuses a batch start (default [print, verification])."
	docs["equipment.items"] = "Details of devices, built-ins (edge-server, central-link) and equipment without a driver."
	docs["equipment.items.class"] = "print, verification, aggregation or network."
	docs["equipment.items.calibration.last_done"] = "Last calibration before Serialine kept the history (YYYY-MM-DD), recorded once as a baseline."
}

// ParseDate parses a schedule date: YYYY-MM-DD (midnight UTC) or RFC 3339.
func ParseDate(s string) (time.Time, error) {
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t.UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: want a date YYYY-MM-DD or an RFC 3339 time", s)
	}
	return t.UTC(), nil
}

// EquipmentNames maps every equipment name to its kind: printer, camera,
// plc (devices), edge_server, link (built-ins) or station (items that are
// not devices).
func (l *Line) EquipmentNames() map[string]string {
	m := map[string]string{BuiltinEdgeServer: "edge_server", BuiltinCentralLink: "link"}
	for _, d := range l.Devices.Printers {
		m[d.Name] = "printer"
	}
	for _, d := range l.Devices.Cameras {
		m[d.Name] = "camera"
	}
	for _, d := range l.Devices.PLCs {
		m[d.Name] = "plc"
	}
	for _, it := range l.Equipment.Items {
		if _, ok := m[it.Name]; !ok && it.Name != "" {
			m[it.Name] = "station"
		}
	}
	return m
}

func validClass(c string) bool {
	for _, x := range equipmentClasses {
		if c == x {
			return true
		}
	}
	return false
}

func (v *validator) equipment() {
	eq := v.l.Equipment
	if eq.ReportableAfter <= 0 {
		v.add("equipment.reportable_after", "must be positive")
	}
	if eq.DueSoon < 0 {
		v.add("equipment.due_soon", "must not be negative")
	}
	if eq.AttributionWindow < 0 {
		v.add("equipment.attribution_window", "must not be negative")
	}
	if eq.OverrideValidFor <= 0 {
		v.add("equipment.override_valid_for", "must be positive")
	}
	seenClass := map[string]bool{}
	for i, c := range eq.Interlock {
		at := fmt.Sprintf("equipment.interlock[%d]", i)
		switch {
		case !validClass(c):
			v.add(at, "%q: want %s", c, strings.Join(equipmentClasses, ", "))
		case seenClass[c]:
			v.add(at, "class %q is listed twice", c)
		}
		seenClass[c] = true
	}
	for _, sec := range []struct {
		path string
		list []Device
	}{{"devices.printers", v.l.Devices.Printers}, {"devices.cameras", v.l.Devices.Cameras}, {"devices.plcs", v.l.Devices.PLCs}} {
		for i, d := range sec.list {
			if d.Name == BuiltinEdgeServer || d.Name == BuiltinCentralLink {
				v.add(fmt.Sprintf("%s[%d].name", sec.path, i), "%q is the name of built-in equipment: choose another device name", d.Name)
			}
		}
	}
	names := v.l.EquipmentNames()
	seen := map[string]int{}
	deps := map[string][]string{}
	for i, it := range eq.Items {
		at := func(k string) string { return fmt.Sprintf("equipment.items[%d].%s", i, k) }
		if !idRE.MatchString(it.Name) {
			v.add(at("name"), "%q: want 1 to 64 letters, digits, '.', '_' or '-'", it.Name)
			continue
		}
		if j, dup := seen[it.Name]; dup {
			v.add(at("name"), "equipment %q is also equipment.items[%d]", it.Name, j)
			continue
		}
		seen[it.Name] = i
		kind := names[it.Name]
		switch {
		case it.Class == "" && kind == "station":
			v.add(at("class"), "equipment %s is not a device nor built-in: give its class (%s)", it.Name, strings.Join(equipmentClasses, ", "))
		case it.Class != "" && !validClass(it.Class):
			v.add(at("class"), "equipment %s: %q: want %s", it.Name, it.Class, strings.Join(equipmentClasses, ", "))
		}
		for j, d := range it.DependsOn {
			dat := fmt.Sprintf("equipment.items[%d].depends_on[%d]", i, j)
			switch _, ok := names[d]; {
			case d == it.Name:
				v.add(dat, "equipment %s cannot depend on itself", it.Name)
			case !ok:
				v.add(dat, "equipment %s depends on %q, which is not a device, a built-in nor an equipment item", it.Name, d)
			default:
				deps[it.Name] = append(deps[it.Name], d)
			}
		}
		v.schedule(at("calibration"), it.Name, it.Calibration)
		v.schedule(at("maintenance"), it.Name, it.Maintenance)
	}
	// Dependencies must not form a cycle: attribution follows them.
	if cyc := dependencyCycle(deps); len(cyc) > 0 {
		v.add(fmt.Sprintf("equipment.items[%d].depends_on", seen[cyc[0]]), "dependency cycle: %s", strings.Join(cyc, " -> "))
	}
}

func (v *validator) schedule(path, name string, s *Schedule) {
	if s == nil {
		return
	}
	if s.Interval <= 0 {
		v.add(path+".interval", "equipment %s: the interval must be positive, e.g. 4380h", name)
	}
	switch {
	case s.Tolerance < 0:
		v.add(path+".tolerance", "equipment %s: must not be negative", name)
	case s.Interval > 0 && 2*s.Tolerance >= s.Interval:
		v.add(path+".tolerance", "equipment %s: tolerance %s must be less than half the interval %s (windows would overlap)", name, s.Tolerance.D(), s.Interval.D())
	}
	if s.LastDone != "" {
		if _, err := ParseDate(s.LastDone); err != nil {
			v.add(path+".last_done", "equipment %s: %v", name, err)
		}
	} else if s.Reference != "" {
		v.add(path+".reference", "equipment %s: a reference belongs to a last_done date", name)
	}
}

// dependencyCycle returns one cycle (first node repeated at the end), or nil.
func dependencyCycle(deps map[string][]string) []string {
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []string
	var found []string
	var visit func(n string) bool
	visit = func(n string) bool {
		color[n] = grey
		stack = append(stack, n)
		for _, d := range deps[n] {
			switch color[d] {
			case grey:
				for i, s := range stack {
					if s == d {
						found = append(append([]string(nil), stack[i:]...), d)
					}
				}
				return true
			case white:
				if visit(d) {
					return true
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[n] = black
		return false
	}
	keys := make([]string, 0, len(deps))
	for k := range deps {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if color[k] == white && visit(k) {
			return found
		}
	}
	return nil
}
