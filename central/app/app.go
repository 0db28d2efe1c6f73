// Package app composes central: compliance store, MQTT broker (embedded by
// default), ingest, and the web dashboard/API.
//
// Start order: store → broker → MQTT client → ingest → web. Stop order is
// the reverse: web and ingest stop taking work, the client disconnects, the
// broker closes, the store closes last.
package app

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/serialine/serialine/central/alerts"
	"github.com/serialine/serialine/central/audit"
	"github.com/serialine/serialine/central/auth"
	"github.com/serialine/serialine/central/broker"
	"github.com/serialine/serialine/central/config"
	"github.com/serialine/serialine/central/enroll"
	"github.com/serialine/serialine/central/equipment"
	"github.com/serialine/serialine/central/esign"
	"github.com/serialine/serialine/central/ingest"
	"github.com/serialine/serialine/central/journal"
	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/central/store/postgres"
	"github.com/serialine/serialine/central/store/sqlite"
	"github.com/serialine/serialine/central/web"
	"github.com/serialine/serialine/sync/record"
	"github.com/serialine/serialine/sync/transport"
)

// App is a running central.
type App struct {
	Cfg    *config.Central
	Store  store.Store
	Broker *broker.Broker // nil with an external broker
	Client *transport.Client
	Ingest *ingest.Ingest
	Users  *auth.Users
	// Journal is central's own signed record chain (user actions).
	Journal *journal.Journal
	Alerts  *alerts.Alerter
	// Equipment raises the equipment alerts (reportable downtime,
	// calibration); notify.go.
	Equipment *equipment.Watcher
	// Enroll enrolls edges and rotates their keys (admin API).
	Enroll *enroll.Service
	// Signer is the e-signature service (other packages add their signings
	// with Signer.Handle); Verifier re-verifies the stored chains.
	Signer   *esign.Service
	Verifier *audit.Verifier
	// Metrics is the Prometheus registry served at /metrics.
	Metrics *prometheus.Registry
	web     *web.Server
	log     zerolog.Logger
}

// KeyPath is where central keeps its journal signing key.
func KeyPath(cfg *config.Central) string { return filepath.Join(cfg.DataDir, "central.key") }

// OpenStore opens the store named by a URL or path: postgres://... or
// postgresql://... for PostgreSQL; sqlite://path, a file path, or empty
// (data_dir/central.db) for SQLite.
func OpenStore(ctx context.Context, db, dataDir string) (store.Store, error) {
	switch {
	case strings.HasPrefix(db, "postgres://"), strings.HasPrefix(db, "postgresql://"):
		return postgres.Open(ctx, db)
	case db == "":
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return nil, err
		}
		return sqlite.Open(ctx, filepath.Join(dataDir, "central.db"))
	case strings.HasPrefix(db, "sqlite://"):
		return sqlite.Open(ctx, strings.TrimPrefix(db, "sqlite://"))
	case strings.Contains(db, "://"):
		return nil, fmt.Errorf("db %q: want postgres://..., sqlite://path or a file path", redact(db))
	default:
		return sqlite.Open(ctx, db)
	}
}

func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparseable URL)"
	}
	return p.Redacted()
}

// New opens the store, binds the broker and the web listener and enrolls the
// edges named in the config. Nothing runs until Run.
func New(ctx context.Context, cfg *config.Central, log zerolog.Logger) (_ *App, err error) {
	a := &App{Cfg: cfg, log: log}
	defer func() {
		if err != nil {
			a.Close() // a, not the nil the failing return gives the caller
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	a.Store, err = OpenStore(ctx, cfg.DB, cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	a.Journal, err = journal.Open(ctx, journal.Options{Store: a.Store, KeyPath: KeyPath(cfg), Instance: cfg.ID, Log: log})
	if err != nil {
		return nil, err
	}
	a.Alerts = alerts.New(alerts.Options{Store: a.Store, Journal: a.Journal, Log: log})
	a.Users = auth.New(auth.Options{Store: a.Store, Journal: a.Journal, Alerts: a.Alerts, Log: log, PasswordMaxAge: cfg.Users.PasswordMaxAge})
	if n, err := a.Users.MigrateFile(ctx, filepath.Join(cfg.DataDir, "users.json")); err != nil {
		return nil, fmt.Errorf("users: %w", err)
	} else if n > 0 {
		log.Info().Int("users", n).Msg("users moved from users.json into the store")
	}
	a.Signer = esign.New(esign.Options{Store: a.Store, Journal: a.Journal, Users: a.Users, Log: log})
	a.Verifier = audit.New(audit.Options{Store: a.Store, Log: log})
	if err := a.setupEquipment(); err != nil {
		return nil, err
	}
	a.Metrics = prometheus.NewRegistry()
	if err := errors.Join(
		a.Metrics.Register(collectors.NewGoCollector()),
		a.Metrics.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})),
		a.Alerts.Register(a.Metrics),
		a.Verifier.Register(a.Metrics),
		a.Metrics.Register(newStoreCollector(a.Store, a.Users)),
	); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	for _, e := range cfg.Edges {
		pub, err := record.ParsePublicKey(e.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("edge %s: %w", e.ID, err)
		}
		if _, err := a.Store.Edge(ctx, e.ID); err == nil {
			continue // enrolled before: keys change by rotation, not by editing the config
		}
		// An enrollment by configuration is recorded like one by an admin.
		if _, err := a.Journal.Action(ctx, record.UserAction{User: "config", Action: "edge.enrolled", Target: e.ID, New: e.PublicKey, Reason: "listed in " + cfg.File}); err != nil {
			return nil, fmt.Errorf("enroll edge %s: %w", e.ID, err)
		}
		if err := a.Store.EnrollEdge(ctx, store.Edge{ID: e.ID, PublicKey: pub, EnrolledBy: "config:" + cfg.File}); err != nil {
			return nil, fmt.Errorf("enroll edge %s: %w", e.ID, err)
		}
	}
	brokerURL := cfg.MQTT.Broker
	password := cfg.MQTT.Password
	if cfg.MQTT.PasswordFile != "" {
		raw, err := os.ReadFile(cfg.MQTT.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt.password_file: %w", err)
		}
		password = strings.TrimSpace(string(raw))
	}
	if brokerURL == "" {
		if password == "" {
			password = auth.GeneratePassword()
		}
		a.Broker, err = broker.New(broker.Options{Listen: cfg.MQTT.Listen, CentralUser: cfg.MQTT.Username, CentralPassword: password, Log: log,
			TLSListen: cfg.MQTT.ListenTLS, TLSCertFile: cfg.MQTT.TLSCertFile, TLSKeyFile: cfg.MQTT.TLSKeyFile, ClientCAFile: cfg.MQTT.ClientCAFile})
		if err != nil {
			return nil, err
		}
		for _, e := range cfg.Edges {
			if e.MQTTPassword != "" {
				a.Broker.SetEdge(e.ID, e.MQTTPassword)
			}
		}
		brokerURL = a.Broker.URL()
	}
	a.Client, err = transport.New(transport.Options{
		Broker: brokerURL, ClientID: "serialine-central-" + cfg.ID, Username: cfg.MQTT.Username, Password: password,
		CAFile: cfg.MQTT.CAFile, CertFile: cfg.MQTT.CertFile, KeyFile: cfg.MQTT.KeyFile, Log: log,
	})
	if err != nil {
		return nil, err
	}
	a.Ingest = ingest.New(ingest.Options{Store: a.Store, Client: a.Client, Log: log, Share: cfg.MQTT.Share, Alerts: a.Alerts})
	if err := a.Ingest.Register(a.Metrics); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	a.Enroll = &enroll.Service{Store: a.Store, Journal: a.Journal, Changed: a.Ingest.ForgetKey}
	a.web, err = web.New(web.Options{Listen: cfg.HTTP, Store: a.Store, Users: a.Users, Signer: a.Signer, Alerts: a.Alerts, Verifier: a.Verifier,
		Log: log, Ready: a.Ready, Metrics: promhttp.HandlerFor(a.Metrics, promhttp.HandlerOpts{}), Routes: a.Enroll.Routes(),
		Compliance: web.Compliance{Journal: a.Journal, GS1: cfg.GS1, TempDir: filepath.Join(cfg.DataDir, "exports")}})
	if err != nil {
		return nil, fmt.Errorf("http %s: %w", cfg.HTTP, err)
	}
	return a, nil
}

// Web is the HTTP server (other packages add their pages with Web.Handle).
func (a *App) Web() *web.Server { return a.web }

// HTTPAddr is the bound dashboard address.
func (a *App) HTTPAddr() string {
	if a.web == nil {
		return ""
	}
	return a.web.Addr()
}

// BrokerURL is the broker edges should use.
func (a *App) BrokerURL() string {
	if a.Broker != nil {
		return a.Broker.URL()
	}
	return a.Cfg.MQTT.Broker
}

// Ready reports whether central can take records.
func (a *App) Ready() error {
	if !a.Client.Connected() {
		return errors.New("not connected to the MQTT broker")
	}
	return nil
}

// Run runs until ctx ends.
func (a *App) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	if a.Broker != nil {
		g.Go(func() error { return a.Broker.Run(ctx) })
	}
	if err := a.Client.Connect(); err != nil {
		return err
	}
	g.Go(func() error { return a.Ingest.Run(ctx) })
	g.Go(func() error { return a.Alerts.Run(ctx) })
	g.Go(func() error { return a.Equipment.Run(ctx) })
	g.Go(func() error { return a.Users.Run(ctx) })
	g.Go(func() error { return a.Verifier.Run(ctx) })
	if a.web != nil {
		g.Go(func() error { return a.web.Run(ctx) })
	}
	g.Go(func() error {
		<-ctx.Done()
		a.Client.Close()
		return nil
	})
	return g.Wait()
}

// Close releases the store (after Run returned).
func (a *App) Close() {
	if a.Store != nil {
		a.Store.Close()
	}
}

// ExportRecords writes every stored record of an edge's current epoch to a
// JSON-lines file that anyone with the edge's public key can verify offline
// (serialine verify).
func ExportRecords(ctx context.Context, st store.Store, edge, path string) (int, error) {
	h, ok, err := st.Head(ctx, edge)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, fmt.Errorf("no records stored for edge %s", edge)
	}
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	n := 0
	for from := uint64(1); ; {
		recs, err := st.Records(ctx, edge, h.Epoch, from, 5000)
		if err != nil {
			f.Close()
			return n, err
		}
		if len(recs) == 0 {
			break
		}
		out := make([]record.Record, len(recs))
		for i := range recs {
			out[i] = recs[i].Record
		}
		if err := record.WriteExport(f, out); err != nil {
			f.Close()
			return n, err
		}
		n += len(recs)
		from = recs[len(recs)-1].Record.Seq + 1
	}
	return n, f.Close()
}
