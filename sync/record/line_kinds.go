package record

// Record kinds of the line's container labels and reject signals.
const (
	// KindContainerLabel documents the SSCC label of a case or pallet:
	// queued for its printer when the container closed, sent, failed (the
	// label is pending until it is reprinted) or reprinted.
	KindContainerLabel Kind = "container.label"
	// KindRejectNotDelivered: a reject pulse could not be delivered to the
	// PLC by its deadline, so the rejected unit may have gone downstream.
	KindRejectNotDelivered Kind = "reject.not_delivered"
	// KindRejectRemoved: a supervisor confirmed (e-signed) that a unit
	// whose reject was not delivered was found and removed from the line.
	KindRejectRemoved Kind = "reject.removed"
)

// Container label events (ContainerLabel.Event).
const (
	LabelQueued  = "queued"  // handed to the container's printer when the container closed
	LabelSent    = "sent"    // the printer took the label (Zebra: no print confirmation)
	LabelFailed  = "failed"  // the label may not have printed: pending until reprinted
	LabelReprint = "reprint" // an e-signed reprint was queued
)

// ContainerLabel is one step of a container's SSCC label (GS1-128 with the
// human-readable interpretation, print and apply).
type ContainerLabel struct {
	Batch   string `json:"batch"`
	SSCC    string `json:"sscc"`
	Level   string `json:"level"`   // case or pallet
	Printer string `json:"printer"` // device name
	Event   string `json:"event"`   // queued, sent, failed, reprint
	Data    string `json:"data,omitempty"`
	Detail  string `json:"detail,omitempty"`
	By      string `json:"by,omitempty"`
	// Signature is the supervisor's e-signature of a reprint.
	Signature *Signature `json:"signature,omitempty"`
}

// RejectNotDelivered names a unit (or a challenge unit, or a refused case)
// whose reject pulse did not reach the PLC by its deadline. The engine never
// pulses after the deadline (a late pulse throws out another unit): it holds
// the batch until a supervisor confirms the item was found and removed.
type RejectNotDelivered struct {
	Batch  string `json:"batch"`
	ID     string `json:"id"`             // what to confirm: the serial, or "caseread-N"
	Unit   string `json:"unit,omitempty"` // (01)GTIN(21)SERIAL of a unit
	Reason string `json:"reason"`         // why it was rejected
	// Case is the case open when the verdict was given: where a unit that
	// went downstream is most likely found.
	Case      string `json:"case,omitempty"`
	VerdictAt string `json:"verdict_at"` // RFC 3339
	Deadline  string `json:"deadline"`   // RFC 3339
	Detail    string `json:"detail"`     // why the pulse was not delivered
}

// RejectRemoved is a supervisor's confirmation that an item whose reject
// was not delivered has been found and removed.
type RejectRemoved struct {
	Batch     string     `json:"batch"`
	ID        string     `json:"id"`
	Unit      string     `json:"unit,omitempty"`
	Note      string     `json:"note"`
	Signature *Signature `json:"signature"`
}
