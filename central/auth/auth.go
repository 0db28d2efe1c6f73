// Package auth holds central's users and sessions: bcrypt password hashes,
// roles, lockout after failed attempts and expiring sessions. There is no
// default password: the first admin is created by `serialine-central user
// add` or by the demo, which prints a generated password.
package auth

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Roles.
const (
	RoleOperator   = "operator"
	RoleSupervisor = "supervisor"
	RoleQA         = "qa"
	RoleAdmin      = "admin"
)

// ValidRole reports whether r is a known role.
func ValidRole(r string) bool {
	switch r {
	case RoleOperator, RoleSupervisor, RoleQA, RoleAdmin:
		return true
	}
	return false
}

// User is an account.
type User struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"` // printed name, shown in signatures
	Role         string    `json:"role"`
	PasswordHash string    `json:"password_hash"`
	Failed       int       `json:"failed"`
	LockedUntil  time.Time `json:"locked_until,omitempty"`
	Created      time.Time `json:"created"`
}

// Errors.
var (
	ErrBadLogin = errors.New("unknown user or wrong password")
	ErrLocked   = errors.New("account locked after repeated failed logins")
)

// Users is a file-backed user list (data_dir/users.json, mode 0600).
type Users struct {
	path string
	mu   sync.Mutex
	m    map[string]*User
	now  func() time.Time

	MaxFailed   int
	LockFor     time.Duration
	SessionLife time.Duration

	sessions map[string]session
}

type session struct {
	user    string
	expires time.Time
}

// Open loads (or starts) the user file.
func Open(path string) (*Users, error) {
	u := &Users{path: path, m: map[string]*User{}, now: time.Now, MaxFailed: 5, LockFor: 15 * time.Minute, SessionLife: 8 * time.Hour, sessions: map[string]session{}}
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return u, nil
	}
	if err != nil {
		return nil, err
	}
	var list []*User
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("users file %s: %w", path, err)
	}
	for _, x := range list {
		u.m[x.ID] = x
	}
	return u, nil
}

func (u *Users) save() error {
	list := make([]*User, 0, len(u.m))
	for _, x := range u.m {
		list = append(list, x)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].ID < list[j].ID })
	raw, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(u.path), 0o700); err != nil {
		return err
	}
	tmp := u.path + ".tmp"
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, u.path)
}

// Add creates a user with a password.
func (u *Users) Add(id, name, role, password string) error {
	if id == "" || !ValidRole(role) {
		return fmt.Errorf("user %q: id required and role one of operator, supervisor, qa, admin", id)
	}
	if len(password) < 12 {
		return fmt.Errorf("user %q: password must have at least 12 characters", id)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if _, ok := u.m[id]; ok {
		return fmt.Errorf("user %q already exists", id)
	}
	u.m[id] = &User{ID: id, Name: name, Role: role, PasswordHash: string(h), Created: u.now().UTC()}
	return u.save()
}

// Count returns the number of users.
func (u *Users) Count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.m)
}

// Check verifies id and password (with lockout).
func (u *Users) Check(id, password string) (User, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	x, ok := u.m[id]
	if !ok {
		// Same cost as a real check, so timing does not reveal user ids.
		_ = bcrypt.CompareHashAndPassword(dummyHash(), []byte(password))
		return User{}, ErrBadLogin
	}
	now := u.now()
	if now.Before(x.LockedUntil) {
		return User{}, ErrLocked
	}
	if bcrypt.CompareHashAndPassword([]byte(x.PasswordHash), []byte(password)) != nil {
		x.Failed++
		if x.Failed >= u.MaxFailed {
			x.LockedUntil = now.Add(u.LockFor)
			x.Failed = 0
		}
		_ = u.save()
		return User{}, ErrBadLogin
	}
	if x.Failed != 0 {
		x.Failed = 0
		_ = u.save()
	}
	return *x, nil
}

// NewSession creates a session token for a user.
func (u *Users) NewSession(id string) string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	tok := hex.EncodeToString(b)
	u.mu.Lock()
	u.sessions[tok] = session{user: id, expires: u.now().Add(u.SessionLife)}
	u.mu.Unlock()
	return tok
}

// Session returns the user of a live session.
func (u *Users) Session(tok string) (User, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	s, ok := u.sessions[tok]
	if !ok {
		return User{}, false
	}
	if u.now().After(s.expires) {
		delete(u.sessions, tok)
		return User{}, false
	}
	x, ok := u.m[s.user]
	if !ok {
		return User{}, false
	}
	return *x, true
}

// EndSession logs out.
func (u *Users) EndSession(tok string) {
	u.mu.Lock()
	delete(u.sessions, tok)
	u.mu.Unlock()
}

var (
	dummyOnce sync.Once
	dummy     []byte
)

func dummyHash() []byte {
	dummyOnce.Do(func() { dummy, _ = bcrypt.GenerateFromPassword([]byte("not a password"), bcrypt.DefaultCost) })
	return dummy
}

// GeneratePassword returns a random password for generated accounts.
func GeneratePassword() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
