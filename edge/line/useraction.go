package line

import (
	"context"

	"github.com/serialine/serialine/edge/store"
	"github.com/serialine/serialine/sync/record"
)

// RecordUserAction appends a user.action record (e.g. a PackML command
// from the edge's OPC UA tags, record.OPCUACommand) through the engine's
// writer, so it is chained like every other record.
func (e *Engine) RecordUserAction(ctx context.Context, body any) error {
	_, err := e.do(ctx, "user action", func(tx *store.Tx) (any, error) {
		_, err := tx.Append(record.KindUserAction, body)
		return nil, err
	})
	return err
}
