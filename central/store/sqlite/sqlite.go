// Package sqlite is central's embedded compliance store (modernc.org/sqlite,
// pure Go): WAL, synchronous=FULL (a commit is durable before central
// acknowledges), one writer connection, a pool of readers.
package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	_ "modernc.org/sqlite" // driver "sqlite"

	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/sync/record"
	"github.com/serialine/serialine/sync/wire"
)

// Store is the SQLite store.
type Store struct {
	w    *sql.DB // one connection: all writes
	r    *sql.DB // readers
	path string
}

var _ store.Store = (*Store)(nil)

var migrations = []string{`
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE edges (
  id TEXT PRIMARY KEY, public_key BLOB NOT NULL, enrolled_by TEXT NOT NULL, enrolled_at TEXT NOT NULL);
CREATE TABLE edge_heads (
  edge TEXT PRIMARY KEY, epoch INTEGER NOT NULL, seq INTEGER NOT NULL, hash BLOB NOT NULL, records INTEGER NOT NULL DEFAULT 0);
CREATE TABLE records (
  edge TEXT NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL, rec_time INTEGER NOT NULL,
  hash BLOB NOT NULL, canonical BLOB NOT NULL, sig BLOB, stored_at INTEGER NOT NULL,
  PRIMARY KEY (edge, epoch, seq)) WITHOUT ROWID;
CREATE INDEX records_time ON records(rec_time);
CREATE INDEX records_kind ON records(edge, kind);
CREATE TABLE quarantine (
  id INTEGER PRIMARY KEY AUTOINCREMENT, edge TEXT NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL,
  reason TEXT NOT NULL, payload BLOB, at TEXT NOT NULL);
CREATE INDEX quarantine_edge ON quarantine(edge);
CREATE TABLE line_status (edge TEXT PRIMARY KEY, status TEXT NOT NULL, last_seen TEXT NOT NULL);
CREATE TABLE line_counters (
  edge TEXT PRIMARY KEY, good INTEGER NOT NULL DEFAULT 0, rejected INTEGER NOT NULL DEFAULT 0,
  cases INTEGER NOT NULL DEFAULT 0, pallets INTEGER NOT NULL DEFAULT 0);
CREATE TABLE batches (
  batch TEXT NOT NULL, edge TEXT NOT NULL, line TEXT, gtin TEXT, lot TEXT, expiry TEXT, product TEXT, planned INTEGER,
  state TEXT, started_at TEXT, closed_at TEXT, reconciliation TEXT, PRIMARY KEY (edge, batch));
CREATE INDEX batches_lot ON batches(lot);
CREATE TABLE units (
  gtin TEXT NOT NULL, serial TEXT NOT NULL, batch TEXT, lot TEXT, expiry TEXT, edge TEXT NOT NULL,
  status TEXT NOT NULL, reason TEXT, disposition TEXT, grade REAL, parent TEXT, commissioned_at TEXT, verified_at TEXT,
  PRIMARY KEY (gtin, serial)) WITHOUT ROWID;
CREATE INDEX units_serial ON units(serial);
CREATE INDEX units_lot ON units(lot);
CREATE INDEX units_parent ON units(parent);
CREATE TABLE containers (
  sscc TEXT PRIMARY KEY, level TEXT NOT NULL, batch TEXT, edge TEXT NOT NULL, parent TEXT,
  closed INTEGER NOT NULL DEFAULT 0, partial INTEGER NOT NULL DEFAULT 0, count INTEGER NOT NULL DEFAULT 0, closed_at TEXT);
CREATE INDEX containers_parent ON containers(parent);
CREATE INDEX containers_batch ON containers(batch);
CREATE TABLE container_children (parent TEXT NOT NULL, child TEXT NOT NULL, PRIMARY KEY (parent, child)) WITHOUT ROWID;
CREATE INDEX container_children_child ON container_children(child);
`,
	// 2: identifiers used by two edges (compliance alerts).
	`
CREATE TABLE conflicts (
  id INTEGER PRIMARY KEY AUTOINCREMENT, edge TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL,
  other_edge TEXT NOT NULL, at TEXT NOT NULL);
CREATE INDEX conflicts_edge ON conflicts(edge);
`,
	// 3: alerts for QA and ops.
	`
CREATE TABLE alerts (
  id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, severity TEXT NOT NULL, code TEXT NOT NULL, key TEXT,
  edge TEXT, message TEXT NOT NULL, ref TEXT, active INTEGER NOT NULL DEFAULT 1,
  acked_by TEXT, acked_at TEXT, cleared_at TEXT);
CREATE UNIQUE INDEX alerts_active_key ON alerts(key) WHERE active = 1 AND key IS NOT NULL;
CREATE INDEX alerts_at ON alerts(at);
`,
	// 4: equipment registry, downtime, calibration (equipment.go).
	migrationEquipment,
	// 5: edge key history (rotation with an overlap), trace indexes.
	`
CREATE TABLE edge_keys (
  edge TEXT NOT NULL, public_key BLOB NOT NULL, valid_from INTEGER, valid_until INTEGER,
  enrolled_by TEXT NOT NULL, enrolled_at TEXT NOT NULL, PRIMARY KEY (edge, public_key));
INSERT INTO edge_keys (edge, public_key, enrolled_by, enrolled_at) SELECT id, public_key, enrolled_by, enrolled_at FROM edges;
CREATE INDEX batches_gtin ON batches(gtin);
CREATE INDEX units_gtin_lot ON units(gtin, lot);
`,
	// 6: users, sessions, the audit trail projection, batch release and
	// partial-close approval (21 CFR Part 11).
	migrationPart11,
	// 7: shipments (central's journal) and the indexes trace, export and
	// reports read by (IF NOT EXISTS: safe to reorder with other additions).
	migrationShipments,
}

// Open opens or creates the database file and applies migrations.
func Open(ctx context.Context, path string) (*Store, error) {
	q := url.Values{}
	for _, p := range []string{"journal_mode(WAL)", "synchronous(FULL)", "busy_timeout(10000)", "foreign_keys(1)"} {
		q.Add("_pragma", p)
	}
	dsn := "file:" + path + "?" + q.Encode()
	w, err := sql.Open("sqlite", dsn+"&_txlock=immediate")
	if err != nil {
		return nil, err
	}
	w.SetMaxOpenConns(1)
	r, err := sql.Open("sqlite", dsn+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, err
	}
	r.SetMaxOpenConns(8)
	s := &Store{w: w, r: r, path: path}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite %s: %w", path, err)
	}
	return s, nil
}

func (s *Store) migrate(ctx context.Context) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var v int
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return err
	}
	if err := tx.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&v); errors.Is(err, sql.ErrNoRows) {
		v = 0
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version VALUES (0)`); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	if v > len(migrations) {
		return fmt.Errorf("database schema version %d is newer than this build (%d)", v, len(migrations))
	}
	for ; v < len(migrations); v++ {
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			return fmt.Errorf("migration %d: %w", v+1, err)
		}
		if migrations[v] == migrationPart11 {
			if err := backfillPart11(ctx, tx); err != nil {
				return fmt.Errorf("migration %d: %w", v+1, err)
			}
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE schema_version SET version = ?`, v); err != nil {
		return err
	}
	return tx.Commit()
}

// Close closes the database; safe twice.
func (s *Store) Close() error {
	if s == nil || s.w == nil {
		return nil
	}
	err := errors.Join(s.w.Close(), s.r.Close())
	return err
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func parseTS(s sql.NullString) time.Time {
	if !s.Valid {
		return time.Time{}
	}
	t, _ := time.Parse(time.RFC3339Nano, s.String)
	return t
}

// EnrollEdge implements store.Store.
func (s *Store) EnrollEdge(ctx context.Context, e store.Edge) error {
	if e.EnrolledAt.IsZero() {
		e.EnrolledAt = time.Now()
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var key []byte
	err = tx.QueryRowContext(ctx, `SELECT public_key FROM edges WHERE id = ?`, e.ID).Scan(&key)
	switch {
	case err == nil:
		if string(key) == string(e.PublicKey) {
			return nil
		}
		return fmt.Errorf("edge %s: %w with another key", e.ID, store.ErrExists)
	case !errors.Is(err, sql.ErrNoRows):
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO edges VALUES (?, ?, ?, ?)`, e.ID, []byte(e.PublicKey), e.EnrolledBy, ts(e.EnrolledAt)); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO edge_keys (edge, public_key, enrolled_by, enrolled_at) VALUES (?, ?, ?, ?)`, e.ID, []byte(e.PublicKey), e.EnrolledBy, ts(e.EnrolledAt)); err != nil {
		return err
	}
	return tx.Commit()
}

func nanos(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

func fromNanos(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64).UTC()
}

// RotateEdgeKey implements store.Store.
func (s *Store) RotateEdgeKey(ctx context.Context, k store.EdgeKey, overlap time.Duration) error {
	if k.EnrolledAt.IsZero() {
		k.EnrolledAt = time.Now()
	}
	if k.ValidFrom.IsZero() {
		k.ValidFrom = k.EnrolledAt
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM edges WHERE id = ?`, k.Edge).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("edge %s: %w", k.Edge, store.ErrNotFound)
	}
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM edge_keys WHERE edge = ? AND public_key = ?`, k.Edge, k.PublicKey).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return fmt.Errorf("edge %s: key %w", k.Edge, store.ErrExists)
	}
	end := k.ValidFrom.Add(overlap).UnixNano()
	if _, err := tx.ExecContext(ctx, `UPDATE edge_keys SET valid_until = ? WHERE edge = ? AND (valid_until IS NULL OR valid_until > ?)`, end, k.Edge, end); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO edge_keys (edge, public_key, valid_from, valid_until, enrolled_by, enrolled_at) VALUES (?, ?, ?, ?, ?, ?)`,
		k.Edge, k.PublicKey, nanos(k.ValidFrom), nanos(k.ValidUntil), k.EnrolledBy, ts(k.EnrolledAt)); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE edges SET public_key = ? WHERE id = ?`, k.PublicKey, k.Edge); err != nil {
		return err
	}
	return tx.Commit()
}

// EdgeKeys implements store.Store.
func (s *Store) EdgeKeys(ctx context.Context, edge string) ([]store.EdgeKey, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT edge, public_key, valid_from, valid_until, enrolled_by, enrolled_at FROM edge_keys WHERE edge = ? ORDER BY COALESCE(valid_from, 0), enrolled_at`, edge)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.EdgeKey
	for rows.Next() {
		var k store.EdgeKey
		var from, until sql.NullInt64
		var at string
		if err := rows.Scan(&k.Edge, &k.PublicKey, &from, &until, &k.EnrolledBy, &at); err != nil {
			return nil, err
		}
		k.ValidFrom, k.ValidUntil = fromNanos(from), fromNanos(until)
		k.EnrolledAt, _ = time.Parse(time.RFC3339Nano, at)
		out = append(out, k)
	}
	return out, rows.Err()
}

// Epochs implements store.Store.
func (s *Store) Epochs(ctx context.Context, edge string) ([]uint32, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT DISTINCT epoch FROM records WHERE edge = ? ORDER BY epoch`, edge)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []uint32
	for rows.Next() {
		var e uint32
		if err := rows.Scan(&e); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// Edge implements store.Store.
func (s *Store) Edge(ctx context.Context, id string) (store.Edge, error) {
	var e store.Edge
	var at string
	err := s.r.QueryRowContext(ctx, `SELECT id, public_key, enrolled_by, enrolled_at FROM edges WHERE id = ?`, id).Scan(&e.ID, &e.PublicKey, &e.EnrolledBy, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return e, fmt.Errorf("edge %s: %w", id, store.ErrNotFound)
	}
	e.EnrolledAt, _ = time.Parse(time.RFC3339Nano, at)
	return e, err
}

// Edges implements store.Store.
func (s *Store) Edges(ctx context.Context) ([]store.Edge, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, public_key, enrolled_by, enrolled_at FROM edges ORDER BY id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Edge
	for rows.Next() {
		var e store.Edge
		var at string
		if err := rows.Scan(&e.ID, &e.PublicKey, &e.EnrolledBy, &at); err != nil {
			return nil, err
		}
		e.EnrolledAt, _ = time.Parse(time.RFC3339Nano, at)
		out = append(out, e)
	}
	return out, rows.Err()
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func head(ctx context.Context, q querier, edge string) (record.Head, bool, error) {
	var h record.Head
	var hash []byte
	err := q.QueryRowContext(ctx, `SELECT epoch, seq, hash FROM edge_heads WHERE edge = ?`, edge).Scan(&h.Epoch, &h.Seq, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return h, false, nil
	}
	if err != nil {
		return h, false, err
	}
	copy(h.Hash[:], hash)
	return h, true, nil
}

// Head implements store.Store.
func (s *Store) Head(ctx context.Context, edge string) (record.Head, bool, error) {
	return head(ctx, s.r, edge)
}

// Append implements store.Store.
func (s *Store) Append(ctx context.Context, edge string, after record.Head, recs []store.Stored) error {
	if len(recs) == 0 {
		return nil
	}
	ops, counters, err := store.Project(recs)
	if err != nil {
		return err
	}
	eops, err := store.ProjectEquipment(recs)
	if err != nil {
		return err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	cur, ok, err := head(ctx, tx, edge)
	if err != nil {
		return err
	}
	if !store.Continues(cur, ok, after) {
		return fmt.Errorf("edge %s: stored head %d/%d, caller expected %d/%d: %w", edge, cur.Epoch, cur.Seq, after.Epoch, after.Seq, store.ErrConflict)
	}
	if err := insertRecords(ctx, tx, edge, recs); err != nil {
		return err
	}
	last := recs[len(recs)-1]
	n := int64(len(recs))
	if ok && cur.Epoch == last.Record.Epoch {
		_, err = tx.ExecContext(ctx, `UPDATE edge_heads SET epoch = ?, seq = ?, hash = ?, records = records + ? WHERE edge = ?`, last.Record.Epoch, last.Record.Seq, last.Hash[:], n, edge)
	} else {
		_, err = tx.ExecContext(ctx, `INSERT INTO edge_heads (edge, epoch, seq, hash, records) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT(edge) DO UPDATE SET epoch = excluded.epoch, seq = excluded.seq, hash = excluded.hash, records = edge_heads.records + excluded.records`,
			edge, last.Record.Epoch, last.Record.Seq, last.Hash[:], n)
	}
	if err != nil {
		return err
	}
	if err := applyOps(ctx, tx, ops); err != nil {
		return err
	}
	if err := applyEquipment(ctx, tx, eops); err != nil {
		return err
	}
	if counters != (store.Counters{}) {
		if _, err := tx.ExecContext(ctx, `INSERT INTO line_counters (edge, good, rejected, cases, pallets) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT(edge) DO UPDATE SET good = good + excluded.good, rejected = rejected + excluded.rejected,
			cases = cases + excluded.cases, pallets = pallets + excluded.pallets`,
			edge, counters.Good, counters.Rejected, counters.Cases, counters.Pallets); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// insertRow is one row of the multi-row record INSERT (records per statement).
const insertRow = 100

// insertRecords inserts records in multi-row statements (one round trip
// through the driver per 100 records instead of per record).
func insertRecords(ctx context.Context, tx *sql.Tx, edge string, recs []store.Stored) error {
	now := time.Now().UnixNano()
	var full *sql.Stmt
	defer func() {
		if full != nil {
			full.Close()
		}
	}()
	for start := 0; start < len(recs); start += insertRow {
		chunk := recs[start:min(start+insertRow, len(recs))]
		args := make([]any, 0, 9*len(chunk))
		for i := range chunk {
			r := &chunk[i].Record
			args = append(args, edge, r.Epoch, r.Seq, string(r.Kind), r.Time.UnixNano(), chunk[i].Hash[:], r.Canonical(), r.Sig, now)
		}
		var err error
		if len(chunk) == insertRow {
			if full == nil {
				if full, err = tx.PrepareContext(ctx, insertSQL(insertRow)); err != nil {
					return err
				}
			}
			_, err = full.ExecContext(ctx, args...)
		} else {
			_, err = tx.ExecContext(ctx, insertSQL(len(chunk)), args...)
		}
		if err != nil {
			return fmt.Errorf("edge %s seq %d..%d: %w", edge, chunk[0].Record.Seq, chunk[len(chunk)-1].Record.Seq, err)
		}
	}
	return nil
}

func insertSQL(rows int) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO records (edge, epoch, seq, kind, rec_time, hash, canonical, sig, stored_at) VALUES `)
	for i := 0; i < rows; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?)")
	}
	return b.String()
}

func applyOps(ctx context.Context, tx *sql.Tx, ops []store.Op) error {
	prep := map[string]*sql.Stmt{}
	defer func() {
		for _, s := range prep {
			s.Close()
		}
	}()
	var affected int64
	exec := func(q string, args ...any) error {
		st, ok := prep[q]
		if !ok {
			var err error
			if st, err = tx.PrepareContext(ctx, q); err != nil {
				return err
			}
			prep[q] = st
		}
		res, err := st.ExecContext(ctx, args...)
		if err == nil {
			affected, _ = res.RowsAffected()
		}
		return err
	}
	// conflict records an identifier (serial, SSCC) that another edge
	// already uses: a compliance alert, the records are stored anyway.
	conflict := func(op store.Op, kind, key, existsQuery string, args ...any) error {
		var other string
		if err := tx.QueryRowContext(ctx, existsQuery, args...).Scan(&other); err != nil {
			return err
		}
		return exec(`INSERT INTO conflicts (edge, kind, key, other_edge, at) VALUES (?, ?, ?, ?, ?)`, op.Edge, kind, key, other, ts(op.At))
	}
	for _, op := range ops {
		var err error
		at := ts(op.At)
		switch op.Kind {
		case store.OpBatchUpsert:
			err = exec(`INSERT INTO batches (batch, edge, line, gtin, lot, expiry, product, planned, state, started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT(edge, batch) DO UPDATE SET line = excluded.line, gtin = excluded.gtin, lot = excluded.lot, expiry = excluded.expiry,
				product = excluded.product, planned = excluded.planned, state = excluded.state, started_at = COALESCE(batches.started_at, excluded.started_at)`,
				op.Batch, op.Edge, op.Line, op.GTIN, op.Lot, op.Expiry, op.Product, op.Planned, op.State, at)
		case store.OpBatchState:
			err = exec(`UPDATE batches SET state = ? WHERE edge = ? AND batch = ?`, op.State, op.Edge, op.Batch)
		case store.OpBatchClosed:
			err = exec(`UPDATE batches SET state = ?, closed_at = ?, reconciliation = ?, closed_epoch = ?, closed_seq = ? WHERE edge = ? AND batch = ?`, op.State, at, string(op.Reconciliation), op.Epoch, op.Seq, op.Edge, op.Batch)
		case store.OpUnitInsert:
			err = exec(`INSERT INTO units (gtin, serial, batch, lot, expiry, edge, status, commissioned_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (gtin, serial) DO NOTHING`,
				op.GTIN, op.Serial, op.Batch, op.Lot, op.Expiry, op.Edge, op.Status, at)
			if err == nil && affected == 0 {
				err = conflict(op, "serial", "(01)"+op.GTIN+"(21)"+op.Serial, `SELECT edge FROM units WHERE gtin = ? AND serial = ?`, op.GTIN, op.Serial)
			}
		case store.OpUnitStatus:
			if op.Status == "verified" || op.Status == "rejected" {
				err = exec(`UPDATE units SET status = ?, reason = ?, grade = ?, verified_at = ? WHERE gtin = ? AND serial = ? AND edge = ?`, op.Status, op.Reason, op.Grade, at, op.GTIN, op.Serial, op.Edge)
			} else {
				err = exec(`UPDATE units SET status = ?, reason = COALESCE(NULLIF(?, ''), reason), disposition = COALESCE(NULLIF(?, ''), disposition) WHERE gtin = ? AND serial = ? AND edge = ?`, op.Status, op.Reason, op.Disposition, op.GTIN, op.Serial, op.Edge)
			}
		case store.OpUnitDisposition:
			err = exec(`UPDATE units SET disposition = ? WHERE gtin = ? AND serial = ? AND edge = ?`, op.Disposition, op.GTIN, op.Serial, op.Edge)
		case store.OpContainerInsert:
			err = exec(`INSERT INTO containers (sscc, level, batch, edge) VALUES (?, ?, ?, ?) ON CONFLICT (sscc) DO NOTHING`, op.SSCC, op.Level, op.Batch, op.Edge)
			if err == nil && affected == 0 {
				err = conflict(op, "sscc", "(00)"+op.SSCC, `SELECT edge FROM containers WHERE sscc = ?`, op.SSCC)
			}
		case store.OpPack, store.OpUnpack:
			for _, ch := range op.Children {
				if op.Kind == store.OpPack {
					err = exec(`INSERT INTO container_children (parent, child) SELECT ?, ? WHERE EXISTS (SELECT 1 FROM containers WHERE sscc = ? AND edge = ?) ON CONFLICT DO NOTHING`, op.Parent, ch, op.Parent, op.Edge)
				} else {
					err = exec(`DELETE FROM container_children WHERE parent = ? AND child = ? AND EXISTS (SELECT 1 FROM containers WHERE sscc = ? AND edge = ?)`, op.Parent, ch, op.Parent, op.Edge)
				}
				if err != nil {
					break
				}
				parent := op.Parent
				if op.Kind == store.OpUnpack {
					parent = ""
				}
				if gtin, serial, ok := store.SplitUnitID(ch); ok {
					err = exec(`UPDATE units SET parent = NULLIF(?, '') WHERE gtin = ? AND serial = ? AND edge = ?`, parent, gtin, serial, op.Edge)
				} else if sscc, ok := store.ContainerSSCC(ch); ok {
					err = exec(`UPDATE containers SET parent = NULLIF(?, '') WHERE sscc = ? AND edge = ?`, parent, sscc, op.Edge)
				}
				if err != nil {
					break
				}
			}
		case store.OpContainerClosed:
			err = exec(`UPDATE containers SET closed = 1, partial = ?, count = ?, closed_at = ?, closed_epoch = ?, closed_seq = ? WHERE sscc = ? AND edge = ?`, op.Partial, op.Count, at, op.Epoch, op.Seq, op.SSCC, op.Edge)
		case store.OpContainerReopened:
			err = exec(`UPDATE containers SET closed = 0, partial = 0, closed_epoch = NULL, closed_seq = NULL, approved_by = NULL, approved_name = NULL, approved_at = NULL, approval_ref = NULL WHERE sscc = ? AND edge = ?`, op.SSCC, op.Edge)
		case store.OpKeyRetired:
			err = exec(`UPDATE edge_keys SET valid_until = ? WHERE edge = ? AND public_key = ? AND (valid_until IS NULL OR valid_until > ?)`, op.At.UnixNano(), op.Edge, op.PublicKey, op.At.UnixNano())
		case store.OpAudit, store.OpBatchReleased, store.OpContainerApproved:
			err = applyPart11Op(exec, op)
		case store.OpShipped:
			err = applyShipped(ctx, tx, op)
		}
		if err != nil {
			return fmt.Errorf("projection of edge %s: %w", op.Edge, err)
		}
	}
	return nil
}

// Records implements store.Store.
func (s *Store) Records(ctx context.Context, edge string, epoch uint32, from uint64, limit int) ([]store.Stored, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT canonical, sig, hash FROM records WHERE edge = ? AND epoch = ? AND seq >= ? ORDER BY seq LIMIT ?`, edge, epoch, from, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Stored
	for rows.Next() {
		var canon, sig, hash []byte
		if err := rows.Scan(&canon, &sig, &hash); err != nil {
			return nil, err
		}
		r, err := record.Decode(canon)
		if err != nil {
			return nil, fmt.Errorf("stored record of %s: %w", edge, err)
		}
		if len(sig) > 0 {
			r.Sig = sig
		}
		st := store.Stored{Record: r}
		copy(st.Hash[:], hash)
		out = append(out, st)
	}
	return out, rows.Err()
}

// CountRecords implements store.Store.
func (s *Store) CountRecords(ctx context.Context, edge string) (int64, error) {
	var n int64
	err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM records WHERE edge = ?`, edge).Scan(&n)
	return n, err
}

// Quarantine implements store.Store.
func (s *Store) Quarantine(ctx context.Context, q store.Quarantined) error {
	if q.At.IsZero() {
		q.At = time.Now()
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO quarantine (edge, epoch, seq, reason, payload, at) VALUES (?, ?, ?, ?, ?, ?)`, q.Edge, q.Epoch, q.Seq, q.Reason, q.Payload, ts(q.At))
	return err
}

// QuarantineList implements store.Store.
func (s *Store) QuarantineList(ctx context.Context, edge string, limit int) ([]store.Quarantined, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, edge, epoch, seq, reason, payload, at FROM quarantine WHERE (? = '' OR edge = ?) ORDER BY id LIMIT ?`, edge, edge, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Quarantined
	for rows.Next() {
		var q store.Quarantined
		var at string
		if err := rows.Scan(&q.ID, &q.Edge, &q.Epoch, &q.Seq, &q.Reason, &q.Payload, &at); err != nil {
			return nil, err
		}
		q.At, _ = time.Parse(time.RFC3339Nano, at)
		out = append(out, q)
	}
	return out, rows.Err()
}

// UpdateStatus implements store.Store.
func (s *Store) UpdateStatus(ctx context.Context, st wire.Status) error {
	raw, err := json.Marshal(st)
	if err != nil {
		return err
	}
	_, err = s.w.ExecContext(ctx, `INSERT INTO line_status (edge, status, last_seen) VALUES (?, ?, ?)
		ON CONFLICT(edge) DO UPDATE SET status = excluded.status, last_seen = excluded.last_seen`, st.Edge, string(raw), ts(time.Now()))
	return err
}

// Lines implements store.Store.
func (s *Store) Lines(ctx context.Context) ([]store.LineSummary, error) {
	rows, err := s.r.QueryContext(ctx, `
		SELECT e.id, COALESCE(c.good, 0), COALESCE(c.rejected, 0), COALESCE(c.cases, 0), COALESCE(c.pallets, 0),
		       COALESCE(h.epoch, 0), COALESCE(h.seq, 0), h.hash, COALESCE(h.records, 0), st.status, st.last_seen,
		       (SELECT COUNT(*) FROM quarantine q WHERE q.edge = e.id),
		       (SELECT COUNT(*) FROM conflicts x WHERE x.edge = e.id)
		FROM edges e
		LEFT JOIN line_counters c ON c.edge = e.id
		LEFT JOIN edge_heads h ON h.edge = e.id
		LEFT JOIN line_status st ON st.edge = e.id
		WHERE substr(e.id, 1, length(?)) <> ?
		ORDER BY e.id`, store.JournalPrefix, store.JournalPrefix)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.LineSummary
	for rows.Next() {
		var l store.LineSummary
		var hash []byte
		var status, seen sql.NullString
		if err := rows.Scan(&l.Edge, &l.UnitsGood, &l.UnitsRejected, &l.CasesClosed, &l.PalletsClosed,
			&l.Head.Epoch, &l.Head.Seq, &hash, &l.Records, &status, &seen, &l.QuarantinedNum, &l.Conflicts); err != nil {
			return nil, err
		}
		copy(l.Head.Hash[:], hash)
		l.LastSeen = parseTS(seen)
		if status.Valid {
			var ws wire.Status
			if json.Unmarshal([]byte(status.String), &ws) == nil {
				l.LastStatus = &ws
				l.Line, l.State, l.Batch, l.PendingSync = ws.Line, ws.State, ws.Batch, ws.Pending
			}
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// Unit implements store.Store.
func (s *Store) Unit(ctx context.Context, gtin, serial string) (store.Unit, error) {
	var u store.Unit
	var batch, lot, exp, reason, parent, at sql.NullString
	var grade sql.NullFloat64
	err := s.r.QueryRowContext(ctx, `SELECT gtin, serial, batch, lot, expiry, edge, status, reason, grade, parent, commissioned_at FROM units WHERE gtin = ? AND serial = ?`, gtin, serial).
		Scan(&u.GTIN, &u.Serial, &batch, &lot, &exp, &u.Edge, &u.Status, &reason, &grade, &parent, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return u, fmt.Errorf("unit (01)%s(21)%s: %w", gtin, serial, store.ErrNotFound)
	}
	u.Batch, u.Lot, u.Expiry, u.Reason, u.Parent, u.Grade = batch.String, lot.String, exp.String, reason.String, parent.String, grade.Float64
	u.CommissionedAt = parseTS(at)
	return u, err
}

// Container implements store.Store.
func (s *Store) Container(ctx context.Context, sscc string) (store.Container, error) {
	c, err := scanContainer(s.r.QueryRowContext(ctx, `SELECT `+containerCols+` FROM containers WHERE sscc = ?`, sscc))
	if errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("container %s: %w", sscc, store.ErrNotFound)
	}
	if err != nil {
		return c, err
	}
	rows, err := s.r.QueryContext(ctx, `SELECT child FROM container_children WHERE parent = ? ORDER BY child`, sscc)
	if err != nil {
		return c, err
	}
	defer rows.Close()
	for rows.Next() {
		var ch string
		if err := rows.Scan(&ch); err != nil {
			return c, err
		}
		c.Children = append(c.Children, ch)
	}
	return c, rows.Err()
}
