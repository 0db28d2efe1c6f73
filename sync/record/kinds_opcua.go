package record

// OPCUACommand is the body of a KindUserAction record: a PackML command
// (Command.CntrlCmd) an authenticated user wrote to the edge's OPC UA tags,
// whether the line accepted it or refused it (Part 11: who did what, when,
// and with what outcome). Writes refused by the authority check (wrong
// role, anonymous) never reach the line and are logged, not recorded.
//
// The shared fields carry the names of the user-action body (user, role,
// action, target, new, reason), so a reader of user actions understands
// the record without knowing this type.
type OPCUACommand struct {
	User   string `json:"user"`
	Role   string `json:"role"`
	Action string `json:"action"`           // always "packml.command"
	Target string `json:"target"`           // the tag, e.g. line-1.Command.CntrlCmd
	New    string `json:"new"`              // the command, e.g. "Hold (4)"
	Reason string `json:"reason,omitempty"` // why the line refused it
	// OPC UA specifics.
	Channel  string `json:"channel"` // always "opcua"
	Line     string `json:"line"`
	Command  int32  `json:"command"` // PackML CntrlCmd value
	Accepted bool   `json:"accepted"`
}
