package line

import (
	"github.com/serialine/serialine/edge/store"
	"github.com/serialine/serialine/sync/record"
)

// ContainerInfo is a case or pallet as operators see it.
type ContainerInfo struct {
	SSCC     string   `json:"sscc"`
	Level    string   `json:"level"`
	Batch    string   `json:"batch"`
	GTIN     string   `json:"gtin"`
	Parent   string   `json:"parent,omitempty"`
	Children []string `json:"children"`
	Closed   bool     `json:"closed"`
	Partial  bool     `json:"partial,omitempty"`
	// Label is the state of its SSCC label: queued, sent, pending (a
	// reprint is needed); empty when no printer labels its level.
	Label string `json:"label,omitempty"`
}

// UnitInfo is a serial's state as operators see it.
type UnitInfo struct {
	ID     string  `json:"id"` // (01)GTIN(21)SERIAL
	GTIN   string  `json:"gtin"`
	Serial string  `json:"serial"`
	Batch  string  `json:"batch"`
	Seq    uint64  `json:"seq"`
	Status string  `json:"status"`
	Reason string  `json:"reason,omitempty"`
	Parent string  `json:"parent,omitempty"`
	Grade  float64 `json:"grade,omitempty"`
}

// Container reads a container from the store (any goroutine).
func (e *Engine) Container(sscc string) (ContainerInfo, error) {
	var c *container
	err := e.db.View(func(tx *store.Tx) error {
		var err error
		c, err = e.loadContainer(tx, trimContainerID(sscc))
		return err
	})
	if err != nil {
		return ContainerInfo{}, err
	}
	return ContainerInfo{SSCC: c.SSCC, Level: c.Level, Batch: c.Batch, GTIN: c.GTIN, Parent: c.Parent, Children: c.Children, Closed: c.Closed, Partial: c.Partial, Label: c.Label}, nil
}

// Unit reads a serial's state from the store (any goroutine). An empty
// gtin looks the serial up under every product of the line.
func (e *Engine) Unit(gtin, serial string) (UnitInfo, error) {
	if g, s, ok := parseUnitID(serial); ok {
		gtin, serial = g, s
	}
	gtins := []string{gtin}
	if gtin == "" {
		gtins = gtins[:0]
		for _, p := range e.cfg.Products {
			gtins = append(gtins, p.GTIN)
		}
	}
	var out UnitInfo
	found := false
	err := e.db.View(func(tx *store.Tx) error {
		for _, g := range gtins {
			var u unit
			ok, err := getUnit(tx, unitKey(g, serial), &u)
			if err != nil {
				return err
			}
			if ok {
				found = true
				out = UnitInfo{ID: record.UnitID(g, serial), GTIN: g, Serial: serial, Batch: u.Batch, Seq: u.Seq, Status: u.Status, Reason: u.Reason, Parent: u.Parent, Grade: u.Grade}
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return UnitInfo{}, err
	}
	if !found {
		return UnitInfo{}, ruleErr("serial %s was never commissioned on this line", serial)
	}
	return out, nil
}
