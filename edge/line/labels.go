package line

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/serialine/serialine/drivers"
	"github.com/serialine/serialine/edge/store"
	"github.com/serialine/serialine/sync/gs1"
	"github.com/serialine/serialine/sync/record"
)

// Container labels. When a printer labels a packaging level (the line
// config's devices.printers[].levels), every case or pallet of that level
// gets its SSCC label (GS1-128 of (00) SSCC with the human-readable
// interpretation; GTIN, lot, expiry and count as text) when it closes:
//
//   - The label is mandatory: a container closes only while its level's
//     printer is healthy. In sequential aggregation a full case whose
//     printer is not ready waits (Status.WaitingForLabel) and closes as
//     soon as the printer is back; unit printing goes on only while the
//     units fit without filling another container of that level, so the
//     line stops at the latest when the next container would be full.
//     Manual closes and case reads are refused meanwhile.
//   - The closing transaction records the label as queued
//     (container.label); it goes to the printer after commit. The printer
//     taking it is recorded as sent; a failure makes it pending (alarm
//     container_label_pending). A label queued when the edge stopped is
//     pending after the restart: it may or may not have printed.
//   - A pending label is never printed again by itself (a second label
//     with the same SSCC could be applied to another case): a supervisor
//     checks the container and reprints it, e-signed (ReprintLabel). The
//     batch cannot close while a label is queued or pending.

// Container label states (container.Label).
const (
	labelQueued  = "queued"
	labelSent    = "sent"
	labelPending = "pending"
)

const (
	alarmLabelPending = "container_label_pending"
	alarmLabelWaiting = "label_printer_not_ready"
)

// setupPrinters sorts the printers: the unit printer, and the label printer
// of each container level (at most one per level).
func (e *Engine) setupPrinters() error {
	byName := map[string]*printerDev{}
	unit := &printerDev{name: e.dev.PrinterName, p: e.dev.Printer, units: e.printQ}
	byName[unit.name] = unit
	order := []*printerDev{unit}
	for _, lp := range e.dev.LabelPrinters {
		if lp.Printer == nil || lp.Name == "" {
			return fmt.Errorf("line: label printer %q has no driver", lp.Name)
		}
		pd := byName[lp.Name]
		if pd != nil && pd.p != lp.Printer {
			return fmt.Errorf("line: two printers are named %s", lp.Name)
		}
		if pd == nil {
			pd = &printerDev{name: lp.Name, p: lp.Printer}
			byName[lp.Name] = pd
			order = append(order, pd)
		}
		for _, level := range lp.Levels {
			if level != drivers.LevelCase && level != drivers.LevelPallet {
				return fmt.Errorf("line: label printer %s: level %q: want case or pallet", lp.Name, level)
			}
			if other, dup := e.labelBy[string(level)]; dup {
				return fmt.Errorf("line: %s labels are printed by %s and %s: at most one printer per level", level, other, lp.Name)
			}
			e.labelBy[string(level)] = lp.Name
		}
		if pd.boxes == nil {
			pd.boxes = make(chan drivers.Label, 256)
			e.labelQ[lp.Name] = pd.boxes
		}
	}
	for _, pd := range order {
		e.printers = append(e.printers, *pd)
	}
	return nil
}

// deviceNames lists every device of the line: printers, camera, PLC.
func (e *Engine) deviceNames() []string {
	names := make([]string, 0, len(e.printers)+2)
	for _, pd := range e.printers {
		names = append(names, pd.name)
	}
	return append(names, e.dev.CameraName, e.dev.PLCName)
}

// labelReady reports whether a container of the level can be labelled now:
// no printer labels the level, or its printer is connected and fault-free.
func (e *Engine) labelReady(level string) bool {
	name := e.labelBy[level]
	if name == "" {
		return true
	}
	h, ok := e.health[name]
	return ok && h.OK()
}

func (e *Engine) printerState(name string) string {
	h, ok := e.health[name]
	return healthText(h, ok)
}

// closeFull closes a full container of the running flow (sequential
// aggregation, case reads) and palletizes a case; when its label printer
// is not ready the container waits, and the next children go to a new one.
func (e *Engine) closeFull(tx *store.Tx, c *container) error {
	b := e.b
	if !e.labelReady(c.Level) {
		if !containsString(b.Waiting, c.SSCC) {
			b.Waiting = append(b.Waiting, c.SSCC)
		}
		if b.OpenCase == c.SSCC {
			b.OpenCase = ""
		}
		if b.OpenPallet == c.SSCC {
			b.OpenPallet = ""
		}
		name := e.labelBy[c.Level]
		e.log.Warn().Str("batch", b.ID).Str("sscc", c.SSCC).Str("device", name).Msg("full container waits for its label printer")
		return e.alarm(tx, alarmLabelWaiting, true, fmt.Sprintf("%s %s is full and waits for printer %s (%s) to print its SSCC label", c.Level, c.SSCC, name, e.printerState(name)))
	}
	if err := e.closeContainer(tx, c, false, nil); err != nil {
		return e.holdOnRule(tx, err)
	}
	if b.OpenCase == c.SSCC {
		b.OpenCase = ""
	}
	if b.OpenPallet == c.SSCC {
		b.OpenPallet = ""
	}
	if c.Level == LevelCase {
		return e.palletize(tx, c)
	}
	return nil
}

// closeWaiting closes the waiting full containers whose label printer is
// ready again, in the order they filled.
func (e *Engine) closeWaiting(tx *store.Tx) (bool, error) {
	b := e.b
	if b == nil || len(b.Waiting) == 0 {
		return false, nil
	}
	dirty := false
	for _, sscc := range append([]string(nil), b.Waiting...) {
		c, err := e.loadContainer(tx, sscc)
		if err != nil {
			return dirty, err
		}
		if c.Closed || len(c.Children) < e.capacity(c) {
			// Closed by hand, or reworked: it no longer waits.
			b.Waiting = removeString(b.Waiting, sscc)
			dirty = true
			continue
		}
		if !e.labelReady(c.Level) {
			continue
		}
		b.Waiting = removeString(b.Waiting, sscc)
		dirty = true
		if err := e.closeFull(tx, c); err != nil {
			return dirty, err
		}
	}
	if len(b.Waiting) == 0 {
		if err := e.alarm(tx, alarmLabelWaiting, false, "no container waits for its label printer"); err != nil {
			return dirty, err
		}
	}
	return dirty, nil
}

// labelRoom is how many more product units may be commissioned while a
// label printer that sequential aggregation needs is not ready: units must
// fit without filling another container of that level. -1: no limit.
func (e *Engine) labelRoom(tx *store.Tx) (int, error) {
	b := e.b
	if e.product(b.GTIN).Aggregation != AggregationSequential && e.product(b.GTIN).Aggregation != "" {
		return -1, nil
	}
	caseDown, palletDown := !e.labelReady(LevelCase), !e.labelReady(LevelPallet)
	if !caseDown && !palletDown {
		return -1, nil
	}
	fill := func(sscc string) (int, error) {
		if sscc == "" {
			return 0, nil
		}
		c, err := e.loadContainer(tx, sscc)
		if err != nil {
			return 0, err
		}
		return len(c.Children), nil
	}
	caseFill, err := fill(b.OpenCase)
	if err != nil {
		return 0, err
	}
	room := -1
	if caseDown {
		room = b.UnitsPerCase - caseFill - 1
	}
	if palletDown {
		palletFill, err := fill(b.OpenPallet)
		if err != nil {
			return 0, err
		}
		waitingCases := 0
		for _, sscc := range b.Waiting {
			if c, err := e.loadContainer(tx, sscc); err == nil && c.Level == LevelCase {
				waitingCases++
			}
		}
		r := (b.CasesPerPallet-palletFill-waitingCases-1)*b.UnitsPerCase + (b.UnitsPerCase - caseFill) - 1
		if room < 0 || r < room {
			room = r
		}
	}
	inflight := 0
	for _, f := range b.InFlight {
		if f.Challenge == "" {
			inflight++
		}
	}
	return max(room-inflight, 0), nil
}

// containerLabel is the SSCC label of a container of the active batch.
func (e *Engine) containerLabel(tx *store.Tx, c *container) drivers.Label {
	b := e.b
	text := map[string]string{
		"SSCC": c.SSCC, "LEVEL": c.Level, "GTIN": c.GTIN, "LOT": b.Lot, "EXP": b.Expiry, "PRODUCT": b.Product,
		"COUNT": strconv.Itoa(len(c.Children)),
	}
	if c.Level == LevelPallet {
		units := 0
		for _, ch := range c.Children {
			if cc, err := e.loadContainer(tx, trimContainerID(ch)); err == nil {
				units += len(cc.Children)
			}
		}
		text["UNITS"] = strconv.Itoa(units)
	}
	return drivers.Label{ID: c.SSCC, Level: drivers.Level(c.Level), Data: gs1.Elements{{AI: "00", Value: c.SSCC}}, Text: text}
}

// queueLabel records a container's label as queued for its printer; the
// label goes out after commit.
func (e *Engine) queueLabel(tx *store.Tx, c *container, event, by string, sig *record.Signature) error {
	b := e.b
	printer := e.labelBy[c.Level]
	c.Label = labelQueued
	if err := tx.PutJSON(store.Containers, []byte(c.SSCC), c); err != nil {
		return err
	}
	b.LabelsPending = removeString(b.LabelsPending, c.SSCC)
	if !containsString(b.LabelsQueued, c.SSCC) {
		b.LabelsQueued = append(b.LabelsQueued, c.SSCC)
	}
	l := e.containerLabel(tx, c)
	if _, err := tx.Append(record.KindContainerLabel, record.ContainerLabel{
		Batch: c.Batch, SSCC: c.SSCC, Level: c.Level, Printer: printer, Event: event, Data: l.Data.Bracketed(), By: by, Signature: sig,
	}); err != nil {
		return err
	}
	e.fx.labels = append(e.fx.labels, queuedLabel{printer: printer, label: l})
	return nil
}

// evLabelDone: a label printer took a container label (err nil) or not.
type evLabelDone struct {
	sscc, printer string
	err           error
}

func (e *Engine) labelDone(tx *store.Tx, ev evLabelDone) error {
	b := e.b
	if b == nil || !containsString(b.LabelsQueued, ev.sscc) {
		e.log.Warn().Str("sscc", ev.sscc).Str("device", ev.printer).Msg("label outcome for a container that has no label queued")
		return nil
	}
	c, err := e.loadContainer(tx, ev.sscc)
	if err != nil {
		return err
	}
	b.LabelsQueued = removeString(b.LabelsQueued, ev.sscc)
	rec := record.ContainerLabel{Batch: c.Batch, SSCC: c.SSCC, Level: c.Level, Printer: ev.printer, Event: record.LabelSent}
	if ev.err == nil {
		c.Label = labelSent
	} else {
		c.Label = labelPending
		rec.Event, rec.Detail = record.LabelFailed, ev.err.Error()
		if !containsString(b.LabelsPending, c.SSCC) {
			b.LabelsPending = append(b.LabelsPending, c.SSCC)
		}
		e.log.Error().Str("batch", b.ID).Str("sscc", c.SSCC).Str("device", ev.printer).Err(ev.err).Msg("container label not printed: pending until reprinted")
	}
	if err := tx.PutJSON(store.Containers, []byte(c.SSCC), c); err != nil {
		return err
	}
	if _, err := tx.Append(record.KindContainerLabel, rec); err != nil {
		return err
	}
	return e.labelAlarm(tx)
}

// labelAlarm raises or clears container_label_pending.
func (e *Engine) labelAlarm(tx *store.Tx) error {
	b := e.b
	if len(b.LabelsPending) == 0 {
		return e.alarm(tx, alarmLabelPending, false, "no container label is pending")
	}
	return e.alarm(tx, alarmLabelPending, true, fmt.Sprintf("the SSCC label of %s may not have printed: check the container and reprint the label (e-signed)", strings.Join(b.LabelsPending, ", ")))
}

// recoverLabels: labels queued when the edge stopped may or may not have
// printed: they are pending.
func (e *Engine) recoverLabels(tx *store.Tx) error {
	b := e.b
	for _, sscc := range append([]string(nil), b.LabelsQueued...) {
		if err := e.labelDone(tx, evLabelDone{sscc: sscc, printer: e.labelPrinterOf(tx, sscc), err: errRestartLabel}); err != nil {
			return err
		}
	}
	return nil
}

var errRestartLabel = fmt.Errorf("the edge restarted before the printer took the label")

func (e *Engine) labelPrinterOf(tx *store.Tx, sscc string) string {
	c, err := e.loadContainer(tx, sscc)
	if err != nil {
		return ""
	}
	return e.labelBy[c.Level]
}

// ReprintLabel prints a closed container's SSCC label again: a pending
// label (failed, or unknown after a restart) or a damaged one. A supervisor
// signs it with a reason, having checked the container: a label printed
// twice could end up on another case.
func (e *Engine) ReprintLabel(ctx context.Context, sscc string, sig *record.Signature) error {
	_, err := e.do(ctx, "reprint label", func(tx *store.Tx) (any, error) {
		if sig == nil || sig.User == "" || sig.Reason == "" {
			return nil, ruleErr("an SSCC label reprint needs a supervisor's e-signature with a reason")
		}
		if e.b == nil {
			return nil, ruleErr("no active batch")
		}
		sscc := trimContainerID(sscc)
		if err := e.activeContainer(tx, sscc); err != nil {
			return nil, err
		}
		c, err := e.loadContainer(tx, sscc)
		if err != nil {
			return nil, err
		}
		printer := e.labelBy[c.Level]
		switch {
		case printer == "":
			return nil, ruleErr("no printer labels %ss on line %s", c.Level, e.cfg.Line.ID)
		case !c.Closed:
			return nil, ruleErr("%s %s is open: its label is printed when it closes", c.Level, c.SSCC)
		case c.Label == labelQueued:
			return nil, ruleErr("the label of %s %s is on its way to printer %s", c.Level, c.SSCC, printer)
		case !e.labelReady(c.Level):
			return nil, ruleErr("printer %s is %s: fix it before reprinting", printer, e.printerState(printer))
		}
		e.log.Info().Str("batch", e.b.ID).Str("sscc", c.SSCC).Str("user", sig.User).Msg("container label reprint")
		if err := e.queueLabel(tx, c, record.LabelReprint, sig.User, sig); err != nil {
			return nil, err
		}
		return nil, nil
	})
	return err
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
