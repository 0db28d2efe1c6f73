package trace

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/central/store/postgres"
	"github.com/serialine/serialine/central/store/sqlite"
	"github.com/serialine/serialine/central/store/storetest/backends"
	"github.com/serialine/serialine/sync/gs1"
)

// The trace benchmarks run on a store holding benchUnits units (default
// 10 million, SERIALINE_BENCH_UNITS overrides): 100,000 units per lot and
// batch, 10 units per case, 10 cases per pallet, every pallet shipped (100
// pallets per shipment). The data set holds the projections trace reads
// (batches, units, containers, container_children, shipments), not the
// records they derive from, and is built once with bulk inserts (SQLite:
// big transactions with the secondary indexes created afterwards;
// PostgreSQL: COPY) and kept between runs: SQLite in a file under
// os.TempDir(), PostgreSQL in a schema named after the version, with a
// version marker (a half-built data set is never reused).
const (
	benchVersion   = "trace-bench-v1"
	benchGTIN      = "09506000134352"
	benchEdge      = "bench-edge-1"
	unitsPerLot    = 100_000
	unitsPerCase   = 10
	casesPerPallet = 10
	palletsPerShip = 100
)

var benchT0 = time.Date(2026, 1, 5, 6, 0, 0, 0, time.UTC)

func benchUnits() int {
	if v, err := strconv.Atoi(os.Getenv("SERIALINE_BENCH_UNITS")); err == nil && v >= unitsPerLot {
		return v / unitsPerLot * unitsPerLot
	}
	return 10_000_000
}

func serialOf(i int) string { return fmt.Sprintf("%012d", i) }

func ssccOf(ref uint64) string {
	s, _ := gs1.SSCC('3', "9506000", ref)
	return s
}

func caseOf(i int) int   { return i / unitsPerCase }
func palletOf(c int) int { return c / casesPerPallet }
func caseSSCC(c int) string {
	return ssccOf(uint64(c + 1))
}
func palletSSCC(p int) string { return ssccOf(uint64(50_000_000 + p)) }
func lotOf(i int) int         { return i / unitsPerLot }

// row generators shared by both builders.
type benchRows struct{ n int }

func (g benchRows) unit(i int) []any {
	l := lotOf(i)
	return []any{benchGTIN, serialOf(i), fmt.Sprintf("B%04d", l), fmt.Sprintf("LOT%04d", l), "281130", benchEdge, "verified", 4.0, caseSSCC(caseOf(i))}
}

const benchStamp = "2006-01-02T15:04:05.000Z"

func (g benchRows) unitTime(i int) time.Time {
	return benchT0.Add(time.Duration(i) * 50 * time.Millisecond)
}

func (g benchRows) cases() int   { return g.n / unitsPerCase }
func (g benchRows) pallets() int { return g.cases() / casesPerPallet }

// sqliteBench returns the cached SQLite data set, building it when absent.
func sqliteBench(b *testing.B) store.Store {
	n := benchUnits()
	path := filepath.Join(os.TempDir(), fmt.Sprintf("serialine-%s-%d.db", benchVersion, n))
	if _, err := os.Stat(path); err != nil {
		start := time.Now()
		tmp := path + ".building"
		os.Remove(tmp)
		os.Remove(tmp + "-wal")
		os.Remove(tmp + "-shm")
		if err := buildSQLite(tmp, n); err != nil {
			b.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			b.Fatal(err)
		}
		b.Logf("built the SQLite trace data set (%d units) in %s: %s", n, time.Since(start).Round(time.Second), path)
	}
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}

func buildSQLite(path string, n int) error {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, path) // the store's own schema and migrations
	if err != nil {
		return err
	}
	st.Close()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(OFF)&_pragma=cache_size(-262144)")
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	// Secondary indexes are dropped for the load and created again (same
	// definitions as the migrations): sorting once beats 10M inserts each.
	idx := map[string]string{}
	rows, err := db.Query(`SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN ('units', 'containers', 'container_children', 'shipment_containers')`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var name, def string
		rows.Scan(&name, &def)
		idx[name] = def
	}
	rows.Close()
	for name := range idx {
		if _, err := db.Exec(`DROP INDEX ` + name); err != nil {
			return err
		}
	}
	g := benchRows{n}
	bulk := func(table string, cols []string, count int, row func(i int) []any) error {
		const per = 200
		ph := "(" + strings.TrimSuffix(strings.Repeat("?,", len(cols)), ",") + ")"
		full := `INSERT INTO ` + table + ` (` + strings.Join(cols, ",") + `) VALUES ` + strings.TrimSuffix(strings.Repeat(ph+",", per), ",")
		for start := 0; start < count; start += 500_000 {
			tx, err := db.Begin()
			if err != nil {
				return err
			}
			stmt, err := tx.Prepare(full)
			if err != nil {
				return err
			}
			end := min(start+500_000, count)
			args := make([]any, 0, per*len(cols))
			for i := start; i < end; i++ {
				args = append(args, row(i)...)
				if len(args) == per*len(cols) {
					if _, err := stmt.Exec(args...); err != nil {
						return fmt.Errorf("%s: %w", table, err)
					}
					args = args[:0]
				}
			}
			stmt.Close()
			if len(args) > 0 {
				k := len(args) / len(cols)
				q := `INSERT INTO ` + table + ` (` + strings.Join(cols, ",") + `) VALUES ` + strings.TrimSuffix(strings.Repeat(ph+",", k), ",")
				if _, err := tx.Exec(q, args...); err != nil {
					return fmt.Errorf("%s: %w", table, err)
				}
			}
			if err := tx.Commit(); err != nil {
				return err
			}
		}
		return nil
	}
	lots := n / unitsPerLot
	if err := bulk("batches", []string{"batch", "edge", "line", "gtin", "lot", "expiry", "product", "planned", "state", "started_at", "closed_at"}, lots, func(l int) []any {
		return []any{fmt.Sprintf("B%04d", l), benchEdge, "line-1", benchGTIN, fmt.Sprintf("LOT%04d", l), "281130", "Bench product", unitsPerLot, "closed",
			g.unitTime(l * unitsPerLot).Format(benchStamp), g.unitTime((l+1)*unitsPerLot - 1).Format(benchStamp)}
	}); err != nil {
		return err
	}
	if err := bulk("units", []string{"gtin", "serial", "batch", "lot", "expiry", "edge", "status", "grade", "parent", "commissioned_at"}, n, func(i int) []any {
		return append(g.unit(i), g.unitTime(i).Format(benchStamp))
	}); err != nil {
		return err
	}
	cols := []string{"sscc", "level", "batch", "edge", "parent", "closed", "count", "closed_at"}
	if err := bulk("containers", cols, g.cases(), func(c int) []any {
		return []any{caseSSCC(c), "case", fmt.Sprintf("B%04d", lotOf(c*unitsPerCase)), benchEdge, palletSSCC(palletOf(c)), 1, unitsPerCase, g.unitTime(c*unitsPerCase + unitsPerCase).Format(benchStamp)}
	}); err != nil {
		return err
	}
	if err := bulk("containers", cols, g.pallets(), func(p int) []any {
		return []any{palletSSCC(p), "pallet", fmt.Sprintf("B%04d", lotOf(p*casesPerPallet*unitsPerCase)), benchEdge, nil, 1, casesPerPallet, g.unitTime((p + 1) * casesPerPallet * unitsPerCase).Format(benchStamp)}
	}); err != nil {
		return err
	}
	if err := bulk("container_children", []string{"parent", "child"}, n, func(i int) []any {
		return []any{caseSSCC(caseOf(i)), "(01)" + benchGTIN + "(21)" + serialOf(i)}
	}); err != nil {
		return err
	}
	if err := bulk("container_children", []string{"parent", "child"}, g.cases(), func(c int) []any {
		return []any{palletSSCC(palletOf(c)), "(00)" + caseSSCC(c)}
	}); err != nil {
		return err
	}
	ships := (g.pallets() + palletsPerShip - 1) / palletsPerShip
	if err := bulk("shipments", []string{"id", "dest_gln", "dest_name", "ship_from", "shipped_at", "by_user", "body", "rec_edge", "rec_epoch", "rec_seq"}, ships, func(s int) []any {
		return []any{fmt.Sprintf("SH%06d", s), "9506000000015", "Bench DC", "9506000000008", g.unitTime((s + 1) * palletsPerShip * casesPerPallet * unitsPerCase).Format(benchStamp), "bench", "{}", "central.bench", 1, s + 1}
	}); err != nil {
		return err
	}
	if err := bulk("shipment_containers", []string{"sscc", "shipment"}, g.pallets(), func(p int) []any {
		return []any{palletSSCC(p), fmt.Sprintf("SH%06d", p/palletsPerShip)}
	}); err != nil {
		return err
	}
	for name, def := range idx {
		if _, err := db.Exec(def); err != nil {
			return fmt.Errorf("index %s: %w", name, err)
		}
	}
	if _, err := db.Exec(`ANALYZE`); err != nil {
		return err
	}
	_, err = db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
	return err
}

// postgresBench returns the cached PostgreSQL data set (schema
// serialine_<version>_<units>), building it when its marker is absent.
func postgresBench(b *testing.B) store.Store {
	ctx := context.Background()
	n := benchUnits()
	conn, err := pgx.Connect(ctx, backends.PGURL())
	if err != nil {
		if os.Getenv("SERIALINE_REQUIRE_PG") == "1" {
			b.Fatalf("PostgreSQL required (SERIALINE_REQUIRE_PG=1) but unreachable: %v", err)
		}
		b.Skipf("PostgreSQL not reachable: %v", err)
	}
	defer conn.Close(ctx)
	schema := strings.ReplaceAll(fmt.Sprintf("serialine_%s_%d", benchVersion, n), "-", "_")
	var marker string
	err = conn.QueryRow(ctx, `SELECT version FROM `+schema+`.bench_meta`).Scan(&marker)
	if err != nil || marker != benchVersion {
		start := time.Now()
		if err := buildPostgres(ctx, conn, schema, n); err != nil {
			b.Fatal(err)
		}
		b.Logf("built the PostgreSQL trace data set (%d units) in %s: schema %s", n, time.Since(start).Round(time.Second), schema)
	}
	st, err := postgres.Open(ctx, backends.WithSchema(backends.PGURL(), schema))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}

func buildPostgres(ctx context.Context, conn *pgx.Conn, schema string, n int) error {
	if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+schema+` CASCADE; CREATE SCHEMA `+schema); err != nil {
		return err
	}
	url := backends.WithSchema(backends.PGURL(), schema)
	st, err := postgres.Open(ctx, url)
	if err != nil {
		return err
	}
	st.Close()
	if _, err := conn.Exec(ctx, `SET search_path = `+schema); err != nil {
		return err
	}
	type ix struct{ name, def string }
	var idx []ix
	rows, err := conn.Query(ctx, `SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1 AND tablename IN ('units', 'containers', 'container_children', 'shipment_containers') AND indexname NOT LIKE '%_pkey'`, schema)
	if err != nil {
		return err
	}
	for rows.Next() {
		var x ix
		rows.Scan(&x.name, &x.def)
		idx = append(idx, x)
	}
	rows.Close()
	for _, x := range idx {
		if _, err := conn.Exec(ctx, `DROP INDEX `+x.name); err != nil {
			return err
		}
	}
	g := benchRows{n}
	copyRows := func(table string, cols []string, count int, row func(i int) []any) error {
		i := 0
		_, err := conn.CopyFrom(ctx, pgx.Identifier{table}, cols, pgx.CopyFromFunc(func() ([]any, error) {
			if i >= count {
				return nil, nil
			}
			r := row(i)
			i++
			return r, nil
		}))
		if err != nil {
			return fmt.Errorf("copy %s: %w", table, err)
		}
		return nil
	}
	lots := n / unitsPerLot
	if err := copyRows("batches", []string{"batch", "edge", "line", "gtin", "lot", "expiry", "product", "planned", "state", "started_at", "closed_at"}, lots, func(l int) []any {
		return []any{fmt.Sprintf("B%04d", l), benchEdge, "line-1", benchGTIN, fmt.Sprintf("LOT%04d", l), "281130", "Bench product", int32(unitsPerLot), "closed", g.unitTime(l * unitsPerLot), g.unitTime((l+1)*unitsPerLot - 1)}
	}); err != nil {
		return err
	}
	if err := copyRows("units", []string{"gtin", "serial", "batch", "lot", "expiry", "edge", "status", "grade", "parent", "commissioned_at"}, n, func(i int) []any {
		return append(g.unit(i), g.unitTime(i))
	}); err != nil {
		return err
	}
	cols := []string{"sscc", "level", "batch", "edge", "parent", "closed", "count", "closed_at"}
	if err := copyRows("containers", cols, g.cases(), func(c int) []any {
		return []any{caseSSCC(c), "case", fmt.Sprintf("B%04d", lotOf(c*unitsPerCase)), benchEdge, palletSSCC(palletOf(c)), true, int32(unitsPerCase), g.unitTime(c*unitsPerCase + unitsPerCase)}
	}); err != nil {
		return err
	}
	if err := copyRows("containers", cols, g.pallets(), func(p int) []any {
		return []any{palletSSCC(p), "pallet", fmt.Sprintf("B%04d", lotOf(p*casesPerPallet*unitsPerCase)), benchEdge, nil, true, int32(casesPerPallet), g.unitTime((p + 1) * casesPerPallet * unitsPerCase)}
	}); err != nil {
		return err
	}
	if err := copyRows("container_children", []string{"parent", "child"}, n, func(i int) []any {
		return []any{caseSSCC(caseOf(i)), "(01)" + benchGTIN + "(21)" + serialOf(i)}
	}); err != nil {
		return err
	}
	if err := copyRows("container_children", []string{"parent", "child"}, g.cases(), func(c int) []any {
		return []any{palletSSCC(palletOf(c)), "(00)" + caseSSCC(c)}
	}); err != nil {
		return err
	}
	ships := (g.pallets() + palletsPerShip - 1) / palletsPerShip
	if err := copyRows("shipments", []string{"id", "dest_gln", "dest_name", "ship_from", "shipped_at", "by_user", "body", "rec_edge", "rec_epoch", "rec_seq"}, ships, func(s int) []any {
		return []any{fmt.Sprintf("SH%06d", s), "9506000000015", "Bench DC", "9506000000008", g.unitTime((s + 1) * palletsPerShip * casesPerPallet * unitsPerCase), "bench", "{}", "central.bench", int64(1), int64(s + 1)}
	}); err != nil {
		return err
	}
	if err := copyRows("shipment_containers", []string{"sscc", "shipment"}, g.pallets(), func(p int) []any {
		return []any{palletSSCC(p), fmt.Sprintf("SH%06d", p/palletsPerShip)}
	}); err != nil {
		return err
	}
	for _, x := range idx {
		if _, err := conn.Exec(ctx, x.def); err != nil {
			return fmt.Errorf("index %s: %w", x.name, err)
		}
	}
	if _, err := conn.Exec(ctx, `ANALYZE; CREATE TABLE bench_meta (version TEXT NOT NULL); INSERT INTO bench_meta VALUES ('`+benchVersion+`')`); err != nil {
		return err
	}
	return nil
}

func benchStores(b *testing.B, fn func(b *testing.B, st store.Store)) {
	b.Run("sqlite", func(b *testing.B) { fn(b, sqliteBench(b)) })
	b.Run("postgres", func(b *testing.B) { fn(b, postgresBench(b)) })
}

func percentile(d []time.Duration, p float64) time.Duration {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[int(p*float64(len(d)-1))]
}

// BenchmarkTraceUnit traces random units of the 10M-unit store (unit ->
// case -> pallet -> shipment -> destination) and reports p50/p99 latency.
func BenchmarkTraceUnit(b *testing.B) {
	benchStores(b, func(b *testing.B, st store.Store) {
		ctx := context.Background()
		t := &Tracer{St: st}
		n := benchUnits()
		rng := rand.New(rand.NewPCG(1, 2))
		lat := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			u := rng.IntN(n)
			start := time.Now()
			res, err := t.Find(ctx, Query{Kind: QueryUnit, GTIN: benchGTIN, Serial: serialOf(u)})
			lat = append(lat, time.Since(start))
			if err != nil {
				b.Fatal(err)
			}
			if len(res.Units) != 1 || len(res.Units[0].Containers) != 2 || res.Units[0].Shipment == nil {
				b.Fatalf("unit %d: %+v", u, res.Units)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(percentile(lat, 0.50).Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "p99-ms")
	})
}

// BenchmarkTraceLot traces a whole lot (100,000 units with case, pallet
// and shipment each, plus its batches, containers, shipments and equipment
// history) in the 10M-unit store.
func BenchmarkTraceLot(b *testing.B) {
	benchStores(b, func(b *testing.B, st store.Store) {
		ctx := context.Background()
		t := &Tracer{St: st}
		lots := benchUnits() / unitsPerLot
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			lot := fmt.Sprintf("LOT%04d", (i*37)%lots)
			var shipped int
			lt, err := t.Lot(ctx, lot, func(lu LotUnit) error {
				if lu.Shipment != "" && lu.Pallet != "" {
					shipped++
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			if lt.Units != unitsPerLot || shipped != unitsPerLot {
				b.Fatalf("lot %s: %d units, %d shipped", lot, lt.Units, shipped)
			}
		}
		b.ReportMetric(float64(unitsPerLot)*float64(b.N)/b.Elapsed().Seconds(), "units/s")
	})
}
