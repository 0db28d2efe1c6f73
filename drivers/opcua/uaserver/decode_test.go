package uaserver_test

import (
	"strings"
	"testing"

	"github.com/gopcua/opcua/ua"

	"github.com/serialine/serialine/drivers/opcua/uaserver/uatest"
)

// gopcua v0.9.0 decodes every request on its reader goroutine, outside any
// recover of ours, and its Variant decoder panics on a negative array
// length (reflect.MakeSlice). One such message from any peer that can open
// a secure channel kills the process: that is why the edge runs its OPC UA
// tag server in a child process (edge/tags). The decoder also allocates
// array counts before checking them against the message size (2^31
// elements: 16 GB). When this test fails after a gopcua upgrade, the bug is
// fixed upstream; the isolation stays worth its cost for the next one.
func TestLibraryDecoderPanicsOnCraftedVariant(t *testing.T) {
	b, err := uatest.NegativeVariantArray(ua.NewStringNodeID(1, "x"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		r := recover()
		if r == nil || !strings.Contains(strings.ToLower(toString(r)), "negative") {
			t.Fatalf("gopcua's decoder no longer panics on a negative array length (recovered %v): see the comment", r)
		}
	}()
	ua.DecodeService(b)
}

func toString(v any) string {
	if e, ok := v.(error); ok {
		return e.Error()
	}
	if s, ok := v.(string); ok {
		return s
	}
	return ""
}
