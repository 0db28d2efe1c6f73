package app

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"

	"github.com/serialine/serialine/edge/config"
	"github.com/serialine/serialine/edge/store"
	"github.com/serialine/serialine/sync/identity"
	"github.com/serialine/serialine/sync/record"
)

// NextKeyPath is where a prepared key rotation waits for the edge's next
// start (`serialine-edge key rotate`).
func NextKeyPath(cfg *config.Line) string { return filepath.Join(DataDir(cfg), "edge.key.next") }

// PrepareKeyRotation creates the edge's next signing key (or returns the
// one already prepared) and its public key, which an admin enrolls at
// central (`serialine-central rotate-key`) before the edge restarts.
func PrepareKeyRotation(cfg *config.Line) (ed25519.PublicKey, bool, error) {
	if err := os.MkdirAll(DataDir(cfg), 0o700); err != nil {
		return nil, false, err
	}
	if _, err := os.Stat(KeyPath(cfg)); err != nil {
		return nil, false, fmt.Errorf("no current key at %s to rotate from: %w", KeyPath(cfg), err)
	}
	key, created, err := identity.LoadOrCreate(NextKeyPath(cfg))
	if err != nil {
		return nil, false, err
	}
	return key.Public().(ed25519.PublicKey), created, nil
}

// rotateKey applies a prepared rotation at start, before the store opens:
// with the old key it appends a key.rotated record (its own commit, so the
// old key signs it) announcing the new key, then retires the old key file
// (edge.key.retired-<unix time>) and puts the new one in its place. A crash
// at any point is safe: the record is appended only if the chain's last
// record does not already announce this key, and the files move only after
// it is committed.
func rotateKey(cfg *config.Line, log zerolog.Logger) error {
	next, err := identity.Load(NextKeyPath(cfg))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("prepared key rotation %s: %w", NextKeyPath(cfg), err)
	}
	old, err := identity.Load(KeyPath(cfg))
	if err != nil {
		return fmt.Errorf("key rotation: current key: %w", err)
	}
	newPub := next.Public().(ed25519.PublicKey)
	oldPub := old.Public().(ed25519.PublicKey)
	if !oldPub.Equal(newPub) {
		db, err := store.Open(filepath.Join(DataDir(cfg), "edge.db"), store.Options{EdgeID: cfg.Edge.ID, Key: old})
		if err != nil {
			return err
		}
		done := false
		if h := db.Head(); h.Seq > 0 {
			if last, err := db.Records(h.Seq, 1); err == nil && len(last) == 1 && last[0].Kind == record.KindKeyRotated {
				if _, p, err := record.ParseKeyRotated(&last[0]); err == nil && p.Equal(newPub) {
					done = true // appended before a crash; only the files remain to move
				}
			}
		}
		if !done {
			err = db.Update(func(tx *store.Tx) error {
				_, err := tx.Append(record.KindKeyRotated, record.KeyRotated{Old: record.EncodePublicKey(oldPub), New: record.EncodePublicKey(newPub), Reason: "prepared key rotation applied at start"})
				return err
			})
		}
		if cerr := db.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("key rotation: %w", err)
		}
	}
	retired := fmt.Sprintf("%s.retired-%d", KeyPath(cfg), time.Now().Unix())
	if err := os.Rename(KeyPath(cfg), retired); err != nil {
		return fmt.Errorf("key rotation: %w", err)
	}
	if err := os.Rename(NextKeyPath(cfg), KeyPath(cfg)); err != nil {
		return fmt.Errorf("key rotation: %w (the old key is in %s)", err, retired)
	}
	if d, err := os.Open(DataDir(cfg)); err == nil {
		d.Sync()
		d.Close()
	}
	log.Info().Str("old_key", record.EncodePublicKey(oldPub)).Str("new_key", record.EncodePublicKey(newPub)).Str("retired", retired).Msg("edge signing key rotated")
	return nil
}
