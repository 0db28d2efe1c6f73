package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/sync/record"
)

// runPart11 checks users, sessions, the audit trail projection, batch
// release and partial-close approval.
func runPart11(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)

	t.Run("Users", func(t *testing.T) {
		s := open(t)
		u := store.User{ID: "qa1", Name: "Quinn QA", Role: "qa", PasswordHash: "$2a$10$hash", Created: t0}
		if err := s.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateUser(ctx, u); !errors.Is(err, store.ErrExists) {
			t.Fatalf("duplicate user: %v", err)
		}
		if _, err := s.User(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown user: %v", err)
		}
		got, err := s.User(ctx, "qa1")
		if err != nil || got.Name != "Quinn QA" || got.Role != "qa" || got.PasswordHash != u.PasswordHash || !got.Created.Equal(t0) || got.Version != 1 || got.Disabled {
			t.Fatalf("user: %+v %v", got, err)
		}
		got.Role, got.Disabled, got.PasswordChanged = "admin", true, t0.Add(time.Hour)
		upd, err := s.UpdateUser(ctx, got)
		if err != nil || upd.Version != 2 || upd.Role != "admin" || !upd.Disabled || !upd.PasswordChanged.Equal(t0.Add(time.Hour)) {
			t.Fatalf("update: %+v %v", upd, err)
		}
		// A second writer with the old version is refused.
		if _, err := s.UpdateUser(ctx, got); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("stale update: %v", err)
		}
		if _, err := s.UpdateUser(ctx, store.User{ID: "nobody", Version: 1}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("update unknown: %v", err)
		}
		// Lockout: 3 failures with max 3 lock the account and restart the count.
		for i := 1; i <= 2; i++ {
			x, err := s.LoginFailed(ctx, "qa1", 3, 15*time.Minute, t0)
			if err != nil || x.Failed != i || !x.LockedUntil.IsZero() {
				t.Fatalf("failure %d: %+v %v", i, x, err)
			}
		}
		x, err := s.LoginFailed(ctx, "qa1", 3, 15*time.Minute, t0)
		if err != nil || x.Failed != 0 || !x.LockedUntil.Equal(t0.Add(15*time.Minute)) {
			t.Fatalf("third failure: %+v %v", x, err)
		}
		if _, err := s.LoginFailed(ctx, "nobody", 3, time.Minute, t0); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("failure of unknown user: %v", err)
		}
		if err := s.LoginReset(ctx, "qa1", t0.Add(time.Hour), true); err != nil {
			t.Fatal(err)
		}
		x, _ = s.User(ctx, "qa1")
		if x.Failed != 0 || !x.LockedUntil.IsZero() || !x.LastLogin.Equal(t0.Add(time.Hour)) || x.Version != 2 {
			t.Fatalf("after reset: %+v", x)
		}
		// Concurrent failures are all counted (two central instances).
		s.CreateUser(ctx, store.User{ID: "op1", Name: "Op", Role: "operator", PasswordHash: "h"})
		var wg sync.WaitGroup
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := s.LoginFailed(ctx, "op1", 100, time.Minute, t0); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if x, _ := s.User(ctx, "op1"); x.Failed != 8 {
			t.Fatalf("concurrent failures counted %d of 8", x.Failed)
		}
		list, err := s.Users(ctx)
		if err != nil || len(list) != 2 || list[0].ID != "op1" || list[1].ID != "qa1" {
			t.Fatalf("users: %+v %v", list, err)
		}
	})

	t.Run("Sessions", func(t *testing.T) {
		s := open(t)
		a := store.Session{TokenHash: "aa", User: "qa1", Created: t0, Expires: t0.Add(8 * time.Hour), IdleUntil: t0.Add(30 * time.Minute)}
		b := store.Session{TokenHash: "bb", User: "qa1", Created: t0, Expires: t0.Add(8 * time.Hour), IdleUntil: t0.Add(10 * time.Minute)}
		c := store.Session{TokenHash: "cc", User: "op1", Created: t0, Expires: t0.Add(time.Hour), IdleUntil: t0.Add(time.Hour)}
		for _, x := range []store.Session{a, b, c} {
			if err := s.CreateSession(ctx, x); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.Session(ctx, "aa")
		if err != nil || got.User != "qa1" || !got.Expires.Equal(a.Expires) || !got.IdleUntil.Equal(a.IdleUntil) {
			t.Fatalf("session: %+v %v", got, err)
		}
		if _, err := s.Session(ctx, "zz"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown session: %v", err)
		}
		if n, _ := s.CountSessions(ctx, t0.Add(20*time.Minute)); n != 2 {
			t.Fatalf("live sessions at +20m: %d", n)
		}
		if err := s.TouchSession(ctx, "bb", t0.Add(2*time.Hour)); err != nil {
			t.Fatal(err)
		}
		// At +40m: a is idle-expired, b was touched, c is live.
		if n, err := s.DeleteSessions(ctx, store.SessionFilter{ExpiredAt: t0.Add(40 * time.Minute)}); err != nil || n != 1 {
			t.Fatalf("delete expired: %d %v", n, err)
		}
		if n, _ := s.DeleteSessions(ctx, store.SessionFilter{User: "qa1"}); n != 1 {
			t.Fatalf("delete by user: %d", n)
		}
		if n, _ := s.DeleteSessions(ctx, store.SessionFilter{TokenHash: "cc"}); n != 1 {
			t.Fatalf("delete by token: %d", n)
		}
		if n, _ := s.CountSessions(ctx, t0); n != 0 {
			t.Fatalf("sessions left: %d", n)
		}
	})

	t.Run("AuditTrailAndRelease", func(t *testing.T) {
		s := open(t)
		line := NewChain("edge-p", 1, 21)
		j := NewChain(store.JournalPrefix+"c1", 1, 22)
		for _, c := range []*Chain{line, j} {
			if err := s.EnrollEdge(ctx, store.Edge{ID: c.Edge, PublicKey: c.Pub(), EnrolledBy: "test"}); err != nil {
				t.Fatal(err)
			}
		}
		sup := &record.Signature{User: "sup1", Name: "Sam Supervisor", Meaning: "approval", Time: "2026-11-24T08:00:01Z", Reason: "short case at batch end"}
		h := line.Head()
		recs := line.Scenario()
		recs = append(recs, line.Next(
			record.KindContainerOpened, record.ContainerOpened{Batch: "L1", SSCC: "395060000000000030", Level: "case"},
			record.KindContainerClosed, record.ContainerClosed{Batch: "L1", SSCC: "395060000000000030", Level: "case", Count: 0, Partial: true, Signature: sup},
			record.KindUserAction, record.UserAction{User: "op1", Name: "Olga Operator", Action: "batch.hold", Target: "L1", Reason: "jam"},
			record.KindBatchStateChanged, record.BatchState{Batch: "L1", From: "running", To: "stopped"},
			record.KindBatchClosed, record.BatchClosed{Batch: "L1", Balanced: true},
		)...)
		if err := s.Append(ctx, line.Edge, h, recs); err != nil {
			t.Fatal(err)
		}
		closeSeq := recs[len(recs)-1].Record.Seq
		partialSeq := recs[len(recs)-4].Record.Seq
		b, err := s.Batch(ctx, line.Edge, "L1")
		if err != nil || b.State != "closed" || b.Closed != (store.Ref{Edge: line.Edge, Epoch: 1, Seq: closeSeq}) || b.Units["verified"] != 4 || b.Units["decommissioned"] != 1 ||
			b.Quarantined != 0 || b.Conflicts != 0 || b.GTIN != gtin || b.Reconciliation == nil {
			t.Fatalf("batch: %+v %v", b, err)
		}
		if _, err := s.Batch(ctx, line.Edge, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown batch: %v", err)
		}
		parts, err := s.Containers(ctx, store.ContainerFilter{Edge: line.Edge, Batch: "L1", PartialOnly: true})
		if err != nil || len(parts) != 1 || parts[0].SSCC != "395060000000000030" || parts[0].CloseRecord.Seq != partialSeq || parts[0].ApprovedBy != "" {
			t.Fatalf("partial containers: %+v %v", parts, err)
		}
		if all, _ := s.Containers(ctx, store.ContainerFilter{Batch: "L1"}); len(all) != 3 {
			t.Fatalf("containers of L1: %d", len(all))
		}
		// Central's journal approves the partial close and releases the batch.
		qa := &record.Signature{User: "qa1", Name: "Quinn QA", Meaning: "approval", Time: "2026-11-24T09:00:00Z", Ref: store.Ref{Edge: line.Edge, Epoch: 1, Seq: partialSeq}.String()}
		rel := *qa
		rel.Ref = b.Closed.String()
		jrecs := j.Next(
			record.KindUserAction, record.UserAction{User: "qa1", Name: "Quinn QA", Action: store.ActionPartialApproved, Target: store.ContainerTarget(line.Edge, "395060000000000030"), Signature: qa},
			record.KindUserAction, record.UserAction{User: "qa1", Name: "Quinn QA", Action: store.ActionBatchReleased, Target: store.BatchTarget(line.Edge, "L1"), Signature: &rel},
		)
		// An unsigned "release" (no meaning) changes nothing.
		jrecs = append(jrecs, j.Next(record.KindUserAction, record.UserAction{User: "x", Action: store.ActionBatchReleased, Target: store.BatchTarget(line.Edge, "L2")})...)
		if err := s.Append(ctx, j.Edge, record.Head{Epoch: 1}, jrecs); err != nil {
			t.Fatal(err)
		}
		b, _ = s.Batch(ctx, line.Edge, "L1")
		if b.State != "released" || b.ReleasedBy != "qa1" || b.ReleasedName != "Quinn QA" || b.Release != (store.Ref{Edge: j.Edge, Epoch: 1, Seq: 2}) || b.ReleasedAt.IsZero() {
			t.Fatalf("released batch: %+v", b)
		}
		if l, _ := s.Batches(ctx, store.BatchFilter{State: "released"}); len(l) != 1 || l[0].Batch != "L1" {
			t.Fatalf("released batches: %+v", l)
		}
		if l, _ := s.Batches(ctx, store.BatchFilter{State: "closed"}); len(l) != 0 {
			t.Fatalf("closed batches after release: %+v", l)
		}
		c, _ := s.Container(ctx, "395060000000000030")
		if c.ApprovedBy != "qa1" || c.Approval.Seq != 1 || !c.Partial {
			t.Fatalf("approved container: %+v", c)
		}
		// An edge's own user.action "batch.released" is only an audit line.
		line2 := NewChain("edge-q", 1, 23)
		s.EnrollEdge(ctx, store.Edge{ID: line2.Edge, PublicKey: line2.Pub(), EnrolledBy: "t"})
		h2 := line2.Head()
		r2 := line2.Scenario()
		r2 = append(r2, line2.Next(record.KindBatchClosed, record.BatchClosed{Batch: "L1", Balanced: true},
			record.KindUserAction, record.UserAction{User: "op", Action: store.ActionBatchReleased, Target: store.BatchTarget(line2.Edge, "L1"), Signature: qa})...)
		if err := s.Append(ctx, line2.Edge, h2, r2); err != nil {
			t.Fatal(err)
		}
		if b2, _ := s.Batch(ctx, line2.Edge, "L1"); b2.State != "closed" {
			t.Fatalf("an edge released its own batch: %+v", b2)
		}

		// The audit trail: edge user actions, edge signed records, journal actions.
		all, err := s.Audit(ctx, store.AuditFilter{})
		if err != nil || len(all) != 6 {
			t.Fatalf("audit: %d entries %v", len(all), err)
		}
		for _, e := range all {
			if e.Record.Record.Hash() != e.Record.Hash || e.Record.Ref() != e.Ref {
				t.Fatalf("audit entry %s does not carry its record", e.Ref)
			}
		}
		signed, _ := s.Audit(ctx, store.AuditFilter{Edge: line.Edge, SignedOnly: true})
		if len(signed) != 1 || signed[0].Action != "container.closed" || signed[0].User != "sup1" || signed[0].Name != "Sam Supervisor" || signed[0].Meaning != "approval" || signed[0].Batch != "L1" {
			t.Fatalf("signed edge records: %+v", signed)
		}
		if l, _ := s.Audit(ctx, store.AuditFilter{User: "qa1"}); len(l) != 2 || l[0].Action != store.ActionBatchReleased {
			t.Fatalf("by user, newest first: %+v", l)
		}
		if l, _ := s.Audit(ctx, store.AuditFilter{Action: store.ActionBatchReleased, Edge: j.Edge}); len(l) != 2 {
			t.Fatalf("by action: %+v", l)
		}
		if l, _ := s.Audit(ctx, store.AuditFilter{Batch: "L1", Edge: j.Edge}); len(l) != 1 || l[0].Target != store.BatchTarget(line.Edge, "L1") {
			t.Fatalf("by batch: %+v", l)
		}
		if l, _ := s.Audit(ctx, store.AuditFilter{Target: store.ContainerTarget(line.Edge, "395060000000000030")}); len(l) != 1 {
			t.Fatalf("by target: %+v", l)
		}
		at := all[len(all)-1].At
		if l, _ := s.Audit(ctx, store.AuditFilter{From: at.Add(time.Microsecond)}); len(l) != len(all)-1 {
			t.Fatalf("from: %d", len(l))
		}
		if l, _ := s.Audit(ctx, store.AuditFilter{To: at.Add(time.Microsecond)}); len(l) == 0 || len(l) == len(all) {
			t.Fatalf("to: %d", len(l))
		}
		if l, _ := s.Audit(ctx, store.AuditFilter{Limit: 2}); len(l) != 2 {
			t.Fatalf("limit: %d", len(l))
		}

		// Reopening the partial container withdraws the approval: it
		// referenced the close that no longer stands.
		h = line.Head()
		if err := s.Append(ctx, line.Edge, h, line.Next(record.KindContainerReopened, record.ContainerReopened{Batch: "L1", SSCC: "395060000000000030", Level: "case"})); err != nil {
			t.Fatal(err)
		}
		if c, _ := s.Container(ctx, "395060000000000030"); c.ApprovedBy != "" || c.CloseRecord.Seq != 0 || c.Closed {
			t.Fatalf("reopened container keeps its approval: %+v", c)
		}
	})

	t.Run("BatchProblems", func(t *testing.T) {
		s := open(t)
		a, b := NewChain("edge-s", 1, 24), NewChain("edge-t", 1, 25)
		for _, c := range []*Chain{a, b} {
			s.EnrollEdge(ctx, store.Edge{ID: c.Edge, PublicKey: c.Pub(), EnrolledBy: "t"})
		}
		if err := s.Append(ctx, a.Edge, a.Head(), a.Scenario()); err != nil {
			t.Fatal(err)
		}
		// Edge t reuses a's identifiers: both batches have conflicts.
		if err := s.Append(ctx, b.Edge, b.Head(), b.Scenario()); err != nil {
			t.Fatal(err)
		}
		for _, c := range []*Chain{a, b} {
			if x, _ := s.Batch(ctx, c.Edge, "L1"); x.Conflicts == 0 {
				t.Fatalf("batch of %s shows no identifier conflict", c.Edge)
			}
		}
		// A record quarantined after the batch started is a problem of it.
		if err := s.Quarantine(ctx, store.Quarantined{Edge: a.Edge, Epoch: 1, Seq: 99, Reason: "bad signature", At: time.Now()}); err != nil {
			t.Fatal(err)
		}
		if x, _ := s.Batch(ctx, a.Edge, "L1"); x.Quarantined != 1 {
			t.Fatalf("quarantined: %d", x.Quarantined)
		}
	})
}

// BackfillFixture stores records whose Part 11 projections a backfill
// must restore: a batch with a signed partial case and a user action.
func BackfillFixture(t *testing.T, s store.Store) *Chain {
	t.Helper()
	ctx := context.Background()
	c := NewChain("edge-old", 1, 31)
	if err := s.EnrollEdge(ctx, store.Edge{ID: c.Edge, PublicKey: c.Pub(), EnrolledBy: "t"}); err != nil {
		t.Fatal(err)
	}
	sup := &record.Signature{User: "sup1", Name: "Sam Supervisor", Meaning: "approval", Time: "2026-11-24T08:00:01Z", Reason: "short"}
	h := c.Head()
	recs := c.Scenario()
	recs = append(recs, c.Next(
		record.KindContainerOpened, record.ContainerOpened{Batch: "L1", SSCC: "395060000000000030", Level: "case"},
		record.KindContainerClosed, record.ContainerClosed{Batch: "L1", SSCC: "395060000000000030", Level: "case", Partial: true, Signature: sup},
		record.KindUserAction, record.UserAction{User: "op1", Action: "batch.hold", Target: "L1"},
		record.KindBatchClosed, record.BatchClosed{Batch: "L1", Balanced: true},
	)...)
	if err := s.Append(ctx, c.Edge, h, recs); err != nil {
		t.Fatal(err)
	}
	return c
}

// CheckBackfill checks that the projections of BackfillFixture are there
// (after a store that lacked them was migrated).
func CheckBackfill(t *testing.T, s store.Store) {
	t.Helper()
	ctx := context.Background()
	b, err := s.Batch(ctx, "edge-old", "L1")
	if err != nil || b.Closed.Seq != 26 || b.State != "closed" {
		t.Fatalf("batch close reference not restored: %+v %v", b, err)
	}
	c, err := s.Container(ctx, "395060000000000030")
	if err != nil || c.CloseRecord.Seq != 24 {
		t.Fatalf("container close reference not restored: %+v %v", c, err)
	}
	if c, _ := s.Container(ctx, "395060000000000016"); c.CloseRecord.Seq != 19 {
		t.Fatalf("full case close reference: %+v", c)
	}
	l, err := s.Audit(ctx, store.AuditFilter{Edge: "edge-old"})
	if err != nil || len(l) != 2 || l[0].Action != "batch.hold" || l[1].Action != "container.closed" || l[1].Meaning != "approval" {
		t.Fatalf("audit trail not restored: %+v %v", l, err)
	}
}
