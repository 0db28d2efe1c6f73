package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/serialine/serialine/central/store"
)

// fileUser is an account of the users.json file that older builds kept in
// data_dir.
type fileUser struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	Role         string    `json:"role"`
	PasswordHash string    `json:"password_hash"`
	Created      time.Time `json:"created"`
}

// MigrateFile moves the accounts of an older build's users.json into the
// store (bcrypt hashes as they are; accounts already in the store are left
// alone), journals each one and renames the file to users.json.migrated.
// A missing file is not an error.
func (u *Users) MigrateFile(ctx context.Context, path string) (int, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var list []fileUser
	if err := json.Unmarshal(raw, &list); err != nil {
		return 0, fmt.Errorf("users file %s: %w", path, err)
	}
	n := 0
	by := Actor{ID: "central", Name: "central (migration)"}
	for i, x := range list {
		if x.ID == "" || !ValidRole(x.Role) || x.PasswordHash == "" {
			return n, fmt.Errorf("users file %s: entry %d (%q): needs id, a known role and a password hash", path, i+1, x.ID)
		}
		if x.Created.IsZero() {
			x.Created = u.opt.Now().UTC()
		}
		err := u.st.CreateUser(ctx, store.User{ID: x.ID, Name: x.Name, Role: x.Role, PasswordHash: x.PasswordHash, Created: x.Created})
		if errors.Is(err, store.ErrExists) {
			continue
		}
		if err != nil {
			return n, err
		}
		if err := u.journal(ctx, by, "user.migrated", x.ID, "", "", fmt.Sprintf("name=%q role=%s", x.Name, x.Role), "moved from "+path+" into the store"); err != nil {
			return n, err
		}
		n++
	}
	return n, os.Rename(path, path+".migrated")
}
