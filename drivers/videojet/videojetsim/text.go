package videojetsim

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/serialine/serialine/drivers/videojet"
)

// Command is one parsed text protocol command line.
type Command struct {
	Code   string
	Fields []string
}

// ParseCommand parses one command line without its <CR>: CODE or
// CODE|f1|...| (a missing final '|' is tolerated, as by the printer).
func ParseCommand(line []byte) (Command, error) {
	for i, c := range line {
		if (c < 0x20 || c > 0x7e) && c != 0x1d {
			return Command{}, fmt.Errorf("byte 0x%02x at %d", c, i)
		}
	}
	s := string(line)
	code, rest, hasFields := strings.Cut(s, "|")
	if len(code) != 3 || strings.ToUpper(code) != code || strings.ContainsAny(code, " \x1d") {
		return Command{}, fmt.Errorf("command %q: want three capital letters", code)
	}
	cmd := Command{Code: code}
	if rest = strings.TrimSuffix(rest, "|"); hasFields && rest != "" {
		cmd.Fields = strings.Split(rest, "|")
	}
	return cmd, nil
}

// LineSplitter splits a byte stream into <CR>-terminated lines, ignoring
// <LF>. Lines longer than videojet.MaxLine are reported as overlong.
type LineSplitter struct {
	buf  []byte
	over bool
}

// Feed adds bytes and calls fn for every complete line.
func (p *LineSplitter) Feed(b []byte, fn func(line []byte, overlong bool)) {
	for _, c := range b {
		switch c {
		case videojet.LF:
		case videojet.CR:
			fn(p.buf, p.over)
			p.buf, p.over = p.buf[:0], false
		default:
			if len(p.buf) < videojet.MaxLine {
				p.buf = append(p.buf, c)
			} else {
				p.over = true
			}
		}
	}
}

// garbageText is what a Garbage printer answers: no reply, control bytes,
// longer than the 256 bytes a DeviceError keeps.
var garbageText = append(append([]byte("\x00\x7fGARBAGE\x01"), []byte(strings.Repeat("Z", 300))...), videojet.CR)

func (s *Sim) serveText(ctx context.Context, c *conn) {
	var sp LineSplitter
	buf := make([]byte, 4096)
	for {
		n, err := c.c.Read(buf)
		if n > 0 {
			sp.Feed(buf[:n], func(line []byte, over bool) {
				if len(line) == 0 && !over {
					return // a lone <CR> resets the parser
				}
				s.answerText(ctx, c, line, over)
			})
		}
		if err != nil {
			return
		}
	}
}

func (s *Sim) answerText(ctx context.Context, c *conn, line []byte, over bool) {
	mode, slow := s.answerMode()
	if mode == NoAnswer {
		return
	}
	if !s.wait(ctx, slow) {
		return
	}
	if mode == Garbage {
		c.write(garbageText)
		return
	}
	var reply string
	if over {
		s.mu.Lock()
		s.bad++
		s.mu.Unlock()
		reply = "ERR"
	} else if cmd, err := ParseCommand(line); err != nil {
		s.mu.Lock()
		s.bad++
		s.mu.Unlock()
		s.log.Debug().Err(err).Msg("command does not parse: ERR")
		reply = "ERR"
	} else {
		var it *item
		reply, it = s.execText(c, cmd)
		defer s.commit(it)
	}
	c.write([]byte(reply + "\r"))
}

var errRefused = errors.New("refused")

// execText runs one command against the state machine and returns the
// reply and the print it queues (committed once the reply is written).
func (s *Sim) execText(c *conn, cmd Command) (string, *item) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.received++
	reply, it, err := s.execTextLocked(c, cmd)
	if err != nil {
		s.refused++
		s.log.Debug().Str("cmd", cmd.Code).Err(err).Msg("ERR")
		return "ERR", nil
	}
	return reply, it
}

func (s *Sim) errorState() videojet.ErrorState {
	switch s.fault {
	case PrinterFault, ConsumableOut:
		return videojet.Faults
	case Warning:
		return videojet.Warnings
	}
	return videojet.NoErrors
}

func (s *Sim) execTextLocked(c *conn, cmd Command) (string, *item, error) {
	switch cmd.Code {
	case videojet.CmdGetState:
		return fmt.Sprintf("STS|%d|%d|%s|%d|%d|", s.state, s.errorState(), s.job, s.batch, s.total), nil, nil
	case videojet.CmdSelectNamed, videojet.CmdSelectSeq:
		if len(cmd.Fields) == 0 {
			return "", nil, errors.New("no job name")
		}
		job := cmd.Fields[0]
		if _, ok := s.opt.Jobs[job]; !ok {
			return "", nil, fmt.Errorf("unknown job %q", job)
		}
		data := cmd.Fields[1:]
		if len(data) > 0 && s.queuedLocked() >= cap(s.queue) {
			return "", nil, errors.New("update queue full")
		}
		if job != s.job {
			s.job, s.fields, s.batch = job, map[string]string{}, 0
		}
		if len(data) == 0 {
			return "ACK", nil, nil
		}
		s.setFields(cmd.Code == videojet.CmdSelectSeq, data)
		return "ACK", s.reserveLocked(), nil
	case videojet.CmdUpdateNamed, videojet.CmdUpdateSeq:
		if s.job == "" {
			return "", nil, errors.New("no job selected")
		}
		if len(cmd.Fields) == 0 {
			return "", nil, errors.New("no data")
		}
		if s.queuedLocked() >= cap(s.queue) {
			return "", nil, errors.New("update queue full")
		}
		s.setFields(cmd.Code == videojet.CmdUpdateSeq, cmd.Fields)
		return "ACK", s.reserveLocked(), nil
	case videojet.CmdPrint:
		if s.job == "" {
			return "", nil, errRefused
		}
		it := s.reserveLocked()
		if it == nil {
			return "", nil, errors.New("update queue full")
		}
		return "ACK", it, nil
	case videojet.CmdSetState:
		if len(cmd.Fields) != 1 || len(cmd.Fields[0]) != 1 {
			return "", nil, errors.New("SST wants one state")
		}
		return "ACK", nil, s.setState(videojet.State(cmd.Fields[0][0] - '0'))
	case videojet.CmdClearFaults:
		switch s.fault {
		case ConsumableOut:
			return "", nil, errors.New("ribbon out cannot be cleared remotely")
		case PrinterFault:
			s.fault = None // stays offline until started
		}
		return "ACK", nil, nil
	case videojet.CmdNotify:
		if len(cmd.Fields) != 2 || cmd.Fields[0] != "PRC" || (cmd.Fields[1] != "0" && cmd.Fields[1] != "1") {
			return "", nil, errors.New("only SNO|PRC|0/1| is simulated")
		}
		c.prc = cmd.Fields[1] == "1"
		return "ACK", nil, nil
	case "EAN":
		c.prc = true
		return "ACK", nil, nil
	case "DAN", "DPN":
		c.prc = false
		return "ACK", nil, nil
	}
	return "", nil, fmt.Errorf("command %s is not simulated", cmd.Code)
}

// setFields applies named (name=value) or consecutive (VarField00...) data;
// unknown field names are ignored, as the printer does.
func (s *Sim) setFields(seq bool, data []string) {
	for i, d := range data {
		name, value := fmt.Sprintf("VarField%02d", i), d
		if !seq {
			var ok bool
			if name, value, ok = strings.Cut(d, "="); !ok {
				continue
			}
		}
		if s.knownField(name) {
			s.fields[name] = value
		}
	}
}

// setState follows the DataFlex state transition diagram: shut down →
// starting up → offline ⇄ running, offline → shutting down → shut down.
func (s *Sim) setState(to videojet.State) error {
	from := s.state
	switch to {
	case videojet.StateStartingUp:
		if from != videojet.StateShutDown {
			return errors.New("start up only from shut down")
		}
		s.state = videojet.StateOffline // the start-up sequence completes at once
	case videojet.StateShuttingDown:
		if from != videojet.StateOffline && from != videojet.StateRunning {
			return errors.New("shut down only from offline or running")
		}
		s.state = videojet.StateShutDown
	case videojet.StateRunning:
		if from != videojet.StateOffline || s.job == "" || s.errorState() == videojet.Faults {
			return errors.New("running needs offline, a job and no fault")
		}
		s.state = videojet.StateRunning
		s.kick()
	case videojet.StateOffline:
		if from != videojet.StateRunning && from != videojet.StateOffline {
			return errors.New("offline only from running")
		}
		s.state = videojet.StateOffline
	default:
		return fmt.Errorf("state %d cannot be entered directly", to)
	}
	return nil
}
