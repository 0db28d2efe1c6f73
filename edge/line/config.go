package line

import (
	"context"
	"fmt"

	"github.com/serialine/serialine/edge/config"
	"github.com/serialine/serialine/edge/store"
	"github.com/serialine/serialine/sync/record"
)

// A line config change is applied only between batches: a batch runs to its
// close with the config it was created with. The bytes of every applied
// config are kept in the store by hash, so that after a restart with a
// changed file the open batch still runs with its own config (the daemon
// loads it with BatchConfig); the changed file is pending until the batch
// closes, and the daemon then restarts to apply it (config.applied records
// the new hash when it takes effect).

func configKey(hash string) []byte { return []byte("config:" + hash) }

// BatchConfig returns the config hash of the open batch and the bytes of
// that config as stored when it was applied (nil if they were never
// stored). An idle line returns "".
func BatchConfig(db *store.DB) (hash string, raw []byte, err error) {
	err = db.View(func(tx *store.Tx) error {
		id := tx.Get(store.State, []byte("active_batch"))
		if id == nil {
			return nil
		}
		var b batch
		ok, err := tx.GetJSON(store.Batches, id, &b)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("active batch %q has no state", id)
		}
		hash = b.ConfigHash
		raw = tx.Get(store.State, configKey(hash))
		return nil
	})
	return hash, raw, err
}

// AppliedConfig returns the hash of the config last applied on this line.
func AppliedConfig(db *store.DB) (string, error) {
	var h string
	err := db.View(func(tx *store.Tx) error {
		h = string(tx.Get(store.State, []byte("config_hash")))
		return nil
	})
	return h, err
}

// applyConfig records the engine's config as the one in force (at start-up,
// in the recovery transaction).
func (e *Engine) applyConfig(tx *store.Tx) error {
	if len(e.opt.ConfigBytes) > 0 && !tx.Has(store.State, configKey(e.cfg.Hash)) {
		if err := tx.Put(store.State, configKey(e.cfg.Hash), e.opt.ConfigBytes); err != nil {
			return err
		}
	}
	if last := tx.Get(store.State, []byte("config_hash")); string(last) != e.cfg.Hash {
		if _, err := tx.Append(record.KindConfigApplied, record.ConfigApplied{Line: e.cfg.Line.ID, Hash: e.cfg.Hash, File: e.cfg.File}); err != nil {
			return err
		}
		e.log.Info().Str("hash", e.cfg.Hash).Str("file", e.cfg.File).Msg("line config applied")
		return tx.Put(store.State, []byte("config_hash"), []byte(e.cfg.Hash))
	}
	return nil
}

// setPending records (or clears, with hash "") a changed config waiting for
// the open batch to close. Every change of the pending hash is a record.
func (e *Engine) setPending(tx *store.Tx, hash, file string) error {
	b := e.b
	if hash == b.ConfigHash {
		hash = ""
	}
	if hash == b.PendingConfig {
		return nil
	}
	var msg string
	if hash == "" {
		msg = fmt.Sprintf("no config change pending: batch %s keeps config %s", b.ID, short(b.ConfigHash))
		b.Alarms = removeString(b.Alarms, alarmConfigPending)
		e.log.Info().Str("batch", b.ID).Msg(msg)
	} else {
		msg = fmt.Sprintf("line config %s (%s) is pending: batch %s keeps config %s until it closes", short(hash), file, b.ID, short(b.ConfigHash))
		if b.PendingConfig == "" {
			b.Alarms = append(b.Alarms, alarmConfigPending)
		}
		e.log.Warn().Str("batch", b.ID).Str("pending", hash).Str("file", file).Msg(msg)
	}
	b.PendingConfig = hash
	_, err := tx.Append(record.KindAlarm, record.Alarm{Code: alarmConfigPending, Active: hash != "", Message: msg})
	return err
}

const alarmConfigPending = "config_pending"

func short(hash string) string {
	if len(hash) > 12 {
		return hash[:12]
	}
	return hash
}

// ConfigChange is what happened to a proposed line config.
type ConfigChange struct {
	Status string `json:"status"` // unchanged, pending, restart
	Hash   string `json:"hash"`
	// Batch is the open batch a pending config waits for.
	Batch   string `json:"batch,omitempty"`
	Message string `json:"message"`
}

// Config change outcomes.
const (
	ConfigUnchanged = "unchanged"
	ConfigPending   = "pending"
	ConfigRestart   = "restart" // the daemon restarts to apply it now
)

// ProposeConfig offers a changed line config (the file re-read by the
// daemon). With no batch open the engine asks the daemon to restart and
// apply it (Restart is closed); with a batch open it is recorded as pending
// and applied when the batch closes.
func (e *Engine) ProposeConfig(ctx context.Context, cfg *config.Line) (ConfigChange, error) {
	v, err := e.do(ctx, "propose config", func(tx *store.Tx) (any, error) {
		if e.b == nil {
			if cfg.Hash == e.cfg.Hash {
				return ConfigChange{Status: ConfigUnchanged, Hash: cfg.Hash, Message: "the line config in force is this file"}, nil
			}
			why := "line config " + short(cfg.Hash) + " changed with no batch open"
			e.fx.replies = append(e.fx.replies, func() { e.requestRestart(why) })
			return ConfigChange{Status: ConfigRestart, Hash: cfg.Hash, Message: "no batch open: the edge restarts to apply the config"}, nil
		}
		if err := e.setPending(tx, cfg.Hash, cfg.File); err != nil {
			return nil, err
		}
		if e.b.PendingConfig == "" {
			return ConfigChange{Status: ConfigUnchanged, Hash: cfg.Hash, Batch: e.b.ID, Message: "the file is the config of the open batch"}, nil
		}
		return ConfigChange{Status: ConfigPending, Hash: cfg.Hash, Batch: e.b.ID,
			Message: fmt.Sprintf("batch %s keeps config %s; the new config is applied when it closes", e.b.ID, short(e.b.ConfigHash))}, nil
	})
	if err != nil {
		return ConfigChange{}, err
	}
	return v.(ConfigChange), nil
}

// Restart is closed when the engine wants the daemon to restart to apply a
// changed line config (between batches). New batches are refused from then.
func (e *Engine) Restart() <-chan struct{} { return e.restart }

func (e *Engine) requestRestart(why string) {
	e.restartOnce.Do(func() {
		e.log.Info().Str("reason", why).Msg("restart requested to apply the line config")
		close(e.restart)
	})
}

func (e *Engine) restartRequested() bool {
	select {
	case <-e.restart:
		return true
	default:
		return false
	}
}
