package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"
)

// Operator commands talk to the edge's HTTP API (edge/api): every write is
// made as a line user (id + password), and supervisor actions carry an
// e-signature (the signer's id and password re-entered, and the meaning of
// the signature). Passwords are never defaulted: they come from a file
// (--password-file), the environment (SERIALINE_PASSWORD,
// SERIALINE_SIGN_PASSWORD) or a terminal prompt without echo.

const operatorUsage = `operator commands (talk to the edge API; see serialine COMMAND -h):
  status                                   line state, counts, open containers, pools, sync backlog
  batch create --gtin G --lot L --expiry YYMMDD --planned N
  batch clearance [--note TEXT]            line clearance, e-signed by a supervisor
  batch start | hold | resume | stop [--reason TEXT]
  batch close [--loose-reason TEXT] [--sign]   --sign: supervisor approval of differences
  container open case|pallet
  container pack SSCC CHILD...             CHILD: (01)GTIN(21)SERIAL or an SSCC
  container unpack SSCC CHILD --reason R   rework, e-signed
  container close SSCC [--partial --reason R]   partial close, e-signed
  container show SSCC
  container caseread [--camera NAME] CODE...   automatic aggregation read of one case
  container label SSCC --reason R          reprint a case/pallet SSCC label, e-signed
  unit show SERIAL [--gtin G]
  unit dispose SERIAL --disposition destroyed|sample|rework --reason R   e-signed
  unit pull SERIAL --as sample|destroyed --reason R                      e-signed
  serials import FILE --gtin G [--format csv|json] [--source NAME]
  reject removed ID --note TEXT            a unit whose reject was not delivered was found
                                           and removed (e-signed; the batch may then resume)
  challenge [--kind K]...                  run a challenge test now
  config reload                            the edge re-reads its config file

common flags: --edge URL (env SERIALINE_EDGE, default http://127.0.0.1:8081)
  --user ID (env SERIALINE_USER) --password-file FILE (or env SERIALINE_PASSWORD, or a prompt)
  --json (print the API's JSON answer)
e-signature flags: --sign-user ID (default: --user) --meaning TEXT --reason TEXT
  --sign-password-file FILE (or env SERIALINE_SIGN_PASSWORD, or a prompt)
`

// operatorHelp lists every operator command (operator_equipment.go adds the
// equipment ones).
const operatorHelp = operatorUsage + "\n" + equipmentUsage

// operatorEnv is what operator commands see of the world (tests replace it).
type operatorEnv struct {
	getenv func(string) string
	// prompt asks for a secret on the terminal without echo.
	prompt func(label string) (string, error)
	client *http.Client
	stdout io.Writer
	stderr io.Writer
	// called, if set, is told every API route a command calls (tests).
	called func(route string)
}

func defaultOperatorEnv(stdout, stderr io.Writer) *operatorEnv {
	return &operatorEnv{getenv: os.Getenv, prompt: promptTerminal, client: &http.Client{Timeout: 60 * time.Second}, stdout: stdout, stderr: stderr}
}

// operatorCmd runs an operator command; args[0] is the command.
func operatorCmd(args []string, env *operatorEnv) int {
	cmd, sub := args[0], ""
	rest := args[1:]
	if _, single := operations[cmd]; !single {
		if len(rest) == 0 || strings.HasPrefix(rest[0], "-") {
			fmt.Fprintf(env.stderr, "usage: serialine %s SUBCOMMAND ...\n\n%s", cmd, operatorHelp)
			return 2
		}
		sub, rest = rest[0], rest[1:]
	}
	name := strings.TrimSpace(cmd + " " + sub)
	op, ok := operations[name]
	if !ok {
		fmt.Fprintf(env.stderr, "serialine: unknown command %q\n\n%s", name, operatorHelp)
		return 2
	}
	o := &opCtx{env: env, name: name}
	fs := flag.NewFlagSet("serialine "+name, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.StringVar(&o.edge, "edge", "", "edge API base URL (env SERIALINE_EDGE; default http://127.0.0.1:8081)")
	fs.StringVar(&o.user, "user", "", "line user id (env SERIALINE_USER)")
	fs.StringVar(&o.passwordFile, "password-file", "", "file holding the user's password (else env SERIALINE_PASSWORD, else a prompt)")
	fs.BoolVar(&o.json, "json", false, "print the API's JSON answer")
	if op.signed != "" {
		fs.StringVar(&o.signUser, "sign-user", "", "e-signature: signer's user id (default: --user)")
		fs.StringVar(&o.meaning, "meaning", op.signed, "e-signature: meaning of the signature")
		fs.StringVar(&o.signPasswordFile, "sign-password-file", "", "e-signature: file holding the signer's password (else env SERIALINE_SIGN_PASSWORD, else a prompt)")
	}
	if op.flags != nil {
		op.flags(fs, o)
	}
	if err := fs.Parse(interleave(fs, rest)); err != nil {
		return 2
	}
	o.args = fs.Args()
	if err := op.run(o); err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(env.stderr, "serialine %s: %v (serialine %s -h lists the flags)\n", name, err, name)
			return 2
		}
		fmt.Fprintf(env.stderr, "serialine %s: %v\n", name, err)
		return 1
	}
	return 0
}

// interleave lets flags follow positional arguments (serialine container
// close SSCC --partial): flags first, then the positional ones.
func interleave(fs *flag.FlagSet, args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		f := fs.Lookup(name)
		if f == nil {
			continue
		}
		if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() {
			continue
		}
		if i+1 < len(args) {
			flags = append(flags, args[i+1])
			i++
		}
	}
	return append(flags, pos...)
}

type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// opCtx is one operator command being run.
type opCtx struct {
	env  *operatorEnv
	name string
	args []string

	edge, user, passwordFile string
	json                     bool
	signUser, meaning        string
	signPasswordFile         string
	reason                   string
	password                 string // cached once read
	vals                     map[string]*string
	bools                    map[string]*bool
	lists                    map[string]*listFlag
}

type operation struct {
	// signed is the default meaning of the e-signature the command needs
	// ("" when it needs none).
	signed string
	flags  func(fs *flag.FlagSet, o *opCtx)
	run    func(o *opCtx) error
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func (o *opCtx) str(fs *flag.FlagSet, name, usage string) {
	if o.vals == nil {
		o.vals = map[string]*string{}
	}
	o.vals[name] = fs.String(name, "", usage)
}

func (o *opCtx) flagBool(fs *flag.FlagSet, name, usage string) {
	if o.bools == nil {
		o.bools = map[string]*bool{}
	}
	o.bools[name] = fs.Bool(name, false, usage)
}

func (o *opCtx) list(fs *flag.FlagSet, name, usage string) {
	if o.lists == nil {
		o.lists = map[string]*listFlag{}
	}
	l := &listFlag{}
	o.lists[name] = l
	fs.Var(l, name, usage)
}

func (o *opCtx) get(name string) string { return *o.vals[name] }

func (o *opCtx) need(names ...string) error {
	for _, n := range names {
		if o.get(n) == "" {
			return usagef("--%s is required", n)
		}
	}
	return nil
}

func (o *opCtx) nargs(n int, what string) error {
	if len(o.args) != n {
		return usagef("want %s", what)
	}
	return nil
}

func (o *opCtx) base() (string, error) {
	b := o.edge
	if b == "" {
		b = o.env.getenv("SERIALINE_EDGE")
	}
	if b == "" {
		b = "http://127.0.0.1:8081"
	}
	if !strings.Contains(b, "://") {
		b = "http://" + b
	}
	u, err := url.Parse(b)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("--edge %q: want the edge API URL, e.g. http://127.0.0.1:8081", b)
	}
	return strings.TrimRight(b, "/"), nil
}

func (o *opCtx) userID() (string, error) {
	u := o.user
	if u == "" {
		u = o.env.getenv("SERIALINE_USER")
	}
	if u == "" {
		return "", usagef("--user is required (or env SERIALINE_USER): the edge accepts no anonymous writes")
	}
	return u, nil
}

// secret reads a password: from the file, else the environment variable,
// else a terminal prompt. There is no default.
func (o *opCtx) secret(file, envVar, label string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", err
		}
		pw := strings.TrimRight(string(b), "\r\n")
		if pw == "" {
			return "", fmt.Errorf("%s is empty", file)
		}
		return pw, nil
	}
	if pw := o.env.getenv(envVar); pw != "" {
		return pw, nil
	}
	pw, err := o.env.prompt(label)
	if err != nil {
		return "", fmt.Errorf("%s: %w (or set %s)", label, err, envVar)
	}
	if pw == "" {
		return "", fmt.Errorf("%s: empty password", label)
	}
	return pw, nil
}

func (o *opCtx) login() (string, string, error) {
	u, err := o.userID()
	if err != nil {
		return "", "", err
	}
	if o.password == "" {
		pw, err := o.secret(o.passwordFile, "SERIALINE_PASSWORD", "password of "+u)
		if err != nil {
			return "", "", err
		}
		o.password = pw
	}
	return u, o.password, nil
}

// signature builds the e-signature of a supervisor action. The signer's
// password is always asked for separately (re-entered), never taken from
// the login.
func (o *opCtx) signature(reason string) (map[string]string, error) {
	signer := o.signUser
	if signer == "" {
		var err error
		if signer, err = o.userID(); err != nil {
			return nil, err
		}
	}
	if strings.TrimSpace(o.meaning) == "" {
		return nil, usagef("--meaning is required: the signature records what it means")
	}
	pw, err := o.secret(o.signPasswordFile, "SERIALINE_SIGN_PASSWORD", fmt.Sprintf("password of %s to sign (%s)", signer, o.meaning))
	if err != nil {
		return nil, err
	}
	return map[string]string{"user": signer, "password": pw, "meaning": o.meaning, "reason": reason}, nil
}

// apiError is the edge's refusal of a request.
type apiError struct {
	code int
	msg  string
}

func (e *apiError) Error() string {
	what := "refused by the edge"
	switch {
	case e.code == http.StatusUnauthorized:
		what = "login refused by the edge"
	case e.code == http.StatusForbidden:
		what = "not allowed by the edge"
	case e.code >= 500:
		what = "the edge failed"
	}
	return fmt.Sprintf("%s (%d %s): %s", what, e.code, http.StatusText(e.code), e.msg)
}

// call sends one API request. route is the API's route pattern (for the
// test that checks every route has a command); path is the filled-in path.
func (o *opCtx) call(method, route, path string, query url.Values, body any, rawBody io.Reader, out any) error {
	base, err := o.base()
	if err != nil {
		return err
	}
	var rd io.Reader
	switch {
	case rawBody != nil:
		rd = rawBody
	case body != nil:
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	u := base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		return err
	}
	if method != http.MethodGet {
		user, pw, err := o.login()
		if err != nil {
			return err
		}
		req.SetBasicAuth(user, pw)
		req.Header.Set("Content-Type", "application/json")
	}
	if o.env.called != nil {
		o.env.called(method + " " + route)
	}
	resp, err := o.env.client.Do(req)
	if err != nil {
		return fmt.Errorf("edge API %s: %w", base, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("edge API %s: %w", base, err)
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(raw, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(raw))
		}
		return &apiError{code: resp.StatusCode, msg: e.Error}
	}
	if o.json {
		o.env.stdout.Write(raw)
		if len(raw) > 0 && raw[len(raw)-1] != '\n' {
			fmt.Fprintln(o.env.stdout)
		}
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("edge API answer to %s %s: %w", method, path, err)
		}
	}
	return nil
}

// say prints a line for people (not with --json).
func (o *opCtx) say(format string, a ...any) {
	if !o.json {
		fmt.Fprintf(o.env.stdout, format+"\n", a...)
	}
}

// status is the part of the edge's status the CLI prints.
type status struct {
	Line           string         `json:"line"`
	Edge           string         `json:"edge"`
	State          string         `json:"state"`
	PackML         int            `json:"packml"`
	Batch          string         `json:"batch"`
	BatchState     string         `json:"batch_state"`
	GTIN           string         `json:"gtin"`
	Lot            string         `json:"lot"`
	Product        string         `json:"product"`
	Planned        int            `json:"planned"`
	Commissioned   int            `json:"commissioned"`
	Good           int            `json:"good"`
	Rejected       int            `json:"rejected"`
	Reasons        map[string]int `json:"reasons"`
	InFlight       int            `json:"in_flight"`
	CasesClosed    int            `json:"cases_closed"`
	PalletsClosed  int            `json:"pallets_closed"`
	UnitsPerMin    float64        `json:"units_per_min"`
	Samples        int            `json:"samples"`
	SamplesPlanned int            `json:"samples_planned"`
	Reserved       int            `json:"reserved"`
	OpenContainers []struct {
		SSCC     string `json:"sscc"`
		Level    string `json:"level"`
		Fill     int    `json:"fill"`
		Capacity int    `json:"capacity"`
	} `json:"open_containers"`
	Pools []struct {
		GTIN      string `json:"gtin"`
		Available int    `json:"available"`
		LowWater  int    `json:"low_water"`
		Low       bool   `json:"low"`
	} `json:"pools"`
	Devices       map[string]string `json:"devices"`
	LastSeq       uint64            `json:"last_seq"`
	AckedSeq      uint64            `json:"acked_seq"`
	PendingSync   uint64            `json:"pending_sync"`
	Alarms        []string          `json:"alarms"`
	Challenge     string            `json:"challenge"`
	ConfigHash    string            `json:"config_hash"`
	ConfigPending string            `json:"config_pending"`
	// Container labels and rejects that need a person.
	LabelsPending       []string `json:"labels_pending"`
	WaitingForLabel     []string `json:"waiting_for_label"`
	RejectsNotDelivered []struct {
		ID     string `json:"id"`
		Unit   string `json:"unit"`
		Reason string `json:"reason"`
		Case   string `json:"case"`
		Detail string `json:"detail"`
	} `json:"rejects_not_delivered"`
}

func (o *opCtx) printStatus(s *status) {
	if o.json {
		return
	}
	w := o.env.stdout
	fmt.Fprintf(w, "line %s (edge %s): %s (PackML %d)\n", s.Line, s.Edge, s.State, s.PackML)
	if s.Batch != "" {
		fmt.Fprintf(w, "batch %s %s: GTIN %s lot %s %s\n", s.Batch, s.BatchState, s.GTIN, s.Lot, s.Product)
		fmt.Fprintf(w, "  planned %d  commissioned %d  good %d  rejected %d  in flight %d  %.0f units/min\n", s.Planned, s.Commissioned, s.Good, s.Rejected, s.InFlight, s.UnitsPerMin)
		if len(s.Reasons) > 0 {
			keys := make([]string, 0, len(s.Reasons))
			for k := range s.Reasons {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			parts := make([]string, len(keys))
			for i, k := range keys {
				parts[i] = fmt.Sprintf("%s %d", k, s.Reasons[k])
			}
			fmt.Fprintf(w, "  rejected by reason: %s\n", strings.Join(parts, ", "))
		}
		fmt.Fprintf(w, "  cases closed %d  pallets closed %d  samples %d of %d  serials reserved %d\n", s.CasesClosed, s.PalletsClosed, s.Samples, s.SamplesPlanned, s.Reserved)
		for _, c := range s.OpenContainers {
			fmt.Fprintf(w, "  open %s %s: %d of %d\n", c.Level, c.SSCC, c.Fill, c.Capacity)
		}
		if s.Challenge != "" {
			fmt.Fprintf(w, "  challenge: %s\n", s.Challenge)
		}
		for _, sscc := range s.WaitingForLabel {
			fmt.Fprintf(w, "  full, waiting for its label printer: %s\n", sscc)
		}
		for _, sscc := range s.LabelsPending {
			fmt.Fprintf(w, "  SSCC label pending (check the container, then: serialine container label %s --reason ...): %s\n", sscc, sscc)
		}
		for _, r := range s.RejectsNotDelivered {
			where := ""
			if r.Case != "" {
				where = ", look in case " + r.Case
			}
			fmt.Fprintf(w, "  REJECT NOT DELIVERED: %s (%s) may be downstream%s: %s; once removed: serialine reject removed %s --note ...\n", r.ID, r.Reason, where, r.Detail, r.ID)
		}
	} else {
		fmt.Fprintln(w, "no batch open")
	}
	for _, p := range s.Pools {
		low := ""
		if p.Low {
			low = "  LOW"
		}
		fmt.Fprintf(w, "serial pool %s: %d available (low water %d)%s\n", p.GTIN, p.Available, p.LowWater, low)
	}
	names := make([]string, 0, len(s.Devices))
	for n := range s.Devices {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "device %s: %s\n", n, s.Devices[n])
	}
	fmt.Fprintf(w, "records: last seq %d, acknowledged by central %d, sync backlog %d\n", s.LastSeq, s.AckedSeq, s.PendingSync)
	if len(s.Alarms) > 0 {
		fmt.Fprintf(w, "alarms: %s\n", strings.Join(s.Alarms, ", "))
	}
	fmt.Fprintf(w, "config %s", shortHash(s.ConfigHash))
	if s.ConfigPending != "" {
		fmt.Fprintf(w, " (config %s pending until the batch closes)", shortHash(s.ConfigPending))
	}
	fmt.Fprintln(w)
}

func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

func batchTransition(route, what string) operation {
	return operation{
		flags: func(fs *flag.FlagSet, o *opCtx) { fs.StringVar(&o.reason, "reason", "", "reason (recorded)") },
		run: func(o *opCtx) error {
			if err := o.nargs(0, "no arguments"); err != nil {
				return err
			}
			var s status
			if err := o.call("POST", route, route, nil, map[string]string{"reason": o.reason}, nil, &s); err != nil {
				return err
			}
			o.say("batch %s %s", s.Batch, what)
			o.printStatus(&s)
			return nil
		},
	}
}

var operations map[string]operation

// isOperatorCommand: word is the first word of an operator command.
func isOperatorCommand(word string) bool {
	for name := range operations {
		if first, _, _ := strings.Cut(name, " "); first == word {
			return true
		}
	}
	return false
}

func init() {
	operations = map[string]operation{
		"status": {run: func(o *opCtx) error {
			if err := o.nargs(0, "no arguments"); err != nil {
				return err
			}
			var s status
			if err := o.call("GET", "/api/v1/status", "/api/v1/status", nil, nil, nil, &s); err != nil {
				return err
			}
			o.printStatus(&s)
			return nil
		}},
		"batch create": {
			flags: func(fs *flag.FlagSet, o *opCtx) {
				o.str(fs, "gtin", "GTIN-14 of the product")
				o.str(fs, "lot", "lot (the batch id)")
				o.str(fs, "expiry", "expiry date YYMMDD")
				o.str(fs, "planned", "planned quantity (good units)")
			},
			run: func(o *opCtx) error {
				if err := o.need("gtin", "lot", "expiry", "planned"); err != nil {
					return err
				}
				var planned int
				if _, err := fmt.Sscanf(o.get("planned"), "%d", &planned); err != nil || planned <= 0 {
					return usagef("--planned %q: want a positive number", o.get("planned"))
				}
				var out struct {
					Batch string `json:"batch"`
				}
				body := map[string]any{"gtin": o.get("gtin"), "lot": o.get("lot"), "expiry": o.get("expiry"), "planned": planned}
				if err := o.call("POST", "/api/v1/batches", "/api/v1/batches", nil, body, nil, &out); err != nil {
					return err
				}
				o.say("batch %s created: waiting for line clearance", out.Batch)
				return nil
			},
		},
		"batch clearance": {
			signed: "line clearance: the line is clear of material from earlier batches",
			flags:  func(fs *flag.FlagSet, o *opCtx) { o.str(fs, "note", "note recorded with the clearance") },
			run: func(o *opCtx) error {
				sig, err := o.signature("")
				if err != nil {
					return err
				}
				var s status
				if err := o.call("POST", "/api/v1/batch/clearance", "/api/v1/batch/clearance", nil, map[string]any{"note": o.get("note"), "signature": sig}, nil, &s); err != nil {
					return err
				}
				o.say("line clearance of batch %s signed by %s: %s", s.Batch, sig["user"], s.BatchState)
				return nil
			},
		},
		"batch start": {run: func(o *opCtx) error {
			var s status
			if err := o.call("POST", "/api/v1/batch/start", "/api/v1/batch/start", nil, nil, nil, &s); err != nil {
				return err
			}
			o.say("batch %s %s", s.Batch, s.BatchState)
			o.printStatus(&s)
			return nil
		}},
		"batch hold":   batchTransition("/api/v1/batch/hold", "held"),
		"batch resume": batchTransition("/api/v1/batch/resume", "resumed"),
		"batch stop":   batchTransition("/api/v1/batch/stop", "stopped"),
		"batch close": {
			signed: "approval of the batch reconciliation",
			flags: func(fs *flag.FlagSet, o *opCtx) {
				o.str(fs, "loose-reason", "why good units are not in a closed container")
				o.flagBool(fs, "sign", "e-sign the close (a supervisor approving differences; needs --reason)")
				fs.StringVar(&o.reason, "reason", "", "e-signature: reason for approving the differences")
			},
			run: func(o *opCtx) error {
				body := map[string]any{"loose_reason": o.get("loose-reason")}
				if *o.bools["sign"] {
					if o.reason == "" {
						return usagef("--sign needs --reason: why the differences are approved")
					}
					sig, err := o.signature(o.reason)
					if err != nil {
						return err
					}
					body["signature"] = sig
				}
				var rec map[string]int
				if err := o.call("POST", "/api/v1/batch/close", "/api/v1/batch/close", nil, body, nil, &rec); err != nil {
					return err
				}
				o.say("batch closed: allocated %d = commissioned %d + returned unused %d; commissioned = good %d + rejected %d + samples %d + destroyed %d; good = aggregated %d + loose %d",
					rec["allocated"], rec["commissioned"], rec["returned_unused"], rec["good"], rec["rejected"], rec["samples"], rec["destroyed"], rec["aggregated"], rec["loose"])
				return nil
			},
		},
		"container open": {run: func(o *opCtx) error {
			if err := o.nargs(1, "the level: case or pallet"); err != nil {
				return err
			}
			var out struct {
				SSCC string `json:"sscc"`
			}
			if err := o.call("POST", "/api/v1/containers", "/api/v1/containers", nil, map[string]string{"level": o.args[0]}, nil, &out); err != nil {
				return err
			}
			o.say("%s %s opened", o.args[0], out.SSCC)
			return nil
		}},
		"container pack": {run: func(o *opCtx) error {
			if len(o.args) < 2 {
				return usagef("want SSCC CHILD...")
			}
			sscc := o.args[0]
			for _, child := range o.args[1:] {
				if err := o.call("POST", "/api/v1/containers/{sscc}/pack", "/api/v1/containers/"+url.PathEscape(sscc)+"/pack", nil, map[string]string{"child": child}, nil, nil); err != nil {
					return fmt.Errorf("%s: %w", child, err)
				}
				o.say("packed %s into %s", child, sscc)
			}
			return nil
		}},
		"container unpack": {
			signed: "approval of rework",
			flags: func(fs *flag.FlagSet, o *opCtx) {
				fs.StringVar(&o.reason, "reason", "", "why the container is reworked (required)")
			},
			run: func(o *opCtx) error {
				if err := o.nargs(2, "SSCC CHILD"); err != nil {
					return err
				}
				if o.reason == "" {
					return usagef("--reason is required")
				}
				sig, err := o.signature(o.reason)
				if err != nil {
					return err
				}
				body := map[string]any{"child": o.args[1], "reason": o.reason, "signature": sig}
				if err := o.call("POST", "/api/v1/containers/{sscc}/unpack", "/api/v1/containers/"+url.PathEscape(o.args[0])+"/unpack", nil, body, nil, nil); err != nil {
					return err
				}
				o.say("unpacked %s from %s (signed by %s)", o.args[1], o.args[0], sig["user"])
				return nil
			},
		},
		"container close": {
			signed: "approval of a partial container",
			flags: func(fs *flag.FlagSet, o *opCtx) {
				o.flagBool(fs, "partial", "close short of the configured count (e-signed, needs --reason)")
				fs.StringVar(&o.reason, "reason", "", "why the container closes partial")
			},
			run: func(o *opCtx) error {
				if err := o.nargs(1, "SSCC"); err != nil {
					return err
				}
				body := map[string]any{}
				if *o.bools["partial"] {
					if o.reason == "" {
						return usagef("--partial needs --reason")
					}
					sig, err := o.signature(o.reason)
					if err != nil {
						return err
					}
					body["partial"], body["signature"] = true, sig
				}
				if err := o.call("POST", "/api/v1/containers/{sscc}/close", "/api/v1/containers/"+url.PathEscape(o.args[0])+"/close", nil, body, nil, nil); err != nil {
					return err
				}
				o.say("%s closed", o.args[0])
				return nil
			},
		},
		"container show": {run: func(o *opCtx) error {
			if err := o.nargs(1, "SSCC"); err != nil {
				return err
			}
			var c struct {
				SSCC     string   `json:"sscc"`
				Level    string   `json:"level"`
				Batch    string   `json:"batch"`
				Parent   string   `json:"parent"`
				Children []string `json:"children"`
				Closed   bool     `json:"closed"`
				Partial  bool     `json:"partial"`
			}
			if err := o.call("GET", "/api/v1/containers/{sscc}", "/api/v1/containers/"+url.PathEscape(o.args[0]), nil, nil, nil, &c); err != nil {
				return err
			}
			state := "open"
			if c.Closed {
				state = "closed"
				if c.Partial {
					state = "closed (partial)"
				}
			}
			o.say("%s %s of batch %s: %s, %d children", c.Level, c.SSCC, c.Batch, state, len(c.Children))
			if c.Parent != "" {
				o.say("  in %s", c.Parent)
			}
			for _, ch := range c.Children {
				o.say("  %s", ch)
			}
			return nil
		}},
		"container caseread": {
			flags: func(fs *flag.FlagSet, o *opCtx) { o.str(fs, "camera", "case camera name (recorded)") },
			run: func(o *opCtx) error {
				if len(o.args) == 0 {
					return usagef("want the unit codes read in the case")
				}
				codes := make([]string, len(o.args))
				for i, c := range o.args {
					codes[i] = strings.NewReplacer(`\x1d`, "\x1d", "<GS>", "\x1d").Replace(c)
				}
				cam := o.get("camera")
				if cam == "" {
					cam = "cli"
				}
				var out struct {
					SSCC string `json:"sscc"`
				}
				if err := o.call("POST", "/api/v1/caseread", "/api/v1/caseread", nil, map[string]any{"camera": cam, "codes": codes}, nil, &out); err != nil {
					return err
				}
				o.say("case %s packed and closed with %d units", out.SSCC, len(codes))
				return nil
			},
		},
		"container label": {
			signed: "reprint of an SSCC label: the container was checked",
			flags: func(fs *flag.FlagSet, o *opCtx) {
				fs.StringVar(&o.reason, "reason", "", "why the label is reprinted (required)")
			},
			run: func(o *opCtx) error {
				if err := o.nargs(1, "SSCC"); err != nil {
					return err
				}
				if o.reason == "" {
					return usagef("--reason is required")
				}
				sig, err := o.signature(o.reason)
				if err != nil {
					return err
				}
				var c struct {
					SSCC  string `json:"sscc"`
					Level string `json:"level"`
				}
				if err := o.call("POST", "/api/v1/containers/{sscc}/label", "/api/v1/containers/"+url.PathEscape(o.args[0])+"/label", nil, map[string]any{"signature": sig}, nil, &c); err != nil {
					return err
				}
				o.say("%s %s: SSCC label queued for reprint (signed by %s)", c.Level, c.SSCC, sig["user"])
				return nil
			},
		},
		"reject removed": {
			signed: "confirmation that the rejected unit was found and removed from the line",
			flags: func(fs *flag.FlagSet, o *opCtx) {
				o.str(fs, "note", "where the unit was found and what was done with it (required)")
			},
			run: func(o *opCtx) error {
				if err := o.nargs(1, "ID (the serial, unit id or caseread-N named by status)"); err != nil {
					return err
				}
				if err := o.need("note"); err != nil {
					return err
				}
				sig, err := o.signature(o.get("note"))
				if err != nil {
					return err
				}
				var s status
				body := map[string]any{"note": o.get("note"), "signature": sig}
				if err := o.call("POST", "/api/v1/rejects/{id}/removed", "/api/v1/rejects/"+url.PathEscape(o.args[0])+"/removed", nil, body, nil, &s); err != nil {
					return err
				}
				left := len(s.RejectsNotDelivered)
				o.say("removal of %s confirmed (signed by %s); %d rejects not delivered left; batch %s %s", o.args[0], sig["user"], left, s.Batch, s.BatchState)
				return nil
			},
		},
		"unit show": {
			flags: func(fs *flag.FlagSet, o *opCtx) { o.str(fs, "gtin", "GTIN (default: every product of the line)") },
			run: func(o *opCtx) error {
				if err := o.nargs(1, "SERIAL"); err != nil {
					return err
				}
				q := url.Values{}
				if g := o.get("gtin"); g != "" {
					q.Set("gtin", g)
				}
				var u struct {
					ID     string `json:"id"`
					Batch  string `json:"batch"`
					Status string `json:"status"`
					Reason string `json:"reason"`
					Parent string `json:"parent"`
				}
				if err := o.call("GET", "/api/v1/units/{serial}", "/api/v1/units/"+url.PathEscape(o.args[0]), q, nil, nil, &u); err != nil {
					return err
				}
				line := fmt.Sprintf("%s batch %s: %s", u.ID, u.Batch, u.Status)
				if u.Reason != "" {
					line += " (" + u.Reason + ")"
				}
				if u.Parent != "" {
					line += " in " + u.Parent
				}
				o.say("%s", line)
				return nil
			},
		},
		"unit dispose": {
			signed: "approval of the disposition",
			flags: func(fs *flag.FlagSet, o *opCtx) {
				o.str(fs, "disposition", "destroyed, sample or rework")
				fs.StringVar(&o.reason, "reason", "", "reason (required)")
			},
			run: func(o *opCtx) error { return o.disposition("/api/v1/units/{serial}/disposition", "disposition") },
		},
		"unit pull": {
			signed: "approval of taking a good unit out of the flow",
			flags: func(fs *flag.FlagSet, o *opCtx) {
				o.str(fs, "as", "sample or destroyed")
				fs.StringVar(&o.reason, "reason", "", "reason (required)")
			},
			run: func(o *opCtx) error { return o.disposition("/api/v1/units/{serial}/pull", "as") },
		},
		"serials import": {
			flags: func(fs *flag.FlagSet, o *opCtx) {
				o.str(fs, "gtin", "GTIN the serials are for")
				o.str(fs, "format", "csv or json (default: from the file name)")
				o.str(fs, "source", "Level 4 system or file the list came from (recorded; default: the file name)")
			},
			run: func(o *opCtx) error {
				if err := o.nargs(1, "FILE"); err != nil {
					return err
				}
				if err := o.need("gtin"); err != nil {
					return err
				}
				file := o.args[0]
				format := o.get("format")
				if format == "" {
					format = "csv"
					if strings.HasSuffix(strings.ToLower(file), ".json") {
						format = "json"
					}
				}
				source := o.get("source")
				if source == "" {
					source = file
				}
				f, err := os.Open(file)
				if err != nil {
					return err
				}
				defer f.Close()
				var out struct {
					Imported int `json:"imported"`
				}
				q := url.Values{"gtin": {o.get("gtin")}, "format": {format}, "source": {source}}
				if err := o.call("POST", "/api/v1/serials/import", "/api/v1/serials/import", q, nil, bufio.NewReader(f), &out); err != nil {
					return err
				}
				o.say("%d serials imported for GTIN %s from %s", out.Imported, o.get("gtin"), file)
				return nil
			},
		},
		"challenge": {
			flags: func(fs *flag.FlagSet, o *opCtx) {
				o.list(fs, "kind", "challenge kind: wrong_data, no_read or bad_grade (repeatable; default: the configured ones)")
			},
			run: func(o *opCtx) error {
				if err := o.nargs(0, "no arguments"); err != nil {
					return err
				}
				var s status
				if err := o.call("POST", "/api/v1/challenge", "/api/v1/challenge", nil, map[string]any{"kinds": []string(*o.lists["kind"])}, nil, &s); err != nil {
					return err
				}
				o.say("challenge started on batch %s: %s", s.Batch, s.Challenge)
				return nil
			},
		},
		"config reload": {run: func(o *opCtx) error {
			if err := o.nargs(0, "no arguments"); err != nil {
				return err
			}
			var ch struct {
				Status  string `json:"status"`
				Hash    string `json:"hash"`
				Message string `json:"message"`
			}
			if err := o.call("POST", "/api/v1/config/reload", "/api/v1/config/reload", nil, map[string]any{}, nil, &ch); err != nil {
				return err
			}
			o.say("config %s: %s: %s", shortHash(ch.Hash), ch.Status, ch.Message)
			return nil
		}},
	}
	for name, op := range equipmentOperations() {
		operations[name] = op
	}
}

func (o *opCtx) disposition(route, flagName string) error {
	if err := o.nargs(1, "SERIAL"); err != nil {
		return err
	}
	if err := o.need(flagName); err != nil {
		return err
	}
	if o.reason == "" {
		return usagef("--reason is required")
	}
	sig, err := o.signature(o.reason)
	if err != nil {
		return err
	}
	serial := o.args[0]
	path := strings.Replace(route, "{serial}", url.PathEscape(serial), 1)
	body := map[string]any{"disposition": o.get(flagName), "reason": o.reason, "signature": sig}
	if err := o.call("POST", route, path, nil, body, nil, nil); err != nil {
		return err
	}
	o.say("unit %s: %s (signed by %s)", serial, o.get(flagName), sig["user"])
	return nil
}
