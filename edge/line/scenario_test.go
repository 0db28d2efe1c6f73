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
	serials map[string]string // remembered serials (remember unit:N -> NAME)
	// prevBoxer is the label printer carried over a restart (a faulty
	// printer stays faulty).
	prevBoxer *fakePrinter
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
	labelLevels     []string      // a label printer "case-printer" for these levels
	trigger         bool          // the engine triggers the camera
	presence        bool          // the PLC maps product_present
	rejectDeadline  time.Duration // edge.reject_deadline
}

func runScenario(t *testing.T, file string) {
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := &scenario{t: t, file: file, dir: t.TempDir(), names: map[string]string{}, serials: map[string]string{},
		conf: &confBuild{upc: 4, cpp: 2, ahead: 3, timeout: 3 * time.Second, overage: 10, rejectDeadline: 10 * time.Second},
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
		s.fatalf("unexpected error: %v (status %+v)", s.lastErr, s.r.eng.Status())
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
	cfg.Edge.RejectDeadline = config.Duration(c.rejectDeadline)
	s.r = newRigWith(s.t, cfg, s.dir, nil, func(r *rig, o *Options) {
		r.plc.presence = c.presence
		o.Devices.TriggerCamera = c.trigger
		if len(c.labelLevels) > 0 {
			r.boxer = s.prevBoxer
			if r.boxer == nil {
				r.boxer = &fakePrinter{out: make(chan drivers.Label, 64)}
			}
			lp := LabelPrinter{Name: "case-printer", Printer: r.boxer}
			for _, l := range c.labelLevels {
				lp.Levels = append(lp.Levels, drivers.Level(l))
			}
			o.Devices.LabelPrinters = []LabelPrinter{lp}
		}
	})
}

// box returns the n-th container label printed (1-based).
func (s *scenario) box(n int) drivers.Label {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	if n < 1 || n > len(s.r.boxes) {
		s.fatalf("container label %d not printed (%d so far)", n, len(s.r.boxes))
	}
	return s.r.boxes[n-1]
}

func (s *scenario) boxCount() int {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	return len(s.r.boxes)
}

// containerLabel returns a container's label state from the store.
func (s *scenario) containerLabel(sscc string) string {
	c, err := s.r.eng.Container(sscc)
	if err != nil {
		s.fatalf("container %s: %v", sscc, err)
	}
	return c.Label
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
	if sn, ok := s.serials[ref]; ok {
		return sn
	}
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
			case "label_printer":
				s.conf.labelLevels = strings.Split(v, ",")
			case "trigger":
				s.conf.trigger = v == "yes"
			case "presence":
				s.conf.presence = v == "yes"
			case "reject_deadline":
				d, err := time.ParseDuration(v)
				if err != nil {
					s.fatalf("%v", err)
				}
				s.conf.rejectDeadline = d
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
		s.settleRejects()
		m := kv(args)
		req := CloseRequest{By: "sup", LooseReason: m["loose"]}
		if _, ok := m["signed"]; ok {
			req.Signature = s.sig
		}
		_, s.lastErr = s.engine().CloseBatch(ctx, req)
	case "restart":
		if s.prevBoxer = s.r.boxer; s.prevBoxer != nil {
			s.prevBoxer.hang.Store(false) // the hung print ends with the engine
		}
		s.r.stop()
		s.r.db.Close()
		s.r = nil
		s.reads = 0
		s.boot()
	case "records":
		s.records(args)
	case "labels":
		// labels N: wait until N container labels were printed.
		n, _ := strconv.Atoi(args[0])
		s.waitUntil(fmt.Sprintf("%d container labels printed", n), func() bool { return s.boxCount() >= n })
	case "labelsprinted":
		// labelsprinted N: exactly N container labels so far.
		n, _ := strconv.Atoi(args[0])
		time.Sleep(30 * time.Millisecond) // asserting absence needs a pause
		if got := s.boxCount(); got != n {
			s.fatalf("%d container labels printed, want %d", got, n)
		}
	case "box":
		// box N -> NAME: name the container of the N-th container label;
		// box N level=L count=C: check the label.
		n, _ := strconv.Atoi(args[0])
		l := s.box(n)
		sscc, ok := l.Data.Get("00")
		if !ok || len(l.Data) != 1 || len(sscc) != 18 || gs1.VerifyCheckDigit(sscc) != nil || l.ID != sscc {
			s.fatalf("container label %d: data %s, id %s: want (00) and a valid SSCC", n, l.Data.Bracketed(), l.ID)
		}
		if len(args) == 3 && args[1] == "->" {
			s.names[args[2]] = sscc
			return
		}
		for k, v := range kv(args[1:]) {
			got := ""
			switch k {
			case "level":
				got = string(l.Level)
			case "count":
				got = l.Text["COUNT"]
			case "units":
				got = l.Text["UNITS"]
			case "gtin":
				got = l.Text["GTIN"]
			case "lot":
				got = l.Text["LOT"]
			case "sscc":
				got = sscc
				v = s.container(v)
			default:
				s.fatalf("box: unknown key %s", k)
			}
			if got != v {
				s.fatalf("container label %d: %s=%s, want %s (label %+v)", n, k, got, v, l)
			}
		}
	case "labelprinter":
		// labelprinter fault=F|ok|fail|nofail|hang: the label printer's state.
		s.engine()
		b := s.r.boxer
		if b == nil {
			s.fatalf("no label printer: config label_printer=case,pallet")
		}
		switch args[0] {
		case "ok":
			empty := ""
			b.fault.Store(&empty)
		case "fail":
			b.fail.Store(true)
		case "nofail":
			b.fail.Store(false)
		case "hang":
			b.hang.Store(true)
		default:
			f, ok := strings.CutPrefix(args[0], "fault=")
			if !ok {
				s.fatalf("labelprinter fault=F|ok|fail|nofail|hang")
			}
			b.fault.Store(&f)
		}
		want := "ok"
		if f := b.fault.Load(); f != nil && *f != "" {
			want = *f
		}
		s.waitUntil("the label printer's health to be "+want, func() bool {
			return s.r.eng.Status().Devices["case-printer"] == want
		})
	case "reprint":
		var sig *record.Signature
		if len(args) > 1 && args[1] == "signed" {
			sig = s.sig
		}
		s.lastErr = s.engine().ReprintLabel(ctx, s.container(args[0]), sig)
	case "plc":
		// plc reject=ok|refuse|hang[:D] counters=ok|fail
		s.engine()
		s.r.plc.mu.Lock()
		for k, v := range kv(args) {
			switch {
			case k == "reject" && v == "ok":
				s.r.plc.rejectMode = plcRejectOK
			case k == "reject" && v == "refuse":
				s.r.plc.rejectMode = plcRejectRefuse
			case k == "reject" && strings.HasPrefix(v, "hang"):
				s.r.plc.rejectMode, s.r.plc.hangFor = plcRejectHang, time.Hour
				if d, ok := strings.CutPrefix(v, "hang:"); ok {
					s.r.plc.hangFor, _ = time.ParseDuration(d)
				}
			case k == "counters":
				s.r.plc.failCounters = v == "fail"
			default:
				s.fatalf("plc reject=ok|refuse|hang[:D] counters=ok|fail")
			}
		}
		s.r.plc.mu.Unlock()
	case "settle":
		s.settleRejects()
	case "await":
		s.engine()
		s.await(args)
	case "quiet":
		// quiet D: let the engine act for D (asserting absence needs a pause).
		d, err := time.ParseDuration(args[0])
		if err != nil {
			s.fatalf("%v", err)
		}
		time.Sleep(d)
	case "opencase":
		// opencase -> NAME: name the case being filled.
		st := s.r.eng.Status()
		if st.OpenCase == "" || len(args) != 2 || args[0] != "->" {
			s.fatalf("opencase -> NAME: open case %q", st.OpenCase)
		}
		s.names[args[1]] = st.OpenCase
	case "pendinglabel":
		// pendinglabel N -> NAME: name the container of the N-th pending label.
		n, _ := strconv.Atoi(args[0])
		st := s.r.eng.Status()
		if n < 1 || n > len(st.LabelsPending) || len(args) != 3 {
			s.fatalf("pendinglabel N -> NAME: pending %v", st.LabelsPending)
		}
		s.names[args[2]] = st.LabelsPending[n-1]
	case "remember":
		// remember unit:N -> NAME: the serial of label N, kept over restarts.
		if len(args) != 3 || args[1] != "->" {
			s.fatalf("remember unit:N -> NAME")
		}
		s.serials[args[2]] = s.serialRef(args[0])
	case "presence":
		// presence high|low: set product_present and wait until the engine read it.
		p := s.r.plc
		v := args[0] == "high"
		p.mu.Lock()
		p.present = v
		n := p.presentSeenAs[v]
		p.mu.Unlock()
		s.waitUntil("product_present read "+args[0], func() bool { return p.seen(v) > n })
	case "removed":
		// removed unit:N|ID|all [signed]: a supervisor confirms the item
		// whose reject was not delivered was found and removed.
		var sig *record.Signature
		if len(args) > 1 && args[1] == "signed" {
			sig = s.sig
		}
		id := args[0]
		if id == "all" {
			// removed all [signed]: every item the status lists.
			s.lastErr = nil
			for _, u := range s.engine().Status().RejectsNotDelivered {
				if err := s.engine().ConfirmRemoval(ctx, u.ID, "found at the end of the conveyor and destroyed", sig); err != nil {
					s.lastErr = err
					break
				}
			}
			break
		}
		if _, ok := s.serials[id]; ok || strings.HasPrefix(id, "unit:") {
			id = s.serialRef(id)
		}
		s.lastErr = s.engine().ConfirmRemoval(ctx, id, "found at the end of the conveyor and destroyed", sig)
	case "present":
		// present: a unit passes the camera: presence high, then low.
		s.exec("presence high")
		s.exec("presence low")
	case "counter":
		// counter TAG=N: the PLC holds the counter value (retried writes).
		for k, v := range kv(args) {
			want, _ := strconv.ParseUint(v, 10, 64)
			s.waitUntil(fmt.Sprintf("PLC counter %s=%d", k, want), func() bool { return s.r.plc.counter(k) == want })
		}
	default:
		s.fatalf("unknown command %q", cmd)
	}
}

// settleRejects waits until no reject pulse is on its way to the PLC.
func (s *scenario) settleRejects() {
	e := s.engine()
	// Asked on the engine goroutine: the published status may lag the store.
	s.waitUntil("reject pulses to settle", func() bool {
		n, err := e.do(context.Background(), "pending rejects", func(tx *store.Tx) (any, error) {
			if e.b == nil {
				return 0, nil
			}
			return len(e.b.Rejects), nil
		})
		return err == nil && n.(int) == 0
	})
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
		if got := s.value(st, k, v); got != v {
			s.fatalf("expect %s=%s, got %s (status %+v)", k, v, got, st)
		}
	}
}

// await key=value...: wait until every expectation holds.
func (s *scenario) await(args []string) {
	want := kv(args)
	s.waitUntil("await "+strings.Join(args, " "), func() bool {
		st := s.r.eng.Status()
		for k, v := range want {
			if s.value(st, k, v) != v {
				return false
			}
		}
		return true
	})
}

// value is what the status (or store) says about an expectation key.
func (s *scenario) value(st Status, k, v string) string {
	{
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
		case k == "triggers":
			got = strconv.FormatInt(s.r.camera.triggers.Load(), 10)
		case k == "plc_rejects":
			got = strconv.Itoa(s.r.plc.Rejects())
		case k == "labels_pending":
			got = strconv.Itoa(len(st.LabelsPending))
		case k == "waiting":
			got = strconv.Itoa(len(st.WaitingForLabel))
		case k == "undelivered":
			got = strconv.Itoa(len(st.RejectsNotDelivered))
		case strings.HasPrefix(k, "label:"):
			got = s.containerLabel(s.container(strings.TrimPrefix(k, "label:")))
		case strings.HasPrefix(k, "undelivered:"):
			// undelivered:unit:N=CASE: the record names where to look.
			id := s.serialRef(strings.TrimPrefix(k, "undelivered:"))
			got = "not listed"
			for _, u := range st.RejectsNotDelivered {
				if u.ID == id {
					got = u.Case
					if c, ok := s.names[v]; ok && c == u.Case {
						got = v
					}
				}
			}
		case strings.HasPrefix(k, "device:"):
			got = st.Devices[strings.TrimPrefix(k, "device:")]
		case k == "rejects_pending":
			got = strconv.Itoa(st.RejectsPending)
		default:
			s.fatalf("unknown expectation %s", k)
		}
		return got
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
