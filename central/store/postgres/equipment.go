package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/sync/record"
)

// migrationEquipment: the equipment registry, downtime, calibration and
// maintenance, work orders and batch-start checks.
const migrationEquipment = `
CREATE TABLE equipment (
  edge TEXT NOT NULL, name TEXT NOT NULL, pos INTEGER NOT NULL DEFAULT 0, line TEXT, class TEXT NOT NULL, kind TEXT, driver TEXT,
  critical BOOLEAN NOT NULL DEFAULT true, depends_on TEXT, model TEXT, serial_no TEXT, asset TEXT, location TEXT,
  cal_interval_s BIGINT, cal_tolerance_s BIGINT, pm_interval_s BIGINT, pm_tolerance_s BIGINT,
  registered BOOLEAN NOT NULL DEFAULT true, registry TEXT, config_hash TEXT,
  status TEXT NOT NULL DEFAULT 'up', downtime TEXT, downtime_epoch BIGINT, status_since TIMESTAMPTZ,
  cal_state TEXT, cal_due TIMESTAMPTZ, cal_last TIMESTAMPTZ, pm_state TEXT, pm_due TIMESTAMPTZ, pm_last TIMESTAMPTZ, updated_at TIMESTAMPTZ,
  PRIMARY KEY (edge, name));
CREATE TABLE equipment_downtime (
  edge TEXT NOT NULL, epoch BIGINT NOT NULL, id TEXT NOT NULL, equipment TEXT NOT NULL, class TEXT, critical BOOLEAN NOT NULL DEFAULT false,
  source TEXT, fault TEXT, detail TEXT, cause TEXT, cause_downtime TEXT, started_at TIMESTAMPTZ NOT NULL, ended_at TIMESTAMPTZ, duration_s DOUBLE PRECISION,
  batch TEXT, batches TEXT, position TEXT, in_flight TEXT, first_serial TEXT, last_serial TEXT, commissioned INTEGER NOT NULL DEFAULT 0,
  serial_from TEXT, serial_to TEXT, reportable BOOLEAN NOT NULL DEFAULT false, reportable_at TIMESTAMPTZ, threshold_s BIGINT,
  root_cause TEXT, remediation TEXT, signature TEXT, remediated_at TIMESTAMPTZ, by_user TEXT,
  start_ref TEXT, end_ref TEXT, reportable_ref TEXT, remediation_ref TEXT,
  PRIMARY KEY (edge, epoch, id));
CREATE INDEX equipment_downtime_batch ON equipment_downtime(edge, batch);
CREATE INDEX equipment_downtime_start ON equipment_downtime(started_at);
CREATE TABLE equipment_service (
  edge TEXT NOT NULL, epoch BIGINT NOT NULL, seq BIGINT NOT NULL, at TIMESTAMPTZ NOT NULL, equipment TEXT NOT NULL, class TEXT, activity TEXT NOT NULL,
  work_order TEXT, performed_at TIMESTAMPTZ NOT NULL, result TEXT, results TEXT, notes TEXT, due TIMESTAMPTZ, next_due TIMESTAMPTZ, source TEXT, reference TEXT,
  cert_name TEXT, cert_type TEXT, cert_sha256 TEXT, cert_size INTEGER, cert_data BYTEA, signature TEXT, by_user TEXT,
  PRIMARY KEY (edge, epoch, seq));
CREATE INDEX equipment_service_eq ON equipment_service(edge, equipment, performed_at);
CREATE TABLE equipment_work_orders (
  edge TEXT NOT NULL, epoch BIGINT NOT NULL, id TEXT NOT NULL, equipment TEXT NOT NULL, class TEXT, activity TEXT,
  due TIMESTAMPTZ, window_from TIMESTAMPTZ, window_to TIMESTAMPTZ, state TEXT NOT NULL, opened_at TIMESTAMPTZ, closed_at TIMESTAMPTZ, closed_ref TEXT,
  PRIMARY KEY (edge, epoch, id));
CREATE TABLE equipment_checks (
  edge TEXT NOT NULL, epoch BIGINT NOT NULL, seq BIGINT NOT NULL, batch TEXT NOT NULL, at TIMESTAMPTZ NOT NULL, body TEXT NOT NULL,
  PRIMARY KEY (edge, epoch, seq));
CREATE INDEX equipment_checks_batch ON equipment_checks(edge, batch);
`

func tn(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC()
}

func ns(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func jcol(v any) any {
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

func queueEquipment(b *pgx.Batch, ops []store.EquipOp) {
	for _, op := range ops {
		ep := int64(op.Epoch)
		at := op.At.UTC()
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
				b.Queue(`INSERT INTO equipment (edge, name, pos, line, class, kind, driver, critical, depends_on, model, serial_no, asset, location,
					cal_interval_s, cal_tolerance_s, pm_interval_s, pm_tolerance_s, registered, registry, config_hash, updated_at)
					VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, true, $18, $19, $20)
					ON CONFLICT (edge, name) DO UPDATE SET pos = excluded.pos, line = excluded.line, class = excluded.class, kind = excluded.kind,
					driver = excluded.driver, critical = excluded.critical, depends_on = excluded.depends_on, model = excluded.model,
					serial_no = excluded.serial_no, asset = excluded.asset, location = excluded.location, cal_interval_s = excluded.cal_interval_s,
					cal_tolerance_s = excluded.cal_tolerance_s, pm_interval_s = excluded.pm_interval_s, pm_tolerance_s = excluded.pm_tolerance_s,
					registered = true, registry = excluded.registry, config_hash = excluded.config_hash, updated_at = excluded.updated_at`,
					op.Edge, it.Equipment, i, r.Line, it.Class, it.Kind, it.Driver, it.Critical, jcol(it.DependsOn), it.Model, it.SerialNo, it.Asset, it.Location,
					ci, ct, pi, pt, r.Hash, r.ConfigHash, at)
			}
			b.Queue(`UPDATE equipment SET registered = false WHERE edge = $1 AND registry IS DISTINCT FROM $2`, op.Edge, r.Hash)
		case op.Started != nil:
			d := op.Started
			var batches []string
			if d.Batch != "" {
				batches = []string{d.Batch}
			}
			b.Queue(`INSERT INTO equipment_downtime (edge, epoch, id, equipment, class, critical, source, fault, detail, cause, cause_downtime,
				started_at, batch, batches, position, in_flight, by_user, start_ref) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
				ON CONFLICT (edge, epoch, id) DO NOTHING`,
				op.Edge, ep, d.ID, d.Equipment, d.Class, d.Critical, d.Source, d.Fault, ns(d.Detail), ns(d.Cause), ns(d.CauseDowntime),
				op.T1, ns(d.Batch), jcol(batches), ns(d.Position), jcol(d.InFlight), ns(d.By), op.Ref())
			b.Queue(`UPDATE equipment SET status = 'down', downtime = $1, downtime_epoch = $2, status_since = $3, updated_at = $4 WHERE edge = $5 AND name = $6`,
				d.ID, ep, op.T1, at, op.Edge, d.Equipment)
		case op.Ended != nil:
			d := op.Ended
			b.Queue(`INSERT INTO equipment_downtime (edge, epoch, id, equipment, class, critical, source, fault, cause, cause_downtime,
				started_at, ended_at, duration_s, batch, batches, first_serial, last_serial, commissioned, serial_from, serial_to, reportable, end_ref)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)
				ON CONFLICT (edge, epoch, id) DO UPDATE SET ended_at = excluded.ended_at, duration_s = excluded.duration_s, cause = excluded.cause,
				cause_downtime = excluded.cause_downtime, batches = excluded.batches, first_serial = excluded.first_serial, last_serial = excluded.last_serial,
				commissioned = excluded.commissioned, serial_from = excluded.serial_from, serial_to = excluded.serial_to,
				reportable = equipment_downtime.reportable OR excluded.reportable, end_ref = excluded.end_ref`,
				op.Edge, ep, d.ID, d.Equipment, d.Class, d.Critical, d.Source, d.Fault, ns(d.Cause), ns(d.CauseDowntime),
				op.T1, op.T2, d.DurationS, ns(d.Batch), jcol(d.Batches), ns(d.FirstSerial), ns(d.LastSerial), d.Commissioned,
				ns(d.SerialFrom), ns(d.SerialTo), d.Reportable, op.Ref())
			b.Queue(`UPDATE equipment SET status = 'up', downtime = NULL, downtime_epoch = NULL, status_since = $1, updated_at = $2
				WHERE edge = $3 AND name = $4 AND downtime = $5 AND downtime_epoch = $6`, op.T2, at, op.Edge, d.Equipment, d.ID, ep)
		case op.Reportable != nil:
			d := op.Reportable
			b.Queue(`UPDATE equipment_downtime SET reportable = true, reportable_at = $1, threshold_s = $2, reportable_ref = $3 WHERE edge = $4 AND epoch = $5 AND id = $6`,
				tn(op.T2), d.ThresholdS, op.Ref(), op.Edge, ep, d.ID)
		case op.Remediated != nil:
			d := op.Remediated
			b.Queue(`UPDATE equipment_downtime SET root_cause = $1, remediation = $2, signature = $3, remediated_at = $4, remediation_ref = $5 WHERE edge = $6 AND epoch = $7 AND id = $8`,
				d.RootCause, d.Remediation, jcol(d.Signature), at, op.Ref(), op.Edge, ep, d.ID)
		case op.WorkOrder != nil:
			w := op.WorkOrder
			b.Queue(`INSERT INTO equipment_work_orders (edge, epoch, id, equipment, class, activity, due, window_from, window_to, state, opened_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'open', $10) ON CONFLICT (edge, epoch, id) DO NOTHING`,
				op.Edge, ep, w.ID, w.Equipment, w.Class, w.Activity, tn(op.T1), tn(op.T2), tn(op.T3), at)
		case op.Due != nil:
			d := op.Due
			col := "cal"
			if d.Activity == record.ActivityMaintenance {
				col = "pm"
			}
			b.Queue(`UPDATE equipment SET `+col+`_state = $1, `+col+`_due = $2, updated_at = $3 WHERE edge = $4 AND name = $5`, d.State, tn(op.T1), at, op.Edge, d.Equipment)
		case op.Calibration != nil:
			c := op.Calibration
			var cn, cty, csha, csize, cdata any
			if cert := c.Certificate; cert != nil {
				cn, cty, csha, csize, cdata = cert.Name, cert.ContentType, cert.SHA256, cert.Size, cert.Data
			}
			b.Queue(`INSERT INTO equipment_service (edge, epoch, seq, at, equipment, class, activity, work_order, performed_at, result, results, notes,
				due, next_due, source, reference, cert_name, cert_type, cert_sha256, cert_size, cert_data, signature, by_user)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23) ON CONFLICT (edge, epoch, seq) DO NOTHING`,
				op.Edge, ep, int64(op.Seq), at, c.Equipment, c.Class, c.Activity, ns(c.WorkOrder), op.T1, c.Result, jcol(c.Results), ns(c.Notes),
				tn(op.T2), tn(op.T3), ns(c.Source), ns(c.Reference), cn, cty, csha, csize, cdata, jcol(c.Signature), ns(c.By))
			col, state := "cal", "ok"
			if c.Activity == record.ActivityMaintenance {
				col = "pm"
			}
			if c.Result != "pass" {
				state = "failed"
			}
			b.Queue(`UPDATE equipment SET `+col+`_last = $1, `+col+`_due = COALESCE($2, `+col+`_due), `+col+`_state = $3, updated_at = $4 WHERE edge = $5 AND name = $6`,
				op.T1, tn(op.T3), state, at, op.Edge, c.Equipment)
			if c.WorkOrder != "" {
				b.Queue(`UPDATE equipment_work_orders SET state = 'done', closed_at = $1, closed_ref = $2 WHERE edge = $3 AND epoch = $4 AND id = $5`,
					at, op.Ref(), op.Edge, ep, c.WorkOrder)
			}
		case op.Check != nil:
			b.Queue(`INSERT INTO equipment_checks (edge, epoch, seq, batch, at, body) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (edge, epoch, seq) DO NOTHING`,
				op.Edge, ep, int64(op.Seq), op.Check.Batch, at, store.JSONText(op.Check))
		}
	}
}

func unj(s *string, v any) {
	if s != nil && *s != "" {
		_ = json.Unmarshal([]byte(*s), v)
	}
}

const equipmentCols = `edge, name, COALESCE(line, ''), class, COALESCE(kind, ''), COALESCE(driver, ''), critical, depends_on,
	COALESCE(model, ''), COALESCE(serial_no, ''), COALESCE(asset, ''), COALESCE(location, ''),
	COALESCE(cal_interval_s, 0), COALESCE(cal_tolerance_s, 0), COALESCE(pm_interval_s, 0), COALESCE(pm_tolerance_s, 0),
	registered, COALESCE(config_hash, ''), status, COALESCE(downtime, ''), COALESCE(downtime_epoch, 0), status_since,
	COALESCE(cal_state, ''), cal_due, cal_last, COALESCE(pm_state, ''), pm_due, pm_last, updated_at`

func scanEquipment(r pgx.Row) (store.Equipment, error) {
	var e store.Equipment
	var deps *string
	var dep int64
	var since, calDue, calLast, pmDue, pmLast, upd *time.Time
	err := r.Scan(&e.Edge, &e.Name, &e.Line, &e.Class, &e.Kind, &e.Driver, &e.Critical, &deps, &e.Model, &e.SerialNo, &e.Asset, &e.Location,
		&e.CalIntervalS, &e.CalToleranceS, &e.PMIntervalS, &e.PMToleranceS, &e.Registered, &e.RegisteredConfig, &e.Status, &e.Downtime, &dep, &since,
		&e.CalState, &calDue, &calLast, &e.PMState, &pmDue, &pmLast, &upd)
	if err != nil {
		return e, err
	}
	e.DowntimeEp = uint32(dep)
	unj(deps, &e.DependsOn)
	e.StatusSince, e.CalDue, e.CalLast, e.PMDue, e.PMLast, e.UpdatedAt = tv(since), tv(calDue), tv(calLast), tv(pmDue), tv(pmLast), tv(upd)
	if !e.CalDue.IsZero() {
		e.CalWindowTo = e.CalDue.Add(time.Duration(e.CalToleranceS) * time.Second)
	}
	if !e.PMDue.IsZero() {
		e.PMWindowTo = e.PMDue.Add(time.Duration(e.PMToleranceS) * time.Second)
	}
	return e, nil
}

// EquipmentList implements store.EquipmentStore.
func (s *Store) EquipmentList(ctx context.Context, edge string) ([]store.Equipment, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+equipmentCols+` FROM equipment WHERE ($1 = '' OR edge = $1) ORDER BY edge, registered DESC, pos, name`, edge)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Equipment, error) { return scanEquipment(r) })
}

// EquipmentItem implements store.EquipmentStore.
func (s *Store) EquipmentItem(ctx context.Context, edge, name string) (store.Equipment, error) {
	e, err := scanEquipment(s.pool.QueryRow(ctx, `SELECT `+equipmentCols+` FROM equipment WHERE edge = $1 AND name = $2`, edge, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return e, fmt.Errorf("equipment %s of %s: %w", name, edge, store.ErrNotFound)
	}
	return e, err
}

const downtimeCols = `edge, epoch, id, equipment, COALESCE(class, ''), critical, COALESCE(source, ''), COALESCE(fault, ''), COALESCE(detail, ''),
	COALESCE(cause, ''), COALESCE(cause_downtime, ''), started_at, ended_at, COALESCE(duration_s, 0), COALESCE(batch, ''), batches,
	COALESCE(position, ''), in_flight, COALESCE(first_serial, ''), COALESCE(last_serial, ''), commissioned, COALESCE(serial_from, ''), COALESCE(serial_to, ''),
	reportable, reportable_at, COALESCE(threshold_s, 0), COALESCE(root_cause, ''), COALESCE(remediation, ''), signature, remediated_at, COALESCE(by_user, ''),
	COALESCE(start_ref, ''), COALESCE(end_ref, ''), COALESCE(reportable_ref, ''), COALESCE(remediation_ref, '')`

func scanDowntime(r pgx.Row) (store.Downtime, error) {
	var d store.Downtime
	var epoch int64
	var start, end, repAt, remAt *time.Time
	var batches, inflight, sig *string
	err := r.Scan(&d.Edge, &epoch, &d.ID, &d.Equipment, &d.Class, &d.Critical, &d.Source, &d.Fault, &d.Detail, &d.Cause, &d.CauseDowntime,
		&start, &end, &d.DurationS, &d.Batch, &batches, &d.Position, &inflight, &d.FirstSerial, &d.LastSerial, &d.Commissioned, &d.SerialFrom, &d.SerialTo,
		&d.Reportable, &repAt, &d.ThresholdS, &d.RootCause, &d.Remediation, &sig, &remAt, &d.By, &d.StartRef, &d.EndRef, &d.ReportableRef, &d.RemedyRef)
	if err != nil {
		return d, err
	}
	d.Epoch = uint32(epoch)
	d.Start, d.End, d.ReportableAt, d.RemediatedAt = tv(start), tv(end), tv(repAt), tv(remAt)
	unj(batches, &d.Batches)
	unj(inflight, &d.InFlight)
	if sig != nil {
		d.Signature = &record.Signature{}
		unj(sig, d.Signature)
	}
	return d, nil
}

// Downtimes implements store.EquipmentStore.
func (s *Store) Downtimes(ctx context.Context, f store.DowntimeFilter) ([]store.Downtime, error) {
	if f.Limit <= 0 {
		f.Limit = 200
	}
	var w where
	if f.Edge != "" {
		w.add("edge = ?", f.Edge)
	}
	if f.Equipment != "" {
		w.add("equipment = ?", f.Equipment)
	}
	if f.Batch != "" {
		w.add("(batch = ? OR (batches IS NOT NULL AND batches::jsonb @> jsonb_build_array(?::text)))", f.Batch, f.Batch)
	}
	if f.ReportableOnly {
		w.add("reportable")
	}
	if !f.To.IsZero() {
		w.add("started_at <= ?", f.To)
	}
	if !f.From.IsZero() {
		w.add("(ended_at IS NULL OR ended_at >= ?)", f.From)
	}
	q := `SELECT ` + downtimeCols + ` FROM equipment_downtime` + w.sql() + " ORDER BY started_at DESC, id DESC LIMIT " + w.next()
	rows, err := s.pool.Query(ctx, q, append(w.args, f.Limit)...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Downtime, error) { return scanDowntime(r) })
}

// Downtime implements store.EquipmentStore.
func (s *Store) Downtime(ctx context.Context, edge string, epoch uint32, id string) (store.Downtime, error) {
	d, err := scanDowntime(s.pool.QueryRow(ctx, `SELECT `+downtimeCols+` FROM equipment_downtime WHERE edge = $1 AND epoch = $2 AND id = $3`, edge, int64(epoch), id))
	if errors.Is(err, pgx.ErrNoRows) {
		return d, fmt.Errorf("downtime %s of %s (epoch %d): %w", id, edge, epoch, store.ErrNotFound)
	}
	return d, err
}

// Services implements store.EquipmentStore.
func (s *Store) Services(ctx context.Context, f store.ServiceFilter) ([]store.Service, error) {
	if f.Limit <= 0 {
		f.Limit = 200
	}
	var w where
	if f.Edge != "" {
		w.add("edge = ?", f.Edge)
	}
	if f.Equipment != "" {
		w.add("equipment = ?", f.Equipment)
	}
	if f.Activity != "" {
		w.add("activity = ?", f.Activity)
	}
	if !f.From.IsZero() {
		w.add("performed_at >= ?", f.From)
	}
	if !f.To.IsZero() {
		w.add("performed_at <= ?", f.To)
	}
	q := `SELECT edge, epoch, seq, at, equipment, COALESCE(class, ''), activity, COALESCE(work_order, ''), performed_at, COALESCE(result, ''), results,
		COALESCE(notes, ''), due, next_due, COALESCE(source, ''), COALESCE(reference, ''), COALESCE(cert_name, ''), COALESCE(cert_type, ''),
		COALESCE(cert_sha256, ''), COALESCE(cert_size, 0), signature, COALESCE(by_user, '') FROM equipment_service` + w.sql() +
		" ORDER BY performed_at DESC, seq DESC LIMIT " + w.next()
	rows, err := s.pool.Query(ctx, q, append(w.args, f.Limit)...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Service, error) {
		var v store.Service
		var epoch, seq int64
		var at, perf time.Time
		var due, next *time.Time
		var results, sig *string
		if err := r.Scan(&v.Edge, &epoch, &seq, &at, &v.Equipment, &v.Class, &v.Activity, &v.WorkOrder, &perf, &v.Result, &results,
			&v.Notes, &due, &next, &v.Source, &v.Reference, &v.CertName, &v.CertType, &v.CertSHA, &v.CertSize, &sig, &v.By); err != nil {
			return v, err
		}
		v.Epoch, v.Seq = uint32(epoch), uint64(seq)
		v.At, v.Performed, v.Due, v.NextDue = at.UTC(), perf.UTC(), tv(due), tv(next)
		unj(results, &v.Results)
		if sig != nil {
			v.Signature = &record.Signature{}
			unj(sig, v.Signature)
		}
		return v, nil
	})
}

// Certificate implements store.EquipmentStore.
func (s *Store) Certificate(ctx context.Context, edge string, epoch uint32, seq uint64) (store.Certificate, error) {
	var c store.Certificate
	var name, ct, sha *string
	err := s.pool.QueryRow(ctx, `SELECT cert_name, cert_type, cert_sha256, cert_data FROM equipment_service WHERE edge = $1 AND epoch = $2 AND seq = $3`, edge, int64(epoch), int64(seq)).
		Scan(&name, &ct, &sha, &c.Data)
	if errors.Is(err, pgx.ErrNoRows) || err == nil && name == nil {
		return c, fmt.Errorf("certificate of %s: %w", store.Ref{Edge: edge, Epoch: epoch, Seq: seq}, store.ErrNotFound)
	}
	c.Name, c.ContentType, c.SHA256 = deref(name), deref(ct), deref(sha)
	return c, err
}

// WorkOrders implements store.EquipmentStore.
func (s *Store) WorkOrders(ctx context.Context, edge string, openOnly bool) ([]store.WorkOrder, error) {
	rows, err := s.pool.Query(ctx, `SELECT edge, epoch, id, equipment, COALESCE(class, ''), COALESCE(activity, ''), due, window_from, window_to, state,
		opened_at, closed_at, COALESCE(closed_ref, '') FROM equipment_work_orders WHERE ($1 = '' OR edge = $1) AND (NOT $2 OR state = 'open')
		ORDER BY opened_at DESC, id DESC LIMIT 500`, edge, openOnly)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.WorkOrder, error) {
		var w store.WorkOrder
		var epoch int64
		var due, from, to, opened, closed *time.Time
		err := r.Scan(&w.Edge, &epoch, &w.ID, &w.Equipment, &w.Class, &w.Activity, &due, &from, &to, &w.State, &opened, &closed, &w.ClosedRef)
		w.Epoch = uint32(epoch)
		w.Due, w.WindowFrom, w.WindowTo, w.OpenedAt, w.ClosedAt = tv(due), tv(from), tv(to), tv(opened), tv(closed)
		return w, err
	})
}

// EquipmentChecks implements store.EquipmentStore.
func (s *Store) EquipmentChecks(ctx context.Context, edge, batch string) ([]store.EquipmentCheck, error) {
	rows, err := s.pool.Query(ctx, `SELECT edge, epoch, seq, batch, at, body FROM equipment_checks WHERE edge = $1 AND batch = $2 ORDER BY at, seq`, edge, batch)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.EquipmentCheck, error) {
		var c store.EquipmentCheck
		var epoch, seq int64
		var body string
		err := r.Scan(&c.Edge, &epoch, &seq, &c.Batch, &c.At, &body)
		c.At = c.At.UTC()
		c.Ref = store.Ref{Edge: c.Edge, Epoch: uint32(epoch), Seq: uint64(seq)}.String()
		if err == nil {
			err = json.Unmarshal([]byte(body), &c.Check)
		}
		return c, err
	})
}

// BatchInfo implements store.EquipmentStore.
func (s *Store) BatchInfo(ctx context.Context, edge, batch string) (store.BatchInfo, error) {
	b := store.BatchInfo{Edge: edge, Batch: batch}
	var started, closed *time.Time
	err := s.pool.QueryRow(ctx, `SELECT COALESCE(line, ''), COALESCE(gtin, ''), COALESCE(lot, ''), COALESCE(expiry, ''), COALESCE(product, ''),
		COALESCE(planned, 0), COALESCE(state, ''), started_at, closed_at FROM batches WHERE edge = $1 AND batch = $2`, edge, batch).
		Scan(&b.Line, &b.GTIN, &b.Lot, &b.Expiry, &b.Product, &b.Planned, &b.State, &started, &closed)
	if errors.Is(err, pgx.ErrNoRows) {
		return b, fmt.Errorf("batch %s of %s: %w", batch, edge, store.ErrNotFound)
	}
	b.Started, b.Closed = tv(started), tv(closed)
	return b, err
}
