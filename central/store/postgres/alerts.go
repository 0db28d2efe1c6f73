package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/serialine/serialine/central/store"
)

const alertCols = `id, at, severity, code, COALESCE(key, ''), COALESCE(edge, ''), message, COALESCE(ref, ''), active,
	COALESCE(acked_by, ''), acked_at, cleared_at`

func scanAlert(sc pgx.Row) (store.Alert, error) {
	var a store.Alert
	var acked, cleared *time.Time
	err := sc.Scan(&a.ID, &a.At, &a.Severity, &a.Code, &a.Key, &a.Edge, &a.Message, &a.Ref, &a.Active, &a.AckedBy, &acked, &cleared)
	if acked != nil {
		a.AckedAt = *acked
	}
	if cleared != nil {
		a.ClearedAt = *cleared
	}
	return a, err
}

// RaiseAlert implements store.Store. The partial unique index on active
// keys makes concurrent raises by two central instances safe: the loser's
// insert does nothing and it returns the winner's alert.
func (s *Store) RaiseAlert(ctx context.Context, a store.Alert) (store.Alert, bool, error) {
	if a.At.IsZero() {
		a.At = time.Now()
	}
	for attempt := 0; attempt < 3; attempt++ {
		if a.Key != "" {
			old, err := scanAlert(s.pool.QueryRow(ctx, `SELECT `+alertCols+` FROM alerts WHERE key = $1 AND active`, a.Key))
			if err == nil {
				return old, false, nil
			}
			if !errors.Is(err, pgx.ErrNoRows) {
				return a, false, err
			}
		}
		err := s.pool.QueryRow(ctx, `INSERT INTO alerts (at, severity, code, key, edge, message, ref, active)
			VALUES ($1, $2, $3, NULLIF($4, ''), NULLIF($5, ''), $6, NULLIF($7, ''), true)
			ON CONFLICT (key) WHERE active AND key IS NOT NULL DO NOTHING RETURNING id`,
			a.At, a.Severity, a.Code, a.Key, a.Edge, a.Message, a.Ref).Scan(&a.ID)
		if errors.Is(err, pgx.ErrNoRows) {
			continue // raised meanwhile by another instance: return that one
		}
		if err != nil {
			return a, false, err
		}
		a.Active = true
		return a, true, nil
	}
	return a, false, fmt.Errorf("alert %s: could not raise or find the active alert", a.Key)
}

// Alerts implements store.Store.
func (s *Store) Alerts(ctx context.Context, f store.AlertFilter) ([]store.Alert, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	rows, err := s.pool.Query(ctx, `SELECT `+alertCols+` FROM alerts
		WHERE (NOT $1 OR active) AND ($2 = '' OR edge = $2) AND ($3 = '' OR code = $3) ORDER BY id DESC LIMIT $4`,
		f.ActiveOnly, f.Edge, f.Code, f.Limit)
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
	tag, err := s.pool.Exec(ctx, `UPDATE alerts SET acked_by = $1, acked_at = $2 WHERE id = $3`, by, at, id)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("alert %d: %w", id, store.ErrNotFound)
	}
	return nil
}

// ClearAlert implements store.Store.
func (s *Store) ClearAlert(ctx context.Context, key string, at time.Time) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE alerts SET active = false, cleared_at = $1 WHERE key = $2 AND active`, at, key)
	if err != nil {
		return false, err
	}
	return tag.RowsAffected() > 0, nil
}
