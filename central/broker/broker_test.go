package broker

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/serialine/serialine/sync/transport"
)

func TestEdgeACL(t *testing.T) {
	cases := []struct {
		edge, topic string
		write, ok   bool
	}{
		{"e1", "serialine/v1/edge/e1/records", true, true},
		{"e1", "serialine/v1/edge/e1/status", true, true},
		{"e1", "serialine/v1/edge/e1/ack", false, true},
		{"e1", "serialine/v1/edge/e1/replay", false, true},
		{"e1", "serialine/v1/edge/e1/ack", true, false},     // cannot forge its own acks
		{"e1", "serialine/v1/edge/e2/records", true, false}, // another edge's topic
		{"e1", "serialine/v1/edge/e2/ack", false, false},
		{"e1", "serialine/v1/edge/+/records", false, false},
		{"e1", "#", false, false},
		{"e1", "$SYS/broker/clients", false, false},
	}
	for _, c := range cases {
		if got := EdgeMayAccess(c.edge, c.topic, c.write); got != c.ok {
			t.Errorf("%s write=%v %s: %v", c.edge, c.write, c.topic, got)
		}
	}
}

func TestLogins(t *testing.T) {
	b, err := New(Options{Listen: "127.0.0.1:0", CentralUser: "central", CentralPassword: "central-secret", Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go b.Run(ctx)
	b.SetEdge("e1", "edge-secret")
	try := func(user, pw string) bool {
		c, err := transport.New(transport.Options{Broker: b.URL(), ClientID: "t-" + user + pw, Username: user, Password: pw, Log: zerolog.Nop()})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Connect()
		wctx, wcancel := context.WithTimeout(ctx, 1500*time.Millisecond)
		defer wcancel()
		return c.WaitConnected(wctx) == nil
	}
	if !try("e1", "edge-secret") || !try("central", "central-secret") {
		t.Fatal("valid login refused")
	}
	if try("e1", "wrong") || try("nobody", "x") || try("", "") {
		t.Fatal("invalid login accepted")
	}
}
