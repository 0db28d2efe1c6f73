// Package tags is the edge's OPC UA server for line PLCs and HMIs:
// PackML-style status tags per line and a writable Command.CntrlCmd, on the
// hardened server of drivers/opcua/uaserver. Reads and subscriptions are
// open to authenticated users (and to anonymous sessions if allowed);
// commands need a user with the operator role and are validated and
// recorded by the line engine.
package tags

import (
	"context"
	"crypto/rsa"
	"strings"

	"github.com/gopcua/opcua/ua"
	"github.com/rs/zerolog"

	"github.com/serialine/serialine/drivers/opcua/uaserver"
)

// PackML commands (Command.CntrlCmd).
const (
	CmdReset     int32 = 1
	CmdStart     int32 = 2
	CmdStop      int32 = 3
	CmdHold      int32 = 4
	CmdUnhold    int32 = 5
	CmdSuspend   int32 = 6
	CmdUnsuspend int32 = 7
	CmdAbort     int32 = 8
	CmdClear     int32 = 9
)

// Admin.StopReason codes (the edge's own; PackML leaves them to the user).
const (
	StopNone      int32 = 0 // executing, idle or complete
	StopOperator  int32 = 1 // held or stopped by a user
	StopDevice    int32 = 2 // a printer, camera or PLC is disconnected or faulted
	StopChallenge int32 = 3 // a challenge test failed: held until one passes
	StopAlarm     int32 = 4 // another alarm is active
)

// CommandName is the PackML name of a CntrlCmd value ("" if none).
func CommandName(c int32) string {
	names := [...]string{"", "Reset", "Start", "Stop", "Hold", "Unhold", "Suspend", "Unsuspend", "Abort", "Clear"}
	if c < 0 || int(c) >= len(names) {
		return ""
	}
	return names[c]
}

// Snapshot is what the tags show; the edge pushes it with Update.
type Snapshot struct {
	StateCurrent       int32 // PackML state number
	UnitModeCurrent    int32 // 1 Production
	CurMachSpeed       float64
	ProdProcessedCount int32
	ProdDefectiveCount int32
	StopReason         int32
	Batch, Lot, GTIN   string
	LastSerial         string
	CaseFill           int32
	PalletFill         int32
	SyncBacklog        int64
	Alarms             []string
}

// Options configure the tag server.
type Options struct {
	Listen         string   // host:port
	LineID         string   // tag path root, e.g. line-1
	Security       []string // None, Basic256Sha256-Sign, Basic256Sha256-SignAndEncrypt
	AllowAnonymous bool     // anonymous sessions may read (never write)
	// TrustedClientCerts (DER) pins the HMIs' application certificates:
	// only they get sessions, on signing channels (see uaserver.Config).
	TrustedClientCerts [][]byte
	MaxSessions        int // default 50
	// InProcess runs the OPC UA stack in this process instead of a child
	// process: for tools that cannot re-execute themselves. A crafted
	// message can then crash the whole process (see Server).
	InProcess bool
	Log       zerolog.Logger `json:"-"`
}

// Authenticator checks a user name and password and returns the role.
type Authenticator = uaserver.Authenticator

// CommandHandler applies a PackML command for an authenticated user of at
// least the operator role; an error refuses it. It runs on the writing
// client's own channel worker: it may take its time.
type CommandHandler func(ctx context.Context, user, role string, cmd int32) error

// local is the tag set on an in-process uaserver: what the child process
// runs (and the server itself with Options.InProcess).
type local struct {
	ua   *uaserver.Server
	root string
	log  zerolog.Logger
}

// Tag paths below the line root.
var paths = []string{
	"Status.StateCurrent", "Status.UnitModeCurrent", "Status.CurMachSpeed",
	"Admin.ProdProcessedCount", "Admin.ProdDefectiveCount", "Admin.StopReason",
	"Batch.Id", "Batch.Lot", "Batch.GTIN", "Batch.LastSerial",
	"Aggregation.CaseFill", "Aggregation.PalletFill", "Sync.Backlog",
	"Alarms.Active", "Alarms.Text", "Command.CntrlCmd",
}

// Paths lists the tag paths (below the line root).
func Paths() []string { return append([]string(nil), paths...) }

func rootOf(lineID string) string { return strings.ReplaceAll(lineID, ".", "_") }

func newLocal(o Options, key *rsa.PrivateKey, cert []byte, auth Authenticator, cmd CommandHandler) (*local, error) {
	root := rootOf(o.LineID)
	u, err := uaserver.New(uaserver.Config{Addr: o.Listen, Security: o.Security, Namespace: "urn:serialine:line:" + o.LineID,
		ApplicationName: "Serialine edge " + o.LineID, Auth: auth, AllowAnonymous: o.AllowAnonymous,
		TrustedClientCerts: o.TrustedClientCerts, MaxSessions: o.MaxSessions, Key: key, Cert: cert, Log: o.Log})
	if err != nil {
		return nil, err
	}
	s := &local{ua: u, root: root, log: o.Log}
	write := func(user, role string, v *ua.Variant) ua.StatusCode {
		c, ok := v.Value().(int32)
		if !ok {
			return ua.StatusBadTypeMismatch
		}
		if c < CmdReset || c > CmdClear {
			return ua.StatusBadOutOfRange
		}
		if cmd == nil {
			return ua.StatusBadNotSupported
		}
		if err := cmd(context.Background(), user, role, c); err != nil {
			s.log.Warn().Str("user", user).Int32("command", c).Str("name", CommandName(c)).Err(err).Msg("PackML command refused")
			return ua.StatusBadInvalidState
		}
		s.log.Info().Str("user", user).Int32("command", c).Str("name", CommandName(c)).Msg("PackML command accepted")
		// The tag reads back the last accepted command.
		if err := u.Set(root+".Command.CntrlCmd", c); err != nil {
			s.log.Error().Err(err).Msg("Command.CntrlCmd not updated")
		}
		return ua.StatusOK
	}
	init := map[string]any{
		"Status.StateCurrent": int32(0), "Status.UnitModeCurrent": int32(1), "Status.CurMachSpeed": float64(0),
		"Admin.ProdProcessedCount": int32(0), "Admin.ProdDefectiveCount": int32(0), "Admin.StopReason": int32(0),
		"Batch.Id": "", "Batch.Lot": "", "Batch.GTIN": "", "Batch.LastSerial": "",
		"Aggregation.CaseFill": int32(0), "Aggregation.PalletFill": int32(0), "Sync.Backlog": int64(0),
		"Alarms.Active": false, "Alarms.Text": "", "Command.CntrlCmd": int32(0),
	}
	for _, p := range paths {
		var w uaserver.WriteFunc
		if p == "Command.CntrlCmd" {
			w = write
		}
		if err := u.AddTag(root+"."+p, init[p], w, "operator"); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// update publishes a snapshot (latest value wins; cheap).
func (s *local) update(sn Snapshot) {
	set := func(p string, v any) {
		if err := s.ua.Set(s.root+"."+p, v); err != nil {
			s.log.Error().Err(err).Msg("tag update")
		}
	}
	set("Status.StateCurrent", sn.StateCurrent)
	set("Status.UnitModeCurrent", sn.UnitModeCurrent)
	set("Status.CurMachSpeed", sn.CurMachSpeed)
	set("Admin.ProdProcessedCount", sn.ProdProcessedCount)
	set("Admin.ProdDefectiveCount", sn.ProdDefectiveCount)
	set("Admin.StopReason", sn.StopReason)
	set("Batch.Id", sn.Batch)
	set("Batch.Lot", sn.Lot)
	set("Batch.GTIN", sn.GTIN)
	set("Batch.LastSerial", sn.LastSerial)
	set("Aggregation.CaseFill", sn.CaseFill)
	set("Aggregation.PalletFill", sn.PalletFill)
	set("Sync.Backlog", sn.SyncBacklog)
	set("Alarms.Active", len(sn.Alarms) > 0)
	set("Alarms.Text", strings.Join(sn.Alarms, ", "))
}

func (s *local) stats() Stats {
	st := Stats{Panics: s.ua.PanicCount(), Sessions: s.ua.Sessions()}
	st.Subscriptions, st.MonitoredItems = s.ua.Subscriptions()
	return st
}
