package equipment

import "time"

// Schedule states.
const (
	StateOK      = "ok"
	StateDueSoon = "due_soon" // the due date is near: the work order is open
	StateDue     = "due"      // inside the tolerance window around the due date
	StateOverdue = "overdue"  // past due + tolerance
	StateNever   = "never"    // no activity recorded (nor a baseline)
	StateFailed  = "failed"   // the last calibration failed
)

// Lapsed reports whether a calibration in this state no longer covers
// production: overdue, never done or failed. The interlock refuses a batch
// start on lapsed calibration of the interlocked classes.
func Lapsed(state string) bool {
	return state == StateOverdue || state == StateNever || state == StateFailed
}

// schedState is the persisted state of one schedule.
type schedState struct {
	Last      time.Time `json:"last,omitzero"`
	Due       time.Time `json:"due,omitzero"` // zero: never done
	Failed    bool      `json:"failed,omitempty"`
	LastRef   string    `json:"last_ref,omitempty"`
	WorkOrder string    `json:"work_order,omitempty"` // the open work order
	// Recorded is the last state written as an equipment.due record (or
	// "ok" after an activity), so each transition is recorded once.
	Recorded string `json:"recorded,omitempty"`
}

// State is the schedule's state at now. The window around the due date is
// [due - tolerance, due + tolerance]; "due soon" starts dueSoon before the
// due date (at the window's start if that is earlier).
func (s Schedule) State(st schedState, now time.Time, dueSoon time.Duration) string {
	switch {
	case st.Failed:
		return StateFailed
	case st.Due.IsZero():
		return StateNever
	case now.After(st.Due.Add(s.Tolerance)):
		return StateOverdue
	case !now.Before(st.Due.Add(-s.Tolerance)):
		return StateDue
	case !now.Before(st.Due.Add(-max(dueSoon, s.Tolerance))):
		return StateDueSoon
	}
	return StateOK
}

// Next is the next due date after work performed at `performed` for the due
// date `due`: work done inside the tolerance window keeps the plan (due +
// interval, so the schedule does not drift); early or late work restarts
// it from the day it was done.
func (s Schedule) Next(due, performed time.Time) time.Time {
	if !due.IsZero() && !performed.Before(due.Add(-s.Tolerance)) && !performed.After(due.Add(s.Tolerance)) {
		return due.Add(s.Interval)
	}
	return performed.Add(s.Interval)
}

// WindowTo is the end of the tolerance window (after it: overdue).
func (s Schedule) WindowTo(due time.Time) time.Time {
	if due.IsZero() {
		return time.Time{}
	}
	return due.Add(s.Tolerance)
}
