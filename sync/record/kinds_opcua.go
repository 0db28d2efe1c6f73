package record

// OPCUACommand is the body of a KindUserAction record: a PackML command
// (Command.CntrlCmd) an authenticated user wrote to the edge's OPC UA tags,
// whether the line accepted it or refused it (Part 11: who did what, when,
// and with what outcome). Writes refused by the authority check (wrong
// role, anonymous) never reach the line and are logged, not recorded.
type OPCUACommand struct {
	Action   string `json:"action"`  // always "packml.command"
	Channel  string `json:"channel"` // always "opcua"
	User     string `json:"user"`
	Role     string `json:"role"`
	Line     string `json:"line"`
	Tag      string `json:"tag"`     // node path, e.g. line-1.Command.CntrlCmd
	Command  int32  `json:"command"` // PackML CntrlCmd value
	Name     string `json:"name"`    // e.g. Hold
	Accepted bool   `json:"accepted"`
	Result   string `json:"result,omitempty"` // why the line refused it
}
