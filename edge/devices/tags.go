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
	cmd := func(ctx context.Context, user string, c int32) error {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		reason := fmt.Sprintf("PackML command %d via OPC UA", c)
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
		return fmt.Errorf("PackML command %d is not supported by the line", c)
	}
	srv, err := tags.New(tags.Options{Listen: cfg.OPCUA.Listen, LineID: cfg.Line.ID, Security: cfg.OPCUA.Security, Log: log}, auth, cmd)
	if err != nil {
		return nil, err
	}
	return &TagServer{srv: srv, eng: eng}, nil
}

// Endpoint is the opc.tcp URL.
func (t *TagServer) Endpoint() string { return t.srv.Endpoint() }

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
		Batch: s.Batch, Lot: s.Lot, GTIN: s.GTIN, LastSerial: s.LastSerial,
		CaseFill: int32(s.OpenCaseFill), PalletFill: int32(s.OpenPalletFill), SyncBacklog: int64(s.PendingSync),
		Alarms: s.Alarms,
	}
}
