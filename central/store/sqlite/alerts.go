package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/serialine/serialine/central/store"
)

const alertCols = `id, at, severity, code, COALESCE(key, ''), COALESCE(edge, ''), message, COALESCE(ref, ''), active,
	COALESCE(acked_by, ''), acked_at, cleared_at`

func scanAlert(sc interface{ Scan(...any) error }) (store.Alert, error) {
	var a store.Alert
	var at string
	var acked, cleared sql.NullString
	err := sc.Scan(&a.ID, &at, &a.Severity, &a.Code, &a.Key, &a.Edge, &a.Message, &a.Ref, &a.Active, &a.AckedBy, &acked, &cleared)
	a.At = parseTS(sql.NullString{String: at, Valid: true})
	a.AckedAt, a.ClearedAt = parseTS(acked), parseTS(cleared)
	return a, err
}

// RaiseAlert implements store.Store.
func (s *Store) RaiseAlert(ctx context.Context, a store.Alert) (store.Alert, bool, error) {
	if a.At.IsZero() {
		a.At = time.Now()
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return a, false, err
	}
	defer tx.Rollback()
	if a.Key != "" {
		old, err := scanAlert(tx.QueryRowContext(ctx, `SELECT `+alertCols+` FROM alerts WHERE key = ? AND active = 1`, a.Key))
		if err == nil {
			return old, false, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return a, false, err
		}
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO alerts (at, severity, code, key, edge, message, ref, active) VALUES (?, ?, ?, NULLIF(?, ''), NULLIF(?, ''), ?, NULLIF(?, ''), 1)`,
		ts(a.At), a.Severity, a.Code, a.Key, a.Edge, a.Message, a.Ref)
	if err != nil {
		return a, false, err
	}
	if a.ID, err = res.LastInsertId(); err != nil {
		return a, false, err
	}
	a.Active = true
	return a, true, tx.Commit()
}

// Alerts implements store.Store.
func (s *Store) Alerts(ctx context.Context, f store.AlertFilter) ([]store.Alert, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+alertCols+` FROM alerts
		WHERE (? = 0 OR active = 1) AND (? = '' OR edge = ?) AND (? = '' OR code = ?) ORDER BY id DESC LIMIT ?`,
		f.ActiveOnly, f.Edge, f.Edge, f.Code, f.Code, f.Limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Alert
	for rows.Next() {
		a, err := scanAlert(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// AckAlert implements store.Store.
func (s *Store) AckAlert(ctx context.Context, id int64, by string, at time.Time) error {
	res, err := s.w.ExecContext(ctx, `UPDATE alerts SET acked_by = ?, acked_at = ? WHERE id = ?`, by, ts(at), id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("alert %d: %w", id, store.ErrNotFound)
	}
	return nil
}

// ClearAlert implements store.Store.
func (s *Store) ClearAlert(ctx context.Context, key string, at time.Time) (bool, error) {
	res, err := s.w.ExecContext(ctx, `UPDATE alerts SET active = 0, cleared_at = ? WHERE key = ? AND active = 1`, ts(at), key)
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}
