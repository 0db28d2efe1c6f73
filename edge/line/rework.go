package line

import (
	"context"
	"fmt"

	"github.com/serialine/serialine/edge/store"
	"github.com/serialine/serialine/sync/record"
)

// Dispositions of units taken out of the saleable flow.
const (
	DispositionDestroyed = "destroyed"
	DispositionSample    = "sample"
	DispositionRework    = "rework"
)

func validDisposition(d string) bool {
	return d == DispositionDestroyed || d == DispositionSample || d == DispositionRework
}

func needSignature(sig *record.Signature, what string) error {
	if sig == nil || sig.User == "" {
		return ruleErr("%s needs an e-signature", what)
	}
	return nil
}

// Dispose records the final disposition of a rejected unit (destroyed,
// sample, rework). Its serial was decommissioned at the reject and is never
// used again, whatever the disposition.
func (e *Engine) Dispose(ctx context.Context, serial, disposition, reason string, sig *record.Signature) error {
	_, err := e.do(ctx, "dispose", func(tx *store.Tx) (any, error) {
		if err := needSignature(sig, "a disposition"); err != nil {
			return nil, err
		}
		if !validDisposition(disposition) {
			return nil, ruleErr("disposition %q: want destroyed, sample or rework", disposition)
		}
		b := e.b
		if b == nil {
			return nil, ruleErr("no active batch")
		}
		u, _, err := e.loadUnit(tx, b.GTIN, serial)
		if err != nil {
			return nil, err
		}
		if u.Batch != b.ID {
			return nil, ruleErr("unit %s belongs to batch %s", serial, u.Batch)
		}
		if u.Status != UnitDecommissioned || u.Reason == "" {
			return nil, ruleErr("unit %s is %s: only rejected units get a disposition (pull good units with sample or destroy)", serial, u.Status)
		}
		_, err = tx.Append(record.KindUnitDisposition, record.UnitDisposition{Batch: b.ID, GTIN: b.GTIN, Serial: serial, Disposition: disposition, Reason: reason, Signature: sig})
		return nil, err
	})
	return err
}

// PullGood takes a verified good unit out of the flow as a QA sample or
// because it was destroyed (damaged) after verification. The unit must not
// be in a container (unpack it first). Its serial is decommissioned.
func (e *Engine) PullGood(ctx context.Context, serial, disposition, reason string, sig *record.Signature) error {
	_, err := e.do(ctx, "pull", func(tx *store.Tx) (any, error) {
		if err := needSignature(sig, "pulling a good unit"); err != nil {
			return nil, err
		}
		if disposition != DispositionSample && disposition != DispositionDestroyed {
			return nil, ruleErr("a good unit is pulled as sample or destroyed, not %q", disposition)
		}
		b := e.b
		if b == nil {
			return nil, ruleErr("no active batch")
		}
		u, key, err := e.loadUnit(tx, b.GTIN, serial)
		if err != nil {
			return nil, err
		}
		switch {
		case u.Batch != b.ID:
			return nil, ruleErr("unit %s belongs to batch %s", serial, u.Batch)
		case u.Status != UnitGood:
			return nil, ruleErr("unit %s is %s, not good", serial, u.Status)
		case u.Parent != "":
			return nil, ruleErr("unit %s is in case %s: unpack it first", serial, u.Parent)
		}
		if disposition == DispositionSample {
			u.Status = UnitSample
			b.Samples++
		} else {
			u.Status = UnitDestroyed
			b.Destroyed++
		}
		u.Reason = reason
		if err := putUnit(tx, key, u); err != nil {
			return nil, err
		}
		if _, err := tx.Append(record.KindUnitDecommissioned, record.UnitDecommissioned{Batch: b.ID, GTIN: b.GTIN, Serial: serial, Reason: reason, Disposition: disposition}); err != nil {
			return nil, err
		}
		_, err = tx.Append(record.KindUnitDisposition, record.UnitDisposition{Batch: b.ID, GTIN: b.GTIN, Serial: serial, Disposition: disposition, Reason: reason, Signature: sig})
		return nil, err
	})
	return err
}

func (e *Engine) loadUnit(tx *store.Tx, gtin, serial string) (*unit, []byte, error) {
	key := unitKey(gtin, serial)
	var u unit
	ok, err := getUnit(tx, key, &u)
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		return nil, nil, ruleErr("unit %s was never commissioned on this line", record.UnitID(gtin, serial))
	}
	return &u, key, nil
}

// Unpack removes a child from a container (rework). A closed container is
// reopened; a container whose own parent is closed must be unpacked from it
// first. Every step is recorded with the e-signature.
func (e *Engine) Unpack(ctx context.Context, parent, child, reason string, sig *record.Signature) error {
	_, err := e.do(ctx, "unpack", func(tx *store.Tx) (any, error) {
		if err := needSignature(sig, "rework (unpack)"); err != nil {
			return nil, err
		}
		if e.b == nil {
			return nil, ruleErr("no active batch")
		}
		c, err := e.loadContainer(tx, parent)
		if err != nil {
			return nil, err
		}
		if c.Batch != e.b.ID {
			return nil, ruleErr("%s %s belongs to batch %s, not the active batch %s", c.Level, c.SSCC, c.Batch, e.b.ID)
		}
		if c.Parent != "" {
			pc, err := e.loadContainer(tx, c.Parent)
			if err != nil {
				return nil, err
			}
			if pc.Closed {
				return nil, ruleErr("%s %s is on closed %s %s: unpack it from there first", c.Level, c.SSCC, pc.Level, pc.SSCC)
			}
		}
		idx := -1
		for i, ch := range c.Children {
			if ch == child || (c.Level == LevelPallet && trimContainerID(ch) == trimContainerID(child)) {
				idx = i
				break
			}
		}
		if idx < 0 {
			return nil, ruleErr("%s is not in %s %s", child, c.Level, c.SSCC)
		}
		child = c.Children[idx]
		if c.Closed {
			if err := e.reopen(tx, c, reason, sig); err != nil {
				return nil, err
			}
		}
		c.Children = append(c.Children[:idx], c.Children[idx+1:]...)
		switch c.Level {
		case LevelCase:
			gtin, serial, _ := parseUnitID(child)
			u, key, err := e.loadUnit(tx, gtin, serial)
			if err != nil {
				return nil, err
			}
			u.Parent = ""
			if err := putUnit(tx, key, u); err != nil {
				return nil, err
			}
			e.b.Packed--
		case LevelPallet:
			cc, err := e.loadContainer(tx, trimContainerID(child))
			if err != nil {
				return nil, err
			}
			cc.Parent = ""
			if err := tx.PutJSON(store.Containers, []byte(cc.SSCC), cc); err != nil {
				return nil, err
			}
		}
		if err := tx.PutJSON(store.Containers, []byte(c.SSCC), c); err != nil {
			return nil, err
		}
		_, err = tx.Append(record.KindUnpacked, record.Unpacked{Batch: c.Batch, Parent: c.SSCC, Level: c.Level, Children: []string{child}, Reason: reason, Signature: sig})
		return nil, err
	})
	return err
}

// reopen marks a closed container open again (rework) and takes it out of
// the closed counts.
func (e *Engine) reopen(tx *store.Tx, c *container, reason string, sig *record.Signature) error {
	c.Closed, c.Partial = false, false
	if c.Batch == e.b.ID {
		e.b.Open = append(e.b.Open, c.SSCC)
	}
	if c.Level == LevelCase {
		e.b.CasesClosed--
		e.b.Aggregated -= len(c.Children)
	} else {
		e.b.PalletsClosed--
	}
	_, err := tx.Append(record.KindContainerReopened, record.ContainerReopened{Batch: c.Batch, SSCC: c.SSCC, Level: c.Level, Reason: reason, Signature: sig})
	if err == nil {
		e.log.Info().Str("sscc", c.SSCC).Str("reason", reason).Msg(fmt.Sprintf("%s reopened for rework", c.Level))
	}
	return err
}
