// Command serialine-central is the central collector: compliance store,
// MQTT broker (embedded by default), ingest, dashboard and API.
//
//	serialine-central --config configs/demo-central.yaml [--broker URL] [--db URL] [--http ADDR]
//	serialine-central user add|passwd|disable|enable|role|unlock|list --config FILE --id ID ...
//	serialine-central enroll --config FILE --edge ID --key BASE64 --user ADMIN [--reason TEXT]
//	serialine-central rotate-key --config FILE --edge ID --key BASE64 --user ADMIN [--from RFC3339] [--overlap 24h]
//	serialine-central verify --config FILE [--edge ID]   re-verify every stored chain
//	serialine-central export-records --config FILE --edge ID -o FILE   (verify offline with serialine verify)
//
// enroll and rotate-key are admin actions recorded in central's journal:
// the admin's password is read from --password-file, $SERIALINE_PASSWORD
// or the first line of standard input.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/serialine/serialine/central/app"
	"github.com/serialine/serialine/central/config"
	"github.com/serialine/serialine/central/enroll"
	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/cmd/internal/cli"
	"github.com/serialine/serialine/sync/record"
)

var version = "dev"

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "user":
			os.Exit(userCmd(os.Args[2:]))
		case "enroll":
			os.Exit(enrollCmd(os.Args[2:], false))
		case "rotate-key":
			os.Exit(enrollCmd(os.Args[2:], true))
		case "verify":
			os.Exit(verifyCmd(os.Args[2:], os.Stdout, os.Stderr))
		case "export-records":
			os.Exit(exportCmd(os.Args[2:]))
		case "version":
			fmt.Println(version)
			return
		}
	}
	os.Exit(run(os.Args[1:]))
}

func loadConfig(fs *flag.FlagSet, args []string) (*config.Central, error) {
	path := fs.String("config", "", "central config file (YAML)")
	broker := fs.String("broker", "", "external MQTT broker URL (tcp://host:port); disables the embedded broker")
	db := fs.String("db", "", "store: postgres://... or a SQLite file path")
	httpAddr := fs.String("http", "", "dashboard listen address (overrides the config)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		if fs.Name() == "serialine-central" {
			switch a := fs.Arg(0); a {
			case "user", "enroll", "rotate-key", "verify", "export-records", "version":
				return nil, fmt.Errorf("%q must come first: serialine-central %s [flags]", a, a)
			default:
				return nil, fmt.Errorf("unknown command or argument %q (commands: user, enroll, rotate-key, verify, export-records, version; flags: -h)", a)
			}
		}
		return nil, fmt.Errorf("%s: unexpected argument %q (flags: -h)", fs.Name(), fs.Arg(0))
	}
	var cfg *config.Central
	if *path != "" {
		c, err := config.Load(*path)
		if err != nil {
			return nil, err
		}
		cfg = c
	} else {
		c := config.Defaults()
		cfg = &c
	}
	if *broker != "" {
		cfg.MQTT.Broker = *broker
	}
	if *db != "" {
		cfg.DB = *db
	}
	if *httpAddr != "" {
		cfg.HTTP = *httpAddr
	}
	return cfg, cfg.Validate()
}

func run(args []string) int {
	fs := flag.NewFlagSet("serialine-central", flag.ContinueOnError)
	logLevel := fs.String("log-level", "info", "debug, info, warn, error")
	logJSON := fs.Bool("log-json", false, "log JSON lines instead of console text")
	cfg, err := loadConfig(fs, args)
	if err != nil {
		fmt.Fprintln(os.Stderr, "serialine-central:", err)
		return 2
	}
	log := cli.Logger(*logLevel, *logJSON).With().Str("central", cfg.ID).Logger()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "serialine-central:", err)
		return 1
	}
	defer a.Close()
	if n, err := a.Users.Count(ctx); err == nil && n == 0 {
		log.Warn().Msg("no users yet: create the first admin with `serialine-central user add --role admin`")
	}
	log.Info().Str("dashboard", "http://"+a.HTTPAddr()).Str("broker", a.BrokerURL()).Str("version", version).Msg("central running")
	if err := a.Run(ctx); err != nil {
		log.Error().Err(err).Msg("central stopped")
		return 1
	}
	return 0
}

func enrollCmd(args []string, rotate bool) int {
	name := "enroll"
	if rotate {
		name = "rotate-key"
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	edge := fs.String("edge", "", "edge id")
	key := fs.String("key", "", "edge public key (base64, printed by `serialine-edge key` or `serialine-edge key rotate`)")
	user := fs.String("user", "", "admin user id (recorded in the journal)")
	pwFile := fs.String("password-file", "", "file holding the admin's password (else $SERIALINE_PASSWORD or standard input)")
	reason := fs.String("reason", "", "why (recorded)")
	from := fs.String("from", "", "rotate-key: new key valid from (RFC 3339; default now)")
	overlap := fs.Duration("overlap", 24*time.Hour, "rotate-key: how long the old key stays valid after --from")
	cfg, err := loadConfig(fs, args)
	if err != nil {
		fmt.Fprintln(os.Stderr, "serialine-central:", err)
		return 2
	}
	pub, err := record.ParsePublicKey(*key)
	if err != nil {
		fmt.Fprintln(os.Stderr, "serialine-central:", err)
		return 2
	}
	var validFrom time.Time
	if *from != "" {
		if validFrom, err = time.Parse(time.RFC3339, *from); err != nil {
			fmt.Fprintln(os.Stderr, "serialine-central: --from:", err)
			return 2
		}
	}
	if *user == "" {
		fmt.Fprintf(os.Stderr, "serialine-central %s: --user is required (an admin; the action is recorded)\n", name)
		return 2
	}
	password, err := readPassword(*pwFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "serialine-central:", err)
		return 2
	}
	ctx := context.Background()
	st, j, users, err := openCLI(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "serialine-central:", err)
		return 1
	}
	defer st.Close()
	u, err := users.Check(ctx, *user, password, name)
	if err != nil {
		fmt.Fprintln(os.Stderr, "serialine-central:", err)
		return 1
	}
	svc := &enroll.Service{Store: st, Journal: j}
	if rotate {
		err = svc.Rotate(ctx, u, *edge, pub, validFrom, *overlap, *reason)
	} else {
		err = svc.Enroll(ctx, u, *edge, pub, *reason)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "serialine-central:", err)
		return 1
	}
	if rotate {
		fmt.Printf("edge %s: new key enrolled; the old key stays valid for %s after the new key's start\n", *edge, *overlap)
	} else {
		fmt.Printf("edge %s enrolled\n", *edge)
	}
	fmt.Fprintln(os.Stderr, "running central instances load the new key when the first record signed by it arrives")
	return 0
}

func readPassword(file string) (string, error) {
	if file != "" {
		raw, err := os.ReadFile(file)
		if err != nil {
			return "", err
		}
		return strings.TrimSpace(string(raw)), nil
	}
	if pw := os.Getenv("SERIALINE_PASSWORD"); pw != "" {
		return pw, nil
	}
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil && line == "" {
		return "", fmt.Errorf("no password: use --password-file, $SERIALINE_PASSWORD or standard input")
	}
	return strings.TrimSpace(line), nil
}

func verifyCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	edge := fs.String("edge", "", "verify this edge only (default: every edge and central's journals)")
	cfg, err := loadConfig(fs, args)
	if err != nil {
		fmt.Fprintln(stderr, "serialine-central:", err)
		return 2
	}
	ctx := context.Background()
	st, err := app.OpenStore(ctx, cfg.DB, cfg.DataDir)
	if err != nil {
		fmt.Fprintln(stderr, "serialine-central:", err)
		return 1
	}
	defer st.Close()
	bad := 0
	var total int64
	reps, err := store.Verify(ctx, st, *edge, func(r store.ChainReport) {
		if r.Err != nil {
			bad++
			fmt.Fprintf(stdout, "FAILED %s epoch %d after %d good records: %v\n", r.Edge, r.Epoch, r.Records, r.Err)
			return
		}
		total += r.Records
		fmt.Fprintf(stdout, "ok     %s epoch %d: %d records, chain and signatures verify\n", r.Edge, r.Epoch, r.Records)
	})
	if err != nil {
		fmt.Fprintln(stderr, "serialine-central verify:", err)
		return 1
	}
	if bad > 0 {
		fmt.Fprintf(stdout, "%d of %d chains FAILED\n", bad, len(reps))
		return 1
	}
	fmt.Fprintf(stdout, "%d chains, %d records: all verify\n", len(reps), total)
	return 0
}

func exportCmd(args []string) int {
	fs := flag.NewFlagSet("export-records", flag.ContinueOnError)
	edge := fs.String("edge", "", "edge id")
	out := fs.String("o", "", "output file (JSON lines)")
	cfg, err := loadConfig(fs, args)
	if err != nil || *edge == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "usage: serialine-central export-records --config FILE --edge ID -o FILE", err)
		return 2
	}
	ctx := context.Background()
	st, err := app.OpenStore(ctx, cfg.DB, cfg.DataDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "serialine-central:", err)
		return 1
	}
	defer st.Close()
	n, err := app.ExportRecords(ctx, st, *edge, *out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "serialine-central:", err)
		return 1
	}
	fmt.Printf("%d records of %s written to %s\n", n, *edge, *out)
	return 0
}
