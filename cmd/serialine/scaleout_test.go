package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	centralapp "github.com/serialine/serialine/central/app"
	"github.com/serialine/serialine/central/broker/brokertest"
	centralcfg "github.com/serialine/serialine/central/config"
	cstore "github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/edge/outbox"
	"github.com/serialine/serialine/edge/store"
	"github.com/serialine/serialine/sync/record"
	"github.com/serialine/serialine/sync/transport"
)

// Two central instances on one PostgreSQL share the load through an MQTT
// shared subscription on Mosquitto (which hands each envelope to one of
// them, round robin): every record of every edge is stored exactly once, in
// order, byte for byte (the stored chain ends in the edge's own head hash
// and verifies), and both instances did part of the work.
func TestScaleOutTwoCentrals(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Mosquitto, PostgreSQL and two centrals")
	}
	requireService(t, "SERIALINE_REQUIRE_PG", "127.0.0.1:5432", "PostgreSQL")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const edges = 3
	const txs = 300 // per edge, 1..4 records each, committed while both centrals run
	users := map[string]string{"central": "central-secret-1"}
	type edgeT struct {
		id  string
		db  *store.DB
		key ed25519.PrivateKey
	}
	var es []edgeT
	dir := t.TempDir()
	for i := 0; i < edges; i++ {
		id := fmt.Sprintf("scale-%d", i)
		_, key, _ := ed25519.GenerateKey(rand.Reader)
		db, err := store.Open(filepath.Join(dir, id+".db"), store.Options{EdgeID: id, Key: key, NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		es = append(es, edgeT{id, db, key})
		users[id] = "edge-secret-" + id
	}
	mq := brokertest.StartMosquitto(t, brokertest.MosquittoOptions{Users: users, ACL: brokertest.SerialineACL("central")})
	db := pgSchema(t)
	var centrals []*centralapp.App
	for i := 0; i < 2; i++ {
		cfg := centralcfg.Defaults()
		cfg.ID = fmt.Sprintf("c%d", i+1)
		cfg.HTTP, cfg.DataDir, cfg.DB = "127.0.0.1:0", filepath.Join(dir, cfg.ID), db
		cfg.MQTT.Broker, cfg.MQTT.Password, cfg.MQTT.Share = mq.URL(), users["central"], "central"
		for _, e := range es {
			cfg.Edges = append(cfg.Edges, centralcfg.Edge{ID: e.id, PublicKey: record.EncodePublicKey(e.key.Public().(ed25519.PublicKey))})
		}
		c, err := centralapp.New(ctx, &cfg, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		go c.Run(ctx)
		centrals = append(centrals, c)
	}
	for _, c := range centrals {
		wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
		if err := c.Client.WaitConnected(wctx); err != nil {
			t.Fatal(err)
		}
		wcancel()
	}
	var wg sync.WaitGroup
	for _, e := range es {
		cl, err := transport.New(transport.Options{Broker: mq.URL(), ClientID: "edge-" + e.id, Username: e.id, Password: users[e.id], Log: zerolog.Nop()})
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		cl.Connect()
		ob := outbox.New(outbox.Options{Store: e.db, Client: cl, Log: zerolog.Nop()})
		go ob.Run(ctx)
		wg.Add(1)
		go func(db *store.DB) {
			defer wg.Done()
			for i := 0; i < txs; i++ {
				db.Update(func(tx *store.Tx) error {
					for j := 0; j <= i%4; j++ {
						tx.Append(record.KindDeviceFault, record.DeviceFault{Device: "cam", Kind: "camera", Fault: fmt.Sprint(i, j)})
					}
					return nil
				})
				time.Sleep(time.Millisecond) // a line's pace, not a readiness wait
			}
		}(e.db)
	}
	wg.Wait()
	deadline := time.Now().Add(60 * time.Second)
	for _, e := range es {
		for e.db.Acked() < e.db.Head().Seq {
			if time.Now().After(deadline) {
				t.Fatalf("%s: acked %d of %d", e.id, e.db.Acked(), e.db.Head().Seq)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	st := centrals[0].Store
	for _, e := range es {
		head := e.db.Head()
		stored, ok, err := st.Head(ctx, e.id)
		if err != nil || !ok || stored != head {
			t.Fatalf("%s: central head %+v, edge head %+v (%v)", e.id, stored, head, err)
		}
		n, _ := st.CountRecords(ctx, e.id)
		if uint64(n) != head.Seq {
			t.Fatalf("%s: %d records stored, edge wrote %d (duplicates or loss)", e.id, n, head.Seq)
		}
	}
	reps, err := cstore.Verify(ctx, st, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reps {
		if r.Err != nil {
			t.Fatalf("%s epoch %d: %v", r.Edge, r.Epoch, r.Err)
		}
	}
	var total int64
	for i, c := range centrals {
		s := &c.Ingest.Stats
		t.Logf("central %d: envelopes %d stored %d duplicates %d buffered %d conflicts %d replays %d", i+1,
			s.Envelopes.Load(), s.Stored.Load(), s.Duplicates.Load(), s.Buffered.Load(), s.Conflicts.Load(), s.Replays.Load())
		if s.Stored.Load() == 0 {
			t.Errorf("central %d stored nothing: the load was not shared", i+1)
		}
		if s.Quarantined.Load() != 0 {
			t.Errorf("central %d quarantined %d records", i+1, s.Quarantined.Load())
		}
		total += s.Stored.Load()
	}
	var want uint64
	for _, e := range es {
		want += e.db.Head().Seq
	}
	if uint64(total) != want {
		t.Fatalf("the two centrals stored %d records, the edges wrote %d", total, want)
	}
}
