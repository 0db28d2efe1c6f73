package main

import (
	"context"
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

	centralapp "github.com/serialine/serialine/central/app"
	centralcfg "github.com/serialine/serialine/central/config"
	"github.com/serialine/serialine/central/export"
	"github.com/serialine/serialine/central/store"
)

// storeFlags are how the read-only commands (export, trace) reach the
// compliance store: directly, with --db or the store named by --config.
// They only read; writing (shipments) goes through central's API, because
// only the running central holds the journal's key.
type storeFlags struct {
	db, config string
	prefixes   multiFlag
	gln        string
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func (f *storeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.db, "db", "", "compliance store: a SQLite file, sqlite://PATH or postgres://...")
	fs.StringVar(&f.config, "config", "", "central config (YAML): its store and its gs1 master data")
	fs.Var(&f.prefixes, "company-prefix", "GS1 company prefix for EPC URIs (repeatable; adds to the config's gs1.company_prefixes)")
	fs.StringVar(&f.gln, "gln", "", "site GLN for EPCIS (overrides the config's gs1.gln)")
}

func (f *storeFlags) open(ctx context.Context) (store.Store, centralcfg.GS1, error) {
	var gs centralcfg.GS1
	db, dataDir := f.db, ""
	if f.config != "" {
		c, err := centralcfg.Load(f.config)
		if err != nil {
			return nil, gs, err
		}
		gs, dataDir = c.GS1, c.DataDir
		if db == "" {
			db = c.DB
		}
	}
	if db == "" && dataDir == "" {
		return nil, gs, errors.New("give --db or --config")
	}
	gs.CompanyPrefixes = append(gs.CompanyPrefixes, f.prefixes...)
	if f.gln != "" {
		gs.GLN = f.gln
	}
	if db == "" {
		if _, err := os.Stat(filepath.Join(dataDir, "central.db")); err != nil {
			return nil, gs, fmt.Errorf("no store at %s: %w", filepath.Join(dataDir, "central.db"), err)
		}
	} else if !strings.Contains(db, "://") {
		if _, err := os.Stat(db); err != nil {
			return nil, gs, fmt.Errorf("store %s: %w", db, err)
		}
	}
	st, err := centralapp.OpenStore(ctx, db, dataDir)
	return st, gs, err
}

func parseWhen(name, v string, end bool) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	d, err := time.Parse("2006-01-02", v)
	if err != nil {
		return time.Time{}, fmt.Errorf("--%s %q: want YYYY-MM-DD or RFC 3339", name, v)
	}
	if end {
		d = d.Add(24 * time.Hour) // --to DATE includes that day
	}
	return d, nil
}

func exportCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sf storeFlags
	sf.register(fs)
	batch := fs.String("batch", "", "batch id or lot")
	gtin := fs.String("gtin", "", "product GTIN-14")
	edge := fs.String("edge", "", "only this line edge")
	from := fs.String("from", "", "from (YYYY-MM-DD or RFC 3339)")
	to := fs.String("to", "", "to (YYYY-MM-DD: including that day, or RFC 3339)")
	format := fs.String("format", "", "csv (ZIP), json, html, epcis-2.0 or epcis-1.2")
	out := fs.String("o", "", "output file")
	receiver := fs.String("receiver", "", "EPCIS receiver GLN (default: the shipments' destination, else gs1.receiver_gln)")
	progress := fs.String("progress", "auto", "progress bar on stderr: auto (on a terminal), always, never")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: serialine export (--db STORE | --config central.yaml) (--batch LOT | --gtin GTIN | --from DATE --to DATE) --format FORMAT -o FILE")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 || *out == "" || *format == "" {
		fs.Usage()
		return 2
	}
	if !export.ValidFormat(*format) {
		fmt.Fprintf(stderr, "serialine export: --format %q: want %s\n", *format, strings.Join(export.Formats, ", "))
		return 2
	}
	scope := export.Scope{Batch: *batch, GTIN: *gtin, Edge: *edge}
	var err error
	if scope.From, err = parseWhen("from", *from, false); err == nil {
		scope.To, err = parseWhen("to", *to, true)
	}
	if err != nil {
		fmt.Fprintln(stderr, "serialine export:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	st, gs, err := sf.open(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "serialine export:", err)
		return 1
	}
	defer st.Close()
	bar := newProgressBar(stderr, *progress)
	opt := export.Options{Store: st, GS1: gs, Receiver: *receiver, By: "cli:" + os.Getenv("USER"), TempDir: filepath.Dir(*out), Progress: bar.update}
	// Write next to the target and rename when complete: a failed export
	// leaves no file that looks complete.
	tmp, err := os.CreateTemp(filepath.Dir(*out), ".serialine-export-*")
	if err != nil {
		fmt.Fprintln(stderr, "serialine export:", err)
		return 1
	}
	defer os.Remove(tmp.Name())
	sum, err := export.Run(ctx, opt, scope, *format, tmp)
	bar.done()
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), *out)
	}
	if err != nil {
		fmt.Fprintln(stderr, "serialine export:", err)
		return 1
	}
	fi, _ := os.Stat(*out)
	fmt.Fprintf(stdout, "%s: %s export of %s, %d bytes\n", *out, *format, scope, fi.Size())
	if len(sum.Tables) > 0 {
		fmt.Fprintf(stdout, "  units %d, evidence %d, containers %d, rejects %d, equipment %d, signatures %d, shipments %d, records %d\n",
			sum.Tables["units"], sum.Tables["evidence"], sum.Tables["containers"], sum.Tables["rejects"], sum.Tables["equipment"], sum.Tables["signatures"], sum.Tables["shipments"], sum.Tables["records"])
	}
	for _, v := range sum.Verification {
		fmt.Fprintln(stdout, "  "+v.Statement())
	}
	if len(sum.Verification) > 0 && !sum.Verified() {
		fmt.Fprintln(stderr, "serialine export: chain verification FAILED (the export was written; see the verification table)")
		return 1
	}
	return 0
}

// progressBar draws "[=====>    ]  45% records 12000/26000" on a terminal.
type progressBar struct {
	w    io.Writer
	on   bool
	last time.Time
	drew bool
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func newProgressBar(w io.Writer, mode string) *progressBar {
	on := mode == "always" || (mode == "auto" && isTerminal(w))
	return &progressBar{w: w, on: on}
}

func (b *progressBar) update(p export.Progress) {
	if !b.on || (time.Since(b.last) < 100*time.Millisecond && p.Done != p.Total) {
		return
	}
	b.last = time.Now()
	const width = 30
	frac := 0.0
	if p.Total > 0 {
		frac = float64(p.Done) / float64(p.Total)
	}
	if frac > 1 {
		frac = 1
	}
	n := int(frac * width)
	bar := strings.Repeat("=", n)
	if n < width {
		bar += ">" + strings.Repeat(" ", width-n-1)
	}
	fmt.Fprintf(b.w, "\r[%s] %3.0f%% %-8s %d/%d", bar, 100*frac, p.Phase, p.Done, p.Total)
	b.drew = true
}

func (b *progressBar) done() {
	if b.drew {
		fmt.Fprintln(b.w)
	}
}
