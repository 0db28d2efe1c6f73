package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/sync/record"
)

// migrationShipments is migration 4 (see migrations).
const migrationShipments = `
CREATE TABLE IF NOT EXISTS shipments (
  id TEXT PRIMARY KEY, dest_gln TEXT NOT NULL, dest_name TEXT, ship_from TEXT, reference TEXT, shipped_at TIMESTAMPTZ NOT NULL,
  by_user TEXT, body JSONB NOT NULL, rec_edge TEXT NOT NULL, rec_epoch BIGINT NOT NULL, rec_seq BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS shipments_at ON shipments(shipped_at);
CREATE TABLE IF NOT EXISTS shipment_containers (sscc TEXT PRIMARY KEY, shipment TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS shipment_containers_shipment ON shipment_containers(shipment);
CREATE INDEX IF NOT EXISTS records_edge_time ON records (edge, rec_time);
CREATE INDEX IF NOT EXISTS units_edge_batch ON units(edge, batch);
`

var _ store.Queries = (*Store)(nil)

// queueShipped projects a shipment. A shipment id or an SSCC already
// shipped is kept as a conflict (compliance alert), never a failed Append:
// the journal record is valid evidence and is stored anyway.
func queueShipped(b *pgx.Batch, op store.Op) {
	sh := op.Shipped
	body, _ := json.Marshal(sh)
	at, err := time.Parse(time.RFC3339Nano, sh.ShippedAt)
	if err != nil {
		at = op.At
	}
	from := ""
	if sh.ShipFrom != nil {
		from = sh.ShipFrom.GLN
	}
	b.Queue(`WITH ins AS (INSERT INTO shipments (id, dest_gln, dest_name, ship_from, reference, shipped_at, by_user, body, rec_edge, rec_epoch, rec_seq)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (id) DO NOTHING RETURNING 1)
		INSERT INTO conflicts (edge, kind, key, other_edge, at)
		SELECT $9, 'shipment', $1, s.rec_edge, $12 FROM shipments s WHERE s.id = $1 AND NOT EXISTS (SELECT 1 FROM ins)`,
		sh.Shipment, sh.Destination.GLN, sh.Destination.Name, from, sh.Reference, at, sh.By, string(body), op.Ref.Edge, int64(op.Ref.Epoch), int64(op.Ref.Seq), op.At)
	for _, sscc := range sh.Containers {
		// Only when this record's shipment row is the stored one (not a
		// conflicting duplicate id).
		b.Queue(`WITH ins AS (INSERT INTO shipment_containers (sscc, shipment)
			SELECT $1, $2 WHERE EXISTS (SELECT 1 FROM shipments WHERE id = $2 AND rec_edge = $3 AND rec_epoch = $4 AND rec_seq = $5)
			ON CONFLICT (sscc) DO NOTHING RETURNING 1)
			INSERT INTO conflicts (edge, kind, key, other_edge, at)
			SELECT $3, 'shipped', '(00)' || $1, s.rec_edge, $6 FROM shipment_containers c JOIN shipments s ON s.id = c.shipment
			WHERE c.sscc = $1 AND c.shipment <> $2 AND NOT EXISTS (SELECT 1 FROM ins)`,
			sscc, sh.Shipment, op.Ref.Edge, int64(op.Ref.Epoch), int64(op.Ref.Seq), op.At)
	}
}

// where builds "a AND b" with $n placeholders (conditions are written
// with ?).
type where struct {
	conds []string
	args  []any
}

// add appends a condition written with ? placeholders.
func (w *where) add(cond string, args ...any) {
	for _, a := range args {
		w.args = append(w.args, a)
		cond = strings.Replace(cond, "?", fmt.Sprintf("$%d", len(w.args)), 1)
	}
	w.conds = append(w.conds, cond)
}

func (w *where) sql() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

func (w *where) next() string { return fmt.Sprintf("$%d", len(w.args)+1) }

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
		w.add("started_at < ?", f.To)
	}
	if !f.From.IsZero() {
		w.add("(closed_at IS NULL OR closed_at >= ?)", f.From)
	}
	return w
}

// Batches implements store.Store.
func (s *Store) Batches(ctx context.Context, f store.BatchFilter) ([]store.Batch, error) {
	w := batchWhere(f)
	if f.Limit <= 0 {
		f.Limit = 1000
	}
	order := "started_at DESC NULLS LAST, edge, batch"
	if f.OldestFirst {
		order = "started_at NULLS LAST, edge, batch"
	}
	rows, err := s.pool.Query(ctx, `SELECT `+batchCols+` FROM batches`+w.sql()+` ORDER BY `+order+` LIMIT `+w.next(), append(w.args, f.Limit)...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Batch, error) { return scanBatch(r) })
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
		w.add("commissioned_at >= ?", f.From)
	}
	if !f.To.IsZero() {
		w.add("commissioned_at < ?", f.To)
	}
	return w, nil
}

const unitCols = `gtin, serial, batch, lot, expiry, edge, status, reason, disposition, grade, parent, commissioned_at, verified_at`

func scanUnit(r pgx.Row) (store.Unit, error) {
	var u store.Unit
	var batch, lot, exp, reason, disp, parent *string
	var grade *float64
	var at, vat *time.Time
	err := r.Scan(&u.GTIN, &u.Serial, &batch, &lot, &exp, &u.Edge, &u.Status, &reason, &disp, &grade, &parent, &at, &vat)
	u.Batch, u.Lot, u.Expiry, u.Reason, u.Disposition, u.Parent = deref(batch), deref(lot), deref(exp), deref(reason), deref(disp), deref(parent)
	if grade != nil {
		u.Grade = *grade
	}
	u.CommissionedAt, u.VerifiedAt = tv(at), tv(vat)
	return u, err
}

// ScanUnits implements store.Queries.
func (s *Store) ScanUnits(ctx context.Context, f store.UnitFilter, fn func(store.Unit) error) error {
	w, err := unitWhere(f)
	if err != nil {
		return err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+unitCols+` FROM units`+w.sql()+` ORDER BY gtin, serial`, w.args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		u, err := scanUnit(rows)
		if err != nil {
			return err
		}
		if err := fn(u); err != nil {
			return err
		}
	}
	return rows.Err()
}

// CountUnits implements store.Queries.
func (s *Store) CountUnits(ctx context.Context, f store.UnitFilter) (int64, error) {
	w, err := unitWhere(f)
	if err != nil {
		return 0, err
	}
	var n int64
	err = s.pool.QueryRow(ctx, `SELECT COUNT(*) FROM units`+w.sql(), w.args...).Scan(&n)
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
		w.add("NOT closed")
	}
	if f.PartialOnly {
		w.add("closed AND partial")
	}
	return w
}

// Containers implements store.Store.
func (s *Store) Containers(ctx context.Context, f store.ContainerFilter) ([]store.Container, error) {
	if f.Limit <= 0 {
		f.Limit = 1000
	}
	w := containerWhere(f)
	rows, err := s.pool.Query(ctx, `SELECT `+containerCols+` FROM containers`+w.sql()+` ORDER BY sscc LIMIT `+w.next(), append(w.args, f.Limit)...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Container, error) { return scanContainer(r) })
}

// ScanContainers implements store.Queries.
func (s *Store) ScanContainers(ctx context.Context, f store.ContainerFilter, fn func(store.Container) error) error {
	if !f.Located() {
		return errors.New("container query without a filter")
	}
	w := containerWhere(f)
	rows, err := s.pool.Query(ctx, `SELECT `+containerCols+` FROM containers`+w.sql()+` ORDER BY sscc`, w.args...)
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
		w.add("rec_time >= ?", f.From)
	}
	if !f.To.IsZero() {
		w.add("rec_time <= ?", f.To)
	}
	if f.Epoch != 0 {
		w.add("epoch = ?", int64(f.Epoch))
	}
	if f.FromSeq != 0 {
		w.add("seq >= ?", int64(f.FromSeq))
	}
	if f.ToSeq != 0 {
		w.add("seq <= ?", int64(f.ToSeq))
	}
	if len(f.Kinds) > 0 {
		kinds := make([]string, len(f.Kinds))
		for i, k := range f.Kinds {
			kinds[i] = string(k)
		}
		w.add("kind = ANY(?)", kinds)
	}
	return w, nil
}

// ScanRecords implements store.Queries (in chain order).
func (s *Store) ScanRecords(ctx context.Context, f store.RecordFilter, fn func(store.Stored) error) error {
	w, err := recordWhere(f)
	if err != nil {
		return err
	}
	rows, err := s.pool.Query(ctx, `SELECT canonical, sig, hash FROM records`+w.sql()+` ORDER BY epoch, seq`, w.args...)
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
			return fmt.Errorf("stored record of %s: %w", f.Edge, err)
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
	err = s.pool.QueryRow(ctx, `SELECT COUNT(*) FROM records`+w.sql(), w.args...).Scan(&n)
	return n, err
}

// RecordEdges implements store.Queries.
func (s *Store) RecordEdges(ctx context.Context, from, to time.Time) ([]string, error) {
	if to.IsZero() {
		to = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	rows, err := s.pool.Query(ctx, `SELECT id FROM edges e WHERE EXISTS (SELECT 1 FROM records r WHERE r.edge = e.id AND r.rec_time >= $1 AND r.rec_time <= $2) ORDER BY id`, from, to)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

const shipmentCols = `s.id, s.dest_gln, s.dest_name, s.ship_from, s.reference, s.shipped_at, s.by_user, s.body::text, s.rec_edge, s.rec_epoch, s.rec_seq,
	ARRAY(SELECT sscc FROM shipment_containers c WHERE c.shipment = s.id ORDER BY sscc)`

func (s *Store) shipments(ctx context.Context, q string, args ...any) ([]store.Shipment, error) {
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Shipment, error) {
		var sh store.Shipment
		var name, from, ref, by *string
		var body string
		var epoch, seq int64
		err := r.Scan(&sh.ID, &sh.Destination.GLN, &name, &from, &ref, &sh.ShippedAt, &by, &body, &sh.Record.Edge, &epoch, &seq, &sh.Containers)
		sh.Destination.Name, sh.ShipFrom, sh.Reference, sh.By = deref(name), deref(from), deref(ref), deref(by)
		sh.Record.Epoch, sh.Record.Seq = uint32(epoch), uint64(seq)
		sh.Body = json.RawMessage(body)
		return sh, err
	})
}

// Shipment implements store.Queries.
func (s *Store) Shipment(ctx context.Context, id string) (store.Shipment, error) {
	l, err := s.shipments(ctx, `SELECT `+shipmentCols+` FROM shipments s WHERE s.id = $1`, id)
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
	l, err := s.shipments(ctx, `SELECT `+shipmentCols+` FROM shipments s WHERE s.id = (SELECT shipment FROM shipment_containers WHERE sscc = $1)`, sscc)
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
		w.add("s.shipped_at >= ?", f.From)
	}
	if !f.To.IsZero() {
		w.add("s.shipped_at < ?", f.To)
	}
	if f.Batch != "" {
		w.add(`s.id IN (SELECT sc.shipment FROM shipment_containers sc JOIN containers c ON c.sscc = sc.sscc WHERE c.batch = ? AND (? = '' OR c.edge = ?))`, f.Batch, f.Edge, f.Edge)
	}
	if f.Lot != "" {
		w.add(`s.id IN (SELECT sc.shipment FROM shipment_containers sc JOIN containers c ON c.sscc = sc.sscc JOIN batches b ON b.batch = c.batch AND b.edge = c.edge WHERE b.lot = ?)`, f.Lot)
	}
	if f.Limit <= 0 {
		f.Limit = 1000
	}
	return s.shipments(ctx, `SELECT `+shipmentCols+` FROM shipments s`+w.sql()+` ORDER BY s.shipped_at, s.id LIMIT `+w.next(), append(w.args, f.Limit)...)
}
