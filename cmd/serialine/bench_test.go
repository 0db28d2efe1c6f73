package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	centralapp "github.com/serialine/serialine/central/app"
	centralcfg "github.com/serialine/serialine/central/config"
	"github.com/serialine/serialine/edge/outbox"
	"github.com/serialine/serialine/edge/store"
	"github.com/serialine/serialine/sync/record"
	"github.com/serialine/serialine/sync/transport"
)

// BenchmarkDrain measures a backlog drain: b.N records already in the edge
// outbox go edge -> MQTT (central's embedded broker) -> ingest (verify
// chain and signatures) -> SQLite, until central's ack covers them all.
func BenchmarkDrain(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) { benchDrain(b, "") })
}

func benchDrain(b *testing.B, db string) {
	dir := b.TempDir()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	edgeID := fmt.Sprintf("bench-%d", time.Now().UnixNano()%1e6)
	es, err := store.Open(filepath.Join(dir, "edge.db"), store.Options{EdgeID: edgeID, Key: key})
	if err != nil {
		b.Fatal(err)
	}
	defer es.Close()
	body := record.UnitVerified{Batch: "L1", GTIN: "09506000134352", Serial: "123456789012", Camera: "camera-1", Grade: 4, Letter: "A", Pass: true}
	for n := 0; n < b.N; n += 256 {
		err := es.Update(func(tx *store.Tx) error {
			for i := 0; i < 256 && n+i < b.N; i++ {
				if _, err := tx.Append(record.KindUnitVerified, body); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ccfg := centralcfg.Defaults()
	ccfg.HTTP, ccfg.DataDir, ccfg.MQTT.Listen, ccfg.DB = "127.0.0.1:0", filepath.Join(dir, "central"), "127.0.0.1:0", db
	ccfg.Edges = []centralcfg.Edge{{ID: edgeID, PublicKey: record.EncodePublicKey(es.PublicKey()), MQTTPassword: "bench-secret"}}
	c, err := centralapp.New(ctx, &ccfg, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	go c.Run(ctx)
	cl, err := transport.New(transport.Options{Broker: c.BrokerURL(), ClientID: "edge-" + edgeID, Username: edgeID, Password: "bench-secret", Log: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	cl.Connect()
	if err := cl.WaitConnected(ctx); err != nil {
		b.Fatal(err)
	}
	ob := outbox.New(outbox.Options{Store: es, Client: cl, Log: zerolog.Nop()})
	b.ResetTimer()
	go ob.Run(ctx)
	target := es.Head().Seq
	for es.Acked() < target {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	st := &c.Ingest.Stats
	b.Logf("envelopes %d stored %d duplicates %d replays %d conflicts %d", st.Envelopes.Load(), st.Stored.Load(), st.Duplicates.Load(), st.Replays.Load(), st.Conflicts.Load())
}
