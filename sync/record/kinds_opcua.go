package record

// OPCUACommand is the body of a KindUserAction record: a PackML command
// (Command.CntrlCmd) an authenticated user wrote to the edge's OPC UA tags,
// whether the line accepted it or refused it (Part 11: who did what, when,
// and with what outcome). Writes refused by the authority check (wrong
// role, anonymous) never reach the line and are logged, not recorded.
//
// It is a UserAction (action "packml.command", target the tag, new the
// command, reason why the line refused it) with the OPC UA specifics
// beside it: every reader of user actions understands it.
type OPCUACommand struct {
	UserAction
	Channel  string `json:"channel"` // always "opcua"
	Line     string `json:"line"`
	Command  int32  `json:"command"` // PackML CntrlCmd value
	Accepted bool   `json:"accepted"`
}
