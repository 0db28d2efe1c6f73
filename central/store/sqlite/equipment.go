package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/sync/record"
)

// migrationEquipment: the equipment registry, downtime, calibration and
// maintenance, work orders and batch-start checks. Times are TEXT in a
// fixed-width UTC form (tsf) so they compare as text.
const migrationEquipment = `
CREATE TABLE equipment (
  edge TEXT NOT NULL, name TEXT NOT NULL, pos INTEGER NOT NULL DEFAULT 0, line TEXT, class TEXT NOT NULL, kind TEXT, driver TEXT, critical INTEGER NOT NULL DEFAULT 1,
  depends_on TEXT, model TEXT, serial_no TEXT, asset TEXT, location TEXT,
  cal_interval_s INTEGER, cal_tolerance_s INTEGER, pm_interval_s INTEGER, pm_tolerance_s INTEGER,
  registered INTEGER NOT NULL DEFAULT 1, registry TEXT, config_hash TEXT,
  status TEXT NOT NULL DEFAULT 'up', downtime TEXT, downtime_epoch INTEGER, status_since TEXT,
  cal_state TEXT, cal_due TEXT, cal_last TEXT, pm_state TEXT, pm_due TEXT, pm_last TEXT, updated_at TEXT,
  PRIMARY KEY (edge, name));
CREATE TABLE equipment_downtime (
  edge TEXT NOT NULL, epoch INTEGER NOT NULL, id TEXT NOT NULL, equipment TEXT NOT NULL, class TEXT, critical INTEGER NOT NULL DEFAULT 0,
  source TEXT, fault TEXT, detail TEXT, cause TEXT, cause_downtime TEXT, started_at TEXT NOT NULL, ended_at TEXT, duration_s REAL,
  batch TEXT, batches TEXT, position TEXT, in_flight TEXT, first_serial TEXT, last_serial TEXT, commissioned INTEGER NOT NULL DEFAULT 0,
  serial_from TEXT, serial_to TEXT, reportable INTEGER NOT NULL DEFAULT 0, reportable_at TEXT, threshold_s INTEGER,
  root_cause TEXT, remediation TEXT, signature TEXT, remediated_at TEXT, by_user TEXT,
  start_ref TEXT, end_ref TEXT, reportable_ref TEXT, remediation_ref TEXT,
  PRIMARY KEY (edge, epoch, id));
CREATE INDEX equipment_downtime_batch ON equipment_downtime(edge, batch);
CREATE INDEX equipment_downtime_start ON equipment_downtime(started_at);
CREATE TABLE equipment_service (
  edge TEXT NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL, at TEXT NOT NULL, equipment TEXT NOT NULL, class TEXT, activity TEXT NOT NULL,
  work_order TEXT, performed_at TEXT NOT NULL, result TEXT, results TEXT, notes TEXT, due TEXT, next_due TEXT, source TEXT, reference TEXT,
  cert_name TEXT, cert_type TEXT, cert_sha256 TEXT, cert_size INTEGER, cert_data BLOB, signature TEXT, by_user TEXT,
  PRIMARY KEY (edge, epoch, seq));
CREATE INDEX equipment_service_eq ON equipment_service(edge, equipment, performed_at);
CREATE TABLE equipment_work_orders (
  edge TEXT NOT NULL, epoch INTEGER NOT NULL, id TEXT NOT NULL, equipment TEXT NOT NULL, class TEXT, activity TEXT,
  due TEXT, window_from TEXT, window_to TEXT, state TEXT NOT NULL, opened_at TEXT, closed_at TEXT, closed_ref TEXT,
  PRIMARY KEY (edge, epoch, id));
CREATE TABLE equipment_checks (
  edge TEXT NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL, batch TEXT NOT NULL, at TEXT NOT NULL, body TEXT NOT NULL,
  PRIMARY KEY (edge, epoch, seq));
CREATE INDEX equipment_checks_batch ON equipment_checks(edge, batch);
`

// tsf renders a time fixed-width (text order is time order); NULL for zero.
func tsf(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format("2006-01-02T15:04:05.000000000Z")
}

func nullStr(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func jsonCol(v any) any {
	switch x := v.(type) {
	case []string:
		if len(x) == 0 {
			return nil
		}
	case *record.Signature:
		if x == nil {
			return nil
		}
	case []record.CalibrationResult:
		if len(x) == 0 {
			return nil
		}
	}
	return store.JSONText(v)
}

func applyEquipment(ctx context.Context, tx *sql.Tx, ops []store.EquipOp) error {
	for _, op := range ops {
		if err := applyEquipOp(ctx, tx, op); err != nil {
			return fmt.Errorf("equipment projection of %s: %w", op.Ref(), err)
		}
	}
	return nil
}

func applyEquipOp(ctx context.Context, tx *sql.Tx, op store.EquipOp) error {
	exec := func(q string, args ...any) error {
		_, err := tx.ExecContext(ctx, q, args...)
		return err
	}
	at := tsf(op.At)
	switch {
	case op.Registered != nil:
		r := op.Registered
		for i, it := range r.Items {
			var ci, ct, pi, pt any
			if c := it.Calibration; c != nil {
				ci, ct = c.IntervalS, c.ToleranceS
			}
			if m := it.Maintenance; m != nil {
				pi, pt = m.IntervalS, m.ToleranceS
			}
			if err := exec(`INSERT INTO equipment (edge, name, pos, line, class, kind, driver, critical, depends_on, model, serial_no, asset, location,
				cal_interval_s, cal_tolerance_s, pm_interval_s, pm_tolerance_s, registered, registry, config_hash, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?)
				ON CONFLICT(edge, name) DO UPDATE SET pos = excluded.pos, line = excluded.line, class = excluded.class, kind = excluded.kind, driver = excluded.driver,
				critical = excluded.critical, depends_on = excluded.depends_on, model = excluded.model, serial_no = excluded.serial_no,
				asset = excluded.asset, location = excluded.location, cal_interval_s = excluded.cal_interval_s, cal_tolerance_s = excluded.cal_tolerance_s,
				pm_interval_s = excluded.pm_interval_s, pm_tolerance_s = excluded.pm_tolerance_s, registered = 1, registry = excluded.registry,
				config_hash = excluded.config_hash, updated_at = excluded.updated_at`,
				op.Edge, it.Equipment, i, r.Line, it.Class, it.Kind, it.Driver, it.Critical, jsonCol(it.DependsOn), it.Model, it.SerialNo, it.Asset, it.Location,
				ci, ct, pi, pt, r.Hash, r.ConfigHash, at); err != nil {
				return err
			}
		}
		return exec(`UPDATE equipment SET registered = 0 WHERE edge = ? AND registry IS NOT ?`, op.Edge, r.Hash)
	case op.Started != nil:
		d := op.Started
		if err := exec(`INSERT INTO equipment_downtime (edge, epoch, id, equipment, class, critical, source, fault, detail, cause, cause_downtime,
			started_at, batch, batches, position, in_flight, by_user, start_ref) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT(edge, epoch, id) DO NOTHING`,
			op.Edge, op.Epoch, d.ID, d.Equipment, d.Class, d.Critical, d.Source, d.Fault, nullStr(d.Detail), nullStr(d.Cause), nullStr(d.CauseDowntime),
			tsf(op.T1), nullStr(d.Batch), jsonCol(nonEmpty(d.Batch)), nullStr(d.Position), jsonCol(d.InFlight), nullStr(d.By), op.Ref()); err != nil {
			return err
		}
		return exec(`UPDATE equipment SET status = 'down', downtime = ?, downtime_epoch = ?, status_since = ?, updated_at = ? WHERE edge = ? AND name = ?`,
			d.ID, op.Epoch, tsf(op.T1), at, op.Edge, d.Equipment)
	case op.Ended != nil:
		d := op.Ended
		if err := exec(`INSERT INTO equipment_downtime (edge, epoch, id, equipment, class, critical, source, fault, cause, cause_downtime,
			started_at, ended_at, duration_s, batch, batches, first_serial, last_serial, commissioned, serial_from, serial_to, reportable, end_ref)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT(edge, epoch, id) DO UPDATE SET ended_at = excluded.ended_at, duration_s = excluded.duration_s, cause = excluded.cause,
			cause_downtime = excluded.cause_downtime, batches = excluded.batches, first_serial = excluded.first_serial, last_serial = excluded.last_serial,
			commissioned = excluded.commissioned, serial_from = excluded.serial_from, serial_to = excluded.serial_to,
			reportable = MAX(equipment_downtime.reportable, excluded.reportable), end_ref = excluded.end_ref`,
			op.Edge, op.Epoch, d.ID, d.Equipment, d.Class, d.Critical, d.Source, d.Fault, nullStr(d.Cause), nullStr(d.CauseDowntime),
			tsf(op.T1), tsf(op.T2), d.DurationS, nullStr(d.Batch), jsonCol(d.Batches), nullStr(d.FirstSerial), nullStr(d.LastSerial), d.Commissioned,
			nullStr(d.SerialFrom), nullStr(d.SerialTo), d.Reportable, op.Ref()); err != nil {
			return err
		}
		return exec(`UPDATE equipment SET status = 'up', downtime = NULL, downtime_epoch = NULL, status_since = ?, updated_at = ?
			WHERE edge = ? AND name = ? AND downtime = ? AND downtime_epoch = ?`, tsf(op.T2), at, op.Edge, d.Equipment, d.ID, op.Epoch)
	case op.Reportable != nil:
		d := op.Reportable
		return exec(`UPDATE equipment_downtime SET reportable = 1, reportable_at = ?, threshold_s = ?, reportable_ref = ? WHERE edge = ? AND epoch = ? AND id = ?`,
			tsf(op.T2), d.ThresholdS, op.Ref(), op.Edge, op.Epoch, d.ID)
	case op.Remediated != nil:
		d := op.Remediated
		return exec(`UPDATE equipment_downtime SET root_cause = ?, remediation = ?, signature = ?, remediated_at = ?, remediation_ref = ? WHERE edge = ? AND epoch = ? AND id = ?`,
			d.RootCause, d.Remediation, jsonCol(d.Signature), at, op.Ref(), op.Edge, op.Epoch, d.ID)
	case op.WorkOrder != nil:
		w := op.WorkOrder
		return exec(`INSERT INTO equipment_work_orders (edge, epoch, id, equipment, class, activity, due, window_from, window_to, state, opened_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'open', ?) ON CONFLICT(edge, epoch, id) DO NOTHING`,
			op.Edge, op.Epoch, w.ID, w.Equipment, w.Class, w.Activity, tsf(op.T1), tsf(op.T2), tsf(op.T3), at)
	case op.Due != nil:
		d := op.Due
		col := "cal"
		if d.Activity == record.ActivityMaintenance {
			col = "pm"
		}
		return exec(`UPDATE equipment SET `+col+`_state = ?, `+col+`_due = ?, updated_at = ? WHERE edge = ? AND name = ?`, d.State, tsf(op.T1), at, op.Edge, d.Equipment)
	case op.Calibration != nil:
		c := op.Calibration
		var cn, cty, csha, csize, cdata any
		if cert := c.Certificate; cert != nil {
			cn, cty, csha, csize, cdata = cert.Name, cert.ContentType, cert.SHA256, cert.Size, cert.Data
		}
		if err := exec(`INSERT INTO equipment_service (edge, epoch, seq, at, equipment, class, activity, work_order, performed_at, result, results, notes,
			due, next_due, source, reference, cert_name, cert_type, cert_sha256, cert_size, cert_data, signature, by_user)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(edge, epoch, seq) DO NOTHING`,
			op.Edge, op.Epoch, op.Seq, at, c.Equipment, c.Class, c.Activity, nullStr(c.WorkOrder), tsf(op.T1), c.Result, jsonCol(c.Results), nullStr(c.Notes),
			tsf(op.T2), tsf(op.T3), nullStr(c.Source), nullStr(c.Reference), cn, cty, csha, csize, cdata, jsonCol(c.Signature), nullStr(c.By)); err != nil {
			return err
		}
		col, state := "cal", "ok"
		if c.Activity == record.ActivityMaintenance {
			col = "pm"
		}
		if c.Result != "pass" {
			state = "failed"
		}
		if err := exec(`UPDATE equipment SET `+col+`_last = ?, `+col+`_due = COALESCE(?, `+col+`_due), `+col+`_state = ?, updated_at = ? WHERE edge = ? AND name = ?`,
			tsf(op.T1), tsf(op.T3), state, at, op.Edge, c.Equipment); err != nil {
			return err
		}
		if c.WorkOrder != "" {
			return exec(`UPDATE equipment_work_orders SET state = 'done', closed_at = ?, closed_ref = ? WHERE edge = ? AND epoch = ? AND id = ?`,
				at, op.Ref(), op.Edge, op.Epoch, c.WorkOrder)
		}
	case op.Check != nil:
		return exec(`INSERT INTO equipment_checks (edge, epoch, seq, batch, at, body) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(edge, epoch, seq) DO NOTHING`,
			op.Edge, op.Epoch, op.Seq, op.Check.Batch, at, store.JSONText(op.Check))
	}
	return nil
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

func ptime(s sql.NullString) time.Time {
	if !s.Valid {
		return time.Time{}
	}
	t, _ := time.Parse(time.RFC3339Nano, s.String)
	return t
}

func unjson(s sql.NullString, v any) {
	if s.Valid && s.String != "" {
		_ = json.Unmarshal([]byte(s.String), v)
	}
}

const equipmentCols = `edge, name, COALESCE(line, ''), class, COALESCE(kind, ''), COALESCE(driver, ''), critical, depends_on,
	COALESCE(model, ''), COALESCE(serial_no, ''), COALESCE(asset, ''), COALESCE(location, ''),
	COALESCE(cal_interval_s, 0), COALESCE(cal_tolerance_s, 0), COALESCE(pm_interval_s, 0), COALESCE(pm_tolerance_s, 0),
	registered, COALESCE(config_hash, ''), status, COALESCE(downtime, ''), COALESCE(downtime_epoch, 0), status_since,
	COALESCE(cal_state, ''), cal_due, cal_last, COALESCE(pm_state, ''), pm_due, pm_last, updated_at`

type scanner interface{ Scan(dest ...any) error }

func scanEquipment(r scanner) (store.Equipment, error) {
	var e store.Equipment
	var deps, since, calDue, calLast, pmDue, pmLast, upd sql.NullString
	err := r.Scan(&e.Edge, &e.Name, &e.Line, &e.Class, &e.Kind, &e.Driver, &e.Critical, &deps, &e.Model, &e.SerialNo, &e.Asset, &e.Location,
		&e.CalIntervalS, &e.CalToleranceS, &e.PMIntervalS, &e.PMToleranceS, &e.Registered, &e.RegisteredConfig, &e.Status, &e.Downtime, &e.DowntimeEp, &since,
		&e.CalState, &calDue, &calLast, &e.PMState, &pmDue, &pmLast, &upd)
	if err != nil {
		return e, err
	}
	unjson(deps, &e.DependsOn)
	e.StatusSince, e.CalDue, e.CalLast, e.PMDue, e.PMLast, e.UpdatedAt = ptime(since), ptime(calDue), ptime(calLast), ptime(pmDue), ptime(pmLast), ptime(upd)
	e.CalWindowTo = windowTo(e.CalDue, e.CalToleranceS)
	e.PMWindowTo = windowTo(e.PMDue, e.PMToleranceS)
	return e, nil
}

func windowTo(due time.Time, tolS int64) time.Time {
	if due.IsZero() {
		return due
	}
	return due.Add(time.Duration(tolS) * time.Second)
}

// EquipmentList implements store.EquipmentStore.
func (s *Store) EquipmentList(ctx context.Context, edge string) ([]store.Equipment, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+equipmentCols+` FROM equipment WHERE (? = '' OR edge = ?) ORDER BY edge, registered DESC, pos, name`, edge, edge)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Equipment
	for rows.Next() {
		e, err := scanEquipment(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// EquipmentItem implements store.EquipmentStore.
func (s *Store) EquipmentItem(ctx context.Context, edge, name string) (store.Equipment, error) {
	e, err := scanEquipment(s.r.QueryRowContext(ctx, `SELECT `+equipmentCols+` FROM equipment WHERE edge = ? AND name = ?`, edge, name))
	if errors.Is(err, sql.ErrNoRows) {
		return e, fmt.Errorf("equipment %s of %s: %w", name, edge, store.ErrNotFound)
	}
	return e, err
}

const downtimeCols = `edge, epoch, id, equipment, COALESCE(class, ''), critical, COALESCE(source, ''), COALESCE(fault, ''), COALESCE(detail, ''),
	COALESCE(cause, ''), COALESCE(cause_downtime, ''), started_at, ended_at, COALESCE(duration_s, 0), COALESCE(batch, ''), batches,
	COALESCE(position, ''), in_flight, COALESCE(first_serial, ''), COALESCE(last_serial, ''), commissioned, COALESCE(serial_from, ''), COALESCE(serial_to, ''),
	reportable, reportable_at, COALESCE(threshold_s, 0), COALESCE(root_cause, ''), COALESCE(remediation, ''), signature, remediated_at, COALESCE(by_user, ''),
	COALESCE(start_ref, ''), COALESCE(end_ref, ''), COALESCE(reportable_ref, ''), COALESCE(remediation_ref, '')`

func scanDowntime(r scanner) (store.Downtime, error) {
	var d store.Downtime
	var start, end, batches, inflight, repAt, sig, remAt sql.NullString
	err := r.Scan(&d.Edge, &d.Epoch, &d.ID, &d.Equipment, &d.Class, &d.Critical, &d.Source, &d.Fault, &d.Detail, &d.Cause, &d.CauseDowntime,
		&start, &end, &d.DurationS, &d.Batch, &batches, &d.Position, &inflight, &d.FirstSerial, &d.LastSerial, &d.Commissioned, &d.SerialFrom, &d.SerialTo,
		&d.Reportable, &repAt, &d.ThresholdS, &d.RootCause, &d.Remediation, &sig, &remAt, &d.By, &d.StartRef, &d.EndRef, &d.ReportableRef, &d.RemedyRef)
	if err != nil {
		return d, err
	}
	d.Start, d.End, d.ReportableAt, d.RemediatedAt = ptime(start), ptime(end), ptime(repAt), ptime(remAt)
	unjson(batches, &d.Batches)
	unjson(inflight, &d.InFlight)
	if sig.Valid {
		d.Signature = &record.Signature{}
		unjson(sig, d.Signature)
	}
	return d, nil
}

// Downtimes implements store.EquipmentStore.
func (s *Store) Downtimes(ctx context.Context, f store.DowntimeFilter) ([]store.Downtime, error) {
	if f.Limit <= 0 {
		f.Limit = 200
	}
	var where []string
	var args []any
	if f.Edge != "" {
		where, args = append(where, "edge = ?"), append(args, f.Edge)
	}
	if f.Equipment != "" {
		where, args = append(where, "equipment = ?"), append(args, f.Equipment)
	}
	if f.Batch != "" {
		where, args = append(where, "(batch = ? OR EXISTS (SELECT 1 FROM json_each(batches) WHERE value = ?))"), append(args, f.Batch, f.Batch)
	}
	if f.ReportableOnly {
		where = append(where, "reportable = 1")
	}
	if !f.To.IsZero() {
		where, args = append(where, "started_at <= ?"), append(args, tsf(f.To))
	}
	if !f.From.IsZero() {
		where, args = append(where, "(ended_at IS NULL OR ended_at >= ?)"), append(args, tsf(f.From))
	}
	q := `SELECT ` + downtimeCols + ` FROM equipment_downtime`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY started_at DESC, id DESC LIMIT ?"
	rows, err := s.r.QueryContext(ctx, q, append(args, f.Limit)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Downtime
	for rows.Next() {
		d, err := scanDowntime(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// Downtime implements store.EquipmentStore.
func (s *Store) Downtime(ctx context.Context, edge string, epoch uint32, id string) (store.Downtime, error) {
	d, err := scanDowntime(s.r.QueryRowContext(ctx, `SELECT `+downtimeCols+` FROM equipment_downtime WHERE edge = ? AND epoch = ? AND id = ?`, edge, epoch, id))
	if errors.Is(err, sql.ErrNoRows) {
		return d, fmt.Errorf("downtime %s of %s (epoch %d): %w", id, edge, epoch, store.ErrNotFound)
	}
	return d, err
}

// Services implements store.EquipmentStore.
func (s *Store) Services(ctx context.Context, f store.ServiceFilter) ([]store.Service, error) {
	if f.Limit <= 0 {
		f.Limit = 200
	}
	var where []string
	var args []any
	if f.Edge != "" {
		where, args = append(where, "edge = ?"), append(args, f.Edge)
	}
	if f.Equipment != "" {
		where, args = append(where, "equipment = ?"), append(args, f.Equipment)
	}
	if f.Activity != "" {
		where, args = append(where, "activity = ?"), append(args, f.Activity)
	}
	if !f.From.IsZero() {
		where, args = append(where, "performed_at >= ?"), append(args, tsf(f.From))
	}
	if !f.To.IsZero() {
		where, args = append(where, "performed_at <= ?"), append(args, tsf(f.To))
	}
	q := `SELECT edge, epoch, seq, at, equipment, COALESCE(class, ''), activity, COALESCE(work_order, ''), performed_at, COALESCE(result, ''), results,
		COALESCE(notes, ''), due, next_due, COALESCE(source, ''), COALESCE(reference, ''), COALESCE(cert_name, ''), COALESCE(cert_type, ''),
		COALESCE(cert_sha256, ''), COALESCE(cert_size, 0), signature, COALESCE(by_user, '') FROM equipment_service`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY performed_at DESC, seq DESC LIMIT ?"
	rows, err := s.r.QueryContext(ctx, q, append(args, f.Limit)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Service
	for rows.Next() {
		var v store.Service
		var at, perf, due, next, results, sig sql.NullString
		if err := rows.Scan(&v.Edge, &v.Epoch, &v.Seq, &at, &v.Equipment, &v.Class, &v.Activity, &v.WorkOrder, &perf, &v.Result, &results,
			&v.Notes, &due, &next, &v.Source, &v.Reference, &v.CertName, &v.CertType, &v.CertSHA, &v.CertSize, &sig, &v.By); err != nil {
			return nil, err
		}
		v.At, v.Performed, v.Due, v.NextDue = ptime(at), ptime(perf), ptime(due), ptime(next)
		unjson(results, &v.Results)
		if sig.Valid {
			v.Signature = &record.Signature{}
			unjson(sig, v.Signature)
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// Certificate implements store.EquipmentStore.
func (s *Store) Certificate(ctx context.Context, edge string, epoch uint32, seq uint64) (store.Certificate, error) {
	var c store.Certificate
	var name, ct, sha sql.NullString
	err := s.r.QueryRowContext(ctx, `SELECT cert_name, cert_type, cert_sha256, cert_data FROM equipment_service WHERE edge = ? AND epoch = ? AND seq = ?`, edge, epoch, seq).
		Scan(&name, &ct, &sha, &c.Data)
	if errors.Is(err, sql.ErrNoRows) || err == nil && !name.Valid {
		return c, fmt.Errorf("certificate of %s: %w", store.Ref{Edge: edge, Epoch: epoch, Seq: seq}, store.ErrNotFound)
	}
	c.Name, c.ContentType, c.SHA256 = name.String, ct.String, sha.String
	return c, err
}

// WorkOrders implements store.EquipmentStore.
func (s *Store) WorkOrders(ctx context.Context, edge string, openOnly bool) ([]store.WorkOrder, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT edge, epoch, id, equipment, COALESCE(class, ''), COALESCE(activity, ''), due, window_from, window_to, state,
		opened_at, closed_at, COALESCE(closed_ref, '') FROM equipment_work_orders WHERE (? = '' OR edge = ?) AND (? = 0 OR state = 'open')
		ORDER BY opened_at DESC, id DESC LIMIT 500`, edge, edge, openOnly)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.WorkOrder
	for rows.Next() {
		var w store.WorkOrder
		var due, from, to, opened, closed sql.NullString
		if err := rows.Scan(&w.Edge, &w.Epoch, &w.ID, &w.Equipment, &w.Class, &w.Activity, &due, &from, &to, &w.State, &opened, &closed, &w.ClosedRef); err != nil {
			return nil, err
		}
		w.Due, w.WindowFrom, w.WindowTo, w.OpenedAt, w.ClosedAt = ptime(due), ptime(from), ptime(to), ptime(opened), ptime(closed)
		out = append(out, w)
	}
	return out, rows.Err()
}

// EquipmentChecks implements store.EquipmentStore.
func (s *Store) EquipmentChecks(ctx context.Context, edge, batch string) ([]store.EquipmentCheck, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT edge, epoch, seq, batch, at, body FROM equipment_checks WHERE edge = ? AND batch = ? ORDER BY at, seq`, edge, batch)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.EquipmentCheck
	for rows.Next() {
		var c store.EquipmentCheck
		var epoch uint32
		var seq uint64
		var at, body sql.NullString
		if err := rows.Scan(&c.Edge, &epoch, &seq, &c.Batch, &at, &body); err != nil {
			return nil, err
		}
		c.At, c.Ref = ptime(at), store.Ref{Edge: c.Edge, Epoch: epoch, Seq: seq}.String()
		unjson(body, &c.Check)
		out = append(out, c)
	}
	return out, rows.Err()
}

// BatchInfo implements store.EquipmentStore.
func (s *Store) BatchInfo(ctx context.Context, edge, batch string) (store.BatchInfo, error) {
	b := store.BatchInfo{Edge: edge, Batch: batch}
	var started, closed sql.NullString
	err := s.r.QueryRowContext(ctx, `SELECT COALESCE(line, ''), COALESCE(gtin, ''), COALESCE(lot, ''), COALESCE(expiry, ''), COALESCE(product, ''),
		COALESCE(planned, 0), COALESCE(state, ''), started_at, closed_at FROM batches WHERE edge = ? AND batch = ?`, edge, batch).
		Scan(&b.Line, &b.GTIN, &b.Lot, &b.Expiry, &b.Product, &b.Planned, &b.State, &started, &closed)
	if errors.Is(err, sql.ErrNoRows) {
		return b, fmt.Errorf("batch %s of %s: %w", batch, edge, store.ErrNotFound)
	}
	b.Started, b.Closed = parseTS(started), parseTS(closed)
	return b, err
}
