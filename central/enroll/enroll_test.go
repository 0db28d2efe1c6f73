package enroll

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/serialine/serialine/central/auth"
	"github.com/serialine/serialine/central/journal"
	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/central/store/sqlite"
	"github.com/serialine/serialine/central/web"
	"github.com/serialine/serialine/sync/record"
)

type fixture struct {
	st      store.Store
	j       *journal.Journal
	url     string
	changed []string
}

func setup(t *testing.T) *fixture {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	j, err := journal.Open(ctx, journal.Options{Store: st, KeyPath: filepath.Join(dir, "central.key"), Instance: "c1", Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	users := auth.New(auth.Options{Store: st, Journal: j, Log: zerolog.Nop()})
	for _, u := range [][3]string{{"admin", "Ada Admin", auth.RoleAdmin}, {"qa1", "Quinn QA", auth.RoleQA}} {
		if err := users.Add(ctx, auth.Actor{ID: "cli:test"}, u[0], u[1], u[2], "correct horse battery", ""); err != nil {
			t.Fatal(err)
		}
	}
	f := &fixture{st: st, j: j}
	svc := &Service{Store: st, Journal: j, Changed: func(e string) { f.changed = append(f.changed, e) }}
	srv, err := web.New(web.Options{Listen: "127.0.0.1:0", Store: st, Users: users, Log: zerolog.Nop(), Routes: svc.Routes()})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Run(ctx)
	f.url = "http://" + srv.Addr()
	return f
}

func (f *fixture) post(t *testing.T, user, path, ctype string, body any) (int, string) {
	t.Helper()
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", f.url+path, bytes.NewReader(raw))
	if user != "" {
		req.SetBasicAuth(user, "correct horse battery")
	}
	req.Header.Set("Content-Type", ctype)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

func (f *fixture) journal(t *testing.T) []record.UserAction {
	t.Helper()
	recs, err := f.st.Records(context.Background(), f.j.ID(), f.j.Head().Epoch, 1, 100)
	if err != nil {
		t.Fatal(err)
	}
	var out []record.UserAction
	for _, r := range recs {
		var a record.UserAction
		json.Unmarshal(r.Record.Body, &a)
		out = append(out, a)
	}
	return out
}

func key(b byte) ed25519.PublicKey {
	s := make([]byte, 32)
	s[0] = b
	return ed25519.NewKeyFromSeed(s).Public().(ed25519.PublicKey)
}

func TestEnrollAndRotateByAPI(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	k1, k2 := record.EncodePublicKey(key(1)), record.EncodePublicKey(key(2))
	cases := []struct {
		name, user, path, ctype string
		body                    any
		code                    int
		want                    string
	}{
		{"no login", "", "/api/v1/edges", "application/json", map[string]string{"id": "line-1", "public_key": k1}, 401, "login required"},
		{"not an admin", "qa1", "/api/v1/edges", "application/json", map[string]string{"id": "line-1", "public_key": k1}, 403, "only an admin"},
		{"form post", "admin", "/api/v1/edges", "application/x-www-form-urlencoded", map[string]string{"id": "line-1", "public_key": k1}, 415, "application/json"},
		{"bad key", "admin", "/api/v1/edges", "application/json", map[string]string{"id": "line-1", "public_key": "abc"}, 400, "public key"},
		{"journal id", "admin", "/api/v1/edges", "application/json", map[string]string{"id": "central.x", "public_key": k1}, 400, "reserved"},
		{"unknown field", "admin", "/api/v1/edges", "application/json", map[string]string{"id": "line-1", "key": k1}, 400, "unknown field"},
		{"enroll", "admin", "/api/v1/edges", "application/json", map[string]string{"id": "line-1", "public_key": k1, "reason": "new line"}, 201, "line-1"},
		{"enroll again, other key", "admin", "/api/v1/edges", "application/json", map[string]string{"id": "line-1", "public_key": k2}, 409, "rotate"},
		{"rotate unknown edge", "admin", "/api/v1/edges/line-9/keys", "application/json", map[string]string{"public_key": k2}, 404, "not found"},
		{"rotate, bad overlap", "admin", "/api/v1/edges/line-1/keys", "application/json", map[string]string{"public_key": k2, "overlap": "a while"}, 400, "overlap"},
		{"rotate", "admin", "/api/v1/edges/line-1/keys", "application/json", map[string]string{"public_key": k2, "valid_from": "2026-12-01T06:00:00Z", "overlap": "24h", "reason": "yearly rotation"}, 201, k2},
		{"rotate to the same key", "admin", "/api/v1/edges/line-1/keys", "application/json", map[string]string{"public_key": k2}, 409, "exists"},
	}
	for _, c := range cases {
		code, body := f.post(t, c.user, c.path, c.ctype, c.body)
		if code != c.code || !strings.Contains(body, c.want) {
			t.Errorf("%s: %d %s, want %d containing %q", c.name, code, body, c.code, c.want)
		}
	}
	keys, err := f.st.EdgeKeys(ctx, "line-1")
	from := time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC)
	if err != nil || len(keys) != 2 || !keys[0].ValidUntil.Equal(from.Add(24*time.Hour)) || !keys[1].ValidFrom.Equal(from) || keys[1].EnrolledBy != "admin" {
		t.Fatalf("keys %+v %v", keys, err)
	}
	// Every change and every failed change attempt that reached the store
	// is in the journal, with who, what and why.
	acts := f.journal(t)
	var got []string
	var edgeActs []record.UserAction
	for _, a := range acts {
		if strings.HasPrefix(a.Action, "user.") {
			continue // the fixture's accounts
		}
		edgeActs = append(edgeActs, a)
		got = append(got, a.Action+" "+a.Target+" by "+a.User)
	}
	acts = edgeActs
	want := []string{"edge.enrolled line-1 by admin", "edge.key_rotated line-1 by admin", "edge.key_rotated line-1 by admin", "edge.key_rotation_failed line-1 by admin"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("journal:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if acts[0].New != k1 || acts[0].Reason != "new line" || acts[0].Name != "Ada Admin" || acts[1].Old != k1 || !strings.Contains(acts[1].New, k2) || acts[1].Reason != "yearly rotation" {
		t.Fatalf("journal details %+v", acts[:2])
	}
	if len(f.changed) != 2 {
		t.Fatalf("ingest told of %d changes", len(f.changed))
	}
	// The list shows the key history.
	req, _ := http.NewRequest("GET", f.url+"/api/v1/edges", nil)
	req.SetBasicAuth("qa1", "correct horse battery")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list []edgeJSON
	json.NewDecoder(resp.Body).Decode(&list)
	found := false
	for _, e := range list {
		if e.ID == "line-1" && len(e.Keys) == 2 && e.Keys[1].PublicKey == k2 && e.Keys[0].ValidUntil == "2026-12-02T06:00:00Z" {
			found = true
		}
	}
	if !found {
		t.Fatalf("list %+v", list)
	}
}
