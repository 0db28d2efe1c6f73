package store

import (
	"strings"
	"testing"
)

func TestParseRef(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Ref
		err  string
	}{
		{"edge-1/7/42", Ref{Edge: "edge-1", Epoch: 7, Seq: 42}, ""},
		{"central.c1/1796193798/9", Ref{Edge: "central.c1", Epoch: 1796193798, Seq: 9}, ""},
		{"edge-1/7/0", Ref{}, "seq must be a positive number"},
		{"edge-1/x/1", Ref{}, "epoch"},
		{"edge-1/4294967296/1", Ref{}, "epoch"},
		{"/1/1", Ref{}, "want edge/epoch/seq"},
		{"edge-1/1", Ref{}, "want edge/epoch/seq"},
		{"a/b/1/2", Ref{}, "want edge/epoch/seq"},
	} {
		got, err := ParseRef(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), tc.in) {
				t.Errorf("ParseRef(%q) = %v, %v; want an error naming it and %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want || got.String() != tc.in {
			t.Errorf("ParseRef(%q) = %+v, %v", tc.in, got, err)
		}
	}
	if e, rest, ok := SplitTarget("edge-1/L1/x"); !ok || e != "edge-1" || rest != "L1/x" {
		t.Errorf("SplitTarget: %q %q %v", e, rest, ok)
	}
	for _, bad := range []string{"", "/x", "edge/", "noslash"} {
		if _, _, ok := SplitTarget(bad); ok {
			t.Errorf("SplitTarget(%q) accepted", bad)
		}
	}
}

// FuzzParseRef: references come from URLs and request bodies; any that
// parses prints back to itself.
func FuzzParseRef(f *testing.F) {
	for _, s := range []string{"edge-1/7/42", "central.c1/1/1", "a//1", "x/1/0", "x/-1/2", "x/01/2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRef(s)
		if err != nil {
			return
		}
		back, err := ParseRef(r.String())
		if err != nil || back != r {
			t.Fatalf("%q parsed to %+v, which prints as %q and parses to %+v (%v)", s, r, r.String(), back, err)
		}
	})
}
