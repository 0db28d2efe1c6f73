package camerasim

import (
	"testing"

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
