package record

import "strings"

// Kind names what a record documents.
type Kind string

// Record kinds. Bodies are the structs below, JSON-encoded.
const (
	KindEdgeStarted        Kind = "edge.started"
	KindConfigApplied      Kind = "config.applied"
	KindBatchCreated       Kind = "batch.created"
	KindLineClearance      Kind = "batch.line_clearance"
	KindBatchStarted       Kind = "batch.started"
	KindSerialsReserved    Kind = "serials.reserved"
	KindSerialsReturned    Kind = "serials.returned"
	KindSerialsImported    Kind = "serials.imported"
	KindSerialsGenerated   Kind = "serials.generated"
	KindUnitDisposition    Kind = "unit.disposition"
	KindChallenge          Kind = "challenge"
	KindAlarm              Kind = "alarm"
	KindBatchStateChanged  Kind = "batch.state"
	KindBatchClosed        Kind = "batch.closed"
	KindUnitCommissioned   Kind = "unit.commissioned"
	KindUnitVerified       Kind = "unit.verified"
	KindUnitDecommissioned Kind = "unit.decommissioned"
	KindContainerOpened    Kind = "container.opened"
	KindPacked             Kind = "packed"
	KindUnpacked           Kind = "unpacked"
	KindContainerClosed    Kind = "container.closed"
	KindContainerReopened  Kind = "container.reopened"
	KindCaseRead           Kind = "aggregation.read"
	KindDowntimeStarted    Kind = "downtime.started"
	KindDowntimeEnded      Kind = "downtime.ended"
	KindCalibration        Kind = "calibration"
	KindUserAction         Kind = "user.action"
	KindShipped            Kind = "shipped"
	KindDeviceFault        Kind = "device.fault"
)

// Valid reports whether k is a syntactically valid kind: lower-case
// letters, digits, dots and underscores, 1..64 bytes. Unknown but valid kinds
// are accepted so that newer edges can talk to older centrals.
func (k Kind) Valid() bool {
	if len(k) == 0 || len(k) > 64 {
		return false
	}
	return strings.IndexFunc(string(k), func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '_')
	}) < 0
}

// EdgeStarted is written each time the edge daemon starts.
type EdgeStarted struct {
	Version   string `json:"version"`
	Line      string `json:"line"`
	PublicKey string `json:"public_key"` // base64 Ed25519
}

// ConfigApplied records the hash of the line configuration in force.
type ConfigApplied struct {
	Line string `json:"line"`
	Hash string `json:"hash"` // SHA-256 hex of the config file bytes
	File string `json:"file,omitempty"`
}

// Signature is a Part 11 electronic signature captured at the line.
type Signature struct {
	User    string `json:"user"`
	Name    string `json:"name"`    // printed name
	Meaning string `json:"meaning"` // e.g. "approval", "review", "responsibility"
	Time    string `json:"time"`    // RFC 3339 UTC
	Reason  string `json:"reason,omitempty"`
	// Ref and RefHash bind a signature kept in another record (central's
	// journal) to the record it signs: its edge/epoch/seq and its SHA-256
	// (hex), so the signature cannot be moved to another record (21 CFR
	// 11.70). A signature inside the signed record's own body needs neither.
	Ref     string `json:"ref,omitempty"`
	RefHash string `json:"ref_hash,omitempty"`
}

// BatchStarted opens a batch (work order) on a line.
type BatchStarted struct {
	Batch          string     `json:"batch"`
	Line           string     `json:"line"`
	GTIN           string     `json:"gtin"`
	Product        string     `json:"product"`
	Lot            string     `json:"lot"`
	Expiry         string     `json:"expiry"` // YYMMDD
	Planned        int        `json:"planned"`
	UnitsPerCase   int        `json:"units_per_case"`
	CasesPerPallet int        `json:"cases_per_pallet"`
	MinGrade       float64    `json:"min_grade"`
	ConfigHash     string     `json:"config_hash"`
	StartedBy      string     `json:"started_by"`
	Signature      *Signature `json:"signature,omitempty"`
}

// BatchCreated: a batch (work order) was created; it runs after line clearance.
type BatchCreated struct {
	Batch     string `json:"batch"`
	Line      string `json:"line"`
	GTIN      string `json:"gtin"`
	Product   string `json:"product"`
	Lot       string `json:"lot"`
	Expiry    string `json:"expiry"`
	Planned   int    `json:"planned"`
	CreatedBy string `json:"created_by"`
}

// LineClearance: a supervisor confirmed the line is clear of material
// from earlier batches (e-signed).
type LineClearance struct {
	Batch     string     `json:"batch"`
	Signature *Signature `json:"signature,omitempty"`
	By        string     `json:"by"`
	Note      string     `json:"note,omitempty"`
}

// Serials lists serials allocated to or returned from a batch, or added to
// a pool. Long lists are split over several records (Part, Parts).
type Serials struct {
	Batch   string   `json:"batch,omitempty"`
	GTIN    string   `json:"gtin"`
	Count   int      `json:"count"`
	Serials []string `json:"serials,omitempty"`
	Part    int      `json:"part,omitempty"`
	Parts   int      `json:"parts,omitempty"`
	Source  string   `json:"source,omitempty"` // generated | import file name
	By      string   `json:"by,omitempty"`
}

// UnitDisposition: what happened to a unit taken out of the saleable flow.
type UnitDisposition struct {
	Batch       string     `json:"batch"`
	GTIN        string     `json:"gtin"`
	Serial      string     `json:"serial"`
	Disposition string     `json:"disposition"` // destroyed, sample, rework
	Reason      string     `json:"reason,omitempty"`
	Signature   *Signature `json:"signature,omitempty"`
}

// Challenge is the evidence of a challenge test: a known-bad unit must be
// rejected for the expected reason.
type Challenge struct {
	Batch    string  `json:"batch"`
	Kind     string  `json:"kind"` // wrong_data, no_read, bad_grade
	Passed   bool    `json:"passed"`
	Verdict  string  `json:"verdict"` // reject reason seen, or "pass" when the bad unit was accepted
	Data     string  `json:"data,omitempty"`
	Grade    float64 `json:"grade,omitempty"`
	Camera   string  `json:"camera,omitempty"`
	Trigger  string  `json:"trigger"`  // batch_start, interval, manual
	Rejected bool    `json:"rejected"` // reject signal sent to the PLC
}

// Alarm is raised or cleared on the line.
type Alarm struct {
	Code    string `json:"code"` // e.g. pool_low, challenge_failed
	Active  bool   `json:"active"`
	Message string `json:"message"`
}

// BatchState records a batch state transition (hold, resume, stop ...).
type BatchState struct {
	Batch  string `json:"batch"`
	From   string `json:"from"`
	To     string `json:"to"`
	Reason string `json:"reason,omitempty"`
	By     string `json:"by,omitempty"`
}

// Reconciliation balances a batch at close.
type Reconciliation struct {
	Allocated      int `json:"allocated"`
	Commissioned   int `json:"commissioned"`
	ReturnedUnused int `json:"returned_unused"`
	Good           int `json:"good"`
	Rejected       int `json:"rejected"`
	Samples        int `json:"samples"`
	Destroyed      int `json:"destroyed"`
	Aggregated     int `json:"aggregated"`
	Loose          int `json:"loose"`
}

// BatchClosed closes a batch with its reconciliation.
type BatchClosed struct {
	Batch          string         `json:"batch"`
	Reconciliation Reconciliation `json:"reconciliation"`
	Balanced       bool           `json:"balanced"`
	Problems       []string       `json:"problems,omitempty"` // what did not reconcile
	Notes          string         `json:"notes,omitempty"`    // e.g. why good units are loose
	Signature      *Signature     `json:"signature,omitempty"`
}

// UnitCommissioned: a serial was assigned to a unit and sent to the printer.
type UnitCommissioned struct {
	Batch   string `json:"batch"`
	GTIN    string `json:"gtin"`
	Serial  string `json:"serial"`
	Lot     string `json:"lot"`
	Expiry  string `json:"expiry"`
	Printer string `json:"printer"`
	Data    string `json:"data"` // bracketed element string sent to print
}

// UnitVerified is the camera's evidence and the engine's verdict.
type UnitVerified struct {
	Batch   string             `json:"batch"`
	GTIN    string             `json:"gtin"`
	Serial  string             `json:"serial"`
	Camera  string             `json:"camera"`
	Data    string             `json:"data,omitempty"` // decoded data, bracketed
	Grade   float64            `json:"grade"`
	Letter  string             `json:"letter"`
	Params  map[string]float64 `json:"params,omitempty"`
	Pass    bool               `json:"pass"`
	Reason  string             `json:"reason,omitempty"` // no_read, grade, mismatch, duplicate, out_of_sequence, timeout
	ReadAt  string             `json:"read_at,omitempty"`
	Latency int64              `json:"latency_us,omitempty"` // print sent -> verdict
}

// UnitDecommissioned: a serial is taken out of use (reject, sample, restart).
type UnitDecommissioned struct {
	Batch       string `json:"batch"`
	GTIN        string `json:"gtin"`
	Serial      string `json:"serial"`
	Reason      string `json:"reason"`
	Disposition string `json:"disposition"` // destroyed, sample, rework, unknown
}

// ContainerOpened: an SSCC was allocated to a new case or pallet.
type ContainerOpened struct {
	Batch string `json:"batch"`
	SSCC  string `json:"sscc"`
	Level string `json:"level"`
}

// Packed links children into a parent container.
type Packed struct {
	Batch    string   `json:"batch"`
	Parent   string   `json:"parent"` // SSCC
	Level    string   `json:"level"`  // level of the parent
	Children []string `json:"children"`
}

// Unpacked removes children from a parent container (rework).
type Unpacked struct {
	Batch     string     `json:"batch"`
	Parent    string     `json:"parent"`
	Level     string     `json:"level"`
	Children  []string   `json:"children"`
	Reason    string     `json:"reason,omitempty"`
	Signature *Signature `json:"signature,omitempty"`
}

// ContainerReopened: a closed container is opened again for rework.
type ContainerReopened struct {
	Batch     string     `json:"batch"`
	SSCC      string     `json:"sscc"`
	Level     string     `json:"level"`
	Reason    string     `json:"reason,omitempty"`
	Signature *Signature `json:"signature,omitempty"`
}

// CaseRead is the evidence of an automatic aggregation read: the case
// camera's list of unit codes and the engine's verdict on it.
type CaseRead struct {
	Batch    string   `json:"batch"`
	Camera   string   `json:"camera"`
	SSCC     string   `json:"sscc,omitempty"`
	Codes    []string `json:"codes"`
	Accepted bool     `json:"accepted"`
	Problem  string   `json:"problem,omitempty"`
}

// ContainerClosed: a container is complete and validated.
type ContainerClosed struct {
	Batch     string     `json:"batch"`
	SSCC      string     `json:"sscc"`
	Level     string     `json:"level"`
	Count     int        `json:"count"`
	Children  []string   `json:"children"`
	Partial   bool       `json:"partial,omitempty"`
	Signature *Signature `json:"signature,omitempty"`
}

// DeviceFault records a device fault or recovery seen by a driver.
type DeviceFault struct {
	Device string `json:"device"`
	Kind   string `json:"kind"`
	Fault  string `json:"fault"`
	Detail string `json:"detail,omitempty"`
	Raw    string `json:"raw,omitempty"`
}

// UnitID renders a unit identifier as bracketed GS1 data: (01)GTIN(21)SERIAL.
func UnitID(gtin, serial string) string { return "(01)" + gtin + "(21)" + serial }

// ContainerID renders a container identifier: (00)SSCC.
func ContainerID(sscc string) string { return "(00)" + sscc }

// UserAction is what a person did through central or the edge (21 CFR
// 11.10(e)): who, what, when (the record time), the old and the new value,
// and why. Actions that need an e-signature carry it.
type UserAction struct {
	User   string `json:"user"`
	Name   string `json:"name,omitempty"` // printed name
	Role   string `json:"role,omitempty"`
	Action string `json:"action"`           // e.g. edge.enrolled, alert.acknowledged, user.created
	Target string `json:"target,omitempty"` // what the action is about (edge id, alert id, batch, ...)
	Field  string `json:"field,omitempty"`  // the corrected or changed field, if one
	Old    string `json:"old,omitempty"`
	New    string `json:"new,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Signature is the e-signature when the action needs one.
	Signature *Signature `json:"signature,omitempty"`
}
