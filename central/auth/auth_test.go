package auth

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestUsersLockoutAndSessions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.json")
	u, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)
	u.now = func() time.Time { return now }
	if err := u.Add("qa1", "Quinn A", RoleQA, "short"); err == nil {
		t.Fatal("short password accepted")
	}
	if err := u.Add("qa1", "Quinn A", "boss", "long-enough-password"); err == nil {
		t.Fatal("unknown role accepted")
	}
	if err := u.Add("qa1", "Quinn A", RoleQA, "long-enough-password"); err != nil {
		t.Fatal(err)
	}
	if err := u.Add("qa1", "Again", RoleQA, "long-enough-password"); err == nil {
		t.Fatal("duplicate user accepted")
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("users file mode %o", fi.Mode().Perm())
	}
	if _, err := u.Check("qa1", "long-enough-password"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < u.MaxFailed; i++ {
		if _, err := u.Check("qa1", "wrong"); !errors.Is(err, ErrBadLogin) {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	if _, err := u.Check("qa1", "long-enough-password"); !errors.Is(err, ErrLocked) {
		t.Fatalf("after %d failures: %v", u.MaxFailed, err)
	}
	now = now.Add(u.LockFor + time.Second)
	if _, err := u.Check("qa1", "long-enough-password"); err != nil {
		t.Fatalf("after the lock expired: %v", err)
	}
	tok := u.NewSession("qa1")
	if x, ok := u.Session(tok); !ok || x.ID != "qa1" {
		t.Fatal("session not found")
	}
	now = now.Add(u.SessionLife + time.Second)
	if _, ok := u.Session(tok); ok {
		t.Fatal("expired session accepted")
	}
	// Reopen: users persist, hashes not passwords.
	raw, _ := os.ReadFile(path)
	if string(raw) == "" || strings.Contains(string(raw), "long-enough-password") {
		t.Fatal("password stored in clear")
	}
	u2, _ := Open(path)
	if u2.Count() != 1 {
		t.Fatal("users not persisted")
	}
}
