package auth

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"

	"github.com/serialine/serialine/central/journal"
	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/central/store/sqlite"
	"github.com/serialine/serialine/sync/record"
)

type fakeAlerts struct{ raised []store.Alert }

func (f *fakeAlerts) Raise(ctx context.Context, a store.Alert) (store.Alert, error) {
	f.raised = append(f.raised, a)
	return a, nil
}

type env struct {
	st     store.Store
	j      *journal.Journal
	u      *Users
	now    *time.Time
	alerts *fakeAlerts
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	j, err := journal.Open(ctx, journal.Options{Store: st, KeyPath: filepath.Join(dir, "central.key"), Instance: "t", Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)
	e := &env{st: st, j: j, now: &now, alerts: &fakeAlerts{}}
	e.u = New(Options{Store: st, Journal: j, Alerts: e.alerts, Log: zerolog.Nop(), Now: func() time.Time { return *e.now }, Cost: bcrypt.MinCost})
	return e
}

// journaled returns central's journal user actions, oldest first.
func (e *env) journaled(t *testing.T) []record.UserAction {
	t.Helper()
	h := e.j.Head()
	recs, err := e.st.Records(context.Background(), e.j.ID(), h.Epoch, 1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []record.UserAction
	for _, r := range recs {
		var a record.UserAction
		if err := jsonUnmarshal(r.Record.Body, &a); err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	return out
}

var admin = Actor{ID: "cli:root", Name: "root (command line)"}

func TestAddValidatesAndJournals(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, tc := range []struct{ id, name, role, pw, want string }{
		{"qa1", "Quinn QA", RoleQA, "short", "at least 12"},
		{"qa1", "Quinn QA", "boss", "long-enough-password", "role"},
		{"qa1", "", RoleQA, "long-enough-password", "printed name"},
		{"bad/id", "X", RoleQA, "long-enough-password", "user id"},
		{"longenoughid", "X", RoleQA, "LongEnoughId", "must not be the user id"},
	} {
		if err := e.u.Add(ctx, admin, tc.id, tc.name, tc.role, tc.pw, ""); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Add(%q, %q, %q): %v, want %q", tc.id, tc.role, tc.pw, err, tc.want)
		}
	}
	if err := e.u.Add(ctx, admin, "qa1", "Quinn QA", RoleQA, "long-enough-password", "new hire"); err != nil {
		t.Fatal(err)
	}
	if err := e.u.Add(ctx, admin, "qa1", "Again", RoleQA, "long-enough-password", ""); err == nil {
		t.Fatal("duplicate user accepted")
	}
	x, _ := e.st.User(ctx, "qa1")
	if bcrypt.CompareHashAndPassword([]byte(x.PasswordHash), []byte("long-enough-password")) != nil || strings.Contains(x.PasswordHash, "long-enough") {
		t.Fatalf("stored hash %q", x.PasswordHash)
	}
	acts := e.journaled(t)
	if len(acts) != 1 || acts[0].Action != "user.created" || acts[0].User != "cli:root" || acts[0].Target != "qa1" || !strings.Contains(acts[0].New, "role=qa") || acts[0].Reason != "new hire" {
		t.Fatalf("journal: %+v", acts)
	}
}

func TestLockoutSessionsAndChanges(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := e.u.Add(ctx, admin, "qa1", "Quinn QA", RoleQA, "long-enough-password", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.u.Check(ctx, "qa1", "long-enough-password", "login"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.u.Check(ctx, "nobody", "long-enough-password", "login"); !errors.Is(err, ErrBadLogin) {
		t.Fatalf("unknown user: %v", err)
	}
	for i := 0; i < e.u.opt.MaxFailed-1; i++ {
		if _, err := e.u.Check(ctx, "qa1", "wrong", "signature"); !errors.Is(err, ErrBadLogin) {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	if _, err := e.u.Check(ctx, "qa1", "wrong", "login"); !errors.Is(err, ErrLocked) {
		t.Fatalf("attempt %d: %v", e.u.opt.MaxFailed, err)
	}
	// Locked: even the right password is refused, and an alert is raised.
	if _, err := e.u.Check(ctx, "qa1", "long-enough-password", "login"); !errors.Is(err, ErrLocked) {
		t.Fatalf("locked account with the right password: %v", err)
	}
	if len(e.alerts.raised) != 1 || e.alerts.raised[0].Code != "account_locked" {
		t.Fatalf("alerts: %+v", e.alerts.raised)
	}
	*e.now = e.now.Add(e.u.opt.LockFor + time.Second)
	u, tok, err := e.u.Login(ctx, "qa1", "long-enough-password")
	if err != nil || u.Name != "Quinn QA" || tok == "" {
		t.Fatalf("login after the lock expired: %v", err)
	}
	// The store keeps only the token's hash.
	if _, err := e.st.Session(ctx, tok); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("session stored under the clear token")
	}
	if x, ok, err := e.u.Session(ctx, tok); !ok || err != nil || x.ID != "qa1" {
		t.Fatalf("session: %v %v", ok, err)
	}
	// Idle timeout, moved by use.
	*e.now = e.now.Add(e.u.opt.IdleTimeout - time.Minute)
	if _, ok, _ := e.u.Session(ctx, tok); !ok {
		t.Fatal("session ended before the idle timeout")
	}
	*e.now = e.now.Add(e.u.opt.IdleTimeout - time.Minute)
	if _, ok, _ := e.u.Session(ctx, tok); !ok {
		t.Fatal("used session ended at the first idle deadline")
	}
	// Alive does not count as use.
	*e.now = e.now.Add(e.u.opt.IdleTimeout - time.Minute)
	if ok, _ := e.u.Alive(ctx, tok); !ok {
		t.Fatal("live session reported dead")
	}
	*e.now = e.now.Add(2 * time.Minute)
	if ok, _ := e.u.Alive(ctx, tok); ok {
		t.Fatal("Alive kept an idle session alive")
	}
	if _, ok, _ := e.u.Session(ctx, tok); ok {
		t.Fatal("idle session accepted")
	}
	// Absolute expiry.
	_, tok, _ = e.u.Login(ctx, "qa1", "long-enough-password")
	for i := 1; ; i++ {
		*e.now = e.now.Add(e.u.opt.SessionLife / 20) // 24 min: within the idle timeout
		_, ok, _ := e.u.Session(ctx, tok)
		if !ok {
			if i < 20 {
				t.Fatalf("session ended after %d/20 of its life", i)
			}
			break
		}
		if i >= 20 {
			t.Fatal("session outlived its absolute life")
		}
	}
	// Disabling ends sessions; a disabled account cannot log in.
	_, tok, _ = e.u.Login(ctx, "qa1", "long-enough-password")
	if err := e.u.SetDisabled(ctx, admin, "qa1", true, "left the company"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := e.u.Session(ctx, tok); ok {
		t.Fatal("session of a disabled user accepted")
	}
	if _, _, err := e.u.Login(ctx, "qa1", "long-enough-password"); !errors.Is(err, ErrDisabled) {
		t.Fatalf("disabled login: %v", err)
	}
	if err := e.u.SetDisabled(ctx, admin, "qa1", false, "back"); err != nil {
		t.Fatal(err)
	}
	_, tok, _ = e.u.Login(ctx, "qa1", "long-enough-password")
	if err := e.u.SetPassword(ctx, admin, "qa1", "long-enough-password", ""); err == nil {
		t.Fatal("the same password accepted as a new one")
	}
	if err := e.u.SetPassword(ctx, admin, "qa1", "another-long-password", "reset"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := e.u.Session(ctx, tok); ok {
		t.Fatal("session survived a password change")
	}
	if _, err := e.u.Check(ctx, "qa1", "another-long-password", "login"); err != nil {
		t.Fatal(err)
	}
	if err := e.u.SetRole(ctx, admin, "qa1", RoleSupervisor, "moved"); err != nil {
		t.Fatal(err)
	}
	// Every change journaled with old and new value; never a hash.
	var got []string
	for _, a := range e.journaled(t) {
		got = append(got, a.Action+":"+a.Old+">"+a.New)
		x, _ := e.st.User(ctx, "qa1")
		if strings.Contains(a.Old+a.New+a.Reason, x.PasswordHash) || strings.Contains(a.Old+a.New, "$2a$") {
			t.Fatalf("a hash in the journal: %+v", a)
		}
	}
	want := []string{"user.created:>name=\"Quinn QA\" role=qa", "user.signature_failed:>", "user.signature_failed:>", "user.signature_failed:>", "user.signature_failed:>",
		"user.locked:>", "user.login:>", "user.login:>", "user.login:>", "user.disabled:false>true", "user.enabled:true>false", "user.login:>",
		"user.password_changed:(set)>(changed)", "user.role_changed:qa>supervisor"}
	if len(got) != len(want) {
		t.Fatalf("journal:\n%s", strings.Join(got, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Fatalf("journal[%d] = %q, want %q\n%s", i, got[i], want[i], strings.Join(got, "\n"))
		}
	}
	l, _ := e.u.List(ctx)
	if len(l) != 1 || l[0].Role != RoleSupervisor || l[0].Disabled || l[0].LastLogin.IsZero() {
		t.Fatalf("list: %+v", l)
	}
}

func TestMigrateUsersFile(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	h, _ := bcrypt.GenerateFromPassword([]byte("migrated-password"), bcrypt.MinCost)
	path := filepath.Join(t.TempDir(), "users.json")
	os.WriteFile(path, []byte(`[{"id":"admin","name":"Ada Admin","role":"admin","password_hash":"`+string(h)+`","created":"2026-01-02T03:04:05Z"}]`), 0o600)
	n, err := e.u.MigrateFile(ctx, path)
	if err != nil || n != 1 {
		t.Fatalf("migrate: %d %v", n, err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("users.json left in place")
	}
	if _, err := os.Stat(path + ".migrated"); err != nil {
		t.Fatal(err)
	}
	if u, err := e.u.Check(ctx, "admin", "migrated-password", "login"); err != nil || u.Name != "Ada Admin" {
		t.Fatalf("migrated login: %+v %v", u, err)
	}
	if n, err := e.u.MigrateFile(ctx, path); n != 0 || err != nil {
		t.Fatalf("second migration: %d %v", n, err)
	}
	os.WriteFile(path, []byte(`[{"id":"x","role":"boss"}]`), 0o600)
	if _, err := e.u.MigrateFile(ctx, path); err == nil || !strings.Contains(err.Error(), "entry 1") {
		t.Fatalf("bad file: %v", err)
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// Password aging (21 CFR 11.300(b)): past the maximum age a password no
// longer logs in or signs; its user changes it with the current one
// re-entered, and the new one works at once. An admin's reset starts a new
// age as well.
func TestPasswordAging(t *testing.T) {
	e := newEnv(t)
	e.u.opt.PasswordMaxAge = 90 * 24 * time.Hour
	ctx := context.Background()
	if err := e.u.Add(ctx, admin, "qa1", "Quinn A. Quality", RoleQA, "first-password-1", "new QA"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		after   time.Duration
		expired bool
	}{{0, false}, {89 * 24 * time.Hour, false}, {90*24*time.Hour + time.Second, true}} {
		now := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC).Add(c.after)
		*e.now = now
		for _, what := range []string{"login", "sign"} {
			_, err := e.u.Check(ctx, "qa1", "first-password-1", what)
			if got := errors.Is(err, ErrPasswordExpired); got != c.expired {
				t.Fatalf("%s after %s: %v, want expired %v", what, c.after, err, c.expired)
			}
			if c.expired && !strings.Contains(err.Error(), "last changed 2026-11-24, passwords expire after 90 days") {
				t.Fatalf("expiry message: %v", err)
			}
		}
	}
	if _, _, err := e.u.Login(ctx, "qa1", "first-password-1"); !errors.Is(err, ErrPasswordExpired) {
		t.Fatalf("login with an expired password: %v", err)
	}
	// The wrong current password changes nothing; the right one does.
	if _, err := e.u.ChangeOwnPassword(ctx, "qa1", "not-the-password", "second-password-2"); !errors.Is(err, ErrBadLogin) {
		t.Fatalf("change with a wrong current password: %v", err)
	}
	if _, err := e.u.ChangeOwnPassword(ctx, "qa1", "first-password-1", "first-password-1"); err == nil {
		t.Fatal("the expired password was accepted as its own replacement")
	}
	if _, err := e.u.ChangeOwnPassword(ctx, "qa1", "first-password-1", "second-password-2"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.u.Login(ctx, "qa1", "second-password-2"); err != nil {
		t.Fatalf("login with the new password: %v", err)
	}
	acts := e.journaled(t)
	last := acts[len(acts)-2] // before the login
	if last.Action != "user.password_changed" || last.User != "qa1" || last.Reason != "changed by the user" {
		t.Fatalf("journal: %+v", last)
	}
	// Aging off: an old password keeps working.
	e.u.opt.PasswordMaxAge = 0
	*e.now = e.now.Add(10 * 365 * 24 * time.Hour)
	if _, err := e.u.Check(ctx, "qa1", "second-password-2", "login"); err != nil {
		t.Fatalf("aging off: %v", err)
	}
}
