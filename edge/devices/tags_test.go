package devices

import (
	"testing"

	"github.com/serialine/serialine/edge/line"
	"github.com/serialine/serialine/edge/tags"
)

func TestSnapshotStopReason(t *testing.T) {
	ok := map[string]string{"printer-1": "ok", "camera-1": "ok", "plc-1": "ok"}
	down := map[string]string{"printer-1": "ok", "camera-1": "disconnected", "plc-1": "ok"}
	cases := []struct {
		name string
		s    line.Status
		want int32
	}{
		{"executing", line.Status{PackML: line.PackMLExecute, Devices: ok}, tags.StopNone},
		{"executing with an alarm", line.Status{PackML: line.PackMLExecute, Devices: ok, Alarms: []string{"low serials"}}, tags.StopNone},
		{"idle", line.Status{PackML: line.PackMLIdle, Devices: down}, tags.StopNone},
		{"held by a user", line.Status{PackML: line.PackMLHeld, Devices: ok}, tags.StopOperator},
		{"stopped", line.Status{PackML: line.PackMLStopped, Devices: ok}, tags.StopOperator},
		{"suspended: camera down", line.Status{PackML: line.PackMLSuspended, Devices: down}, tags.StopDevice},
		{"held, challenge failed", line.Status{PackML: line.PackMLHeld, Devices: ok, Challenge: "failed"}, tags.StopChallenge},
		{"held with an alarm", line.Status{PackML: line.PackMLHeld, Devices: ok, Alarms: []string{"x"}}, tags.StopAlarm},
	}
	for _, tc := range cases {
		if got := Snapshot(tc.s).StopReason; got != tc.want {
			t.Errorf("%s: StopReason %d, want %d", tc.name, got, tc.want)
		}
	}
	sn := Snapshot(line.Status{PackML: 6, Good: 90, Rejected: 10, OpenCaseFill: 3, PendingSync: 7, Alarms: []string{"a", "b"}})
	if sn.ProdProcessedCount != 100 || sn.ProdDefectiveCount != 10 || sn.CaseFill != 3 || sn.SyncBacklog != 7 || len(sn.Alarms) != 2 || sn.UnitModeCurrent != 1 {
		t.Fatalf("snapshot %+v", sn)
	}
}
