package modbus_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	gbmodbus "github.com/goburrow/modbus"
	"github.com/rs/zerolog"

	"github.com/serialine/serialine/drivers"
	"github.com/serialine/serialine/drivers/modbus"
)

// fakeServer is a scripted Modbus TCP peer: answer gets the connection
// number and the request ADU and returns the response ADU (nil closes the
// connection).
type fakeServer struct {
	ln     net.Listener
	mu     sync.Mutex
	conns  int
	seen   [][]byte
	answer func(conn int, req []byte) []byte
}

func newFakeServer(t testing.TB, answer func(conn int, req []byte) []byte) *fakeServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeServer{ln: ln, answer: answer}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns++
			n := f.conns
			f.mu.Unlock()
			go func() {
				defer c.Close()
				for {
					hdr := make([]byte, 7)
					if _, err := io.ReadFull(c, hdr); err != nil {
						return
					}
					pdu := make([]byte, int(binary.BigEndian.Uint16(hdr[4:]))-1)
					if _, err := io.ReadFull(c, pdu); err != nil {
						return
					}
					req := append(hdr, pdu...)
					f.mu.Lock()
					f.seen = append(f.seen, req)
					f.mu.Unlock()
					out := f.answer(n, req)
					if out == nil {
						return
					}
					c.Write(out)
				}
			}()
		}
	}()
	return f
}

// adu builds a response to req with the given PDU (function code first).
func adu(req []byte, pdu ...byte) []byte {
	out := make([]byte, 7, 7+len(pdu))
	copy(out, req[:4])
	binary.BigEndian.PutUint16(out[4:], uint16(len(pdu)+1))
	out[6] = req[6]
	return append(out, pdu...)
}

func fakePLC(t testing.TB, addr string) *modbus.PLC {
	t.Helper()
	p, err := modbus.New("plc-1", addr, 300*time.Millisecond, modbus.Options{UnitID: 1, Tags: tags()}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// The known goburrow problem the driver works around: after a timeout the
// late answer stays in the socket and the next request reads it.
func TestGoburrowDesyncWithoutReset(t *testing.T) {
	sim := startSim(t)
	sim.SetHoldingRegister(30, 111)
	sim.SetHoldingRegister(31, 222)
	h := gbmodbus.NewTCPClientHandler(sim.Addr())
	h.SlaveId, h.Timeout = 1, 100*time.Millisecond
	if err := h.Connect(); err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	c := gbmodbus.NewClient(h)
	sim.SetDelay(250 * time.Millisecond)
	if _, err := c.ReadHoldingRegisters(30, 1); err == nil {
		t.Fatal("no timeout")
	}
	sim.SetDelay(0)
	h.Timeout = time.Second
	// The next request reads the late answer to the first, and the stream
	// stays one answer behind: every later request fails the same way.
	for i := 0; i < 2; i++ {
		_, err := c.ReadHoldingRegisters(31, 1)
		if err == nil || !strings.Contains(err.Error(), "transaction id") {
			t.Fatalf("read %d after the timeout: %v (the desync this driver guards against is gone; revisit the driver)", i, err)
		}
	}
}

// Answers that do not fit the request are malformed: reported with their
// bytes, the link is reset, and the next call works on a fresh connection.
func TestMalformedAnswers(t *testing.T) {
	for name, bad := range map[string]func(req []byte) []byte{
		"wrong function code": func(req []byte) []byte { return adu(req, 0x04, 2, 0, 7) },
		"wrong byte count":    func(req []byte) []byte { return adu(req, 0x03, 4, 0, 7) },
		"short data":          func(req []byte) []byte { return adu(req, 0x03) },
		"wrong unit id": func(req []byte) []byte {
			r := adu(req, 0x03, 2, 0, 7)
			r[6] = 9
			return r
		},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFakeServer(t, func(conn int, req []byte) []byte {
				if conn == 1 {
					return bad(req)
				}
				return adu(req, 0x03, 2, 0, 42)
			})
			p := fakePLC(t, f.ln.Addr().String())
			_, err := p.ReadUint(context.Background(), "small")
			var de *drivers.DeviceError
			if !errors.As(err, &de) || !errors.Is(err, drivers.ErrMalformed) || de.Field != "tag small read" || !strings.Contains(err.Error(), "link reset") {
				t.Fatalf("%v", err)
			}
			if name != "short data" && len(de.Raw) == 0 {
				t.Errorf("no bytes in the error: %v", err)
			}
			if h := p.Health(); h.Fault != "malformed_answer" {
				t.Errorf("health %+v", h)
			}
			v, err := p.ReadUint(context.Background(), "small")
			if err != nil || v != 42 {
				t.Fatalf("next call: %d %v", v, err)
			}
			if f.conns != 2 {
				t.Fatalf("%d connections: the link was not reset", f.conns)
			}
		})
	}
}

// A real exception (function code | 0x80) keeps the link.
func TestExceptionFromWire(t *testing.T) {
	f := newFakeServer(t, func(conn int, req []byte) []byte { return adu(req, 0x83, 2) })
	p := fakePLC(t, f.ln.Addr().String())
	for i := 0; i < 2; i++ {
		_, err := p.ReadUint(context.Background(), "small")
		if !errors.Is(err, drivers.ErrDeviceFault) || !strings.Contains(err.Error(), "exception 2 (illegal data address)") {
			t.Fatalf("%v", err)
		}
	}
	if f.conns != 1 {
		t.Fatalf("%d connections: an exception must not reset the link", f.conns)
	}
}

// The reset of a reject pulse is retried on a fresh connection: the gate
// must not stay open, and the reject is not reported as failed (which would
// make the engine pulse again).
func TestPulseResetRetried(t *testing.T) {
	f := newFakeServer(t, func(conn int, req []byte) []byte {
		on := req[10] == 0xFF
		if !on && conn == 1 {
			return nil // the reset is lost with the connection
		}
		return adu(req, req[7:]...) // WriteSingleCoil echoes the request
	})
	p := fakePLC(t, f.ln.Addr().String())
	if err := p.WriteBool(context.Background(), "reject", true); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var writes []byte
	for _, r := range f.seen {
		writes = append(writes, r[10])
	}
	if string(writes) != "\xff\x00\x00" || f.conns != 2 {
		t.Fatalf("coil writes % x on %d connections", writes, f.conns)
	}
}

// Whatever bytes come back, the driver returns a device error and never
// panics.
func FuzzAnswer(f *testing.F) {
	f.Add([]byte{0x03, 2, 0, 7}, uint8(0))
	f.Add([]byte{0x83, 4}, uint8(1))
	f.Add([]byte{0x05, 0, 0, 0xff, 0}, uint8(2))
	f.Add([]byte{}, uint8(3))
	var mu sync.Mutex
	var answer []byte
	srv := newFakeServer(f, func(conn int, req []byte) []byte {
		mu.Lock()
		defer mu.Unlock()
		return adu(req, answer...)
	})
	p, err := modbus.New("plc-1", srv.ln.Addr().String(), 50*time.Millisecond, modbus.Options{UnitID: 1, Tags: tags()}, zerolog.Nop())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, pdu []byte, op uint8) {
		if len(pdu) > 260 {
			pdu = pdu[:260]
		}
		mu.Lock()
		answer = pdu
		mu.Unlock()
		ctx := context.Background()
		var err error
		switch op % 4 {
		case 0:
			_, err = p.ReadUint(ctx, "big")
		case 1:
			_, err = p.ReadBool(ctx, "line_running")
		case 2:
			err = p.WriteBool(ctx, "level", true)
		case 3:
			err = p.WriteUint(ctx, "good_count", 7)
		}
		var de *drivers.DeviceError
		if err != nil && !errors.As(err, &de) {
			t.Fatalf("error %T %v is not a device error", err, err)
		}
	})
}
