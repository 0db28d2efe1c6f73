package store

import (
	"fmt"
	"strings"
	"time"

	"github.com/serialine/serialine/sync/wire"
)

// Alert severities.
const (
	SeverityInfo     = "info"
	SeverityWarning  = "warning"
	SeverityCritical = "critical"
)

// Alert is something QA or ops must look at: a quarantined record, an
// identifier used by two edges, an FDA-reportable downtime, a calibration
// overdue. Alerts are raised by central's components; acknowledging one is
// a user action (recorded in central's journal).
type Alert struct {
	ID       int64
	At       time.Time
	Severity string // info, warning, critical
	// Code is machine-readable: quarantine, identifier_conflict,
	// downtime_reportable, calibration_overdue, ...
	Code string
	// Key deduplicates: while an alert with the same non-empty key is
	// active, raising it again returns the existing alert.
	Key     string
	Edge    string // edge concerned, if any
	Message string
	// Ref names the record the alert is about (edge/epoch/seq), if any.
	Ref       string
	Active    bool
	AckedBy   string
	AckedAt   time.Time
	ClearedAt time.Time
}

// AlertFilter selects alerts.
type AlertFilter struct {
	ActiveOnly bool
	Edge       string
	Code       string
	Limit      int // default 100
}

// JournalPrefix starts the edge id of central's own journals (one per
// central instance): the chain of user actions and other records central
// itself writes and signs. No line edge may be enrolled under it.
const JournalPrefix = "central."

// IsJournal reports whether an edge id names a central journal.
func IsJournal(id string) bool { return strings.HasPrefix(id, JournalPrefix) }

// ValidLineEdgeID checks an id an admin enrolls for a line edge: a valid
// edge id, and not under the journal prefix that central reserves.
func ValidLineEdgeID(id string) error {
	if err := wire.ValidEdgeID(id); err != nil {
		return err
	}
	if IsJournal(id) {
		return fmt.Errorf("edge id %q: the prefix %q is reserved for central's journals", id, JournalPrefix)
	}
	return nil
}
