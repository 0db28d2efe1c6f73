package videojetsim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/serialine/serialine/drivers/videojet"
)

// FrameSplitter cuts a byte stream into WSI command packets. Bytes outside
// <STX>..<ETX> are skipped (a checksum some hosts append after ETX lands
// there); a packet without ETX within videojet.MaxWSIPacket is dropped.
type FrameSplitter struct {
	buf []byte
}

// Feed adds bytes and calls fn for every packet (or packet error).
func (p *FrameSplitter) Feed(b []byte, fn func(typ byte, fields []string, err error)) {
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, videojet.STX)
		if i < 0 {
			p.buf = p.buf[:0]
			return
		}
		if i > 0 {
			p.buf = append(p.buf[:0], p.buf[i:]...)
		}
		typ, fields, n, err := videojet.DecodeWSIFrame(p.buf)
		if errors.Is(err, videojet.ErrIncomplete) {
			return
		}
		if n == 0 { // unrecoverable at this STX: skip it
			n = 1
		}
		fn(typ, fields, err)
		p.buf = append(p.buf[:0], p.buf[n:]...)
	}
}

var garbageWSI = append([]byte("#\x00GARBAGE\xff"), []byte(strings.Repeat("Z", 300))...)

func (s *Sim) serveWSI(ctx context.Context, c *conn) {
	var sp FrameSplitter
	buf := make([]byte, 4096)
	for {
		n, err := c.c.Read(buf)
		if n > 0 {
			sp.Feed(buf[:n], func(typ byte, fields []string, perr error) {
				s.answerWSI(ctx, c, typ, fields, perr)
			})
		}
		if err != nil {
			return
		}
	}
}

func (s *Sim) answerWSI(ctx context.Context, c *conn, typ byte, fields []string, perr error) {
	mode, slow := s.answerMode()
	if mode == NoAnswer {
		return
	}
	if !s.wait(ctx, slow) {
		return
	}
	if mode == Garbage {
		c.write(garbageWSI)
		return
	}
	if perr != nil {
		s.mu.Lock()
		s.bad++
		s.mu.Unlock()
		s.log.Debug().Err(perr).Msg("packet does not parse: ignored")
		return
	}
	reply, it := s.execWSI(typ, fields)
	c.write(reply)
	s.commit(it)
}

// execWSI runs one packet against the state machine and returns the reply
// and the print it queues (committed once the reply is written).
func (s *Sim) execWSI(typ byte, fields []string) ([]byte, *item) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.received++
	sum := videojet.WSISum(typ, []byte(strings.Join(fields, "\n")))
	data, it, err := s.execWSILocked(typ, fields)
	switch {
	case err != nil:
		s.refused++
		s.log.Debug().Str("packet", string(typ)).Err(err).Msg("refused")
		return videojet.EncodeWSIAck(sum, false), nil
	case data != nil:
		return videojet.EncodeWSIData(*data), nil
	}
	return videojet.EncodeWSIAck(sum, true), it
}

// errorStatus renders the answer to E for the current condition.
func (s *Sim) errorStatus() videojet.ErrorStatus {
	var st videojet.ErrorStatus
	set := func(name string) {
		if i, bit, ok := videojet.WSIFaultBit(name); ok {
			st.Faults[i] |= bit
		}
	}
	switch s.fault {
	case PrinterFault:
		set("gutter_fault")
		st.Lights = videojet.LightRed | videojet.LightAlarm
	case ConsumableOut:
		set("ink_core_empty")
		st.Lights = videojet.LightRed | videojet.LightAlarm
	case Warning:
		st.Lights = videojet.LightAmber
	}
	if s.state == videojet.StateRunning && s.fault != PrinterFault && s.fault != ConsumableOut {
		st.Lights |= videojet.LightGreen
	}
	return st
}

func (s *Sim) execWSILocked(typ byte, fields []string) (*string, *item, error) {
	arg := func(i int) string {
		if i < len(fields) {
			return fields[i]
		}
		return ""
	}
	str := func(v string) *string { return &v }
	switch typ {
	case videojet.WSIMessageSelect:
		name := arg(0)
		if _, ok := s.opt.Jobs[name]; !ok || len(fields) != 1 {
			return nil, nil, fmt.Errorf("unknown message %q", name)
		}
		if name != s.job {
			s.job, s.fields, s.batch = name, map[string]string{}, 0
		}
		return nil, nil, nil
	case videojet.WSIUpdateField:
		if len(fields) != 2 {
			return nil, nil, errors.New("U wants <name><LF><data>")
		}
		name := fields[0]
		if s.job == "" || !s.knownField(name) {
			return nil, nil, fmt.Errorf("no user field %q in message %q", name, s.job)
		}
		if name == s.opt.Jobs[s.job].Code {
			if s.queuedLocked() >= cap(s.queue) {
				return nil, nil, errors.New("print queue full")
			}
			s.fields[name] = fields[1]
			return nil, s.reserveLocked(), nil
		}
		s.fields[name] = fields[1]
		return nil, nil, nil
	case videojet.WSIClearField:
		if s.job == "" || !s.knownField(arg(0)) {
			return nil, nil, fmt.Errorf("no user field %q", arg(0))
		}
		delete(s.fields, arg(0))
		return nil, nil, nil
	case videojet.WSIErrorStatus:
		return str(s.errorStatus().String()), nil, nil
	case videojet.WSICounter:
		return str(strconv.FormatUint(s.total, 10)), nil, nil
	case videojet.WSIResetCounter:
		s.total = 0
		return nil, nil, nil
	case videojet.WSICurrentMessage:
		return str(s.job), nil, nil
	}
	return nil, nil, fmt.Errorf("packet type %c is not simulated", typ)
}
