package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/sync/record"
)

const migrationPart11 = `
CREATE TABLE users (
  id TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL, password_hash TEXT NOT NULL,
  disabled BOOLEAN NOT NULL DEFAULT false, failed INTEGER NOT NULL DEFAULT 0, locked_until TIMESTAMPTZ,
  created_at TIMESTAMPTZ NOT NULL, password_changed_at TIMESTAMPTZ, last_login_at TIMESTAMPTZ, version BIGINT NOT NULL DEFAULT 1);
CREATE TABLE sessions (
  token_hash TEXT PRIMARY KEY, user_id TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL,
  expires_at TIMESTAMPTZ NOT NULL, idle_until TIMESTAMPTZ NOT NULL);
CREATE INDEX sessions_user ON sessions(user_id);
CREATE TABLE audit (
  edge TEXT NOT NULL, epoch BIGINT NOT NULL, seq BIGINT NOT NULL, at TIMESTAMPTZ NOT NULL,
  user_id TEXT, name TEXT, action TEXT NOT NULL, target TEXT, batch TEXT, meaning TEXT,
  PRIMARY KEY (edge, epoch, seq));
CREATE INDEX audit_at ON audit(at);
CREATE INDEX audit_user ON audit(user_id, at);
CREATE INDEX audit_batch ON audit(batch, at);
CREATE INDEX audit_target ON audit(target);
ALTER TABLE batches ADD COLUMN closed_epoch BIGINT, ADD COLUMN closed_seq BIGINT, ADD COLUMN released_by TEXT,
  ADD COLUMN released_name TEXT, ADD COLUMN released_at TIMESTAMPTZ, ADD COLUMN release_ref TEXT;
ALTER TABLE containers ADD COLUMN closed_epoch BIGINT, ADD COLUMN closed_seq BIGINT, ADD COLUMN approved_by TEXT,
  ADD COLUMN approved_name TEXT, ADD COLUMN approved_at TIMESTAMPTZ, ADD COLUMN approval_ref TEXT;
`

// backfillPart11 fills the audit trail and the close references from the
// records stored before migrationPart11 (in the migration's transaction).
func backfillPart11(ctx context.Context, tx pgx.Tx) error {
	rows, err := tx.Query(ctx, `SELECT canonical, sig, hash FROM records
		WHERE kind = ANY($1) OR position($2::bytea in canonical) > 0 ORDER BY edge, epoch, seq`, store.BackfillKinds, store.SignatureMarker)
	if err != nil {
		return err
	}
	var ops []store.Op
	for rows.Next() {
		var canon, sig, hash []byte
		if err := rows.Scan(&canon, &sig, &hash); err != nil {
			rows.Close()
			return err
		}
		r, err := record.Decode(canon)
		if err != nil {
			rows.Close()
			return fmt.Errorf("stored record: %w", err)
		}
		st := store.Stored{Record: r}
		copy(st.Hash[:], hash)
		ops = append(ops, store.BackfillOps(st)...)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	b := &pgx.Batch{}
	for _, op := range ops {
		switch op.Kind {
		case store.OpAudit:
			queuePart11Op(b, op)
		case store.OpBatchClosed:
			b.Queue(`UPDATE batches SET closed_epoch = $1, closed_seq = $2 WHERE edge = $3 AND batch = $4`, int64(op.Epoch), int64(op.Seq), op.Edge, op.Batch)
		case store.OpContainerClosed:
			b.Queue(`UPDATE containers SET closed_epoch = $1, closed_seq = $2 WHERE edge = $3 AND sscc = $4 AND closed`, int64(op.Epoch), int64(op.Seq), op.Edge, op.SSCC)
		}
	}
	if b.Len() == 0 {
		return nil
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("audit trail backfill: %w", err)
	}
	return nil
}

func queuePart11Op(b *pgx.Batch, op store.Op) {
	journal := store.Ref{Edge: op.Source, Epoch: op.Epoch, Seq: op.Seq}.String()
	switch op.Kind {
	case store.OpAudit:
		b.Queue(`INSERT INTO audit (edge, epoch, seq, at, user_id, name, action, target, batch, meaning) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING`,
			op.Source, int64(op.Epoch), int64(op.Seq), op.At, op.User, op.Name, op.Action, op.Target, op.Batch, op.Meaning)
	case store.OpBatchReleased:
		b.Queue(`UPDATE batches SET state = 'released', released_by = $1, released_name = $2, released_at = $3, release_ref = $4 WHERE edge = $5 AND batch = $6 AND state = 'closed'`,
			op.User, op.Name, op.At, journal, op.Edge, op.Batch)
	case store.OpContainerApproved:
		b.Queue(`UPDATE containers SET approved_by = $1, approved_name = $2, approved_at = $3, approval_ref = $4 WHERE edge = $5 AND sscc = $6 AND closed AND partial`,
			op.User, op.Name, op.At, journal, op.Edge, op.SSCC)
	}
}

const userCols = `id, name, role, password_hash, disabled, failed, locked_until, created_at, password_changed_at, last_login_at, version`

func scanUser(sc pgx.Row) (store.User, error) {
	var u store.User
	var locked, changed, last *time.Time
	err := sc.Scan(&u.ID, &u.Name, &u.Role, &u.PasswordHash, &u.Disabled, &u.Failed, &locked, &u.Created, &changed, &last, &u.Version)
	u.LockedUntil, u.PasswordChanged, u.LastLogin = tv(locked), tv(changed), tv(last)
	return u, err
}

// tv is a nullable timestamp as a time (zero for NULL), in UTC.
func tv(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// CreateUser implements store.Store.
func (s *Store) CreateUser(ctx context.Context, u store.User) error {
	if u.Created.IsZero() {
		u.Created = time.Now()
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO users (id, name, role, password_hash, disabled, created_at, password_changed_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		u.ID, u.Name, u.Role, u.PasswordHash, u.Disabled, u.Created, nullTime(u.PasswordChanged))
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		return fmt.Errorf("user %s: %w", u.ID, store.ErrExists)
	}
	return err
}

// User implements store.Store.
func (s *Store) User(ctx context.Context, id string) (store.User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return u, fmt.Errorf("user %s: %w", id, store.ErrNotFound)
	}
	return u, err
}

// Users implements store.Store.
func (s *Store) Users(ctx context.Context) ([]store.User, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+userCols+` FROM users ORDER BY id`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.User, error) { return scanUser(r) })
}

// UpdateUser implements store.Store.
func (s *Store) UpdateUser(ctx context.Context, u store.User) (store.User, error) {
	out, err := scanUser(s.pool.QueryRow(ctx, `UPDATE users SET name = $1, role = $2, password_hash = $3, disabled = $4, password_changed_at = $5, version = version + 1
		WHERE id = $6 AND version = $7 RETURNING `+userCols, u.Name, u.Role, u.PasswordHash, u.Disabled, nullTime(u.PasswordChanged), u.ID, u.Version))
	if errors.Is(err, pgx.ErrNoRows) {
		if _, err := s.User(ctx, u.ID); err != nil {
			return u, err
		}
		return u, fmt.Errorf("user %s changed meanwhile (version %d is stale): %w", u.ID, u.Version, store.ErrConflict)
	}
	return out, err
}

// LoginFailed implements store.Store.
func (s *Store) LoginFailed(ctx context.Context, id string, max int, lockFor time.Duration, at time.Time) (store.User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, `UPDATE users SET
		locked_until = CASE WHEN failed + 1 >= $1 THEN $2 ELSE locked_until END,
		failed = CASE WHEN failed + 1 >= $1 THEN 0 ELSE failed + 1 END WHERE id = $3 RETURNING `+userCols, max, at.Add(lockFor), id))
	if errors.Is(err, pgx.ErrNoRows) {
		return u, fmt.Errorf("user %s: %w", id, store.ErrNotFound)
	}
	return u, err
}

// LoginReset implements store.Store.
func (s *Store) LoginReset(ctx context.Context, id string, at time.Time, succeeded bool) error {
	tag, err := s.pool.Exec(ctx, `UPDATE users SET failed = 0, locked_until = NULL, last_login_at = CASE WHEN $2 THEN $3 ELSE last_login_at END WHERE id = $1`, id, succeeded, at)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("user %s: %w", id, store.ErrNotFound)
	}
	return nil
}

// CreateSession implements store.Store.
func (s *Store) CreateSession(ctx context.Context, se store.Session) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO sessions (token_hash, user_id, created_at, expires_at, idle_until) VALUES ($1, $2, $3, $4, $5)`,
		se.TokenHash, se.User, se.Created, se.Expires, se.IdleUntil)
	return err
}

// Session implements store.Store.
func (s *Store) Session(ctx context.Context, tokenHash string) (store.Session, error) {
	var se store.Session
	err := s.pool.QueryRow(ctx, `SELECT token_hash, user_id, created_at, expires_at, idle_until FROM sessions WHERE token_hash = $1`, tokenHash).
		Scan(&se.TokenHash, &se.User, &se.Created, &se.Expires, &se.IdleUntil)
	if errors.Is(err, pgx.ErrNoRows) {
		return se, fmt.Errorf("session: %w", store.ErrNotFound)
	}
	return se, err
}

// TouchSession implements store.Store.
func (s *Store) TouchSession(ctx context.Context, tokenHash string, idleUntil time.Time) error {
	_, err := s.pool.Exec(ctx, `UPDATE sessions SET idle_until = $1 WHERE token_hash = $2`, idleUntil, tokenHash)
	return err
}

// DeleteSessions implements store.Store.
func (s *Store) DeleteSessions(ctx context.Context, f store.SessionFilter) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE ($1 = '' OR token_hash = $1) AND ($2 = '' OR user_id = $2) AND ($3::timestamptz IS NULL OR expires_at <= $3 OR idle_until <= $3)`,
		f.TokenHash, f.User, nullTime(f.ExpiredAt))
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

// CountSessions implements store.Store.
func (s *Store) CountSessions(ctx context.Context, at time.Time) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT COUNT(*) FROM sessions WHERE expires_at > $1 AND idle_until > $1`, at).Scan(&n)
	return n, err
}

// Audit implements store.Store.
func (s *Store) Audit(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, error) {
	if f.Limit <= 0 {
		f.Limit = 200
	}
	rows, err := s.pool.Query(ctx, `SELECT a.edge, a.epoch, a.seq, a.at, COALESCE(a.user_id, ''), COALESCE(a.name, ''), a.action,
		COALESCE(a.target, ''), COALESCE(a.batch, ''), COALESCE(a.meaning, ''), r.canonical, r.sig, r.hash
		FROM audit a JOIN records r ON r.edge = a.edge AND r.epoch = a.epoch AND r.seq = a.seq AND r.rec_time = a.at
		WHERE ($1::timestamptz IS NULL OR a.at >= $1) AND ($2::timestamptz IS NULL OR a.at < $2) AND ($3 = '' OR a.user_id = $3)
		  AND ($4 = '' OR a.action = $4) AND ($5 = '' OR a.batch = $5) AND ($6 = '' OR a.edge = $6) AND ($7 = '' OR a.target = $7)
		  AND (NOT $8 OR COALESCE(a.meaning, '') <> '')
		ORDER BY a.at DESC, a.edge, a.seq DESC LIMIT $9`,
		nullTime(f.From), nullTime(f.To), f.User, f.Action, f.Batch, f.Edge, f.Target, f.SignedOnly, f.Limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.AuditEntry
	for rows.Next() {
		var e store.AuditEntry
		var epoch, seq int64
		var canon, sig, hash []byte
		if err := rows.Scan(&e.Ref.Edge, &epoch, &seq, &e.At, &e.User, &e.Name, &e.Action, &e.Target, &e.Batch, &e.Meaning, &canon, &sig, &hash); err != nil {
			return nil, err
		}
		e.Ref.Epoch, e.Ref.Seq = uint32(epoch), uint64(seq)
		e.At = e.At.UTC()
		r, err := record.Decode(canon)
		if err != nil {
			return nil, fmt.Errorf("stored record %s: %w", e.Ref, err)
		}
		if len(sig) > 0 {
			r.Sig = sig
		}
		e.Record = store.Stored{Record: r}
		copy(e.Record.Hash[:], hash)
		out = append(out, e)
	}
	return out, rows.Err()
}

const batchCols = `edge, batch, COALESCE(line, ''), COALESCE(gtin, ''), COALESCE(lot, ''), COALESCE(expiry, ''), COALESCE(product, ''),
	COALESCE(planned, 0), COALESCE(state, ''), started_at, closed_at, reconciliation::text, COALESCE(closed_epoch, 0), COALESCE(closed_seq, 0),
	COALESCE(released_by, ''), COALESCE(released_name, ''), released_at, COALESCE(release_ref, '')`

func scanBatch(sc pgx.Row) (store.Batch, error) {
	var b store.Batch
	var started, closed, released *time.Time
	var rec *string
	var rel string
	var planned, cep, cseq int64
	err := sc.Scan(&b.Edge, &b.Batch, &b.Line, &b.GTIN, &b.Lot, &b.Expiry, &b.Product, &planned, &b.State, &started, &closed, &rec,
		&cep, &cseq, &b.ReleasedBy, &b.ReleasedName, &released, &rel)
	if err != nil {
		return b, err
	}
	b.Planned = int(planned)
	b.StartedAt, b.ClosedAt, b.ReleasedAt = tv(started), tv(closed), tv(released)
	if rec != nil && *rec != "" {
		b.Reconciliation = json.RawMessage(*rec)
	}
	if cseq != 0 {
		b.Closed = store.Ref{Edge: b.Edge, Epoch: uint32(cep), Seq: uint64(cseq)}
	}
	if rel != "" {
		b.Release, _ = store.ParseRef(rel)
	}
	return b, nil
}

// Batch implements store.Store.
func (s *Store) Batch(ctx context.Context, edge, batch string) (store.Batch, error) {
	b, err := scanBatch(s.pool.QueryRow(ctx, `SELECT `+batchCols+` FROM batches WHERE edge = $1 AND batch = $2`, edge, batch))
	if errors.Is(err, pgx.ErrNoRows) {
		return b, fmt.Errorf("batch %s of %s: %w", batch, edge, store.ErrNotFound)
	}
	if err != nil {
		return b, err
	}
	b.Units = map[string]int64{}
	rows, err := s.pool.Query(ctx, `SELECT status, COUNT(*) FROM units WHERE edge = $1 AND batch = $2 GROUP BY status`, edge, batch)
	if err != nil {
		return b, err
	}
	for rows.Next() {
		var st string
		var n int64
		if err := rows.Scan(&st, &n); err != nil {
			rows.Close()
			return b, err
		}
		b.Units[st] = n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return b, err
	}
	if err := s.pool.QueryRow(ctx, `SELECT COUNT(*) FROM quarantine WHERE edge = $1 AND at >= $2`, edge, b.StartedAt).Scan(&b.Quarantined); err != nil {
		return b, err
	}
	err = s.pool.QueryRow(ctx, `SELECT COUNT(*) FROM conflicts x WHERE (x.edge = $1 AND x.at >= $2)
		OR (x.kind = 'serial' AND x.key IN (SELECT '(01)' || gtin || '(21)' || serial FROM units WHERE edge = $1 AND batch = $3))
		OR (x.kind = 'sscc' AND x.key IN (SELECT '(00)' || sscc FROM containers WHERE edge = $1 AND batch = $3))`,
		edge, b.StartedAt, batch).Scan(&b.Conflicts)
	return b, err
}

const containerCols = `sscc, level, COALESCE(batch, ''), edge, COALESCE(parent, ''), closed, partial, count, closed_at,
	COALESCE(closed_epoch, 0), COALESCE(closed_seq, 0), COALESCE(approved_by, ''), COALESCE(approved_name, ''), approved_at, COALESCE(approval_ref, '')`

func scanContainer(sc pgx.Row) (store.Container, error) {
	var c store.Container
	var closedAt, approvedAt *time.Time
	var appr string
	var count, cep, cseq int64
	if err := sc.Scan(&c.SSCC, &c.Level, &c.Batch, &c.Edge, &c.Parent, &c.Closed, &c.Partial, &count, &closedAt,
		&cep, &cseq, &c.ApprovedBy, &c.ApprovedName, &approvedAt, &appr); err != nil {
		return c, err
	}
	c.Count = int(count)
	c.ClosedAt, c.ApprovedAt = tv(closedAt), tv(approvedAt)
	if cseq != 0 {
		c.CloseRecord = store.Ref{Edge: c.Edge, Epoch: uint32(cep), Seq: uint64(cseq)}
	}
	if appr != "" {
		c.Approval, _ = store.ParseRef(appr)
	}
	return c, nil
}
