package equipment

import (
	"context"
	"fmt"
	"time"

	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/sync/record"
)

// BatchAudit is the state of every device that touched a batch: what the
// edge recorded at the batch start (the interlock's evidence, with any QA
// override), the calibration and maintenance in force at the start and
// done while it ran, and every downtime linked to it or overlapping it.
type BatchAudit struct {
	Batch     store.BatchInfo        `json:"batch"`
	WindowEnd time.Time              `json:"window_end"` // the close, or now for a running batch
	Checks    []store.EquipmentCheck `json:"checks"`
	Devices   []DeviceAudit          `json:"devices"`
	// Downtimes are every downtime of the batch (any equipment).
	Downtimes []store.Downtime           `json:"downtimes"`
	Overrides []record.InterlockOverride `json:"overrides,omitempty"`
}

// DeviceAudit is one equipment's part of a batch audit.
type DeviceAudit struct {
	Equipment store.Equipment `json:"equipment"`
	// AtStart is the state the edge recorded when the batch started.
	AtStart *record.EquipmentState `json:"at_start,omitempty"`
	// InForce are the last calibration and maintenance done before the start.
	InForce []store.Service `json:"in_force"`
	// During are the calibrations and maintenance done while the batch ran.
	During    []store.Service  `json:"during"`
	Downtimes []store.Downtime `json:"downtimes"`
	// Lapsed: the calibration had lapsed at the start (the start was
	// allowed only by a QA override).
	Lapsed bool `json:"lapsed"`
}

// Audit answers "the state of every device that touched the batch".
func Audit(ctx context.Context, st store.EquipmentStore, edge, batch string, now time.Time) (BatchAudit, error) {
	bi, err := st.BatchInfo(ctx, edge, batch)
	if err != nil {
		return BatchAudit{}, err
	}
	a := BatchAudit{Batch: bi, WindowEnd: bi.Closed, Devices: []DeviceAudit{}, Downtimes: []store.Downtime{}}
	if a.WindowEnd.IsZero() {
		a.WindowEnd = now.UTC()
	}
	if a.Checks, err = st.EquipmentChecks(ctx, edge, batch); err != nil {
		return a, err
	}
	start := bi.Started
	atStart := map[string]*record.EquipmentState{}
	lapsed := map[string]bool{}
	if len(a.Checks) > 0 {
		c := a.Checks[0].Check
		start = a.Checks[0].At
		for i := range c.Items {
			atStart[c.Items[i].Equipment] = &c.Items[i]
		}
		for _, b := range c.Blocked {
			lapsed[b] = true
		}
		if c.Override != nil {
			a.Overrides = append(a.Overrides, *c.Override)
		}
	}
	eqs, err := st.EquipmentList(ctx, edge)
	if err != nil {
		return a, err
	}
	// Downtimes of the batch: recorded with it, or overlapping its window.
	seen := map[string]bool{}
	add := func(list []store.Downtime) {
		for _, d := range list {
			k := fmt.Sprintf("%d/%s", d.Epoch, d.ID)
			if !seen[k] {
				seen[k] = true
				a.Downtimes = append(a.Downtimes, d)
			}
		}
	}
	linked, err := st.Downtimes(ctx, store.DowntimeFilter{Edge: edge, Batch: batch, Limit: 10000})
	if err != nil {
		return a, err
	}
	add(linked)
	overlapping, err := st.Downtimes(ctx, store.DowntimeFilter{Edge: edge, From: start, To: a.WindowEnd, Limit: 10000})
	if err != nil {
		return a, err
	}
	add(overlapping)
	for _, e := range eqs {
		da := DeviceAudit{Equipment: e, AtStart: atStart[e.Name], Lapsed: lapsed[e.Name], InForce: []store.Service{}, During: []store.Service{}, Downtimes: []store.Downtime{}}
		for _, activity := range []string{record.ActivityCalibration, record.ActivityMaintenance} {
			before, err := st.Services(ctx, store.ServiceFilter{Edge: edge, Equipment: e.Name, Activity: activity, To: start, Limit: 1})
			if err != nil {
				return a, err
			}
			da.InForce = append(da.InForce, before...)
		}
		during, err := st.Services(ctx, store.ServiceFilter{Edge: edge, Equipment: e.Name, From: start, To: a.WindowEnd, Limit: 1000})
		if err != nil {
			return a, err
		}
		da.During = append(da.During, during...)
		for _, d := range a.Downtimes {
			if d.Equipment == e.Name {
				da.Downtimes = append(da.Downtimes, d)
			}
		}
		if da.AtStart == nil && len(da.InForce) == 0 && len(da.During) == 0 && len(da.Downtimes) == 0 && !e.Registered {
			continue // retired before this batch and never touched it
		}
		a.Devices = append(a.Devices, da)
	}
	return a, nil
}
