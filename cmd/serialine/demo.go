package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"

	centralapp "github.com/serialine/serialine/central/app"
	"github.com/serialine/serialine/central/auth"
	centralcfg "github.com/serialine/serialine/central/config"
	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/cmd/internal/cli"
	"github.com/serialine/serialine/cmd/internal/linesim"
	"github.com/serialine/serialine/configs"
	edgeapp "github.com/serialine/serialine/edge/app"
	"github.com/serialine/serialine/edge/config"
	"github.com/serialine/serialine/edge/devices"
	"github.com/serialine/serialine/sync/identity"
	"github.com/serialine/serialine/sync/record"
)

// Summary is what `serialine demo --summary-json` writes.
type Summary struct {
	PalletsClosed     int64   `json:"pallets_closed"`
	CasesClosed       int64   `json:"cases_closed"`
	UnitsCommissioned int     `json:"units_commissioned"`
	UnitsRejected     int     `json:"units_rejected"`
	RecordsEdge       uint64  `json:"records_edge"`
	RecordsCentral    int64   `json:"records_central"`
	ContainerLabels   int     `json:"container_labels"` // SSCC labels the simulated label printers printed
	ChainVerified     bool    `json:"chain_verified"`
	Edge              string  `json:"edge"`
	Store             string  `json:"store"`
	Broker            string  `json:"broker"`
	Seconds           float64 `json:"seconds"`
}

type demoOptions struct {
	pallets  int
	dir      string
	summary  string
	db       string
	broker   string
	edgeID   string
	rate     float64
	badGrade float64
	noRead   float64
	timeout  time.Duration
	logLevel string
	lineFile string
}

func demoCmd(args []string, stdout, stderr io.Writer) int {
	var o demoOptions
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.pallets, "pallets", 0, "stop after N pallets are closed and synced (0: run until Ctrl-C)")
	fs.StringVar(&o.dir, "dir", "", "working directory for stores and keys (default: a new temporary directory)")
	fs.StringVar(&o.summary, "summary-json", "", "with --pallets: write a JSON summary here")
	fs.StringVar(&o.db, "db", "", "central store: postgres://... (default: SQLite in --dir)")
	fs.StringVar(&o.broker, "broker", "", "external MQTT broker tcp://host:port (default: central's embedded broker)")
	fs.StringVar(&o.edgeID, "edge-id", "", "edge id (default: the config's, with a suffix unique to --dir)")
	fs.Float64Var(&o.rate, "rate", 40, "simulated line speed, units per second")
	fs.Float64Var(&o.badGrade, "bad-grade-rate", 0.02, "fraction of units the camera grades below C")
	fs.Float64Var(&o.noRead, "no-read-rate", 0.01, "fraction of units the camera cannot read")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "with --pallets: give up after this long")
	fs.StringVar(&o.logLevel, "log-level", "warn", "debug, info, warn, error")
	fs.StringVar(&o.lineFile, "config", "", "line config to simulate (default: the embedded configs/demo-line.yaml)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log := cli.Logger(o.logLevel, false)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sum, err := runDemo(ctx, o, stdout, log)
	if o.summary != "" && sum != nil {
		raw, _ := json.MarshalIndent(sum, "", "  ")
		if werr := os.WriteFile(o.summary, append(raw, '\n'), 0o644); werr != nil && err == nil {
			err = werr
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "serialine demo:", err)
		return 1
	}
	return 0
}

func runDemo(ctx context.Context, o demoOptions, out io.Writer, log zerolog.Logger) (*Summary, error) {
	started := time.Now()
	devices.Register()
	if o.dir == "" {
		d, err := os.MkdirTemp("", "serialine-demo-")
		if err != nil {
			return nil, err
		}
		o.dir = d
	}
	if err := os.MkdirAll(o.dir, 0o700); err != nil {
		return nil, err
	}
	name, raw := "demo-line.yaml", []byte(nil)
	var err error
	if o.lineFile != "" {
		name = o.lineFile
		raw, err = os.ReadFile(o.lineFile)
	} else {
		raw, err = configs.Read(name)
	}
	if err != nil {
		return nil, err
	}
	cfg, err := config.Parse(name, raw)
	if err != nil {
		return nil, err
	}
	cfg.File = filepath.Join(o.dir, "line.yaml") // relative paths resolve in --dir
	demoCalibrated(cfg, time.Now())
	cfg.Hash = config.Hash(raw)

	// Edge identity for this directory.
	if o.edgeID == "" {
		o.edgeID, err = stableID(filepath.Join(o.dir, "edge-id"), cfg.Edge.ID)
		if err != nil {
			return nil, err
		}
	}
	cfg.Edge.ID = o.edgeID
	// Each demo edge gets its own SSCC block, as a Level 4 system would
	// allocate per line, so demo runs sharing one central store never
	// collide.
	block := uint64(stableBlock(o.edgeID))
	cfg.Company.SSCCRange = config.SSCCRange{First: block*100_000 + 1, Last: (block + 1) * 100_000}
	cfg.Edge.DataDir = "edge"
	cfg.Edge.HTTP = "127.0.0.1:0"
	if cfg.OPCUA.Listen != "" {
		cfg.OPCUA.Listen = "127.0.0.1:0"
	}
	key, _, err := identity.LoadOrCreate(edgeapp.KeyPath(cfg))
	if err != nil {
		return nil, err
	}
	pub := key.Public().(ed25519.PublicKey)

	// Line users, with generated passwords (no defaults anywhere).
	operatorPW, supervisorPW := auth.GeneratePassword(), auth.GeneratePassword()
	for _, u := range []struct{ id, name, role, pw string }{
		{"operator", "Demo Operator", "operator", operatorPW},
		{"supervisor", "Demo Supervisor", "supervisor", supervisorPW},
	} {
		h, err := bcrypt.GenerateFromPassword([]byte(u.pw), bcrypt.MinCost)
		if err != nil {
			return nil, err
		}
		cfg.Users = append(cfg.Users, config.User{ID: u.id, Name: u.name, Role: u.role, PasswordHash: string(h)})
	}

	// Simulated devices on free ports.
	sims, err := linesim.Start(ctx, cfg, linesim.Options{Rate: o.rate, BadGradeRate: o.badGrade, NoReadRate: o.noRead, Log: log})
	if err != nil {
		return nil, fmt.Errorf("simulators: %w", err)
	}
	defer sims.Close()
	sims.Apply(cfg)

	// Central.
	ccfg := centralcfg.Defaults()
	// Central's id names its journal (signed with a key kept in --dir):
	// unique per directory, so demo runs sharing one PostgreSQL database
	// never meet a journal enrolled with another run's key.
	if ccfg.ID, err = stableID(filepath.Join(o.dir, "central-id"), "central-demo"); err != nil {
		return nil, err
	}
	ccfg.HTTP = "127.0.0.1:0"
	ccfg.DataDir = filepath.Join(o.dir, "central")
	ccfg.MQTT.Listen = "127.0.0.1:0"
	ccfg.DB = o.db
	ccfg.MQTT.Broker = o.broker
	edgePW := auth.GeneratePassword()
	ccfg.Edges = []centralcfg.Edge{{ID: cfg.Edge.ID, PublicKey: record.EncodePublicKey(pub), MQTTPassword: edgePW}}
	if err := ccfg.Validate(); err != nil {
		return nil, err
	}
	cctx, cstop := context.WithCancel(context.WithoutCancel(ctx))
	defer cstop()
	central, err := centralapp.New(cctx, &ccfg, log.With().Str("app", "central").Logger())
	if err != nil {
		return nil, fmt.Errorf("central: %w", err)
	}
	defer central.Close()
	adminID, adminPW, err := demoAdmin(cctx, central.Users, o.dir, ccfg.ID)
	if err != nil {
		return nil, err
	}
	cdone := make(chan error, 1)
	go func() { cdone <- central.Run(cctx) }()

	// Edge.
	cfg.Central.Broker = central.BrokerURL()
	cfg.Central.Username = cfg.Edge.ID
	cfg.Central.Password = edgePW
	edge, err := edgeapp.New(edgeapp.Options{Config: cfg, Log: log.With().Str("app", "edge").Logger(), Version: version})
	if err != nil {
		return nil, fmt.Errorf("edge: %w", err)
	}
	defer edge.Close()
	ectx, estop := context.WithCancel(context.WithoutCancel(ctx))
	defer estop()
	edone := make(chan error, 1)
	go func() { edone <- edge.Run(ectx) }()

	storeName := "SQLite " + filepath.Join(ccfg.DataDir, "central.db")
	if o.db != "" {
		storeName = redactURL(o.db)
	}
	fmt.Fprintf(out, "Serialine demo running (working directory %s)\n", o.dir)
	fmt.Fprintf(out, "  dashboard:  http://%s   login: %s / %s\n", central.HTTPAddr(), adminID, adminPW)
	fmt.Fprintf(out, "  broker:     %s\n  store:      %s\n", central.BrokerURL(), storeName)
	fmt.Fprintf(out, "  edge:       %s  API http://%s  (operator / %s, supervisor / %s)\n", cfg.Edge.ID, edge.API.Addr(), operatorPW, supervisorPW)
	if edge.Tags != nil {
		fmt.Fprintf(out, "  OPC UA:     %s\n", edge.Tags.Endpoint())
	}
	for _, d := range sims.Describe() {
		fmt.Fprintf(out, "  simulator:  %s\n", d)
	}
	if o.pallets <= 0 {
		fmt.Fprintln(out, "Press Ctrl-C to stop.")
	}

	shutdown := func() error {
		estop()
		eerr := <-edone
		cstop()
		cerr := <-cdone
		return errors.Join(eerr, cerr)
	}
	if o.pallets <= 0 {
		select {
		case <-ctx.Done():
		case err := <-edone:
			edone <- err
		case err := <-cdone:
			cdone <- err
		}
		return nil, shutdown()
	}

	// --pallets N: wait for N pallets at central, then hold the line, let
	// the units in flight finish and everything sync, and compare.
	deadline := time.Now().Add(o.timeout)
	wait := func(what string, cond func() (bool, error)) error {
		for {
			ok, err := cond()
			if err != nil {
				return err
			}
			if ok {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("interrupted while waiting for %s", what)
			case err := <-edone:
				return fmt.Errorf("edge stopped while waiting for %s: %v", what, err)
			case err := <-cdone:
				return fmt.Errorf("central stopped while waiting for %s: %v", what, err)
			case <-time.After(50 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				s := edge.Engine.Status()
				return fmt.Errorf("timed out after %s waiting for %s (edge: %s, %d good, %d rejected, %d pallets, %d records pending sync)", o.timeout, what, s.State, s.Good, s.Rejected, s.PalletsClosed, s.PendingSync)
			}
		}
	}
	sum := &Summary{Edge: cfg.Edge.ID, Store: storeName, Broker: central.BrokerURL()}
	err = wait(fmt.Sprintf("%d pallets", o.pallets), func() (bool, error) {
		return edge.Engine.Status().PalletsClosed >= o.pallets, nil
	})
	if err == nil {
		err = edge.Engine.Hold(ctx, "demo", fmt.Sprintf("demo: %d pallets closed", o.pallets))
	}
	if err == nil {
		err = wait("units in flight", func() (bool, error) { return edge.Engine.Status().InFlight == 0, nil })
	}
	if err == nil {
		err = wait("central to acknowledge every record", func() (bool, error) {
			return edge.Store.Acked() == edge.Store.Head().Seq, nil
		})
	}
	st := edge.Engine.Status()
	sum.UnitsCommissioned, sum.UnitsRejected = st.Commissioned, st.Rejected
	sum.RecordsEdge = edge.Store.Head().Seq
	sum.ContainerLabels = len(sims.ContainerLabels())
	if serr := shutdown(); serr != nil && err == nil {
		err = serr
	}
	sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, cerr := central.Store.CountRecords(sctx, cfg.Edge.ID)
	sum.RecordsCentral = n
	lines, lerr := central.Store.Lines(sctx)
	for _, l := range lines {
		if l.Edge == cfg.Edge.ID {
			sum.PalletsClosed, sum.CasesClosed = l.PalletsClosed, l.CasesClosed
		}
	}
	verr := verifyCentral(sctx, central, cfg.Edge.ID, pub)
	sum.ChainVerified = verr == nil
	sum.Seconds = time.Since(started).Round(time.Millisecond).Seconds()
	switch {
	case err != nil:
	case cerr != nil || lerr != nil:
		err = errors.Join(cerr, lerr)
	case verr != nil:
		err = fmt.Errorf("central's records do not verify: %w", verr)
	case sum.RecordsCentral != int64(sum.RecordsEdge):
		err = fmt.Errorf("edge wrote %d records, central stored %d", sum.RecordsEdge, sum.RecordsCentral)
	case sum.PalletsClosed < int64(o.pallets):
		err = fmt.Errorf("central shows %d pallets closed, want %d", sum.PalletsClosed, o.pallets)
	}
	fmt.Fprintf(out, "demo: %d pallets, %d cases, %d units commissioned (%d rejected); records edge %d central %d; chain verified %v\n",
		sum.PalletsClosed, sum.CasesClosed, sum.UnitsCommissioned, sum.UnitsRejected, sum.RecordsEdge, sum.RecordsCentral, sum.ChainVerified)
	return sum, err
}

// verifyCentral re-verifies every record central stored for the edge,
// from seq 1, with the edge's public key.
func verifyCentral(ctx context.Context, c *centralapp.App, edge string, pub ed25519.PublicKey) error {
	h, ok, err := c.Store.Head(ctx, edge)
	if err != nil || !ok {
		return fmt.Errorf("no records stored for %s: %v", edge, err)
	}
	v := record.NewVerifier(pub, record.Head{Epoch: h.Epoch})
	for from := uint64(1); ; {
		recs, err := c.Store.Records(ctx, edge, h.Epoch, from, 5000)
		if err != nil {
			return err
		}
		if len(recs) == 0 {
			break
		}
		for i := range recs {
			got, err := v.Add(&recs[i].Record)
			if err != nil {
				return err
			}
			if got != recs[i].Hash {
				return fmt.Errorf("seq %d: stored hash differs from the record's hash", recs[i].Record.Seq)
			}
		}
		from = recs[len(recs)-1].Record.Seq + 1
	}
	if v.Head().Seq != h.Seq {
		return fmt.Errorf("verified up to seq %d, head is %d", v.Head().Seq, h.Seq)
	}
	if n, first := v.Unsigned(); n > 0 {
		return fmt.Errorf("%d records from seq %d are not covered by a signature", n, first)
	}
	return nil
}

// stableBlock maps an edge id to one of 9,999 SSCC blocks.
func stableBlock(id string) int {
	h := 0
	for _, c := range id {
		h = (h*31 + int(c)) % 9999
	}
	return h
}

// stableID returns base + a random suffix, kept in file so a directory keeps
// its edge id (and key) across runs.
func stableID(file, base string) (string, error) {
	if b, err := os.ReadFile(file); err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	id := base + "-" + auth.GeneratePassword()[:6]
	return id, os.WriteFile(file, []byte(id+"\n"), 0o600)
}

// demoAdmin creates the demo's administrator with a generated password
// (no default password), kept (mode 0600) in dir so a re-run of the same
// directory prints it again. Its id is "admin", or admin-<suffix> of the central id when a
// database shared with earlier demo runs already has an admin.
func demoAdmin(ctx context.Context, users *auth.Users, dir, centralID string) (id, pw string, err error) {
	idFile, pwFile := filepath.Join(dir, "admin-id"), filepath.Join(dir, "admin-password")
	if b, err := os.ReadFile(pwFile); err == nil {
		id := "admin"
		if x, err := os.ReadFile(idFile); err == nil {
			id = strings.TrimSpace(string(x))
		}
		return id, strings.TrimSpace(string(b)), nil
	}
	pw = auth.GeneratePassword()
	by := auth.Actor{ID: "demo", Name: "serialine demo"}
	id = "admin"
	err = users.Add(ctx, by, id, "Demo Administrator", auth.RoleAdmin, pw, "the demo's generated administrator")
	if errors.Is(err, store.ErrExists) {
		id = "admin-" + centralID[strings.LastIndexByte(centralID, '-')+1:]
		err = users.Add(ctx, by, id, "Demo Administrator", auth.RoleAdmin, pw, "the demo's generated administrator (this database already has an admin)")
	}
	if err != nil {
		return "", "", err
	}
	if err := os.WriteFile(idFile, []byte(id+"\n"), 0o600); err != nil {
		return "", "", err
	}
	return id, pw, os.WriteFile(pwFile, []byte(pw+"\n"), 0o600)
}

func redactURL(u string) string {
	if i := strings.Index(u, "@"); i > 0 {
		if j := strings.Index(u, "://"); j > 0 && j < i {
			return u[:j+3] + "***" + u[i:]
		}
	}
	return u
}

// demoCalibrated records the simulated devices as calibrated and serviced
// when the demo starts (the baseline of their schedules), so the batch-start
// calibration interlock lets the demo's batch run. A real line records its
// calibrations with their certificates instead.
func demoCalibrated(cfg *config.Line, now time.Time) {
	today := now.UTC().Format("2006-01-02")
	for i := range cfg.Equipment.Items {
		for _, s := range []*config.Schedule{cfg.Equipment.Items[i].Calibration, cfg.Equipment.Items[i].Maintenance} {
			if s != nil && s.LastDone == "" {
				s.LastDone, s.Reference = today, "simulated device, calibrated when the demo started"
			}
		}
	}
}
