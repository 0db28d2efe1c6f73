package devices

import (
	"context"
	"fmt"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"

	"github.com/serialine/serialine/edge/config"
	"github.com/serialine/serialine/edge/line"
	"github.com/serialine/serialine/edge/tags"
	"github.com/serialine/serialine/sync/record"
)

// TagServer serves the engine's status as PackML OPC UA tags and passes
// PackML commands from authenticated operators to the engine.
type TagServer struct {
	srv *tags.Server
	eng *line.Engine
}

// NewTagServer builds the edge's OPC UA tag server from the line config.
func NewTagServer(cfg *config.Line, eng *line.Engine, log zerolog.Logger) (*TagServer, error) {
	users := map[string]config.User{}
	for _, u := range cfg.Users {
		users[u.ID] = u
	}
	auth := func(user, password string) (string, bool) {
		u, ok := users[user]
		if !ok || bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(password)) != nil {
			return "", false
		}
		return u.Role, true
	}
	apply := func(ctx context.Context, user string, c int32) error {
		reason := fmt.Sprintf("PackML %s (CntrlCmd %d) via OPC UA", tags.CommandName(c), c)
		switch c {
		case tags.CmdHold, tags.CmdSuspend:
			return eng.Hold(ctx, user, reason)
		case tags.CmdUnhold, tags.CmdUnsuspend:
			return eng.Resume(ctx, user, reason)
		case tags.CmdStop, tags.CmdAbort:
			return eng.Stop(ctx, user, reason)
		case tags.CmdStart:
			return eng.Start(ctx, user)
		}
		return fmt.Errorf("PackML command %d (%s) is not supported by the line", c, tags.CommandName(c))
	}
	// Every command that reaches the line is recorded with its outcome
	// (user.action), after the state change record the engine writes.
	var root string // the tag server's line folder (set below)
	cmd := func(ctx context.Context, user, role string, c int32) error {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		err := apply(ctx, user, c)
		body := record.OPCUACommand{UserAction: record.UserAction{User: user, Role: role, Action: "packml.command", Target: root + ".Command.CntrlCmd",
			New: fmt.Sprintf("%s (%d)", tags.CommandName(c), c)}, Channel: "opcua", Line: cfg.Line.ID, Command: c, Accepted: err == nil}
		if err != nil {
			body.Reason = err.Error()
		}
		if rerr := eng.RecordUserAction(ctx, body); rerr != nil {
			log.Error().Err(rerr).Str("user", user).Int32("command", c).Msg("PackML command not recorded")
			if err == nil {
				// Applied but not recorded: answer an error so the HMI
				// shows that something is wrong; the state change record
				// the engine wrote names the user and the command.
				return fmt.Errorf("command applied but its user.action record failed: %w", rerr)
			}
		}
		return err
	}
	srv, err := tags.New(tags.Options{Listen: cfg.OPCUA.Listen, LineID: cfg.Line.ID, Security: cfg.OPCUA.Security, Log: log}, auth, cmd)
	if err != nil {
		return nil, err
	}
	root = srv.Root()
	return &TagServer{srv: srv, eng: eng}, nil
}

// Endpoint is the opc.tcp URL.
func (t *TagServer) Endpoint() string { return t.srv.Endpoint() }

// Server is the underlying tag server (node ids, diagnostics).
func (t *TagServer) Server() *tags.Server { return t.srv }

// Run serves and refreshes the tags from the engine's status.
func (t *TagServer) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- t.srv.Run(ctx) }()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-errc:
			return err
		case <-tick.C:
			t.srv.Update(Snapshot(t.eng.Status()))
		}
	}
}

// Snapshot maps the engine's status to the PackML tags.
func Snapshot(s line.Status) tags.Snapshot {
	return tags.Snapshot{
		StateCurrent: s.PackML, UnitModeCurrent: 1, CurMachSpeed: s.UnitsPerMin,
		ProdProcessedCount: int32(s.Good + s.Rejected), ProdDefectiveCount: int32(s.Rejected),
		StopReason: stopReason(s),
		Batch:      s.Batch, Lot: s.Lot, GTIN: s.GTIN, LastSerial: s.LastSerial,
		CaseFill: int32(s.OpenCaseFill), PalletFill: int32(s.OpenPalletFill), SyncBacklog: int64(s.PendingSync),
		Alarms: s.Alarms,
	}
}

// stopReason is Admin.StopReason while the line does not execute:
// tags.StopDevice when a device is not ok, tags.StopChallenge when a
// challenge test failed, tags.StopAlarm for another alarm, tags.StopOperator
// when it is held or stopped without one of these; tags.StopNone otherwise.
func stopReason(s line.Status) int32 {
	switch s.PackML {
	case line.PackMLExecute, line.PackMLIdle, line.PackMLComplete, line.PackMLUndefined:
		return tags.StopNone
	}
	for _, h := range s.Devices {
		if h != "ok" {
			return tags.StopDevice
		}
	}
	switch {
	case s.Challenge == "failed":
		return tags.StopChallenge
	case len(s.Alarms) > 0:
		return tags.StopAlarm
	case s.PackML == line.PackMLHeld || s.PackML == line.PackMLStopped:
		return tags.StopOperator
	}
	return tags.StopNone
}
