// Package store is central's compliance store: one interface, two
// implementations (sqlite: the embedded default, postgres: production), one
// conformance suite (storetest) run against both.
//
// Records are stored under the unique key (edge, epoch, seq) as the exact
// canonical bytes and signature the edge produced. Projections (units,
// containers, batches, line counters) are updated in the same transaction
// as the records they derive from, so they are never ahead of or behind the
// records.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/serialine/serialine/sync/record"
	"github.com/serialine/serialine/sync/wire"
)

// Errors.
var (
	ErrNotFound = errors.New("not found")
	// ErrConflict: Append was asked to continue from a head that is no
	// longer the stored head (another instance stored records meanwhile, or
	// the caller's view is stale). Nothing was written.
	ErrConflict = errors.New("chain head moved")
	// ErrExists: enrolling an edge id that is already enrolled with another key.
	ErrExists = errors.New("already exists")
)

// Continues reports whether a write that expects `after` may follow the
// stored head (ok=false: nothing stored). A zero-seq `after` starts a new
// epoch, which must be newer than the stored one.
func Continues(stored record.Head, ok bool, after record.Head) bool {
	if after.Seq == 0 {
		return !ok || stored.Epoch < after.Epoch
	}
	return ok && stored == after
}

// Edge is an enrolled edge and its public key(s).
type Edge struct {
	ID         string
	PublicKey  []byte // Ed25519 public key
	EnrolledBy string
	EnrolledAt time.Time
}

// Stored is one record as accepted: the record plus its hash.
type Stored struct {
	Record record.Record
	Hash   record.Hash
}

// Head returns the chain head after this record.
func (s Stored) Head() record.Head {
	return record.Head{Epoch: s.Record.Epoch, Seq: s.Record.Seq, Hash: s.Hash}
}

// Quarantined is a record (or raw payload) that failed verification: kept,
// with the reason, never stored as valid.
type Quarantined struct {
	ID      int64
	Edge    string // as claimed by the topic or the record
	Epoch   uint32
	Seq     uint64
	Reason  string
	Payload []byte // the raw bytes (canonical record, or the envelope when it did not decode), bounded by the caller
	At      time.Time
}

// LineSummary is what the dashboard shows per line.
type LineSummary struct {
	Edge           string
	Line           string
	State          string
	Batch          string
	UnitsGood      int64
	UnitsRejected  int64
	CasesClosed    int64
	PalletsClosed  int64
	Records        int64 // records stored for this edge
	Head           record.Head
	PendingSync    uint64 // from the edge's last status
	LastSeen       time.Time
	LastStatus     *wire.Status
	QuarantinedNum int64
	// Conflicts counts identifiers (serials, SSCCs) this edge recorded that
	// another edge had already used: a compliance alert.
	Conflicts int64
}

// Store is central's compliance store.
type Store interface {
	// EnrollEdge registers an edge id and its Ed25519 public key (ids under
	// JournalPrefix are central's own journals). Enrolling
	// the same id with the same key again is a no-op; with another key it
	// is ErrExists.
	EnrollEdge(ctx context.Context, e Edge) error
	Edge(ctx context.Context, id string) (Edge, error)
	Edges(ctx context.Context) ([]Edge, error)
	KeyStore

	// Head returns the last stored record of the edge's newest epoch
	// (ok=false when nothing is stored).
	Head(ctx context.Context, edge string) (h record.Head, ok bool, err error)

	// Append stores a verified, contiguous run of records of one edge that
	// continues `after` (the caller's view of the head; zero Head for the
	// first records of an epoch). In one transaction it checks that the
	// stored head still equals `after` (else ErrConflict, nothing written),
	// inserts the records and updates the projections.
	Append(ctx context.Context, edge string, after record.Head, recs []Stored) error

	// Records returns up to limit records of an edge and epoch with seq >= from, in order.
	Records(ctx context.Context, edge string, epoch uint32, from uint64, limit int) ([]Stored, error)
	// CountRecords counts stored records of an edge (all epochs).
	CountRecords(ctx context.Context, edge string) (int64, error)

	Quarantine(ctx context.Context, q Quarantined) error
	QuarantineList(ctx context.Context, edge string, limit int) ([]Quarantined, error)

	// UpdateStatus keeps the edge's latest live status (not a compliance record).
	UpdateStatus(ctx context.Context, s wire.Status) error
	// Lines summarises every enrolled line edge (not central's journals).
	Lines(ctx context.Context) ([]LineSummary, error)

	// Unit returns the projection of one unit (for trace and tests).
	Unit(ctx context.Context, gtin, serial string) (Unit, error)
	// Container returns the projection of one container.
	Container(ctx context.Context, sscc string) (Container, error)

	// RaiseAlert stores a new active alert and returns it with its ID. If
	// a.Key is set and an active alert with that key exists, that alert is
	// returned instead (created=false) and nothing is written.
	RaiseAlert(ctx context.Context, a Alert) (stored Alert, created bool, err error)
	// Alerts lists alerts, newest first.
	Alerts(ctx context.Context, f AlertFilter) ([]Alert, error)
	// AckAlert marks an alert acknowledged by a user (it stays active until
	// cleared). ErrNotFound for an unknown id.
	AckAlert(ctx context.Context, id int64, by string, at time.Time) error
	// ClearAlert ends the active alert with this key (the condition is
	// over); false when none was active.
	ClearAlert(ctx context.Context, key string, at time.Time) (bool, error)

	// EquipmentStore: registry, downtime, calibration (equipment.go).
	EquipmentStore

	// CreateUser adds an account (ErrExists if the id is taken).
	CreateUser(ctx context.Context, u User) error
	// User returns one account (ErrNotFound).
	User(ctx context.Context, id string) (User, error)
	// Users lists every account by id.
	Users(ctx context.Context) ([]User, error)
	// UpdateUser writes name, role, password hash, disabled and
	// password-changed time if u.Version is the stored version (else
	// ErrConflict), and returns the account with its new version.
	UpdateUser(ctx context.Context, u User) (User, error)
	// LoginFailed atomically counts a failed login or signing; when the
	// count reaches max the account is locked until at+lockFor and the count
	// restarts. It returns the account after the change (ErrNotFound).
	LoginFailed(ctx context.Context, id string, max int, lockFor time.Duration, at time.Time) (User, error)
	// LoginReset clears the failure count and any lock; with succeeded it
	// also records the login time.
	LoginReset(ctx context.Context, id string, at time.Time, succeeded bool) error

	// CreateSession stores a session (by the hash of its token).
	CreateSession(ctx context.Context, s Session) error
	// Session returns a stored session (ErrNotFound), expired or not.
	Session(ctx context.Context, tokenHash string) (Session, error)
	// TouchSession moves a session's idle deadline.
	TouchSession(ctx context.Context, tokenHash string, idleUntil time.Time) error
	// DeleteSessions deletes the sessions the filter selects and returns how many.
	DeleteSessions(ctx context.Context, f SessionFilter) (int64, error)
	// CountSessions counts sessions live at a time.
	CountSessions(ctx context.Context, at time.Time) (int64, error)

	// Audit lists the audit trail (user actions and e-signed records of
	// every edge and journal), newest first.
	Audit(ctx context.Context, f AuditFilter) ([]AuditEntry, error)
	// Batches lists batch projections, newest first.
	Batches(ctx context.Context, f BatchFilter) ([]Batch, error)
	// Batch returns one batch with its unit counts and release problems (ErrNotFound).
	Batch(ctx context.Context, edge, batch string) (Batch, error)
	// Containers lists containers (without children), by SSCC.
	Containers(ctx context.Context, f ContainerFilter) ([]Container, error)

	Queries

	Close() error
}

// Unit is the projection of one serialized unit.
type Unit struct {
	GTIN, Serial, Batch, Lot, Expiry string
	Edge                             string
	Status                           string // commissioned, verified, rejected, decommissioned
	Reason                           string
	Grade                            float64
	Parent                           string // case SSCC
	CommissionedAt                   time.Time
	// Disposition and VerifiedAt are filled by Queries.ScanUnits.
	Disposition string
	VerifiedAt  time.Time
}

// Container is the projection of one case or pallet.
type Container struct {
	SSCC, Level, Batch, Edge string
	Parent                   string
	Closed                   bool
	Partial                  bool
	Count                    int
	Children                 []string
	ClosedAt                 time.Time
	// CloseRecord is the container.closed record (zero while open).
	CloseRecord Ref
	// A partial close countersigned by QA at central: who, when, and the
	// journal record of the e-signed approval.
	ApprovedBy, ApprovedName string
	ApprovedAt               time.Time
	Approval                 Ref
}
