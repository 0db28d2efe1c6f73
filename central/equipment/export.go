package equipment

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/sync/record"
)

// DowntimeExport is one downtime event with everything an FDA notification
// of it needs: the equipment, the affected batch and serials, the timeline,
// the root cause and remediation with their e-signature, and the signed
// records it is built from (verifiable with the edge's public key).
type DowntimeExport struct {
	Title     string    `json:"title"`
	Generated time.Time `json:"generated"`
	Central   string    `json:"central,omitempty"`

	Edge      string          `json:"edge"`
	Line      string          `json:"line,omitempty"`
	ID        string          `json:"downtime"`
	Epoch     uint32          `json:"epoch"`
	Equipment ExportEquipment `json:"equipment"`

	Fault     string  `json:"fault"`
	Detail    string  `json:"detail,omitempty"`
	Source    string  `json:"source"` // driver, manual, recovered
	Cause     string  `json:"attributed_to,omitempty"`
	Start     string  `json:"start"`
	End       string  `json:"end,omitempty"`
	DurationS float64 `json:"duration_s"`
	Ongoing   bool    `json:"ongoing"`

	Reportable   bool   `json:"reportable"`
	ThresholdS   int64  `json:"threshold_s"`
	ReportableAt string `json:"reportable_at,omitempty"`

	Batch        *store.BatchInfo `json:"batch,omitempty"`
	Batches      []string         `json:"batches,omitempty"`
	SerialFrom   string           `json:"serial_from,omitempty"`
	SerialTo     string           `json:"serial_to,omitempty"`
	Position     string           `json:"position_at_start,omitempty"`
	InFlight     []string         `json:"in_flight_at_start,omitempty"`
	Commissioned int              `json:"commissioned_during"`

	Remediation *ExportRemediation `json:"remediation,omitempty"`
	Records     []ExportRecord     `json:"records"`
}

// ExportEquipment identifies the equipment.
type ExportEquipment struct {
	Name     string `json:"name"`
	Class    string `json:"class"`
	Kind     string `json:"kind,omitempty"`
	Critical bool   `json:"critical"`
	Model    string `json:"model,omitempty"`
	SerialNo string `json:"serial_no,omitempty"`
	Asset    string `json:"asset,omitempty"`
	Location string `json:"location,omitempty"`
}

// ExportRemediation is the signed root cause and remediation.
type ExportRemediation struct {
	RootCause   string            `json:"root_cause"`
	Remediation string            `json:"remediation"`
	Signature   *record.Signature `json:"signature"`
	RecordedAt  string            `json:"recorded_at"`
}

// ExportRecord is one record behind the event, as stored: readable body,
// hash, and the chain signature that covers it.
type ExportRecord struct {
	Ref    string          `json:"ref"`
	Kind   record.Kind     `json:"kind"`
	Time   string          `json:"time"`
	Body   json.RawMessage `json:"body"`
	Hash   string          `json:"hash"`
	Signed bool            `json:"signed"` // this record carries the checkpoint signature itself
	Sig    string          `json:"sig,omitempty"`
}

func rfc(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// parseRef splits edge/epoch/seq.
func parseRef(ref string) (string, uint32, uint64, error) {
	i := strings.LastIndexByte(ref, '/')
	if i <= 0 {
		return "", 0, 0, fmt.Errorf("record ref %q: want edge/epoch/seq", ref)
	}
	j := strings.LastIndexByte(ref[:i], '/')
	if j <= 0 {
		return "", 0, 0, fmt.Errorf("record ref %q: want edge/epoch/seq", ref)
	}
	ep, err1 := strconv.ParseUint(ref[j+1:i], 10, 32)
	seq, err2 := strconv.ParseUint(ref[i+1:], 10, 64)
	if err1 != nil || err2 != nil {
		return "", 0, 0, fmt.Errorf("record ref %q: want edge/epoch/seq", ref)
	}
	return ref[:j], uint32(ep), seq, nil
}

// Export builds the FDA notification export of one downtime event.
func Export(ctx context.Context, st store.Store, edge string, epoch uint32, id, central string, now time.Time) (DowntimeExport, error) {
	d, err := st.Downtime(ctx, edge, epoch, id)
	if err != nil {
		return DowntimeExport{}, err
	}
	x := DowntimeExport{
		Title: fmt.Sprintf("Serialization equipment downtime %s: %s (%s)", d.ID, d.Equipment, d.Class), Generated: now.UTC(), Central: central,
		Edge: d.Edge, ID: d.ID, Epoch: d.Epoch, Fault: d.Fault, Detail: d.Detail, Source: d.Source, Cause: d.Cause,
		Start: rfc(d.Start), End: rfc(d.End), DurationS: d.DurationS, Ongoing: d.Open(),
		Reportable: d.Reportable, ThresholdS: d.ThresholdS, ReportableAt: rfc(d.ReportableAt),
		Batches: d.Batches, SerialFrom: d.SerialFrom, SerialTo: d.SerialTo, Position: d.Position, InFlight: d.InFlight, Commissioned: d.Commissioned,
		Equipment: ExportEquipment{Name: d.Equipment, Class: d.Class, Critical: d.Critical},
		Records:   []ExportRecord{},
	}
	if d.Open() {
		x.DurationS = now.Sub(d.Start).Seconds()
	}
	if e, err := st.EquipmentItem(ctx, edge, d.Equipment); err == nil {
		x.Line = e.Line
		x.Equipment = ExportEquipment{Name: e.Name, Class: e.Class, Kind: e.Kind, Critical: e.Critical, Model: e.Model, SerialNo: e.SerialNo, Asset: e.Asset, Location: e.Location}
	} else if !errors.Is(err, store.ErrNotFound) {
		return x, err
	}
	if d.Batch != "" {
		bi, err := st.BatchInfo(ctx, edge, d.Batch)
		switch {
		case err == nil:
			x.Batch = &bi
		case errors.Is(err, store.ErrNotFound):
			x.Batch = &store.BatchInfo{Edge: edge, Batch: d.Batch}
		default:
			return x, err
		}
	}
	if d.RootCause != "" {
		x.Remediation = &ExportRemediation{RootCause: d.RootCause, Remediation: d.Remediation, Signature: d.Signature, RecordedAt: rfc(d.RemediatedAt)}
	}
	for _, ref := range []string{d.StartRef, d.ReportableRef, d.EndRef, d.RemedyRef} {
		if ref == "" {
			continue
		}
		re, rep, seq, err := parseRef(ref)
		if err != nil {
			return x, err
		}
		recs, err := st.Records(ctx, re, rep, seq, 1)
		if err != nil {
			return x, err
		}
		if len(recs) == 0 || recs[0].Record.Seq != seq {
			return x, fmt.Errorf("record %s of downtime %s is not stored", ref, d.ID)
		}
		r := recs[0]
		er := ExportRecord{Ref: ref, Kind: r.Record.Kind, Time: r.Record.Time.UTC().Format(time.RFC3339Nano), Body: json.RawMessage(r.Record.Body), Hash: r.Hash.String()}
		if len(r.Record.Sig) > 0 {
			er.Signed, er.Sig = true, base64.StdEncoding.EncodeToString(r.Record.Sig)
		}
		x.Records = append(x.Records, er)
	}
	return x, nil
}
