package line

import (
	"context"
	"fmt"
	"strings"

	"github.com/serialine/serialine/drivers"
	"github.com/serialine/serialine/edge/store"
	"github.com/serialine/serialine/sync/gs1"
	"github.com/serialine/serialine/sync/record"
)

// Challenge kinds: a known-bad unit the line must reject.
const (
	ChallengeWrongData = "wrong_data" // the label carries other data than the unit expects
	ChallengeNoRead    = "no_read"    // the code cannot be read (defaced challenge label)
	ChallengeBadGrade  = "bad_grade"  // the code reads with a grade below the minimum
)

// ChallengeSerialPrefix starts the serial of every challenge label: CHK +
// a two-letter kind code (WX printed for wrong data, NR, BG). Challenge
// labels are never product units and their serials never come from a pool.
// The simulators use the prefix to play the defaced challenge card a plant
// would put on the line.
const ChallengeSerialPrefix = "CHK"

func challengeCode(kind string) string {
	switch kind {
	case ChallengeNoRead:
		return "NR"
	case ChallengeBadGrade:
		return "BG"
	}
	return "WD"
}

// ValidChallenge reports whether kind is a known challenge kind.
func ValidChallenge(kind string) bool {
	return kind == ChallengeWrongData || kind == ChallengeNoRead || kind == ChallengeBadGrade
}

// challengeDue starts an interval challenge when its unit count is reached.
func (e *Engine) challengeDue() {
	b := e.b
	if b.Challenge != nil || b.NextChallenge <= 0 || b.Commissioned < b.NextChallenge {
		return
	}
	kinds := e.cfg.Edge.Challenge.AtStart
	if len(kinds) == 0 {
		kinds = []string{ChallengeWrongData}
	}
	b.Challenge = &challenge{Pending: append([]string(nil), kinds...), Trigger: "interval"}
	b.NextChallenge += e.cfg.Edge.Challenge.Every
}

// fillChallenge sends the next challenge label once the units in flight are
// judged. It returns true while a challenge keeps product units waiting.
func (e *Engine) fillChallenge(tx *store.Tx) (blocking bool) {
	b := e.b
	c := b.Challenge
	if c == nil {
		return false
	}
	if c.Active != "" || len(b.InFlight) > 0 {
		return true
	}
	if len(c.Pending) == 0 {
		b.Challenge = nil
		return false
	}
	kind := c.Pending[0]
	c.Pending = c.Pending[1:]
	c.Active = kind
	b.ChallengeSeq++
	expected := fmt.Sprintf("%s%s%06d", ChallengeSerialPrefix, challengeCode(kind), b.ChallengeSeq)
	printed := expected
	if kind == ChallengeWrongData {
		printed = fmt.Sprintf("%sWX%06d", ChallengeSerialPrefix, b.ChallengeSeq)
	}
	now := e.now()
	e.lastHeadMove = now
	b.InFlight = append(b.InFlight, inflight{Serial: expected, SentAt: now.UnixNano(), Challenge: kind})
	e.fx.prints = append(e.fx.prints, drivers.Label{
		ID: expected, Level: drivers.LevelUnit, Data: b.elements(printed),
		Text: map[string]string{"GTIN": b.GTIN, "SN": printed, "LOT": b.Lot, "EXP": b.Expiry, "PRODUCT": "CHALLENGE " + kind},
	})
	e.log.Info().Str("batch", b.ID).Str("challenge", kind).Str("trigger", c.Trigger).Msg("challenge unit sent")
	return true
}

func challengeReasonOK(kind, reason string) bool {
	switch kind {
	case ChallengeWrongData:
		return reason == ReasonMismatch || reason == ReasonForeign || reason == ReasonDuplicate || reason == ReasonUnparseable
	case ChallengeNoRead:
		return reason == ReasonNoRead || reason == ReasonTimeout || reason == ReasonUnparseable
	case ChallengeBadGrade:
		return reason == ReasonGrade
	}
	return false
}

// judgeChallenge records the evidence of a challenge unit's verdict. A
// challenge passes when the bad unit was rejected for the expected reason;
// otherwise the line is held with an alarm until a new challenge passes.
func (e *Engine) judgeChallenge(tx *store.Tx, f inflight, r drivers.Reading, els gs1.Elements, pass bool, reason string) error {
	b := e.b
	c := b.Challenge
	ev := record.Challenge{Batch: b.ID, Kind: f.Challenge, Camera: r.Camera, Grade: float64(r.Grade), Rejected: !pass}
	if c != nil {
		ev.Trigger = c.Trigger
	}
	if els != nil {
		ev.Data = els.Bracketed()
	} else if r.Data != "" {
		ev.Data = printable(r.Data)
	}
	ev.Verdict = reason
	if pass {
		ev.Verdict = "pass"
	}
	ev.Passed = !pass && challengeReasonOK(f.Challenge, reason)
	if !pass {
		e.reject(f.Serial, f.Serial, reason)
	}
	if _, err := tx.Append(record.KindChallenge, ev); err != nil {
		return err
	}
	if c == nil {
		return nil
	}
	if ev.Passed {
		c.Active = ""
		if len(c.Pending) == 0 {
			b.Challenge = nil
		}
		e.log.Info().Str("batch", b.ID).Str("challenge", f.Challenge).Str("verdict", ev.Verdict).Msg("challenge passed")
		return e.alarm(tx, "challenge_failed", false, "challenge passed")
	}
	c.Active, c.Pending = "failed", nil
	msg := fmt.Sprintf("challenge %s failed: the known-bad unit got verdict %q; line held", f.Challenge, ev.Verdict)
	if err := e.alarm(tx, "challenge_failed", true, msg); err != nil {
		return err
	}
	if b.State == BatchRunning {
		return e.setState(tx, BatchHeld, msg, "system")
	}
	return nil
}

// requeueChallenge puts a challenge whose unit was lost (restart, print
// failure) back at the front of the queue.
func (e *Engine) requeueChallenge(kind string) {
	c := e.b.Challenge
	if c == nil {
		e.b.Challenge = &challenge{Pending: []string{kind}, Trigger: "retry"}
		return
	}
	if c.Active == kind {
		c.Active = ""
	}
	c.Pending = append([]string{kind}, c.Pending...)
}

// userAction documents an operator request that has no record of its own
// (Part 11 audit trail: who asked for what).
type userAction struct {
	User   string `json:"user"`
	Action string `json:"action"`
	Batch  string `json:"batch,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// ChallengeNow runs a challenge test on the running batch at an operator's
// request: the kinds given, or the configured at_start kinds (wrong_data if
// none). Product units wait until the challenge units are judged; a failed
// challenge holds the line.
func (e *Engine) ChallengeNow(ctx context.Context, by string, kinds []string) error {
	_, err := e.do(ctx, "challenge", func(tx *store.Tx) (any, error) {
		b := e.b
		if b == nil || b.State != BatchRunning {
			return nil, ruleErr("a challenge runs on a running batch (active: %s)", e.describe())
		}
		if b.Challenge != nil {
			return nil, ruleErr("a challenge is already running on batch %s", b.ID)
		}
		if len(kinds) == 0 {
			kinds = e.cfg.Edge.Challenge.AtStart
		}
		if len(kinds) == 0 {
			kinds = []string{ChallengeWrongData}
		}
		for _, k := range kinds {
			if !ValidChallenge(k) {
				return nil, ruleErr("challenge kind %q: want wrong_data, no_read or bad_grade", k)
			}
		}
		b.Challenge = &challenge{Pending: append([]string(nil), kinds...), Trigger: "manual"}
		_, err := tx.Append(record.KindUserAction, userAction{User: by, Action: "challenge", Batch: b.ID, Detail: strings.Join(kinds, ",")})
		return nil, err
	})
	return err
}
