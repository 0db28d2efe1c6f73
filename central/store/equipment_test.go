package store

import (
	"strings"
	"testing"
	"time"

	"github.com/serialine/serialine/sync/record"
)

// FuzzProjectEquipment feeds arbitrary bodies of every equipment kind to
// the projection: it never panics, and refuses a body with an error naming
// the edge, the seq and the kind.
func FuzzProjectEquipment(f *testing.F) {
	kinds := []record.Kind{record.KindEquipmentRegistered, record.KindDowntimeStarted, record.KindDowntimeEnded, record.KindDowntimeReportable,
		record.KindDowntimeRemediated, record.KindWorkOrder, record.KindEquipmentDue, record.KindCalibration, record.KindEquipmentCheck}
	f.Add(uint8(1), []byte(`{"id":"DT-1","equipment":"p1","start":"2026-12-01T08:00:00Z"}`))
	f.Add(uint8(2), []byte(`{"id":"DT-1","equipment":"p1","start":"2026-12-01T08:00:00Z","end":"2026-12-01T09:00:00.5Z","duration_s":3600.5}`))
	f.Add(uint8(7), []byte(`{"equipment":"c1","activity":"calibration","performed":"2026-12-01T08:00:00Z","certificate":{"name":"a.pdf","size":3,"sha256":"x","data":"YWJj"}}`))
	f.Add(uint8(0), []byte(`{"items":[{"equipment":"p1","class":"print","calibration":{"interval_s":1}}]}`))
	f.Add(uint8(4), []byte(`{"id":"DT-1","signature":{"user":"u"}}`))
	f.Add(uint8(8), []byte(`[]`))
	f.Fuzz(func(t *testing.T, k uint8, body []byte) {
		kind := kinds[int(k)%len(kinds)]
		recs := []Stored{{Record: record.Record{Edge: "edge-f", Epoch: 1, Seq: 9, Kind: kind, Time: time.Unix(0, 0), Body: body}}}
		ops, err := ProjectEquipment(recs)
		if err != nil {
			if !strings.Contains(err.Error(), "edge edge-f seq 9") || !strings.Contains(err.Error(), string(kind)) {
				t.Fatalf("error does not name the record: %v", err)
			}
			return
		}
		if len(ops) != 1 || ops[0].Kind != kind || ops[0].Ref() != "edge-f/1/9" {
			t.Fatalf("ops %+v", ops)
		}
	})
}
