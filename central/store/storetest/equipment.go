package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/sync/record"
)

var eqT0 = time.Date(2026, 11, 24, 6, 0, 0, 0, time.UTC)

func eqTS(d time.Duration) string { return eqT0.Add(d).Format(time.RFC3339Nano) }

// EquipmentCertificate is the certificate the equipment scenario carries.
var EquipmentCertificate = []byte("%PDF-1.4\n% calibration certificate CAL-42\n%%EOF\n")

func cert() *record.Certificate {
	sum := sha256.Sum256(EquipmentCertificate)
	return &record.Certificate{Name: "cal-42.pdf", ContentType: "application/pdf", Size: len(EquipmentCertificate), SHA256: hex.EncodeToString(sum[:]), Data: EquipmentCertificate}
}

// EquipmentRegistry is the registry record of the equipment scenario.
func EquipmentRegistry(withLink bool) record.EquipmentRegistered {
	items := []record.EquipmentItem{
		{Equipment: "printer-1", Class: "print", Kind: "printer", Driver: "zebra", Critical: true, DependsOn: []string{"plc-1"}, Model: "ZT411", SerialNo: "52J1", Asset: "A-1",
			Calibration: &record.Schedule{IntervalS: 3600 * 24 * 180, ToleranceS: 3600 * 72}},
		{Equipment: "camera-1", Class: "verification", Kind: "camera", Critical: true, DependsOn: []string{"plc-1"},
			Calibration: &record.Schedule{IntervalS: 3600 * 24 * 90, ToleranceS: 3600 * 72}, Maintenance: &record.Schedule{IntervalS: 3600 * 24 * 30, ToleranceS: 3600 * 24}},
		{Equipment: "plc-1", Class: "verification", Kind: "plc", Critical: true},
		{Equipment: "edge-server", Class: "network", Kind: "edge_server", Critical: true},
	}
	hash := "reg-1"
	if withLink {
		items = append(items, record.EquipmentItem{Equipment: "central-link", Class: "network", Kind: "link", Critical: true})
	} else {
		hash = "reg-2"
	}
	return record.EquipmentRegistered{Line: "line-1", ConfigHash: "cfg", Hash: hash, Items: items, ReportableAfterS: 14400, Interlock: []string{"print", "verification"}}
}

// EquipmentScenario returns the records of a batch with a reportable
// printer downtime (remediated), a camera calibration against a work order,
// and the batch-start check.
func (c *Chain) EquipmentScenario() []store.Stored {
	sig := &record.Signature{User: "sup", Name: "Sue Pervisor", Meaning: "approval", Time: eqTS(5 * time.Hour)}
	tech := &record.Signature{User: "tech", Name: "Tom Tech", Meaning: "performed by", Time: eqTS(6 * time.Hour)}
	return c.Next(
		record.KindEquipmentRegistered, EquipmentRegistry(true),
		record.KindCalibration, record.Calibration{Equipment: "printer-1", Class: "print", Activity: "calibration", Performed: eqTS(-24 * time.Hour), Result: "pass",
			NextDue: eqTS(-24*time.Hour + 180*24*time.Hour), Source: "baseline", Reference: "paper CAL-1", By: "config"},
		record.KindEquipmentDue, record.EquipmentDue{Equipment: "camera-1", Class: "verification", Activity: "calibration", State: "never"},
		record.KindWorkOrder, record.WorkOrder{ID: "WO-000001", Equipment: "camera-1", Class: "verification", Activity: "calibration", State: "open"},
		record.KindBatchCreated, record.BatchCreated{Batch: "L1", Line: "line-1", GTIN: gtin, Lot: "L1", Expiry: "281130", Planned: 10},
		record.KindEquipmentCheck, record.EquipmentCheck{Batch: "L1", Items: []record.EquipmentState{{Equipment: "printer-1", Class: "print", Status: "up",
			Calibration: &record.ScheduleState{State: "ok", Due: eqTS(-24*time.Hour + 180*24*time.Hour)}}}},
		record.KindBatchStarted, record.BatchStarted{Batch: "L1", Line: "line-1", GTIN: gtin, Lot: "L1", Expiry: "281130", Planned: 10},
		record.KindDowntimeStarted, record.DowntimeStarted{ID: "DT-000001", Equipment: "printer-1", Class: "print", Critical: true, Source: "driver", Fault: "paper_out",
			Start: eqTS(time.Hour), Batch: "L1", Position: "S5", InFlight: []string{"S4", "S5"}},
		record.KindDowntimeReportable, record.DowntimeReportable{ID: "DT-000001", Equipment: "printer-1", Class: "print", Fault: "paper_out", Start: eqTS(time.Hour),
			At: eqTS(5 * time.Hour), ThresholdS: 14400, Batch: "L1"},
		record.KindDowntimeEnded, record.DowntimeEnded{ID: "DT-000001", Equipment: "printer-1", Class: "print", Critical: true, Source: "driver", Fault: "paper_out",
			Start: eqTS(time.Hour), End: eqTS(5*time.Hour + 30*time.Minute), DurationS: 4.5 * 3600, Batch: "L1", Batches: []string{"L1"},
			SerialFrom: "S4", SerialTo: "S5", Reportable: true},
		record.KindDowntimeRemediated, record.DowntimeRemediated{ID: "DT-000001", Equipment: "printer-1", Class: "print", Batch: "L1", Start: eqTS(time.Hour),
			End: eqTS(5*time.Hour + 30*time.Minute), RootCause: "media sensor misaligned", Remediation: "sensor realigned; SOP updated", Signature: sig},
		record.KindCalibration, record.Calibration{Equipment: "camera-1", Class: "verification", Activity: "calibration", WorkOrder: "WO-000001",
			Performed: eqTS(6 * time.Hour), Result: "pass", Results: []record.CalibrationResult{{Name: "grade card", Value: "3.9", Pass: true}},
			NextDue: eqTS(6*time.Hour + 90*24*time.Hour), Certificate: cert(), Signature: tech, By: "tech"},
		record.KindDowntimeStarted, record.DowntimeStarted{ID: "DT-000002", Equipment: "camera-1", Class: "verification", Critical: true, Source: "driver", Fault: "disconnected",
			Cause: "plc-1", CauseDowntime: "DT-000009", Start: eqTS(7 * time.Hour)},
	)
}

// Equipment runs the equipment projection conformance tests.
func Equipment(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()
	chain := func(t *testing.T, s store.Store, edge string) *Chain {
		c := NewChain(edge, 1, 7)
		if err := s.EnrollEdge(ctx, store.Edge{ID: c.Edge, PublicKey: c.Pub(), EnrolledBy: "test"}); err != nil {
			t.Fatal(err)
		}
		return c
	}
	setup := func(t *testing.T) (store.Store, *Chain) {
		s := open(t)
		return s, chain(t, s, "edge-eq")
	}

	t.Run("Projection", func(t *testing.T) {
		s, c := setup(t)
		if err := s.Append(ctx, c.Edge, record.Head{}, c.EquipmentScenario()); err != nil {
			t.Fatal(err)
		}
		list, err := s.EquipmentList(ctx, c.Edge)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range list {
			names = append(names, e.Name)
		}
		if strings.Join(names, ",") != "printer-1,camera-1,plc-1,edge-server,central-link" {
			t.Fatalf("registry order: %v", names)
		}
		p, err := s.EquipmentItem(ctx, c.Edge, "printer-1")
		if err != nil {
			t.Fatal(err)
		}
		if p.Class != "print" || p.Kind != "printer" || p.Driver != "zebra" || !p.Critical || p.Model != "ZT411" || p.SerialNo != "52J1" || p.Asset != "A-1" ||
			strings.Join(p.DependsOn, ",") != "plc-1" || p.CalIntervalS != 3600*24*180 || p.CalToleranceS != 3600*72 || !p.Registered || p.Line != "line-1" {
			t.Fatalf("printer: %+v", p)
		}
		if p.Status != "up" || !p.StatusSince.Equal(eqT0.Add(5*time.Hour+30*time.Minute)) || p.CalState != "ok" || !p.CalLast.Equal(eqT0.Add(-24*time.Hour)) ||
			!p.CalDue.Equal(eqT0.Add(-24*time.Hour+180*24*time.Hour)) || !p.CalWindowTo.Equal(p.CalDue.Add(72*time.Hour)) {
			t.Fatalf("printer state: %+v", p)
		}
		cam, _ := s.EquipmentItem(ctx, c.Edge, "camera-1")
		if cam.Status != "down" || cam.Downtime != "DT-000002" || cam.DowntimeEp != 1 || cam.CalState != "ok" || !cam.CalDue.Equal(eqT0.Add(6*time.Hour+90*24*time.Hour)) || cam.PMIntervalS != 3600*24*30 {
			t.Fatalf("camera: %+v", cam)
		}
		if _, err := s.EquipmentItem(ctx, c.Edge, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown equipment: %v", err)
		}

		d, err := s.Downtime(ctx, c.Edge, 1, "DT-000001")
		if err != nil {
			t.Fatal(err)
		}
		if d.Equipment != "printer-1" || d.Class != "print" || !d.Critical || d.Fault != "paper_out" || d.Source != "driver" || d.Batch != "L1" || d.Position != "S5" ||
			strings.Join(d.InFlight, ",") != "S4,S5" || d.SerialFrom != "S4" || d.SerialTo != "S5" || d.DurationS != 4.5*3600 || !d.Reportable ||
			!d.ReportableAt.Equal(eqT0.Add(5*time.Hour)) || d.ThresholdS != 14400 || !d.Start.Equal(eqT0.Add(time.Hour)) || !d.End.Equal(eqT0.Add(5*time.Hour+30*time.Minute)) {
			t.Fatalf("downtime: %+v", d)
		}
		if d.RootCause != "media sensor misaligned" || d.Remediation != "sensor realigned; SOP updated" || d.Signature == nil || d.Signature.Name != "Sue Pervisor" ||
			d.RemediatedAt.IsZero() || d.StartRef == "" || d.EndRef == "" || d.ReportableRef == "" || d.RemedyRef == "" || d.Open() {
			t.Fatalf("remediation: %+v", d)
		}
		if _, err := s.Downtime(ctx, c.Edge, 2, "DT-000001"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("downtime of another epoch: %v", err)
		}
		for _, f := range []struct {
			name string
			f    store.DowntimeFilter
			want string
		}{
			{"all", store.DowntimeFilter{Edge: c.Edge}, "DT-000002,DT-000001"},
			{"batch", store.DowntimeFilter{Edge: c.Edge, Batch: "L1"}, "DT-000001"},
			{"reportable", store.DowntimeFilter{ReportableOnly: true}, "DT-000001"},
			{"equipment", store.DowntimeFilter{Edge: c.Edge, Equipment: "camera-1"}, "DT-000002"},
			{"overlap", store.DowntimeFilter{Edge: c.Edge, From: eqT0.Add(5 * time.Hour), To: eqT0.Add(6 * time.Hour)}, "DT-000001"},
			{"after end", store.DowntimeFilter{Edge: c.Edge, From: eqT0.Add(6 * time.Hour)}, "DT-000002"},
			{"before", store.DowntimeFilter{Edge: c.Edge, To: eqT0}, ""},
		} {
			got, err := s.Downtimes(ctx, f.f)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, d := range got {
				ids = append(ids, d.ID)
			}
			if strings.Join(ids, ",") != f.want {
				t.Errorf("downtimes %s: %v, want %s", f.name, ids, f.want)
			}
		}
		open, _ := s.Downtime(ctx, c.Edge, 1, "DT-000002")
		if !open.Open() || open.Cause != "plc-1" || open.CauseDowntime != "DT-000009" || open.Batch != "" {
			t.Fatalf("open downtime: %+v", open)
		}

		svc, err := s.Services(ctx, store.ServiceFilter{Edge: c.Edge})
		if err != nil {
			t.Fatal(err)
		}
		if len(svc) != 2 || svc[0].Equipment != "camera-1" || svc[1].Equipment != "printer-1" || svc[1].Source != "baseline" || svc[1].Reference != "paper CAL-1" {
			t.Fatalf("services: %+v", svc)
		}
		cs := svc[0]
		if cs.WorkOrder != "WO-000001" || cs.Result != "pass" || len(cs.Results) != 1 || cs.Results[0].Value != "3.9" || cs.CertName != "cal-42.pdf" ||
			cs.CertSHA != cert().SHA256 || cs.CertSize != len(EquipmentCertificate) || cs.Signature == nil || cs.Signature.Name != "Tom Tech" ||
			!cs.Performed.Equal(eqT0.Add(6*time.Hour)) || cs.Seq == 0 {
			t.Fatalf("camera calibration: %+v", cs)
		}
		if got, _ := s.Services(ctx, store.ServiceFilter{Edge: c.Edge, Equipment: "camera-1", From: eqT0, To: eqT0.Add(7 * time.Hour)}); len(got) != 1 {
			t.Fatalf("services in window: %+v", got)
		}
		if got, _ := s.Services(ctx, store.ServiceFilter{Edge: c.Edge, To: eqT0}); len(got) != 1 || got[0].Equipment != "printer-1" {
			t.Fatalf("services before: %+v", got)
		}
		crt, err := s.Certificate(ctx, c.Edge, cs.Epoch, cs.Seq)
		if err != nil || string(crt.Data) != string(EquipmentCertificate) || crt.ContentType != "application/pdf" || crt.SHA256 != cs.CertSHA || crt.Name != "cal-42.pdf" {
			t.Fatalf("certificate: %+v %v", crt, err)
		}
		if _, err := s.Certificate(ctx, c.Edge, svc[1].Epoch, svc[1].Seq); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("baseline has no certificate: %v", err)
		}

		wos, err := s.WorkOrders(ctx, c.Edge, false)
		if err != nil || len(wos) != 1 || wos[0].State != "done" || wos[0].ClosedRef != cs.Ref() || wos[0].Equipment != "camera-1" {
			t.Fatalf("work orders: %+v %v", wos, err)
		}
		if open, _ := s.WorkOrders(ctx, "", true); len(open) != 0 {
			t.Fatalf("open work orders: %+v", open)
		}
		checks, err := s.EquipmentChecks(ctx, c.Edge, "L1")
		if err != nil || len(checks) != 1 || len(checks[0].Check.Items) != 1 || checks[0].Check.Items[0].Calibration.State != "ok" || checks[0].Ref == "" {
			t.Fatalf("checks: %+v %v", checks, err)
		}
		bi, err := s.BatchInfo(ctx, c.Edge, "L1")
		if err != nil || bi.Started.IsZero() || !bi.Closed.IsZero() || bi.GTIN != gtin || bi.Lot != "L1" || bi.Planned != 10 || bi.State != "running" || bi.Line != "line-1" {
			t.Fatalf("batch info: %+v %v", bi, err)
		}
		if _, err := s.BatchInfo(ctx, c.Edge, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown batch: %v", err)
		}

		// A new registry without central-link keeps its history, unregistered.
		if err := s.Append(ctx, c.Edge, c.Head(), c.Next(record.KindEquipmentRegistered, EquipmentRegistry(false))); err != nil {
			t.Fatal(err)
		}
		link, _ := s.EquipmentItem(ctx, c.Edge, "central-link")
		cam, _ = s.EquipmentItem(ctx, c.Edge, "camera-1")
		if link.Registered || !cam.Registered || cam.Status != "down" || cam.CalState != "ok" {
			t.Fatalf("after the second registry: link %+v camera %+v", link, cam)
		}
		all, _ := s.EquipmentList(ctx, "")
		if len(all) != 5 || all[len(all)-1].Name != "central-link" {
			t.Fatalf("all equipment: %d", len(all))
		}
	})

	t.Run("MalformedBodiesStoreNothing", func(t *testing.T) {
		s := open(t)
		bad := cert()
		bad.Data = []byte("%PDF-1.4 tampered")
		for _, tc := range []struct {
			name string
			kind record.Kind
			body any
			want string
		}{
			{"bad time", record.KindDowntimeStarted, record.DowntimeStarted{ID: "DT-1", Equipment: "printer-1", Start: "yesterday"}, "start"},
			{"no id", record.KindDowntimeEnded, record.DowntimeEnded{Equipment: "printer-1", Start: eqTS(0), End: eqTS(time.Hour)}, "required"},
			{"unsigned remediation", record.KindDowntimeRemediated, record.DowntimeRemediated{ID: "DT-1", RootCause: "x", Remediation: "y"}, "signature"},
			{"certificate hash", record.KindCalibration, record.Calibration{Equipment: "camera-1", Activity: "calibration", Performed: eqTS(0), Result: "pass", Certificate: bad}, "SHA-256"},
			{"not an object", record.KindEquipmentCheck, []int{1}, "does not decode"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c := chain(t, s, "edge-bad-"+strings.ReplaceAll(tc.name, " ", "-"))
				err := s.Append(ctx, c.Edge, record.Head{}, c.Next(record.KindEquipmentRegistered, EquipmentRegistry(true), tc.kind, tc.body))
				if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), c.Edge+" seq 2") {
					t.Fatalf("err %v, want it to name seq 2 and %q", err, tc.want)
				}
				if n, _ := s.CountRecords(ctx, c.Edge); n != 0 {
					t.Fatalf("%d records stored", n)
				}
				if list, _ := s.EquipmentList(ctx, c.Edge); len(list) != 0 {
					t.Fatalf("registry projected from a refused run: %d", len(list))
				}
			})
		}
	})
}
