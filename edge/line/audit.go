package line

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/serialine/serialine/edge/serials"
	"github.com/serialine/serialine/edge/store"
)

// AuditReport is what Audit found in a store.
type AuditReport struct {
	Units      int      `json:"units"`      // serials ever used
	Containers int      `json:"containers"` // cases and pallets
	Closed     int      `json:"closed"`     // closed containers
	Problems   []string `json:"problems,omitempty"`
}

// Audit checks the invariants of a line's store (read-only): every serial
// ever pooled is available, reserved unused or used, exactly once; every
// batch's commissioned count matches its units; every closed container
// holds only verified good units (cases) or closed cases (pallets) of its
// batch, each linked to it and to no other container, with the configured
// count unless closed partial; every packed unit is linked back. The crash
// harness runs it after every kill.
func Audit(db *store.DB) (AuditReport, error) {
	var rep AuditReport
	problem := func(format string, a ...any) {
		if len(rep.Problems) < 200 {
			rep.Problems = append(rep.Problems, fmt.Sprintf(format, a...))
		}
	}
	err := db.View(func(tx *store.Tx) error {
		batches := map[string]*batch{}
		if err := tx.ForEachPrefix(store.Batches, nil, func(k, v []byte) error {
			var b batch
			if err := jsonUnmarshal(v, &b); err != nil {
				problem("batch %q: %v", k, err)
				return nil
			}
			batches[string(k)] = &b
			return nil
		}); err != nil {
			return err
		}
		perBatch := map[string]int{}
		perGTIN := map[string]int{}
		parentOf := map[string]string{} // unit id -> case it says it is in
		if err := tx.ForEachPrefix(store.Units, nil, func(k, v []byte) error {
			rep.Units++
			gtin, serial, _ := strings.Cut(string(k), "\x00")
			var u unit
			if err := u.decode(v); err != nil {
				problem("unit %s/%s: %v", gtin, serial, err)
				return nil
			}
			perGTIN[gtin]++
			perBatch[u.Batch]++
			if u.Parent != "" {
				parentOf[unitID(gtin, serial)] = u.Parent
			}
			return nil
		}); err != nil {
			return err
		}
		for id, b := range batches {
			if perBatch[id] != b.Commissioned {
				problem("batch %s: %d units commissioned, %d units in the store", id, b.Commissioned, perBatch[id])
			}
		}
		linked := map[string]string{} // child -> container listing it
		var pallets []*container
		if err := tx.ForEachPrefix(store.Containers, nil, func(k, v []byte) error {
			rep.Containers++
			var c container
			if err := jsonUnmarshal(v, &c); err != nil {
				problem("container %s: %v", k, err)
				return nil
			}
			b := batches[c.Batch]
			if b == nil {
				problem("%s %s: batch %q does not exist", c.Level, c.SSCC, c.Batch)
				return nil
			}
			for _, ch := range c.Children {
				if other, dup := linked[ch]; dup {
					problem("%s is in %s and in %s", ch, other, c.SSCC)
				}
				linked[ch] = c.SSCC
			}
			if c.Closed {
				rep.Closed++
			}
			switch c.Level {
			case LevelCase:
				if c.Closed && !c.Partial && len(c.Children) != b.UnitsPerCase {
					problem("case %s closed with %d units, batch %s packs %d", c.SSCC, len(c.Children), c.Batch, b.UnitsPerCase)
				}
				for _, ch := range c.Children {
					gtin, serial, ok := parseUnitID(ch)
					if !ok {
						problem("case %s: child %q is not a unit", c.SSCC, ch)
						continue
					}
					var u unit
					found, err := getUnit(tx, unitKey(gtin, serial), &u)
					switch {
					case err != nil:
						problem("case %s: %v", c.SSCC, err)
					case !found:
						problem("case %s: unit %s was never commissioned", c.SSCC, ch)
					case u.Parent != c.SSCC:
						problem("case %s lists %s, which is linked to %q", c.SSCC, ch, u.Parent)
					case u.Batch != c.Batch || gtin != c.GTIN:
						problem("case %s of batch %s holds %s of batch %s", c.SSCC, c.Batch, ch, u.Batch)
					case c.Closed && u.Status != UnitGood:
						problem("closed case %s holds %s, which is %s", c.SSCC, ch, u.Status)
					}
				}
			case LevelPallet:
				if c.Closed && !c.Partial && len(c.Children) != b.CasesPerPallet {
					problem("pallet %s closed with %d cases, batch %s packs %d", c.SSCC, len(c.Children), c.Batch, b.CasesPerPallet)
				}
				pallets = append(pallets, &c)
			default:
				problem("container %s has level %q", c.SSCC, c.Level)
			}
			return nil
		}); err != nil {
			return err
		}
		// Container labels and waiting containers agree with the batches.
		for id, b := range batches {
			for _, list := range []struct {
				what, state string
				ssccs       []string
			}{{"label queued", labelQueued, b.LabelsQueued}, {"label pending", labelPending, b.LabelsPending}} {
				for _, sscc := range list.ssccs {
					var c container
					ok, err := tx.GetJSON(store.Containers, []byte(sscc), &c)
					switch {
					case err != nil || !ok:
						problem("batch %s: %s for container %s, which does not exist (%v)", id, list.what, sscc, err)
					case !c.Closed || c.Label != list.state || c.Batch != id:
						problem("batch %s: %s for %s %s, which is closed=%v with label %q of batch %s", id, list.what, c.Level, sscc, c.Closed, c.Label, c.Batch)
					}
				}
			}
			for _, sscc := range b.Waiting {
				var c container
				if ok, err := tx.GetJSON(store.Containers, []byte(sscc), &c); err != nil || !ok || c.Closed || c.Batch != id {
					problem("batch %s: container %s waits for its label but is missing, closed or of another batch", id, sscc)
				}
			}
			for _, p := range append(append([]pendingReject(nil), b.Rejects...), b.Undelivered...) {
				if p.Serial == "" || strings.HasPrefix(p.Serial, ChallengeSerialPrefix) {
					continue
				}
				var u unit
				if found, err := getUnit(tx, unitKey(b.GTIN, p.Serial), &u); err != nil || !found || u.Status == UnitGood {
					problem("batch %s: reject of %s, which is not a rejected unit (found %v, status %q)", id, p.Serial, found, u.Status)
				}
			}
		}
		if err := tx.ForEachPrefix(store.Containers, nil, func(k, v []byte) error {
			var c container
			if jsonUnmarshal(v, &c) != nil {
				return nil
			}
			if b := batches[c.Batch]; b != nil && (c.Label == labelQueued || c.Label == labelPending) {
				list := b.LabelsQueued
				if c.Label == labelPending {
					list = b.LabelsPending
				}
				if !containsString(list, c.SSCC) {
					problem("%s %s has its label %s, batch %s does not list it", c.Level, c.SSCC, c.Label, c.Batch)
				}
			}
			return nil
		}); err != nil {
			return err
		}
		for _, p := range pallets {
			for _, ch := range p.Children {
				var cc container
				ok, err := tx.GetJSON(store.Containers, []byte(trimContainerID(ch)), &cc)
				switch {
				case err != nil:
					problem("pallet %s: %v", p.SSCC, err)
				case !ok:
					problem("pallet %s: case %s does not exist", p.SSCC, ch)
				case cc.Parent != p.SSCC:
					problem("pallet %s lists %s, which is linked to %q", p.SSCC, ch, cc.Parent)
				case p.Closed && !cc.Closed:
					problem("closed pallet %s holds open case %s", p.SSCC, cc.SSCC)
				}
			}
		}
		for id, parent := range parentOf {
			if linked[id] != parent {
				problem("unit %s is linked to %s, which does not list it", id, parent)
			}
		}
		gtins := map[string]bool{}
		for g := range perGTIN {
			gtins[g] = true
		}
		for _, b := range batches {
			gtins[b.GTIN] = true
		}
		for g := range gtins {
			used := func(s string) bool { return tx.Has(store.Units, unitKey(g, s)) }
			for _, p := range serials.Account(tx, g, used, perGTIN[g]) {
				problem("%s", p)
			}
		}
		return nil
	})
	return rep, err
}

func unitID(gtin, serial string) string { return "(01)" + gtin + "(21)" + serial }

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
