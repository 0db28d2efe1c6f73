//go:build soak

// Package soakedge is the edge crash harness, run by `make test-soak` (not
// by `make test`: Go skips testdata/ in ./...). It builds the real
// serialine-edge binary, runs it against the device simulators on real
// sockets with central unreachable (the edge works offline), kills it with
// SIGKILL at random points during production, restarts it, and after every
// kill checks the store and the simulators' evidence:
//
//   - no serial printed twice (the printer simulator's record of labels);
//   - every printed serial has a commissioning record, no serial is
//     commissioned twice, every commissioned serial was reserved for the
//     batch;
//   - no serial lost or reused: line.Audit balances every serial ever
//     pooled as available, reserved unused or used, exactly once;
//   - aggregation consistent (line.Audit): closed containers hold verified
//     good units / closed cases of their batch, linked once, full counts;
//   - the record chain is gap-free, verifies (signatures and hashes), and
//     what was durable before a kill is unchanged after it;
//   - a reject pulse whose delivery was not known at a kill counts as not
//     delivered after the restart: the batch is held with the unit named.
//     The harness then plays the supervisor (confirms the removal, e-signed,
//     through the edge API) and resumes the line.
//
// SERIALINE_SOAK_KILLS sets the number of kills (default 100),
// SERIALINE_SOAK_SEED the random seed (default: the time, logged).
package soakedge

import (
	"bytes"
	"context"
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
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"

	"github.com/serialine/serialine/drivers/camera/camerasim"
	"github.com/serialine/serialine/drivers/modbus"
	"github.com/serialine/serialine/drivers/modbus/modbussim"
	"github.com/serialine/serialine/drivers/zebra/zebrasim"
	"github.com/serialine/serialine/edge/app"
	"github.com/serialine/serialine/edge/config"
	"github.com/serialine/serialine/edge/devices"
	"github.com/serialine/serialine/edge/line"
	"github.com/serialine/serialine/edge/store"
	"github.com/serialine/serialine/sync/gs1"
	"github.com/serialine/serialine/sync/record"
)

const soakLine = `line: {id: line-soak}
edge: {id: edge-soak, data_dir: "%s", http: "127.0.0.1:0", verdict_timeout: 1s, reject_deadline: 5s, print_ahead: 4, challenge: {at_start: [no_read, bad_grade], every: 400, timeout: 3s}}
central: {broker: "tcp://127.0.0.1:1"}
company: {gs1_prefix: "9506000", sscc_extension: 3, sscc_range: {first: 1, last: 999999999}}
products:
  - gtin: "09506000134352"
    name: Tablets
    packaging: {units_per_case: 5, cases_per_pallet: 4}
    serials: {length: 12, overage_percent: 2, low_water: 100}
batch: {gtin: "09506000134352", lot: SOAK1, expiry: "281130", planned: %d}
devices:
  printers: [{name: printer-1, driver: zebra, address: "%s"}]
  cameras: [{name: camera-1, driver: dataman, address: "%s"}]
  plcs: [{name: plc-1, driver: modbus, address: "%s", options: {tags: {reject: {coil: 0}}}}]
users:
  - {id: op, name: Soak Operator, role: operator, password_hash: "%s"}
  - {id: sup, name: Soak Supervisor, role: supervisor, password_hash: "%s"}
`

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func TestSoakEdgeKill(t *testing.T) {
	kills := envInt("SERIALINE_SOAK_KILLS", 100)
	seed := uint64(envInt("SERIALINE_SOAK_SEED", int(time.Now().UnixNano()%1e9)))
	t.Logf("%d kills, seed %d (SERIALINE_SOAK_SEED=%d repeats the kill points)", kills, seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0x50a4))
	devices.Register()
	dir := t.TempDir()
	bin := filepath.Join(dir, "serialine-edge")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/serialine/serialine/cmd/serialine-edge").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// The simulators (the drivers' own, on real sockets); the camera is fed
	// by a tap that records every label the printer printed.
	log := zerolog.Nop()
	printer := zebrasim.New(zebrasim.Options{Name: "printer-1", LabelsPerSecond: 600}, log)
	pa, err := printer.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go printer.Serve(ctx)
	camera := camerasim.New(camerasim.Options{Name: "camera-1", Profile: "dataman", Seed: seed,
		Rates: camerasim.Rates{BadGrade: 0.02, NoRead: 0.01}}, log)
	ca, err := camera.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go camera.Serve(ctx)
	coil := uint16(0)
	plc := modbussim.New(modbussim.Options{Name: "plc-1", UnitID: 1, Tags: map[string]modbus.Tag{"reject": {Coil: &coil}}}, log)
	la, err := plc.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer plc.Stop()
	var mu sync.Mutex
	printed := map[string]int{} // serial -> times printed
	labels := 0
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case p := <-printer.Printed():
				if p.Symbol == "datamatrix" {
					if els, err := gs1.Parse(p.Data); err == nil {
						sn, _ := els.Get("21")
						mu.Lock()
						printed[sn]++
						labels++
						mu.Unlock()
					}
					camera.See(p.Data)
				}
			}
		}
	}()
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return labels
	}

	data := filepath.Join(dir, "edge")
	cfgPath := filepath.Join(dir, "line.yaml")
	// Planned well above what the kills will see: the batch never completes.
	opHash, _ := bcrypt.GenerateFromPassword([]byte("op-pw"), bcrypt.MinCost)
	supHash, _ := bcrypt.GenerateFromPassword([]byte("sup-pw"), bcrypt.MinCost)
	cfgText := fmt.Sprintf(soakLine, data, kills*100+2000, pa, ca, la, opHash, supHash)
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	ck := &checker{t: t, data: data, commissioned: map[string]bool{}, reserved: map[string]bool{}}
	start := time.Now()
	removed := 0
	for i := 1; i <= kills; i++ {
		logs := &edgeLog{}
		cmd := exec.Command(bin, "--config", cfgPath, "--log-json", "--log-level", "info")
		cmd.Stderr = logs
		before := count()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill points: a third at a random moment from exec (start-up,
		// recovery, the first labels), the rest after a random number of
		// new labels (mid-production, any phase of the unit cycle).
		what := ""
		if rng.IntN(3) == 0 {
			d := time.Duration(rng.IntN(400)) * time.Millisecond
			time.Sleep(d) // the kill point itself is a random delay, not a wait for readiness
			what = fmt.Sprintf("%s after exec", d)
		} else {
			n := 1 + rng.IntN(80)
			deadline := time.Now().Add(30 * time.Second)
			stalled := time.Now()
			for last := count(); count() < before+n; {
				if c := count(); c != last {
					last, stalled = c, time.Now()
				} else if time.Since(stalled) > 300*time.Millisecond && logs.API() != "" {
					// No labels: a batch held by an undelivered reject
					// waits for a supervisor.
					k, err := confirmRemovals(logs.API())
					if err != nil {
						t.Fatalf("kill %d: %v", i, err)
					}
					removed += k
					stalled = time.Now()
				}
				if time.Now().After(deadline) {
					cmd.Process.Kill()
					cmd.Wait()
					t.Fatalf("kill %d: only %d new labels in 30s, want %d; edge log:\n%s", i, count()-before, n, logs.String())
				}
				time.Sleep(time.Millisecond)
			}
			what = fmt.Sprintf("after %d new labels", n)
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		// Labels in the printer's buffer may still come out: let the
		// simulator settle before checking what was printed.
		settle := time.Now().Add(2 * time.Second)
		for last := count(); time.Now().Before(settle); {
			time.Sleep(50 * time.Millisecond)
			if c := count(); c == last {
				break
			} else {
				last = c
			}
		}
		mu.Lock()
		snapshot := make(map[string]int, len(printed))
		for k, v := range printed {
			snapshot[k] = v
		}
		mu.Unlock()
		if err := ck.check(snapshot); err != nil {
			t.Fatalf("kill %d (%s): %v\nedge log:\n%s", i, what, err, logs.String())
		}
	}
	t.Logf("%d kills in %s: %d labels printed, %d serials commissioned, %d records, chain verified after every kill; %d rejects not delivered at a kill, each confirmed removed",
		kills, time.Since(start).Round(time.Second), count(), len(ck.commissioned), ck.head.Seq, removed)
	if len(ck.commissioned) == 0 || ck.restartDecom == 0 {
		t.Fatalf("the harness did not exercise production and restarts: %d commissioned, %d decommissioned at restart", len(ck.commissioned), ck.restartDecom)
	}
}

// edgeLog keeps the edge's log (read while the process writes) and the API
// address it announces.
type edgeLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
	api string
}

func (l *edgeLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.api == "" {
		if _, rest, ok := bytes.Cut(p, []byte(`"api":"`)); ok {
			if a, _, ok := bytes.Cut(rest, []byte(`"`)); ok {
				l.api = string(a)
			}
		}
	}
	return l.buf.Write(p)
}

func (l *edgeLog) API() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.api
}

func (l *edgeLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// confirmRemovals plays the supervisor for a batch held by rejects that
// were not delivered: each unit is confirmed removed (e-signed) and the
// line resumes. It returns the number confirmed.
func confirmRemovals(api string) (int, error) {
	resp, err := http.Get(api + "/api/v1/status")
	if err != nil {
		return 0, nil // the edge is starting or stopping
	}
	var st line.Status
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil || len(st.RejectsNotDelivered) == 0 {
		return 0, err
	}
	post := func(path string, body any) error {
		raw, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", api+path, bytes.NewReader(raw))
		req.SetBasicAuth("op", "op-pw")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			msg, _ := io.ReadAll(resp.Body)
			return fmt.Errorf("%s: %s %s", path, resp.Status, msg)
		}
		return nil
	}
	sig := map[string]string{"user": "sup", "password": "sup-pw", "meaning": "the unit was found and removed", "reason": "soak"}
	for _, r := range st.RejectsNotDelivered {
		if err := post("/api/v1/rejects/"+r.ID+"/removed", map[string]any{"note": "soak harness: found after the kill", "signature": sig}); err != nil {
			return 0, err
		}
	}
	return len(st.RejectsNotDelivered), post("/api/v1/batch/resume", map[string]string{"reason": "removed units confirmed"})
}

// checker holds what earlier checks established.
type checker struct {
	t            *testing.T
	data         string
	head         record.Head // last verified record
	commissioned map[string]bool
	reserved     map[string]bool
	restartDecom int
}

func (c *checker) check(printed map[string]int) error {
	db, err := app.OpenStore(&config.Line{Edge: config.Edge{ID: "edge-soak", DataDir: c.data}}, store.Options{})
	if err != nil {
		return fmt.Errorf("store does not open after the kill: %w", err)
	}
	defer db.Close()
	pub := db.PublicKey()
	// Chain: what was durable before is unchanged, what is new continues it
	// without a gap and verifies.
	if c.head.Seq > 0 {
		old, err := db.Records(c.head.Seq, 1)
		if err != nil || len(old) != 1 || old[0].Hash() != c.head.Hash {
			return fmt.Errorf("record %d changed or vanished after the kill (%v)", c.head.Seq, err)
		}
	}
	recs, err := db.Records(c.head.Seq+1, 1<<30)
	if err != nil {
		return err
	}
	if h := db.Head(); h.Seq != c.head.Seq+uint64(len(recs)) {
		return fmt.Errorf("head seq %d, but %d records after seq %d: a gap", h.Seq, len(recs), c.head.Seq)
	}
	if len(recs) > 0 {
		if _, err := record.VerifyRun(pub, c.head, recs); err != nil {
			return fmt.Errorf("chain: %w", err)
		}
		last := recs[len(recs)-1]
		c.head = record.Head{Epoch: last.Epoch, Seq: last.Seq, Hash: last.Hash()}
	}
	for _, r := range recs {
		switch r.Kind {
		case record.KindSerialsReserved:
			var s record.Serials
			if err := json.Unmarshal(r.Body, &s); err != nil {
				return err
			}
			for _, sn := range s.Serials {
				if c.reserved[sn] {
					return fmt.Errorf("serial %s reserved twice (seq %d)", sn, r.Seq)
				}
				c.reserved[sn] = true
			}
		case record.KindUnitCommissioned:
			var u record.UnitCommissioned
			if err := json.Unmarshal(r.Body, &u); err != nil {
				return err
			}
			if c.commissioned[u.Serial] {
				return fmt.Errorf("serial %s commissioned twice (seq %d)", u.Serial, r.Seq)
			}
			if !c.reserved[u.Serial] {
				return fmt.Errorf("serial %s commissioned without being reserved for the batch (seq %d)", u.Serial, r.Seq)
			}
			c.commissioned[u.Serial] = true
		case record.KindUnitDecommissioned:
			var u record.UnitDecommissioned
			if err := json.Unmarshal(r.Body, &u); err != nil {
				return err
			}
			if u.Reason == line.ReasonRestart {
				c.restartDecom++
			}
		}
	}
	for sn, n := range printed {
		if strings.HasPrefix(sn, line.ChallengeSerialPrefix) {
			continue // challenge labels carry no pool serial
		}
		if n > 1 {
			return fmt.Errorf("serial %s printed %d times", sn, n)
		}
		if !c.commissioned[sn] {
			return fmt.Errorf("printed serial %s has no commissioning record", sn)
		}
	}
	rep, err := line.Audit(db)
	if err != nil {
		return err
	}
	if len(rep.Problems) > 0 {
		return fmt.Errorf("store audit:\n%s", strings.Join(rep.Problems, "\n"))
	}
	if rep.Units != len(c.commissioned) {
		return fmt.Errorf("%d units in the store, %d commissioning records", rep.Units, len(c.commissioned))
	}
	return nil
}
