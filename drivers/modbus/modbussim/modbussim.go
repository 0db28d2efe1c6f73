// Package modbussim simulates a line PLC as a Modbus TCP server
// (github.com/simonvetter/modbus): coils, discrete inputs, holding and input
// registers in memory, a reject gate that counts each reject written, and
// fault injection (dropped clients, slow answers, exceptions, restarts).
package modbussim

import (
	"fmt"
	"io"
	"log"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	smb "github.com/simonvetter/modbus"

	"github.com/serialine/serialine/drivers/modbus"
)

// Size of each table.
const Size = 1024

// Options configure the simulator. Tags are the same tag map the driver
// uses, so one line config sets up both: the "reject" coil counts rejects,
// "line_running" starts true.
type Options struct {
	Name   string
	UnitID uint8
	Tags   map[string]modbus.Tag
}

// Sim is the simulated PLC.
type Sim struct {
	opt Options
	log zerolog.Logger

	mu        sync.Mutex
	coils     [Size]bool
	discrete  [Size]bool
	holding   [Size]uint16
	input     [Size]uint16
	rejects   int
	delay     time.Duration
	exception error
	addr      string
	srv       *smb.ModbusServer
	requests  int
}

// New creates a simulator.
func New(opt Options, log zerolog.Logger) *Sim {
	if opt.Name == "" {
		opt.Name = "modbussim"
	}
	s := &Sim{opt: opt, log: log.With().Str("sim", opt.Name).Logger()}
	if t, ok := opt.Tags["line_running"]; ok && t.DiscreteInput != nil && *t.DiscreteInput < Size {
		s.discrete[*t.DiscreteInput] = true
	}
	return s
}

// Start listens on addr ("127.0.0.1:0" picks a free port, remembered for
// restarts) and returns the bound address.
func (s *Sim) Start(addr string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return s.addr, nil
	}
	if s.addr != "" {
		addr = s.addr
	}
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		bind := addr
		if strings.HasSuffix(addr, ":0") {
			// The server library binds by itself and does not expose the
			// port: take a free one, release it and bind it at once.
			ln, lerr := net.Listen("tcp", addr)
			if lerr != nil {
				return "", lerr
			}
			bind = ln.Addr().String()
			ln.Close()
		}
		var srv *smb.ModbusServer
		srv, err = smb.NewServer(&smb.ServerConfiguration{URL: "tcp://" + bind, Timeout: 5 * time.Minute, MaxClients: 32, Logger: log.New(io.Discard, "", 0)}, handler{s})
		if err != nil {
			return "", err
		}
		if err = srv.Start(); err == nil {
			s.srv, s.addr = srv, bind
			return bind, nil
		}
		if !strings.HasSuffix(addr, ":0") {
			break
		}
	}
	return "", fmt.Errorf("modbussim: %w", err)
}

// Addr is the bound address.
func (s *Sim) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Stop closes the listener and every client (a PLC power cycle).
func (s *Sim) Stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		srv.Stop()
	}
}

// DropClients closes every client connection and keeps serving.
func (s *Sim) DropClients() error {
	s.Stop()
	_, err := s.Start(s.Addr())
	return err
}

// SetDelay delays every answer (provokes client timeouts and late answers).
func (s *Sim) SetDelay(d time.Duration) {
	s.mu.Lock()
	s.delay = d
	s.mu.Unlock()
}

// SetException makes every request fail with a Modbus exception (nil clears).
func (s *Sim) SetException(err error) {
	s.mu.Lock()
	s.exception = err
	s.mu.Unlock()
}

// ErrDeviceFailure is exception 4 (server device failure).
var ErrDeviceFailure = smb.ErrServerDeviceFailure

// RejectCount is the number of rejects written to the reject coil.
func (s *Sim) RejectCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rejects
}

// Coil, HoldingRegister: accessors for tests.
func (s *Sim) Coil(a uint16) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.coils[a]
}

// HoldingRegister returns a holding register.
func (s *Sim) HoldingRegister(a uint16) uint16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.holding[a]
}

// SetHoldingRegister sets a holding register.
func (s *Sim) SetHoldingRegister(a, v uint16) {
	s.mu.Lock()
	s.holding[a] = v
	s.mu.Unlock()
}

// SetDiscrete sets a discrete input (line running, product present ...).
func (s *Sim) SetDiscrete(a uint16, v bool) {
	s.mu.Lock()
	s.discrete[a] = v
	s.mu.Unlock()
}

// SetInputRegister sets an input register.
func (s *Sim) SetInputRegister(a, v uint16) {
	s.mu.Lock()
	s.input[a] = v
	s.mu.Unlock()
}

// Requests counts the requests served.
func (s *Sim) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

type handler struct{ s *Sim }

func (h handler) begin(unit uint8, addr, qty uint16) error {
	s := h.s
	s.mu.Lock()
	delay, exc := s.delay, s.exception
	s.requests++
	s.mu.Unlock()
	if delay > 0 {
		time.Sleep(delay) // the simulated PLC is slow to answer
	}
	if exc != nil {
		return exc
	}
	if s.opt.UnitID != 0 && unit != s.opt.UnitID {
		return smb.ErrGWTargetFailedToRespond
	}
	if int(addr)+int(qty) > Size {
		return smb.ErrIllegalDataAddress
	}
	return nil
}

func (h handler) rejectCoil() (uint16, bool, bool) {
	t, ok := h.s.opt.Tags["reject"]
	if !ok || t.Coil == nil {
		return 0, false, false
	}
	return *t.Coil, t.Pulse > 0, true
}

func (h handler) HandleCoils(req *smb.CoilsRequest) ([]bool, error) {
	if err := h.begin(req.UnitId, req.Addr, req.Quantity); err != nil {
		return nil, err
	}
	s := h.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if req.IsWrite {
		rc, pulsed, has := h.rejectCoil()
		for i, v := range req.Args {
			a := req.Addr + uint16(i)
			if has && a == rc && v {
				s.rejects++
				if !pulsed {
					v = false // a level-less gate fires once per write and resets itself
				}
			}
			s.coils[a] = v
		}
		return nil, nil
	}
	return append([]bool(nil), s.coils[req.Addr:req.Addr+req.Quantity]...), nil
}

func (h handler) HandleDiscreteInputs(req *smb.DiscreteInputsRequest) ([]bool, error) {
	if err := h.begin(req.UnitId, req.Addr, req.Quantity); err != nil {
		return nil, err
	}
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	return append([]bool(nil), h.s.discrete[req.Addr:req.Addr+req.Quantity]...), nil
}

func (h handler) HandleHoldingRegisters(req *smb.HoldingRegistersRequest) ([]uint16, error) {
	if err := h.begin(req.UnitId, req.Addr, req.Quantity); err != nil {
		return nil, err
	}
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	if req.IsWrite {
		copy(h.s.holding[req.Addr:], req.Args)
		return nil, nil
	}
	return append([]uint16(nil), h.s.holding[req.Addr:req.Addr+req.Quantity]...), nil
}

func (h handler) HandleInputRegisters(req *smb.InputRegistersRequest) ([]uint16, error) {
	if err := h.begin(req.UnitId, req.Addr, req.Quantity); err != nil {
		return nil, err
	}
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	return append([]uint16(nil), h.s.input[req.Addr:req.Addr+req.Quantity]...), nil
}
