// Command serialine-sim simulates every device of a line config on real
// sockets, at the addresses in the config: Zebra printers (ZPL), cameras
// (result lines) and Modbus PLCs. Printed labels pass the camera.
//
//	serialine-sim --config line.yaml [--rate 40] [--control 127.0.0.1:8090]
//
// Faults are injected through the control API (JSON over HTTP):
//
//	POST /printer/{name}/fault   {"fault": "paper_out"}  (none, paper_out, ribbon_out, head_open, paused, over_temperature, no_answer)
//	POST /camera/{name}/rates    {"no_read": 0.05, "bad_grade": 0.02, "mismatch": 0, "duplicate": 0}
//	POST /camera/{name}/silent   {"silent": true}
//	POST /plc/{name}/disconnect  {}
//	POST /plc/{name}/delay       {"delay": "500ms"}
//	GET  /status
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/serialine/serialine/cmd/internal/cli"
	"github.com/serialine/serialine/cmd/internal/linesim"
	"github.com/serialine/serialine/drivers/camera/camerasim"
	"github.com/serialine/serialine/drivers/zebra/zebrasim"
	"github.com/serialine/serialine/edge/config"
	"github.com/serialine/serialine/edge/devices"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("serialine-sim", flag.ContinueOnError)
	path := fs.String("config", "", "line config whose devices to simulate")
	rate := fs.Float64("rate", 40, "labels per second the printers print")
	noRead := fs.Float64("no-read-rate", 0.01, "fraction of no-reads")
	badGrade := fs.Float64("bad-grade-rate", 0.02, "fraction of grades below C")
	control := fs.String("control", "127.0.0.1:0", "control API listen address")
	logLevel := fs.String("log-level", "info", "debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *path == "" {
		fmt.Fprintln(os.Stderr, "serialine-sim: --config is required")
		return 2
	}
	devices.Register()
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	log := cli.Logger(*logLevel, false)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sims, err := linesim.Start(ctx, cfg, linesim.Options{Rate: *rate, NoReadRate: *noRead, BadGradeRate: *badGrade, UseConfigAddrs: true, Log: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, "serialine-sim:", err)
		return 1
	}
	defer sims.Close()
	ln, err := net.Listen("tcp", *control)
	if err != nil {
		fmt.Fprintln(os.Stderr, "serialine-sim: control API:", err)
		return 1
	}
	srv := &http.Server{Handler: controlAPI(sims), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	for _, d := range sims.Describe() {
		fmt.Println("simulating", d)
	}
	fmt.Printf("control API http://%s\n", ln.Addr())
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
	mux.HandleFunc("POST /printer/{name}/fault", func(w http.ResponseWriter, r *http.Request) {
		p, ok := l.Printers[r.PathValue("name")]
		if !ok {
			fail(w, 404, fmt.Errorf("no printer %q", r.PathValue("name")))
			return
		}
		var req struct {
			Fault string `json:"fault"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			fail(w, 400, err)
			return
		}
		f, err := zebrasim.ParseFault(req.Fault)
		if err != nil {
			fail(w, 400, err)
			return
		}
		p.SetFault(f)
		reply(w, 200, req)
	})
	mux.HandleFunc("POST /camera/{name}/rates", func(w http.ResponseWriter, r *http.Request) {
		c, ok := l.Cameras[r.PathValue("name")]
		if !ok {
			fail(w, 404, fmt.Errorf("no camera %q", r.PathValue("name")))
			return
		}
		var req struct {
			NoRead    float64 `json:"no_read"`
			BadGrade  float64 `json:"bad_grade"`
			Mismatch  float64 `json:"mismatch"`
			Duplicate float64 `json:"duplicate"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			fail(w, 400, err)
			return
		}
		c.SetRates(camerasim.Rates{NoRead: req.NoRead, BadGrade: req.BadGrade, Mismatch: req.Mismatch, Duplicate: req.Duplicate})
		reply(w, 200, req)
	})
	mux.HandleFunc("POST /camera/{name}/silent", func(w http.ResponseWriter, r *http.Request) {
		c, ok := l.Cameras[r.PathValue("name")]
		if !ok {
			fail(w, 404, fmt.Errorf("no camera %q", r.PathValue("name")))
			return
		}
		var req struct {
			Silent bool `json:"silent"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			fail(w, 400, err)
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
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			fail(w, 400, err)
			return
		}
		d, err := time.ParseDuration(req.Delay)
		if err != nil {
			fail(w, 400, err)
			return
		}
		p.SetDelay(d)
		reply(w, 200, req)
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		out := map[string]any{}
		for n, p := range l.Printers {
			rec, pr, bad, dropped := p.Counts()
			out["printer/"+n] = map[string]int{"received": rec, "printed": pr, "bad_formats": bad, "dropped": dropped}
		}
		for n, c := range l.Cameras {
			seen, _ := c.Counts()
			out["camera/"+n] = map[string]int{"seen": seen}
		}
		for n, p := range l.PLCs {
			out["plc/"+n] = map[string]int{"rejects": p.RejectCount(), "requests": p.Requests()}
		}
		reply(w, 200, out)
	})
	return mux
}
