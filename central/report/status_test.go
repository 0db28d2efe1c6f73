package report

import "github.com/serialine/serialine/sync/wire"

func statusOf(edge string) wire.Status {
	return wire.Status{Edge: edge, Line: "line-1", State: "Execute"}
}
