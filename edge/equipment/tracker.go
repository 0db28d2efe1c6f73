package equipment

import (
	"context"
	"encoding/binary"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/serialine/serialine/drivers"
	"github.com/serialine/serialine/edge/config"
	"github.com/serialine/serialine/edge/line"
	"github.com/serialine/serialine/edge/store"
	"github.com/serialine/serialine/sync/record"
)

// Executor runs a function on the line engine's goroutine in one
// transaction (*line.Engine implements it).
type Executor interface {
	EquipmentDo(ctx context.Context, name string, fn func(tx *store.Tx, b line.EquipmentBatch, now time.Time) (any, error)) (any, error)
}

// Timing of the tracker's own bookkeeping.
const (
	// heartbeat is how often the tracker notes that the edge is alive; a
	// gap longer than edgeDownAfter at start-up is a downtime of the edge
	// server itself.
	heartbeat     = 30 * time.Second
	edgeDownAfter = 2 * time.Minute
	// evalEvery is how often schedules are re-evaluated.
	evalEvery = time.Second
	// keepRemediated is how many remediated downtimes the edge keeps for
	// its API (central keeps them all).
	keepRemediated = 50
	// keepUnremediated bounds ended downtimes awaiting remediation; beyond
	// it the oldest non-reportable ones are forgotten by the edge (their
	// records are at central).
	keepUnremediated = 1000
)

// Store keys (state bucket).
var (
	keyGen       = []byte("equipment/gen")
	keyMeta      = []byte("equipment/meta")
	keyOpen      = []byte("equipment/open")
	keyRecent    = []byte("equipment/recent")
	keySchedules = []byte("equipment/schedules")
	keyOverrides = []byte("equipment/overrides")
)

type part uint8

const (
	partMeta part = 1 << iota
	partOpen
	partRecent
	partSchedules
	partOverrides
)

type meta struct {
	Boot          string    `json:"boot"`
	RegistryHash  string    `json:"registry_hash"`
	NextDowntime  uint64    `json:"next_downtime"`
	NextWorkOrder uint64    `json:"next_work_order"`
	AliveAt       time.Time `json:"alive_at,omitzero"`
}

// downtime is a downtime the edge still tracks (open, or ended and not yet
// remediated, or among the last remediated).
type downtime struct {
	ID            string    `json:"id"`
	Equipment     string    `json:"equipment"`
	Class         string    `json:"class"`
	Critical      bool      `json:"critical"`
	Source        string    `json:"source"`
	Fault         string    `json:"fault"`
	Detail        string    `json:"detail,omitempty"`
	Cause         string    `json:"cause,omitempty"`
	CauseDowntime string    `json:"cause_downtime,omitempty"`
	Start         time.Time `json:"start"`
	End           time.Time `json:"end,omitzero"`
	Batch         string    `json:"batch,omitempty"`
	Batches       []string  `json:"batches,omitempty"`
	Position      string    `json:"position,omitempty"`
	InFlight      []string  `json:"in_flight,omitempty"`
	FirstSerial   string    `json:"first_serial,omitempty"`
	LastSerial    string    `json:"last_serial,omitempty"`
	Commissioned  int       `json:"commissioned,omitempty"`
	Reportable    bool      `json:"reportable,omitempty"`
	ReportableAt  time.Time `json:"reportable_at,omitzero"`
	Remediated    bool      `json:"remediated,omitempty"`
	RemediatedBy  string    `json:"remediated_by,omitempty"`
	RootCause     string    `json:"root_cause,omitempty"`
	Remediation   string    `json:"remediation,omitempty"`
	By            string    `json:"by,omitempty"`
}

func (d *downtime) ended() bool { return !d.End.IsZero() }

type override struct {
	record.InterlockOverride
	until time.Time
}

type overrideJSON struct {
	record.InterlockOverride
	Until time.Time `json:"until"`
}

// Options configure a Tracker.
type Options struct {
	Config *config.Line
	// Store, if set, lets Snapshot reload the state after a refused request
	// (reads only; every write happens in the engine's transactions).
	Store *store.DB
	Log   zerolog.Logger
}

// Tracker is the equipment registry's live state and the engine's
// Equipment hook.
type Tracker struct {
	reg  *Registry
	log  zerolog.Logger
	boot string
	exec Executor
	db   *store.DB

	mu        sync.Mutex
	loaded    bool
	gen       uint64
	meta      meta
	open      map[string]*downtime // by equipment
	recent    []*downtime          // ended, oldest first
	sched     map[string]*schedState
	overrides []*override
	dirty     part
	nextEval  time.Time
	lastNow   time.Time
	alarms    []string
}

var _ line.Equipment = (*Tracker)(nil)

// New builds a tracker for a validated line config.
func New(opt Options) (*Tracker, error) {
	reg, err := NewRegistry(opt.Config)
	if err != nil {
		return nil, err
	}
	return &Tracker{
		reg: reg, log: opt.Log.With().Str("line", opt.Config.Line.ID).Str("component", "equipment").Logger(),
		boot: strconv.FormatInt(time.Now().UnixNano(), 36), db: opt.Store,
	}, nil
}

// SetExecutor attaches the line engine (for requests from the API). Call
// it before the engine and the API run.
func (t *Tracker) SetExecutor(x Executor) { t.exec = x }

// Registry is the line's equipment.
func (t *Tracker) Registry() *Registry { return t.reg }

func schedKey(name, activity string) string { return name + "/" + activity }

func refused(format string, a ...any) error { return &line.RuleError{Msg: fmt.Sprintf(format, a...)} }

func ts(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// enter brings the in-memory state up to date with the store: it is
// reloaded when the generation stored differs from ours (a transaction of
// ours was rolled back, or nothing was loaded yet), and the start-up work
// runs once per process. Callers hold t.mu.
func (t *Tracker) enter(tx *store.Tx, b line.EquipmentBatch, now time.Time) error {
	t.lastNow = now
	var g uint64
	if raw := tx.Get(store.State, keyGen); len(raw) == 8 {
		g = binary.BigEndian.Uint64(raw)
	}
	if !t.loaded || g != t.gen {
		if err := t.load(tx, g); err != nil {
			return err
		}
	}
	if t.meta.Boot != t.boot {
		return t.startup(tx, b, now)
	}
	return nil
}

func (t *Tracker) load(tx *store.Tx, gen uint64) error {
	t.meta = meta{}
	t.open = map[string]*downtime{}
	t.recent = nil
	t.sched = map[string]*schedState{}
	t.overrides = nil
	var ovs []overrideJSON
	for _, p := range []struct {
		key []byte
		v   any
	}{{keyMeta, &t.meta}, {keyOpen, &t.open}, {keyRecent, &t.recent}, {keySchedules, &t.sched}, {keyOverrides, &ovs}} {
		if _, err := tx.GetJSON(store.State, p.key, p.v); err != nil {
			return fmt.Errorf("equipment state: %w", err)
		}
	}
	if t.open == nil {
		t.open = map[string]*downtime{}
	}
	if t.sched == nil {
		t.sched = map[string]*schedState{}
	}
	for _, o := range ovs {
		t.overrides = append(t.overrides, &override{InterlockOverride: o.InterlockOverride, until: o.Until})
	}
	t.gen, t.loaded, t.dirty, t.nextEval = gen, true, 0, time.Time{}
	return nil
}

// leave writes the changed parts and a new generation, and refreshes the
// alarms. Callers hold t.mu.
func (t *Tracker) leave(tx *store.Tx) error {
	if err := t.persist(tx); err != nil {
		return err
	}
	t.alarms = t.computeAlarms()
	return nil
}

// persist writes the changed parts and a new generation.
func (t *Tracker) persist(tx *store.Tx) error {
	if t.dirty != 0 {
		var ovs []overrideJSON
		for _, o := range t.overrides {
			ovs = append(ovs, overrideJSON{InterlockOverride: o.InterlockOverride, Until: o.until})
		}
		for _, p := range []struct {
			part part
			key  []byte
			v    any
		}{{partMeta, keyMeta, t.meta}, {partOpen, keyOpen, t.open}, {partRecent, keyRecent, t.recent}, {partSchedules, keySchedules, t.sched}, {partOverrides, keyOverrides, ovs}} {
			if t.dirty&p.part == 0 {
				continue
			}
			if err := tx.PutJSON(store.State, p.key, p.v); err != nil {
				return err
			}
		}
		t.gen++
		if err := tx.Put(store.State, keyGen, binary.BigEndian.AppendUint64(nil, t.gen)); err != nil {
			return err
		}
		t.dirty = 0
	}
	return nil
}

// startup runs once per process: the edge's own downtime while it was not
// running, the registry record, configured baselines, and downtimes of
// equipment no longer registered.
func (t *Tracker) startup(tx *store.Tx, b line.EquipmentBatch, now time.Time) error {
	if alive := t.meta.AliveAt; !alive.IsZero() && now.Sub(alive) > edgeDownAfter && t.open[config.BuiltinEdgeServer] == nil {
		d := t.newDowntime(t.reg.Get(config.BuiltinEdgeServer), "recovered", "edge_not_running",
			fmt.Sprintf("no heartbeat from %s to %s", ts(alive), ts(now)), alive, b, "")
		d.InFlight = nil // the engine settled them at restart (unknown_after_restart)
		if err := t.startDowntime(tx, d); err != nil {
			return err
		}
		if err := t.checkReportable(tx, d, now); err != nil {
			return err
		}
		if err := t.endDowntime(tx, d, now, ""); err != nil {
			return err
		}
	}
	reg := t.reg.Record()
	if reg.Hash != t.meta.RegistryHash {
		if _, err := tx.Append(record.KindEquipmentRegistered, reg); err != nil {
			return err
		}
		t.meta.RegistryHash = reg.Hash
		t.log.Info().Int("items", len(reg.Items)).Str("hash", reg.Hash).Msg("equipment registry recorded")
	}
	for name, d := range t.open {
		if t.reg.Get(name) == nil {
			d.Detail = "equipment removed from the registry"
			if err := t.endDowntime(tx, d, now, "config"); err != nil {
				return err
			}
		}
	}
	for _, it := range t.reg.Items {
		for _, s := range []struct {
			activity string
			sched    *Schedule
			base     baseline
		}{{record.ActivityCalibration, it.Calibration, it.calBaseline}, {record.ActivityMaintenance, it.Maintenance, it.pmBaseline}} {
			if s.sched == nil || s.base.at.IsZero() {
				continue
			}
			st := t.schedule(it.Equipment, s.activity)
			if !st.Last.IsZero() || !st.Due.IsZero() {
				continue // recorded history wins over the configured baseline
			}
			if s.base.at.After(now) {
				t.log.Error().Str("device", it.Equipment).Str("activity", s.activity).Time("last_done", s.base.at).Msg("configured last_done is in the future: baseline ignored")
				continue
			}
			next := s.sched.Next(time.Time{}, s.base.at)
			rec := record.Calibration{Equipment: it.Equipment, Class: it.Class, Activity: s.activity, Performed: ts(s.base.at), Result: "pass",
				NextDue: ts(next), Source: "baseline", Reference: s.base.reference, By: "config"}
			if _, err := tx.Append(record.KindCalibration, rec); err != nil {
				return err
			}
			st.Last, st.Due, st.LastRef, st.Recorded = s.base.at, next, s.base.reference, StateOK
			t.dirty |= partSchedules
		}
	}
	t.meta.Boot = t.boot
	t.meta.AliveAt = now
	t.dirty |= partMeta
	return nil
}

func (t *Tracker) schedule(name, activity string) *schedState {
	k := schedKey(name, activity)
	st := t.sched[k]
	if st == nil {
		st = &schedState{}
		t.sched[k] = st
	}
	return st
}

// Health implements line.Equipment.
func (t *Tracker) Health(tx *store.Tx, device, kind string, h drivers.Health, b line.EquipmentBatch, now time.Time) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.guard(t.health(tx, device, kind, h, b, now))
}

func (t *Tracker) health(tx *store.Tx, device, kind string, h drivers.Health, b line.EquipmentBatch, now time.Time) error {
	if err := t.enter(tx, b, now); err != nil {
		return err
	}
	it := t.reg.Get(device)
	if it == nil {
		return t.leave(tx)
	}
	d := t.open[device]
	switch {
	case !h.OK() && d == nil:
		fault := h.Fault
		if fault == "" {
			fault = "disconnected"
		}
		d = t.newDowntime(it, "driver", fault, h.Detail, now, b, "")
		if err := t.startDowntime(tx, d); err != nil {
			return err
		}
	case h.OK() && d != nil && d.Source == "driver":
		if err := t.checkReportable(tx, d, now); err != nil {
			return err
		}
		if err := t.endDowntime(tx, d, now, ""); err != nil {
			return err
		}
	}
	return t.leave(tx)
}

// Commissioned implements line.Equipment: units commissioned while
// equipment is down are the downtime's affected serials.
func (t *Tracker) Commissioned(tx *store.Tx, b line.EquipmentBatch, serial string, now time.Time) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.guard(t.commissioned(tx, b, serial, now))
}

func (t *Tracker) commissioned(tx *store.Tx, b line.EquipmentBatch, serial string, now time.Time) error {
	if err := t.enter(tx, b, now); err != nil {
		return err
	}
	batch := b.ID
	for _, d := range t.open {
		if d.FirstSerial == "" {
			d.FirstSerial = serial
		}
		d.LastSerial = serial
		d.Commissioned++
		if !contains(d.Batches, batch) {
			d.Batches = append(d.Batches, batch)
		}
		t.dirty |= partOpen
	}
	return t.persist(tx) // the alarms do not change with a commissioned unit
}

// Tick implements line.Equipment: the reportable threshold, schedules and
// the heartbeat.
func (t *Tracker) Tick(tx *store.Tx, b line.EquipmentBatch, now time.Time) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.guard(t.tick(tx, b, now))
}

func (t *Tracker) tick(tx *store.Tx, b line.EquipmentBatch, now time.Time) error {
	if err := t.enter(tx, b, now); err != nil {
		return err
	}
	for _, name := range t.openNames() {
		if err := t.checkReportable(tx, t.open[name], now); err != nil {
			return err
		}
	}
	if !now.Before(t.nextEval) {
		if err := t.evaluate(tx, now); err != nil {
			return err
		}
	}
	if now.Sub(t.meta.AliveAt) >= heartbeat || now.Before(t.meta.AliveAt) {
		t.meta.AliveAt = now
		t.dirty |= partMeta
	}
	return t.leave(tx)
}

// guard forgets the in-memory state when a hook fails: the engine's
// transaction is rolled back, so the state is reloaded from the store.
func (t *Tracker) guard(err error) error {
	if err != nil {
		t.loaded = false
	}
	return err
}

// Alarms implements line.Equipment.
func (t *Tracker) Alarms() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.alarms...)
}

// Alarm codes.
const (
	AlarmReportable         = "downtime_reportable"
	AlarmCalibrationOverdue = "calibration_overdue"
	AlarmMaintenanceOverdue = "maintenance_overdue"
)

func (t *Tracker) computeAlarms() []string {
	var out []string
	seen := map[string]bool{}
	addDT := func(d *downtime) {
		if d.Reportable && !(d.ended() && d.Remediated) {
			a := AlarmReportable + ":" + d.Equipment + ":" + d.ID
			if !seen[a] {
				seen[a] = true
				out = append(out, a)
			}
		}
	}
	for _, name := range t.openNames() {
		addDT(t.open[name])
	}
	for _, d := range t.recent {
		addDT(d)
	}
	for _, it := range t.reg.Items {
		for _, s := range []struct {
			activity, code string
			sched          *Schedule
		}{{record.ActivityCalibration, AlarmCalibrationOverdue, it.Calibration}, {record.ActivityMaintenance, AlarmMaintenanceOverdue, it.Maintenance}} {
			if s.sched == nil {
				continue
			}
			st := t.sched[schedKey(it.Equipment, s.activity)]
			if st == nil {
				st = &schedState{}
			}
			if Lapsed(s.sched.State(*st, t.lastNow, t.reg.DueSoon)) {
				out = append(out, s.code+":"+it.Equipment)
			}
		}
	}
	return out
}

func (t *Tracker) openNames() []string {
	names := make([]string, 0, len(t.open))
	for n := range t.open {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// evaluate records schedule transitions (due soon, due, overdue, never,
// failed) once each and opens a work order when one is needed.
func (t *Tracker) evaluate(tx *store.Tx, now time.Time) error {
	t.nextEval = now.Add(evalEvery)
	for _, it := range t.reg.Items {
		for _, s := range []struct {
			activity string
			sched    *Schedule
		}{{record.ActivityCalibration, it.Calibration}, {record.ActivityMaintenance, it.Maintenance}} {
			if s.sched == nil {
				continue
			}
			st := t.schedule(it.Equipment, s.activity)
			state := s.sched.State(*st, now, t.reg.DueSoon)
			if state == st.Recorded || (state == StateOK && st.Recorded == "") {
				continue
			}
			if state != StateOK && st.WorkOrder == "" {
				t.meta.NextWorkOrder++
				st.WorkOrder = fmt.Sprintf("WO-%06d", t.meta.NextWorkOrder)
				wo := record.WorkOrder{ID: st.WorkOrder, Equipment: it.Equipment, Class: it.Class, Activity: s.activity, State: "open"}
				if !st.Due.IsZero() {
					wo.Due, wo.WindowFrom, wo.WindowTo = ts(st.Due), ts(st.Due.Add(-s.sched.Tolerance)), ts(st.Due.Add(s.sched.Tolerance))
				}
				if _, err := tx.Append(record.KindWorkOrder, wo); err != nil {
					return err
				}
				t.dirty |= partMeta
				t.log.Info().Str("device", it.Equipment).Str("activity", s.activity).Str("work_order", wo.ID).Str("due", wo.Due).Msg("work order opened")
			}
			if state != StateOK {
				body := record.EquipmentDue{Equipment: it.Equipment, Class: it.Class, Activity: s.activity, State: state,
					Due: ts(st.Due), WindowTo: ts(s.sched.WindowTo(st.Due)), WorkOrder: st.WorkOrder}
				if _, err := tx.Append(record.KindEquipmentDue, body); err != nil {
					return err
				}
				ev := t.log.Info()
				if Lapsed(state) {
					ev = t.log.Warn()
				}
				ev.Str("device", it.Equipment).Str("activity", s.activity).Str("state", state).Str("due", body.Due).Msg("equipment schedule changed")
			}
			st.Recorded = state
			t.dirty |= partSchedules
		}
	}
	return nil
}

// newDowntime builds a downtime starting at start, attributed to a
// dependency that is down.
func (t *Tracker) newDowntime(it *Item, source, fault, detail string, start time.Time, b line.EquipmentBatch, by string) *downtime {
	t.meta.NextDowntime++
	t.dirty |= partMeta
	d := &downtime{
		ID: fmt.Sprintf("DT-%06d", t.meta.NextDowntime), Equipment: it.Equipment, Class: it.Class, Critical: it.Critical,
		Source: source, Fault: fault, Detail: detail, Start: start, By: by,
	}
	if b.Producing() {
		d.Batch, d.Batches, d.Position, d.InFlight = b.ID, []string{b.ID}, b.LastSerial, append([]string(nil), b.InFlight...)
	}
	for _, dep := range t.reg.Dependencies(it.Equipment) {
		if od := t.open[dep]; od != nil {
			d.Cause, d.CauseDowntime = od.Equipment, od.ID
			if od.Cause != "" {
				d.Cause, d.CauseDowntime = od.Cause, od.CauseDowntime
			}
			break
		}
	}
	return d
}

func (t *Tracker) startDowntime(tx *store.Tx, d *downtime) error {
	if _, err := tx.Append(record.KindDowntimeStarted, record.DowntimeStarted{
		ID: d.ID, Equipment: d.Equipment, Class: d.Class, Critical: d.Critical, Source: d.Source, Fault: d.Fault, Detail: d.Detail,
		Cause: d.Cause, CauseDowntime: d.CauseDowntime, Start: ts(d.Start), Batch: d.Batch, Position: d.Position, InFlight: d.InFlight, By: d.By,
	}); err != nil {
		return err
	}
	t.open[d.Equipment] = d
	t.dirty |= partOpen
	t.log.Warn().Str("device", d.Equipment).Str("downtime", d.ID).Str("class", d.Class).Str("fault", d.Fault).Str("cause", d.Cause).Str("batch", d.Batch).Msg("equipment down")
	// Equipment that depends on this one and went down just before it is
	// attributed to it (the camera noticed before the PLC poll did).
	if d.Cause == "" {
		for _, name := range t.reg.Dependents(d.Equipment) {
			od := t.open[name]
			if od != nil && od.Cause == "" && !od.Reportable && d.Start.Sub(od.Start) <= t.reg.AttributionWindow && !od.Start.After(d.Start) {
				od.Cause, od.CauseDowntime = d.Equipment, d.ID
				t.log.Info().Str("device", od.Equipment).Str("downtime", od.ID).Str("cause", d.Equipment).Msg("downtime attributed to a dependency")
			}
		}
	}
	return nil
}

// reportableCandidate: critical equipment that is the root cause (or whose
// cause is not critical itself).
func (t *Tracker) reportableCandidate(d *downtime) bool {
	if !d.Critical {
		return false
	}
	if d.Cause == "" {
		return true
	}
	c := t.reg.Get(d.Cause)
	return c == nil || !c.Critical
}

func (t *Tracker) checkReportable(tx *store.Tx, d *downtime, now time.Time) error {
	if d.Reportable || !t.reportableCandidate(d) {
		return nil
	}
	end := now
	if d.ended() {
		end = d.End
	}
	if end.Sub(d.Start) < t.reg.ReportableAfter {
		return nil
	}
	at := d.Start.Add(t.reg.ReportableAfter)
	d.Reportable, d.ReportableAt = true, at
	if _, err := tx.Append(record.KindDowntimeReportable, record.DowntimeReportable{
		ID: d.ID, Equipment: d.Equipment, Class: d.Class, Fault: d.Fault, Start: ts(d.Start), At: ts(at),
		ThresholdS: int64(t.reg.ReportableAfter / time.Second), Batch: d.Batch, Position: d.Position, InFlight: d.InFlight,
	}); err != nil {
		return err
	}
	msg := fmt.Sprintf("downtime %s of %s (%s, %s) since %s has lasted %s: FDA-reportable", d.ID, d.Equipment, d.Class, d.Fault, ts(d.Start), t.reg.ReportableAfter)
	if _, err := tx.Append(record.KindAlarm, record.Alarm{Code: AlarmReportable, Active: true, Message: msg}); err != nil {
		return err
	}
	t.dirty |= partOpen | partRecent
	t.log.Error().Str("device", d.Equipment).Str("downtime", d.ID).Str("batch", d.Batch).Msg(msg)
	return nil
}

func (t *Tracker) endDowntime(tx *store.Tx, d *downtime, now time.Time, by string) error {
	if now.Before(d.Start) {
		now = d.Start
	}
	d.End = now
	if by != "" {
		d.By = by
	}
	body := record.DowntimeEnded{
		ID: d.ID, Equipment: d.Equipment, Class: d.Class, Critical: d.Critical, Source: d.Source, Fault: d.Fault,
		Cause: d.Cause, CauseDowntime: d.CauseDowntime, Start: ts(d.Start), End: ts(d.End), DurationS: d.End.Sub(d.Start).Seconds(),
		Batch: d.Batch, Batches: d.Batches, FirstSerial: d.FirstSerial, LastSerial: d.LastSerial, Commissioned: d.Commissioned,
		Reportable: d.Reportable, By: by,
	}
	body.SerialFrom, body.SerialTo = serialRange(d)
	if _, err := tx.Append(record.KindDowntimeEnded, body); err != nil {
		return err
	}
	delete(t.open, d.Equipment)
	t.recent = append(t.recent, d)
	t.trimRecent()
	t.dirty |= partOpen | partRecent
	t.log.Info().Str("device", d.Equipment).Str("downtime", d.ID).Dur("duration", d.End.Sub(d.Start)).Bool("reportable", d.Reportable).Msg("equipment up")
	if d.Reportable && d.Remediated {
		return t.clearReportable(tx, d)
	}
	return nil
}

func (t *Tracker) clearReportable(tx *store.Tx, d *downtime) error {
	_, err := tx.Append(record.KindAlarm, record.Alarm{Code: AlarmReportable, Active: false,
		Message: fmt.Sprintf("reportable downtime %s of %s ended and remediated", d.ID, d.Equipment)})
	return err
}

// serialRange is the affected range of a downtime (see record.DowntimeEnded).
func serialRange(d *downtime) (from, to string) {
	switch {
	case len(d.InFlight) > 0:
		from = d.InFlight[0]
	case d.FirstSerial != "":
		from = d.FirstSerial
	default:
		from = d.Position
	}
	switch {
	case d.LastSerial != "":
		to = d.LastSerial
	case len(d.InFlight) > 0:
		to = d.InFlight[len(d.InFlight)-1]
	default:
		to = d.Position
	}
	return from, to
}

func (t *Tracker) trimRecent() {
	var remediated, waiting int
	for _, d := range t.recent {
		if d.Remediated {
			remediated++
		} else {
			waiting++
		}
	}
	out := t.recent[:0]
	for _, d := range t.recent {
		switch {
		case d.Remediated && remediated > keepRemediated:
			remediated--
		case !d.Remediated && !d.Reportable && waiting > keepUnremediated:
			waiting--
		default:
			out = append(out, d)
		}
	}
	t.recent = out
}

func (t *Tracker) findDowntime(id string) *downtime {
	for _, d := range t.open {
		if d.ID == id {
			return d
		}
	}
	for _, d := range t.recent {
		if d.ID == id {
			return d
		}
	}
	return nil
}

// blocked lists the interlocked equipment whose calibration has lapsed.
func (t *Tracker) blocked(now time.Time) []record.OverriddenItem {
	var out []record.OverriddenItem
	for _, it := range t.reg.Items {
		if it.Calibration == nil || !t.reg.Interlock[it.Class] {
			continue
		}
		st := t.sched[schedKey(it.Equipment, record.ActivityCalibration)]
		if st == nil {
			st = &schedState{}
		}
		if state := it.Calibration.State(*st, now, t.reg.DueSoon); Lapsed(state) {
			out = append(out, record.OverriddenItem{Equipment: it.Equipment, Class: it.Class, State: state, Due: ts(st.Due)})
		}
	}
	return out
}

func (t *Tracker) states(now time.Time) []record.EquipmentState {
	out := make([]record.EquipmentState, 0, len(t.reg.Items))
	for _, it := range t.reg.Items {
		s := record.EquipmentState{Equipment: it.Equipment, Class: it.Class, Status: "up"}
		if d := t.open[it.Equipment]; d != nil {
			s.Status, s.Downtime = "down", d.ID
		}
		s.Calibration = t.scheduleState(it, record.ActivityCalibration, it.Calibration, now)
		s.Maintenance = t.scheduleState(it, record.ActivityMaintenance, it.Maintenance, now)
		out = append(out, s)
	}
	return out
}

func (t *Tracker) scheduleState(it *Item, activity string, sc *Schedule, now time.Time) *record.ScheduleState {
	if sc == nil {
		return nil
	}
	st := t.sched[schedKey(it.Equipment, activity)]
	if st == nil {
		st = &schedState{}
	}
	return &record.ScheduleState{State: sc.State(*st, now, t.reg.DueSoon), Due: ts(st.Due), WindowTo: ts(sc.WindowTo(st.Due)), Last: ts(st.Last), LastRef: st.LastRef}
}

// CheckStart implements line.Equipment: the calibration interlock. Every
// start records the state of every device (equipment.check); a start on
// lapsed calibration of an interlocked class is refused unless QA signed an
// override for this batch.
func (t *Tracker) CheckStart(tx *store.Tx, b line.EquipmentBatch, by string, now time.Time) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.guard(t.checkStart(tx, b, by, now))
}

func (t *Tracker) checkStart(tx *store.Tx, b line.EquipmentBatch, by string, now time.Time) error {
	if err := t.enter(tx, b, now); err != nil {
		return err
	}
	if err := t.evaluate(tx, now); err != nil {
		return err
	}
	check := record.EquipmentCheck{Batch: b.ID, Items: t.states(now)}
	blocked := t.blocked(now)
	if len(blocked) > 0 {
		ov := t.overrideFor(b.ID, blocked, now)
		if ov == nil {
			return refused("batch %s cannot start: %s. Record the calibration with its certificate, or have QA sign an interlock override for this batch", b.ID, describeBlocked(blocked, t.reg))
		}
		o := ov.InterlockOverride
		check.Override = &o
		for _, x := range blocked {
			check.Blocked = append(check.Blocked, x.Equipment)
		}
		t.log.Warn().Str("batch", b.ID).Strs("equipment", check.Blocked).Str("qa", o.Signature.User).Msg("batch started on lapsed calibration under a QA override")
	}
	if _, err := tx.Append(record.KindEquipmentCheck, check); err != nil {
		return err
	}
	return t.leave(tx)
}

func describeBlocked(list []record.OverriddenItem, reg *Registry) string {
	var s string
	for i, x := range list {
		if i > 0 {
			s += "; "
		}
		it := reg.Get(x.Equipment)
		switch x.State {
		case StateNever:
			s += fmt.Sprintf("%s (%s) has no recorded calibration", x.Equipment, x.Class)
		case StateFailed:
			s += fmt.Sprintf("the last calibration of %s (%s) failed", x.Equipment, x.Class)
		default:
			due, _ := time.Parse(time.RFC3339Nano, x.Due)
			s += fmt.Sprintf("calibration of %s (%s) was due %s and is overdue since %s", x.Equipment, x.Class,
				due.UTC().Format("2006-01-02 15:04 MST"), it.Calibration.WindowTo(due).UTC().Format("2006-01-02 15:04 MST"))
		}
	}
	return s
}

// overrideFor returns a valid override of batch covering every blocked item
// (same equipment and due date), or nil.
func (t *Tracker) overrideFor(batch string, blocked []record.OverriddenItem, now time.Time) *override {
	for _, o := range t.overrides {
		if o.Batch != batch || now.After(o.until) {
			continue
		}
		covered := map[string]string{}
		for _, x := range o.Items {
			covered[x.Equipment] = x.Due
		}
		ok := true
		for _, x := range blocked {
			if due, in := covered[x.Equipment]; !in || due != x.Due {
				ok = false
			}
		}
		if ok {
			return o
		}
	}
	return nil
}
