package app

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/serialine/serialine/central/config"
)

// A central that cannot start (here: its HTTP address is taken) returns an
// error naming the address; it never panics on its way out.
func TestNewFailsCleanly(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := t.TempDir()
	cfg := config.Defaults()
	cfg.DataDir = dir
	cfg.HTTP = ln.Addr().String()
	cfg.MQTT.Listen = "127.0.0.1:0"
	a, err := New(context.Background(), &cfg, zerolog.Nop())
	if err == nil || a != nil || !strings.Contains(err.Error(), ln.Addr().String()) {
		t.Fatalf("New with a taken HTTP address: %v, %v", a, err)
	}
	// Nothing it created stands in the way of the next start.
	cfg.HTTP = "127.0.0.1:0"
	b, err := New(context.Background(), &cfg, zerolog.Nop())
	if err != nil {
		t.Fatalf("second start on the same data dir: %v", err)
	}
	b.Close()
}
