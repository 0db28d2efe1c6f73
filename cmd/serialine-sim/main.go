// Command serialine-sim simulates every device of a line config on real
// sockets, at the addresses in the config: Zebra (ZPL) and Videojet (text
// protocol, WSI) printers, cameras (result lines) and Modbus PLCs. Unit
// labels pass the camera; case and pallet labels do not.
//
//	serialine-sim --config line.yaml [--rate 40] [--control 127.0.0.1:8090]
//
// Faults can be injected from the start by flag:
//
//	--printer-fault NAME          every printer from the start; Zebra: paper_out, ribbon_out,
//	                              head_open, paused, over_temperature, no_answer; Videojet: fault,
//	                              ribbon_out, ink_empty, offline, warning, no_answer, garbage
//	--printer-slow 500ms          every printer status answer is late
//	--no-read-rate 0.05 --bad-grade-rate 0.02 --duplicate-rate 0.01
//	--mismatch-rate 0 --garbage-rate 0
//	--camera-delay 200ms          result lines come late
//	--plc-delay 300ms             every PLC answer is late
//	--plc-disconnect-every 30s    the PLC drops its clients periodically
//
// and while running through the control API (JSON over HTTP):
//
//	POST /printer/{name}/fault   {"fault": "paper_out"}  Zebra: none, paper_out, ribbon_out, head_open, paused, over_temperature, no_answer;
//	                             Videojet: none, fault, ribbon_out, ink_empty, offline, warning, no_answer, garbage
//	POST /printer/{name}/slow    {"delay": "500ms"}  (Zebra and Videojet)
//	POST /camera/{name}/rates    {"no_read": 0.05, "bad_grade": 0.02, "mismatch": 0, "duplicate": 0, "garbage": 0}
//	POST /camera/{name}/next     {"outcome": "garbage"}  (good, noread, bad_grade, mismatch, duplicate, garbage: the next unit)
//	POST /camera/{name}/delay    {"delay": "200ms"}
//	POST /camera/{name}/silent   {"silent": true}
//	POST /plc/{name}/disconnect  {}
//	POST /plc/{name}/delay       {"delay": "500ms"}
//	GET  /status                 every device: printers (kind, counts, fault; Videojet state and job), cameras, PLCs
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"syscall"
	"time"

	"github.com/serialine/serialine/cmd/internal/cli"
	"github.com/serialine/serialine/cmd/internal/linesim"
	"github.com/serialine/serialine/drivers/camera/camerasim"
	"github.com/serialine/serialine/drivers/videojet/videojetsim"
	"github.com/serialine/serialine/drivers/zebra/zebrasim"
	"github.com/serialine/serialine/edge/config"
	"github.com/serialine/serialine/edge/devices"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func rate(name string, v float64) error {
	if v < 0 || v > 1 {
		return fmt.Errorf("--%s %v: want 0..1", name, v)
	}
	return nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serialine-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "line config whose devices to simulate")
	lps := fs.Float64("rate", 40, "labels per second the printers print")
	noRead := fs.Float64("no-read-rate", 0.01, "fraction of no-reads")
	badGrade := fs.Float64("bad-grade-rate", 0.02, "fraction of grades below C")
	duplicate := fs.Float64("duplicate-rate", 0, "fraction of reads that repeat the previous unit's data")
	mismatch := fs.Float64("mismatch-rate", 0, "fraction of reads with one character changed")
	garbage := fs.Float64("garbage-rate", 0, "fraction of result lines that do not parse")
	printerFault := fs.String("printer-fault", "none", "printer condition from the start: none; Zebra: paper_out, ribbon_out, head_open, paused, over_temperature, no_answer; Videojet: fault, ribbon_out, ink_empty, offline, warning, no_answer, garbage")
	printerSlow := fs.Duration("printer-slow", 0, "delay of every printer status answer")
	cameraDelay := fs.Duration("camera-delay", 0, "delay between a label passing the camera and its result line")
	plcDelay := fs.Duration("plc-delay", 0, "delay of every PLC answer")
	plcDisconnect := fs.Duration("plc-disconnect-every", 0, "drop the PLC's clients this often (0: never)")
	seed := fs.Uint64("seed", 1, "seed of the camera outcomes")
	control := fs.String("control", "127.0.0.1:0", "control API listen address")
	logLevel := fs.String("log-level", "info", "debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "serialine-sim: unexpected argument %q (flags: -h)\n", fs.Arg(0))
		return 2
	}
	if *path == "" {
		fmt.Fprintln(stderr, "serialine-sim: --config is required")
		return 2
	}
	// A fault name of either printer kind; linesim refuses it for a printer
	// whose simulator does not know it.
	_, err := zebrasim.ParseFault(*printerFault)
	if _, verr := videojetsim.ParseFault(*printerFault); err != nil && verr == nil {
		err = nil
	}
	if err == nil {
		err = errors.Join(rate("no-read-rate", *noRead), rate("bad-grade-rate", *badGrade), rate("duplicate-rate", *duplicate),
			rate("mismatch-rate", *mismatch), rate("garbage-rate", *garbage))
	}
	if err == nil && *noRead+*badGrade+*duplicate+*mismatch+*garbage > 1 {
		err = errors.New("the camera rates add up to more than 1")
	}
	if err != nil {
		fmt.Fprintln(stderr, "serialine-sim:", err)
		return 2
	}
	devices.Register()
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	log := cli.Logger(*logLevel, false)
	sims, err := linesim.Start(ctx, cfg, linesim.Options{Rate: *lps, NoReadRate: *noRead, BadGradeRate: *badGrade,
		DuplicateRate: *duplicate, MismatchRate: *mismatch, GarbageRate: *garbage,
		PrinterFault: *printerFault, PrinterSlow: *printerSlow, CameraDelay: *cameraDelay, PLCDelay: *plcDelay,
		Seed: *seed, UseConfigAddrs: true, Log: log})
	if err != nil {
		fmt.Fprintln(stderr, "serialine-sim:", err)
		return 1
	}
	defer sims.Close()
	ln, err := net.Listen("tcp", *control)
	if err != nil {
		fmt.Fprintln(stderr, "serialine-sim: control API:", err)
		return 1
	}
	srv := &http.Server{Handler: controlAPI(sims), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	if *plcDisconnect > 0 {
		go func() {
			t := time.NewTicker(*plcDisconnect)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					for name, p := range sims.PLCs {
						if err := p.DropClients(); err != nil {
							log.Error().Str("device", name).Err(err).Msg("PLC disconnect: restart failed")
						} else {
							log.Info().Str("device", name).Msg("PLC disconnect injected")
						}
					}
				}
			}
		}()
	}
	lines := sims.Describe()
	sort.Strings(lines)
	for _, d := range lines {
		fmt.Fprintln(stdout, "simulating", d)
	}
	fmt.Fprintf(stdout, "control API http://%s\n", ln.Addr())
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	return 0
}

func controlAPI(l *linesim.Line) http.Handler {
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(v)
	}
	fail := func(w http.ResponseWriter, code int, err error) {
		reply(w, code, map[string]string{"error": err.Error()})
	}
	// decode reads a small JSON body strictly.
	decode := func(w http.ResponseWriter, r *http.Request, v any) bool {
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			fail(w, 400, fmt.Errorf("request body: %w", err))
			return false
		}
		return true
	}
	duration := func(w http.ResponseWriter, s string) (time.Duration, bool) {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			fail(w, 400, fmt.Errorf("delay %q: want a duration such as 250ms", s))
			return 0, false
		}
		return d, true
	}
	printerErr := func(w http.ResponseWriter, err error) {
		if errors.Is(err, linesim.ErrNoPrinter) {
			fail(w, 404, err)
			return
		}
		fail(w, 400, err)
	}
	cam := func(w http.ResponseWriter, r *http.Request) (*camerasim.Sim, bool) {
		c, ok := l.Cameras[r.PathValue("name")]
		if !ok {
			fail(w, 404, fmt.Errorf("no camera %q", r.PathValue("name")))
		}
		return c, ok
	}
	mux.HandleFunc("POST /printer/{name}/fault", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Fault string `json:"fault"`
		}
		if _, ok := l.PrinterStatus(r.PathValue("name")); !ok {
			fail(w, 404, fmt.Errorf("no printer %q", r.PathValue("name")))
			return
		}
		if !decode(w, r, &req) {
			return
		}
		if err := l.SetPrinterFault(r.PathValue("name"), req.Fault); err != nil {
			printerErr(w, err)
			return
		}
		reply(w, 200, req)
	})
	mux.HandleFunc("POST /printer/{name}/slow", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Delay string `json:"delay"`
		}
		if _, ok := l.PrinterStatus(r.PathValue("name")); !ok {
			fail(w, 404, fmt.Errorf("no printer %q", r.PathValue("name")))
			return
		}
		if !decode(w, r, &req) {
			return
		}
		d, ok := duration(w, req.Delay)
		if !ok {
			return
		}
		if err := l.SetPrinterSlow(r.PathValue("name"), d); err != nil {
			printerErr(w, err)
			return
		}
		reply(w, 200, req)
	})
	mux.HandleFunc("POST /camera/{name}/rates", func(w http.ResponseWriter, r *http.Request) {
		c, ok := cam(w, r)
		var req struct {
			NoRead    float64 `json:"no_read"`
			BadGrade  float64 `json:"bad_grade"`
			Mismatch  float64 `json:"mismatch"`
			Duplicate float64 `json:"duplicate"`
			Garbage   float64 `json:"garbage"`
		}
		if !ok || !decode(w, r, &req) {
			return
		}
		for _, v := range []float64{req.NoRead, req.BadGrade, req.Mismatch, req.Duplicate, req.Garbage} {
			if v < 0 || v > 1 {
				fail(w, 400, fmt.Errorf("rate %v: want 0..1", v))
				return
			}
		}
		if req.NoRead+req.BadGrade+req.Mismatch+req.Duplicate+req.Garbage > 1 {
			fail(w, 400, errors.New("the rates add up to more than 1"))
			return
		}
		c.SetRates(camerasim.Rates{NoRead: req.NoRead, BadGrade: req.BadGrade, Mismatch: req.Mismatch, Duplicate: req.Duplicate, Garbage: req.Garbage})
		reply(w, 200, req)
	})
	mux.HandleFunc("POST /camera/{name}/next", func(w http.ResponseWriter, r *http.Request) {
		c, ok := cam(w, r)
		var req struct {
			Outcome string `json:"outcome"`
		}
		if !ok || !decode(w, r, &req) {
			return
		}
		o, err := camerasim.ParseOutcome(req.Outcome)
		if err != nil {
			fail(w, 400, err)
			return
		}
		c.Next(o)
		reply(w, 200, req)
	})
	mux.HandleFunc("POST /camera/{name}/delay", func(w http.ResponseWriter, r *http.Request) {
		c, ok := cam(w, r)
		var req struct {
			Delay string `json:"delay"`
		}
		if !ok || !decode(w, r, &req) {
			return
		}
		d, ok := duration(w, req.Delay)
		if !ok {
			return
		}
		c.SetDelay(d)
		reply(w, 200, req)
	})
	mux.HandleFunc("POST /camera/{name}/silent", func(w http.ResponseWriter, r *http.Request) {
		c, ok := cam(w, r)
		var req struct {
			Silent bool `json:"silent"`
		}
		if !ok || !decode(w, r, &req) {
			return
		}
		c.SetSilent(req.Silent)
		reply(w, 200, req)
	})
	mux.HandleFunc("POST /plc/{name}/disconnect", func(w http.ResponseWriter, r *http.Request) {
		p, ok := l.PLCs[r.PathValue("name")]
		if !ok {
			fail(w, 404, fmt.Errorf("no PLC %q", r.PathValue("name")))
			return
		}
		if err := p.DropClients(); err != nil {
			fail(w, 500, err)
			return
		}
		reply(w, 200, map[string]bool{"dropped": true})
	})
	mux.HandleFunc("POST /plc/{name}/delay", func(w http.ResponseWriter, r *http.Request) {
		p, ok := l.PLCs[r.PathValue("name")]
		if !ok {
			fail(w, 404, fmt.Errorf("no PLC %q", r.PathValue("name")))
			return
		}
		var req struct {
			Delay string `json:"delay"`
		}
		if !decode(w, r, &req) {
			return
		}
		d, ok := duration(w, req.Delay)
		if !ok {
			return
		}
		p.SetDelay(d)
		reply(w, 200, req)
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		out := map[string]any{}
		for _, n := range l.PrinterNames() {
			st, _ := l.PrinterStatus(n)
			out["printer/"+n] = st
		}
		for n, c := range l.Cameras {
			seen, outcomes := c.Counts()
			byName := map[string]int{}
			for o, k := range outcomes {
				byName[outcomeName(o)] = k
			}
			out["camera/"+n] = map[string]any{"seen": seen, "outcomes": byName, "rates": c.Rates()}
		}
		for n, p := range l.PLCs {
			out["plc/"+n] = map[string]int{"rejects": p.RejectCount(), "requests": p.Requests()}
		}
		reply(w, 200, out)
	})
	return mux
}

func outcomeName(o camerasim.Outcome) string {
	for _, n := range []string{"good", "noread", "bad_grade", "mismatch", "duplicate", "garbage"} {
		if v, _ := camerasim.ParseOutcome(n); v == o {
			return n
		}
	}
	return fmt.Sprint(int(o))
}
