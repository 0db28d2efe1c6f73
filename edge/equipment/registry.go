// Package equipment is the edge's equipment registry: every
// serialization-critical piece of equipment of the line (printers, cameras,
// PLCs, aggregation stations, the edge server and its link to central), its
// downtime captured at the source (from driver health, or entered by a
// user) with cause, remediation and the affected batch and serial range,
// the reportable-downtime threshold, calibration and preventive maintenance
// schedules with work orders, and the interlock that refuses a batch start
// on equipment whose calibration has lapsed.
//
// The Tracker is the line engine's Equipment hook: it runs on the engine
// goroutine inside the engine's transactions, on the engine's clock, so
// every record it writes is committed with the line state it describes.
// Its own state lives in the store's state bucket under "equipment/".
package equipment

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/serialine/serialine/edge/config"
	"github.com/serialine/serialine/sync/record"
)

// Item is one registered piece of equipment.
type Item struct {
	record.EquipmentItem
	// Calibration and Maintenance are the schedules (nil: none).
	Calibration *Schedule
	Maintenance *Schedule
	// Baselines from the config (last activity before Serialine).
	calBaseline, pmBaseline baseline
}

type baseline struct {
	at        time.Time
	reference string
}

// Schedule is an interval with its tolerance window.
type Schedule struct {
	Interval  time.Duration
	Tolerance time.Duration
}

// Registry is the line's equipment, in a stable order: devices (printers,
// cameras, PLCs), the built-ins, then items that are not devices.
type Registry struct {
	Line  string
	Items []*Item
	byKey map[string]*Item
	// dependents[x] lists equipment that depends on x (directly or not).
	dependents map[string][]string
	// deps[x] lists x's dependencies, nearest first (transitively).
	deps map[string][]string

	ReportableAfter   time.Duration
	DueSoon           time.Duration
	AttributionWindow time.Duration
	OverrideValidFor  time.Duration
	Interlock         map[string]bool
	interlockList     []string
	configHash        string
}

var kindClass = map[string]string{
	"printer":     record.ClassPrint,
	"camera":      record.ClassVerification,
	"plc":         record.ClassVerification,
	"edge_server": record.ClassNetwork,
	"link":        record.ClassNetwork,
}

// NewRegistry builds the registry from a validated line config.
func NewRegistry(cfg *config.Line) (*Registry, error) {
	eq := cfg.Equipment
	r := &Registry{
		Line: cfg.Line.ID, byKey: map[string]*Item{}, dependents: map[string][]string{}, deps: map[string][]string{},
		ReportableAfter: eq.ReportableAfter.D(), DueSoon: eq.DueSoon.D(), AttributionWindow: eq.AttributionWindow.D(),
		OverrideValidFor: eq.OverrideValidFor.D(), Interlock: map[string]bool{}, configHash: cfg.Hash,
	}
	if r.ReportableAfter <= 0 {
		r.ReportableAfter = 4 * time.Hour
	}
	if r.OverrideValidFor <= 0 {
		r.OverrideValidFor = 8 * time.Hour
	}
	for _, c := range eq.Interlock {
		r.Interlock[c] = true
		r.interlockList = append(r.interlockList, c)
	}
	add := func(name, kind, driver string) {
		if _, dup := r.byKey[name]; dup {
			return
		}
		it := &Item{EquipmentItem: record.EquipmentItem{Equipment: name, Kind: kind, Driver: driver, Class: kindClass[kind], Critical: true}}
		r.Items = append(r.Items, it)
		r.byKey[name] = it
	}
	for _, d := range cfg.Devices.Printers {
		add(d.Name, "printer", d.Driver)
	}
	for _, d := range cfg.Devices.Cameras {
		add(d.Name, "camera", d.Driver)
	}
	for _, d := range cfg.Devices.PLCs {
		add(d.Name, "plc", d.Driver)
	}
	add(config.BuiltinEdgeServer, "edge_server", "")
	add(config.BuiltinCentralLink, "link", "")
	for _, ci := range eq.Items {
		if _, ok := r.byKey[ci.Name]; !ok {
			add(ci.Name, "station", "")
		}
		it := r.byKey[ci.Name]
		if ci.Class != "" {
			it.Class = ci.Class
		}
		if ci.Critical != nil {
			it.Critical = *ci.Critical
		}
		it.DependsOn = append([]string(nil), ci.DependsOn...)
		it.Model, it.SerialNo, it.Asset, it.Location = ci.Model, ci.Serial, ci.Asset, ci.Location
		var err error
		if it.Calibration, it.calBaseline, err = schedule(ci.Name, "calibration", ci.Calibration); err != nil {
			return nil, err
		}
		if it.Maintenance, it.pmBaseline, err = schedule(ci.Name, "maintenance", ci.Maintenance); err != nil {
			return nil, err
		}
		it.EquipmentItem.Calibration = recordSchedule(it.Calibration)
		it.EquipmentItem.Maintenance = recordSchedule(it.Maintenance)
	}
	for _, it := range r.Items {
		if it.Class == "" {
			return nil, fmt.Errorf("equipment %s has no class", it.Equipment)
		}
		for _, d := range it.DependsOn {
			if _, ok := r.byKey[d]; !ok {
				return nil, fmt.Errorf("equipment %s depends on unknown equipment %s", it.Equipment, d)
			}
		}
	}
	// Transitive dependencies, nearest first (breadth first); the config
	// validator refuses cycles, the visited set keeps this finite anyway.
	for _, it := range r.Items {
		seen := map[string]bool{it.Equipment: true}
		queue := append([]string(nil), it.DependsOn...)
		for len(queue) > 0 {
			d := queue[0]
			queue = queue[1:]
			if seen[d] {
				continue
			}
			seen[d] = true
			r.deps[it.Equipment] = append(r.deps[it.Equipment], d)
			r.dependents[d] = append(r.dependents[d], it.Equipment)
			queue = append(queue, r.byKey[d].DependsOn...)
		}
	}
	return r, nil
}

func schedule(name, what string, s *config.Schedule) (*Schedule, baseline, error) {
	if s == nil {
		return nil, baseline{}, nil
	}
	if s.Interval <= 0 {
		return nil, baseline{}, fmt.Errorf("equipment %s: %s interval must be positive", name, what)
	}
	var b baseline
	if s.LastDone != "" {
		t, err := config.ParseDate(s.LastDone)
		if err != nil {
			return nil, b, fmt.Errorf("equipment %s: %s last_done: %w", name, what, err)
		}
		b = baseline{at: t, reference: s.Reference}
	}
	return &Schedule{Interval: s.Interval.D(), Tolerance: s.Tolerance.D()}, b, nil
}

func recordSchedule(s *Schedule) *record.Schedule {
	if s == nil {
		return nil
	}
	return &record.Schedule{IntervalS: int64(s.Interval / time.Second), ToleranceS: int64(s.Tolerance / time.Second)}
}

// Get returns the item named name, or nil.
func (r *Registry) Get(name string) *Item { return r.byKey[name] }

// Dependencies lists name's dependencies (transitively), nearest first.
func (r *Registry) Dependencies(name string) []string { return r.deps[name] }

// Dependents lists the equipment that depends on name (transitively).
func (r *Registry) Dependents(name string) []string { return r.dependents[name] }

// Record is the registry as recorded (equipment.registered).
func (r *Registry) Record() record.EquipmentRegistered {
	items := make([]record.EquipmentItem, len(r.Items))
	for i, it := range r.Items {
		items[i] = it.EquipmentItem
	}
	raw, _ := json.Marshal(struct {
		Items     []record.EquipmentItem
		Threshold time.Duration
		Interlock []string
	}{items, r.ReportableAfter, r.interlockList})
	h := sha256.Sum256(raw)
	return record.EquipmentRegistered{
		Line: r.Line, ConfigHash: r.configHash, Hash: hex.EncodeToString(h[:]), Items: items,
		ReportableAfterS: int64(r.ReportableAfter / time.Second), Interlock: append([]string{}, r.interlockList...),
	}
}
