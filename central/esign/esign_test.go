package esign

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"

	"github.com/serialine/serialine/central/auth"
	"github.com/serialine/serialine/central/journal"
	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/central/store/sqlite"
	"github.com/serialine/serialine/central/store/storetest"
	"github.com/serialine/serialine/sync/record"
)

type env struct {
	st    store.Store
	j     *journal.Journal
	users *auth.Users
	svc   *Service
	line  *storetest.Chain
	now   time.Time
}

var cli = auth.Actor{ID: "cli:test"}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{st: st, now: time.Date(2026, 11, 24, 10, 0, 0, 0, time.FixedZone("CET", 3600))}
	e.j, err = journal.Open(ctx, journal.Options{Store: st, KeyPath: filepath.Join(dir, "central.key"), Instance: "t", Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	e.users = auth.New(auth.Options{Store: st, Journal: e.j, Log: zerolog.Nop(), Cost: bcrypt.MinCost})
	for _, u := range []struct{ id, name, role string }{{"qa1", "Quinn A. Quality", auth.RoleQA}, {"op1", "Olga Operator", auth.RoleOperator}, {"qa2", "Quentin QA", auth.RoleQA}} {
		if err := e.users.Add(ctx, cli, u.id, u.name, u.role, u.id+"-password-123", ""); err != nil {
			t.Fatal(err)
		}
	}
	e.svc = New(Options{Store: st, Journal: e.j, Users: e.users, Log: zerolog.Nop(), Now: func() time.Time { return e.now }})
	e.line = storetest.NewChain("edge-1", 1, 1)
	if err := st.EnrollEdge(ctx, store.Edge{ID: "edge-1", PublicKey: e.line.Pub(), EnrolledBy: "t"}); err != nil {
		t.Fatal(err)
	}
	return e
}

// run stores the scenario batch plus extra records.
func (e *env) run(t *testing.T, items ...any) []store.Stored {
	t.Helper()
	h := e.line.Head()
	recs := e.line.Scenario()
	recs = append(recs, e.line.Next(items...)...)
	if err := e.st.Append(context.Background(), e.line.Edge, h, recs); err != nil {
		t.Fatal(err)
	}
	return recs
}

func cred(user, meaning, reason string) Credentials {
	return Credentials{User: user, Password: user + "-password-123", Meaning: meaning, Reason: reason}
}

func TestBatchReleaseSignatureBoundToItsRecord(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	recs := e.run(t, record.KindBatchClosed, record.BatchClosed{Batch: "L1", Balanced: true})
	closed := recs[len(recs)-1]
	qa := auth.User{ID: "qa1", Name: "Quinn A. Quality", Role: auth.RoleQA}
	res, err := e.svc.SignNamed(ctx, qa, "batch.release", "edge-1/L1", nil, cred("qa1", "approval", "batch record reviewed"))
	if err != nil {
		t.Fatal(err)
	}
	// 11.50: printed name, date and time (UTC), meaning.
	if res.Name != "Quinn A. Quality" || res.Meaning != "approval" || res.Time != "2026-11-24T09:00:00Z" || res.Reason != "batch record reviewed" {
		t.Fatalf("signature manifestation: %+v", res.Signature)
	}
	if res.Ref != closed.Ref().String() || res.RefHash != closed.Hash.String() {
		t.Fatalf("signature not bound to the batch.closed record: %+v", res.Signature)
	}
	b, _ := e.st.Batch(ctx, "edge-1", "L1")
	if b.State != "released" || b.ReleasedName != "Quinn A. Quality" || b.Release != res.Journal {
		t.Fatalf("batch after release: %+v", b)
	}
	// 11.70: the signature verifies against its record and no other.
	sigRec, err := Record(ctx, e.st, res.Journal)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(ctx, e.st, sigRec, closed); err != nil {
		t.Fatalf("signature against its own record: %v", err)
	}
	for _, other := range []store.Stored{recs[len(recs)-2], recs[0]} {
		if err := Verify(ctx, e.st, sigRec, other); err == nil || !strings.Contains(err.Error(), "not record "+other.Ref().String()) {
			t.Fatalf("signature verified against record %s: %v", other.Ref(), err)
		}
	}
	// Copying the signature into a record that names another record does not
	// help: the copy's hash is not the signed hash.
	moved := closed
	moved.Record.Body = []byte(strings.Replace(string(closed.Record.Body), `"balanced":true`, `"balanced":false`, 1))
	moved.Hash = moved.Record.Hash()
	if err := Verify(ctx, e.st, sigRec, moved); err == nil {
		t.Fatal("signature verified against an altered record with the same reference")
	}
	// An altered signature record fails.
	forged := sigRec
	forged.Record.Body = []byte(strings.Replace(string(sigRec.Record.Body), "Quinn A. Quality", "Quentin QA", 1))
	forged.Hash = forged.Record.Hash()
	if err := Verify(ctx, e.st, forged, closed); err == nil || !strings.Contains(err.Error(), "altered") {
		t.Fatalf("forged signature: %v", err)
	}
	if sig, err := VerifyRef(ctx, e.st, res.Journal); err != nil || sig.Name != "Quinn A. Quality" {
		t.Fatalf("VerifyRef: %+v %v", sig, err)
	}
	// Released once only.
	if _, err := e.svc.SignNamed(ctx, qa, "batch.release", "edge-1/L1", nil, cred("qa1", "approval", "again")); !errors.Is(err, ErrRefused) {
		t.Fatalf("second release: %v", err)
	}
}

func TestSigningRefusals(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.run(t, record.KindBatchClosed, record.BatchClosed{Batch: "L1", Balanced: true})
	qa := auth.User{ID: "qa1", Name: "Quinn A. Quality", Role: auth.RoleQA}
	op := auth.User{ID: "op1", Name: "Olga Operator", Role: auth.RoleOperator}
	for _, tc := range []struct {
		name string
		by   auth.User
		c    Credentials
		want string
	}{
		{"unknown meaning", qa, cred("qa1", "approved", "x"), "meaning"},
		{"no reason", qa, cred("qa1", "approval", " "), "reason is required"},
		{"no password", qa, Credentials{User: "qa1", Meaning: "approval", Reason: "x"}, "re-enter"},
		{"another user's credentials", qa, cred("qa2", "approval", "x"), "logged-in user only"},
		{"wrong password", qa, Credentials{User: "qa1", Password: "wrong-password-1", Meaning: "approval", Reason: "x"}, "wrong password"},
		{"role too low", op, cred("op1", "approval", "x"), "op1 is operator; batch.released needs qa"},
	} {
		_, err := e.svc.SignNamed(ctx, tc.by, "batch.release", "edge-1/L1", nil, tc.c)
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	if b, _ := e.st.Batch(ctx, "edge-1", "L1"); b.State != "closed" {
		t.Fatalf("a refused signing changed the batch: %s", b.State)
	}
	if _, err := e.svc.SignNamed(ctx, qa, "batch.release", "edge-1/L9", nil, cred("qa1", "approval", "x")); !errors.Is(err, ErrUnknown) {
		t.Fatalf("unknown batch: %v", err)
	}
	if _, err := e.svc.SignNamed(ctx, qa, "nope", "edge-1/L1", nil, cred("qa1", "approval", "x")); !errors.Is(err, ErrUnknown) {
		t.Fatalf("unknown signing: %v", err)
	}
	// Wrong passwords in signings count toward the lockout (one counted above).
	for i := 0; i < 4; i++ {
		e.svc.SignNamed(ctx, qa, "batch.release", "edge-1/L1", nil, Credentials{User: "qa1", Password: "wrong-password-1", Meaning: "approval", Reason: "x"})
	}
	if _, err := e.svc.SignNamed(ctx, qa, "batch.release", "edge-1/L1", nil, cred("qa1", "approval", "x")); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("after 5 wrong signing passwords: %v", err)
	}
}

func TestReleaseBlockedByOpenProblems(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	sup := &record.Signature{User: "sup1", Name: "Sam Supervisor", Meaning: "approval", Time: "2026-11-24T08:00:01Z", Reason: "end of batch"}
	e.run(t,
		record.KindContainerOpened, record.ContainerOpened{Batch: "L1", SSCC: "395060000000000030", Level: "case"},
		record.KindContainerClosed, record.ContainerClosed{Batch: "L1", SSCC: "395060000000000030", Level: "case", Partial: true, Signature: sup},
		record.KindBatchClosed, record.BatchClosed{Batch: "L1", Balanced: false, Problems: []string{"allocated 6 != commissioned 5 + returned 0"}},
	)
	qa := auth.User{ID: "qa1", Name: "Quinn A. Quality", Role: auth.RoleQA}
	_, err := e.svc.SignNamed(ctx, qa, "batch.release", "edge-1/L1", nil, cred("qa1", "approval", "x"))
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "does not balance") || !strings.Contains(err.Error(), "partial case 395060000000000030 is not approved") {
		t.Fatalf("release of an unbalanced batch with an unapproved partial case: %v", err)
	}
	// QA countersigns the partial close.
	res, err := e.svc.SignNamed(ctx, qa, "container.approve_partial", "edge-1/395060000000000030", nil, cred("qa1", "approval", "short case checked"))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := e.st.Container(ctx, "395060000000000030")
	if c.ApprovedBy != "qa1" || c.Approval != res.Journal || res.Ref != c.CloseRecord.String() {
		t.Fatalf("approved container: %+v", c)
	}
	if _, err := e.svc.SignNamed(ctx, qa, "container.approve_partial", "edge-1/395060000000000030", nil, cred("qa1", "approval", "x")); !errors.Is(err, ErrRefused) {
		t.Fatalf("second approval: %v", err)
	}
	// Still unbalanced without the edge supervisor's signature.
	if _, err := e.svc.SignNamed(ctx, qa, "batch.release", "edge-1/L1", nil, cred("qa1", "approval", "x")); !errors.Is(err, ErrRefused) || strings.Contains(err.Error(), "partial") {
		t.Fatalf("release after approval, still unbalanced: %v", err)
	}

	// A second edge: balanced but with a quarantined record.
	e2 := storetest.NewChain("edge-2", 1, 2)
	e.st.EnrollEdge(ctx, store.Edge{ID: "edge-2", PublicKey: e2.Pub(), EnrolledBy: "t"})
	recs := e2.Next(record.KindBatchStarted, record.BatchStarted{Batch: "B2", Line: "l2", GTIN: "09506000134352"}, record.KindBatchClosed, record.BatchClosed{Batch: "B2", Balanced: true})
	if err := e.st.Append(ctx, "edge-2", record.Head{Epoch: 1}, recs); err != nil {
		t.Fatal(err)
	}
	e.st.Quarantine(ctx, store.Quarantined{Edge: "edge-2", Epoch: 1, Seq: 3, Reason: "bad signature", At: time.Now().Add(time.Hour)})
	if _, err := e.svc.SignNamed(ctx, qa, "batch.release", "edge-2/B2", nil, cred("qa1", "approval", "x")); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "quarantined") {
		t.Fatalf("release with quarantined records: %v", err)
	}
}

func TestCorrectionKeepsTheOriginal(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	recs := e.run(t)
	target := recs[10] // a unit.verified record
	before := append([]byte(nil), target.Record.Canonical()...)
	qa := auth.User{ID: "qa1", Name: "Quinn A. Quality", Role: auth.RoleQA}
	params := map[string]string{"field": "camera", "old": "", "new": "camera-2"}
	res, err := e.svc.SignNamed(ctx, qa, "record.correct", target.Ref().String(), params, cred("qa1", "verification", "camera name missing in the record"))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := Record(ctx, e.st, target.Ref())
	if string(got.Record.Canonical()) != string(before) {
		t.Fatal("the corrected record was changed")
	}
	list, err := e.st.Audit(ctx, store.AuditFilter{Target: target.Ref().String(), Action: store.ActionRecordCorrected})
	if err != nil || len(list) != 1 || list[0].Ref != res.Journal {
		t.Fatalf("correction in the audit trail: %+v %v", list, err)
	}
	var a record.UserAction
	json.Unmarshal(list[0].Record.Record.Body, &a)
	if a.Field != "camera" || a.New != "camera-2" || a.Reason != "camera name missing in the record" || a.Signature == nil || a.Signature.RefHash != target.Hash.String() {
		t.Fatalf("correction record: %+v", a)
	}
	// A signature is not "corrected".
	if _, err := e.svc.SignNamed(ctx, qa, "record.correct", res.Journal.String(), params, cred("qa1", "verification", "x")); !errors.Is(err, ErrRefused) {
		t.Fatalf("correcting a signature: %v", err)
	}
	if _, err := e.svc.SignNamed(ctx, qa, "record.correct", target.Ref().String(), map[string]string{"field": "camera"}, cred("qa1", "verification", "x")); !errors.Is(err, ErrRefused) {
		t.Fatalf("correction without a value: %v", err)
	}
}

// A unit whose reject pulse did not reach the PLC blocks the release until
// the edge recorded a supervisor's confirmation that it was found and
// removed; a confirmation of another batch's item does not count.
func TestReleaseBlockedByUndeliveredReject(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	sup := &record.Signature{User: "sup1", Name: "Sam Supervisor", Meaning: "the unit was found and removed", Time: "2026-11-24T08:00:01Z"}
	e.run(t,
		record.KindRejectNotDelivered, record.RejectNotDelivered{Batch: "L1", ID: "SN-7", Unit: "(01)09506000134352(21)SN-7", Reason: "no_read", Case: "395060000000000030", Detail: "PLC write timed out"},
		record.KindRejectRemoved, record.RejectRemoved{Batch: "OTHER", ID: "SN-7", Note: "wrong batch", Signature: sup},
		record.KindBatchClosed, record.BatchClosed{Batch: "L1", Balanced: true},
	)
	b, err := e.st.Batch(ctx, "edge-1", "L1")
	if err != nil {
		t.Fatal(err)
	}
	ev, err := UndeliveredRejects(ctx, e.st, b)
	if err != nil || len(ev) != 1 || ev[0].Removed != nil || ev[0].NotDelivered.Case != "395060000000000030" || ev[0].Ref.Seq == 0 {
		t.Fatalf("undelivered rejects %+v, %v", ev, err)
	}
	qa := auth.User{ID: "qa1", Name: "Quinn A. Quality", Role: auth.RoleQA}
	if _, err := e.svc.SignNamed(ctx, qa, "batch.release", "edge-1/L1", nil, cred("qa1", "approval", "x")); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "the reject of SN-7 (no_read) was not delivered") {
		t.Fatalf("release with an unconfirmed undelivered reject: %v", err)
	}
	h := e.line.Head()
	recs := e.line.Next(record.KindRejectRemoved, record.RejectRemoved{Batch: "L1", ID: "SN-7", Note: "found in case 395060000000000030, destroyed", Signature: sup})
	if err := e.st.Append(ctx, "edge-1", h, recs); err != nil {
		t.Fatal(err)
	}
	if ev, _ = UndeliveredRejects(ctx, e.st, b); len(ev) != 1 || ev[0].Removed == nil || ev[0].Removed.Note != "found in case 395060000000000030, destroyed" {
		t.Fatalf("after the confirmation: %+v", ev)
	}
	if _, err := e.svc.SignNamed(ctx, qa, "batch.release", "edge-1/L1", nil, cred("qa1", "approval", "reviewed")); err != nil {
		t.Fatalf("release after the confirmation: %v", err)
	}
}
