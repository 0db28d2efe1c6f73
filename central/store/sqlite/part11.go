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

const migrationPart11 = `
CREATE TABLE users (
  id TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL, password_hash TEXT NOT NULL,
  disabled INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0, locked_until TEXT,
  created_at TEXT NOT NULL, password_changed_at TEXT, last_login_at TEXT, version INTEGER NOT NULL DEFAULT 1);
CREATE TABLE sessions (
  token_hash TEXT PRIMARY KEY, user_id TEXT NOT NULL, created_at TEXT NOT NULL,
  expires_at INTEGER NOT NULL, idle_until INTEGER NOT NULL);
CREATE INDEX sessions_user ON sessions(user_id);
CREATE TABLE audit (
  edge TEXT NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL, at INTEGER NOT NULL,
  user_id TEXT, name TEXT, action TEXT NOT NULL, target TEXT, batch TEXT, meaning TEXT,
  PRIMARY KEY (edge, epoch, seq)) WITHOUT ROWID;
CREATE INDEX audit_at ON audit(at);
CREATE INDEX audit_user ON audit(user_id, at);
CREATE INDEX audit_batch ON audit(batch, at);
CREATE INDEX audit_target ON audit(target);
ALTER TABLE batches ADD COLUMN closed_epoch INTEGER;
ALTER TABLE batches ADD COLUMN closed_seq INTEGER;
ALTER TABLE batches ADD COLUMN released_by TEXT;
ALTER TABLE batches ADD COLUMN released_name TEXT;
ALTER TABLE batches ADD COLUMN released_at TEXT;
ALTER TABLE batches ADD COLUMN release_ref TEXT;
ALTER TABLE containers ADD COLUMN closed_epoch INTEGER;
ALTER TABLE containers ADD COLUMN closed_seq INTEGER;
ALTER TABLE containers ADD COLUMN approved_by TEXT;
ALTER TABLE containers ADD COLUMN approved_name TEXT;
ALTER TABLE containers ADD COLUMN approved_at TEXT;
ALTER TABLE containers ADD COLUMN approval_ref TEXT;
`

// backfillPart11 fills the audit trail and the close references from the
// records stored before migrationPart11 (in the migration's transaction).
func backfillPart11(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `SELECT canonical, sig, hash FROM records
		WHERE kind IN (?, ?, ?) OR instr(canonical, CAST(? AS BLOB)) > 0 ORDER BY edge, epoch, seq`,
		store.BackfillKinds[0], store.BackfillKinds[1], store.BackfillKinds[2], string(store.SignatureMarker))
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
	exec := func(q string, args ...any) error {
		_, err := tx.ExecContext(ctx, q, args...)
		return err
	}
	for _, op := range ops {
		var err error
		switch op.Kind {
		case store.OpAudit:
			err = applyPart11Op(exec, op)
		case store.OpBatchClosed:
			err = exec(`UPDATE batches SET closed_epoch = ?, closed_seq = ? WHERE edge = ? AND batch = ?`, op.Epoch, op.Seq, op.Edge, op.Batch)
		case store.OpContainerClosed:
			err = exec(`UPDATE containers SET closed_epoch = ?, closed_seq = ? WHERE edge = ? AND sscc = ? AND closed = 1`, op.Epoch, op.Seq, op.Edge, op.SSCC)
		}
		if err != nil {
			return fmt.Errorf("audit trail backfill: %w", err)
		}
	}
	return nil
}

func applyPart11Op(exec func(q string, args ...any) error, op store.Op) error {
	journal := store.Ref{Edge: op.Source, Epoch: op.Epoch, Seq: op.Seq}.String()
	switch op.Kind {
	case store.OpAudit:
		return exec(`INSERT INTO audit (edge, epoch, seq, at, user_id, name, action, target, batch, meaning) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			op.Source, op.Epoch, op.Seq, op.At.UnixNano(), op.User, op.Name, op.Action, op.Target, op.Batch, op.Meaning)
	case store.OpBatchReleased:
		return exec(`UPDATE batches SET state = 'released', released_by = ?, released_name = ?, released_at = ?, release_ref = ? WHERE edge = ? AND batch = ? AND state = 'closed'`,
			op.User, op.Name, ts(op.At), journal, op.Edge, op.Batch)
	case store.OpContainerApproved:
		return exec(`UPDATE containers SET approved_by = ?, approved_name = ?, approved_at = ?, approval_ref = ? WHERE edge = ? AND sscc = ? AND closed = 1 AND partial = 1`,
			op.User, op.Name, ts(op.At), journal, op.Edge, op.SSCC)
	}
	return nil
}

const userCols = `id, name, role, password_hash, disabled, failed, locked_until, created_at, password_changed_at, last_login_at, version`

func scanUser(sc interface{ Scan(...any) error }) (store.User, error) {
	var u store.User
	var locked, changed, last sql.NullString
	var created string
	err := sc.Scan(&u.ID, &u.Name, &u.Role, &u.PasswordHash, &u.Disabled, &u.Failed, &locked, &created, &changed, &last, &u.Version)
	u.LockedUntil, u.PasswordChanged, u.LastLogin = parseTS(locked), parseTS(changed), parseTS(last)
	u.Created = parseTS(sql.NullString{String: created, Valid: true})
	return u, err
}

func nullTS(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return ts(t)
}

// CreateUser implements store.Store.
func (s *Store) CreateUser(ctx context.Context, u store.User) error {
	if u.Created.IsZero() {
		u.Created = time.Now()
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO users (id, name, role, password_hash, disabled, created_at, password_changed_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		u.ID, u.Name, u.Role, u.PasswordHash, u.Disabled, ts(u.Created), nullTS(u.PasswordChanged))
	if err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed") {
		return fmt.Errorf("user %s: %w", u.ID, store.ErrExists)
	}
	return err
}

// User implements store.Store.
func (s *Store) User(ctx context.Context, id string) (store.User, error) {
	u, err := scanUser(s.r.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return u, fmt.Errorf("user %s: %w", id, store.ErrNotFound)
	}
	return u, err
}

// Users implements store.Store.
func (s *Store) Users(ctx context.Context) ([]store.User, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+userCols+` FROM users ORDER BY id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// UpdateUser implements store.Store.
func (s *Store) UpdateUser(ctx context.Context, u store.User) (store.User, error) {
	res, err := s.w.ExecContext(ctx, `UPDATE users SET name = ?, role = ?, password_hash = ?, disabled = ?, password_changed_at = ?, version = version + 1 WHERE id = ? AND version = ?`,
		u.Name, u.Role, u.PasswordHash, u.Disabled, nullTS(u.PasswordChanged), u.ID, u.Version)
	if err != nil {
		return u, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := s.User(ctx, u.ID); err != nil {
			return u, err
		}
		return u, fmt.Errorf("user %s changed meanwhile (version %d is stale): %w", u.ID, u.Version, store.ErrConflict)
	}
	return s.userW(ctx, u.ID)
}

// userW reads a user through the writer (sees its own writes at once).
func (s *Store) userW(ctx context.Context, id string) (store.User, error) {
	u, err := scanUser(s.w.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return u, fmt.Errorf("user %s: %w", id, store.ErrNotFound)
	}
	return u, err
}

// LoginFailed implements store.Store.
func (s *Store) LoginFailed(ctx context.Context, id string, max int, lockFor time.Duration, at time.Time) (store.User, error) {
	res, err := s.w.ExecContext(ctx, `UPDATE users SET
		locked_until = CASE WHEN failed + 1 >= ? THEN ? ELSE locked_until END,
		failed = CASE WHEN failed + 1 >= ? THEN 0 ELSE failed + 1 END WHERE id = ?`, max, ts(at.Add(lockFor)), max, id)
	if err != nil {
		return store.User{}, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return store.User{}, fmt.Errorf("user %s: %w", id, store.ErrNotFound)
	}
	return s.userW(ctx, id)
}

// LoginReset implements store.Store.
func (s *Store) LoginReset(ctx context.Context, id string, at time.Time, succeeded bool) error {
	q := `UPDATE users SET failed = 0, locked_until = NULL WHERE id = ?`
	args := []any{id}
	if succeeded {
		q = `UPDATE users SET failed = 0, locked_until = NULL, last_login_at = ? WHERE id = ?`
		args = []any{ts(at), id}
	}
	res, err := s.w.ExecContext(ctx, q, args...)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("user %s: %w", id, store.ErrNotFound)
	}
	return nil
}

// CreateSession implements store.Store.
func (s *Store) CreateSession(ctx context.Context, se store.Session) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO sessions (token_hash, user_id, created_at, expires_at, idle_until) VALUES (?, ?, ?, ?, ?)`,
		se.TokenHash, se.User, ts(se.Created), se.Expires.UnixNano(), se.IdleUntil.UnixNano())
	return err
}

// Session implements store.Store.
func (s *Store) Session(ctx context.Context, tokenHash string) (store.Session, error) {
	var se store.Session
	var created string
	var exp, idle int64
	err := s.r.QueryRowContext(ctx, `SELECT token_hash, user_id, created_at, expires_at, idle_until FROM sessions WHERE token_hash = ?`, tokenHash).
		Scan(&se.TokenHash, &se.User, &created, &exp, &idle)
	if errors.Is(err, sql.ErrNoRows) {
		return se, fmt.Errorf("session: %w", store.ErrNotFound)
	}
	se.Created = parseTS(sql.NullString{String: created, Valid: true})
	se.Expires, se.IdleUntil = time.Unix(0, exp).UTC(), time.Unix(0, idle).UTC()
	return se, err
}

// TouchSession implements store.Store.
func (s *Store) TouchSession(ctx context.Context, tokenHash string, idleUntil time.Time) error {
	_, err := s.w.ExecContext(ctx, `UPDATE sessions SET idle_until = ? WHERE token_hash = ?`, idleUntil.UnixNano(), tokenHash)
	return err
}

// DeleteSessions implements store.Store.
func (s *Store) DeleteSessions(ctx context.Context, f store.SessionFilter) (int64, error) {
	var exp int64 = -1
	if !f.ExpiredAt.IsZero() {
		exp = f.ExpiredAt.UnixNano()
	}
	res, err := s.w.ExecContext(ctx, `DELETE FROM sessions WHERE (? = '' OR token_hash = ?) AND (? = '' OR user_id = ?) AND (? < 0 OR expires_at <= ? OR idle_until <= ?)`,
		f.TokenHash, f.TokenHash, f.User, f.User, exp, exp, exp)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// CountSessions implements store.Store.
func (s *Store) CountSessions(ctx context.Context, at time.Time) (int64, error) {
	var n int64
	err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM sessions WHERE expires_at > ? AND idle_until > ?`, at.UnixNano(), at.UnixNano()).Scan(&n)
	return n, err
}

// Audit implements store.Store.
func (s *Store) Audit(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, error) {
	if f.Limit <= 0 {
		f.Limit = 200
	}
	var from, to int64 = 0, 1<<63 - 1
	if !f.From.IsZero() {
		from = f.From.UnixNano()
	}
	if !f.To.IsZero() {
		to = f.To.UnixNano()
	}
	rows, err := s.r.QueryContext(ctx, `SELECT a.edge, a.epoch, a.seq, a.at, COALESCE(a.user_id, ''), COALESCE(a.name, ''), a.action,
		COALESCE(a.target, ''), COALESCE(a.batch, ''), COALESCE(a.meaning, ''), r.canonical, r.sig, r.hash
		FROM audit a JOIN records r ON r.edge = a.edge AND r.epoch = a.epoch AND r.seq = a.seq
		WHERE a.at >= ? AND a.at < ? AND (? = '' OR a.user_id = ?) AND (? = '' OR a.action = ?) AND (? = '' OR a.batch = ?)
		  AND (? = '' OR a.edge = ?) AND (? = '' OR a.target = ?) AND (? = 0 OR COALESCE(a.meaning, '') <> '')
		ORDER BY a.at DESC, a.edge, a.seq DESC LIMIT ?`,
		from, to, f.User, f.User, f.Action, f.Action, f.Batch, f.Batch, f.Edge, f.Edge, f.Target, f.Target, f.SignedOnly, f.Limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.AuditEntry
	for rows.Next() {
		var e store.AuditEntry
		var at int64
		var canon, sig, hash []byte
		if err := rows.Scan(&e.Ref.Edge, &e.Ref.Epoch, &e.Ref.Seq, &at, &e.User, &e.Name, &e.Action, &e.Target, &e.Batch, &e.Meaning, &canon, &sig, &hash); err != nil {
			return nil, err
		}
		e.At = time.Unix(0, at).UTC()
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
	COALESCE(planned, 0), COALESCE(state, ''), started_at, closed_at, reconciliation, COALESCE(closed_epoch, 0), COALESCE(closed_seq, 0),
	COALESCE(released_by, ''), COALESCE(released_name, ''), released_at, COALESCE(release_ref, '')`

func scanBatch(sc interface{ Scan(...any) error }) (store.Batch, error) {
	var b store.Batch
	var started, closed, released, rec sql.NullString
	var rel string
	err := sc.Scan(&b.Edge, &b.Batch, &b.Line, &b.GTIN, &b.Lot, &b.Expiry, &b.Product, &b.Planned, &b.State, &started, &closed, &rec,
		&b.Closed.Epoch, &b.Closed.Seq, &b.ReleasedBy, &b.ReleasedName, &released, &rel)
	if err != nil {
		return b, err
	}
	b.StartedAt, b.ClosedAt, b.ReleasedAt = parseTS(started), parseTS(closed), parseTS(released)
	if rec.Valid && rec.String != "" {
		b.Reconciliation = json.RawMessage(rec.String)
	}
	if b.Closed.Seq != 0 {
		b.Closed.Edge = b.Edge
	}
	if rel != "" {
		b.Release, _ = store.ParseRef(rel)
	}
	return b, nil
}

// Batch implements store.Store.
func (s *Store) Batch(ctx context.Context, edge, batch string) (store.Batch, error) {
	b, err := scanBatch(s.r.QueryRowContext(ctx, `SELECT `+batchCols+` FROM batches WHERE edge = ? AND batch = ?`, edge, batch))
	if errors.Is(err, sql.ErrNoRows) {
		return b, fmt.Errorf("batch %s of %s: %w", batch, edge, store.ErrNotFound)
	}
	if err != nil {
		return b, err
	}
	b.Units = map[string]int64{}
	rows, err := s.r.QueryContext(ctx, `SELECT status, COUNT(*) FROM units WHERE edge = ? AND batch = ? GROUP BY status`, edge, batch)
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
	started := ts(b.StartedAt)
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM quarantine WHERE edge = ? AND julianday(at) >= julianday(?)`, edge, started).Scan(&b.Quarantined); err != nil {
		return b, err
	}
	err = s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM conflicts x WHERE (x.edge = ? AND julianday(x.at) >= julianday(?))
		OR (x.kind = 'serial' AND x.key IN (SELECT '(01)' || gtin || '(21)' || serial FROM units WHERE edge = ? AND batch = ?))
		OR (x.kind = 'sscc' AND x.key IN (SELECT '(00)' || sscc FROM containers WHERE edge = ? AND batch = ?))`,
		edge, started, edge, batch, edge, batch).Scan(&b.Conflicts)
	return b, err
}

const containerCols = `sscc, level, COALESCE(batch, ''), edge, COALESCE(parent, ''), closed, partial, count, closed_at,
	COALESCE(closed_epoch, 0), COALESCE(closed_seq, 0), COALESCE(approved_by, ''), COALESCE(approved_name, ''), approved_at, COALESCE(approval_ref, '')`

func scanContainer(sc interface{ Scan(...any) error }) (store.Container, error) {
	var c store.Container
	var closedAt, approvedAt sql.NullString
	var appr string
	if err := sc.Scan(&c.SSCC, &c.Level, &c.Batch, &c.Edge, &c.Parent, &c.Closed, &c.Partial, &c.Count, &closedAt,
		&c.CloseRecord.Epoch, &c.CloseRecord.Seq, &c.ApprovedBy, &c.ApprovedName, &approvedAt, &appr); err != nil {
		return c, err
	}
	c.ClosedAt, c.ApprovedAt = parseTS(closedAt), parseTS(approvedAt)
	if c.CloseRecord.Seq != 0 {
		c.CloseRecord.Edge = c.Edge
	}
	if appr != "" {
		c.Approval, _ = store.ParseRef(appr)
	}
	return c, nil
}
