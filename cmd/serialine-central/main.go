// Command serialine-central is the central collector: compliance store,
// MQTT broker (embedded by default), ingest, dashboard and API.
//
//	serialine-central --config configs/demo-central.yaml [--broker URL] [--db URL] [--http ADDR]
//	serialine-central user add|passwd|disable|enable|role|unlock|list --config FILE --id ID ...
//	serialine-central enroll --config FILE --edge ID --key BASE64
//	serialine-central export-records --config FILE --edge ID -o FILE   (verify offline with serialine verify)
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/serialine/serialine/central/app"
	"github.com/serialine/serialine/central/config"
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
			os.Exit(enrollCmd(os.Args[2:]))
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

func enrollCmd(args []string) int {
	fs := flag.NewFlagSet("enroll", flag.ContinueOnError)
	edge := fs.String("edge", "", "edge id")
	key := fs.String("key", "", "edge public key (base64, printed by `serialine-edge key`)")
	by := fs.String("by", os.Getenv("USER"), "who enrolls (recorded)")
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
	if err := store.ValidLineEdgeID(*edge); err != nil {
		fmt.Fprintln(os.Stderr, "serialine-central:", err)
		return 2
	}
	ctx := context.Background()
	st, err := app.OpenStore(ctx, cfg.DB, cfg.DataDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "serialine-central:", err)
		return 1
	}
	defer st.Close()
	if err := st.EnrollEdge(ctx, store.Edge{ID: *edge, PublicKey: pub, EnrolledBy: *by}); err != nil {
		fmt.Fprintln(os.Stderr, "serialine-central:", err)
		return 1
	}
	fmt.Printf("edge %s enrolled\n", *edge)
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
