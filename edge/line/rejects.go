package line

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/serialine/serialine/edge/store"
	"github.com/serialine/serialine/sync/record"
)

// Reject pulses are fail-safe. Every reject has a deadline (the config's
// edge.reject_deadline after its verdict): the unit is still before the
// gate until then. The PLC loop sends the pulse, retrying a failed write
// while the deadline allows, and never sends it after the deadline: a late
// pulse would throw out another, good unit while the bad one went through.
// A pulse that was not delivered in time (the write failed, timed out or was
// answered only after the deadline, the PLC queue was full, or the edge
// stopped before the delivery was known) holds the batch with the alarm
// reject_not_delivered and a reject.not_delivered record naming the unit and
// the case open at its verdict; the unit stays rejected and decommissioned.
// The batch resumes (and closes) only after a supervisor confirms, e-signed,
// that the unit was found and removed (ConfirmRemoval). Counters are not
// actuations: a failed counters write is retried.

const (
	alarmRejectNotDelivered = "reject_not_delivered"
	// defaultRejectDeadline applies when the config gives none.
	defaultRejectDeadline = 500 * time.Millisecond
)

// pendingReject is a reject pulse on its way to the PLC, or (in
// batch.Undelivered) one that did not reach it in time.
type pendingReject struct {
	ID       string `json:"id"`               // the unit's serial, or caseread-N
	Serial   string `json:"serial,omitempty"` // the unit's serial (product or challenge unit)
	Reason   string `json:"reason"`
	Case     string `json:"case,omitempty"` // the case open at the verdict
	At       int64  `json:"at"`             // verdict, unix nanos
	Deadline int64  `json:"deadline"`       // unix nanos
	Detail   string `json:"detail,omitempty"`
}

// UndeliveredReject is a reject that did not reach the PLC in time, as
// operators see it (Status.RejectsNotDelivered).
type UndeliveredReject struct {
	ID        string    `json:"id"`
	Unit      string    `json:"unit,omitempty"`
	Reason    string    `json:"reason"`
	Case      string    `json:"case,omitempty"`
	VerdictAt time.Time `json:"verdict_at"`
	Detail    string    `json:"detail"`
}

func (e *Engine) rejectDeadline() time.Duration {
	if d := e.cfg.Edge.RejectDeadline.D(); d > 0 {
		return d
	}
	return defaultRejectDeadline
}

// reject signals a reject to the PLC after commit: id names what is
// rejected (a serial, or caseread-N), serial the unit if any.
func (e *Engine) reject(id, serial, reason string) {
	b := e.b
	now := e.now()
	deadline := now.Add(e.rejectDeadline())
	b.Rejects = append(b.Rejects, pendingReject{ID: id, Serial: serial, Reason: reason, Case: b.OpenCase, At: now.UnixNano(), Deadline: deadline.UnixNano()})
	e.fx.plc = append(e.fx.plc, plcOp{reject: true, id: id, deadline: deadline})
}

// evRejectDone: the PLC loop delivered a reject pulse in time (detail
// empty) or gave up on it (detail says why).
type evRejectDone struct {
	id     string
	detail string
}

func (e *Engine) rejectDone(tx *store.Tx, ev evRejectDone) (bool, error) {
	b := e.b
	if b == nil {
		e.log.Warn().Str("reject", ev.id).Str("detail", ev.detail).Msg("reject outcome with no active batch")
		return false, nil
	}
	idx := -1
	for i, p := range b.Rejects {
		if p.ID == ev.id {
			idx = i
			break
		}
	}
	if idx < 0 {
		e.log.Warn().Str("reject", ev.id).Msg("outcome of a reject the batch does not wait for")
		return false, nil
	}
	p := b.Rejects[idx]
	b.Rejects = append(b.Rejects[:idx:idx], b.Rejects[idx+1:]...)
	if ev.detail == "" {
		return true, nil
	}
	p.Detail = ev.detail
	return true, e.undelivered(tx, p)
}

// undelivered records a reject that did not reach the PLC in time and holds
// the batch until the item is found and removed.
func (e *Engine) undelivered(tx *store.Tx, p pendingReject) error {
	b := e.b
	b.Undelivered = append(b.Undelivered, p)
	rec := record.RejectNotDelivered{
		Batch: b.ID, ID: p.ID, Reason: p.Reason, Case: p.Case, Detail: p.Detail,
		VerdictAt: time.Unix(0, p.At).UTC().Format(time.RFC3339Nano), Deadline: time.Unix(0, p.Deadline).UTC().Format(time.RFC3339Nano),
	}
	if p.Serial != "" {
		rec.Unit = record.UnitID(b.GTIN, p.Serial)
	}
	if _, err := tx.Append(record.KindRejectNotDelivered, rec); err != nil {
		return err
	}
	where := ""
	if p.Case != "" {
		where = ", most likely in case " + p.Case
	}
	msg := fmt.Sprintf("the reject of %s (%s) did not reach the PLC by its deadline (%s): it may have gone downstream%s; find and remove it, then a supervisor confirms; line held", p.ID, p.Reason, p.Detail, where)
	if p.Reason == ReasonRestart {
		msg = fmt.Sprintf("unit %s was in flight when the edge stopped (%s): it may have gone downstream%s; find and remove it, then a supervisor confirms; line held", p.ID, p.Detail, where)
	}
	e.log.Error().Str("batch", b.ID).Str("reject", p.ID).Str("reason", p.Reason).Str("case", p.Case).Str("detail", p.Detail).Msg("reject not delivered: line held")
	if err := e.alarm(tx, alarmRejectNotDelivered, true, msg); err != nil {
		return err
	}
	if b.State == BatchRunning || b.State == BatchComplete {
		return e.setState(tx, BatchHeld, msg, "system")
	}
	return nil
}

// recoverRejects: rejects on their way when the edge stopped may not have
// been delivered.
func (e *Engine) recoverRejects(tx *store.Tx) error {
	b := e.b
	pending := b.Rejects
	b.Rejects = nil
	for _, p := range pending {
		p.Detail = "the edge stopped before the pulse was known to be delivered"
		if err := e.undelivered(tx, p); err != nil {
			return err
		}
	}
	return nil
}

// ConfirmRemoval records a supervisor's e-signed confirmation that an item
// whose reject was not delivered (id: its serial, unit id or caseread-N) was
// found and removed. When none is left the alarm clears; the batch stays
// held until someone resumes it.
func (e *Engine) ConfirmRemoval(ctx context.Context, id, note string, sig *record.Signature) error {
	_, err := e.do(ctx, "confirm removal", func(tx *store.Tx) (any, error) {
		if sig == nil || sig.User == "" {
			return nil, ruleErr("confirming that a unit was removed needs a supervisor's e-signature")
		}
		if strings.TrimSpace(note) == "" {
			return nil, ruleErr("say where the unit was found and what was done with it")
		}
		b := e.b
		if b == nil {
			return nil, ruleErr("no active batch")
		}
		if _, serial, ok := parseUnitID(id); ok {
			id = serial
		}
		idx := -1
		for i, p := range b.Undelivered {
			if p.ID == id {
				idx = i
			}
		}
		if idx < 0 {
			ids := make([]string, len(b.Undelivered))
			for i, p := range b.Undelivered {
				ids[i] = p.ID
			}
			if len(ids) == 0 {
				return nil, ruleErr("batch %s has no reject that was not delivered", b.ID)
			}
			return nil, ruleErr("%q is not a reject that was not delivered (those are: %s)", id, strings.Join(ids, ", "))
		}
		p := b.Undelivered[idx]
		b.Undelivered = append(b.Undelivered[:idx:idx], b.Undelivered[idx+1:]...)
		rec := record.RejectRemoved{Batch: b.ID, ID: p.ID, Note: note, Signature: sig}
		if p.Serial != "" {
			rec.Unit = record.UnitID(b.GTIN, p.Serial)
		}
		if _, err := tx.Append(record.KindRejectRemoved, rec); err != nil {
			return nil, err
		}
		e.log.Info().Str("batch", b.ID).Str("reject", p.ID).Str("user", sig.User).Msg("removal of a unit whose reject was not delivered confirmed")
		if len(b.Undelivered) == 0 {
			return nil, e.alarm(tx, alarmRejectNotDelivered, false, "every item whose reject was not delivered was found and removed")
		}
		return nil, nil
	})
	return err
}

func (e *Engine) undeliveredList() []UndeliveredReject {
	b := e.b
	if b == nil || len(b.Undelivered) == 0 {
		return nil
	}
	out := make([]UndeliveredReject, len(b.Undelivered))
	for i, p := range b.Undelivered {
		out[i] = UndeliveredReject{ID: p.ID, Reason: p.Reason, Case: p.Case, VerdictAt: time.Unix(0, p.At).UTC(), Detail: p.Detail}
		if p.Serial != "" {
			out[i].Unit = record.UnitID(b.GTIN, p.Serial)
		}
	}
	return out
}

// undeliveredBlocks refuses an action while items whose reject was not
// delivered have not been confirmed removed.
func (e *Engine) undeliveredBlocks(what string) error {
	b := e.b
	if len(b.Undelivered) == 0 {
		return nil
	}
	ids := make([]string, len(b.Undelivered))
	for i, p := range b.Undelivered {
		ids[i] = p.ID
	}
	return ruleErr("batch %s cannot %s: the reject of %s did not reach the PLC; a supervisor must confirm each was found and removed (serialine reject removed ID)", b.ID, what, strings.Join(ids, ", "))
}

// closeBlockers refuses a batch close while a reject or a container label
// is unsettled.
func (e *Engine) closeBlockers() error {
	b := e.b
	if err := e.undeliveredBlocks("close"); err != nil {
		return err
	}
	if len(b.Rejects) > 0 {
		return ruleErr("batch %s: %d reject pulses are on their way to the PLC", b.ID, len(b.Rejects))
	}
	if len(b.LabelsQueued) > 0 {
		return ruleErr("batch %s: the SSCC labels of %s are on their way to the printer", b.ID, strings.Join(b.LabelsQueued, ", "))
	}
	if len(b.LabelsPending) > 0 {
		return ruleErr("batch %s: the SSCC labels of %s are pending: check the containers and reprint them (serialine container label SSCC)", b.ID, strings.Join(b.LabelsPending, ", "))
	}
	return nil
}
