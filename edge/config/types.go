// Package config is the line configuration a plant engineer edits: one YAML
// file per packaging line. Decoding is strict (unknown keys are errors),
// defaults are applied first, and Validate reports every problem as
// file:line: message.
package config

import (
	"time"

	"gopkg.in/yaml.v3"
)

// Line is the whole line configuration file.
type Line struct {
	Line     LineInfo    `yaml:"line"`
	Edge     Edge        `yaml:"edge"`
	Central  Central     `yaml:"central"`
	Company  Company     `yaml:"company"`
	Products []Product   `yaml:"products"`
	Batch    *AutoBatch  `yaml:"batch,omitempty"`
	Devices  Devices     `yaml:"devices"`
	OPCUA    OPCUAServer `yaml:"opcua"`
	Users    []User      `yaml:"users,omitempty"`
	// Equipment: registry, downtime and calibration rules (equipment.go).
	Equipment Equipment `yaml:"equipment"`

	// File is the path the config was loaded from; Hash is SHA-256 (hex)
	// of its bytes. Neither is read from YAML.
	File string `yaml:"-"`
	Hash string `yaml:"-"`

	pos map[string]pos // where each key was, for Validate's errors
}

// LineInfo names the line.
type LineInfo struct {
	ID   string `yaml:"id"`
	Name string `yaml:"name"`
	Site string `yaml:"site"`
}

// Edge holds the daemon's own settings.
type Edge struct {
	ID      string `yaml:"id"`       // edge id used in records and MQTT topics
	DataDir string `yaml:"data_dir"` // bbolt store and key; relative to the config file
	HTTP    string `yaml:"http"`     // API listen address, e.g. 127.0.0.1:8081

	// Line engine timing.
	VerdictTimeout Duration `yaml:"verdict_timeout"` // camera result deadline per unit (fail-safe reject)
	PrintAhead     int      `yaml:"print_ahead"`     // labels in flight between printer and camera
	GroupCommit    int      `yaml:"group_commit"`    // max records per bbolt transaction
	// RejectDeadline is how long after its verdict a reject pulse may still
	// reach the PLC (the unit is still before the gate). A pulse that cannot
	// be delivered by then is never sent: the batch is held until a
	// supervisor confirms the unit was found and removed.
	RejectDeadline Duration `yaml:"reject_deadline"`

	Challenge Challenge `yaml:"challenge"`
}

// Challenge configures the challenge test: the line must show that a
// known-bad unit is rejected, at batch start and every N units.
type Challenge struct {
	AtStart []string `yaml:"at_start"` // kinds run when a batch starts: wrong_data, no_read, bad_grade
	Every   int      `yaml:"every"`    // run the kinds again every N commissioned units (0: only at start)
	Timeout Duration `yaml:"timeout"`  // how long the challenge unit may take to come back
}

// Central is how the edge reaches central.
type Central struct {
	Broker       string   `yaml:"broker"` // tcp://host:port, ssl://host:port
	Username     string   `yaml:"username"`
	Password     string   `yaml:"password"`
	PasswordFile string   `yaml:"password_file"`
	CAFile       string   `yaml:"ca_file"`
	CertFile     string   `yaml:"cert_file"`
	KeyFile      string   `yaml:"key_file"`
	Envelope     int      `yaml:"envelope_records"` // max records per MQTT message
	ResendAfter  Duration `yaml:"resend_after"`     // resend unacknowledged records after
	// Outbox limits: when the records central has not acknowledged reach
	// either, the line is held with the outbox_full alarm (records are
	// never dropped) until central acknowledges.
	OutboxMaxBytes int64    `yaml:"outbox_max_bytes"` // default 1 GiB
	OutboxMaxAge   Duration `yaml:"outbox_max_age"`   // age of the oldest unacknowledged record; default 72h
}

// Company holds GS1 identity used for SSCCs.
type Company struct {
	GS1Prefix     string `yaml:"gs1_prefix"`     // GS1 company prefix, 4-12 digits
	SSCCExtension int    `yaml:"sscc_extension"` // 0-9
	GLN           string `yaml:"gln"`            // site GLN (13 digits), optional
	// SSCCRange is this line's block of SSCC serial references. Lines of
	// one company share the prefix: each needs its own block (allocated by
	// the Level 4 system) or their SSCCs would collide.
	SSCCRange SSCCRange `yaml:"sscc_range"`
}

// SSCCRange is a block of SSCC serial references (inclusive).
type SSCCRange struct {
	First uint64 `yaml:"first"`
	Last  uint64 `yaml:"last"`
}

// Product is master data for one GTIN.
type Product struct {
	GTIN      string    `yaml:"gtin"`
	NDC       string    `yaml:"ndc"`
	Name      string    `yaml:"name"`
	MinGrade  string    `yaml:"min_grade"` // A..D or 0.0..4.0
	Packaging Packaging `yaml:"packaging"`
	Serials   Serials   `yaml:"serials"`
	// Aggregation mode: sequential (each verified good unit goes into the
	// open case), automatic (a case camera reads all unit codes of a case
	// at once) or manual (handheld scans through the API).
	Aggregation string `yaml:"aggregation"`
	// Samples is the number of QA samples to pull per batch (reconciliation).
	Samples int `yaml:"samples"`
	// Labels are ZPL template overrides per packaging level (unit, case, pallet).
	Labels map[string]string `yaml:"labels"`
}

// Packaging is the aggregation hierarchy of a product.
type Packaging struct {
	UnitsPerCase   int `yaml:"units_per_case"`
	CasesPerPallet int `yaml:"cases_per_pallet"`
}

// Serials configures serial numbers for a GTIN.
type Serials struct {
	Length   int    `yaml:"length"`   // characters, 1..20
	Alphabet string `yaml:"alphabet"` // numeric | alphanumeric
	// Source is where serials come from: generate (randomised locally) or
	// import (lists from a Level 4 system only: a batch cannot start
	// without enough imported serials).
	Source string `yaml:"source"`
	// OveragePercent is reserved beyond the planned quantity (rejects,
	// samples, challenge units).
	OveragePercent int `yaml:"overage_percent"`
	// LowWater raises an alarm when fewer serials remain in the pool.
	LowWater int `yaml:"low_water"`
}

// AutoBatch starts a batch when the edge starts (unattended and demo lines).
type AutoBatch struct {
	GTIN    string `yaml:"gtin"`
	Lot     string `yaml:"lot"`
	Expiry  string `yaml:"expiry"` // YYMMDD
	Planned int    `yaml:"planned"`
}

// Devices lists the line's equipment.
type Devices struct {
	Printers []Device `yaml:"printers"`
	Cameras  []Device `yaml:"cameras"`
	PLCs     []Device `yaml:"plcs"`
}

// Device is one piece of equipment. Options are driver-specific and decoded
// strictly into the driver's Options type.
type Device struct {
	Name    string   `yaml:"name"`
	Driver  string   `yaml:"driver"`
	Address string   `yaml:"address"` // host:port
	Timeout Duration `yaml:"timeout"`
	// Levels are the packaging levels a printer labels: unit (the GS1
	// DataMatrix of every unit), case and pallet (the SSCC label, GS1-128,
	// print and apply). Printers only; the first printer defaults to
	// [unit]. Exactly one printer serves unit, at most one each level.
	Levels  []string  `yaml:"levels,omitempty"`
	Options yaml.Node `yaml:"options"`

	// Decoded is the driver's Options value after Load; not read from YAML.
	Decoded any `yaml:"-"`
}

// OPCUAServer is the edge's own OPC UA tag endpoint for PLCs and HMIs.
type OPCUAServer struct {
	Listen   string   `yaml:"listen"`   // host:port, e.g. 127.0.0.1:4840; empty disables
	Security []string `yaml:"security"` // e.g. None, Basic256Sha256-SignAndEncrypt
}

// User is a line user (operators and supervisors); passwords as bcrypt hashes.
type User struct {
	ID           string `yaml:"id"`
	Name         string `yaml:"name"`
	Role         string `yaml:"role"` // operator | supervisor | qa | admin
	PasswordHash string `yaml:"password_hash"`
}

// Duration is a time.Duration written as "250ms", "2s", "1h".
type Duration time.Duration

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
