package record

// Equipment records: the registry of a line's serialization-critical
// equipment, its downtime (captured at the source, with cause, remediation
// and the affected batch and serials), its calibration and preventive
// maintenance, and the state of every device when a batch starts.
//
// Every body names the equipment in `equipment` and its class in `class`;
// bodies about a batch name it in `batch`; periods have `start` and `end`
// (RFC 3339 UTC, nanoseconds). Readers that do not know a kind can rely on
// those field names.
const (
	// KindEquipmentRegistered lists the line's equipment (written when the
	// registry differs from the last one recorded).
	KindEquipmentRegistered Kind = "equipment.registered"
	// KindDowntimeReportable: a downtime of serialization-critical
	// equipment reached the reportable threshold (FDA notification).
	KindDowntimeReportable Kind = "downtime.reportable"
	// KindDowntimeRemediated: root cause and remediation of a downtime,
	// e-signed.
	KindDowntimeRemediated Kind = "downtime.remediated"
	// KindWorkOrder: a calibration or maintenance work order was opened.
	KindWorkOrder Kind = "maintenance.work_order"
	// KindEquipmentDue: calibration or maintenance became due soon, due
	// (inside its tolerance window) or overdue.
	KindEquipmentDue Kind = "equipment.due"
	// KindEquipmentCheck: the state of every device when a batch started
	// (the calibration interlock's evidence, with a QA override if any).
	KindEquipmentCheck Kind = "equipment.check"
	// KindInterlockOverride: QA signed an override of the calibration
	// interlock for one batch.
	KindInterlockOverride Kind = "interlock.override"
)

// Equipment classes.
const (
	ClassPrint        = "print"
	ClassVerification = "verification"
	ClassAggregation  = "aggregation"
	ClassNetwork      = "network" // network and sync: the edge server, the link to central
)

// Calibration activities.
const (
	ActivityCalibration = "calibration"
	ActivityMaintenance = "maintenance"
)

// Schedule is a calibration or maintenance schedule of one equipment.
type Schedule struct {
	IntervalS  int64 `json:"interval_s"`  // seconds between two activities
	ToleranceS int64 `json:"tolerance_s"` // window either side of the due date
}

// EquipmentItem is one piece of equipment in the registry.
type EquipmentItem struct {
	Equipment   string    `json:"equipment"`
	Class       string    `json:"class"` // print, verification, aggregation, network
	Kind        string    `json:"kind"`  // printer, camera, plc, station, edge_server, link
	Driver      string    `json:"driver,omitempty"`
	Critical    bool      `json:"critical"` // serialization-critical: its downtime can be reportable
	DependsOn   []string  `json:"depends_on,omitempty"`
	Model       string    `json:"model,omitempty"`
	SerialNo    string    `json:"serial_no,omitempty"`
	Asset       string    `json:"asset,omitempty"`
	Location    string    `json:"location,omitempty"`
	Calibration *Schedule `json:"calibration,omitempty"`
	Maintenance *Schedule `json:"maintenance,omitempty"`
}

// EquipmentRegistered is the line's equipment registry.
type EquipmentRegistered struct {
	Line       string          `json:"line"`
	ConfigHash string          `json:"config_hash"`
	Hash       string          `json:"hash"` // SHA-256 of the items' JSON
	Items      []EquipmentItem `json:"items"`
	// ReportableAfterS is the downtime that makes an event reportable.
	ReportableAfterS int64    `json:"reportable_after_s"`
	Interlock        []string `json:"interlock"` // classes whose lapsed calibration blocks a batch start
}

// DowntimeStarted opens a downtime of one equipment.
type DowntimeStarted struct {
	ID        string `json:"id"` // unique per edge, e.g. DT-000042
	Equipment string `json:"equipment"`
	Class     string `json:"class"`
	Critical  bool   `json:"critical"`
	// Source: driver (detected from driver health), manual (entered by a
	// user), recovered (the edge itself was down; recorded on restart).
	Source string `json:"source"`
	Fault  string `json:"fault"`
	Detail string `json:"detail,omitempty"`
	// Cause is the equipment the downtime is attributed to when one of its
	// dependencies was down (a camera without its PLC trigger); empty when
	// the equipment itself is the root cause.
	Cause         string `json:"cause,omitempty"`
	CauseDowntime string `json:"cause_downtime,omitempty"`
	Start         string `json:"start"`
	Batch         string `json:"batch,omitempty"`
	// Position is the batch's last serial commissioned when the downtime
	// started; InFlight are the serials awaiting a verdict then.
	Position string   `json:"position,omitempty"`
	InFlight []string `json:"in_flight,omitempty"`
	By       string   `json:"by,omitempty"` // user, for manual entries
}

// DowntimeEnded closes a downtime with its duration and affected serials.
type DowntimeEnded struct {
	ID            string  `json:"id"`
	Equipment     string  `json:"equipment"`
	Class         string  `json:"class"`
	Critical      bool    `json:"critical"`
	Source        string  `json:"source"`
	Fault         string  `json:"fault"`
	Cause         string  `json:"cause,omitempty"`
	CauseDowntime string  `json:"cause_downtime,omitempty"`
	Start         string  `json:"start"`
	End           string  `json:"end"`
	DurationS     float64 `json:"duration_s"`
	Batch         string  `json:"batch,omitempty"`
	// Batches lists every batch active during the downtime (the first is Batch).
	Batches []string `json:"batches,omitempty"`
	// FirstSerial and LastSerial were commissioned during the downtime
	// (empty when production stopped, as for a printer fault).
	FirstSerial  string `json:"first_serial,omitempty"`
	LastSerial   string `json:"last_serial,omitempty"`
	Commissioned int    `json:"commissioned"` // units commissioned during the downtime
	// SerialFrom..SerialTo is the affected range: from the first unit in
	// flight at the start (else the first commissioned during, else the
	// position), to the last commissioned during (else the last in flight,
	// else the position).
	SerialFrom string `json:"serial_from,omitempty"`
	SerialTo   string `json:"serial_to,omitempty"`
	Reportable bool   `json:"reportable"`
	By         string `json:"by,omitempty"`
}

// DowntimeReportable: the downtime reached the reportable threshold.
type DowntimeReportable struct {
	ID         string   `json:"id"`
	Equipment  string   `json:"equipment"`
	Class      string   `json:"class"`
	Fault      string   `json:"fault"`
	Start      string   `json:"start"`
	At         string   `json:"at"` // when the threshold was reached (start + threshold)
	ThresholdS int64    `json:"threshold_s"`
	Batch      string   `json:"batch,omitempty"`
	Position   string   `json:"position,omitempty"`
	InFlight   []string `json:"in_flight,omitempty"`
}

// DowntimeRemediated is the root cause and remediation of a downtime.
type DowntimeRemediated struct {
	ID          string     `json:"id"`
	Equipment   string     `json:"equipment"`
	Class       string     `json:"class"`
	Batch       string     `json:"batch,omitempty"`
	Start       string     `json:"start"`
	End         string     `json:"end,omitempty"`
	RootCause   string     `json:"root_cause"`
	Remediation string     `json:"remediation"`
	Signature   *Signature `json:"signature"`
}

// WorkOrder is a calibration or maintenance work order.
type WorkOrder struct {
	ID         string `json:"id"`
	Equipment  string `json:"equipment"`
	Class      string `json:"class"`
	Activity   string `json:"activity"` // calibration, maintenance
	Due        string `json:"due"`
	WindowFrom string `json:"window_from"`
	WindowTo   string `json:"window_to"`
	State      string `json:"state"` // open
}

// EquipmentDue: a schedule changed state.
type EquipmentDue struct {
	Equipment string `json:"equipment"`
	Class     string `json:"class"`
	Activity  string `json:"activity"`
	// State: due_soon, due (inside the tolerance window), overdue, never
	// (no activity recorded yet), failed (the last calibration failed).
	State     string `json:"state"`
	Due       string `json:"due,omitempty"`
	WindowTo  string `json:"window_to,omitempty"`
	WorkOrder string `json:"work_order,omitempty"`
}

// CalibrationResult is one measured parameter.
type CalibrationResult struct {
	Name  string `json:"name"`
	Value string `json:"value"`
	Unit  string `json:"unit,omitempty"`
	Spec  string `json:"spec,omitempty"` // acceptance criterion, e.g. "ISO 15415 grade A on the reference card"
	Pass  bool   `json:"pass"`
}

// Certificate is a calibration certificate file carried in the record.
type Certificate struct {
	Name        string `json:"name"`
	ContentType string `json:"content_type"`
	Size        int    `json:"size"`
	SHA256      string `json:"sha256"` // hex of Data
	Data        []byte `json:"data"`   // base64 in JSON
}

// Calibration records a completed calibration or maintenance.
type Calibration struct {
	Equipment string              `json:"equipment"`
	Class     string              `json:"class"`
	Activity  string              `json:"activity"` // calibration, maintenance
	WorkOrder string              `json:"work_order,omitempty"`
	Performed string              `json:"performed"` // when the work was done
	Result    string              `json:"result"`    // pass, fail
	Results   []CalibrationResult `json:"results,omitempty"`
	Notes     string              `json:"notes,omitempty"`
	// Due is the due date this activity satisfied; NextDue the next one.
	Due     string `json:"due,omitempty"`
	NextDue string `json:"next_due,omitempty"`
	// Source is empty for work recorded at the line, "baseline" for the
	// last activity before Serialine kept the history (from the line
	// configuration, with Reference naming the paper record).
	Source      string       `json:"source,omitempty"`
	Reference   string       `json:"reference,omitempty"`
	Certificate *Certificate `json:"certificate,omitempty"`
	Signature   *Signature   `json:"signature,omitempty"`
	By          string       `json:"by,omitempty"`
}

// EquipmentState is one equipment's state at a point in time.
type EquipmentState struct {
	Equipment   string         `json:"equipment"`
	Class       string         `json:"class"`
	Status      string         `json:"status"` // up, down
	Downtime    string         `json:"downtime,omitempty"`
	Calibration *ScheduleState `json:"calibration,omitempty"`
	Maintenance *ScheduleState `json:"maintenance,omitempty"`
}

// ScheduleState is a schedule's state at a point in time.
type ScheduleState struct {
	State    string `json:"state"` // ok, due_soon, due, overdue, never, failed
	Due      string `json:"due,omitempty"`
	WindowTo string `json:"window_to,omitempty"`
	Last     string `json:"last,omitempty"`
	LastRef  string `json:"last_ref,omitempty"` // work order or certificate SHA-256 of the last activity
}

// EquipmentCheck is the state of every device when a batch started.
type EquipmentCheck struct {
	Batch string           `json:"batch"`
	Items []EquipmentState `json:"items"`
	// Blocked lists equipment whose lapsed calibration would have refused
	// the start; Override is the QA override that allowed it.
	Blocked  []string           `json:"blocked,omitempty"`
	Override *InterlockOverride `json:"override,omitempty"`
}

// OverriddenItem is one lapsed calibration covered by an override.
type OverriddenItem struct {
	Equipment string `json:"equipment"`
	Class     string `json:"class"`
	State     string `json:"state"`
	Due       string `json:"due,omitempty"`
}

// InterlockOverride is QA's signed override of the calibration interlock
// for one batch.
type InterlockOverride struct {
	Batch      string           `json:"batch"`
	Items      []OverriddenItem `json:"items"`
	Reason     string           `json:"reason"`
	ValidUntil string           `json:"valid_until"`
	Signature  *Signature       `json:"signature"`
}
