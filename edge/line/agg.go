package line

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/serialine/serialine/edge/store"
	"github.com/serialine/serialine/sync/gs1"
	"github.com/serialine/serialine/sync/record"
)

// Aggregation modes (product config).
const (
	AggregationSequential = "sequential"
	AggregationAutomatic  = "automatic"
	AggregationManual     = "manual"
)

// Packaging levels.
const (
	LevelCase   = "case"
	LevelPallet = "pallet"
)

// packSequential puts a verified good unit into the open case (opening one
// if needed); a full case is validated and closed, then packed into the open
// pallet, and a full pallet is closed. In automatic and manual aggregation
// modes good units stay loose until a case read or a scan packs them.
func (e *Engine) packSequential(tx *store.Tx, serial string) error {
	b := e.b
	if mode := e.product(b.GTIN).Aggregation; mode == AggregationAutomatic || mode == AggregationManual {
		return nil
	}
	if b.OpenCase == "" {
		sscc, err := e.openContainer(tx, LevelCase)
		if err != nil {
			return e.holdOnRule(tx, err)
		}
		b.OpenCase = sscc
	}
	c, err := e.pack(tx, b.OpenCase, record.UnitID(b.GTIN, serial))
	if err != nil {
		return err
	}
	if len(c.Children) < b.UnitsPerCase {
		return nil
	}
	return e.closeFull(tx, c)
}

// palletize puts a closed case onto the open pallet (opening one if needed)
// and closes the pallet when full.
func (e *Engine) palletize(tx *store.Tx, c *container) error {
	b := e.b
	if b.OpenPallet == "" {
		sscc, err := e.openContainer(tx, LevelPallet)
		if err != nil {
			return e.holdOnRule(tx, err)
		}
		b.OpenPallet = sscc
	}
	p, err := e.pack(tx, b.OpenPallet, record.ContainerID(c.SSCC))
	if err != nil {
		return err
	}
	if len(p.Children) < b.CasesPerPallet {
		return nil
	}
	return e.closeFull(tx, p)
}

// CaseRead applies an automatic aggregation read: the case camera saw these
// unit codes (GS1 data) in one case. All of them must be verified good units
// of the batch, not in another container, and exactly a case's count; then a
// case is opened, packed, closed and put on the pallet. Otherwise nothing is
// packed and the read is recorded as refused (the case goes to rework).
func (e *Engine) CaseRead(ctx context.Context, camera string, codes []string) (string, error) {
	v, err := e.do(ctx, "case read", func(tx *store.Tx) (any, error) {
		b := e.b
		if b == nil || (b.State != BatchRunning && b.State != BatchHeld && b.State != BatchComplete) {
			return nil, ruleErr("no running batch (active: %s)", e.describe())
		}
		ids := make([]string, 0, len(codes))
		problem := ""
		for _, code := range codes {
			els, err := gs1.Parse(code)
			if err != nil {
				problem = fmt.Sprintf("code %q: %v", printable(code), err)
				break
			}
			gtin, _ := els.Get("01")
			serial, _ := els.Get("21")
			ids = append(ids, record.UnitID(gtin, serial))
		}
		if problem == "" && len(ids) != b.UnitsPerCase {
			problem = fmt.Sprintf("case holds %d codes, a case of %s holds %d", len(ids), b.GTIN, b.UnitsPerCase)
		}
		if problem == "" {
			seen := map[string]bool{}
			for _, id := range ids {
				if seen[id] {
					problem = fmt.Sprintf("unit %s read twice in the case", id)
					break
				}
				seen[id] = true
			}
		}
		if problem != "" {
			// Record the refused read in its own transaction-safe way: the
			// command returns a rule error, so write the evidence first.
			return nil, &caseReadRefused{RuleError: RuleError{Msg: problem}, camera: camera, codes: codes, problem: problem}
		}
		sscc, err := e.openContainer(tx, LevelCase)
		if err != nil {
			return nil, err
		}
		var c *container
		for _, id := range ids {
			if c, err = e.pack(tx, sscc, id); err != nil {
				return nil, err
			}
		}
		if err := e.closeContainer(tx, c, false, nil); err != nil {
			return nil, err
		}
		if _, err := tx.Append(record.KindCaseRead, record.CaseRead{Batch: b.ID, Camera: camera, SSCC: sscc, Codes: ids, Accepted: true}); err != nil {
			return nil, err
		}
		return sscc, e.palletize(tx, c)
	})
	var refused *caseReadRefused
	if errors.As(err, &refused) {
		return "", e.recordRefusedCaseRead(ctx, refused)
	}
	var re *RuleError
	if errors.As(err, &re) {
		// A unit failed the interlock: record the refusal as evidence too.
		return "", errors.Join(err, e.recordRefusedCaseRead(ctx, &caseReadRefused{camera: camera, codes: codes, problem: re.Msg}))
	}
	if err != nil {
		return "", err
	}
	return v.(string), nil
}

// caseReadRefused is a rule refusal that carries what to record about it.
type caseReadRefused struct {
	RuleError
	camera, problem string
	codes           []string
}

// As lets the engine treat the refusal as a RuleError (nothing changed).
func (c *caseReadRefused) As(target any) bool {
	if t, ok := target.(**RuleError); ok {
		*t = &c.RuleError
		return true
	}
	return false
}

func (e *Engine) recordRefusedCaseRead(ctx context.Context, r *caseReadRefused) error {
	_, err := e.do(ctx, "case read refused", func(tx *store.Tx) (any, error) {
		codes := make([]string, len(r.codes))
		for i, c := range r.codes {
			codes[i] = printable(c)
		}
		batch := ""
		if e.b != nil {
			batch = e.b.ID
		}
		_, err := tx.Append(record.KindCaseRead, record.CaseRead{Batch: batch, Camera: r.camera, Codes: codes, Accepted: false, Problem: r.problem})
		if err != nil {
			return nil, err
		}
		if e.b != nil {
			// The case goes to rework through the reject gate.
			e.b.CaseReadRejects++
			e.reject(fmt.Sprintf("caseread-%d", e.b.CaseReadRejects), "", "case_read_refused")
		}
		return nil, nil
	})
	if err != nil {
		return err
	}
	return &RuleError{Msg: "case read refused: " + r.problem}
}

// holdOnRule turns a rule refusal met during production (e.g. the SSCC
// block is used up) into a held line with an alarm; other errors stay fatal.
func (e *Engine) holdOnRule(tx *store.Tx, err error) error {
	var re *RuleError
	if !errors.As(err, &re) {
		return err
	}
	if aerr := e.alarm(tx, "aggregation_blocked", true, re.Msg+"; line held"); aerr != nil {
		return aerr
	}
	if e.b.State == BatchRunning {
		return e.setState(tx, BatchHeld, re.Msg, "system")
	}
	return nil
}

// openContainer allocates the next SSCC and records the new container.
func (e *Engine) openContainer(tx *store.Tx, level string) (string, error) {
	b := e.b
	r := e.cfg.Company.SSCCRange
	next := max(r.First, 1)
	if v := tx.Get(store.State, []byte("sscc_next")); v != nil {
		n, err := strconv.ParseUint(string(v), 10, 64)
		if err != nil {
			return "", fmt.Errorf("line engine: sscc counter %q: %w", v, err)
		}
		next = max(n, next)
	}
	if r.Last != 0 && next > r.Last {
		return "", ruleErr("the line's SSCC block %d-%d is used up: configure a new company.sscc_range", r.First, r.Last)
	}
	ext := byte('0' + e.cfg.Company.SSCCExtension)
	sscc, err := gs1.SSCC(ext, e.cfg.Company.GS1Prefix, next)
	if err != nil {
		return "", fmt.Errorf("line engine: SSCC %d: %w", next, err)
	}
	if tx.Has(store.Containers, []byte(sscc)) {
		// Another block of the company (a changed prefix, extension or
		// range) already issued it: an SSCC is never issued twice.
		return "", ruleErr("SSCC %s (serial reference %d) was already issued on this line: configure an unused company.sscc_range", sscc, next)
	}
	if err := tx.Put(store.State, []byte("sscc_next"), []byte(strconv.FormatUint(next+1, 10))); err != nil {
		return "", err
	}
	c := container{SSCC: sscc, Level: level, Batch: b.ID, GTIN: b.GTIN}
	if err := tx.PutJSON(store.Containers, []byte(sscc), &c); err != nil {
		return "", err
	}
	b.Open = append(b.Open, sscc)
	_, err = tx.Append(record.KindContainerOpened, record.ContainerOpened{Batch: b.ID, SSCC: sscc, Level: level})
	return sscc, err
}

func (e *Engine) loadContainer(tx *store.Tx, sscc string) (*container, error) {
	var c container
	ok, err := tx.GetJSON(store.Containers, []byte(sscc), &c)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ruleErr("container %s does not exist on this line", sscc)
	}
	return &c, nil
}

// pack links a child (unit id or case container id) into an open container.
// Pack refuses what can never be valid (a decommissioned or rejected unit, a
// child of another batch/GTIN or already in a container, a full or closed
// container); closing re-validates everything.
func (e *Engine) pack(tx *store.Tx, parent, child string) (*container, error) {
	c, err := e.loadContainer(tx, parent)
	if err != nil {
		return nil, err
	}
	if c.Closed {
		return nil, ruleErr("%s %s is closed", c.Level, c.SSCC)
	}
	limit := e.capacity(c)
	if len(c.Children) >= limit {
		return nil, ruleErr("%s %s is full (%d of %d)", c.Level, c.SSCC, len(c.Children), limit)
	}
	switch c.Level {
	case LevelCase:
		gtin, serial, ok := parseUnitID(child)
		if !ok {
			return nil, ruleErr("%q is not a unit id (01)GTIN(21)SERIAL", child)
		}
		var u unit
		key := unitKey(gtin, serial)
		found, err := getUnit(tx, key, &u)
		if err != nil {
			return nil, err
		}
		switch {
		case !found:
			return nil, ruleErr("unit %s was never commissioned on this line", child)
		case u.Status != UnitGood && u.Status != UnitCommissioned:
			return nil, ruleErr("unit %s is %s (%s) and can never be packed", child, u.Status, u.Reason)
		case u.Batch != c.Batch || gtin != c.GTIN:
			return nil, ruleErr("unit %s belongs to batch %s, case %s to batch %s", child, u.Batch, c.SSCC, c.Batch)
		case u.Parent != "":
			return nil, ruleErr("unit %s is already in case %s", child, u.Parent)
		}
		u.Parent = c.SSCC
		if err := putUnit(tx, key, &u); err != nil {
			return nil, err
		}
		e.b.Packed++
	case LevelPallet:
		sscc := trimContainerID(child)
		cc, err := e.loadContainer(tx, sscc)
		if err != nil {
			return nil, err
		}
		switch {
		case cc.Level != LevelCase:
			return nil, ruleErr("%s %s cannot go on a pallet", cc.Level, sscc)
		case !cc.Closed:
			return nil, ruleErr("case %s is not closed", sscc)
		case cc.Batch != c.Batch:
			return nil, ruleErr("case %s belongs to batch %s, pallet %s to batch %s", sscc, cc.Batch, c.SSCC, c.Batch)
		case cc.Parent != "":
			return nil, ruleErr("case %s is already on pallet %s", sscc, cc.Parent)
		}
		cc.Parent = c.SSCC
		if err := tx.PutJSON(store.Containers, []byte(sscc), cc); err != nil {
			return nil, err
		}
		child = record.ContainerID(sscc)
	}
	c.Children = append(c.Children, child)
	if err := tx.PutJSON(store.Containers, []byte(c.SSCC), c); err != nil {
		return nil, err
	}
	_, err = tx.Append(record.KindPacked, record.Packed{Batch: c.Batch, Parent: c.SSCC, Level: c.Level, Children: []string{child}})
	return c, err
}

func (e *Engine) capacity(c *container) int {
	if c.Level == LevelPallet {
		return e.b.CasesPerPallet
	}
	return e.b.UnitsPerCase
}

func trimContainerID(id string) string {
	if len(id) > 4 && id[:4] == "(00)" {
		return id[4:]
	}
	return id
}

// closeContainer validates and closes a container. This is the aggregation
// interlock (21 CFR 11.10(f)): it refuses unless every child is verified
// good, of the same batch and GTIN, linked to this container and no other,
// and the count matches the configured count (partial closes aside).
func (e *Engine) closeContainer(tx *store.Tx, c *container, partial bool, sig *record.Signature) error {
	if c.Closed {
		return ruleErr("%s %s is already closed", c.Level, c.SSCC)
	}
	if err := e.validateClose(tx, c, partial); err != nil {
		return err
	}
	printer := e.labelBy[c.Level]
	if printer != "" && !e.labelReady(c.Level) {
		return ruleErr("%s %s cannot close: printer %s, which prints its SSCC label, is %s", c.Level, c.SSCC, printer, e.printerState(printer))
	}
	c.Closed, c.Partial = true, partial
	if err := tx.PutJSON(store.Containers, []byte(c.SSCC), c); err != nil {
		return err
	}
	e.b.Open = removeString(e.b.Open, c.SSCC)
	e.b.Waiting = removeString(e.b.Waiting, c.SSCC)
	if c.Level == LevelCase {
		e.b.CasesClosed++
		e.b.Aggregated += len(c.Children)
	} else {
		e.b.PalletsClosed++
	}
	if _, err := tx.Append(record.KindContainerClosed, record.ContainerClosed{
		Batch: c.Batch, SSCC: c.SSCC, Level: c.Level, Count: len(c.Children), Children: c.Children, Partial: partial, Signature: sig,
	}); err != nil {
		return err
	}
	if printer != "" {
		return e.queueLabel(tx, c, record.LabelQueued, "", nil)
	}
	return nil
}

// validateClose checks a container and, for a pallet, every case and unit
// below it.
func (e *Engine) validateClose(tx *store.Tx, c *container, partial bool) error {
	want := e.capacity(c)
	switch {
	case len(c.Children) == 0:
		return ruleErr("%s %s is empty", c.Level, c.SSCC)
	case !partial && len(c.Children) != want:
		return ruleErr("%s %s holds %d of %d: a partial close needs a supervisor's signature", c.Level, c.SSCC, len(c.Children), want)
	}
	return e.validateChildren(tx, c)
}

func (e *Engine) validateChildren(tx *store.Tx, c *container) error {
	var key []byte // one buffer for every unit key of the case
	for _, child := range c.Children {
		if c.Level == LevelCase {
			gtin, serial, ok := parseUnitID(child)
			if !ok {
				return ruleErr("case %s: child %q is not a unit id", c.SSCC, child)
			}
			key = appendUnitKey(key[:0], gtin, serial)
			var u unit
			found, err := getUnit(tx, key, &u)
			if err != nil {
				return err
			}
			switch {
			case !found:
				return ruleErr("case %s: unit %s was never commissioned on this line", c.SSCC, child)
			case u.Status != UnitGood:
				what := "not verified"
				if u.Status != UnitCommissioned {
					what = u.Status
					if u.Reason != "" {
						what += " (" + u.Reason + ")"
					}
				}
				return ruleErr("case %s: unit %s is %s", c.SSCC, child, what)
			case u.Batch != c.Batch || gtin != c.GTIN:
				return ruleErr("case %s: unit %s belongs to batch %s GTIN %s, not %s %s", c.SSCC, child, u.Batch, gtin, c.Batch, c.GTIN)
			case u.Parent != c.SSCC:
				return ruleErr("case %s: unit %s is linked to %q", c.SSCC, child, u.Parent)
			}
			continue
		}
		sscc := trimContainerID(child)
		cc, err := e.loadContainer(tx, sscc)
		if err != nil {
			return ruleErr("pallet %s: %v", c.SSCC, err)
		}
		switch {
		case !cc.Closed:
			return ruleErr("pallet %s: case %s is not closed", c.SSCC, sscc)
		case cc.Batch != c.Batch:
			return ruleErr("pallet %s: case %s belongs to batch %s", c.SSCC, sscc, cc.Batch)
		case cc.Parent != c.SSCC:
			return ruleErr("pallet %s: case %s is linked to %q", c.SSCC, sscc, cc.Parent)
		}
		if err := e.validateChildren(tx, cc); err != nil {
			return err
		}
	}
	return nil
}

// activeContainer refuses operator actions on a container of another batch.
func (e *Engine) activeContainer(tx *store.Tx, sscc string) error {
	c, err := e.loadContainer(tx, sscc)
	if err != nil {
		return err
	}
	if c.Batch != e.b.ID {
		return ruleErr("%s %s belongs to batch %s, not the active batch %s", c.Level, c.SSCC, c.Batch, e.b.ID)
	}
	return nil
}

// OpenContainer opens a new case or pallet for manual aggregation.
func (e *Engine) OpenContainer(ctx context.Context, level string) (string, error) {
	v, err := e.do(ctx, "open "+level, func(tx *store.Tx) (any, error) {
		if e.b == nil {
			return nil, ruleErr("no active batch")
		}
		if level != LevelCase && level != LevelPallet {
			return nil, ruleErr("level %q: want case or pallet", level)
		}
		return e.openContainer(tx, level)
	})
	if err != nil {
		return "", err
	}
	return v.(string), nil
}

// Pack links a child into a container (manual aggregation, e.g. a handheld scan).
func (e *Engine) Pack(ctx context.Context, parent, child string) error {
	_, err := e.do(ctx, "pack", func(tx *store.Tx) (any, error) {
		if e.b == nil {
			return nil, ruleErr("no active batch")
		}
		if err := e.activeContainer(tx, parent); err != nil {
			return nil, err
		}
		_, err := e.pack(tx, parent, child)
		return nil, err
	})
	return err
}

// CloseContainer validates and closes a container. partial needs a
// signature (supervisor) with a reason.
func (e *Engine) CloseContainer(ctx context.Context, sscc string, partial bool, sig *record.Signature) error {
	_, err := e.do(ctx, "close", func(tx *store.Tx) (any, error) {
		if e.b == nil {
			return nil, ruleErr("no active batch")
		}
		if partial && (sig == nil || sig.Reason == "") {
			return nil, ruleErr("partial close of %s needs a supervisor's e-signature with a reason", sscc)
		}
		if err := e.activeContainer(tx, sscc); err != nil {
			return nil, err
		}
		c, err := e.loadContainer(tx, sscc)
		if err != nil {
			return nil, err
		}
		if err := e.closeContainer(tx, c, partial, sig); err != nil {
			return nil, err
		}
		if e.b.OpenCase == sscc {
			e.b.OpenCase = ""
		}
		if e.b.OpenPallet == sscc {
			e.b.OpenPallet = ""
		}
		return nil, nil
	})
	return err
}

func removeString(list []string, s string) []string {
	out := list[:0]
	for _, x := range list {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}
