package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	centralapp "github.com/serialine/serialine/central/app"
	"github.com/serialine/serialine/central/broker"
	"github.com/serialine/serialine/central/broker/brokertest"
	centralcfg "github.com/serialine/serialine/central/config"
	"github.com/serialine/serialine/central/ingest"
	cstore "github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/central/store/sqlite"
	"github.com/serialine/serialine/edge/outbox"
	"github.com/serialine/serialine/edge/store"
	"github.com/serialine/serialine/sync/record"
	"github.com/serialine/serialine/sync/transport"
	"github.com/serialine/serialine/sync/wire"
)

// BenchmarkDrain measures a backlog drain: b.N records already in the edge
// outbox go edge -> MQTT (central's embedded broker, or a private
// Mosquitto) -> ingest (verify chain and signatures) -> SQLite, until
// central's ack covers them all.
func BenchmarkDrain(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) { benchDrain(b, "", false) })
	b.Run("sqlite-mosquitto", func(b *testing.B) { benchDrain(b, "", true) })
}

func benchDrain(b *testing.B, db string, mosquitto bool) {
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
	if mosquitto {
		mq := brokertest.StartMosquitto(b, brokertest.MosquittoOptions{
			Users: map[string]string{"central": "central-secret", edgeID: "bench-secret"}, ACL: brokertest.SerialineACL("central")})
		ccfg.MQTT.Broker, ccfg.MQTT.Password = mq.URL(), "central-secret"
	}
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

// drainBacklog fills an edge store with n unit.verified records in group
// commits of 256 and returns it.
func drainBacklog(b *testing.B, n int) (*store.DB, string) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	edgeID := fmt.Sprintf("bench-%d", time.Now().UnixNano()%1e6)
	es, err := store.Open(filepath.Join(b.TempDir(), "edge.db"), store.Options{EdgeID: edgeID, Key: key})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { es.Close() })
	body := record.UnitVerified{Batch: "L1", GTIN: "09506000134352", Serial: "123456789012", Camera: "camera-1", Grade: 4, Letter: "A", Pass: true}
	for i := 0; i < n; i += 256 {
		err := es.Update(func(tx *store.Tx) error {
			for j := 0; j < 256 && i+j < n; j++ {
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
	return es, edgeID
}

// BenchmarkDrainRawMosquitto is the raw limit for BenchmarkDrain: the same
// records, byte for byte (canonical bytes and signature), each published as
// one QoS 1 message to a private Mosquitto (set_tcp_nodelay,
// max_queued_messages 0) and received QoS 1 by one subscriber, pipelined,
// with no store, verification or envelope on either side: the rate at
// which Mosquitto carries QoS 1 messages of the same total bytes.
func BenchmarkDrainRawMosquitto(b *testing.B) {
	es, edgeID := drainBacklog(b, b.N)
	raws, err := es.ReadLog(1, b.N, 1<<40)
	if err != nil || len(raws) != b.N {
		b.Fatal(err)
	}
	envs := make([][]byte, len(raws))
	for i, r := range raws {
		envs[i] = append(append([]byte(nil), r.Canonical...), r.Sig...)
	}
	mq := brokertest.StartMosquitto(b, brokertest.MosquittoOptions{})
	connect := func(id string) *transport.Client {
		c, err := transport.New(transport.Options{Broker: mq.URL(), ClientID: id, Log: zerolog.Nop()})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(c.Close)
		c.Connect()
		if err := c.WaitConnected(context.Background()); err != nil {
			b.Fatal(err)
		}
		return c
	}
	sub, pub := connect("raw-sub"), connect("raw-pub")
	got := make(chan struct{}, len(envs))
	topic := wire.Topic(edgeID, "records")
	if err := sub.Subscribe(topic, 1, func(string, []byte) { got <- struct{}{} }); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for _, env := range envs {
		pub.PublishAsync(topic, 1, false, env)
	}
	for range envs {
		<-got
	}
	b.StopTimer()
	b.ReportMetric(float64(len(envs))/b.Elapsed().Seconds(), "records/s")
}

// timedStore notes when central's store committed each record.
type timedStore struct {
	cstore.Store
	mu        sync.Mutex
	committed map[uint64]time.Time
}

func (s *timedStore) Append(ctx context.Context, edge string, after record.Head, recs []cstore.Stored) error {
	err := s.Store.Append(ctx, edge, after, recs)
	if err == nil {
		now := time.Now()
		s.mu.Lock()
		for i := range recs {
			s.committed[recs[i].Record.Seq] = now
		}
		s.mu.Unlock()
	}
	return err
}

// BenchmarkLatency measures end-to-end latency at line rate: a unit every
// 1/7 s (400 units/min), each unit two commits at the edge (commissioned,
// then verified with its aggregation records: 1 and 3 records), from the
// edge's commit to central's store commit (embedded broker, SQLite,
// verifying ingest). It reports the median and p99 in milliseconds over
// 200 commits; b.N is not used.
func BenchmarkLatency(b *testing.B) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	edgeID := fmt.Sprintf("lat-%d", time.Now().UnixNano()%1e6)
	dir := b.TempDir()
	es, err := store.Open(filepath.Join(dir, "edge.db"), store.Options{EdgeID: edgeID, Key: key})
	if err != nil {
		b.Fatal(err)
	}
	defer es.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sq, err := sqlite.Open(ctx, filepath.Join(dir, "central.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer sq.Close()
	st := &timedStore{Store: sq, committed: map[uint64]time.Time{}}
	if err := st.EnrollEdge(ctx, cstore.Edge{ID: edgeID, PublicKey: es.PublicKey(), EnrolledBy: "bench"}); err != nil {
		b.Fatal(err)
	}
	br, err := broker.New(broker.Options{Listen: "127.0.0.1:0", CentralUser: "central", CentralPassword: "central-secret", Log: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	br.SetEdge(edgeID, "edge-secret")
	go br.Run(ctx)
	connect := func(id, user, pw string) *transport.Client {
		c, err := transport.New(transport.Options{Broker: br.URL(), ClientID: id, Username: user, Password: pw, Log: zerolog.Nop()})
		if err != nil {
			b.Fatal(err)
		}
		c.Connect()
		if err := c.WaitConnected(ctx); err != nil {
			b.Fatal(err)
		}
		return c
	}
	cc := connect("central", "central", "central-secret")
	defer cc.Close()
	in := ingest.New(ingest.Options{Store: st, Client: cc, Log: zerolog.Nop()})
	go in.Run(ctx)
	ec := connect("edge", edgeID, "edge-secret")
	defer ec.Close()
	ob := outbox.New(outbox.Options{Store: es, Client: ec, Log: zerolog.Nop()})
	go ob.Run(ctx)
	const commits = 200
	made := make(map[uint64]time.Time, commits)
	tick := time.NewTicker(time.Second / 14) // 7 units/s, two commits each
	defer tick.Stop()
	b.ResetTimer()
	for i := 0; i < commits; i++ {
		<-tick.C
		n := 1 + 2*(i%2) // commissioned: 1 record; verified + packed + case read: 3
		err := es.Update(func(tx *store.Tx) error {
			for j := 0; j < n; j++ {
				if _, err := tx.Append(record.KindUnitVerified, record.UnitVerified{Batch: "L1", GTIN: "09506000134352", Serial: fmt.Sprintf("%012d", i), Grade: 4, Pass: true}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		made[es.Head().Seq] = time.Now()
	}
	for es.Acked() < es.Head().Seq {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	var lat []float64
	st.mu.Lock()
	for seq, t0 := range made {
		t1, ok := st.committed[seq]
		if !ok {
			b.Fatalf("seq %d never committed at central", seq)
		}
		lat = append(lat, float64(t1.Sub(t0).Microseconds())/1000)
	}
	st.mu.Unlock()
	sort.Float64s(lat)
	b.ReportMetric(lat[len(lat)/2], "p50-ms")
	b.ReportMetric(lat[len(lat)*99/100], "p99-ms")
	b.ReportMetric(lat[len(lat)-1], "max-ms")
}
