// Package postgres is central's production compliance store (pgx/v5).
//
// Records are in a table partitioned by month of the record time, so years
// of records stay fast to insert, query and archive (old partitions can be
// detached). PostgreSQL requires a partitioned table's unique keys to
// include the partition key, so the primary key is (edge, epoch, seq,
// rec_time). Uniqueness of (edge, epoch, seq) across partitions is
// guaranteed by edge_heads: every Append locks the edge's head row (SELECT
// ... FOR UPDATE), checks that it is the head the caller verified against,
// inserts the records that continue it, and moves it, in one transaction.
// Two central instances can therefore never store the same seq twice.
package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/sync/record"
	"github.com/serialine/serialine/sync/wire"
)

// Store is the PostgreSQL store.
type Store struct {
	pool *pgxpool.Pool

	mu    sync.Mutex
	parts map[string]bool // monthly partitions known to exist
}

var _ store.Store = (*Store)(nil)

var migrations = []string{`
CREATE TABLE edges (
  id TEXT PRIMARY KEY, public_key BYTEA NOT NULL, enrolled_by TEXT NOT NULL, enrolled_at TIMESTAMPTZ NOT NULL);
CREATE TABLE edge_heads (
  edge TEXT PRIMARY KEY, epoch BIGINT NOT NULL, seq BIGINT NOT NULL, hash BYTEA NOT NULL, records BIGINT NOT NULL DEFAULT 0);
CREATE TABLE records (
  edge TEXT NOT NULL, epoch BIGINT NOT NULL, seq BIGINT NOT NULL, kind TEXT NOT NULL, rec_time TIMESTAMPTZ NOT NULL,
  hash BYTEA NOT NULL, canonical BYTEA NOT NULL, sig BYTEA, stored_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (edge, epoch, seq, rec_time)) PARTITION BY RANGE (rec_time);
CREATE TABLE records_default PARTITION OF records DEFAULT;
CREATE INDEX records_edge_seq ON records (edge, epoch, seq);
CREATE INDEX records_kind ON records (edge, kind);
CREATE TABLE quarantine (
  id BIGSERIAL PRIMARY KEY, edge TEXT NOT NULL, epoch BIGINT NOT NULL, seq BIGINT NOT NULL,
  reason TEXT NOT NULL, payload BYTEA, at TIMESTAMPTZ NOT NULL);
CREATE INDEX quarantine_edge ON quarantine(edge);
CREATE TABLE line_status (edge TEXT PRIMARY KEY, status JSONB NOT NULL, last_seen TIMESTAMPTZ NOT NULL);
CREATE TABLE line_counters (
  edge TEXT PRIMARY KEY, good BIGINT NOT NULL DEFAULT 0, rejected BIGINT NOT NULL DEFAULT 0,
  cases BIGINT NOT NULL DEFAULT 0, pallets BIGINT NOT NULL DEFAULT 0);
CREATE TABLE batches (
  batch TEXT NOT NULL, edge TEXT NOT NULL, line TEXT, gtin TEXT, lot TEXT, expiry TEXT, product TEXT, planned INTEGER,
  state TEXT, started_at TIMESTAMPTZ, closed_at TIMESTAMPTZ, reconciliation JSONB, PRIMARY KEY (edge, batch));
CREATE INDEX batches_lot ON batches(lot);
CREATE TABLE units (
  gtin TEXT NOT NULL, serial TEXT NOT NULL, batch TEXT, lot TEXT, expiry TEXT, edge TEXT NOT NULL,
  status TEXT NOT NULL, reason TEXT, disposition TEXT, grade DOUBLE PRECISION, parent TEXT,
  commissioned_at TIMESTAMPTZ, verified_at TIMESTAMPTZ, PRIMARY KEY (gtin, serial));
CREATE INDEX units_serial ON units(serial);
CREATE INDEX units_lot ON units(lot);
CREATE INDEX units_parent ON units(parent);
CREATE TABLE containers (
  sscc TEXT PRIMARY KEY, level TEXT NOT NULL, batch TEXT, edge TEXT NOT NULL, parent TEXT,
  closed BOOLEAN NOT NULL DEFAULT false, partial BOOLEAN NOT NULL DEFAULT false, count INTEGER NOT NULL DEFAULT 0, closed_at TIMESTAMPTZ);
CREATE INDEX containers_parent ON containers(parent);
CREATE INDEX containers_batch ON containers(batch);
CREATE TABLE container_children (parent TEXT NOT NULL, child TEXT NOT NULL, PRIMARY KEY (parent, child));
CREATE INDEX container_children_child ON container_children(child);
`,
	// 2: identifiers used by two edges (compliance alerts).
	`
CREATE TABLE conflicts (
  id BIGSERIAL PRIMARY KEY, edge TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL,
  other_edge TEXT NOT NULL, at TIMESTAMPTZ NOT NULL);
CREATE INDEX conflicts_edge ON conflicts(edge);
`,
	// 3: alerts for QA and ops.
	`
CREATE TABLE alerts (
  id BIGSERIAL PRIMARY KEY, at TIMESTAMPTZ NOT NULL, severity TEXT NOT NULL, code TEXT NOT NULL, key TEXT,
  edge TEXT, message TEXT NOT NULL, ref TEXT, active BOOLEAN NOT NULL DEFAULT true,
  acked_by TEXT, acked_at TIMESTAMPTZ, cleared_at TIMESTAMPTZ);
CREATE UNIQUE INDEX alerts_active_key ON alerts(key) WHERE active AND key IS NOT NULL;
CREATE INDEX alerts_at ON alerts(at);
`,
	// 4: equipment registry, downtime, calibration (equipment.go).
	migrationEquipment,
	// 5: edge key history (rotation with an overlap), trace indexes.
	`
CREATE TABLE edge_keys (
  edge TEXT NOT NULL, public_key BYTEA NOT NULL, valid_from TIMESTAMPTZ, valid_until TIMESTAMPTZ,
  enrolled_by TEXT NOT NULL, enrolled_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (edge, public_key));
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

// Open connects (url may carry search_path and other runtime parameters)
// and applies migrations.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if cfg.MaxConns < 8 {
		cfg.MaxConns = 8
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	s := &Store{pool: pool, parts: map[string]bool{}}
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres %s:%d: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, err)
	}
	if err := s.migrate(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return s, nil
}

func (s *Store) migrate(ctx context.Context) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	// One migrator at a time across central instances.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(7342001)`); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return err
	}
	var v int
	err = tx.QueryRow(ctx, `SELECT version FROM schema_version`).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		if _, err := tx.Exec(ctx, `INSERT INTO schema_version VALUES (0)`); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	if v > len(migrations) {
		return fmt.Errorf("database schema version %d is newer than this build (%d)", v, len(migrations))
	}
	for ; v < len(migrations); v++ {
		if _, err := tx.Exec(ctx, migrations[v]); err != nil {
			return fmt.Errorf("migration %d: %w", v+1, err)
		}
		if migrations[v] == migrationPart11 {
			if err := backfillPart11(ctx, tx); err != nil {
				return fmt.Errorf("migration %d: %w", v+1, err)
			}
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE schema_version SET version = $1`, v); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// Close closes the pool; safe twice.
func (s *Store) Close() error {
	if s != nil && s.pool != nil {
		s.pool.Close()
	}
	return nil
}

// ensurePartitions creates the monthly partitions records of these times
// need (serialised by an advisory lock across instances). Rows of a month
// that already sits in the default partition stay there (PostgreSQL would
// refuse the new partition): the default partition is the safety net.
func (s *Store) ensurePartitions(ctx context.Context, recs []store.Stored) error {
	months := map[string]time.Time{}
	s.mu.Lock()
	for i := range recs {
		t := recs[i].Record.Time.UTC()
		m := time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
		name := fmt.Sprintf("records_y%04dm%02d", m.Year(), int(m.Month()))
		if !s.parts[name] {
			months[name] = m
		}
	}
	s.mu.Unlock()
	for name, m := range months {
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(7342002)`); err != nil {
				return err
			}
			var exists bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = $1 AND n.nspname = current_schema())`, name).Scan(&exists); err != nil {
				return err
			}
			if exists {
				return nil
			}
			var inDefault bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM records_default WHERE rec_time >= $1 AND rec_time < $2)`, m, m.AddDate(0, 1, 0)).Scan(&inDefault); err != nil {
				return err
			}
			if inDefault {
				return nil
			}
			_, err := tx.Exec(ctx, fmt.Sprintf(`CREATE TABLE %s PARTITION OF records FOR VALUES FROM ('%s') TO ('%s')`,
				pgx.Identifier{name}.Sanitize(), m.Format(time.RFC3339), m.AddDate(0, 1, 0).Format(time.RFC3339)))
			return err
		})
		if err != nil {
			return fmt.Errorf("partition %s: %w", name, err)
		}
		s.mu.Lock()
		s.parts[name] = true
		s.mu.Unlock()
	}
	return nil
}

// EnrollEdge implements store.Store.
func (s *Store) EnrollEdge(ctx context.Context, e store.Edge) error {
	if e.EnrolledAt.IsZero() {
		e.EnrolledAt = time.Now()
	}
	var inserted bool
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO edges VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING`, e.ID, []byte(e.PublicKey), e.EnrolledBy, e.EnrolledAt)
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		inserted = true
		_, err = tx.Exec(ctx, `INSERT INTO edge_keys (edge, public_key, enrolled_by, enrolled_at) VALUES ($1, $2, $3, $4)`, e.ID, []byte(e.PublicKey), e.EnrolledBy, e.EnrolledAt)
		return err
	})
	if err != nil {
		return err
	}
	if inserted {
		return nil
	}
	cur, err := s.Edge(ctx, e.ID)
	if err != nil {
		return err
	}
	if string(cur.PublicKey) != string(e.PublicKey) {
		return fmt.Errorf("edge %s: %w with another key", e.ID, store.ErrExists)
	}
	return nil
}

func tsOrNil(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// RotateEdgeKey implements store.Store.
func (s *Store) RotateEdgeKey(ctx context.Context, k store.EdgeKey, overlap time.Duration) error {
	if k.EnrolledAt.IsZero() {
		k.EnrolledAt = time.Now()
	}
	if k.ValidFrom.IsZero() {
		k.ValidFrom = k.EnrolledAt
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var n int
		// Lock the edge row: concurrent rotations of one edge serialise.
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM edges WHERE id = $1 FOR UPDATE) e`, k.Edge).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("edge %s: %w", k.Edge, store.ErrNotFound)
		}
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM edge_keys WHERE edge = $1 AND public_key = $2`, k.Edge, k.PublicKey).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("edge %s: key %w", k.Edge, store.ErrExists)
		}
		end := k.ValidFrom.Add(overlap)
		if _, err := tx.Exec(ctx, `UPDATE edge_keys SET valid_until = $1 WHERE edge = $2 AND (valid_until IS NULL OR valid_until > $1)`, end, k.Edge); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO edge_keys (edge, public_key, valid_from, valid_until, enrolled_by, enrolled_at) VALUES ($1, $2, $3, $4, $5, $6)`,
			k.Edge, k.PublicKey, tsOrNil(k.ValidFrom), tsOrNil(k.ValidUntil), k.EnrolledBy, k.EnrolledAt); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE edges SET public_key = $1 WHERE id = $2`, k.PublicKey, k.Edge)
		return err
	})
}

// EdgeKeys implements store.Store.
func (s *Store) EdgeKeys(ctx context.Context, edge string) ([]store.EdgeKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT edge, public_key, valid_from, valid_until, enrolled_by, enrolled_at FROM edge_keys WHERE edge = $1 ORDER BY valid_from NULLS FIRST, enrolled_at`, edge)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.EdgeKey, error) {
		var k store.EdgeKey
		var from, until *time.Time
		err := r.Scan(&k.Edge, &k.PublicKey, &from, &until, &k.EnrolledBy, &k.EnrolledAt)
		if from != nil {
			k.ValidFrom = from.UTC()
		}
		if until != nil {
			k.ValidUntil = until.UTC()
		}
		return k, err
	})
}

// Epochs implements store.Store.
func (s *Store) Epochs(ctx context.Context, edge string) ([]uint32, error) {
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT epoch FROM records WHERE edge = $1 ORDER BY epoch`, edge)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (uint32, error) {
		var e int64
		err := r.Scan(&e)
		return uint32(e), err
	})
}

// Edge implements store.Store.
func (s *Store) Edge(ctx context.Context, id string) (store.Edge, error) {
	var e store.Edge
	err := s.pool.QueryRow(ctx, `SELECT id, public_key, enrolled_by, enrolled_at FROM edges WHERE id = $1`, id).Scan(&e.ID, &e.PublicKey, &e.EnrolledBy, &e.EnrolledAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return e, fmt.Errorf("edge %s: %w", id, store.ErrNotFound)
	}
	return e, err
}

// Edges implements store.Store.
func (s *Store) Edges(ctx context.Context) ([]store.Edge, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, public_key, enrolled_by, enrolled_at FROM edges ORDER BY id`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Edge, error) {
		var e store.Edge
		err := r.Scan(&e.ID, &e.PublicKey, &e.EnrolledBy, &e.EnrolledAt)
		return e, err
	})
}

type queryRower interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func head(ctx context.Context, q queryRower, edge string, lock bool) (record.Head, bool, error) {
	var h record.Head
	var epoch, seq int64
	var hash []byte
	sql := `SELECT epoch, seq, hash FROM edge_heads WHERE edge = $1`
	if lock {
		sql += ` FOR UPDATE`
	}
	err := q.QueryRow(ctx, sql, edge).Scan(&epoch, &seq, &hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return h, false, nil
	}
	if err != nil {
		return h, false, err
	}
	h.Epoch, h.Seq = uint32(epoch), uint64(seq)
	copy(h.Hash[:], hash)
	return h, true, nil
}

// Head implements store.Store.
func (s *Store) Head(ctx context.Context, edge string) (record.Head, bool, error) {
	return head(ctx, s.pool, edge, false)
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
	if err := s.ensurePartitions(ctx, recs); err != nil {
		return err
	}
	last := recs[len(recs)-1]
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows := make([][]any, len(recs))
		for i := range recs {
			r := &recs[i].Record
			rows[i] = []any{edge, int64(r.Epoch), int64(r.Seq), string(r.Kind), r.Time, recs[i].Hash[:], r.Canonical(), r.Sig}
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"records"}, []string{"edge", "epoch", "seq", "kind", "rec_time", "hash", "canonical", "sig"}, pgx.CopyFromRows(rows)); err != nil {
			var pe *pgconn.PgError
			if errors.As(err, &pe) && pe.Code == "23505" { // unique violation: another writer stored them
				return fmt.Errorf("edge %s: %w", edge, store.ErrConflict)
			}
			return fmt.Errorf("edge %s: storing records: %w", edge, err)
		}
		// Move the head only if it is still the one the caller verified
		// against: the row lock serialises writers of this edge, and a
		// stale `after` matches no row. One round trip with the projections.
		b := &pgx.Batch{}
		if after.Seq == 0 {
			b.Queue(`INSERT INTO edge_heads (edge, epoch, seq, hash, records) VALUES ($1, $2, $3, $4, $5)
				ON CONFLICT (edge) DO UPDATE SET epoch = excluded.epoch, seq = excluded.seq, hash = excluded.hash, records = edge_heads.records + excluded.records
				WHERE edge_heads.epoch < excluded.epoch`,
				edge, int64(last.Record.Epoch), int64(last.Record.Seq), last.Hash[:], int64(len(recs)))
		} else {
			b.Queue(`UPDATE edge_heads SET epoch = $2, seq = $3, hash = $4, records = records + $5
				WHERE edge = $1 AND epoch = $6 AND seq = $7 AND hash = $8`,
				edge, int64(last.Record.Epoch), int64(last.Record.Seq), last.Hash[:], int64(len(recs)), int64(after.Epoch), int64(after.Seq), after.Hash[:])
		}
		queueOps(b, ops)
		queueEquipment(b, eops)
		if counters != (store.Counters{}) {
			b.Queue(`INSERT INTO line_counters (edge, good, rejected, cases, pallets) VALUES ($1, $2, $3, $4, $5)
				ON CONFLICT (edge) DO UPDATE SET good = line_counters.good + excluded.good, rejected = line_counters.rejected + excluded.rejected,
				cases = line_counters.cases + excluded.cases, pallets = line_counters.pallets + excluded.pallets`,
				edge, counters.Good, counters.Rejected, counters.Cases, counters.Pallets)
		}
		br := tx.SendBatch(ctx, b)
		// The head statement comes first: read its result before the
		// projections, which may fail only because the head was stale.
		ct, err := br.Exec()
		if err != nil {
			br.Close()
			return fmt.Errorf("edge %s head: %w", edge, err)
		}
		if ct.RowsAffected() != 1 {
			br.Close()
			return fmt.Errorf("edge %s: stored head is not %d/%d: %w", edge, after.Epoch, after.Seq, store.ErrConflict)
		}
		for i := 1; i < b.Len(); i++ {
			if _, err := br.Exec(); err != nil {
				br.Close()
				return fmt.Errorf("projection of edge %s: %w", edge, err)
			}
		}
		return br.Close()
	})
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01") && !errors.Is(err, store.ErrConflict) {
		// A serialization failure or deadlock (distributed PostgreSQL-
		// compatible databases report concurrent writers this way):
		// nothing was written; the caller reloads the head and retries.
		return fmt.Errorf("edge %s: %w (%s)", edge, store.ErrConflict, pe.Message)
	}
	return err
}

func queueOps(b *pgx.Batch, ops []store.Op) {
	for _, op := range ops {
		switch op.Kind {
		case store.OpBatchUpsert:
			b.Queue(`INSERT INTO batches (batch, edge, line, gtin, lot, expiry, product, planned, state, started_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
				ON CONFLICT (edge, batch) DO UPDATE SET line = excluded.line, gtin = excluded.gtin, lot = excluded.lot, expiry = excluded.expiry,
				product = excluded.product, planned = excluded.planned, state = excluded.state, started_at = COALESCE(batches.started_at, excluded.started_at)`,
				op.Batch, op.Edge, op.Line, op.GTIN, op.Lot, op.Expiry, op.Product, op.Planned, op.State, op.At)
		case store.OpBatchState:
			b.Queue(`UPDATE batches SET state = $1 WHERE edge = $2 AND batch = $3`, op.State, op.Edge, op.Batch)
		case store.OpBatchClosed:
			b.Queue(`UPDATE batches SET state = $1, closed_at = $2, reconciliation = $3, closed_epoch = $6, closed_seq = $7 WHERE edge = $4 AND batch = $5`, op.State, op.At, string(op.Reconciliation), op.Edge, op.Batch, int64(op.Epoch), int64(op.Seq))
		case store.OpUnitInsert:
			// A serial another edge already commissioned is recorded as a
			// conflict (compliance alert); the records are stored anyway.
			b.Queue(`WITH ins AS (INSERT INTO units (gtin, serial, batch, lot, expiry, edge, status, commissioned_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
				ON CONFLICT (gtin, serial) DO NOTHING RETURNING 1)
				INSERT INTO conflicts (edge, kind, key, other_edge, at)
				SELECT $6, 'serial', '(01)' || $1 || '(21)' || $2, u.edge, $8 FROM units u WHERE u.gtin = $1 AND u.serial = $2 AND NOT EXISTS (SELECT 1 FROM ins)`,
				op.GTIN, op.Serial, op.Batch, op.Lot, op.Expiry, op.Edge, op.Status, op.At)
		case store.OpUnitStatus:
			if op.Status == "verified" || op.Status == "rejected" {
				b.Queue(`UPDATE units SET status = $1, reason = $2, grade = $3, verified_at = $4 WHERE gtin = $5 AND serial = $6 AND edge = $7`, op.Status, op.Reason, op.Grade, op.At, op.GTIN, op.Serial, op.Edge)
			} else {
				b.Queue(`UPDATE units SET status = $1, reason = COALESCE(NULLIF($2, ''), reason), disposition = COALESCE(NULLIF($3, ''), disposition) WHERE gtin = $4 AND serial = $5 AND edge = $6`, op.Status, op.Reason, op.Disposition, op.GTIN, op.Serial, op.Edge)
			}
		case store.OpUnitDisposition:
			b.Queue(`UPDATE units SET disposition = $1 WHERE gtin = $2 AND serial = $3 AND edge = $4`, op.Disposition, op.GTIN, op.Serial, op.Edge)
		case store.OpContainerInsert:
			b.Queue(`WITH ins AS (INSERT INTO containers (sscc, level, batch, edge) VALUES ($1, $2, $3, $4) ON CONFLICT (sscc) DO NOTHING RETURNING 1)
				INSERT INTO conflicts (edge, kind, key, other_edge, at)
				SELECT $4, 'sscc', '(00)' || $1, c.edge, $5 FROM containers c WHERE c.sscc = $1 AND NOT EXISTS (SELECT 1 FROM ins)`,
				op.SSCC, op.Level, op.Batch, op.Edge, op.At)
		case store.OpPack, store.OpUnpack:
			parent := op.Parent
			for _, ch := range op.Children {
				if op.Kind == store.OpPack {
					b.Queue(`INSERT INTO container_children (parent, child) SELECT $1, $2 WHERE EXISTS (SELECT 1 FROM containers WHERE sscc = $1 AND edge = $3) ON CONFLICT DO NOTHING`, op.Parent, ch, op.Edge)
				} else {
					b.Queue(`DELETE FROM container_children WHERE parent = $1 AND child = $2 AND EXISTS (SELECT 1 FROM containers WHERE sscc = $1 AND edge = $3)`, op.Parent, ch, op.Edge)
					parent = ""
				}
				if gtin, serial, ok := store.SplitUnitID(ch); ok {
					b.Queue(`UPDATE units SET parent = NULLIF($1, '') WHERE gtin = $2 AND serial = $3 AND edge = $4`, parent, gtin, serial, op.Edge)
				} else if sscc, ok := store.ContainerSSCC(ch); ok {
					b.Queue(`UPDATE containers SET parent = NULLIF($1, '') WHERE sscc = $2 AND edge = $3`, parent, sscc, op.Edge)
				}
			}
		case store.OpContainerClosed:
			b.Queue(`UPDATE containers SET closed = true, partial = $1, count = $2, closed_at = $3, closed_epoch = $6, closed_seq = $7 WHERE sscc = $4 AND edge = $5`, op.Partial, op.Count, op.At, op.SSCC, op.Edge, int64(op.Epoch), int64(op.Seq))
		case store.OpContainerReopened:
			b.Queue(`UPDATE containers SET closed = false, partial = false, closed_epoch = NULL, closed_seq = NULL, approved_by = NULL, approved_name = NULL, approved_at = NULL, approval_ref = NULL WHERE sscc = $1 AND edge = $2`, op.SSCC, op.Edge)
		case store.OpKeyRetired:
			b.Queue(`UPDATE edge_keys SET valid_until = $1 WHERE edge = $2 AND public_key = $3 AND (valid_until IS NULL OR valid_until > $1)`, op.At, op.Edge, op.PublicKey)
		case store.OpAudit, store.OpBatchReleased, store.OpContainerApproved:
			queuePart11Op(b, op)
		case store.OpShipped:
			queueShipped(b, op)
		}
	}
}

// Records implements store.Store.
func (s *Store) Records(ctx context.Context, edge string, epoch uint32, from uint64, limit int) ([]store.Stored, error) {
	rows, err := s.pool.Query(ctx, `SELECT canonical, sig, hash FROM records WHERE edge = $1 AND epoch = $2 AND seq >= $3 ORDER BY seq LIMIT $4`, edge, int64(epoch), int64(from), limit)
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
	err := s.pool.QueryRow(ctx, `SELECT COUNT(*) FROM records WHERE edge = $1`, edge).Scan(&n)
	return n, err
}

// Quarantine implements store.Store.
func (s *Store) Quarantine(ctx context.Context, q store.Quarantined) error {
	if q.At.IsZero() {
		q.At = time.Now()
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO quarantine (edge, epoch, seq, reason, payload, at) VALUES ($1, $2, $3, $4, $5, $6)`,
		q.Edge, int64(q.Epoch), int64(q.Seq), q.Reason, q.Payload, q.At)
	return err
}

// QuarantineList implements store.Store.
func (s *Store) QuarantineList(ctx context.Context, edge string, limit int) ([]store.Quarantined, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, edge, epoch, seq, reason, payload, at FROM quarantine WHERE ($1 = '' OR edge = $1) ORDER BY id LIMIT $2`, edge, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Quarantined, error) {
		var q store.Quarantined
		var epoch, seq int64
		err := r.Scan(&q.ID, &q.Edge, &epoch, &seq, &q.Reason, &q.Payload, &q.At)
		q.Epoch, q.Seq = uint32(epoch), uint64(seq)
		return q, err
	})
}

// UpdateStatus implements store.Store.
func (s *Store) UpdateStatus(ctx context.Context, st wire.Status) error {
	raw, err := json.Marshal(st)
	if err != nil {
		return err
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO line_status (edge, status, last_seen) VALUES ($1, $2, now())
		ON CONFLICT (edge) DO UPDATE SET status = excluded.status, last_seen = excluded.last_seen`, st.Edge, string(raw))
	return err
}

// Lines implements store.Store.
func (s *Store) Lines(ctx context.Context) ([]store.LineSummary, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT e.id, COALESCE(c.good, 0), COALESCE(c.rejected, 0), COALESCE(c.cases, 0), COALESCE(c.pallets, 0),
		       COALESCE(h.epoch, 0), COALESCE(h.seq, 0), COALESCE(h.hash, ''::bytea), COALESCE(h.records, 0), st.status::text, st.last_seen,
		       (SELECT COUNT(*) FROM quarantine q WHERE q.edge = e.id),
		       (SELECT COUNT(*) FROM conflicts x WHERE x.edge = e.id)
		FROM edges e
		LEFT JOIN line_counters c ON c.edge = e.id
		LEFT JOIN edge_heads h ON h.edge = e.id
		LEFT JOIN line_status st ON st.edge = e.id
		WHERE NOT starts_with(e.id, $1)
		ORDER BY e.id`, store.JournalPrefix)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.LineSummary
	for rows.Next() {
		var l store.LineSummary
		var epoch, seq int64
		var hash []byte
		var status *string
		var seen *time.Time
		if err := rows.Scan(&l.Edge, &l.UnitsGood, &l.UnitsRejected, &l.CasesClosed, &l.PalletsClosed, &epoch, &seq, &hash, &l.Records, &status, &seen, &l.QuarantinedNum, &l.Conflicts); err != nil {
			return nil, err
		}
		l.Head = record.Head{Epoch: uint32(epoch), Seq: uint64(seq)}
		copy(l.Head.Hash[:], hash)
		if seen != nil {
			l.LastSeen = *seen
		}
		if status != nil {
			var ws wire.Status
			if json.Unmarshal([]byte(*status), &ws) == nil {
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
	var batch, lot, exp, reason, parent *string
	var grade *float64
	var at *time.Time
	err := s.pool.QueryRow(ctx, `SELECT gtin, serial, batch, lot, expiry, edge, status, reason, grade, parent, commissioned_at FROM units WHERE gtin = $1 AND serial = $2`, gtin, serial).
		Scan(&u.GTIN, &u.Serial, &batch, &lot, &exp, &u.Edge, &u.Status, &reason, &grade, &parent, &at)
	if errors.Is(err, pgx.ErrNoRows) {
		return u, fmt.Errorf("unit (01)%s(21)%s: %w", gtin, serial, store.ErrNotFound)
	}
	if err != nil {
		return u, err
	}
	u.Batch, u.Lot, u.Expiry, u.Reason, u.Parent = deref(batch), deref(lot), deref(exp), deref(reason), deref(parent)
	if grade != nil {
		u.Grade = *grade
	}
	if at != nil {
		u.CommissionedAt = *at
	}
	return u, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// Container implements store.Store.
func (s *Store) Container(ctx context.Context, sscc string) (store.Container, error) {
	c, err := scanContainer(s.pool.QueryRow(ctx, `SELECT `+containerCols+` FROM containers WHERE sscc = $1`, sscc))
	if errors.Is(err, pgx.ErrNoRows) {
		return c, fmt.Errorf("container %s: %w", sscc, store.ErrNotFound)
	}
	if err != nil {
		return c, err
	}
	rows, err := s.pool.Query(ctx, `SELECT child FROM container_children WHERE parent = $1 ORDER BY child`, sscc)
	if err != nil {
		return c, err
	}
	c.Children, err = pgx.CollectRows(rows, pgx.RowTo[string])
	return c, err
}

// IsUnavailable reports whether err means the server could not be reached.
func IsUnavailable(err error) bool {
	var pe *pgconn.ConnectError
	return errors.As(err, &pe) || strings.Contains(fmt.Sprint(err), "connect:")
}
