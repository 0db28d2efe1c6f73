package line

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/serialine/serialine/drivers"
	"github.com/serialine/serialine/edge/config"
	"github.com/serialine/serialine/edge/serials"
	"github.com/serialine/serialine/edge/store"
	"github.com/serialine/serialine/sync/gs1"
	"github.com/serialine/serialine/sync/record"
)

// TestScenarios runs the rule scenarios in testdata/scenarios/*.txt: plain
// text, one command per line, so a supervisor can read what the line does.
// See testdata/scenarios/README.md for the commands.
func TestScenarios(t *testing.T) {
	files, err := filepath.Glob("testdata/scenarios/*.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 30 {
		t.Fatalf("%d scenarios, want at least 30", len(files))
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) {
			t.Parallel()
			runScenario(t, f)
		})
	}
}

type scenario struct {
	t       *testing.T
	file    string
	line    int
	r       *rig
	dir     string
	cfg     func() // pending config changes are applied to s.conf
	conf    *confBuild
	names   map[string]string // container names -> SSCC
	lastErr error
	checked bool
	reads   int64
	sig     *record.Signature
}

type confBuild struct {
	upc, cpp, ahead int
	timeout         time.Duration
	atStart         []string
	every           int
	aggregation     string
	overage         int
	source          string
	lowWater        int
	samples         int
}

func runScenario(t *testing.T, file string) {
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := &scenario{t: t, file: file, dir: t.TempDir(), names: map[string]string{},
		conf: &confBuild{upc: 4, cpp: 2, ahead: 3, timeout: 3 * time.Second, overage: 10},
		sig:  &record.Signature{User: "sup", Name: "Sue Pervisor", Meaning: "approval", Reason: "scenario"}}
	defer func() {
		if s.r != nil {
			s.r.stop()
		}
	}()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		s.line++
		text := strings.TrimSpace(sc.Text())
		if i := strings.Index(text, " #"); i >= 0 {
			text = strings.TrimSpace(text[:i])
		}
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		s.exec(text)
	}
	s.checkLast()
	// Whatever the scenario did, the store's invariants hold.
	if s.r != nil {
		rep, err := Audit(s.r.db)
		if err != nil || len(rep.Problems) > 0 {
			t.Fatalf("%s: store audit: %v %s", file, err, strings.Join(rep.Problems, "\n"))
		}
	}
}

func (s *scenario) fatalf(format string, a ...any) {
	s.t.Helper()
	s.t.Fatalf("%s:%d: %s", s.file, s.line, fmt.Sprintf(format, a...))
}

// checkLast fails on an unexpected error of the previous command.
func (s *scenario) checkLast() {
	if s.lastErr != nil && !s.checked {
		s.fatalf("unexpected error: %v", s.lastErr)
	}
}

func fields(text string) []string {
	var out []string
	var cur strings.Builder
	quoted := false
	for _, r := range text {
		switch {
		case r == '"':
			quoted = !quoted
		case r == ' ' && !quoted:
			if cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteRune(r)
		}
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

func kv(args []string) map[string]string {
	m := map[string]string{}
	for _, a := range args {
		k, v, _ := strings.Cut(a, "=")
		m[k] = v
	}
	return m
}

func (s *scenario) engine() *Engine {
	if s.r == nil {
		s.boot()
	}
	return s.r.eng
}

func (s *scenario) boot() {
	c := s.conf
	cfg := testConfig(c.upc, c.cpp)
	cfg.Edge.PrintAhead = c.ahead
	cfg.Edge.VerdictTimeout = config.Duration(c.timeout)
	cfg.Edge.Challenge.AtStart = c.atStart
	cfg.Edge.Challenge.Every = c.every
	cfg.Products[0].Aggregation = c.aggregation
	cfg.Products[0].Serials.OveragePercent = c.overage
	cfg.Products[0].Serials.Source = c.source
	cfg.Products[0].Serials.LowWater = c.lowWater
	cfg.Products[0].Samples = c.samples
	s.r = newRig(s.t, cfg, s.dir, nil)
}

func (s *scenario) label(ref string) drivers.Label {
	n, err := strconv.Atoi(strings.TrimPrefix(ref, "label:"))
	if err != nil {
		s.fatalf("label reference %q: want label:N", ref)
	}
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	if n < 1 || n > len(s.r.labels) {
		s.fatalf("label %d not printed (%d labels so far)", n, len(s.r.labels))
	}
	return s.r.labels[n-1]
}

// unitRef resolves unit:N (the unit of printed label N) to its unit id.
func (s *scenario) unitRef(ref string) string {
	if !strings.HasPrefix(ref, "unit:") {
		if sscc, ok := s.names[ref]; ok {
			return record.ContainerID(sscc)
		}
		return ref
	}
	l := s.label("label:" + strings.TrimPrefix(ref, "unit:"))
	gtin, _ := l.Data.Get("01")
	serial, _ := l.Data.Get("21")
	return record.UnitID(gtin, serial)
}

func (s *scenario) serialRef(ref string) string {
	_, serial, ok := parseUnitID(s.unitRef(ref))
	if !ok {
		s.fatalf("%q is not a unit", ref)
	}
	return serial
}

func (s *scenario) container(name string) string {
	sscc, ok := s.names[name]
	if !ok {
		s.fatalf("unknown container %s", name)
	}
	return sscc
}

func (s *scenario) waitUntil(what string, cond func() bool) {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			s.fatalf("timed out waiting for %s; status %+v", what, s.r.eng.Status())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (s *scenario) inject(r drivers.Reading) {
	s.reads++
	want := s.reads
	s.r.camera.in <- r
	s.waitUntil("the reading to be processed", func() bool { return s.r.eng.processed.Load() >= want })
}

func (s *scenario) exec(text string) {
	a := fields(text)
	cmd, args := a[0], a[1:]
	if cmd == "error" {
		if len(args) != 1 {
			s.fatalf("error takes one quoted substring")
		}
		if s.lastErr == nil || !strings.Contains(s.lastErr.Error(), args[0]) {
			s.fatalf("want an error containing %q, got %v", args[0], s.lastErr)
		}
		var re *RuleError
		if !errors.As(s.lastErr, &re) {
			s.fatalf("error %v is not a rule refusal", s.lastErr)
		}
		s.checked = true
		return
	}
	s.checkLast()
	s.lastErr, s.checked = nil, false
	ctx := context.Background()
	switch cmd {
	case "config":
		if s.r != nil {
			s.fatalf("config must come before the engine starts")
		}
		for k, v := range kv(args) {
			n, _ := strconv.Atoi(v)
			switch k {
			case "units_per_case":
				s.conf.upc = n
			case "cases_per_pallet":
				s.conf.cpp = n
			case "print_ahead":
				s.conf.ahead = n
			case "verdict_timeout":
				d, err := time.ParseDuration(v)
				if err != nil {
					s.fatalf("%v", err)
				}
				s.conf.timeout = d
			case "challenge":
				s.conf.atStart = strings.Split(v, ",")
			case "challenge_every":
				s.conf.every = n
			case "aggregation":
				s.conf.aggregation = v
			case "overage":
				s.conf.overage = n
			case "source":
				s.conf.source = v
			case "low_water":
				s.conf.lowWater = n
			case "samples":
				s.conf.samples = n
			default:
				s.fatalf("unknown config key %s", k)
			}
		}
	case "pool":
		e := s.engine()
		switch args[0] {
		case "import":
			var list []serials.Entry
			for i, x := range strings.Split(args[1], ",") {
				list = append(list, serials.Entry{Serial: x, Line: i + 1})
			}
			s.lastErr = e.ImportSerials(ctx, "09506000134352", list, "scenario", "sup")
		case "generate":
			n, _ := strconv.Atoi(args[1])
			s.lastErr = e.db.Update(func(tx *store.Tx) error {
				return serials.Generate(tx, "09506000134352", serials.Spec{Length: 12}, n)
			})
		default:
			s.fatalf("pool import|generate")
		}
	case "create":
		m := kv(args[1:])
		planned, _ := strconv.Atoi(m["planned"])
		exp := m["expiry"]
		if exp == "" {
			exp = "281130"
		}
		_, s.lastErr = s.engine().CreateBatch(ctx, BatchRequest{GTIN: "09506000134352", Lot: args[0], Expiry: exp, Planned: planned, By: "op"})
	case "clear":
		var sig *record.Signature
		if len(args) == 0 || args[0] != "unsigned" {
			sig = s.sig
		}
		s.lastErr = s.engine().ClearLine(ctx, "sup", sig, "")
	case "start":
		s.lastErr = s.engine().Start(ctx, "op")
	case "startbatch":
		m := kv(args[1:])
		planned, _ := strconv.Atoi(m["planned"])
		_, s.lastErr = s.engine().StartBatch(ctx, BatchRequest{GTIN: "09506000134352", Lot: args[0], Expiry: "281130", Planned: planned, By: "op"}, s.sig)
	case "print":
		n, _ := strconv.Atoi(args[0])
		s.waitUntil(fmt.Sprintf("%d labels printed", n), func() bool {
			s.r.mu.Lock()
			defer s.r.mu.Unlock()
			return len(s.r.labels) >= n
		})
	case "printed":
		// printed N: exactly N labels so far (after the engine settled).
		n, _ := strconv.Atoi(args[0])
		time.Sleep(20 * time.Millisecond) // let the engine try to print more; asserting absence needs a pause
		s.r.mu.Lock()
		got := len(s.r.labels)
		s.r.mu.Unlock()
		if got != n {
			s.fatalf("%d labels printed, want %d", got, n)
		}
	case "read":
		s.read(args)
	case "readcode":
		s.inject(drivers.Reading{Camera: "cam-1", Data: strings.ReplaceAll(args[0], "<GS>", gs1.GS), Grade: 4})
	case "timeout":
		// timeout N: wait until label N got its fail-safe verdict.
		serial := s.serialRef("unit:" + args[0])
		st := s.r.eng.Status()
		before := st.Good + st.Rejected
		s.waitUntil("the verdict of label "+args[0], func() bool {
			st := s.r.eng.Status()
			return s.unitStatus(serial) != UnitCommissioned && st.Good+st.Rejected > before
		})
	case "expect":
		s.expect(args)
	case "open":
		if len(args) != 3 || args[1] != "->" {
			s.fatalf("open case|pallet -> NAME")
		}
		var sscc string
		sscc, s.lastErr = s.engine().OpenContainer(ctx, args[0])
		s.names[args[2]] = sscc
	case "pack":
		s.lastErr = s.engine().Pack(ctx, s.container(args[0]), s.unitRef(args[1]))
	case "close":
		partial, sig := false, (*record.Signature)(nil)
		for _, x := range args[1:] {
			switch x {
			case "partial":
				partial = true
			case "signed":
				sig = s.sig
			}
		}
		s.lastErr = s.engine().CloseContainer(ctx, s.container(args[0]), partial, sig)
	case "unpack":
		var sig *record.Signature
		if len(args) > 2 && args[2] == "signed" {
			sig = s.sig
		}
		s.lastErr = s.engine().Unpack(ctx, s.container(args[0]), s.unitRef(args[1]), "rework", sig)
	case "dispose":
		var sig *record.Signature
		if len(args) > 2 && args[2] == "signed" {
			sig = s.sig
		}
		s.lastErr = s.engine().Dispose(ctx, s.serialRef(args[0]), args[1], "scenario", sig)
	case "pull":
		var sig *record.Signature
		if len(args) > 2 && args[2] == "signed" {
			sig = s.sig
		}
		s.lastErr = s.engine().PullGood(ctx, s.serialRef(args[0]), args[1], "scenario", sig)
	case "caseread":
		var codes []string
		for _, ref := range strings.Split(args[0], ",") {
			codes = append(codes, s.label("label:"+strings.TrimPrefix(ref, "unit:")).Data.ElementString())
		}
		var sscc string
		sscc, s.lastErr = s.engine().CaseRead(ctx, "case-cam", codes)
		if len(args) == 3 && args[1] == "->" {
			s.names[args[2]] = sscc
		}
	case "challenge":
		var kinds []string
		if len(args) > 0 {
			kinds = strings.Split(args[0], ",")
		}
		s.lastErr = s.engine().ChallengeNow(ctx, "op", kinds)
	case "ssccs-distinct":
		// The named containers have distinct SSCCs with valid check digits.
		seen := map[string]string{}
		for _, n := range args {
			sscc := s.container(n)
			if len(sscc) != 18 || gs1.VerifyCheckDigit(sscc) != nil {
				s.fatalf("container %s: SSCC %q is not 18 digits with a valid check digit", n, sscc)
			}
			if other, dup := seen[sscc]; dup {
				s.fatalf("containers %s and %s share SSCC %s", other, n, sscc)
			}
			seen[sscc] = n
		}
	case "hold":
		s.lastErr = s.engine().Hold(ctx, "op", "scenario")
	case "resume":
		s.lastErr = s.engine().Resume(ctx, "op", "scenario")
	case "stop":
		s.lastErr = s.engine().Stop(ctx, "sup", "scenario")
	case "closebatch":
		m := kv(args)
		req := CloseRequest{By: "sup", LooseReason: m["loose"]}
		if _, ok := m["signed"]; ok {
			req.Signature = s.sig
		}
		_, s.lastErr = s.engine().CloseBatch(ctx, req)
	case "restart":
		s.r.stop()
		s.r.db.Close()
		s.r = nil
		s.reads = 0
		s.boot()
	case "records":
		s.records(args)
	default:
		s.fatalf("unknown command %q", cmd)
	}
}

func (s *scenario) unitStatus(serial string) string {
	var u unit
	_ = s.r.db.View(func(tx *store.Tx) error {
		_, err := getUnit(tx, unitKey("09506000134352", serial), &u)
		return err
	})
	return u.Status
}

// read N OUTCOME: the camera reports on printed label N.
func (s *scenario) read(args []string) {
	l := s.label("label:" + args[0])
	rd := drivers.Reading{Camera: "cam-1", Data: l.Data.ElementString(), Symbology: gs1.SymbologyDataMatrix, Grade: 4}
	outcome := "good"
	if len(args) > 1 {
		outcome = args[1]
	}
	switch {
	case outcome == "good":
	case outcome == "noread":
		rd = drivers.Reading{Camera: "cam-1", NoRead: true}
	case strings.HasPrefix(outcome, "grade="):
		g, err := drivers.ParseGrade(strings.TrimPrefix(outcome, "grade="))
		if err != nil {
			s.fatalf("%v", err)
		}
		rd.Grade = g
	case strings.HasPrefix(outcome, "as="):
		rd.Data = s.label(strings.TrimPrefix(outcome, "as=")).Data.ElementString()
	case outcome == "mismatch":
		rd.Data = strings.Replace(rd.Data, "281130", "271130", 1)
	case outcome == "garbage":
		rd.Data = "\x01\x02not gs1"
	default:
		s.fatalf("read outcome %q", outcome)
	}
	s.inject(rd)
}

func (s *scenario) expect(args []string) {
	st := s.r.eng.Status()
	for k, v := range kv(args) {
		var got string
		switch {
		case k == "good":
			got = strconv.Itoa(st.Good)
		case k == "rejected":
			got = strconv.Itoa(st.Rejected)
		case k == "commissioned":
			got = strconv.Itoa(st.Commissioned)
		case k == "cases":
			got = strconv.Itoa(st.CasesClosed)
		case k == "pallets":
			got = strconv.Itoa(st.PalletsClosed)
		case k == "inflight":
			got = strconv.Itoa(st.InFlight)
		case k == "state":
			got = st.State
		case k == "batch_state":
			got = st.BatchState
		case k == "open_case_fill":
			got = strconv.Itoa(st.OpenCaseFill)
		case k == "pool":
			_ = s.r.db.View(func(tx *store.Tx) error {
				got = strconv.Itoa(serials.Available(tx, "09506000134352"))
				return nil
			})
		case strings.HasPrefix(k, "reason:"):
			got = strconv.Itoa(st.Reasons[strings.TrimPrefix(k, "reason:")])
		case strings.HasPrefix(k, "alarm:"):
			got = "no"
			for _, a := range st.Alarms {
				if a == strings.TrimPrefix(k, "alarm:") {
					got = "yes"
				}
			}
		case strings.HasPrefix(k, "unit:"):
			got = s.unitStatus(s.serialRef(k))
		case k == "open_containers":
			got = strconv.Itoa(len(st.OpenContainers))
		case strings.HasPrefix(k, "fill:"):
			got = "not open"
			for _, c := range st.OpenContainers {
				if c.SSCC == s.container(strings.TrimPrefix(k, "fill:")) {
					got = strconv.Itoa(c.Fill)
				}
			}
		case k == "reserved":
			got = strconv.Itoa(st.Reserved)
		case k == "samples":
			got = strconv.Itoa(st.Samples)
		case k == "status_pool":
			got = strconv.Itoa(st.Pools[0].Available)
		default:
			s.fatalf("unknown expectation %s", k)
		}
		if got != v {
			s.fatalf("expect %s=%s, got %s (status %+v)", k, v, got, st)
		}
	}
}

// records KIND=N...: the log holds exactly N records of each kind.
func (s *scenario) records(args []string) {
	recs, err := s.r.db.Records(1, 1<<30)
	if err != nil {
		s.fatalf("%v", err)
	}
	count := map[string]int{}
	for _, r := range recs {
		count[string(r.Kind)]++
	}
	for k, v := range kv(args) {
		if strconv.Itoa(count[k]) != v {
			s.fatalf("records %s=%s, got %d", k, v, count[k])
		}
	}
	if _, err := record.VerifyRun(s.r.db.PublicKey(), record.Head{}, recs); err != nil {
		s.fatalf("chain: %v", err)
	}
}
