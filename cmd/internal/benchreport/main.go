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
}

var suites = []suite{
	{"./edge/store", "GroupCommit"},
	{"./edge/line", "."},
	{"./edge/serials", "."},
	{"./sync/record", "."},
	{"./sync/gs1", "."},
	{"./drivers/...", "."},
	{"./central/...", "."},
	{"./cmd/serialine", "."},
}

// ratio compares metric of `num` against the same metric of `den` (the raw limit).
type ratio struct {
	name, num, den, metric string
	min                    float64 // target
}

var ratios = []ratio{
	{"edge durable record rate vs raw bbolt group commit", "edge/store.BenchmarkGroupCommit/store", "edge/store.BenchmarkGroupCommit/raw-bbolt", "records/s", 0.5},
	{"drain edge→broker→central (SQLite) vs raw Mosquitto QoS1", "cmd/serialine.BenchmarkDrain/sqlite", "cmd/serialine.BenchmarkDrain/raw-mosquitto", "records/s", 0.5},
	{"central ingest PostgreSQL vs raw pgx COPY", "central/store/postgres.BenchmarkAppend", "central/store/postgres.BenchmarkRawCopy", "records/s", 0.5},
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
		args := []string{"test", "-run", "^$", "-bench", s.bench, "-benchmem", "-count", strconv.Itoa(*count), "-benchtime", *benchtime, s.pkg}
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
