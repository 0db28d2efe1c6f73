// Package app composes the edge daemon: key, store, devices, line engine,
// HTTP API, outbox to central and the OPC UA tag server.
//
// Start order: key → store → devices → engine → API, outbox, tags. The engine
// must have recovered its state before anything else touches the line.
// Stop order: API, tags and outbox stop taking work, the engine stops its
// device loops (devices are closed), the MQTT client disconnects, and the
// store closes last.
package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/serialine/serialine/edge/api"
	"github.com/serialine/serialine/edge/config"
	"github.com/serialine/serialine/edge/devices"
	"github.com/serialine/serialine/edge/line"
	"github.com/serialine/serialine/edge/outbox"
	"github.com/serialine/serialine/edge/store"
	"github.com/serialine/serialine/sync/identity"
	"github.com/serialine/serialine/sync/transport"
	"github.com/serialine/serialine/sync/wire"
)

// Options configure the edge.
type Options struct {
	Config  *config.Line
	Log     zerolog.Logger
	Version string
	// Devices overrides the devices built from the config (tests, benchmarks).
	Devices *line.Devices
}

// Edge is a running edge daemon.
type Edge struct {
	Cfg    *config.Line
	Store  *store.DB
	Engine *line.Engine
	API    *api.Server
	Client *transport.Client
	Outbox *outbox.Outbox
	Tags   *devices.TagServer
	// Metrics is the Prometheus registry served at the API's /metrics.
	Metrics *prometheus.Registry
	log     zerolog.Logger
}

// DataDir resolves the edge's data directory.
func DataDir(cfg *config.Line) string {
	d := cfg.Edge.DataDir
	if d == "" {
		d = filepath.Join("data", cfg.Edge.ID)
	}
	if !filepath.IsAbs(d) && cfg.File != "" {
		d = filepath.Join(filepath.Dir(cfg.File), d)
	}
	return d
}

// KeyPath is where the edge's signing key lives.
func KeyPath(cfg *config.Line) string { return filepath.Join(DataDir(cfg), "edge.key") }

// New builds the edge; nothing runs until Run.
func New(opt Options) (e *Edge, err error) {
	cfg := opt.Config
	log := opt.Log.With().Str("edge", cfg.Edge.ID).Logger()
	e = &Edge{Cfg: cfg, log: log}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	dir := DataDir(cfg)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	key, created, err := identity.LoadOrCreate(KeyPath(cfg))
	if err != nil {
		return nil, err
	}
	if created {
		log.Info().Str("key", KeyPath(cfg)).Msg("generated a new edge signing key")
	}
	e.Store, err = store.Open(filepath.Join(dir, "edge.db"), store.Options{EdgeID: cfg.Edge.ID, Key: key})
	if err != nil {
		return nil, err
	}
	var devs line.Devices
	if opt.Devices != nil {
		devs = *opt.Devices
	} else if devs, err = devices.Build(cfg, log); err != nil {
		return nil, err
	}
	e.Engine, err = line.New(line.Options{Config: cfg, Store: e.Store, Devices: devs, Log: log, Version: opt.Version})
	if err != nil {
		return nil, err
	}
	if e.Metrics, err = newRegistry(e); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	if cfg.Edge.HTTP != "" {
		if e.API, err = api.New(cfg.Edge.HTTP, e.Engine, cfg.Users, log); err != nil {
			return nil, fmt.Errorf("edge.http %s: %w", cfg.Edge.HTTP, err)
		}
		e.API.ServeMetrics(promhttp.HandlerFor(e.Metrics, promhttp.HandlerOpts{}), e.Ready)
	}
	password := cfg.Central.Password
	if cfg.Central.PasswordFile != "" {
		raw, err := os.ReadFile(cfg.Central.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("central.password_file: %w", err)
		}
		password = strings.TrimSpace(string(raw))
	}
	user := cfg.Central.Username
	if user == "" {
		user = cfg.Edge.ID
	}
	e.Client, err = transport.New(transport.Options{
		Broker: cfg.Central.Broker, ClientID: "serialine-edge-" + cfg.Edge.ID, Username: user, Password: password,
		CAFile: cfg.Central.CAFile, CertFile: cfg.Central.CertFile, KeyFile: cfg.Central.KeyFile, Log: log,
	})
	if err != nil {
		return nil, err
	}
	e.Outbox = outbox.New(outbox.Options{
		Store: e.Store, Client: e.Client, Log: log, Envelope: cfg.Central.Envelope, ResendAfter: cfg.Central.ResendAfter.D(),
		Status: e.wireStatus,
	})
	if cfg.OPCUA.Listen != "" {
		if e.Tags, err = devices.NewTagServer(cfg, e.Engine, log); err != nil {
			return nil, fmt.Errorf("opcua.listen %s: %w", cfg.OPCUA.Listen, err)
		}
	}
	return e, nil
}

func (e *Edge) wireStatus() wire.Status {
	s := e.Engine.Status()
	return wire.Status{
		Edge: s.Edge, Line: s.Line, State: s.State, Batch: s.Batch, GTIN: s.GTIN, Lot: s.Lot,
		Good: s.Good, Rejected: s.Rejected, Reasons: s.Reasons, CasesClosed: s.CasesClosed, PalletsDone: s.PalletsClosed,
		OpenCase: s.OpenCaseFill, OpenPallet: s.OpenPalletFill, LastSeq: s.LastSeq, AckedSeq: s.AckedSeq, Pending: s.PendingSync,
		UnitsPerMin: s.UnitsPerMin, Devices: s.Devices, Time: nowRFC3339(),
		OpenCaseSSCC: s.OpenCase, OpenPalletSSCC: s.OpenPallet, Aggregated: s.Aggregated, InFlight: s.InFlight,
		Commissioned: s.Commissioned, Planned: s.Planned, BatchState: s.BatchState, Alarms: s.Alarms,
	}
}

// Run runs the edge until ctx ends or a component fails.
func (e *Edge) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return e.Engine.Run(ctx) })
	select {
	case <-e.Engine.Ready():
	case <-ctx.Done():
		return g.Wait()
	}
	if err := e.Engine.StartAutoBatch(ctx); err != nil {
		var re *line.RuleError
		if !errors.As(err, &re) {
			return err
		}
		e.log.Warn().Err(err).Msg("configured batch not started")
	}
	if e.API != nil {
		g.Go(func() error { return e.API.Run(ctx) })
	}
	if e.Tags != nil {
		g.Go(func() error { return e.Tags.Run(ctx) })
	}
	if err := e.Client.Connect(); err != nil {
		return err
	}
	g.Go(func() error { return e.Outbox.Run(ctx) })
	g.Go(func() error {
		<-ctx.Done()
		e.Client.Close()
		return nil
	})
	return g.Wait()
}

// Close releases the store; call after Run returned. Safe twice.
func (e *Edge) Close() {
	if e.Store != nil {
		e.Store.Close()
	}
}
