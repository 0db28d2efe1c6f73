package camerasim

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestLine(t *testing.T) {
	d := "010950600013435217281130\x1d21S10"
	tests := []struct {
		profile string
		o       Outcome
		want    string
	}{
		{"dataman", Good, "]d2" + d + "|A"},
		{"dataman", BadGrade, "]d2" + d + "|D"},
		{"dataman", NoRead, "NoRead"},
		{"keyence", NoRead, "ERROR"},
		{"keyence", Good, d + ":A"},
		{"dataman", Mismatch, "]d2010950600013435217281130\x1d21S11|A"},
		{"dataman", Duplicate, "]d2PREV|A"},
	}
	for _, tt := range tests {
		if got := Line(tt.profile, tt.o, d, "PREV"); got != tt.want {
			t.Errorf("%s %d: %q, want %q", tt.profile, tt.o, got, tt.want)
		}
	}
}

func TestChallengeLabels(t *testing.T) {
	if challengeOutcome("0109506000134352\x1d21CHKNR000001") != NoRead || challengeOutcome("01x21CHKBG000002") != BadGrade || challengeOutcome("0109\x1d21CHKWX1") != Random || challengeOutcome("0121S1") != Random {
		t.Fatal("challenge labels not recognised")
	}
}

// The rates draw outcomes in about the configured proportions, reproducibly.
func TestRatesSeeded(t *testing.T) {
	count := func() map[Outcome]int {
		s := New(Options{Seed: 7, Rates: Rates{NoRead: 0.1, BadGrade: 0.2, Duplicate: 0.05, Garbage: 0.02}}, nopLog())
		for i := 0; i < 5000; i++ {
			s.See("0121S")
		}
		_, m := s.Counts()
		return m
	}
	a, b := count(), count()
	if a[NoRead] != b[NoRead] || a[BadGrade] != b[BadGrade] {
		t.Fatal("same seed, different outcomes")
	}
	if a[NoRead] < 400 || a[NoRead] > 600 || a[BadGrade] < 850 || a[BadGrade] > 1150 || a[Duplicate] < 170 || a[Duplicate] > 330 || a[Garbage] < 50 || a[Garbage] > 150 {
		t.Fatalf("outcomes %v not near 10%% / 20%% / 5%% / 2%% of 5000", a)
	}
}

func nopLog() zerolog.Logger { return zerolog.Nop() }

// A keyence trigger with nothing in view reads for its window: a unit seen
// within it is the result; otherwise the window ends with ERROR. Triggers
// and units pair in order.
func TestKeyenceReadWindow(t *testing.T) {
	s := New(Options{Profile: "keyence", ReadWindow: 300 * time.Millisecond}, nopLog())
	if _, err := s.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Serve(ctx)
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rd := bufio.NewReader(c)
	next := func() string {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		l, err := rd.ReadString('\r')
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSuffix(l, "\r")
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.Clients() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	fmt.Fprint(c, "LON\rLON\r")
	if a, b := next(), next(); a != "OK,LON" || b != "OK,LON" {
		t.Fatalf("responses %q %q", a, b)
	}
	s.See("0121A1") // both triggers are reading: the first gets this unit
	if got := next(); got != "0121A1:A" {
		t.Fatalf("first trigger: %q", got)
	}
	start := time.Now()
	if got := next(); got != "ERROR" || time.Since(start) < 200*time.Millisecond {
		t.Fatalf("second trigger: %q after %s, want ERROR at the end of its window", got, time.Since(start))
	}
	s.See("0121A2") // nobody reading: it waits for the next trigger
	fmt.Fprint(c, "LON\r")
	if a, b := next(), next(); a != "OK,LON" || b != "0121A2:A" {
		t.Fatalf("trigger after the unit: %q %q", a, b)
	}
	if n := s.Triggers(); n != 3 {
		t.Fatalf("%d triggers, want 3", n)
	}
}
