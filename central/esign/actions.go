package esign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/serialine/serialine/central/auth"
	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/sync/record"
)

// ReleaseProblems lists what stops a batch from being released: it is not
// closed; its reconciliation did not balance and the edge recorded no
// supervisor's signature for that; records of its edge were quarantined
// since it started; its identifiers are used by another edge; an item whose
// reject was not delivered was never confirmed removed; a partial
// container close is not yet countersigned by QA. closed is the batch.closed
// record.
func ReleaseProblems(ctx context.Context, st store.Store, b store.Batch, closed *record.BatchClosed) ([]string, error) {
	return ReleaseProblemsWith(ctx, st, b, closed, nil)
}

// ReleaseProblemsWith is ReleaseProblems with the batch's rejects not
// delivered already read (UndeliveredRejects; nil: read them).
func ReleaseProblemsWith(ctx context.Context, st store.Store, b store.Batch, closed *record.BatchClosed, rejects []RejectEvent) ([]string, error) {
	var p []string
	if b.State != "closed" {
		p = append(p, fmt.Sprintf("batch is %s, not closed", b.State))
	}
	if closed != nil && !closed.Balanced && closed.Signature == nil {
		p = append(p, "reconciliation does not balance and carries no supervisor's e-signature")
	}
	if b.Quarantined > 0 {
		p = append(p, fmt.Sprintf("%d records of %s quarantined since the batch started", b.Quarantined, b.Edge))
	}
	if b.Conflicts > 0 {
		p = append(p, fmt.Sprintf("%d identifiers of the batch also used by another edge", b.Conflicts))
	}
	if rejects == nil {
		var err error
		if rejects, err = UndeliveredRejects(ctx, st, b); err != nil {
			return nil, err
		}
	}
	for _, r := range rejects {
		if r.Removed == nil {
			p = append(p, fmt.Sprintf("the reject of %s (%s) was not delivered and its removal was never confirmed (%s)", r.NotDelivered.ID, r.NotDelivered.Reason, r.Ref))
		}
	}
	parts, err := st.Containers(ctx, store.ContainerFilter{Edge: b.Edge, Batch: b.Batch, PartialOnly: true})
	if err != nil {
		return nil, err
	}
	for _, c := range parts {
		if c.ApprovedBy == "" {
			p = append(p, fmt.Sprintf("partial %s %s is not approved by QA", c.Level, c.SSCC))
		}
	}
	return p, nil
}

// RejectEvent is an item of a batch whose reject did not reach the PLC by
// its deadline (or a unit in flight when the edge stopped), and the
// supervisor's e-signed confirmation that it was found and removed (nil
// while it was not).
type RejectEvent struct {
	NotDelivered record.RejectNotDelivered
	Ref          store.Ref
	Removed      *record.RejectRemoved
	RemovedRef   store.Ref
}

// UndeliveredRejects lists the batch's reject.not_delivered records, each
// with its reject.removed confirmation, in chain order.
func UndeliveredRejects(ctx context.Context, st store.Store, b store.Batch) ([]RejectEvent, error) {
	out := []RejectEvent{}
	open := map[string][]int{} // item id -> indexes in out still unconfirmed, oldest first
	f := store.RecordFilter{Edge: b.Edge, Kinds: []record.Kind{record.KindRejectNotDelivered, record.KindRejectRemoved}}
	if !b.StartedAt.IsZero() {
		f.From = b.StartedAt.Add(-time.Minute) // record times are the edge's clock
	}
	err := st.ScanRecords(ctx, f, func(r store.Stored) error {
		switch r.Record.Kind {
		case record.KindRejectNotDelivered:
			var nd record.RejectNotDelivered
			if err := json.Unmarshal(r.Record.Body, &nd); err != nil {
				return fmt.Errorf("record %s: %w", r.Ref(), err)
			}
			if nd.Batch == b.Batch {
				open[nd.ID] = append(open[nd.ID], len(out))
				out = append(out, RejectEvent{NotDelivered: nd, Ref: r.Ref()})
			}
		case record.KindRejectRemoved:
			var rm record.RejectRemoved
			if err := json.Unmarshal(r.Record.Body, &rm); err != nil {
				return fmt.Errorf("record %s: %w", r.Ref(), err)
			}
			if idx := open[rm.ID]; len(idx) > 0 && rm.Batch == b.Batch {
				out[idx[0]].Removed, out[idx[0]].RemovedRef = &rm, r.Ref()
				open[rm.ID] = idx[1:]
			}
		}
		return nil
	})
	return out, err
}

// ClosedRecord reads and decodes a batch's batch.closed record.
func ClosedRecord(ctx context.Context, st store.Store, b store.Batch) (store.Stored, *record.BatchClosed, error) {
	if b.Closed.Seq == 0 {
		return store.Stored{}, nil, nil
	}
	r, err := Record(ctx, st, b.Closed)
	if err != nil {
		return r, nil, err
	}
	var bc record.BatchClosed
	if err := json.Unmarshal(r.Record.Body, &bc); err != nil {
		return r, nil, fmt.Errorf("batch.closed record %s: %w", b.Closed, err)
	}
	return r, &bc, nil
}

func (s *Service) batchRelease(ctx context.Context, target string, _ map[string]string) (Intent, error) {
	edge, batch, ok := store.SplitTarget(target)
	if !ok {
		return Intent{}, fmt.Errorf("%w: batch %q: want edge/batch", ErrUnknown, target)
	}
	b, err := s.opt.Store.Batch(ctx, edge, batch)
	if errors.Is(err, store.ErrNotFound) {
		return Intent{}, fmt.Errorf("%w: batch %s of %s", ErrUnknown, batch, edge)
	}
	if err != nil {
		return Intent{}, err
	}
	if b.Closed.Seq == 0 {
		return Intent{}, refused("batch %s is %s: only a closed batch is released", batch, b.State)
	}
	return Intent{
		Action: store.ActionBatchReleased, Target: store.BatchTarget(edge, batch), Ref: b.Closed, MinRole: auth.RoleQA,
		Field: "state", Old: "closed", New: "released",
		Check: func(ctx context.Context, signed store.Stored) error {
			// Read again under the signing lock: the batch may have changed.
			b, err := s.opt.Store.Batch(ctx, edge, batch)
			if err != nil {
				return err
			}
			var bc record.BatchClosed
			if err := json.Unmarshal(signed.Record.Body, &bc); err != nil || signed.Record.Kind != record.KindBatchClosed {
				return fmt.Errorf("record %s is not the batch.closed record of %s", signed.Ref(), batch)
			}
			p, err := ReleaseProblems(ctx, s.opt.Store, b, &bc)
			if err != nil {
				return err
			}
			if len(p) > 0 {
				return refused("batch %s cannot be released: %s", batch, strings.Join(p, "; "))
			}
			return nil
		},
	}, nil
}

func (s *Service) approvePartial(ctx context.Context, target string, _ map[string]string) (Intent, error) {
	edge, sscc, ok := store.SplitTarget(target)
	if !ok {
		return Intent{}, fmt.Errorf("%w: container %q: want edge/sscc", ErrUnknown, target)
	}
	c, err := s.opt.Store.Container(ctx, sscc)
	if errors.Is(err, store.ErrNotFound) || (err == nil && c.Edge != edge) {
		return Intent{}, fmt.Errorf("%w: container %s of %s", ErrUnknown, sscc, edge)
	}
	if err != nil {
		return Intent{}, err
	}
	if !c.Closed || !c.Partial || c.CloseRecord.Seq == 0 {
		return Intent{}, refused("%s %s is not a closed partial container", c.Level, sscc)
	}
	if c.ApprovedBy != "" {
		return Intent{}, refused("%s %s was already approved by %s", c.Level, sscc, c.ApprovedName)
	}
	return Intent{
		Action: store.ActionPartialApproved, Target: store.ContainerTarget(edge, sscc), Ref: c.CloseRecord, MinRole: auth.RoleQA,
		Field: "count", New: fmt.Sprint(c.Count),
		Check: func(ctx context.Context, signed store.Stored) error {
			c, err := s.opt.Store.Container(ctx, sscc)
			if err != nil {
				return err
			}
			if c.ApprovedBy != "" || c.CloseRecord != signed.Ref() {
				return refused("%s %s changed meanwhile (reopened or approved)", c.Level, sscc)
			}
			return nil
		},
	}, nil
}

// correct: a record correction. Nothing stored is changed: the correction
// is a new journal record naming the corrected record, the field, the old
// and the new value and the reason, and the views show both.
func (s *Service) correct(ctx context.Context, target string, params map[string]string) (Intent, error) {
	ref, err := store.ParseRef(target)
	if err != nil {
		return Intent{}, fmt.Errorf("%w: %v", ErrUnknown, err)
	}
	field, newv := strings.TrimSpace(params["field"]), params["new"]
	if field == "" || newv == "" {
		return Intent{}, refused("a correction names the field and its corrected value")
	}
	return Intent{Action: store.ActionRecordCorrected, Target: ref.String(), Ref: ref, MinRole: auth.RoleQA, Field: field, Old: params["old"], New: newv,
		Check: func(ctx context.Context, signed store.Stored) error {
			if store.IsJournal(signed.Record.Edge) && signed.Record.Kind == record.KindUserAction {
				var a record.UserAction
				if json.Unmarshal(signed.Record.Body, &a) == nil && a.Signature != nil {
					return refused("record %s is an e-signature: a signature is not corrected, it is countered by a new one", signed.Ref())
				}
			}
			return nil
		}}, nil
}

// review signs any stored record with the given meaning (e.g. a review of a
// downtime record); params["action"] may name the action (default
// record.signed).
func (s *Service) review(ctx context.Context, target string, params map[string]string) (Intent, error) {
	ref, err := store.ParseRef(target)
	if err != nil {
		return Intent{}, fmt.Errorf("%w: %v", ErrUnknown, err)
	}
	action := params["action"]
	if action == "" {
		action = "record.signed"
	}
	if !record.Kind(action).Valid() || action == store.ActionBatchReleased || action == store.ActionPartialApproved || action == store.ActionRecordCorrected {
		return Intent{}, refused("action %q is not a review action", action)
	}
	return Intent{Action: action, Target: ref.String(), Ref: ref, MinRole: auth.RoleSupervisor}, nil
}
