package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/serialine/serialine/central/app"
	"github.com/serialine/serialine/central/config"
	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/central/store/storetest"
	"github.com/serialine/serialine/sync/record"
)

// Enrollment and rotation by the command line are admin-only and
// journaled; verify re-checks the whole store and names an altered record.
func TestEnrollRotateVerify(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "central.yaml")
	if err := os.WriteFile(cfgPath, []byte("id: c1\ndata_dir: data\nhttp: 127.0.0.1:0\nmqtt:\n  listen: 127.0.0.1:0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if rc := userCmd([]string{"add", "--config", cfgPath, "--id", "root", "--name", "Ada Admin", "--role", "admin", "--password", "correct horse battery"}); rc != 0 {
		t.Fatalf("user add: %d", rc)
	}
	if rc := userCmd([]string{"add", "--config", cfgPath, "--id", "qa1", "--name", "Quinn QA", "--role", "qa", "--password", "correct horse battery"}); rc != 0 {
		t.Fatalf("user add: %d", rc)
	}
	c := storetest.NewChain("line-1", 1, 41)
	next := storetest.NewChain("line-1", 1, 42)
	key := record.EncodePublicKey(c.Pub())
	t.Setenv("SERIALINE_PASSWORD", "correct horse battery")
	if rc := enrollCmd([]string{"--config", cfgPath, "--edge", "line-1", "--key", key, "--user", "qa1"}, false); rc == 0 {
		t.Fatal("a QA user enrolled an edge")
	}
	if rc := enrollCmd([]string{"--config", cfgPath, "--edge", "line-1", "--key", key}, false); rc != 2 {
		t.Fatalf("enroll without --user: %d", rc)
	}
	t.Setenv("SERIALINE_PASSWORD", "wrong password!!")
	if rc := enrollCmd([]string{"--config", cfgPath, "--edge", "line-1", "--key", key, "--user", "root"}, false); rc == 0 {
		t.Fatal("enrolled with a wrong password")
	}
	t.Setenv("SERIALINE_PASSWORD", "correct horse battery")
	if rc := enrollCmd([]string{"--config", cfgPath, "--edge", "line-1", "--key", key, "--user", "root", "--reason", "commissioning"}, false); rc != 0 {
		t.Fatalf("enroll: %d", rc)
	}
	rotateAt := "2026-11-24T08:00:00Z"
	if rc := enrollCmd([]string{"--config", cfgPath, "--edge", "line-1", "--key", record.EncodePublicKey(next.Pub()), "--user", "root", "--from", rotateAt, "--overlap", "1h"}, true); rc != 0 {
		t.Fatalf("rotate-key: %d", rc)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := app.OpenStore(ctx, cfg.DB, cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := st.EdgeKeys(ctx, "line-1")
	if len(keys) != 2 || keys[0].ValidUntil.Format("15:04") != "09:00" || keys[1].EnrolledBy != "root" {
		t.Fatalf("keys %+v", keys)
	}
	// The journal of the command line holds the user changes, the refused
	// attempt and both edge actions, in that order, and verifies.
	jr, err := st.Records(ctx, store.JournalPrefix+"c1.cli", mustHead(t, st, store.JournalPrefix+"c1.cli").Epoch, 1, 20)
	if err != nil {
		t.Fatal(err)
	}
	var acts []string
	for _, r := range jr {
		var a record.UserAction
		if err := json.Unmarshal(r.Record.Body, &a); err != nil {
			t.Fatal(err)
		}
		acts = append(acts, a.Action+" "+a.Target+" by "+a.User)
	}
	want := "user.created root by cli:" // then qa1, the failed attempt, the enrollment and the rotation
	if len(acts) != 5 || !strings.HasPrefix(acts[0], want) || acts[3] != "edge.enrolled line-1 by root" || acts[4] != "edge.key_rotated line-1 by root" {
		t.Fatalf("journal:\n%s", strings.Join(acts, "\n"))
	}
	if err := st.Append(ctx, "line-1", record.Head{Epoch: 1}, c.Scenario()); err != nil {
		t.Fatal(err)
	}
	st.Close()

	var out, errb bytes.Buffer
	if rc := verifyCmd([]string{"--config", cfgPath}, &out, &errb); rc != 0 || !strings.Contains(out.String(), "2 chains, 27 records: all verify") {
		t.Fatalf("verify: %d\n%s%s", rc, out.String(), errb.String())
	}
	// Alter one stored byte (a serial in seq 5) behind the store's back.
	db, err := sql.Open("sqlite", filepath.Join(cfg.DataDir, "central.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE records SET canonical = replace(canonical, CAST('"S3"' AS BLOB), CAST('"S8"' AS BLOB)) WHERE edge = 'line-1' AND seq = 5`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	out.Reset()
	if rc := verifyCmd([]string{"--config", cfgPath}, &out, &errb); rc != 1 || !strings.Contains(out.String(), "FAILED line-1 epoch 1 after 4 good records: edge line-1 epoch 1 seq 5:") || !strings.Contains(out.String(), "1 of 2 chains FAILED") {
		t.Fatalf("verify after tampering: %d\n%s", rc, out.String())
	}
}

func mustHead(t *testing.T, st store.Store, edge string) record.Head {
	h, ok, err := st.Head(context.Background(), edge)
	if err != nil || !ok {
		t.Fatalf("head of %s: %v %v", edge, ok, err)
	}
	return h
}

// A stray word is refused, never silently ignored: `serialine-central help`
// must not start a central in ./data.
func TestStrayArguments(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"serialine-central", []string{"help"}, `unknown command or argument "help"`},
		{"serialine-central", []string{"--db", "x.db", "start"}, `unknown command or argument "start"`},
		{"serialine-central", []string{"--db", "x.db", "verify"}, `"verify" must come first: serialine-central verify [flags]`},
		{"user add", []string{"--db", "x.db", "extra"}, `user add: unexpected argument "extra"`},
	} {
		fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
		if _, err := loadConfig(fs, c.args); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %v: %v, want %q", c.name, c.args, err, c.want)
		}
	}
	fs := flag.NewFlagSet("serialine-central", flag.ContinueOnError)
	if _, err := loadConfig(fs, []string{"--db", filepath.Join(t.TempDir(), "c.db")}); err != nil {
		t.Errorf("flags only: %v", err)
	}
}
