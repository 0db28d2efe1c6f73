package store

import "time"

// User is a central account. The password is kept only as a bcrypt hash;
// the hash never leaves the store except to the auth package that checks
// it (it is never journaled, exported or shown).
type User struct {
	ID           string
	Name         string // printed name, shown in e-signatures (21 CFR 11.50)
	Role         string // operator, supervisor, qa, admin
	PasswordHash string
	Disabled     bool
	// Failed counts consecutive failed logins and signings; LockedUntil is
	// set when it reaches the limit.
	Failed          int
	LockedUntil     time.Time
	Created         time.Time
	PasswordChanged time.Time
	LastLogin       time.Time
	// Version increases with every UpdateUser: an update that names a stale
	// version is refused with ErrConflict (two admins, or two central
	// instances, editing the same account).
	Version int64
}

// Session is a logged-in browser session. The store keeps only the
// SHA-256 of the session token (hex), so a copy of the database does not
// let anyone log in.
type Session struct {
	TokenHash string
	User      string
	Created   time.Time
	Expires   time.Time // absolute end
	IdleUntil time.Time // ends earlier when unused
}

// SessionFilter selects sessions to delete: by token, by user, or every
// session expired (absolutely or idle) at ExpiredAt. Empty fields match all.
type SessionFilter struct {
	TokenHash string
	User      string
	ExpiredAt time.Time
}
