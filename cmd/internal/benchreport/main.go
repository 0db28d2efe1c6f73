// Command benchreport runs Serialine's Go benchmarks several times, prints
// the median of every metric, and the ratios between a measured path and
// the raw limit measured in the same run (e.g. durable records through the
// edge store vs raw bbolt group commits). Machines are noisy: medians and
// ratios, never single timings.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// suite is one `go test -bench` invocation.
type suite struct {
	pkg   string
	bench string
	// benchtime and count override the flags for this suite ("" / 0: the
	// flags'): paced benchmarks run a fixed number of iterations.
	benchtime string
	count     int
}

var suites = []suite{
	{"./edge/store", "GroupCommit", "", 0},
	{"./edge/line", "UnitCycle$|PalletClose", "", 0},
	{"./edge/line", "UnitCycleLatency", "200x", 3},
	{"./edge/store", "CommitLatency", "200x", 3},
	{"./cmd/serialine-edge", "Edge10MSerials", "1x", 3},
	{"./edge/equipment", ".", "", 0},
	{"./edge/serials", ".", "", 0},
	{"./sync/record", ".", "", 0},
	{"./sync/gs1", ".", "", 0},
	{"./drivers/...", ".", "", 0},
	{"./central/...", ".", "", 0},
	{"./cmd/serialine", ".", "", 0},
}

// ratio compares metric of `num` against the same metric of `den` (the raw limit).
type ratio struct {
	name, num, den, metric string
	min                    float64 // target
}

// limit is an absolute target on a metric: the median must not exceed max,
// or must reach min; with neither, the metric is shown as the raw limit of
// the line above it.
type limit struct {
	name, bench, metric string
	max, min            float64
}

var limits = []limit{
	{name: "unit cycle p99 at 20 units/s", bench: "edge/line.BenchmarkUnitCycleLatency", metric: "p99_ms", max: 5},
	{name: "  raw limit: one bbolt commit (fsync) p99 at 20/s", bench: "edge/store.BenchmarkCommitLatency", metric: "p99_ms"},
	{name: "unit cycle p50 at 20 units/s", bench: "edge/line.BenchmarkUnitCycleLatency", metric: "p50_ms", max: 5},
	{name: "  raw limit: one bbolt commit (fsync) p50 at 20/s", bench: "edge/store.BenchmarkCommitLatency", metric: "p50_ms"},
	{name: "sustained unit capacity", bench: "edge/line.BenchmarkUnitCycle", metric: "units/s", min: 2000},
	{name: "pallet close validation, 10,000 units", bench: "edge/line.BenchmarkPalletCloseValidation", metric: "ms/close", max: 20},
	{name: "edge RSS with 10M serials (batch running)", bench: "cmd/serialine-edge.BenchmarkEdge10MSerials", metric: "rss_peak_MB", max: 150},
	{name: "edge start-up with 10M serials", bench: "cmd/serialine-edge.BenchmarkEdge10MSerials", metric: "startup_ms", max: 2000},
	{name: "backlog drain edge→broker→central (SQLite)", bench: "cmd/serialine.BenchmarkDrain/sqlite", metric: "records/s", min: 20000},
	{name: "end-to-end latency edge commit→central commit at line rate, p99", bench: "cmd/serialine.BenchmarkLatency", metric: "p99-ms", max: 50},
	{name: "single trace p99 with 10M units stored, SQLite", bench: "central/trace.BenchmarkTraceUnit/sqlite", metric: "p99-ms", max: 10},
	{name: "single trace p99 with 10M units stored, PostgreSQL", bench: "central/trace.BenchmarkTraceUnit/postgres", metric: "p99-ms", max: 10},
	{name: "full lot trace of 100,000 units, SQLite (ns)", bench: "central/trace.BenchmarkTraceLot/sqlite", metric: "ns/op", max: 2e9},
	{name: "full lot trace of 100,000 units, PostgreSQL (ns)", bench: "central/trace.BenchmarkTraceLot/postgres", metric: "ns/op", max: 2e9},
}

var ratios = []ratio{
	{"edge durable record rate vs raw bbolt group commit", "edge/store.BenchmarkGroupCommit/store", "edge/store.BenchmarkGroupCommit/raw-bbolt", "records/s", 0.5},
	{"drain edge→mochi→central (SQLite) vs raw Mosquitto QoS1", "cmd/serialine.BenchmarkDrain/sqlite", "cmd/serialine.BenchmarkDrainRawMosquitto", "records/s", 0.5},
	{"drain edge→Mosquitto→central (SQLite) vs raw Mosquitto QoS1", "cmd/serialine.BenchmarkDrain/sqlite-mosquitto", "cmd/serialine.BenchmarkDrainRawMosquitto", "records/s", 0.5},
	{"central ingest PostgreSQL vs raw pgx COPY", "central/store/postgres.BenchmarkAppend", "central/store/postgres.BenchmarkRawCopy", "records/s", 0.5},
	{"Videojet text driver per unit vs raw loopback round trip", "drivers/videojet.BenchmarkPrint/text/driver", "drivers/videojet.BenchmarkPrint/text/raw", "units/s", 0.5},
	{"Videojet WSI driver per unit vs raw loopback packets", "drivers/videojet.BenchmarkPrint/wsi/driver", "drivers/videojet.BenchmarkPrint/wsi/raw", "units/s", 0.5},
	// Per-unit driver overhead: time of the raw limit / time through the
	// driver (1.0: no overhead). The Zebra driver renders and validates each
	// label; its raw limit writes ready ZPL bytes.
	{"zebra print: raw TCP write / driver print (ns/op)", "drivers/zebra.BenchmarkPrint/raw-tcp", "drivers/zebra.BenchmarkPrint/driver", "ns/op", 0.2},
	{"camera result: raw TCP line / driver read+parse (ns/op)", "drivers/camera.BenchmarkRead/raw-tcp", "drivers/camera.BenchmarkRead/driver", "ns/op", 0.5},
	{"modbus reject write: raw goburrow / driver (ns/op)", "drivers/modbus.BenchmarkWriteBool/raw-goburrow", "drivers/modbus.BenchmarkWriteBool/driver", "ns/op", 0.5},
	{"engine step with the equipment hooks vs without (no fsync)", "edge/equipment.BenchmarkStep/hooks", "edge/equipment.BenchmarkStep/none", "units/s", 0.8},
	// ns/op: raw over driver, so 1.0 means no driver overhead per reject write.
	{"OPC UA PLC reject write: raw gopcua Write vs driver (ns/op)", "drivers/opcua.BenchmarkWriteBool/raw-gopcua", "drivers/opcua.BenchmarkWriteBool/driver", "ns/op", 0.8},
}

const module = "github.com/serialine/serialine/"

var line = regexp.MustCompile(`^(Benchmark\S+?)(-\d+)?\s+(\d+)\s+(.*)$`)

func main() {
	count := flag.Int("count", 5, "runs per benchmark (median taken)")
	benchtime := flag.String("benchtime", "1s", "go test -benchtime")
	only := flag.String("only", "", "run only suites whose package contains this")
	flag.Parse()
	results := map[string]map[string][]float64{} // bench -> metric -> values
	var order []string
	for _, s := range suites {
		if *only != "" && !strings.Contains(s.pkg, *only) {
			continue
		}
		// A long timeout: the first run builds the cached 10M-unit trace
		// data sets (see central/trace/bench_test.go) and the 10M-serial
		// edge store.
		bt, n := *benchtime, *count
		if s.benchtime != "" {
			bt = s.benchtime
		}
		if s.count > 0 {
			n = min(n, s.count)
		}
		args := []string{"test", "-run", "^$", "-bench", s.bench, "-benchmem", "-count", strconv.Itoa(n), "-benchtime", bt, "-timeout", "90m", s.pkg}
		fmt.Fprintf(os.Stderr, "go %s\n", strings.Join(args, " "))
		cmd := exec.Command("go", args...)
		var out bytes.Buffer
		cmd.Stdout = &out
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "benchreport: %s: %v\n%s", s.pkg, err, out.String())
			os.Exit(1)
		}
		sc := bufio.NewScanner(&out)
		pkg := ""
		for sc.Scan() {
			if p, ok := strings.CutPrefix(sc.Text(), "pkg: "); ok {
				pkg = strings.TrimPrefix(p, module)
				continue
			}
			m := line.FindStringSubmatch(sc.Text())
			if m == nil {
				continue
			}
			name := pkg + "." + m[1]
			if _, ok := results[name]; !ok {
				results[name] = map[string][]float64{}
				order = append(order, name)
			}
			f := strings.Fields(m[4])
			for i := 0; i+1 < len(f); i += 2 {
				v, err := strconv.ParseFloat(f[i], 64)
				if err != nil {
					continue
				}
				results[name][f[i+1]] = append(results[name][f[i+1]], v)
			}
		}
	}
	fmt.Printf("\n%-70s %s\n", "benchmark (median of runs)", "metrics")
	for _, name := range order {
		var parts []string
		metrics := make([]string, 0, len(results[name]))
		for k := range results[name] {
			metrics = append(metrics, k)
		}
		sort.Strings(metrics)
		for _, k := range metrics {
			parts = append(parts, fmt.Sprintf("%s %s", human(median(results[name][k])), k))
		}
		fmt.Printf("%-70s %s\n", name, strings.Join(parts, "  "))
	}
	fmt.Println("\nratios (same run):")
	for _, r := range ratios {
		n, okN := results[r.num][r.metric]
		d, okD := results[r.den][r.metric]
		if !okN || !okD {
			continue
		}
		q := median(n) / median(d)
		verdict := "meets"
		if q < r.min {
			verdict = "BELOW"
		}
		fmt.Printf("  %-62s %s / %s = %.2f (target >= %.2f: %s)\n", r.name, human(median(n)), human(median(d)), q, r.min, verdict)
	}
	fmt.Println("\ntargets (medians):")
	for _, l := range limits {
		v, ok := results[l.bench][l.metric]
		if !ok {
			continue
		}
		m := median(v)
		verdict, target := "meets", ""
		switch {
		case l.max == 0 && l.min == 0:
			fmt.Printf("  %-62s %s %s (measured in the same run)\n", l.name, human(m), l.metric)
			continue
		case l.max > 0:
			target = fmt.Sprintf("<= %s", human(l.max))
			if m > l.max {
				verdict = "MISSES"
			}
		default:
			target = fmt.Sprintf(">= %s", human(l.min))
			if m < l.min {
				verdict = "MISSES"
			}
		}
		fmt.Printf("  %-62s %s %s (target %s: %s)\n", l.name, human(m), l.metric, target, verdict)
	}
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func human(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.1fk", v/1e3)
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	default:
		return strconv.FormatFloat(v, 'g', 4, 64)
	}
}
