package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/serialine/serialine/central/app"
	"github.com/serialine/serialine/central/auth"
	"github.com/serialine/serialine/central/store"
)

func TestUserCommands(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "central.yaml")
	os.WriteFile(cfgPath, []byte("id: c1\ndata_dir: data\nhttp: 127.0.0.1:0\nmqtt:\n  listen: 127.0.0.1:0\n"), 0o600)
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := userMain(ctx, append(args, "--config", cfgPath), &out, &errb)
		return code, out.String(), errb.String()
	}
	code, out, errs := run("add", "--id", "admin", "--name", "Ada Admin", "--role", "admin", "--reason", "first admin")
	if code != 0 {
		t.Fatalf("add: %d %s %s", code, out, errs)
	}
	m := regexp.MustCompile(`password: (\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no generated password printed: %s", out)
	}
	if code, _, errs := run("add", "--id", "qa1", "--name", "Q", "--role", "qa", "--password", "short"); code != 1 || !strings.Contains(errs, "at least 12") {
		t.Fatalf("short password: %d %s", code, errs)
	}
	if code, _, errs := run("disable", "--id", "admin"); code != 2 || !strings.Contains(errs, "--reason") {
		t.Fatalf("disable without a reason: %d %s", code, errs)
	}
	if code, out, errs := run("passwd", "--id", "admin", "--password", "a-new-long-password", "--reason", "rotation"); code != 0 || strings.Contains(out, "password:") {
		t.Fatalf("passwd: %d %s %s", code, out, errs)
	}
	if code, out, _ := run("list"); code != 0 || !strings.Contains(out, "admin") || !strings.Contains(out, "Ada Admin") || !strings.Contains(out, "active") {
		t.Fatalf("list: %s", out)
	}
	if code, _, errs := run("frobnicate"); code != 2 || !strings.Contains(errs, "usage") {
		t.Fatalf("unknown command: %d %s", code, errs)
	}
	// The account works from the store, and the changes are journaled by cli:<login>.
	st, err := app.OpenStore(ctx, "", filepath.Join(dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	u := auth.New(auth.Options{Store: st, Log: zerolog.Nop()})
	if _, err := u.Check(ctx, "admin", "a-new-long-password", "login"); err != nil {
		t.Fatal(err)
	}
	list, err := st.Audit(ctx, store.AuditFilter{Edge: "central.c1.cli"})
	if err != nil || len(list) != 2 {
		t.Fatalf("journal: %+v %v", list, err)
	}
	if list[0].Action != "user.password_changed" || list[1].Action != "user.created" || !strings.HasPrefix(list[0].User, "cli:") {
		t.Fatalf("journal entries: %+v", list)
	}
}
