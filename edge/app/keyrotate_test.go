package app

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"testing"

	"github.com/rs/zerolog"

	"github.com/serialine/serialine/edge/config"
	"github.com/serialine/serialine/edge/store"
	"github.com/serialine/serialine/sync/identity"
	"github.com/serialine/serialine/sync/record"
)

func appendOne(t *testing.T, cfg *config.Line, key ed25519.PrivateKey) {
	t.Helper()
	db, err := store.Open(filepath.Join(DataDir(cfg), "edge.db"), store.Options{EdgeID: cfg.Edge.ID, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *store.Tx) error {
		_, err := tx.Append(record.KindEdgeStarted, record.EdgeStarted{Line: "l1", PublicKey: record.EncodePublicKey(key.Public().(ed25519.PublicKey))})
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

func chainOf(t *testing.T, cfg *config.Line) []record.Record {
	t.Helper()
	key, err := identity.Load(KeyPath(cfg))
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(filepath.Join(DataDir(cfg), "edge.db"), store.Options{EdgeID: cfg.Edge.ID, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	recs, err := db.Records(1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// A prepared rotation is applied at start: a key.rotated record signed by
// the old key, then the new key signs. Anyone holding only the old public
// key verifies the whole chain. A crash after the record but before the
// key files moved does not announce twice.
func TestKeyRotationAtStart(t *testing.T) {
	cfg := &config.Line{Edge: config.Edge{ID: "edge-rot", DataDir: t.TempDir()}}
	if _, _, err := PrepareKeyRotation(cfg); err == nil {
		t.Fatal("prepared a rotation with no current key")
	}
	old, _, err := identity.LoadOrCreate(KeyPath(cfg))
	if err != nil {
		t.Fatal(err)
	}
	oldPub := old.Public().(ed25519.PublicKey)
	appendOne(t, cfg, old)
	newPub, created, err := PrepareKeyRotation(cfg)
	if err != nil || !created || newPub.Equal(oldPub) {
		t.Fatalf("prepare: %v %v", created, err)
	}
	again, created, _ := PrepareKeyRotation(cfg)
	if created || !again.Equal(newPub) {
		t.Fatal("a second prepare made another key")
	}
	if err := rotateKey(cfg, zerolog.Nop()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(NextKeyPath(cfg)); !os.IsNotExist(err) {
		t.Fatalf("next key still there: %v", err)
	}
	cur, _ := identity.Load(KeyPath(cfg))
	if !cur.Public().(ed25519.PublicKey).Equal(newPub) {
		t.Fatal("edge.key is not the new key")
	}
	retired, _ := filepath.Glob(KeyPath(cfg) + ".retired-*")
	if len(retired) != 1 {
		t.Fatalf("retired keys %v", retired)
	}
	appendOne(t, cfg, cur)
	recs := chainOf(t, cfg)
	if len(recs) != 3 || recs[1].Kind != record.KindKeyRotated || len(recs[1].Sig) == 0 || !record.VerifySig(oldPub, recs[1].Hash(), recs[1].Sig) || !record.VerifySig(newPub, recs[2].Hash(), recs[2].Sig) {
		t.Fatalf("chain %+v", recs)
	}
	if n, err := record.VerifyRun(oldPub, record.Head{}, recs); err != nil || n != 3 {
		t.Fatalf("offline verification with the old key: %d %v", n, err)
	}
	// Restart with nothing prepared: nothing happens.
	if err := rotateKey(cfg, zerolog.Nop()); err != nil || len(chainOf(t, cfg)) != 3 {
		t.Fatalf("idle restart: %v", err)
	}

	// A crash between the record and the file moves.
	third, _, _ := PrepareKeyRotation(cfg)
	curKey, _ := identity.Load(KeyPath(cfg))
	db, _ := store.Open(filepath.Join(DataDir(cfg), "edge.db"), store.Options{EdgeID: cfg.Edge.ID, Key: curKey})
	db.Update(func(tx *store.Tx) error {
		_, err := tx.Append(record.KindKeyRotated, record.KeyRotated{Old: record.EncodePublicKey(newPub), New: record.EncodePublicKey(third)})
		return err
	})
	db.Close()
	if err := rotateKey(cfg, zerolog.Nop()); err != nil {
		t.Fatal(err)
	}
	recs = chainOf(t, cfg)
	if len(recs) != 4 || recs[3].Kind != record.KindKeyRotated {
		t.Fatalf("after the crash: %d records", len(recs))
	}
	if n, err := record.VerifyRun(oldPub, record.Head{}, recs); err != nil || n != 4 {
		t.Fatalf("two rotations, verified with the first key: %d %v", n, err)
	}
}
