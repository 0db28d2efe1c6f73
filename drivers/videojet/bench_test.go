package videojet_test

import (
	"bufio"
	"context"
	"net"
	"testing"
	"time"

	"github.com/serialine/serialine/drivers/videojet"
	"github.com/serialine/serialine/drivers/videojet/videojetsim"
)

// BenchmarkPrint measures one unit label per op against the simulator over
// loopback: "driver" through the driver (label rendering, job data update,
// waiting for the acknowledgement), "raw" the same bytes on a bare socket,
// the floor the driver's overhead is measured against (make bench prints
// the ratio).
func BenchmarkPrint(b *testing.B) {
	// The simulator prints as fast as it can; a deep queue keeps a burst
	// of acknowledged updates from filling it while the print goroutine
	// waits for a core.
	benchSim := func(b *testing.B, wsi bool) *videojetsim.Sim {
		o := videojetsim.TextOptions("sim", videojet.Options{}, 0)
		if wsi {
			o = videojetsim.CIJOptions("sim", videojet.CIJOptions{}, 0)
		}
		o.QueueSize = 1 << 16
		return startSimOpts(b, o)
	}
	for _, wsi := range []bool{false, true} {
		b.Run(dir(wsi)+"/driver", func(b *testing.B) {
			sim := benchSim(b, wsi)
			go drain(sim.Printed())
			p := driver(b, wsi, sim.Addr(), 2*time.Second)
			ctx := context.Background()
			l := unitLabel("100000000000")
			if err := p.Print(ctx, l); err != nil { // connect and select the job
				b.Fatal(err)
			}
			b.ResetTimer()
			start := time.Now()
			for b.Loop() {
				if err := p.Print(ctx, l); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "units/s")
		})
		b.Run(dir(wsi)+"/raw", func(b *testing.B) {
			sim := benchSim(b, wsi)
			go drain(sim.Printed())
			c, err := net.Dial("tcp", sim.Addr())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			r := bufio.NewReader(c)
			// The packets the driver sends for one unit after the job is selected.
			var packets [][]byte
			fields, err := unitFields("100000000000")
			if err != nil {
				b.Fatal(err)
			}
			if wsi {
				sel, _ := videojet.EncodeWSI('M', "SERIAL")
				roundTrip(b, c, r, sel, true)
				for _, f := range fields {
					u, _ := videojet.EncodeWSI('U', f.Name, f.Value)
					packets = append(packets, u)
				}
			} else {
				// Print-complete notifications on, as the driver has them.
				sno, _ := videojet.EncodeCommand("SNO", "PRC", "1")
				roundTrip(b, c, r, sno, false)
				jda, _ := videojet.EncodeUpdate(fields)
				packets = append(packets, jda)
			}
			b.ResetTimer()
			start := time.Now()
			for b.Loop() {
				for _, pk := range packets {
					roundTrip(b, c, r, pk, wsi)
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "units/s")
		})
	}
}

func drain[T any](c <-chan T) {
	for range c {
	}
}

// unitFields renders a unit label as the default options do: the text
// fields by name, the code field last.
func unitFields(serial string) ([]videojet.Field, error) {
	l := unitLabel(serial)
	code, err := videojet.SymbolData(l.Data, videojet.FNC1GS)
	if err != nil {
		return nil, err
	}
	return []videojet.Field{{"EXP", l.Text["EXP"]}, {"GTIN", l.Text["GTIN"]}, {"LOT", l.Text["LOT"]}, {"SN", l.Text["SN"]}, {"DM", code}}, nil
}

func roundTrip(b *testing.B, c net.Conn, r *bufio.Reader, pk []byte, wsi bool) {
	if _, err := c.Write(pk); err != nil {
		b.Fatal(err)
	}
	if !wsi {
		for {
			line, err := r.ReadString('\r')
			if line == "PRC\r" {
				continue
			}
			if err != nil || line != "ACK\r" {
				b.Fatalf("%q %v", line, err)
			}
			return
		}
	}
	var ack [3]byte
	for i := range ack {
		x, err := r.ReadByte()
		if err != nil {
			b.Fatal(err)
		}
		ack[i] = x
	}
	if ack[0] != '$' {
		b.Fatalf("%q", ack)
	}
}
