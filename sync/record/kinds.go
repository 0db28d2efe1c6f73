package record

import "strings"

// Kind names what a record documents.
type Kind string

// Record kinds. Bodies are the structs below, JSON-encoded.
const (
	KindEdgeStarted        Kind = "edge.started"
	KindConfigApplied      Kind = "config.applied"
	KindBatchStarted       Kind = "batch.started"
	KindBatchStateChanged  Kind = "batch.state"
	KindBatchClosed        Kind = "batch.closed"
	KindUnitCommissioned   Kind = "unit.commissioned"
	KindUnitVerified       Kind = "unit.verified"
	KindUnitDecommissioned Kind = "unit.decommissioned"
	KindContainerOpened    Kind = "container.opened"
	KindPacked             Kind = "packed"
	KindUnpacked           Kind = "unpacked"
	KindContainerClosed    Kind = "container.closed"
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
