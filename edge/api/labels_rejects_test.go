package api

import (
	"strings"
	"testing"
)

// Reprinting an SSCC label and confirming the removal of a unit whose
// reject was not delivered are supervisor e-signatures; the engine's rules
// come back as 409 with their words.
func TestReprintAndRemovalNeedSupervisorSignatures(t *testing.T) {
	base := startAPI(t)
	sup := map[string]string{"user": "sup", "password": "sup-password", "meaning": "approval"}
	op := map[string]string{"user": "op", "password": "op-password", "meaning": "approval", "reason": "torn"}
	for _, c := range []struct {
		path string
		body map[string]any
		code int
		want string
	}{
		{"/api/v1/containers/395060000000000016/label", map[string]any{}, 403, "e-signature required"},
		{"/api/v1/containers/395060000000000016/label", map[string]any{"signature": op}, 403, "needs supervisor"},
		{"/api/v1/containers/395060000000000016/label", map[string]any{"signature": sup}, 422, "needs a reason"},
		{"/api/v1/containers/395060000000000016/label", map[string]any{"signature": withReason(sup, "torn")}, 409, "no active batch"},
		{"/api/v1/rejects/123/removed", map[string]any{"note": "found"}, 403, "e-signature required"},
		{"/api/v1/rejects/123/removed", map[string]any{"note": "found", "signature": op}, 403, "needs supervisor"},
		{"/api/v1/rejects/123/removed", map[string]any{"signature": sup}, 409, "say where the unit was found"},
		{"/api/v1/rejects/123/removed", map[string]any{"note": "found", "signature": sup}, 409, "no active batch"},
	} {
		code, out := call(t, base, "op", "op-password", c.path, c.body)
		if msg, _ := out["error"].(string); code != c.code || !strings.Contains(msg, c.want) {
			t.Errorf("%s %v: %d %v, want %d %q", c.path, c.body, code, out, c.code, c.want)
		}
	}
	if code, _ := call(t, base, "", "", "/api/v1/rejects/123/removed", map[string]any{}); code != 401 {
		t.Fatalf("anonymous: %d", code)
	}
}

func withReason(sig map[string]string, reason string) map[string]string {
	out := map[string]string{"reason": reason}
	for k, v := range sig {
		out[k] = v
	}
	return out
}
