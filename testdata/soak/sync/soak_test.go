//go:build soak

// Package sync is the store-and-forward fault suite (`make test-soak`): the
// real binaries (serialine-edge, serialine-central, serialine-sim), a
// private Mosquitto and PostgreSQL (own schema), with SIGKILL of the
// broker, central and the edge at random points while the line runs, and
// connections cut by TCP proxies. After every cycle central's store must
// equal the edge's log: the chain central holds verifies, continues into
// what the edge still holds byte for byte, has no duplicate and no gap, and
// once drained ends at exactly the edge's head (same hash: the hash chain
// makes that byte-for-byte equality of every record).
//
//	SERIALINE_SOAK_CYCLES=200 SERIALINE_SOAK_SEED=7 make test-soak
package sync

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/serialine/serialine/central/broker/brokertest"
	cstore "github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/central/store/postgres"
	"github.com/serialine/serialine/edge/line"
	"github.com/serialine/serialine/edge/store"
	"github.com/serialine/serialine/sync/identity"
	"github.com/serialine/serialine/sync/record"
)

const edgeID = "soak-edge"

const lineYAML = `
line: {id: soak-line}
edge:
  id: %s
  data_dir: %s
  verdict_timeout: 2s
  http: 127.0.0.1:%d
central: {broker: "%s", username: %s, password: %s, resend_after: 1s}
company: {gs1_prefix: "9506000", sscc_extension: 3, sscc_range: {first: 1, last: 999999}}
products:
  - gtin: "09506000134352"
    name: Tablets
    packaging: {units_per_case: 5, cases_per_pallet: 4}
batch: {gtin: "09506000134352", lot: SOAK1, expiry: "281130", planned: 100000}
devices:
  printers: [{name: printer-1, driver: zebra, address: "127.0.0.1:%d"}]
  cameras: [{name: camera-1, driver: dataman, address: "127.0.0.1:%d"}]
  plcs:
    - name: plc-1
      driver: modbus
      address: "127.0.0.1:%d"
      options: {tags: {reject: {coil: 0}}}
users:
  - {id: sup, name: Soak Supervisor, role: supervisor, password_hash: "%s"}
`

const centralYAML = `
id: soak
http: 127.0.0.1:0
data_dir: %s
db: "%s"
mqtt: {broker: "%s", username: central, password: %s}
edges: [{id: %s, public_key: "%s"}]
`

func TestSoakSync(t *testing.T) {
	cycles := envInt(t, "SERIALINE_SOAK_CYCLES", 50)
	seed := uint64(envInt(t, "SERIALINE_SOAK_SEED", int(time.Now().UnixNano()%1e6)))
	t.Logf("%d cycles, seed %d (SERIALINE_SOAK_SEED=%d reproduces the fault sequence)", cycles, seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x5e1a))
	ctx := context.Background()
	dir := t.TempDir()
	bins := build(t, dir, "serialine-edge", "serialine-central", "serialine-sim")

	// Broker, and a proxy in front of it for each side so a link can be cut.
	users := map[string]string{"central": "central-soak-pw", edgeID: "edge-soak-pw"}
	mq := brokertest.StartMosquitto(t, brokertest.MosquittoOptions{Users: users, ACL: brokertest.SerialineACL("central")})
	edgeLink := newProxy(t, fmt.Sprintf("127.0.0.1:%d", mq.Port))
	centralLink := newProxy(t, fmt.Sprintf("127.0.0.1:%d", mq.Port))
	dbURL := pgSchema(t)

	// The line: simulated devices (never killed), the edge's key first.
	lineCfg := filepath.Join(dir, "line.yaml")
	ports := [3]int{brokertest.FreePort(t), brokertest.FreePort(t), brokertest.FreePort(t)}
	apiPort := brokertest.FreePort(t)
	supHash, err := bcrypt.GenerateFromPassword([]byte("sup-pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, lineCfg, fmt.Sprintf(lineYAML, edgeID, filepath.Join(dir, "edge"), apiPort, "tcp://"+edgeLink.Addr(), edgeID, users[edgeID], ports[0], ports[1], ports[2], supHash))
	api := fmt.Sprintf("http://127.0.0.1:%d", apiPort)
	out, err := exec.Command(bins["serialine-edge"], "key", "--config", lineCfg).Output()
	if err != nil {
		t.Fatalf("serialine-edge key: %v", err)
	}
	pub, err := record.ParsePublicKey(string(out))
	if err != nil {
		t.Fatal(err)
	}
	centralCfg := filepath.Join(dir, "central.yaml")
	writeFile(t, centralCfg, fmt.Sprintf(centralYAML, filepath.Join(dir, "central"), dbURL, "tcp://"+centralLink.Addr(), users["central"], edgeID, record.EncodePublicKey(pub)))
	sim := newProc(t, dir, "sim", bins["serialine-sim"], "--config", lineCfg, "--rate", "60", "--log-level", "error")
	central := newProc(t, dir, "central", bins["serialine-central"], "--config", centralCfg, "--log-level", "info")
	edge := newProc(t, dir, "edge", bins["serialine-edge"], "--config", lineCfg, "--log-level", "info")
	sim.start()
	central.start()

	st, err := postgres.Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	key, err := identity.Load(filepath.Join(dir, "edge", "edge.key"))
	if err != nil {
		t.Fatal(err)
	}

	var prev record.Head // the edge's head when it was last stopped
	var verified record.Head
	faults := map[string]int{}
	start := time.Now()
	productive, removed := 0, 0
	for cycle := 1; cycle <= cycles; cycle++ {
		edge.start()
		// Units in flight at the last kill hold the line until a
		// supervisor confirms they were removed: play the supervisor so
		// the line keeps producing records.
		removed += resumeLine(t, api, 15*time.Second)
		sleep(rng, 200, 900) // the line runs
		fault := []string{"broker", "central", "cut-edge", "cut-central", "broker+central", "none"}[rng.IntN(6)]
		faults[fault]++
		switch fault {
		case "broker":
			mq.Kill()
			sleep(rng, 0, 300)
			mq.Start()
		case "central":
			central.kill()
			sleep(rng, 0, 300)
			central.start()
		case "cut-edge":
			edgeLink.Cut()
		case "cut-central":
			centralLink.Cut()
		case "broker+central":
			central.kill()
			mq.Kill()
			sleep(rng, 0, 300)
			mq.Start()
			central.start()
		}
		// Drained: central holds at least what the edge held when it was
		// last stopped, and ends there with the same hash.
		t0 := time.Now()
		waitHead(t, st, prev.Seq, 60*time.Second, central, edge)
		drained := time.Since(t0)
		if prev.Seq > 0 {
			recs, err := st.Records(ctx, edgeID, prev.Epoch, prev.Seq, 1)
			if err != nil || len(recs) != 1 || recs[0].Hash != prev.Hash {
				t.Fatalf("cycle %d: central's record %d is not the edge's (%v)", cycle, prev.Seq, err)
			}
		}
		sleep(rng, 0, 600)
		edge.kill() // at a random point of the line's work
		before := prev.Seq
		prev, verified = check(t, ctx, st, key, dir, verified, cycle)
		if prev.Seq > before+20 { // more than the start-up records: units were made
			productive++
		}
		t.Logf("cycle %d: fault %s, drained %s after it", cycle, fault, drained.Round(time.Millisecond))
	}
	// The end: drain everything the edge holds; then every chain in the
	// store (the edge's and central's journal) verifies.
	edge.start()
	waitHead(t, st, prev.Seq, 60*time.Second, central, edge)
	edge.kill()
	check(t, ctx, st, key, dir, verified, cycles+1)
	reps, err := cstore.Verify(ctx, st, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reps {
		if r.Err != nil {
			t.Fatalf("%s epoch %d: %v", r.Edge, r.Epoch, r.Err)
		}
		t.Logf("verified %s epoch %d: %d records", r.Edge, r.Epoch, r.Records)
	}
	if productive < cycles/2 {
		t.Fatalf("only %d of %d cycles made units: the line did not keep running", productive, cycles)
	}
	t.Logf("%d cycles in %s, faults %v, edge head %d, %d cycles made units, %d units in flight at a kill confirmed removed", cycles, time.Since(start).Round(time.Second), faults, prev.Seq, productive, removed)
}

// resumeLine waits for the edge's API, and when the batch is held for
// items whose reject was not delivered (units in flight at a kill), confirms
// each removed (e-signed) and resumes. It returns the number confirmed.
func resumeLine(t *testing.T, api string, timeout time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var st line.Status
	for {
		resp, err := http.Get(api + "/api/v1/status")
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			if err != nil {
				t.Fatalf("edge status: %v", err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("edge API %s not up: %v", api, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st.BatchState != "held" || len(st.RejectsNotDelivered) == 0 {
		return 0
	}
	post := func(path string, body any) {
		t.Helper()
		raw, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", api+path, bytes.NewReader(raw))
		req.SetBasicAuth("sup", "sup-pw")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %s %s", path, resp.Status, msg)
		}
	}
	sig := map[string]string{"user": "sup", "password": "sup-pw", "meaning": "the unit was found and removed", "reason": "soak"}
	for _, r := range st.RejectsNotDelivered {
		post("/api/v1/rejects/"+r.ID+"/removed", map[string]any{"note": "soak harness: found after the kill", "signature": sig})
	}
	post("/api/v1/batch/resume", map[string]string{"reason": "removed units confirmed"})
	return len(st.RejectsNotDelivered)
}

// check runs with the edge stopped: central holds a gap-free, duplicate-free
// chain that verifies and is what the edge wrote; the edge pruned only what
// central holds; what the edge still holds continues central's chain byte
// for byte. It returns the edge's head and how far central's chain is
// verified.
func check(t *testing.T, ctx context.Context, st cstore.Store, key ed25519.PrivateKey, dir string, verified record.Head, cycle int) (record.Head, record.Head) {
	t.Helper()
	db, err := store.Open(filepath.Join(dir, "edge", "edge.db"), store.Options{EdgeID: edgeID, Key: key, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("cycle %d: edge store: %v", cycle, err)
	}
	defer db.Close()
	head, acked := db.Head(), db.Acked()
	log, err := db.Records(acked+1, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	ch, ok, err := st.Head(ctx, edgeID)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		ch = record.Head{Epoch: head.Epoch}
	}
	switch {
	case ch.Epoch != head.Epoch:
		t.Fatalf("cycle %d: central at epoch %d, edge at %d", cycle, ch.Epoch, head.Epoch)
	case ch.Seq > head.Seq:
		t.Fatalf("cycle %d: central holds seq %d beyond the edge's head %d", cycle, ch.Seq, head.Seq)
	case acked > ch.Seq:
		t.Fatalf("cycle %d: the edge pruned up to %d, central holds only %d", cycle, acked, ch.Seq)
	}
	// Central may still be storing what the edge sent before it died: the
	// count, read between two heads, must lie between them.
	n, err := st.CountRecords(ctx, edgeID)
	if err != nil {
		t.Fatal(err)
	}
	ch2, _, err := st.Head(ctx, edgeID)
	if err != nil {
		t.Fatal(err)
	}
	if uint64(n) < ch.Seq || uint64(n) > ch2.Seq {
		t.Fatalf("cycle %d: central holds %d records, its head moved from %d to %d meanwhile (duplicates or gaps)", cycle, n, ch.Seq, ch2.Seq)
	}
	// Central's chain since the last check verifies and links on.
	pub := key.Public().(ed25519.PublicKey)
	if ch.Seq > verified.Seq {
		stored, err := st.Records(ctx, edgeID, ch.Epoch, verified.Seq+1, int(ch.Seq-verified.Seq))
		if err != nil {
			t.Fatal(err)
		}
		recs := make([]record.Record, len(stored))
		for i := range stored {
			recs[i] = stored[i].Record
		}
		if _, err := record.VerifyRun(pub, verified, recs); err != nil {
			t.Fatalf("cycle %d: central's chain: %v", cycle, err)
		}
		verified = ch
	}
	// What both hold is byte-identical; the edge's log continues central's
	// chain.
	if len(log) > 0 && log[0].Seq != acked+1 {
		t.Fatalf("cycle %d: edge log starts at %d, acked %d", cycle, log[0].Seq, acked)
	}
	if ch.Seq > acked {
		stored, err := st.Records(ctx, edgeID, ch.Epoch, acked+1, int(ch.Seq-acked))
		if err != nil {
			t.Fatal(err)
		}
		for i := range stored {
			c, e := &stored[i].Record, &log[i]
			if !bytes.Equal(c.Canonical(), e.Canonical()) || !bytes.Equal(c.Sig, e.Sig) {
				t.Fatalf("cycle %d: seq %d differs between central and the edge", cycle, c.Seq)
			}
		}
	}
	if rest := log[ch.Seq-acked:]; len(rest) > 0 {
		if rest[0].Prev != ch.Hash && ch.Seq > 0 {
			t.Fatalf("cycle %d: the edge's seq %d does not continue central's head %d", cycle, rest[0].Seq, ch.Seq)
		}
		if _, err := record.VerifyRun(pub, ch, rest); err != nil {
			t.Fatalf("cycle %d: the edge's unacknowledged log: %v", cycle, err)
		}
	}
	t.Logf("cycle %d: edge head %d acked %d, central %d", cycle, head.Seq, acked, ch.Seq)
	return head, verified
}

func waitHead(t *testing.T, st cstore.Store, seq uint64, timeout time.Duration, procs ...*proc) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		h, _, err := st.Head(context.Background(), edgeID)
		if err == nil && h.Seq >= seq {
			return
		}
		if time.Now().After(deadline) {
			for _, p := range procs {
				p.dumpLog(t)
			}
			t.Fatalf("central did not reach seq %d within %s (at %d, %v)", seq, timeout, h.Seq, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func sleep(rng *rand.Rand, minMs, maxMs int) {
	time.Sleep(time.Duration(minMs+rng.IntN(maxMs-minMs+1)) * time.Millisecond)
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return n
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// build compiles the binaries from the module root.
func build(t *testing.T, dir string, names ...string) map[string]string {
	t.Helper()
	root, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	args := []string{"build", "-o", dir + "/"}
	for _, n := range names {
		args = append(args, "./cmd/"+n)
		out[n] = filepath.Join(dir, n)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = strings.TrimSpace(string(root))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	return out
}

// pgSchema creates an empty schema for the run on the local PostgreSQL.
func pgSchema(t *testing.T) string {
	t.Helper()
	base := "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	if u := os.Getenv("SERIALINE_PG_URL"); u != "" {
		base = u
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("PostgreSQL: %v", err)
	}
	defer conn.Close(ctx)
	schema := fmt.Sprintf("serialine_soak_%d", rand.Uint64()%1e12)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if c, err := pgx.Connect(context.Background(), base); err == nil {
			c.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
			c.Close(context.Background())
		}
	})
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + "search_path=" + schema
}

// proc is a child process the suite starts and kills with SIGKILL.
type proc struct {
	t    *testing.T
	name string
	bin  string
	args []string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
}

func newProc(t *testing.T, dir, name, bin string, args ...string) *proc {
	p := &proc{t: t, name: name, bin: bin, args: args, log: filepath.Join(dir, name+".log")}
	t.Cleanup(p.kill)
	return p
}

func (p *proc) start() {
	p.t.Helper()
	if p.cmd != nil {
		return
	}
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		p.t.Fatal(err)
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("%s: %v", p.name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); f.Close(); close(done) }()
	p.cmd, p.done = cmd, done
}

func (p *proc) kill() {
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	p.cmd = nil
}

func (p *proc) dumpLog(t *testing.T) {
	raw, _ := os.ReadFile(p.log)
	if len(raw) > 4000 {
		raw = raw[len(raw)-4000:]
	}
	t.Logf("--- %s log (tail) ---\n%s", p.name, raw)
}
