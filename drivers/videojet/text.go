package videojet

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/serialine/serialine/drivers"
)

// Text Communications Protocol framing (Videojet DataFlex / Zipher): ASCII,
// fields separated by '|', every command and reply ends with <CR>. A <CR>
// alone resets the printer's parser; a <LF> after <CR> is ignored.
const (
	CR = '\r'
	LF = '\n'
	// MaxLine bounds one reply line; a longer line is malformed.
	MaxLine = 4096
)

// Command codes of the text protocol used here.
const (
	CmdSelectNamed = "SLA" // job select, named fields
	CmdSelectSeq   = "SEL" // job select, consecutive fields (VarField00 ...)
	CmdUpdateNamed = "JDA" // job data update, named fields
	CmdUpdateSeq   = "JDU" // job data update, consecutive fields
	CmdPrint       = "PRN"
	CmdSetState    = "SST"
	CmdGetState    = "GST"
	CmdClearFaults = "CAF"
	CmdNotify      = "SNO" // enable/disable one async notification
)

// State is the printer's overall state (GST, SST).
type State int

// Overall states of the DataFlex state transition diagram.
const (
	StateShutDown     State = 0
	StateStartingUp   State = 1
	StateShuttingDown State = 2
	StateRunning      State = 3
	StateOffline      State = 4
)

func (s State) String() string {
	switch s {
	case StateShutDown:
		return "shut down"
	case StateStartingUp:
		return "starting up"
	case StateShuttingDown:
		return "shutting down"
	case StateRunning:
		return "running"
	case StateOffline:
		return "offline"
	}
	return fmt.Sprintf("state %d", int(s))
}

// ErrorState is the printer's error condition (GST).
type ErrorState int

// Error states.
const (
	NoErrors ErrorState = 0
	Warnings ErrorState = 1
	Faults   ErrorState = 2
)

func (e ErrorState) String() string {
	switch e {
	case NoErrors:
		return "no errors"
	case Warnings:
		return "warnings present"
	case Faults:
		return "faults present"
	}
	return fmt.Sprintf("error state %d", int(e))
}

// PrinterStatus is the answer to GST:
// STS|<overallstate>|<errorstate>|<currentjob>|<batchcount>|<totalcount>|
type PrinterStatus struct {
	State      State
	Errors     ErrorState
	Job        string // empty when no job is selected
	BatchCount uint64
	TotalCount uint64
}

// Fault maps the status to a Health fault ("" when the printer can print).
// GST does not say which fault is present: a fault is "fault".
func (s PrinterStatus) Fault() string {
	switch {
	case s.Errors == Faults:
		return "fault"
	case s.State == StateOffline:
		return "offline"
	case s.State == StateShutDown:
		return "shut_down"
	case s.State == StateStartingUp:
		return "starting_up"
	case s.State == StateShuttingDown:
		return "shutting_down"
	case s.Job == "":
		return "no_job"
	}
	return ""
}

// Detail is a one-line description for people.
func (s PrinterStatus) Detail() string {
	job := s.Job
	if job == "" {
		job = "(none)"
	}
	return fmt.Sprintf("%s, %s, job %s, batch count %d, total count %d", s.State, s.Errors, job, s.BatchCount, s.TotalCount)
}

// ReplyKind classifies one line from the printer.
type ReplyKind int

// Reply kinds. Async* lines are notifications the printer sends on its own
// once enabled (SNO/EAN); the others answer a command.
const (
	ReplyACK ReplyKind = iota + 1
	ReplyERR
	ReplyStatus   // STS with five values: the answer to GST
	AsyncPrintEnd // PRC: print complete
	AsyncPrintBeg // PRS: print start
	AsyncState    // STS with one value: overall state changed
	AsyncError    // ERS: error state changed
	AsyncJob      // JOB: current job changed
	AsyncOutput   // OUT: output changes
)

var replyNames = map[ReplyKind]string{ReplyACK: "ACK", ReplyERR: "ERR", ReplyStatus: "STS", AsyncPrintEnd: "PRC", AsyncPrintBeg: "PRS",
	AsyncState: "STS (notification)", AsyncError: "ERS", AsyncJob: "JOB", AsyncOutput: "OUT"}

func (k ReplyKind) String() string {
	if n, ok := replyNames[k]; ok {
		return n
	}
	return fmt.Sprintf("reply kind %d", int(k))
}

// Async reports whether the line is an unsolicited notification.
func (k ReplyKind) Async() bool { return k >= AsyncPrintEnd }

// Reply is one parsed line.
type Reply struct {
	Kind   ReplyKind
	Status PrinterStatus // ReplyStatus
	Fields []string      // values of async notifications
}

// errText builds an ErrMalformed error naming the problem.
func errText(format string, a ...any) error {
	return fmt.Errorf("%w: %s", drivers.ErrMalformed, fmt.Sprintf(format, a...))
}

// ParseReply parses one line from the printer, without its <CR>. It is
// strict: anything that is not a documented reply or notification is
// ErrMalformed.
func ParseReply(line []byte) (Reply, error) {
	if len(line) > MaxLine {
		return Reply{}, errText("reply longer than %d bytes", MaxLine)
	}
	for i, c := range line {
		if c < 0x20 || c > 0x7e {
			return Reply{}, errText("byte 0x%02x at %d is not printable ASCII", c, i)
		}
	}
	s := string(line)
	switch s {
	case "ACK":
		return Reply{Kind: ReplyACK}, nil
	case "ERR":
		return Reply{Kind: ReplyERR}, nil
	case "PRC":
		return Reply{Kind: AsyncPrintEnd}, nil
	case "PRS":
		return Reply{Kind: AsyncPrintBeg}, nil
	}
	code, rest, ok := strings.Cut(s, "|")
	if !ok {
		return Reply{}, errText("%q is not ACK, ERR or a known reply", s)
	}
	if !strings.HasSuffix(rest, "|") {
		return Reply{}, errText("%s reply does not end with '|'", code)
	}
	fields := strings.Split(strings.TrimSuffix(rest, "|"), "|")
	switch code {
	case "STS":
		switch len(fields) {
		case 1:
			st, err := parseState(fields[0])
			if err != nil {
				return Reply{}, err
			}
			return Reply{Kind: AsyncState, Status: PrinterStatus{State: st}, Fields: fields}, nil
		case 5:
			st, err := parseStatus(fields)
			if err != nil {
				return Reply{}, err
			}
			return Reply{Kind: ReplyStatus, Status: st}, nil
		}
		return Reply{}, errText("STS has %d values, want 5 (GST answer) or 1 (notification)", len(fields))
	case "PRC":
		return Reply{Kind: AsyncPrintEnd, Fields: fields}, nil
	case "PRS":
		return Reply{Kind: AsyncPrintBeg, Fields: fields}, nil
	case "ERS":
		return Reply{Kind: AsyncError, Fields: fields}, nil
	case "JOB":
		return Reply{Kind: AsyncJob, Fields: fields}, nil
	case "OUT":
		return Reply{Kind: AsyncOutput, Fields: fields}, nil
	}
	return Reply{}, errText("unknown reply %q", code)
}

func parseState(v string) (State, error) {
	if len(v) != 1 || v[0] < '0' || v[0] > '4' {
		return 0, errText("STS overall state %q: want 0-4", v)
	}
	return State(v[0] - '0'), nil
}

func parseStatus(f []string) (PrinterStatus, error) {
	var s PrinterStatus
	var err error
	if s.State, err = parseState(f[0]); err != nil {
		return s, err
	}
	if len(f[1]) != 1 || f[1][0] < '0' || f[1][0] > '2' {
		return s, errText("STS error state %q: want 0-2", f[1])
	}
	s.Errors = ErrorState(f[1][0] - '0')
	s.Job = f[2]
	if s.BatchCount, err = count("batch count", f[3]); err != nil {
		return s, err
	}
	if s.TotalCount, err = count("total count", f[4]); err != nil {
		return s, err
	}
	return s, nil
}

func count(name, v string) (uint64, error) {
	if v == "" || len(v) > 20 || strings.TrimLeft(v, "0123456789") != "" {
		return 0, errText("STS %s %q is not a number", name, v)
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, errText("STS %s %q is out of range", name, v)
	}
	return n, nil
}

// CheckValue reports whether v can travel in a text protocol field: printable
// ASCII except '|', plus GS (0x1D, the GS1 FNC1 separator).
func CheckValue(v string) error {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '|' {
			return fmt.Errorf("'|' at %d would end the field", i)
		}
		if (c < 0x20 || c > 0x7e) && c != 0x1d {
			return fmt.Errorf("byte 0x%02x at %d cannot be sent in the text protocol", c, i)
		}
	}
	return nil
}

// CheckName reports whether a job or field name is usable: non-empty, no
// '|', '=' or control characters.
func CheckName(n string) error {
	if n == "" {
		return errors.New("empty name")
	}
	if strings.Contains(n, "=") {
		return fmt.Errorf("%q contains '='", n)
	}
	if err := CheckValue(n); err != nil {
		return fmt.Errorf("%q: %v", n, err)
	}
	if strings.Contains(n, "\x1d") {
		return fmt.Errorf("%q contains a control character", n)
	}
	return nil
}

// Field is one named variable field value.
type Field struct{ Name, Value string }

// EncodeCommand renders CODE<CR> (no fields) or CODE|f1|f2|...|<CR>.
func EncodeCommand(code string, fields ...string) ([]byte, error) {
	if len(code) != 3 || strings.ToUpper(code) != code {
		return nil, fmt.Errorf("command %q: want three capital letters", code)
	}
	var b bytes.Buffer
	b.WriteString(code)
	if len(fields) > 0 {
		b.WriteByte('|')
	}
	for i, f := range fields {
		if err := CheckValue(f); err != nil {
			return nil, fmt.Errorf("%s field %d: %v", code, i+1, err)
		}
		b.WriteString(f)
		b.WriteByte('|')
	}
	b.WriteByte(CR)
	return b.Bytes(), nil
}

// EncodeSelect renders SLA|job|name=value|...|<CR>.
func EncodeSelect(job string, fields []Field) ([]byte, error) {
	if err := CheckName(job); err != nil {
		return nil, fmt.Errorf("SLA job: %v", err)
	}
	args, err := named(fields)
	if err != nil {
		return nil, fmt.Errorf("SLA %v", err)
	}
	return EncodeCommand(CmdSelectNamed, append([]string{job}, args...)...)
}

// EncodeUpdate renders JDA|name=value|...|<CR>.
func EncodeUpdate(fields []Field) ([]byte, error) {
	if len(fields) == 0 {
		return nil, errors.New("JDA without fields")
	}
	args, err := named(fields)
	if err != nil {
		return nil, fmt.Errorf("JDA %v", err)
	}
	return EncodeCommand(CmdUpdateNamed, args...)
}

func named(fields []Field) ([]string, error) {
	out := make([]string, 0, len(fields))
	for _, f := range fields {
		if err := CheckName(f.Name); err != nil {
			return nil, fmt.Errorf("field name: %v", err)
		}
		if err := CheckValue(f.Value); err != nil {
			return nil, fmt.Errorf("field %s: %v", f.Name, err)
		}
		out = append(out, f.Name+"="+f.Value)
	}
	return out, nil
}
