package line

import (
	"strings"

	"github.com/serialine/serialine/sync/gs1"
)

// Unit statuses (persisted).
const (
	UnitCommissioned   = "commissioned"   // serial assigned, label sent to the printer, no verdict yet
	UnitGood           = "good"           // verified: data matches, grade >= minimum
	UnitRejected       = "rejected"       // verdict fail; physically rejected at the gate
	UnitDecommissioned = "decommissioned" // taken out of use (reject disposition, restart, print failure)
	UnitSample         = "sample"         // a good unit pulled as a QA sample
	UnitDestroyed      = "destroyed"      // a good unit destroyed after verification (damaged)
)

// Reject reasons recorded as evidence.
const (
	ReasonNoRead        = "no_read"
	ReasonGrade         = "grade_below_minimum"
	ReasonMismatch      = "data_mismatch"
	ReasonDuplicate     = "duplicate_read"
	ReasonOutOfSequence = "out_of_sequence"
	ReasonTimeout       = "no_verdict_in_time"
	ReasonUnparseable   = "unparseable_read"
	ReasonForeign       = "foreign_code"
	ReasonPrintFailed   = "print_failed"
	ReasonRestart       = "unknown_after_restart"
)

// Batch states (PackML-flavoured).
const (
	BatchCreated  = "created" // waiting for line clearance
	BatchCleared  = "cleared" // line clearance signed; ready to start
	BatchRunning  = "running"
	BatchHeld     = "held"
	BatchStopped  = "stopped"
	BatchComplete = "complete" // planned quantity commissioned
	BatchClosed   = "closed"
)

// unit is the persisted state of one serial (key: gtin 0x00 serial). Every
// allocated serial has one, forever: the units bucket is the used-serial set.
type unit struct {
	Batch  string  `json:"b"`
	Seq    uint64  `json:"n"` // print order within the batch
	Status string  `json:"s"`
	Reason string  `json:"r,omitempty"`
	Parent string  `json:"p,omitempty"` // case SSCC
	Grade  float64 `json:"g,omitempty"`
}

// challenge is a running challenge test: kinds still to run and the one
// whose unit is on its way.
type challenge struct {
	Pending []string `json:"pending"`
	Active  string   `json:"active,omitempty"`
	Trigger string   `json:"trigger"`
}

// inflight is a unit sent to the printer and awaiting its camera verdict.
type inflight struct {
	Serial string `json:"s"`
	Seq    uint64 `json:"n"`
	SentAt int64  `json:"t"` // unix nanos
	// Deadline is when the unit is rejected without a verdict (fail-safe);
	// set when the unit becomes the head of the queue.
	Deadline int64 `json:"d,omitempty"`
	// Challenge marks a challenge unit (its kind), not a product unit.
	Challenge string `json:"c,omitempty"`
}

// batch is the persisted state of a batch (work order).
type batch struct {
	ID             string  `json:"id"`
	GTIN           string  `json:"gtin"`
	Product        string  `json:"product"`
	Lot            string  `json:"lot"`
	Expiry         string  `json:"expiry"`
	Planned        int     `json:"planned"`
	UnitsPerCase   int     `json:"units_per_case"`
	CasesPerPallet int     `json:"cases_per_pallet"`
	MinGrade       float64 `json:"min_grade"`
	ConfigHash     string  `json:"config_hash"`
	State          string  `json:"state"`

	Allocated     int        `json:"allocated"` // serials reserved for the batch
	Returned      int        `json:"returned"`  // unused serials returned to the pool at close
	Samples       int        `json:"samples"`
	Destroyed     int        `json:"destroyed"` // good units destroyed after verification
	Aggregated    int        `json:"aggregated"`
	Challenge     *challenge `json:"challenge,omitempty"`
	NextChallenge int        `json:"next_challenge,omitempty"` // commissioned count that triggers the next interval challenge
	ChallengeSeq  int        `json:"challenge_seq,omitempty"`
	Alarms        []string   `json:"alarms,omitempty"`
	// SamplesPlanned is the product's QA sample count per batch; a close
	// with fewer samples pulled does not reconcile without a signed reason.
	SamplesPlanned int `json:"samples_planned,omitempty"`
	// Open lists the SSCCs of the batch's open containers, in opening order.
	Open []string `json:"open,omitempty"`
	// PendingConfig is the hash of a changed line config waiting for the
	// batch to close (the batch keeps the config it started with).
	PendingConfig string `json:"pending_config,omitempty"`
	// Waiting lists full containers (sequential aggregation) that wait for
	// their level's label printer before they close, in order.
	Waiting []string `json:"waiting,omitempty"`
	// LabelsQueued are containers whose SSCC label was handed to their
	// printer and whose outcome is not known yet; LabelsPending those whose
	// label may not have printed (failed, or unknown after a restart): they
	// wait for an e-signed reprint.
	LabelsQueued  []string `json:"labels_queued,omitempty"`
	LabelsPending []string `json:"labels_pending,omitempty"`
	// Rejects are reject pulses on their way to the PLC; Undelivered the
	// ones that did not reach it by their deadline, each waiting for a
	// supervisor to confirm the item was found and removed.
	Rejects         []pendingReject `json:"rejects,omitempty"`
	Undelivered     []pendingReject `json:"undelivered,omitempty"`
	CaseReadRejects int             `json:"case_read_rejects,omitempty"`

	NextSeq        uint64         `json:"next_seq"`
	Commissioned   int            `json:"commissioned"`
	Good           int            `json:"good"`
	Rejected       int            `json:"rejected"`
	Decommissioned int            `json:"decommissioned"`
	Reasons        map[string]int `json:"reasons,omitempty"`
	Packed         int            `json:"packed"`
	CasesClosed    int            `json:"cases_closed"`
	PalletsClosed  int            `json:"pallets_closed"`
	OpenCase       string         `json:"open_case,omitempty"`
	OpenPallet     string         `json:"open_pallet,omitempty"`
	InFlight       []inflight     `json:"in_flight,omitempty"`
	LastSerial     string         `json:"last_serial,omitempty"`
}

// container is the persisted state of a case or pallet (key: SSCC).
type container struct {
	SSCC     string   `json:"sscc"`
	Level    string   `json:"level"`
	Batch    string   `json:"batch"`
	GTIN     string   `json:"gtin"`
	Parent   string   `json:"parent,omitempty"`
	Children []string `json:"children"` // unit ids "(01)gtin(21)serial" or case SSCCs
	Closed   bool     `json:"closed"`
	Partial  bool     `json:"partial,omitempty"`
	// Label is the state of the container's SSCC label when a printer
	// labels its level: queued, sent or pending (reprint needed); empty
	// when no printer labels the level.
	Label string `json:"label,omitempty"`
}

func unitKey(gtin, serial string) []byte {
	return appendUnitKey(make([]byte, 0, len(gtin)+1+len(serial)), gtin, serial)
}

// appendUnitKey appends a unit's key (gtin 0x00 serial) to dst.
func appendUnitKey(dst []byte, gtin, serial string) []byte {
	dst = append(dst, gtin...)
	dst = append(dst, 0)
	return append(dst, serial...)
}

// elements is what is printed in a unit's DataMatrix: fixed-length AIs first,
// then lot (variable, FNC1-terminated) and serial last.
func (b *batch) elements(serial string) gs1.Elements {
	return gs1.Elements{{AI: "01", Value: b.GTIN}, {AI: "17", Value: b.Expiry}, {AI: "10", Value: b.Lot}, {AI: "21", Value: serial}}
}

// parseUnitID splits "(01)gtin(21)serial".
func parseUnitID(id string) (gtin, serial string, ok bool) {
	if !strings.HasPrefix(id, "(01)") || len(id) < 4+14+4+1 || id[18:22] != "(21)" {
		return "", "", false
	}
	return id[4:18], id[22:], true
}
