package opcua_test

import (
	"strings"
	"testing"
	"time"

	"github.com/gopcua/opcua/ua"

	"github.com/serialine/serialine/drivers/opcua"
)

func TestParseNodeRef(t *testing.T) {
	ns := []string{"http://opcfoundation.org/UA/", "urn:server", "urn:plc:line1"}
	good := []struct {
		in   string
		want *ua.NodeID
	}{
		{"i=2259", ua.NewNumericNodeID(0, 2259)},
		{"ns=2;i=1001", ua.NewNumericNodeID(2, 1001)},
		{"ns=3;s=Line1.Reject", ua.NewStringNodeID(3, "Line1.Reject")},
		{"nsu=urn:plc:line1;s=Line1.Reject", ua.NewStringNodeID(2, "Line1.Reject")},
		{"ns=1;s=a;b=c", ua.NewStringNodeID(1, "a;b=c")},                               // the first ; ends the namespace only
		{"ns=4;s=\"DB_Line\".\"Reject\"", ua.NewStringNodeID(4, `"DB_Line"."Reject"`)}, // Siemens style
		{"ns=2;g=72962B91-FA75-4AE6-8D28-B404DC7DAF63", ua.NewGUIDNodeID(2, "72962B91-FA75-4AE6-8D28-B404DC7DAF63")},
		{"ns=2;b=AQID", ua.NewByteStringNodeID(2, []byte{1, 2, 3})},
		{"ns=65535;i=4294967295", ua.NewNumericNodeID(65535, 4294967295)},
	}
	for _, tc := range good {
		r, err := opcua.ParseNodeRef(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		got, err := r.Resolve(ns)
		if err != nil || got.String() != tc.want.String() {
			t.Errorf("%q: %v %v, want %v", tc.in, got, err, tc.want)
		}
		if back, err := opcua.ParseNodeRef(r.String()); err != nil || back != r {
			t.Errorf("%q: round trip %q: %v", tc.in, r.String(), err)
		}
	}
	bad := map[string]string{
		"":                                    "empty node id",
		"Line1.Reject":                        "want i=<number>, s=<string>",
		"ns=2":                                "must be followed by",
		"ns=-1;i=1":                           "namespace index",
		"ns=65536;i=1":                        "namespace index",
		"ns=02;i=1":                           "namespace index",
		"nsu=;s=x":                            "namespace URI",
		"nsu=urn:a b;s=x":                     "namespace URI",
		"ns=2;i=abc":                          "numeric identifier",
		"ns=2;i=4294967296":                   "numeric identifier",
		"ns=2;s=":                             "string identifier",
		"ns=2;s=a\x00b":                       "string identifier",
		"ns=2;g=1234":                         "GUID identifier",
		"ns=2;b=!!":                           "opaque identifier",
		"ns=2;x=1":                            `identifier type "x"`,
		"ns=2;s=" + "\xff":                    "UTF-8",
		"ns=2;s=" + strings.Repeat("a", 5000): "string identifier",
	}
	for in, want := range bad {
		if _, err := opcua.ParseNodeRef(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
	r, _ := opcua.ParseNodeRef("nsu=urn:missing;s=x")
	if _, err := r.Resolve(ns); err == nil || !strings.Contains(err.Error(), `namespace "urn:missing"`) {
		t.Errorf("unknown URI: %v", err)
	}
}

// Node ids come from config files: the parser never panics, and what it
// accepts prints back to the same reference and resolves.
func FuzzParseNodeRef(f *testing.F) {
	for _, s := range []string{"i=1", "ns=2;s=Line1.Reject", "nsu=urn:x;i=5", "ns=1;g=72962B91-FA75-4AE6-8D28-B404DC7DAF63", "ns=1;b=AQID", "ns=;s=", "nsu=a;b=="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := opcua.ParseNodeRef(s)
		if err != nil {
			return
		}
		back, err := opcua.ParseNodeRef(r.String())
		if err != nil || back != r {
			t.Fatalf("%q -> %q -> %v %v", s, r.String(), back, err)
		}
		if _, err := r.Resolve([]string{"http://opcfoundation.org/UA/", r.NamespaceURI}); err != nil {
			t.Fatalf("%q: resolve: %v", s, err)
		}
	})
}

// Options come from YAML: Validate never panics on any combination.
func FuzzValidate(f *testing.F) {
	f.Add("ns=2;s=R", "Basic256Sha256", "Sign", "u", "p", int64(0), "/UA")
	f.Fuzz(func(t *testing.T, node, policy, mode, user, pw string, pulse int64, path string) {
		o := opcua.Options{Path: path, Username: user, Password: pw, Security: opcua.Security{Policy: policy, Mode: mode},
			Tags: map[string]opcua.Tag{"reject": {Node: node, Pulse: time.Duration(pulse)}}}
		_ = o.Validate()
	})
}
