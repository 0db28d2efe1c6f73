// Command serialine-edge is the line daemon: one per packaging line.
//
//	serialine-edge --config line.yaml        run the line
//	serialine-edge key --config line.yaml    print the edge's public key (for enrollment at central)
//	serialine-edge key rotate --config line.yaml
//	    prepare the next key and print its public key: enroll it at central
//	    (serialine-central rotate-key), then restart the edge; it announces
//	    the switch in a key.rotated record signed by the old key
//
// A changed config file is applied only between batches: SIGHUP (or POST
// /api/v1/config/reload) re-reads it; with no batch open the edge restarts
// itself (same process id) to apply it, with a batch open it waits for the
// batch to close. A restart with a changed file while a batch is open runs
// the batch with the config it started with.
package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/rs/zerolog"

	"github.com/serialine/serialine/cmd/internal/cli"
	"github.com/serialine/serialine/edge/app"
	"github.com/serialine/serialine/edge/devices"
	"github.com/serialine/serialine/sync/identity"
	"github.com/serialine/serialine/sync/record"
)

var version = "dev"

func main() {
	args := os.Args[1:]
	keyOnly, rotate := false, false
	if len(args) > 0 && args[0] == "key" {
		keyOnly, args = true, args[1:]
		if len(args) > 0 && args[0] == "rotate" {
			rotate, args = true, args[1:]
		}
	}
	if len(args) > 0 && args[0] == "version" {
		fmt.Println(version)
		return
	}
	fs := flag.NewFlagSet("serialine-edge", flag.ContinueOnError)
	path := fs.String("config", "", "line config file (YAML)")
	logLevel := fs.String("log-level", "info", "debug, info, warn, error")
	logJSON := fs.Bool("log-json", false, "log JSON lines instead of console text")
	if err := fs.Parse(args); err != nil {
		os.Exit(2)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "serialine-edge: unknown command or argument %q (commands: key, key rotate, version; flags: -h)\n", fs.Arg(0))
		os.Exit(2)
	}
	if *path == "" {
		fmt.Fprintln(os.Stderr, "serialine-edge: --config is required")
		os.Exit(2)
	}
	devices.Register() // the drivers' options are part of the line config
	cfg, raw, err := app.Load(*path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if rotate {
		pub, created, err := app.PrepareKeyRotation(cfg)
		if err != nil {
			fmt.Fprintln(os.Stderr, "serialine-edge:", err)
			os.Exit(1)
		}
		if created {
			fmt.Fprintln(os.Stderr, "prepared", app.NextKeyPath(cfg), "- enroll this key at central, then restart the edge")
		}
		fmt.Println(record.EncodePublicKey(pub))
		return
	}
	if keyOnly {
		key, created, err := identity.LoadOrCreate(app.KeyPath(cfg))
		if err != nil {
			fmt.Fprintln(os.Stderr, "serialine-edge:", err)
			os.Exit(1)
		}
		if created {
			fmt.Fprintln(os.Stderr, "generated", app.KeyPath(cfg))
		}
		fmt.Println(record.EncodePublicKey(key.Public().(ed25519.PublicKey)))
		return
	}
	log := cli.Logger(*logLevel, *logJSON)
	// SIGHUP re-reads the config file: applied at once when no batch is
	// open (the edge restarts), otherwise when the open batch closes.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e, err := app.New(app.Options{Config: cfg, ConfigBytes: raw, Log: log, Version: version})
	if err != nil {
		fmt.Fprintln(os.Stderr, "serialine-edge:", err)
		os.Exit(1)
	}
	defer e.Close()
	ev := log.Info().Str("line", cfg.Line.ID).Str("edge", cfg.Edge.ID).Str("broker", cfg.Central.Broker)
	if e.API != nil {
		ev = ev.Str("api", "http://"+e.API.Addr())
	}
	ev.Str("version", version).Str("config", e.Cfg.Hash).Bool("config_pending", e.Pending).Msg("edge running")
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if _, err := e.Reload(ctx); err != nil {
					log.Error().Err(err).Str("file", *path).Msg("config reload refused; nothing changed")
				}
			}
		}
	}()
	err = e.Run(ctx)
	if errors.Is(err, app.ErrRestart) {
		e.Close()
		restart(log)
	}
	if err != nil {
		log.Error().Err(err).Msg("edge stopped")
		e.Close()
		os.Exit(1)
	}
}

// restart replaces the process with a fresh start of the same command line
// (the store is closed), which applies the changed line config.
func restart(log zerolog.Logger) {
	self, err := os.Executable()
	if err != nil {
		log.Error().Err(err).Msg("cannot restart to apply the line config")
		os.Exit(1)
	}
	log.Info().Msg("restarting to apply the changed line config")
	err = syscall.Exec(self, os.Args, os.Environ())
	log.Error().Err(err).Msg("cannot restart to apply the line config")
	os.Exit(1)
}
