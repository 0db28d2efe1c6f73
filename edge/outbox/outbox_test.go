package outbox

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/rs/zerolog"

	"github.com/serialine/serialine/edge/store"
	"github.com/serialine/serialine/sync/record"
	"github.com/serialine/serialine/sync/transport"
	"github.com/serialine/serialine/sync/wire"
)

// broker starts an open in-memory MQTT broker on a free port.
func broker(t *testing.T) string {
	t.Helper()
	srv := mqtt.New(&mqtt.Options{InlineClient: false})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "t", Address: "127.0.0.1:0"})
	if err := srv.AddListener(tcp); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return "tcp://" + tcp.Address()
}

func client(t *testing.T, url, id string) *transport.Client {
	t.Helper()
	c, err := transport.New(transport.Options{Broker: url, ClientID: id, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	c.Connect()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	return c
}

func edgeStore(t *testing.T, id string) *store.DB {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "edge.db"), store.Options{EdgeID: id, Key: ed25519.NewKeyFromSeed(make([]byte, 32)), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func commit(t *testing.T, db *store.DB, n int) {
	t.Helper()
	err := db.Update(func(tx *store.Tx) error {
		for i := 0; i < n; i++ {
			if _, err := tx.Append(record.KindDeviceFault, record.DeviceFault{Device: "cam", Kind: "camera", Fault: fmt.Sprint(i)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// central is a test double for central: it records the envelopes it
// receives (first and last seq) and acknowledges when told to.
type central struct {
	t    *testing.T
	c    *transport.Client
	edge string
	mu   sync.Mutex
	envs [][2]uint64
	stat int
}

func newCentral(t *testing.T, url, edge string) *central {
	c := &central{t: t, c: client(t, url, "central-"+edge), edge: edge}
	c.c.Subscribe(wire.Topic(edge, "records"), 1, func(_ string, p []byte) {
		recs, err := wire.DecodeEnvelope(p)
		if err != nil {
			t.Error(err)
			return
		}
		c.mu.Lock()
		c.envs = append(c.envs, [2]uint64{recs[0].Seq, recs[len(recs)-1].Seq})
		c.mu.Unlock()
	})
	c.c.Subscribe(wire.Topic(edge, "status"), 0, func(string, []byte) {
		c.mu.Lock()
		c.stat++
		c.mu.Unlock()
	})
	return c
}

func (c *central) has(seq uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.envs {
		if e[0] <= seq && seq <= e[1] {
			return true
		}
	}
	return false
}

func (c *central) maxSeq() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := uint64(0)
	for _, e := range c.envs {
		m = max(m, e[1])
	}
	return m
}

func (c *central) ack(db *store.DB, seq uint64) {
	recs, err := db.Records(seq, 1)
	if err != nil || len(recs) != 1 {
		c.t.Fatalf("ack %d: %v", seq, err)
	}
	raw, _ := json.Marshal(wire.Ack{Epoch: recs[0].Epoch, Seq: seq, Hash: recs[0].Hash().String()})
	if err := c.c.Publish(context.Background(), wire.Topic(c.edge, "ack"), 1, true, raw); err != nil {
		c.t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// After an outage, new records do not wait behind the backlog: they are
// sent at once even while the backlog is stopped by the window, and the
// backlog merges with them once it reaches them. Central's ack prunes.
func TestLiveRecordsOvertakeBacklog(t *testing.T) {
	url := broker(t)
	db := edgeStore(t, "edge-live")
	for i := 0; i < 50; i++ {
		commit(t, db, 100) // 5000 records of backlog, checkpoints every 100
	}
	c := newCentral(t, url, "edge-live")
	ob := New(Options{Store: db, Client: client(t, url, "edge-live"), Log: zerolog.Nop(), Envelope: 100, Window: 1000, ResendAfter: time.Hour,
		Status: func() wire.Status { return wire.Status{Edge: "edge-live"} }})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- ob.Run(ctx) }()
	waitFor(t, "the window's worth of backlog", func() bool { return c.maxSeq() >= 1000 })
	if c.has(1001) {
		t.Fatal("backlog sent beyond the window without an ack")
	}
	commit(t, db, 3) // live: seq 5001..5003
	waitFor(t, "live records while the backlog waits", func() bool { return c.has(5003) })
	if c.has(1001) {
		t.Fatal("backlog moved without an ack")
	}
	// Central acknowledges; the backlog moves on and merges with the live
	// cursor, and later records go out in order.
	c.ack(db, 1000)
	waitFor(t, "ack pruned the log", func() bool { return db.Acked() == 1000 })
	for ack := uint64(2000); ack <= 5000; ack += 1000 {
		waitFor(t, fmt.Sprintf("backlog to %d", ack), func() bool { return c.has(ack) })
		c.ack(db, ack)
	}
	waitFor(t, "the rest of the backlog", func() bool { return c.has(5000) })
	c.ack(db, 5003)
	waitFor(t, "all acknowledged", func() bool { return db.Acked() == 5003 })
	commit(t, db, 2)
	waitFor(t, "records after the merge", func() bool { return c.has(5005) })
	// The backlog never re-sent what the live cursor had sent, and each
	// envelope ends at a checkpoint.
	c.mu.Lock()
	for _, e := range c.envs {
		if e[0] <= 5003 && e[1] > 5000 && e[0] != 5001 {
			t.Errorf("envelope %v straddles the live cursor", e)
		}
	}
	stat := c.stat
	c.mu.Unlock()
	if stat == 0 {
		waitFor(t, "a status message", func() bool { c.mu.Lock(); defer c.mu.Unlock(); return c.stat > 0 })
	}
	cancel()
	<-done
}

// A replay request rewinds the backlog to the requested seq; an ack
// beyond it does not.
func TestReplayRequest(t *testing.T) {
	url := broker(t)
	db := edgeStore(t, "edge-rp")
	for i := 0; i < 5; i++ {
		commit(t, db, 10)
	}
	c := newCentral(t, url, "edge-rp")
	ob := New(Options{Store: db, Client: client(t, url, "edge-rp"), Log: zerolog.Nop(), Envelope: 10, ResendAfter: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go ob.Run(ctx)
	waitFor(t, "everything sent", func() bool { return c.has(50) })
	c.ack(db, 20)
	waitFor(t, "ack", func() bool { return db.Acked() == 20 })
	c.mu.Lock()
	c.envs = nil
	c.mu.Unlock()
	raw, _ := json.Marshal(wire.Replay{Epoch: db.Head().Epoch, From: 31, To: 40, Reason: "gap"})
	c.c.Publish(ctx, wire.Topic("edge-rp", "replay"), 1, false, raw)
	waitFor(t, "replayed records", func() bool { return c.has(31) && c.has(50) })
	if c.has(21) {
		t.Fatal("replayed from before the requested seq")
	}
}

// The limits: unacknowledged bytes or age past the limit hold the line;
// an ack releases it.
func TestLimits(t *testing.T) {
	db := edgeStore(t, "edge-lim")
	now := time.Now()
	ob := New(Options{Store: db, Log: zerolog.Nop(), MaxBytes: 20 << 10, MaxAge: time.Hour, Now: func() time.Time { return now }})
	ob.Account()
	if hold, _ := ob.Backpressure(); hold {
		t.Fatal("empty outbox holds")
	}
	commit(t, db, 50)
	ob.Account()
	n, oldest := ob.Unacknowledged()
	if hold, _ := ob.Backpressure(); hold || n < 50*100 || n > 20<<10 || oldest.IsZero() {
		t.Fatalf("50 records: hold %v, %d bytes, oldest %s", hold, n, oldest)
	}
	for i := 0; i < 5; i++ {
		commit(t, db, 50)
	}
	ob.Account()
	hold, why := ob.Backpressure()
	if !hold || why == "" {
		t.Fatalf("over the byte limit: %v %q", hold, why)
	}
	recs, _ := db.Records(db.Head().Seq, 1)
	if err := db.Ack(recs[0].Epoch, recs[0].Seq, recs[0].Hash()); err != nil {
		t.Fatal(err)
	}
	ob.Account()
	if hold, _ := ob.Backpressure(); hold {
		t.Fatal("still held after central acknowledged everything")
	}
	if n, _ := ob.Unacknowledged(); n != 0 {
		t.Fatalf("%d bytes after the ack", n)
	}
	commit(t, db, 1)
	now = now.Add(2 * time.Hour)
	ob.Account()
	if hold, why := ob.Backpressure(); !hold || why == "" {
		t.Fatalf("over the age limit: %v %q", hold, why)
	}
}
