package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestShippedCentralConfigs(t *testing.T) {
	files, _ := filepath.Glob("../../configs/*.yaml")
	n := 0
	for _, f := range files {
		raw, _ := os.ReadFile(f)
		if strings.Contains("\n"+string(raw), "\nline:") {
			continue
		}
		n++
		if _, err := Load(f); err != nil {
			t.Errorf("%v", err)
		}
	}
	if n == 0 {
		t.Fatal("no central config in configs/")
	}
}

func TestStrictErrors(t *testing.T) {
	cases := map[string]string{
		"http: 127.0.0.1:1\nmqtt: {listn: x}\n":                             "x.yaml:2: field listn not found",
		"http: nope\n":                                                      "http: \"nope\" is not host:port",
		"edges: [{id: \"a b\", public_key: xx}]\n":                          "edges[0].id",
		"mqtt: {broker: \"127.0.0.1:1883\"}\n":                              "mqtt.broker",
		"edges: [{id: e1, public_key: AAAA}, {id: e1, public_key: AAAA}]\n": "enrolled twice",
		"edges: [{id: central.c1, public_key: AAAA}]\n":                     "reserved for central's journals",
	}
	for in, want := range cases {
		_, err := Parse("x.yaml", []byte(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
}
