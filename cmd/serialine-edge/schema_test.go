package main

import (
	"bytes"
	"os"
	"testing"

	"github.com/serialine/serialine/edge/config"
	"github.com/serialine/serialine/edge/devices"
)

// The line configs in configs/ point editors at configs/line.schema.json
// (yaml-language-server): it must be the schema this build prints.
func TestShippedSchemaIsCurrent(t *testing.T) {
	devices.Register()
	want, err := config.Schema()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../../configs/line.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bytes.TrimSpace(got), bytes.TrimSpace(want)) {
		t.Fatal("configs/line.schema.json is stale: run `go run ./cmd/serialine config schema > configs/line.schema.json`")
	}
}
