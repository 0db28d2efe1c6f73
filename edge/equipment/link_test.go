package equipment

import (
	"testing"
	"time"
)

func TestLinkMonitor(t *testing.T) {
	now := t0
	connected := false
	var head, acked uint64
	m := NewLinkMonitor(LinkOptions{Connected: func() bool { return connected }, Sync: func() (uint64, uint64) { return head, acked }, Now: func() time.Time { return now }})
	type step struct {
		advance   time.Duration
		connected bool
		head, ack uint64
		known     bool
		fault     string
	}
	for i, s := range []step{
		{0, false, 0, 0, false, ""},                          // connecting at start: unknown
		{5 * time.Second, false, 0, 0, false, ""},            // still within grace
		{6 * time.Second, false, 0, 0, true, "disconnected"}, // 11 s without a connection
		{time.Second, true, 0, 0, true, ""},                  // connected
		{3 * time.Second, false, 0, 0, true, ""},             // a reconnect within grace is not downtime
		{time.Second, true, 10, 0, true, ""},                 // records pending
		{58 * time.Second, true, 10, 0, true, ""},            // 59 s since nothing was pending
		{time.Second, true, 10, 0, true, "no_ack"},           // 60 s
		{time.Second, true, 12, 10, true, ""},                // ack moved
		{2 * time.Minute, true, 12, 12, true, ""},            // nothing pending: never no_ack
	} {
		now = now.Add(s.advance)
		connected, head, acked = s.connected, s.head, s.ack
		h, ok := m.Poll()
		if ok != s.known || ok && h.Fault != s.fault {
			t.Fatalf("step %d: %+v known=%v, want known=%v fault %q", i, h, ok, s.known, s.fault)
		}
		if ok && s.fault == "" && !h.OK() {
			t.Fatalf("step %d: not ok: %+v", i, h)
		}
	}
}
