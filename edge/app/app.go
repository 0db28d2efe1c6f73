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
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/serialine/serialine/edge/api"
	"github.com/serialine/serialine/edge/config"
	"github.com/serialine/serialine/edge/devices"
	"github.com/serialine/serialine/edge/equipment"
	"github.com/serialine/serialine/edge/line"
	"github.com/serialine/serialine/edge/outbox"
	"github.com/serialine/serialine/edge/store"
	"github.com/serialine/serialine/sync/identity"
	"github.com/serialine/serialine/sync/transport"
	"github.com/serialine/serialine/sync/wire"
)

// Options configure the edge.
type Options struct {
	Config *config.Line
	// ConfigBytes are the bytes Config was parsed from (see Load). When
	// given, a config change is applied only between batches: an open
	// batch runs with the config it was created with (kept in the store),
	// the file's config is pending until the batch closes, and then Run
	// returns ErrRestart so the daemon restarts and applies it.
	ConfigBytes []byte
	Log         zerolog.Logger
	Version     string
	// Devices overrides the devices built from the config (tests, benchmarks).
	Devices *line.Devices
	// Now is the clock of the engine, the records and the equipment
	// registry (tests drive downtime thresholds with it); default time.Now.
	Now func() time.Time
}

// ErrRestart: Run stopped so that the daemon restarts and applies a changed
// line config (no batch is open).
var ErrRestart = errors.New("restart to apply the changed line config")

// Load reads and parses a line config file, returning its bytes too.
func Load(path string) (*config.Line, []byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := config.Parse(path, raw)
	if err != nil {
		return nil, nil, err
	}
	return cfg, raw, nil
}

// Edge is a running edge daemon.
type Edge struct {
	// Cfg is the line config in force: the open batch's, or the file's.
	Cfg *config.Line
	// File is the config read from the file; Pending is set when it
	// differs from Cfg and waits for the open batch to close.
	File    *config.Line
	Pending bool
	Store   *store.DB
	Engine  *line.Engine
	API     *api.Server
	Client  *transport.Client
	Outbox  *outbox.Outbox
	Tags    *devices.TagServer
	// Equipment is the equipment registry (downtime, calibration, interlock).
	Equipment *equipment.Tracker
	link      *equipment.LinkMonitor
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

// OpenStore opens the edge's store with its signing key (created if
// missing), for tools, benchmarks and crash checks; the daemon must not be
// running (it holds the store's lock).
func OpenStore(cfg *config.Line, opt store.Options) (*store.DB, error) {
	if err := os.MkdirAll(DataDir(cfg), 0o700); err != nil {
		return nil, err
	}
	key, _, err := identity.LoadOrCreate(KeyPath(cfg))
	if err != nil {
		return nil, err
	}
	opt.EdgeID, opt.Key = cfg.Edge.ID, key
	return store.Open(filepath.Join(DataDir(cfg), "edge.db"), opt)
}

// KeyPath is where the edge's signing key lives.
func KeyPath(cfg *config.Line) string { return filepath.Join(DataDir(cfg), "edge.key") }

// New builds the edge; nothing runs until Run.
func New(opt Options) (_ *Edge, err error) {
	cfg := opt.Config
	log := opt.Log.With().Str("edge", cfg.Edge.ID).Logger()
	e := &Edge{Cfg: cfg, File: cfg, log: log}
	defer func() {
		if err != nil {
			e.Close() // e, not the nil the failing return gives the caller
		}
	}()
	dir := DataDir(cfg)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := rotateKey(cfg, log); err != nil {
		return nil, err
	}
	key, created, err := identity.LoadOrCreate(KeyPath(cfg))
	if err != nil {
		return nil, err
	}
	if created {
		log.Info().Str("key", KeyPath(cfg)).Msg("generated a new edge signing key")
	}
	e.Store, err = store.Open(filepath.Join(dir, "edge.db"), store.Options{EdgeID: cfg.Edge.ID, Key: key, Now: opt.Now})
	if err != nil {
		return nil, err
	}
	raw := opt.ConfigBytes
	var pending *config.Line
	if len(raw) > 0 {
		hash, stored, err := line.BatchConfig(e.Store)
		if err != nil {
			return nil, err
		}
		if hash != "" && hash != cfg.Hash {
			// A batch is open with another config: it keeps its own.
			if stored == nil {
				return nil, fmt.Errorf("batch open with line config %s, whose bytes are not in the store: restore that config file to finish the batch", hash)
			}
			bcfg, err := config.Parse(cfg.File, stored)
			if err != nil {
				return nil, fmt.Errorf("the open batch's line config %s no longer loads: %w", hash, err)
			}
			log.Warn().Str("file", cfg.File).Str("file_hash", cfg.Hash).Str("batch_config", hash).
				Msg("the line config file changed while a batch is open: the batch keeps its config, the file is applied when it closes")
			pending, cfg, raw = cfg, bcfg, stored
			e.Cfg, e.Pending = cfg, true
		}
	}
	var devs line.Devices
	if opt.Devices != nil {
		devs = *opt.Devices
	} else if devs, err = devices.Build(cfg, log); err != nil {
		return nil, err
	}
	if e.Equipment, err = equipment.New(equipment.Options{Config: cfg, Store: e.Store, Log: log}); err != nil {
		return nil, err
	}
	e.Engine, err = line.New(line.Options{Config: cfg, ConfigBytes: raw, Pending: pending, Store: e.Store, Devices: devs, Log: log, Version: opt.Version, Now: opt.Now, Equipment: e.Equipment,
		// A full outbox holds the line (the outbox is built below, before Run).
		Backpressure: func() (bool, string) { return e.Outbox.Backpressure() }})
	if err != nil {
		return nil, err
	}
	e.Equipment.SetExecutor(e.Engine)
	if e.Metrics, err = newRegistry(e); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	if cfg.Edge.HTTP != "" {
		if e.API, err = api.New(cfg.Edge.HTTP, e.Engine, cfg.Users, log); err != nil {
			return nil, fmt.Errorf("edge.http %s: %w", cfg.Edge.HTTP, err)
		}
		if len(opt.ConfigBytes) > 0 {
			e.API.SetReload(e.Reload)
		}
		e.API.SetEquipment(e.Equipment)
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
	e.link = equipment.NewLinkMonitor(equipment.LinkOptions{Connected: e.Client.Connected, Report: e.Engine, Now: e.Engine.Now,
		Sync: func() (uint64, uint64) { return e.Store.Head().Seq, e.Store.Acked() }})
	e.Outbox = outbox.New(outbox.Options{
		Store: e.Store, Client: e.Client, Log: log, Envelope: cfg.Central.Envelope, ResendAfter: cfg.Central.ResendAfter.D(),
		MaxBytes: cfg.Central.OutboxMaxBytes, MaxAge: cfg.Central.OutboxMaxAge.D(),
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

// Reload re-reads the line config file and proposes it to the engine: with
// no batch open Run then returns ErrRestart (the daemon restarts and
// applies it); with a batch open it is pending until the batch closes. An
// invalid file changes nothing and its errors are returned.
func (e *Edge) Reload(ctx context.Context) (line.ConfigChange, error) {
	cfg, _, err := Load(e.File.File)
	if err != nil {
		return line.ConfigChange{}, err
	}
	if cfg.Edge.ID != e.Cfg.Edge.ID || DataDir(cfg) != DataDir(e.Cfg) {
		return line.ConfigChange{}, fmt.Errorf("%s: edge.id and edge.data_dir cannot change under a running edge (they name its store)", cfg.File)
	}
	ch, err := e.Engine.ProposeConfig(ctx, cfg)
	if err != nil {
		return ch, err
	}
	e.log.Info().Str("status", ch.Status).Str("hash", ch.Hash).Str("batch", ch.Batch).Msg(ch.Message)
	return ch, nil
}

// Run runs the edge until ctx ends or a component fails. It returns
// ErrRestart when a changed line config is to be applied (between batches).
func (e *Edge) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return e.Engine.Run(ctx) })
	g.Go(func() error {
		select {
		case <-e.Engine.Restart():
			return ErrRestart
		case <-ctx.Done():
			return nil
		}
	})
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
	g.Go(func() error { return e.link.Run(ctx) })
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
