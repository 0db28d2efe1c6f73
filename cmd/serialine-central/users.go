package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"

	"github.com/serialine/serialine/central/app"
	"github.com/serialine/serialine/central/auth"
	"github.com/serialine/serialine/central/config"
	"github.com/serialine/serialine/central/journal"
	"github.com/serialine/serialine/central/store"
)

const userUsage = `usage: serialine-central user COMMAND --config FILE [flags]
  add     --id ID --name "Printed Name" --role operator|supervisor|qa|admin [--password PW] --reason TEXT
  passwd  --id ID [--password PW] --reason TEXT     (a generated password is printed when none is given)
  role    --id ID --role ROLE --reason TEXT
  disable --id ID --reason TEXT
  enable  --id ID --reason TEXT
  unlock  --id ID --reason TEXT
  list
Every change is recorded in central's journal as done by cli:<login>.`

func userCmd(args []string) int {
	return userMain(context.Background(), args, os.Stdout, os.Stderr)
}

func userMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, userUsage)
		return 2
	}
	cmd := args[0]
	fs := flag.NewFlagSet("user "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	id := fs.String("id", "", "user id")
	name := fs.String("name", "", "printed name (shown in e-signatures)")
	role := fs.String("role", "", "operator, supervisor, qa or admin")
	pw := fs.String("password", "", "password (at least 12 characters); generated and printed if empty")
	reason := fs.String("reason", "", "why (recorded in the audit trail)")
	cfg, err := loadConfig(fs, args[1:])
	if err != nil {
		fmt.Fprintln(stderr, "serialine-central:", err)
		return 2
	}
	switch cmd {
	case "add", "passwd", "role", "disable", "enable", "unlock":
		if *id == "" {
			fmt.Fprintln(stderr, "serialine-central: user "+cmd+" needs --id")
			return 2
		}
		if cmd != "add" && strings.TrimSpace(*reason) == "" {
			fmt.Fprintln(stderr, "serialine-central: user "+cmd+" needs --reason (recorded in the audit trail)")
			return 2
		}
	case "list":
	default:
		fmt.Fprintln(stderr, userUsage)
		return 2
	}
	st, _, users, err := openCLI(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "serialine-central:", err)
		return 1
	}
	defer st.Close()
	login := "unknown"
	if u, err := user.Current(); err == nil {
		login = u.Username
	}
	by := auth.Actor{ID: "cli:" + login, Name: login + " (command line)"}
	password := *pw
	generated := false
	if password == "" && (cmd == "add" || cmd == "passwd") {
		password, generated = auth.GeneratePassword(), true
	}
	switch cmd {
	case "add":
		err = users.Add(ctx, by, *id, *name, *role, password, *reason)
	case "passwd":
		err = users.SetPassword(ctx, by, *id, password, *reason)
	case "role":
		err = users.SetRole(ctx, by, *id, *role, *reason)
	case "disable", "enable":
		err = users.SetDisabled(ctx, by, *id, cmd == "disable", *reason)
	case "unlock":
		err = users.Unlock(ctx, by, *id, *reason)
	case "list":
		list, lerr := users.List(ctx)
		if lerr != nil {
			err = lerr
			break
		}
		tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tROLE\tSTATE\tLAST LOGIN")
		for _, u := range list {
			state := "active"
			if u.Disabled {
				state = "disabled"
			} else if u.Locked {
				state = "locked until " + u.LockedUntil.UTC().Format(time.RFC3339)
			}
			last := "never"
			if !u.LastLogin.IsZero() {
				last = u.LastLogin.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", u.ID, u.Name, u.Role, state, last)
		}
		tw.Flush()
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "serialine-central:", err)
		return 1
	}
	switch cmd {
	case "add":
		fmt.Fprintf(stdout, "user %s (%s) created", *id, *role)
	case "passwd":
		fmt.Fprintf(stdout, "password of %s changed", *id)
	default:
		fmt.Fprintf(stdout, "user %s: %s done", *id, cmd)
	}
	if generated {
		fmt.Fprintf(stdout, "; password: %s", password)
	}
	fmt.Fprintln(stdout)
	return 0
}

// openCLI opens what the admin commands need: the store, the command
// line's own journal chain (central.<id>.cli, its own key
// central-cli.key, so it never races a running instance's chain) and the
// users (users.json of older versions moved into the store).
func openCLI(ctx context.Context, cfg *config.Central) (store.Store, *journal.Journal, *auth.Users, error) {
	st, err := app.OpenStore(ctx, cfg.DB, cfg.DataDir)
	if err != nil {
		return nil, nil, nil, err
	}
	j, err := journal.Open(ctx, journal.Options{Store: st, KeyPath: filepath.Join(cfg.DataDir, "central-cli.key"), Instance: cfg.ID + ".cli", Log: zerolog.Nop()})
	if err != nil {
		st.Close()
		return nil, nil, nil, err
	}
	users := auth.New(auth.Options{Store: st, Journal: j})
	if _, err := users.MigrateFile(ctx, filepath.Join(cfg.DataDir, "users.json")); err != nil {
		st.Close()
		return nil, nil, nil, err
	}
	return st, j, users, nil
}
