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

// migrationShipments is migration 4 (see migrations).
const migrationShipments = `
CREATE TABLE IF NOT EXISTS shipments (
  id TEXT PRIMARY KEY, dest_gln TEXT NOT NULL, dest_name TEXT, ship_from TEXT, reference TEXT, shipped_at TEXT NOT NULL,
  by_user TEXT, body TEXT NOT NULL, rec_edge TEXT NOT NULL, rec_epoch INTEGER NOT NULL, rec_seq INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS shipments_at ON shipments(shipped_at);
CREATE TABLE IF NOT EXISTS shipment_containers (sscc TEXT PRIMARY KEY, shipment TEXT NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS shipment_containers_shipment ON shipment_containers(shipment);
CREATE INDEX IF NOT EXISTS records_edge_time ON records(edge, rec_time);
CREATE INDEX IF NOT EXISTS units_edge_batch ON units(edge, batch);
`

var _ store.Queries = (*Store)(nil)

// Timestamps are stored as RFC 3339 text with trailing fractional zeros
// trimmed, which does not sort as text within one second. Range queries
// therefore select whole seconds (secFloor) and the exact bound is applied
// to the parsed value.
func secFloor(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05") }

func applyShipped(ctx context.Context, tx *sql.Tx, op store.Op) error {
	b := op.Shipped
	body, err := json.Marshal(b)
	if err != nil {
		return err
	}
	at, err := time.Parse(time.RFC3339Nano, b.ShippedAt)
	if err != nil {
		at = op.At
	}
	from := ""
	if b.ShipFrom != nil {
		from = b.ShipFrom.GLN
	}
	conflict := func(kind, key, q string, args ...any) error {
		var other string
		if err := tx.QueryRowContext(ctx, q, args...).Scan(&other); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO conflicts (edge, kind, key, other_edge, at) VALUES (?, ?, ?, ?, ?)`, op.Edge, kind, key, other, ts(op.At))
		return err
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO shipments (id, dest_gln, dest_name, ship_from, reference, shipped_at, by_user, body, rec_edge, rec_epoch, rec_seq)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
		b.Shipment, b.Destination.GLN, b.Destination.Name, from, b.Reference, ts(at), b.By, string(body), op.Ref.Edge, op.Ref.Epoch, op.Ref.Seq)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return conflict("shipment", b.Shipment, `SELECT rec_edge FROM shipments WHERE id = ?`, b.Shipment)
	}
	for _, sscc := range b.Containers {
		res, err := tx.ExecContext(ctx, `INSERT INTO shipment_containers (sscc, shipment) VALUES (?, ?) ON CONFLICT (sscc) DO NOTHING`, sscc, b.Shipment)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			if err := conflict("shipped", "(00)"+sscc, `SELECT s.rec_edge FROM shipment_containers c JOIN shipments s ON s.id = c.shipment WHERE c.sscc = ?`, sscc); err != nil {
				return err
			}
		}
	}
	return nil
}

type where struct {
	conds []string
	args  []any
}

func (w *where) add(cond string, args ...any) {
	w.conds = append(w.conds, cond)
	w.args = append(w.args, args...)
}

func (w *where) sql() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

// batchWhere is the WHERE of a batch filter.
func batchWhere(f store.BatchFilter) where {
	var w where
	if f.Edge != "" {
		w.add("edge = ?", f.Edge)
	}
	if f.State != "" {
		w.add("state = ?", f.State)
	}
	if f.ID != "" {
		w.add("(batch = ? OR lot = ?)", f.ID, f.ID)
	}
	if f.Lot != "" {
		w.add("lot = ?", f.Lot)
	}
	if f.GTIN != "" {
		w.add("gtin = ?", f.GTIN)
	}
	if !f.To.IsZero() {
		w.add("started_at < ?", secFloor(f.To.Add(time.Second)))
	}
	if !f.From.IsZero() {
		w.add("(closed_at IS NULL OR closed_at >= ?)", secFloor(f.From))
	}
	return w
}

// Batches implements store.Store.
func (s *Store) Batches(ctx context.Context, f store.BatchFilter) ([]store.Batch, error) {
	w := batchWhere(f)
	if f.Limit <= 0 {
		f.Limit = 1000
	}
	order := "started_at DESC, edge, batch"
	if f.OldestFirst {
		order = "started_at, edge, batch"
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+batchCols+` FROM batches`+w.sql()+` ORDER BY `+order+` LIMIT ?`, append(w.args, f.Limit)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Batch
	for rows.Next() {
		b, err := scanBatch(rows)
		if err != nil {
			return nil, err
		}
		// Exact bounds (the SQL bounds are whole seconds, see secFloor).
		if !f.To.IsZero() && !b.StartedAt.Before(f.To) {
			continue
		}
		if !f.From.IsZero() && !b.ClosedAt.IsZero() && b.ClosedAt.Before(f.From) {
			continue
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

func unitWhere(f store.UnitFilter) (where, error) {
	var w where
	if f.Empty() {
		return w, errors.New("unit query without a filter")
	}
	if f.Edge != "" {
		w.add("edge = ?", f.Edge)
	}
	if f.Batch != "" {
		w.add("batch = ?", f.Batch)
	}
	if f.Lot != "" {
		w.add("lot = ?", f.Lot)
	}
	if f.Parent != "" {
		w.add("parent = ?", f.Parent)
	}
	if f.Serial != "" {
		w.add("serial = ?", f.Serial)
	}
	if f.GTIN != "" {
		w.add("gtin = ?", f.GTIN)
	}
	if !f.From.IsZero() {
		w.add("commissioned_at >= ?", secFloor(f.From))
	}
	if !f.To.IsZero() {
		w.add("commissioned_at < ?", secFloor(f.To.Add(time.Second)))
	}
	return w, nil
}

func inRange(t, from, to time.Time) bool {
	return (from.IsZero() || !t.Before(from)) && (to.IsZero() || t.Before(to))
}

const unitCols = `gtin, serial, batch, lot, expiry, edge, status, reason, disposition, grade, parent, commissioned_at, verified_at`

func scanUnit(r scanner) (store.Unit, error) {
	var u store.Unit
	var batch, lot, exp, reason, disp, parent, at, vat sql.NullString
	var grade sql.NullFloat64
	err := r.Scan(&u.GTIN, &u.Serial, &batch, &lot, &exp, &u.Edge, &u.Status, &reason, &disp, &grade, &parent, &at, &vat)
	u.Batch, u.Lot, u.Expiry, u.Reason, u.Disposition, u.Parent, u.Grade = batch.String, lot.String, exp.String, reason.String, disp.String, parent.String, grade.Float64
	u.CommissionedAt, u.VerifiedAt = parseTS(at), parseTS(vat)
	return u, err
}

// ScanUnits implements store.Queries.
func (s *Store) ScanUnits(ctx context.Context, f store.UnitFilter, fn func(store.Unit) error) error {
	w, err := unitWhere(f)
	if err != nil {
		return err
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+unitCols+` FROM units`+w.sql()+` ORDER BY gtin, serial`, w.args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		u, err := scanUnit(rows)
		if err != nil {
			return err
		}
		if !inRange(u.CommissionedAt, f.From, f.To) {
			continue
		}
		if err := fn(u); err != nil {
			return err
		}
	}
	return rows.Err()
}

// CountUnits implements store.Queries.
func (s *Store) CountUnits(ctx context.Context, f store.UnitFilter) (int64, error) {
	if !f.From.IsZero() || !f.To.IsZero() {
		var n int64
		err := s.ScanUnits(ctx, f, func(store.Unit) error { n++; return nil })
		return n, err
	}
	w, err := unitWhere(f)
	if err != nil {
		return 0, err
	}
	var n int64
	err = s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM units`+w.sql(), w.args...).Scan(&n)
	return n, err
}

// containerWhere is the WHERE of a container filter.
func containerWhere(f store.ContainerFilter) where {
	var w where
	if f.SSCC != "" {
		w.add("sscc = ?", f.SSCC)
	}
	if f.Edge != "" {
		w.add("edge = ?", f.Edge)
	}
	if f.Batch != "" {
		w.add("batch = ?", f.Batch)
	}
	if f.Parent != "" {
		w.add("parent = ?", f.Parent)
	}
	if f.Lot != "" {
		w.add("EXISTS (SELECT 1 FROM batches b WHERE b.lot = ? AND b.batch = containers.batch AND b.edge = containers.edge)", f.Lot)
	}
	if f.OpenOnly {
		w.add("closed = 0")
	}
	if f.PartialOnly {
		w.add("closed = 1 AND partial = 1")
	}
	return w
}

// Containers implements store.Store.
func (s *Store) Containers(ctx context.Context, f store.ContainerFilter) ([]store.Container, error) {
	if f.Limit <= 0 {
		f.Limit = 1000
	}
	w := containerWhere(f)
	rows, err := s.r.QueryContext(ctx, `SELECT `+containerCols+` FROM containers`+w.sql()+` ORDER BY sscc LIMIT ?`, append(w.args, f.Limit)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Container
	for rows.Next() {
		c, err := scanContainer(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// ScanContainers implements store.Queries.
func (s *Store) ScanContainers(ctx context.Context, f store.ContainerFilter, fn func(store.Container) error) error {
	if !f.Located() {
		return errors.New("container query without a filter")
	}
	w := containerWhere(f)
	rows, err := s.r.QueryContext(ctx, `SELECT `+containerCols+` FROM containers`+w.sql()+` ORDER BY sscc`, w.args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		c, err := scanContainer(rows)
		if err != nil {
			return err
		}
		if err := fn(c); err != nil {
			return err
		}
	}
	return rows.Err()
}

func recordWhere(f store.RecordFilter) (where, error) {
	var w where
	if f.Edge == "" {
		return w, errors.New("record query without an edge")
	}
	w.add("edge = ?", f.Edge)
	if !f.From.IsZero() {
		w.add("rec_time >= ?", f.From.UnixNano())
	}
	if !f.To.IsZero() {
		w.add("rec_time <= ?", f.To.UnixNano())
	}
	if f.Epoch != 0 {
		w.add("epoch = ?", f.Epoch)
	}
	if f.FromSeq != 0 {
		w.add("seq >= ?", f.FromSeq)
	}
	if f.ToSeq != 0 {
		w.add("seq <= ?", f.ToSeq)
	}
	if len(f.Kinds) > 0 {
		ph := make([]string, len(f.Kinds))
		for i, k := range f.Kinds {
			ph[i] = "?"
			w.args = append(w.args, string(k))
		}
		w.conds = append(w.conds, "kind IN ("+strings.Join(ph, ", ")+")")
	}
	return w, nil
}

// ScanRecords implements store.Queries. A time window is first turned
// into seq bounds per epoch (index records_edge_time), so the scan runs
// along the primary key in chain order without sorting.
func (s *Store) ScanRecords(ctx context.Context, f store.RecordFilter, fn func(store.Stored) error) error {
	w, err := recordWhere(f)
	if err != nil {
		return err
	}
	type span struct {
		epoch    uint32
		min, max uint64
	}
	var spans []span
	if (!f.From.IsZero() || !f.To.IsZero()) && f.FromSeq == 0 && f.ToSeq == 0 {
		tw, _ := recordWhere(store.RecordFilter{Edge: f.Edge, From: f.From, To: f.To, Epoch: f.Epoch})
		rows, err := s.r.QueryContext(ctx, `SELECT epoch, MIN(seq), MAX(seq) FROM records`+tw.sql()+` GROUP BY epoch ORDER BY epoch`, tw.args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var sp span
			if err := rows.Scan(&sp.epoch, &sp.min, &sp.max); err != nil {
				rows.Close()
				return err
			}
			spans = append(spans, sp)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(spans) == 0 {
			return nil
		}
	} else {
		spans = []span{{}}
	}
	for _, sp := range spans {
		q := w
		q.conds = append([]string(nil), w.conds...)
		q.args = append([]any(nil), w.args...)
		if sp.max != 0 {
			q.add("epoch = ? AND seq >= ? AND seq <= ?", sp.epoch, sp.min, sp.max)
		}
		if err := s.scanRecords(ctx, q, f.Edge, fn); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) scanRecords(ctx context.Context, w where, edge string, fn func(store.Stored) error) error {
	rows, err := s.r.QueryContext(ctx, `SELECT canonical, sig, hash FROM records`+w.sql()+` ORDER BY epoch, seq`, w.args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var canon, sig, hash []byte
		if err := rows.Scan(&canon, &sig, &hash); err != nil {
			return err
		}
		r, err := record.Decode(canon)
		if err != nil {
			return fmt.Errorf("stored record of %s: %w", edge, err)
		}
		if len(sig) > 0 {
			r.Sig = append([]byte(nil), sig...)
		}
		st := store.Stored{Record: r}
		copy(st.Hash[:], hash)
		if err := fn(st); err != nil {
			return err
		}
	}
	return rows.Err()
}

// CountRecordsIn implements store.Queries.
func (s *Store) CountRecordsIn(ctx context.Context, f store.RecordFilter) (int64, error) {
	w, err := recordWhere(f)
	if err != nil {
		return 0, err
	}
	var n int64
	err = s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM records`+w.sql(), w.args...).Scan(&n)
	return n, err
}

// RecordEdges implements store.Queries.
func (s *Store) RecordEdges(ctx context.Context, from, to time.Time) ([]string, error) {
	if to.IsZero() {
		to = time.Unix(0, 1<<62)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT id FROM edges e WHERE EXISTS (SELECT 1 FROM records r WHERE r.edge = e.id AND r.rec_time >= ? AND r.rec_time <= ?) ORDER BY id`, from.UnixNano(), to.UnixNano())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

const shipmentCols = `id, dest_gln, dest_name, ship_from, reference, shipped_at, by_user, body, rec_edge, rec_epoch, rec_seq`

func (s *Store) shipments(ctx context.Context, q string, args ...any) ([]store.Shipment, error) {
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	var out []store.Shipment
	for rows.Next() {
		var sh store.Shipment
		var name, from, ref, by sql.NullString
		var at, body string
		if err := rows.Scan(&sh.ID, &sh.Destination.GLN, &name, &from, &ref, &at, &by, &body, &sh.Record.Edge, &sh.Record.Epoch, &sh.Record.Seq); err != nil {
			rows.Close()
			return nil, err
		}
		sh.Destination.Name, sh.ShipFrom, sh.Reference, sh.By = name.String, from.String, ref.String, by.String
		sh.ShippedAt, _ = time.Parse(time.RFC3339Nano, at)
		sh.Body = json.RawMessage(body)
		out = append(out, sh)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range out {
		rows, err := s.r.QueryContext(ctx, `SELECT sscc FROM shipment_containers WHERE shipment = ? ORDER BY sscc`, out[i].ID)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var c string
			if err := rows.Scan(&c); err != nil {
				rows.Close()
				return nil, err
			}
			out[i].Containers = append(out[i].Containers, c)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Shipment implements store.Queries.
func (s *Store) Shipment(ctx context.Context, id string) (store.Shipment, error) {
	l, err := s.shipments(ctx, `SELECT `+shipmentCols+` FROM shipments WHERE id = ?`, id)
	if err != nil {
		return store.Shipment{}, err
	}
	if len(l) == 0 {
		return store.Shipment{}, fmt.Errorf("shipment %s: %w", id, store.ErrNotFound)
	}
	return l[0], nil
}

// ShipmentOf implements store.Queries.
func (s *Store) ShipmentOf(ctx context.Context, sscc string) (store.Shipment, error) {
	l, err := s.shipments(ctx, `SELECT `+shipmentCols+` FROM shipments WHERE id = (SELECT shipment FROM shipment_containers WHERE sscc = ?)`, sscc)
	if err != nil {
		return store.Shipment{}, err
	}
	if len(l) == 0 {
		return store.Shipment{}, fmt.Errorf("shipment of %s: %w", sscc, store.ErrNotFound)
	}
	return l[0], nil
}

// Shipments implements store.Queries.
func (s *Store) Shipments(ctx context.Context, f store.ShipmentFilter) ([]store.Shipment, error) {
	var w where
	if !f.From.IsZero() {
		w.add("shipped_at >= ?", secFloor(f.From))
	}
	if !f.To.IsZero() {
		w.add("shipped_at < ?", secFloor(f.To.Add(time.Second)))
	}
	if f.Batch != "" {
		w.add(`id IN (SELECT sc.shipment FROM shipment_containers sc JOIN containers c ON c.sscc = sc.sscc WHERE c.batch = ? AND (? = '' OR c.edge = ?))`, f.Batch, f.Edge, f.Edge)
	}
	if f.Lot != "" {
		w.add(`id IN (SELECT sc.shipment FROM shipment_containers sc JOIN containers c ON c.sscc = sc.sscc JOIN batches b ON b.batch = c.batch AND b.edge = c.edge WHERE b.lot = ?)`, f.Lot)
	}
	if f.Limit <= 0 {
		f.Limit = 1000
	}
	l, err := s.shipments(ctx, `SELECT `+shipmentCols+` FROM shipments`+w.sql()+` ORDER BY shipped_at, id LIMIT ?`, append(w.args, f.Limit)...)
	if err != nil {
		return nil, err
	}
	out := l[:0]
	for _, sh := range l {
		if inRange(sh.ShippedAt, f.From, f.To) {
			out = append(out, sh)
		}
	}
	return out, nil
}
