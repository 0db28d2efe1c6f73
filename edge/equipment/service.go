package equipment

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/serialine/serialine/edge/line"
	"github.com/serialine/serialine/edge/store"
	"github.com/serialine/serialine/sync/record"
)

// MaxCertificate bounds a calibration certificate: it travels inside the
// signed calibration record (record.MaxBody is 1 MiB, and base64 adds a
// third).
const MaxCertificate = 512 << 10

// CertificateTypes are the accepted certificate formats (viewable in a browser).
var CertificateTypes = []string{"application/pdf", "image/png", "image/jpeg", "text/plain"}

// ErrNotAttached: the tracker has no engine to run requests on.
var ErrNotAttached = errors.New("equipment: no line engine attached")

func (t *Tracker) do(ctx context.Context, name string, fn func(tx *store.Tx, b line.EquipmentBatch, now time.Time) (any, error)) (any, error) {
	if t.exec == nil {
		return nil, ErrNotAttached
	}
	return t.exec.EquipmentDo(ctx, name, func(tx *store.Tx, b line.EquipmentBatch, now time.Time) (any, error) {
		t.mu.Lock()
		defer t.mu.Unlock()
		if err := t.enter(tx, b, now); err != nil {
			return nil, err
		}
		v, err := fn(tx, b, now)
		if err == nil {
			err = t.leave(tx)
		}
		if err != nil {
			t.loaded = false // the transaction is rolled back: reload next time
			return nil, err
		}
		return v, nil
	})
}

// ManualDowntime is a downtime entered by a user.
type ManualDowntime struct {
	Equipment string
	Fault     string // short cause, e.g. "jam", "planned_maintenance"
	Detail    string
	Start     time.Time // zero: now; never in the future
	By        string
}

// StartDowntime records a manual downtime and returns its id.
func (t *Tracker) StartDowntime(ctx context.Context, m ManualDowntime) (string, error) {
	v, err := t.do(ctx, "downtime start", func(tx *store.Tx, b line.EquipmentBatch, now time.Time) (any, error) {
		it := t.reg.Get(m.Equipment)
		if it == nil {
			return nil, refused("unknown equipment %q", m.Equipment)
		}
		if m.Fault == "" {
			return nil, refused("a downtime needs a fault (what stopped %s)", m.Equipment)
		}
		if d := t.open[m.Equipment]; d != nil {
			return nil, refused("%s is already down since %s (%s, %s)", m.Equipment, ts(d.Start), d.ID, d.Fault)
		}
		start := m.Start
		if start.IsZero() {
			start = now
		}
		if start.After(now) {
			return nil, refused("downtime start %s is in the future", ts(start))
		}
		d := t.newDowntime(it, "manual", m.Fault, m.Detail, start, b, m.By)
		if err := t.startDowntime(tx, d); err != nil {
			return nil, err
		}
		if err := t.checkReportable(tx, d, now); err != nil {
			return nil, err
		}
		return d.ID, nil
	})
	if err != nil {
		return "", err
	}
	return v.(string), nil
}

// EndDowntime ends a manual downtime (end zero: now).
func (t *Tracker) EndDowntime(ctx context.Context, id string, end time.Time, by string) error {
	_, err := t.do(ctx, "downtime end", func(tx *store.Tx, b line.EquipmentBatch, now time.Time) (any, error) {
		d := t.findDowntime(id)
		switch {
		case d == nil:
			return nil, refused("unknown downtime %q", id)
		case d.ended():
			return nil, refused("downtime %s already ended at %s", id, ts(d.End))
		case d.Source != "manual":
			return nil, refused("downtime %s of %s was detected from the driver (%s): it ends when the device recovers", id, d.Equipment, d.Fault)
		}
		if end.IsZero() {
			end = now
		}
		if end.After(now) || end.Before(d.Start) {
			return nil, refused("downtime %s end %s: want between its start %s and now", id, ts(end), ts(d.Start))
		}
		d.End = end // for the threshold check
		if err := t.checkReportable(tx, d, now); err != nil {
			return nil, err
		}
		return nil, t.endDowntime(tx, d, end, by)
	})
	return err
}

// Remediate records the root cause and remediation of a downtime with the
// signer's e-signature.
func (t *Tracker) Remediate(ctx context.Context, id, rootCause, remediation string, sig *record.Signature) error {
	_, err := t.do(ctx, "downtime remediation", func(tx *store.Tx, b line.EquipmentBatch, now time.Time) (any, error) {
		d := t.findDowntime(id)
		switch {
		case d == nil:
			return nil, refused("unknown downtime %q (the edge keeps open downtimes and those awaiting remediation)", id)
		case d.Remediated:
			return nil, refused("downtime %s is already remediated (signed by %s)", id, d.RemediatedBy)
		case strings.TrimSpace(rootCause) == "" || strings.TrimSpace(remediation) == "":
			return nil, refused("downtime %s: root cause and remediation are both required", id)
		case sig == nil:
			return nil, refused("downtime %s: the remediation needs an e-signature", id)
		}
		if _, err := tx.Append(record.KindDowntimeRemediated, record.DowntimeRemediated{
			ID: d.ID, Equipment: d.Equipment, Class: d.Class, Batch: d.Batch, Start: ts(d.Start), End: ts(d.End),
			RootCause: rootCause, Remediation: remediation, Signature: sig,
		}); err != nil {
			return nil, err
		}
		d.Remediated, d.RemediatedBy, d.RootCause, d.Remediation = true, sig.User, rootCause, remediation
		t.dirty |= partOpen | partRecent
		if d.ended() {
			t.trimRecent()
			if d.Reportable {
				return nil, t.clearReportable(tx, d)
			}
		}
		return nil, nil
	})
	return err
}

// CertificateFile is an uploaded calibration certificate.
type CertificateFile struct {
	Name        string
	ContentType string
	Data        []byte
}

// Activity is a completed calibration or maintenance.
type Activity struct {
	Equipment string
	Activity  string // calibration, maintenance
	WorkOrder string // optional: the open work order is used when empty
	Performed time.Time
	Result    string // pass, fail
	Results   []record.CalibrationResult
	Notes     string
	// Certificate is required for calibrations.
	Certificate *CertificateFile
	Signature   *record.Signature
	By          string
}

// CheckCertificate validates a certificate file: size, declared type, and
// that the bytes are of that type.
func CheckCertificate(c *CertificateFile) error {
	if c == nil {
		return errors.New("certificate required")
	}
	if c.Name == "" {
		return errors.New("certificate: a file name is required")
	}
	if len(c.Data) == 0 {
		return fmt.Errorf("certificate %s is empty", c.Name)
	}
	if len(c.Data) > MaxCertificate {
		return fmt.Errorf("certificate %s is %d bytes; the limit is %d bytes (%d KiB) because it travels in the signed calibration record: attach a smaller scan", c.Name, len(c.Data), MaxCertificate, MaxCertificate>>10)
	}
	known := false
	for _, ct := range CertificateTypes {
		known = known || ct == c.ContentType
	}
	if !known {
		return fmt.Errorf("certificate %s: content type %q: want one of %s", c.Name, c.ContentType, strings.Join(CertificateTypes, ", "))
	}
	sniffed, _, _ := strings.Cut(http.DetectContentType(c.Data), ";")
	if sniffed != c.ContentType {
		return fmt.Errorf("certificate %s is declared %s but its bytes look like %s", c.Name, c.ContentType, sniffed)
	}
	return nil
}

// Record records a completed calibration or maintenance and returns the
// record body as written (the certificate's SHA-256 included).
func (t *Tracker) Record(ctx context.Context, a Activity) (record.Calibration, error) {
	v, err := t.do(ctx, "calibration", func(tx *store.Tx, b line.EquipmentBatch, now time.Time) (any, error) {
		it := t.reg.Get(a.Equipment)
		if it == nil {
			return nil, refused("unknown equipment %q", a.Equipment)
		}
		var sc *Schedule
		switch a.Activity {
		case record.ActivityCalibration:
			sc = it.Calibration
		case record.ActivityMaintenance:
			sc = it.Maintenance
		default:
			return nil, refused("activity %q: want calibration or maintenance", a.Activity)
		}
		if a.Result != "pass" && a.Result != "fail" {
			return nil, refused("%s of %s: result %q: want pass or fail", a.Activity, a.Equipment, a.Result)
		}
		if a.Signature == nil {
			return nil, refused("%s of %s needs the technician's e-signature", a.Activity, a.Equipment)
		}
		if a.Activity == record.ActivityCalibration || a.Certificate != nil {
			if err := CheckCertificate(a.Certificate); err != nil {
				return nil, refused("%s of %s: %v", a.Activity, a.Equipment, err)
			}
		}
		performed := a.Performed
		if performed.IsZero() {
			performed = now
		}
		st := t.schedule(a.Equipment, a.Activity)
		switch {
		case performed.After(now):
			return nil, refused("%s of %s: performed %s is in the future", a.Activity, a.Equipment, ts(performed))
		case !st.Last.IsZero() && performed.Before(st.Last):
			return nil, refused("%s of %s: performed %s is before the last one recorded (%s)", a.Activity, a.Equipment, ts(performed), ts(st.Last))
		case a.WorkOrder != "" && a.WorkOrder != st.WorkOrder:
			open := st.WorkOrder
			if open == "" {
				open = "none"
			}
			return nil, refused("%s of %s: work order %s is not open for it (open: %s)", a.Activity, a.Equipment, a.WorkOrder, open)
		}
		rec := record.Calibration{Equipment: a.Equipment, Class: it.Class, Activity: a.Activity, WorkOrder: st.WorkOrder,
			Performed: ts(performed), Result: a.Result, Results: a.Results, Notes: a.Notes, Due: ts(st.Due), Signature: a.Signature, By: a.By}
		ref := st.WorkOrder
		if c := a.Certificate; c != nil {
			sum := sha256.Sum256(c.Data)
			rec.Certificate = &record.Certificate{Name: c.Name, ContentType: c.ContentType, Size: len(c.Data), SHA256: hex.EncodeToString(sum[:]), Data: c.Data}
			ref = rec.Certificate.SHA256
		}
		if a.Result == "pass" && sc != nil {
			rec.NextDue = ts(sc.Next(st.Due, performed))
		}
		if _, err := tx.Append(record.KindCalibration, rec); err != nil {
			return nil, err
		}
		st.Last, st.LastRef, st.WorkOrder = performed, ref, ""
		if a.Result == "pass" {
			st.Failed = false
			if sc != nil {
				st.Due = sc.Next(st.Due, performed)
				st.Recorded = StateOK
			}
		} else {
			st.Failed, st.Recorded = true, ""
		}
		t.dirty |= partSchedules
		t.nextEval = time.Time{} // a failed calibration is recorded (and a new work order opened) at once
		if err := t.evaluate(tx, now); err != nil {
			return nil, err
		}
		t.log.Info().Str("device", a.Equipment).Str("activity", a.Activity).Str("result", a.Result).Str("next_due", rec.NextDue).Str("by", a.Signature.User).Msg("equipment activity recorded")
		return rec, nil
	})
	if err != nil {
		return record.Calibration{}, err
	}
	return v.(record.Calibration), nil
}

// Override records QA's signed override of the calibration interlock for
// one batch: it covers the equipment lapsed now (with their due dates) and
// stays usable for the configured time.
func (t *Tracker) Override(ctx context.Context, batch, reason string, sig *record.Signature) (record.InterlockOverride, error) {
	v, err := t.do(ctx, "interlock override", func(tx *store.Tx, b line.EquipmentBatch, now time.Time) (any, error) {
		if batch == "" {
			return nil, refused("an override names the batch it is for")
		}
		if strings.TrimSpace(reason) == "" || sig == nil {
			return nil, refused("an interlock override needs QA's e-signature and a reason")
		}
		if err := t.evaluate(tx, now); err != nil {
			return nil, err
		}
		blocked := t.blocked(now)
		if len(blocked) == 0 {
			return nil, refused("nothing to override: no lapsed calibration blocks a batch start on line %s", t.reg.Line)
		}
		until := now.Add(t.reg.OverrideValidFor)
		o := record.InterlockOverride{Batch: batch, Items: blocked, Reason: reason, ValidUntil: ts(until), Signature: sig}
		if _, err := tx.Append(record.KindInterlockOverride, o); err != nil {
			return nil, err
		}
		kept := t.overrides[:0]
		for _, x := range t.overrides {
			if now.Before(x.until) {
				kept = append(kept, x)
			}
		}
		t.overrides = append(kept, &override{InterlockOverride: o, until: until})
		t.dirty |= partOverrides
		t.log.Warn().Str("batch", batch).Str("qa", sig.User).Str("reason", reason).Msg("calibration interlock override signed")
		return o, nil
	})
	if err != nil {
		return record.InterlockOverride{}, err
	}
	return v.(record.InterlockOverride), nil
}

// View is the registry with its live state, for the API.
type View struct {
	Line       string                     `json:"line"`
	At         string                     `json:"at"`
	Items      []ItemView                 `json:"items"`
	Open       []DowntimeView             `json:"open_downtime"`
	Recent     []DowntimeView             `json:"recent_downtime"`
	WorkOrders []WorkOrderView            `json:"work_orders"`
	Overrides  []record.InterlockOverride `json:"overrides,omitempty"`
	Alarms     []string                   `json:"alarms"`
	Interlock  []string                   `json:"interlock"`
	// ReportableAfter is the reportable downtime threshold.
	ReportableAfter string `json:"reportable_after"`
}

// ItemView is one equipment with its state.
type ItemView struct {
	record.EquipmentItem
	Status         string                `json:"status"`
	Downtime       string                `json:"downtime,omitempty"`
	CalibrationNow *record.ScheduleState `json:"calibration_state,omitempty"`
	MaintenanceNow *record.ScheduleState `json:"maintenance_state,omitempty"`
}

// DowntimeView is a downtime as the API shows it.
type DowntimeView struct {
	ID           string   `json:"id"`
	Equipment    string   `json:"equipment"`
	Class        string   `json:"class"`
	Critical     bool     `json:"critical"`
	Source       string   `json:"source"`
	Fault        string   `json:"fault"`
	Detail       string   `json:"detail,omitempty"`
	Cause        string   `json:"cause,omitempty"`
	Start        string   `json:"start"`
	End          string   `json:"end,omitempty"`
	DurationS    float64  `json:"duration_s"`
	Batch        string   `json:"batch,omitempty"`
	SerialFrom   string   `json:"serial_from,omitempty"`
	SerialTo     string   `json:"serial_to,omitempty"`
	InFlight     []string `json:"in_flight,omitempty"`
	Commissioned int      `json:"commissioned"`
	Reportable   bool     `json:"reportable"`
	Remediated   bool     `json:"remediated"`
	RootCause    string   `json:"root_cause,omitempty"`
	Remediation  string   `json:"remediation,omitempty"`
}

// WorkOrderView is an open work order.
type WorkOrderView struct {
	ID        string `json:"id"`
	Equipment string `json:"equipment"`
	Activity  string `json:"activity"`
	Due       string `json:"due,omitempty"`
	State     string `json:"state"`
}

func (t *Tracker) downtimeView(d *downtime, now time.Time) DowntimeView {
	end := now
	if d.ended() {
		end = d.End
	}
	from, to := serialRange(d)
	return DowntimeView{ID: d.ID, Equipment: d.Equipment, Class: d.Class, Critical: d.Critical, Source: d.Source, Fault: d.Fault, Detail: d.Detail,
		Cause: d.Cause, Start: ts(d.Start), End: ts(d.End), DurationS: end.Sub(d.Start).Seconds(), Batch: d.Batch, SerialFrom: from, SerialTo: to,
		InFlight: d.InFlight, Commissioned: d.Commissioned, Reportable: d.Reportable, Remediated: d.Remediated, RootCause: d.RootCause, Remediation: d.Remediation}
}

// Snapshot returns the registry and its state as of the engine's last step.
func (t *Tracker) Snapshot() View {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.loaded && t.db != nil {
		err := t.db.View(func(tx *store.Tx) error {
			var g uint64
			if raw := tx.Get(store.State, keyGen); len(raw) == 8 {
				g = binary.BigEndian.Uint64(raw)
			}
			return t.load(tx, g)
		})
		if err != nil {
			t.log.Error().Err(err).Msg("equipment state does not load")
		} else {
			t.alarms = t.computeAlarms()
		}
	}
	now := t.lastNow
	v := View{Line: t.reg.Line, At: ts(now), Alarms: append([]string{}, t.alarms...), Interlock: append([]string{}, t.reg.interlockList...),
		ReportableAfter: t.reg.ReportableAfter.String(), Open: []DowntimeView{}, Recent: []DowntimeView{}, WorkOrders: []WorkOrderView{}}
	if !t.loaded {
		for _, it := range t.reg.Items {
			v.Items = append(v.Items, ItemView{EquipmentItem: it.EquipmentItem, Status: "unknown"})
		}
		return v
	}
	for _, s := range t.states(now) {
		it := t.reg.Get(s.Equipment)
		v.Items = append(v.Items, ItemView{EquipmentItem: it.EquipmentItem, Status: s.Status, Downtime: s.Downtime, CalibrationNow: s.Calibration, MaintenanceNow: s.Maintenance})
		for _, a := range []string{record.ActivityCalibration, record.ActivityMaintenance} {
			if st := t.sched[schedKey(it.Equipment, a)]; st != nil && st.WorkOrder != "" {
				state := StateOK
				if ss := s.Calibration; a == record.ActivityMaintenance {
					ss = s.Maintenance
					if ss != nil {
						state = ss.State
					}
				} else if ss != nil {
					state = ss.State
				}
				v.WorkOrders = append(v.WorkOrders, WorkOrderView{ID: st.WorkOrder, Equipment: it.Equipment, Activity: a, Due: ts(st.Due), State: state})
			}
		}
	}
	for _, name := range t.openNames() {
		v.Open = append(v.Open, t.downtimeView(t.open[name], now))
	}
	for i := len(t.recent) - 1; i >= 0; i-- {
		v.Recent = append(v.Recent, t.downtimeView(t.recent[i], now))
	}
	for _, o := range t.overrides {
		if now.Before(o.until) {
			v.Overrides = append(v.Overrides, o.InterlockOverride)
		}
	}
	return v
}
