// Package identity holds a daemon's Ed25519 signing key: the edge's (it
// signs the line's records) and central's (it signs central's own journal of
// user actions). Generated on first start, stored in a file only the
// daemon's user can read (mode 0600).
package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

const pemType = "SERIALINE EDGE ED25519 PRIVATE KEY" // kept for every key: files written by earlier versions stay readable

// LoadOrCreate reads the key at path, or generates and writes a new one.
// An existing key file readable by group or others is refused.
func LoadOrCreate(path string) (ed25519.PrivateKey, bool, error) {
	key, err := Load(path)
	if err == nil {
		return key, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, err
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, err
	}
	block := pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: priv.Seed()})
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("signing key %s: %w", path, err)
	}
	if _, err := f.Write(block); err != nil {
		f.Close()
		return nil, false, fmt.Errorf("signing key %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, false, err
	}
	if err := f.Close(); err != nil {
		return nil, false, err
	}
	return priv, true, nil
}

// Load reads an existing key file.
func Load(path string) (ed25519.PrivateKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("signing key %s: mode %o is readable by others; want 0600", path, fi.Mode().Perm())
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(raw)
	if block == nil || block.Type != pemType || len(block.Bytes) != ed25519.SeedSize {
		return nil, fmt.Errorf("signing key %s: not a %s PEM file", path, pemType)
	}
	return ed25519.NewKeyFromSeed(block.Bytes), nil
}
