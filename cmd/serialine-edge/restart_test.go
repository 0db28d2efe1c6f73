package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	centralapp "github.com/serialine/serialine/central/app"
	centralcfg "github.com/serialine/serialine/central/config"
	"golang.org/x/crypto/bcrypt"

	"github.com/serialine/serialine/cmd/internal/linesim"
	"github.com/serialine/serialine/edge/config"
	"github.com/serialine/serialine/edge/devices"
	"github.com/serialine/serialine/edge/store"
	"github.com/serialine/serialine/sync/gs1"
	"github.com/serialine/serialine/sync/identity"
	"github.com/serialine/serialine/sync/record"
)

const lineTemplate = `
line: {id: line-r}
edge:
  id: %s
  data_dir: %s
  http: 127.0.0.1:0
  verdict_timeout: 2s
  reject_deadline: 5s # stale reads after a kill reject units; a loaded test machine must not miss the deadline
central: {broker: "%s", username: %s, password: %s}
company: {gs1_prefix: "9506000", sscc_extension: 3, sscc_range: {first: 1, last: 99999}}
products:
  - gtin: "09506000134352"
    name: Tablets
    packaging: {units_per_case: 5, cases_per_pallet: 4}
batch: {gtin: "09506000134352", lot: RESTART1, expiry: "281130", planned: 100000}
devices:
  printers: [{name: printer-1, driver: zebra, address: "%s"}]
  cameras: [{name: camera-1, driver: dataman, address: "%s"}]
  plcs:
    - name: plc-1
      driver: modbus
      address: "%s"
      options: {tags: {reject: {coil: 0}}}
users:
  - {id: sup, name: Sam Supervisor, role: supervisor, password_hash: "%s"}
`

func buildEdge(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "serialine-edge")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// Kill the edge with SIGKILL in the middle of a batch, twice, and start it
// again: no serial is ever printed twice, the record log stays gap-free and
// verifies, and central ends up with every record.
func TestKillEdgeMidBatch(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the edge binary")
	}
	devices.Register()
	bin := buildEdge(t)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// Simulated devices, and a tap on every label the printer printed.
	simCfg := &config.Line{Devices: config.Devices{
		Printers: []config.Device{{Name: "printer-1", Driver: "zebra"}},
		PLCs:     []config.Device{{Name: "plc-1", Driver: "modbus"}},
	}}
	sims, err := linesim.Start(ctx, simCfg, linesim.Options{Rate: 200, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer sims.Close()
	camCfg := &config.Line{Devices: config.Devices{Cameras: []config.Device{{Name: "camera-1", Driver: "dataman"}}}}
	cams, err := linesim.Start(ctx, camCfg, linesim.Options{Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cams.Close()
	var mu sync.Mutex
	printed := map[string]int{}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case p := <-sims.Printers["printer-1"].Printed():
				mu.Lock()
				printed[p.Data]++
				mu.Unlock()
				cams.Cameras["camera-1"].See(p.Data)
			}
		}
	}()

	edgeID := "edge-restart"
	hash, err := bcrypt.GenerateFromPassword([]byte("sup-pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	supHash := string(hash)
	cfgText := func(broker string) string {
		return fmt.Sprintf(lineTemplate, edgeID, filepath.Join(dir, "edge"), broker, edgeID, "edge-secret-1",
			sims.Addr("printer-1"), cams.Addr("camera-1"), sims.Addr("plc-1"), supHash)
	}
	cfgPath := filepath.Join(dir, "line.yaml")
	// The key first (the edge generates it), then central with it enrolled.
	if err := os.WriteFile(cfgPath, []byte(cfgText("tcp://127.0.0.1:1")), 0o600); err != nil {
		t.Fatal(err)
	}
	keyOut, err := exec.Command(bin, "key", "--config", cfgPath).Output()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := record.ParsePublicKey(string(keyOut))
	if err != nil {
		t.Fatal(err)
	}
	ccfg := centralcfg.Defaults()
	ccfg.HTTP, ccfg.DataDir, ccfg.MQTT.Listen = "127.0.0.1:0", filepath.Join(dir, "central"), "127.0.0.1:0"
	ccfg.Edges = []centralcfg.Edge{{ID: edgeID, PublicKey: record.EncodePublicKey(pub), MQTTPassword: "edge-secret-1"}}
	central, err := centralapp.New(ctx, &ccfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer central.Close()
	go central.Run(ctx)
	if err := os.WriteFile(cfgPath, []byte(cfgText(central.BrokerURL())), 0o600); err != nil {
		t.Fatal(err)
	}

	good := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(printed)
	}
	// waitPrinted plays the supervisor too: units that were in flight at a
	// kill hold the line until each is confirmed found and removed.
	removed := 0
	waitPrinted := func(p *edgeProc, n int) {
		deadline := time.Now().Add(60 * time.Second)
		for good() < n {
			if time.Now().After(deadline) {
				t.Fatalf("only %d labels printed, want %d; status %+v", good(), n, p.status(t))
			}
			if st := p.status(t); st.BatchState == "held" && len(st.RejectsNotDelivered) > 0 {
				for _, r := range st.RejectsNotDelivered {
					sig := map[string]string{"user": "sup", "password": "sup-pw", "meaning": "the unit was found and removed", "reason": "restart test"}
					if code, out := p.post(t, "/api/v1/rejects/"+r.ID+"/removed", map[string]any{"note": "found after the kill", "signature": sig}); code != 200 {
						t.Fatalf("confirm removal of %s: %d %v", r.ID, code, out)
					}
					removed++
				}
				if code, out := p.post(t, "/api/v1/batch/resume", map[string]string{"reason": "units in flight at the kill removed"}); code != 200 {
					t.Fatalf("resume: %d %v", code, out)
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for i, at := range []int{60, 180} {
		p, _ := startEdgeProc(t, bin, cfgPath, 30*time.Second)
		waitPrinted(p, at)
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		p.cmd.Wait()
		t.Logf("kill %d after %d labels", i+1, good())
	}
	// Last run: let it work, then stop it gracefully once central holds
	// everything it wrote.
	p, _ := startEdgeProc(t, bin, cfgPath, 30*time.Second)
	waitPrinted(p, 260)
	key, err := identity.Load(filepath.Join(dir, "edge", "edge.key"))
	if err != nil {
		t.Fatal(err)
	}
	p.stop()
	// Once stopped, central must still get everything: start once more
	// and wait for the last acknowledgement... the store tells us.
	db, err := store.Open(filepath.Join(dir, "edge", "edge.db"), store.Options{EdgeID: edgeID, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	head := db.Head()
	recs, err := db.Records(1, 1<<30)
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	// Records not yet acknowledged are still in the log; acknowledged ones
	// are pruned: together with central's they must make one gap-free,
	// verifying chain.
	sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
	defer scancel()
	stored, err := central.Store.Records(sctx, edgeID, head.Epoch, 1, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	chain := make([]record.Record, 0, head.Seq)
	for _, s := range stored {
		chain = append(chain, s.Record)
	}
	for _, r := range recs {
		if len(chain) == 0 || r.Seq > chain[len(chain)-1].Seq {
			chain = append(chain, r)
		}
	}
	if uint64(len(chain)) != head.Seq || chain[0].Seq != 1 {
		t.Fatalf("edge head %d, central %d + edge log %d do not make a gap-free chain", head.Seq, len(stored), len(recs))
	}
	if n, err := record.VerifyRun(key.Public().(ed25519.PublicKey), record.Head{}, chain); err != nil || uint64(n) != head.Seq {
		t.Fatalf("chain: %d verified, %v", n, err)
	}
	// No serial printed twice, and every printed serial is commissioned.
	commissioned := map[string]bool{}
	restartDecom := 0
	for _, r := range chain {
		switch r.Kind {
		case record.KindUnitCommissioned:
			var u record.UnitCommissioned
			json.Unmarshal(r.Body, &u)
			if commissioned[u.Serial] {
				t.Fatalf("serial %s commissioned twice", u.Serial)
			}
			commissioned[u.Serial] = true
		case record.KindUnitDecommissioned:
			var u record.UnitDecommissioned
			json.Unmarshal(r.Body, &u)
			if u.Reason == "unknown_after_restart" {
				restartDecom++
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for data, n := range printed {
		if n > 1 {
			t.Fatalf("label %q printed %d times", data, n)
		}
		els, err := gs1.Parse(data)
		if err != nil {
			t.Fatal(err)
		}
		serial, _ := els.Get("21")
		if !commissioned[serial] {
			t.Fatalf("printed serial %s has no commissioning record", serial)
		}
	}
	if restartDecom == 0 {
		t.Fatal("no unit was in flight at a kill: the test did not test the restart")
	}
	if removed < restartDecom { // plus any reject pulse on its way at a kill
		t.Fatalf("%d units decommissioned after kills, only %d confirmed removed", restartDecom, removed)
	}
	t.Logf("%d labels printed, %d records, %d units decommissioned after kills, each confirmed removed", len(printed), head.Seq, restartDecom)
}
