// Package auth holds central's users and sessions, kept in the compliance
// store so that several central instances on one PostgreSQL share them:
// bcrypt password hashes, roles, lockout after failed attempts (logins and
// e-signature attempts alike), sessions with an absolute and an idle
// expiry. There is no default password: the first admin is created by
// `serialine-central user add` or by the demo, which prints a generated
// password.
//
// Every change to an account is a user action in central's journal (who,
// what, when, old and new value, reason); a password change is journaled as
// a change, never with the hash. Sessions live in the store (only the
// SHA-256 of the token) rather than in signed tokens so that logging out,
// disabling a user or changing a password ends the sessions at once on
// every instance, and an idle session ends without the browser's help.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"

	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/sync/record"
)

// Roles, lowest to highest.
const (
	RoleOperator   = "operator"
	RoleSupervisor = "supervisor"
	RoleQA         = "qa"
	RoleAdmin      = "admin"
)

var rank = map[string]int{RoleOperator: 1, RoleSupervisor: 2, RoleQA: 3, RoleAdmin: 4}

// ValidRole reports whether r is a known role.
func ValidRole(r string) bool { return rank[r] > 0 }

// AtLeast reports whether role r has at least the authority of min
// (operator < supervisor < qa < admin).
func AtLeast(r, min string) bool { return rank[r] > 0 && rank[r] >= rank[min] }

// MinPassword is the shortest password accepted.
const MinPassword = 12

// User is an account as the rest of central sees it: never the hash.
type User struct {
	ID   string
	Name string // printed name, shown in e-signatures
	Role string
}

// Can reports whether the user has at least role min.
func (u User) Can(min string) bool { return AtLeast(u.Role, min) }

// Account is a user with the state an admin sees.
type Account struct {
	User
	Disabled        bool
	Locked          bool
	LockedUntil     time.Time
	Failed          int
	Created         time.Time
	PasswordChanged time.Time
	LastLogin       time.Time
}

// Errors.
var (
	ErrBadLogin = errors.New("unknown user or wrong password")
	ErrLocked   = errors.New("account locked after repeated failed attempts")
	ErrDisabled = errors.New("account disabled")
	// ErrPasswordExpired: the password is older than Options.PasswordMaxAge
	// (21 CFR 11.300(b)); the user must choose a new one before logging in
	// or signing again.
	ErrPasswordExpired = errors.New("password expired: choose a new one")
)

// Journal records user actions (central/journal.Journal).
type Journal interface {
	Action(ctx context.Context, a record.UserAction) (store.Stored, error)
}

// Alerter raises an alert (central/alerts.Alerter): a locked account is
// reported at once to QA and ops (21 CFR 11.300(d)).
type Alerter interface {
	Raise(ctx context.Context, a store.Alert) (store.Alert, error)
}

// Options configure Users.
type Options struct {
	Store   store.Store
	Journal Journal
	Alerts  Alerter // optional
	Log     zerolog.Logger
	Now     func() time.Time
	// MaxFailed consecutive failures lock the account for LockFor
	// (defaults 5 and 15 minutes).
	MaxFailed int
	LockFor   time.Duration
	// SessionLife is a session's absolute life (default 8 h); IdleTimeout
	// ends it earlier when unused (default 30 min).
	SessionLife time.Duration
	IdleTimeout time.Duration
	// Cost is the bcrypt cost (default bcrypt.DefaultCost).
	Cost int
	// PasswordMaxAge: a password older than this no longer logs in or
	// signs until its user changed it (0: passwords do not age).
	PasswordMaxAge time.Duration
}

// Users manages accounts and sessions.
type Users struct {
	opt Options
	st  store.Store
	log zerolog.Logger

	dummyOnce sync.Once
	dummy     []byte
}

// New returns the user manager.
func New(opt Options) *Users {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.MaxFailed <= 0 {
		opt.MaxFailed = 5
	}
	if opt.LockFor <= 0 {
		opt.LockFor = 15 * time.Minute
	}
	if opt.SessionLife <= 0 {
		opt.SessionLife = 8 * time.Hour
	}
	if opt.IdleTimeout <= 0 {
		opt.IdleTimeout = 30 * time.Minute
	}
	if opt.Cost == 0 {
		opt.Cost = bcrypt.DefaultCost
	}
	return &Users{opt: opt, st: opt.Store, log: opt.Log.With().Str("component", "auth").Logger()}
}

// Actor is who makes a change: a logged-in user, or the command line
// ("cli:<login>").
type Actor struct {
	ID, Name, Role string
}

// ActorOf returns the actor of a logged-in user.
func ActorOf(u User) Actor { return Actor{ID: u.ID, Name: u.Name, Role: u.Role} }

func (u *Users) journal(ctx context.Context, by Actor, action, target, field, old, new, reason string) error {
	if u.opt.Journal == nil {
		return errors.New("auth: no journal to record the change")
	}
	_, err := u.opt.Journal.Action(ctx, record.UserAction{User: by.ID, Name: by.Name, Role: by.Role, Action: action, Target: target, Field: field, Old: old, New: new, Reason: reason})
	if err != nil {
		u.log.Error().Err(err).Str("action", action).Str("target", target).Msg("user action done but not journaled")
		return fmt.Errorf("%s %s done, but the journal refused the record: %w", action, target, err)
	}
	return nil
}

// validID: 1 to 64 letters, digits, '-', '_' or '.' (never "cli:..." or
// other actor names central writes itself).
func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

func checkPassword(id, pw string) error {
	if len(pw) < MinPassword {
		return fmt.Errorf("user %q: password must have at least %d characters", id, MinPassword)
	}
	if strings.EqualFold(pw, id) {
		return fmt.Errorf("user %q: password must not be the user id", id)
	}
	return nil
}

// Count returns the number of accounts.
func (u *Users) Count(ctx context.Context) (int, error) {
	l, err := u.st.Users(ctx)
	return len(l), err
}

// Add creates an account.
func (u *Users) Add(ctx context.Context, by Actor, id, name, role, password, reason string) error {
	if !validID(id) {
		return fmt.Errorf("user id %q: want 1 to 64 letters, digits, - _ .", id)
	}
	if !ValidRole(role) {
		return fmt.Errorf("user %q: role %q: want operator, supervisor, qa or admin", id, role)
	}
	if strings.TrimSpace(name) == "" {
		return fmt.Errorf("user %q: a printed name is required (it is shown in e-signatures)", id)
	}
	if err := checkPassword(id, password); err != nil {
		return err
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), u.opt.Cost)
	if err != nil {
		return err
	}
	now := u.opt.Now().UTC()
	if err := u.st.CreateUser(ctx, store.User{ID: id, Name: name, Role: role, PasswordHash: string(h), Created: now, PasswordChanged: now}); err != nil {
		if errors.Is(err, store.ErrExists) {
			return fmt.Errorf("user %q %w", id, store.ErrExists)
		}
		return err
	}
	return u.journal(ctx, by, "user.created", id, "", "", fmt.Sprintf("name=%q role=%s", name, role), reason)
}

// modify applies fn to the stored account (retrying on a concurrent
// update) and returns the account before and after.
func (u *Users) modify(ctx context.Context, id string, fn func(x *store.User) error) (before, after store.User, err error) {
	for attempt := 0; attempt < 5; attempt++ {
		before, err = u.st.User(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return before, after, fmt.Errorf("user %q does not exist", id)
		}
		if err != nil {
			return before, after, err
		}
		x := before
		if err := fn(&x); err != nil {
			return before, after, err
		}
		after, err = u.st.UpdateUser(ctx, x)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		return before, after, err
	}
	return before, after, fmt.Errorf("user %q: changed concurrently, try again", id)
}

// SetPassword sets a new password (admin reset or the user's own change)
// and ends the user's sessions.
func (u *Users) SetPassword(ctx context.Context, by Actor, id, password, reason string) error {
	if err := checkPassword(id, password); err != nil {
		return err
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), u.opt.Cost)
	if err != nil {
		return err
	}
	_, _, err = u.modify(ctx, id, func(x *store.User) error {
		if bcrypt.CompareHashAndPassword([]byte(x.PasswordHash), []byte(password)) == nil {
			return fmt.Errorf("user %q: the new password must differ from the current one", id)
		}
		x.PasswordHash, x.PasswordChanged = string(h), u.opt.Now().UTC()
		return nil
	})
	if err != nil {
		return err
	}
	if _, err := u.st.DeleteSessions(ctx, store.SessionFilter{User: id}); err != nil {
		return err
	}
	return u.journal(ctx, by, "user.password_changed", id, "password", "(set)", "(changed)", reason)
}

// SetRole changes a user's role.
func (u *Users) SetRole(ctx context.Context, by Actor, id, role, reason string) error {
	if !ValidRole(role) {
		return fmt.Errorf("user %q: role %q: want operator, supervisor, qa or admin", id, role)
	}
	before, _, err := u.modify(ctx, id, func(x *store.User) error { x.Role = role; return nil })
	if err != nil {
		return err
	}
	return u.journal(ctx, by, "user.role_changed", id, "role", before.Role, role, reason)
}

// SetName changes a user's printed name.
func (u *Users) SetName(ctx context.Context, by Actor, id, name, reason string) error {
	if strings.TrimSpace(name) == "" {
		return fmt.Errorf("user %q: a printed name is required", id)
	}
	before, _, err := u.modify(ctx, id, func(x *store.User) error { x.Name = name; return nil })
	if err != nil {
		return err
	}
	return u.journal(ctx, by, "user.name_changed", id, "name", before.Name, name, reason)
}

// SetDisabled disables (ending its sessions) or re-enables an account.
// Accounts are never deleted: their signatures must keep naming them.
func (u *Users) SetDisabled(ctx context.Context, by Actor, id string, disabled bool, reason string) error {
	if disabled && by.ID == id {
		return fmt.Errorf("user %q: you cannot disable your own account", id)
	}
	before, _, err := u.modify(ctx, id, func(x *store.User) error { x.Disabled = disabled; return nil })
	if err != nil {
		return err
	}
	if disabled {
		if _, err := u.st.DeleteSessions(ctx, store.SessionFilter{User: id}); err != nil {
			return err
		}
	}
	action := "user.enabled"
	if disabled {
		action = "user.disabled"
	}
	return u.journal(ctx, by, action, id, "disabled", fmt.Sprint(before.Disabled), fmt.Sprint(disabled), reason)
}

// Unlock clears a lockout.
func (u *Users) Unlock(ctx context.Context, by Actor, id, reason string) error {
	x, err := u.st.User(ctx, id)
	if err != nil {
		return fmt.Errorf("user %q does not exist", id)
	}
	if err := u.st.LoginReset(ctx, id, u.opt.Now().UTC(), false); err != nil {
		return err
	}
	return u.journal(ctx, by, "user.unlocked", id, "locked_until", x.LockedUntil.UTC().Format(time.RFC3339), "", reason)
}

// List returns every account.
func (u *Users) List(ctx context.Context) ([]Account, error) {
	l, err := u.st.Users(ctx)
	if err != nil {
		return nil, err
	}
	now := u.opt.Now()
	out := make([]Account, len(l))
	for i, x := range l {
		out[i] = Account{User: User{ID: x.ID, Name: x.Name, Role: x.Role}, Disabled: x.Disabled, Locked: now.Before(x.LockedUntil), LockedUntil: x.LockedUntil,
			Failed: x.Failed, Created: x.Created, PasswordChanged: x.PasswordChanged, LastLogin: x.LastLogin}
	}
	return out, nil
}

// Get returns one account's public part.
func (u *Users) Get(ctx context.Context, id string) (User, error) {
	x, err := u.st.User(ctx, id)
	if err != nil {
		return User{}, err
	}
	return User{ID: x.ID, Name: x.Name, Role: x.Role}, nil
}

func (u *Users) dummyHash() []byte {
	u.dummyOnce.Do(func() { u.dummy, _ = bcrypt.GenerateFromPassword([]byte("not a password at all"), u.opt.Cost) })
	return u.dummy
}

// Check verifies an id and password: for a login, an API call with basic
// credentials, or an e-signature. A wrong password counts toward the
// lockout; a locked or disabled account is refused even with the right
// password. what names the attempt in the journal ("login", "signature").
func (u *Users) Check(ctx context.Context, id, password, what string) (User, error) {
	x, err := u.st.User(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		// Same cost as a real check, so timing does not reveal user ids.
		_ = bcrypt.CompareHashAndPassword(u.dummyHash(), []byte(password))
		u.log.Warn().Str("user", id).Str("attempt", what).Msg("attempt with an unknown user id")
		return User{}, ErrBadLogin
	}
	if err != nil {
		return User{}, err
	}
	now := u.opt.Now().UTC()
	if now.Before(x.LockedUntil) {
		return User{}, ErrLocked
	}
	if bcrypt.CompareHashAndPassword([]byte(x.PasswordHash), []byte(password)) != nil {
		after, err := u.st.LoginFailed(ctx, id, u.opt.MaxFailed, u.opt.LockFor, now)
		if err != nil {
			return User{}, err
		}
		who := Actor{ID: x.ID, Name: x.Name, Role: x.Role}
		if after.LockedUntil.After(now) {
			if jerr := u.journal(ctx, who, "user.locked", id, "locked_until", "", after.LockedUntil.Format(time.RFC3339), fmt.Sprintf("%d failed %s attempts", u.opt.MaxFailed, what)); jerr != nil {
				return User{}, jerr
			}
			if u.opt.Alerts != nil {
				if _, aerr := u.opt.Alerts.Raise(ctx, store.Alert{Severity: store.SeverityCritical, Code: "account_locked", Key: "account_locked:" + id,
					Message: fmt.Sprintf("account %s locked after %d failed %s attempts", id, u.opt.MaxFailed, what)}); aerr != nil {
					u.log.Error().Err(aerr).Str("user", id).Msg("lockout alert not raised")
				}
			}
			return User{}, ErrLocked
		}
		if jerr := u.journal(ctx, who, "user."+what+"_failed", id, "", "", "", "wrong password"); jerr != nil {
			return User{}, jerr
		}
		return User{}, ErrBadLogin
	}
	if x.Disabled {
		return User{}, ErrDisabled
	}
	if x.Failed != 0 || !x.LockedUntil.IsZero() {
		if err := u.st.LoginReset(ctx, id, now, false); err != nil {
			return User{}, err
		}
	}
	if what != "password_change" && u.Expired(x.PasswordChanged) {
		u.log.Warn().Str("user", id).Str("attempt", what).Time("password_changed", x.PasswordChanged).Msg("password expired")
		return User{}, fmt.Errorf("%w (last changed %s, passwords expire after %s)", ErrPasswordExpired, x.PasswordChanged.UTC().Format("2006-01-02"), days(u.opt.PasswordMaxAge))
	}
	return User{ID: x.ID, Name: x.Name, Role: x.Role}, nil
}

// Expired reports whether a password changed at that time has aged out.
func (u *Users) Expired(changed time.Time) bool {
	return u.opt.PasswordMaxAge > 0 && u.opt.Now().Sub(changed) > u.opt.PasswordMaxAge
}

func days(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	}
	return d.String()
}

// ChangeOwnPassword: a user replaces their own password, the current one
// re-entered (also when it has expired); their sessions end.
func (u *Users) ChangeOwnPassword(ctx context.Context, id, current, password string) (User, error) {
	x, err := u.Check(ctx, id, current, "password_change")
	if err != nil {
		return User{}, err
	}
	return x, u.SetPassword(ctx, ActorOf(x), id, password, "changed by the user")
}

func hashToken(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(h[:])
}

// Login checks the credentials, journals the login and opens a session.
func (u *Users) Login(ctx context.Context, id, password string) (User, string, error) {
	x, err := u.Check(ctx, id, password, "login")
	if err != nil {
		return User{}, "", err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return User{}, "", err
	}
	tok := hex.EncodeToString(b)
	now := u.opt.Now().UTC()
	if err := u.st.CreateSession(ctx, store.Session{TokenHash: hashToken(tok), User: x.ID, Created: now, Expires: now.Add(u.opt.SessionLife), IdleUntil: now.Add(u.opt.IdleTimeout)}); err != nil {
		return User{}, "", err
	}
	if err := u.st.LoginReset(ctx, x.ID, now, true); err != nil {
		return User{}, "", err
	}
	if err := u.journal(ctx, ActorOf(x), "user.login", x.ID, "", "", "", ""); err != nil {
		return User{}, "", err
	}
	return x, tok, nil
}

// Session returns the user of a live session and moves its idle deadline
// (at most once a minute). A disabled user's session is refused.
func (u *Users) Session(ctx context.Context, tok string) (User, bool, error) {
	return u.session(ctx, tok, true)
}

// Alive reports whether a session is still live without counting as use
// (a dashboard left open does not keep its session from idling out).
func (u *Users) Alive(ctx context.Context, tok string) (bool, error) {
	_, ok, err := u.session(ctx, tok, false)
	return ok, err
}

func (u *Users) session(ctx context.Context, tok string, touch bool) (User, bool, error) {
	if tok == "" {
		return User{}, false, nil
	}
	th := hashToken(tok)
	s, err := u.st.Session(ctx, th)
	if errors.Is(err, store.ErrNotFound) {
		return User{}, false, nil
	}
	if err != nil {
		return User{}, false, err
	}
	now := u.opt.Now()
	if !now.Before(s.Expires) || !now.Before(s.IdleUntil) {
		_, err := u.st.DeleteSessions(ctx, store.SessionFilter{TokenHash: th})
		return User{}, false, err
	}
	x, err := u.st.User(ctx, s.User)
	if err != nil || x.Disabled {
		return User{}, false, nil
	}
	if next := now.Add(u.opt.IdleTimeout); touch && next.Sub(s.IdleUntil) > time.Minute {
		if err := u.st.TouchSession(ctx, th, next); err != nil {
			return User{}, false, err
		}
	}
	return User{ID: x.ID, Name: x.Name, Role: x.Role}, true, nil
}

// Logout ends a session and journals it.
func (u *Users) Logout(ctx context.Context, tok string) error {
	x, ok, err := u.Session(ctx, tok)
	if err != nil || !ok {
		return err
	}
	if _, err := u.st.DeleteSessions(ctx, store.SessionFilter{TokenHash: hashToken(tok)}); err != nil {
		return err
	}
	return u.journal(ctx, ActorOf(x), "user.logout", x.ID, "", "", "", "")
}

// PruneSessions deletes expired sessions.
func (u *Users) PruneSessions(ctx context.Context) (int64, error) {
	return u.st.DeleteSessions(ctx, store.SessionFilter{ExpiredAt: u.opt.Now()})
}

// LiveSessions counts live sessions (metrics).
func (u *Users) LiveSessions(ctx context.Context) (int64, error) {
	return u.st.CountSessions(ctx, u.opt.Now())
}

// Run prunes expired sessions every few minutes until ctx ends.
func (u *Users) Run(ctx context.Context) error {
	t := time.NewTicker(5 * time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if n, err := u.PruneSessions(ctx); err != nil && ctx.Err() == nil {
				u.log.Error().Err(err).Msg("pruning expired sessions failed")
			} else if n > 0 {
				u.log.Debug().Int64("sessions", n).Msg("expired sessions pruned")
			}
		}
	}
}

// GeneratePassword returns a random password for generated accounts.
func GeneratePassword() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
