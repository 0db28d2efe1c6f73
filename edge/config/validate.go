package config

import (
	"fmt"
	"math"
	"net"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/serialine/serialine/sync/gs1"
)

var (
	idRE  = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
	ndcRE = regexp.MustCompile(`^(\d{4}-\d{4}-\d{2}|\d{5}-\d{3}-\d{2}|\d{5}-\d{4}-\d{1}|\d{10})$`)
)

type validator struct {
	l    *Line
	errs []Error
}

func (v *validator) add(path, format string, a ...any) {
	e := Error{File: v.l.File, Path: path, Msg: fmt.Sprintf(format, a...)}
	// The position of the key, or of the nearest enclosing key present.
	for p := path; p != ""; p = parent(p) {
		if at, ok := v.l.pos[p]; ok {
			e.Line, e.Col = at.line, at.col
			break
		}
	}
	v.errs = append(v.errs, e)
}

func parent(p string) string {
	if i := strings.LastIndexAny(p, ".["); i >= 0 {
		return p[:i]
	}
	return ""
}

func hostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port", s)
	}
	if host == "" {
		return fmt.Errorf("%q has no host", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: port %q is not 0-65535", s, port)
	}
	return nil
}

// Validate checks the whole configuration without side effects and reports
// every problem, each at the line of the key concerned.
func (l *Line) Validate() error {
	v := &validator{l: l}
	v.ids()
	v.edge()
	v.central()
	v.company()
	v.products()
	v.batch()
	v.devices()
	v.opcua()
	v.users()
	v.equipment()
	if len(v.errs) > 0 {
		return &Errors{List: v.errs}
	}
	return nil
}

func (v *validator) ids() {
	l := v.l
	if !idRE.MatchString(l.Line.ID) {
		v.add("line.id", "%q: want 1 to 64 letters, digits, '.', '_' or '-'", l.Line.ID)
	}
	if !idRE.MatchString(l.Edge.ID) {
		v.add("edge.id", "%q: want 1 to 64 letters, digits, '.', '_' or '-' (it is used in MQTT topics)", l.Edge.ID)
	}
}

func (v *validator) edge() {
	e := v.l.Edge
	if e.HTTP != "" {
		if err := hostPort(e.HTTP); err != nil {
			v.add("edge.http", "%v", err)
		}
	}
	if e.VerdictTimeout <= 0 {
		v.add("edge.verdict_timeout", "must be positive")
	}
	if e.PrintAhead < 1 || e.PrintAhead > 1000 {
		v.add("edge.print_ahead", "%d: want 1..1000", e.PrintAhead)
	}
	if e.GroupCommit < 1 || e.GroupCommit > 10000 {
		v.add("edge.group_commit", "%d: want 1..10000", e.GroupCommit)
	}
	for i, k := range e.Challenge.AtStart {
		if k != "wrong_data" && k != "no_read" && k != "bad_grade" {
			v.add(fmt.Sprintf("edge.challenge.at_start[%d]", i), "%q: want wrong_data, no_read or bad_grade", k)
		}
	}
	if e.Challenge.Every < 0 {
		v.add("edge.challenge.every", "must not be negative")
	}
	if e.RejectDeadline <= 0 {
		v.add("edge.reject_deadline", "must be positive (how long after its verdict a reject pulse may still reach the PLC)")
	}
}

func (v *validator) central() {
	c := v.l.Central
	u, err := url.Parse(c.Broker)
	switch {
	case err != nil || u.Host == "":
		v.add("central.broker", "%q: want tcp://host:port or ssl://host:port", c.Broker)
	case u.Scheme != "tcp" && u.Scheme != "ssl" && u.Scheme != "tls" && u.Scheme != "mqtts" && u.Scheme != "ws" && u.Scheme != "wss":
		v.add("central.broker", "scheme %q: want tcp, ssl, mqtts, ws or wss", u.Scheme)
	}
	if c.Password != "" && c.PasswordFile != "" {
		v.add("central.password", "give password or password_file, not both")
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		v.add("central.cert_file", "a client certificate needs both cert_file and key_file")
	}
	if c.Envelope < 1 || c.Envelope > 10000 {
		v.add("central.envelope_records", "%d: want 1..10000", c.Envelope)
	}
	if c.ResendAfter <= 0 {
		v.add("central.resend_after", "must be positive")
	}
	if c.OutboxMaxBytes < 1<<20 {
		v.add("central.outbox_max_bytes", "%d: want at least 1 MiB (1048576)", c.OutboxMaxBytes)
	}
	if c.OutboxMaxAge < Duration(time.Minute) {
		v.add("central.outbox_max_age", "%s: want at least 1m", time.Duration(c.OutboxMaxAge))
	}
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func (v *validator) company() {
	c := v.l.Company
	if len(c.GS1Prefix) < 4 || len(c.GS1Prefix) > 12 || !digits(c.GS1Prefix) {
		v.add("company.gs1_prefix", "%q: want the GS1 company prefix, 4 to 12 digits", c.GS1Prefix)
	}
	if c.SSCCExtension < 0 || c.SSCCExtension > 9 {
		v.add("company.sscc_extension", "%d: want one digit 0-9", c.SSCCExtension)
	}
	refDigits := 16 - len(c.GS1Prefix)
	if r := c.SSCCRange; r.First != 0 || r.Last != 0 {
		max := uint64(math.Pow10(refDigits)) - 1
		switch {
		case r.First == 0 || r.Last < r.First:
			v.add("company.sscc_range", "first %d and last %d: want 1 <= first <= last", r.First, r.Last)
		case r.Last > max:
			v.add("company.sscc_range.last", "%d does not fit the %d serial-reference digits left by the %d-digit company prefix (max %d)", r.Last, refDigits, len(c.GS1Prefix), max)
		}
	}
	if c.GLN != "" {
		if len(c.GLN) != 13 || !digits(c.GLN) {
			v.add("company.gln", "%q: want 13 digits", c.GLN)
		} else if err := gs1.VerifyCheckDigit(c.GLN); err != nil {
			v.add("company.gln", "%v", err)
		}
	}
}

func (v *validator) products() {
	ps := v.l.Products
	if len(ps) == 0 {
		v.add("products", "at least one product is required")
	}
	seen := map[string]int{}
	for i, p := range ps {
		at := func(k string) string { return fmt.Sprintf("products[%d].%s", i, k) }
		switch {
		case len(p.GTIN) != 14 || !digits(p.GTIN):
			v.add(at("gtin"), "%q: want a GTIN-14 (14 digits; quote it to keep leading zeros)", p.GTIN)
		default:
			if err := gs1.VerifyCheckDigit(p.GTIN); err != nil {
				v.add(at("gtin"), "GTIN %s: %v", p.GTIN, err)
			}
		}
		if j, dup := seen[p.GTIN]; dup {
			v.add(at("gtin"), "GTIN %s is also products[%d]", p.GTIN, j)
		}
		seen[p.GTIN] = i
		if p.NDC != "" {
			if !ndcRE.MatchString(p.NDC) {
				v.add(at("ndc"), "%q: want an NDC-10 as 4-4-2, 5-3-2 or 5-4-1 (or 10 digits)", p.NDC)
			} else if len(p.GTIN) == 14 && digits(p.GTIN) {
				// A US GTIN carries the NDC-10: indicator, "03", the ten NDC
				// digits, check digit.
				ndc := strings.ReplaceAll(p.NDC, "-", "")
				if p.GTIN[1:13] != "03"+ndc {
					want := p.GTIN[:1] + "03" + ndc
					cd, _ := gs1.CheckDigit(want)
					v.add(at("ndc"), "NDC %s is not the NDC in GTIN %s: that NDC makes GTIN %s%c (indicator %c)", p.NDC, p.GTIN, want, cd, p.GTIN[0])
				}
			}
		}
		if p.Name == "" {
			v.add(at("name"), "the product needs a name")
		}
		if !validGrade(p.MinGrade) {
			v.add(at("min_grade"), "%q: want A, B, C or D, or a number 0.0-4.0", p.MinGrade)
		}
		if n := p.Packaging.UnitsPerCase; n < 1 || n > 100000 {
			v.add(at("packaging.units_per_case"), "%d: want 1..100000", n)
		}
		if n := p.Packaging.CasesPerPallet; n < 1 || n > 10000 {
			v.add(at("packaging.cases_per_pallet"), "%d: want 1..10000", n)
		}
		if n := p.Serials.Length; n < 1 || n > 20 {
			v.add(at("serials.length"), "%d: (21) serials have 1..20 characters", n)
		}
		if a := p.Serials.Alphabet; a != "numeric" && a != "alphanumeric" {
			v.add(at("serials.alphabet"), "%q: want numeric or alphanumeric", a)
		}
		if s := p.Serials.Source; s != "generate" && s != "import" {
			v.add(at("serials.source"), "%q: want generate or import", s)
		}
		if o := p.Serials.OveragePercent; o < 0 || o > 100 {
			v.add(at("serials.overage_percent"), "%d: want 0..100", o)
		}
		if p.Serials.LowWater < 0 {
			v.add(at("serials.low_water"), "must not be negative")
		}
		if a := p.Aggregation; a != "sequential" && a != "automatic" && a != "manual" {
			v.add(at("aggregation"), "%q: want sequential, automatic or manual", a)
		}
		for _, level := range sortedKeys(p.Labels) {
			if level != "unit" && level != "case" && level != "pallet" {
				v.add(at("labels."+level), "level %q: want unit, case or pallet", level)
				continue
			}
			src := p.Labels[level]
			if strings.TrimSpace(src) == "" {
				v.add(at("labels."+level), "the %s label template is empty", level)
			} else if _, err := template.New(level).Option("missingkey=zero").Parse(src); err != nil {
				v.add(at("labels."+level), "the %s label template does not parse: %v", level, err)
			}
		}
		if p.Samples < 0 {
			v.add(at("samples"), "must not be negative")
		}
	}
}

func validGrade(s string) bool {
	switch s {
	case "A", "B", "C", "D", "a", "b", "c", "d":
		return true
	}
	f, err := strconv.ParseFloat(s, 64)
	return err == nil && f >= 0 && f <= 4
}

// serialSpace is the number of distinct serials of a product.
func serialSpace(p Product) float64 {
	n := 10.0
	if p.Serials.Alphabet == "alphanumeric" {
		n = 34
	}
	return math.Pow(n, float64(p.Serials.Length))
}

func (v *validator) batch() {
	b := v.l.Batch
	if b == nil {
		return
	}
	var prod *Product
	for i := range v.l.Products {
		if v.l.Products[i].GTIN == b.GTIN {
			prod = &v.l.Products[i]
		}
	}
	if prod == nil {
		v.add("batch.gtin", "GTIN %q is not one of the configured products", b.GTIN)
	}
	if err := gs1.ValidateValue("10", b.Lot); err != nil {
		v.add("batch.lot", "%q: want 1..20 characters of GS1 CSET 82", b.Lot)
	}
	if len(b.Expiry) != 6 || !digits(b.Expiry) {
		v.add("batch.expiry", "%q: want YYMMDD", b.Expiry)
	} else if err := gs1.ValidateValue("17", b.Expiry); err != nil {
		v.add("batch.expiry", "%v", err)
	}
	if b.Planned <= 0 {
		v.add("batch.planned", "%d: must be positive", b.Planned)
	} else if prod != nil && float64(b.Planned)*10000 > serialSpace(*prod) {
		v.add("batch.planned", "%d units need a serial space of at least %d × 10,000 (DSCSA/EU FMD guess probability < 1/10,000); product %s has %.0f: use longer serials",
			b.Planned, b.Planned, prod.GTIN, serialSpace(*prod))
	}
}

func (v *validator) devices() {
	names := map[string]string{}
	for _, sec := range []struct {
		kind, path, what string
		list             []Device
	}{
		{"printer", "devices.printers", "printer", v.l.Devices.Printers},
		{"camera", "devices.cameras", "camera", v.l.Devices.Cameras},
		{"plc", "devices.plcs", "PLC", v.l.Devices.PLCs},
	} {
		if len(sec.list) == 0 {
			v.add(sec.path, "the line needs at least one %s", sec.what)
		}
		for i, d := range sec.list {
			at := func(k string) string { return fmt.Sprintf("%s[%d].%s", sec.path, i, k) }
			if !idRE.MatchString(d.Name) {
				v.add(at("name"), "%q: want 1 to 64 letters, digits, '.', '_' or '-'", d.Name)
			} else if other, dup := names[d.Name]; dup {
				v.add(at("name"), "device name %q is also used by %s", d.Name, other)
			} else {
				names[d.Name] = fmt.Sprintf("%s[%d]", sec.path, i)
			}
			if _, ok := driverOptions(sec.kind, d.Driver); !ok {
				known := strings.Join(DriverNames(sec.kind), ", ")
				if known == "" {
					known = "none registered"
				}
				v.add(at("driver"), "device %s: unknown %s driver %q (known: %s)", d.Name, sec.what, d.Driver, known)
			}
			if err := hostPort(d.Address); err != nil {
				v.add(at("address"), "device %s: %v", d.Name, err)
			}
			if d.Timeout <= 0 {
				v.add(at("timeout"), "device %s: must be positive", d.Name)
			}
			if sec.kind != "printer" && len(d.Levels) > 0 {
				v.add(at("levels"), "device %s: only printers label packaging levels", d.Name)
			}
		}
	}
	v.printerLevels()
}

// printerLevels checks which printer labels which packaging level: exactly
// one printer prints the units' codes, at most one each level's SSCC labels.
func (v *validator) printerLevels() {
	ps := v.l.Devices.Printers
	if len(ps) == 0 {
		return
	}
	by := map[string]int{}
	for i, d := range ps {
		at := fmt.Sprintf("devices.printers[%d].levels", i)
		if len(d.Levels) == 0 {
			v.add(at, "printer %s labels no packaging level: give levels (unit, case, pallet); only the first printer defaults to [unit]", d.Name)
		}
		seen := map[string]bool{}
		for j, level := range d.Levels {
			lat := fmt.Sprintf("%s[%d]", at, j)
			switch {
			case level != "unit" && level != "case" && level != "pallet":
				v.add(lat, "printer %s: level %q: want unit, case or pallet", d.Name, level)
			case seen[level]:
				v.add(lat, "printer %s lists level %s twice", d.Name, level)
			default:
				if other, dup := by[level]; dup {
					v.add(lat, "printer %s: %s labels are already printed by %s: at most one printer per level", d.Name, level, ps[other].Name)
				} else {
					by[level] = i
				}
			}
			seen[level] = true
		}
	}
	if _, ok := by["unit"]; !ok {
		v.add("devices.printers", "no printer prints the unit labels: exactly one printer needs levels: [unit]")
	}
	for i, p := range v.l.Products {
		for _, level := range sortedKeys(p.Labels) {
			if _, ok := by[level]; !ok && (level == "case" || level == "pallet") {
				v.add(fmt.Sprintf("products[%d].labels.%s", i, level), "no printer labels %ss on this line: add %s to a printer's levels", level, level)
			}
		}
	}
}

func (v *validator) opcua() {
	o := v.l.OPCUA
	if o.Listen != "" {
		if err := hostPort(o.Listen); err != nil {
			v.add("opcua.listen", "%v", err)
		}
	}
	for i, s := range o.Security {
		switch s {
		case "None", "Basic256Sha256-Sign", "Basic256Sha256-SignAndEncrypt":
		default:
			v.add(fmt.Sprintf("opcua.security[%d]", i), "%q: want None, Basic256Sha256-Sign or Basic256Sha256-SignAndEncrypt", s)
		}
	}
}

func (v *validator) users() {
	seen := map[string]bool{}
	for i, u := range v.l.Users {
		at := func(k string) string { return fmt.Sprintf("users[%d].%s", i, k) }
		if !idRE.MatchString(u.ID) {
			v.add(at("id"), "%q: want 1 to 64 letters, digits, '.', '_' or '-'", u.ID)
		}
		if seen[u.ID] {
			v.add(at("id"), "user %q appears twice", u.ID)
		}
		seen[u.ID] = true
		switch u.Role {
		case "operator", "supervisor", "qa", "admin":
		default:
			v.add(at("role"), "%q: want operator, supervisor, qa or admin", u.Role)
		}
		if !strings.HasPrefix(u.PasswordHash, "$2a$") && !strings.HasPrefix(u.PasswordHash, "$2b$") && !strings.HasPrefix(u.PasswordHash, "$2y$") {
			v.add(at("password_hash"), "user %s: want a bcrypt hash ($2a$, $2b$ or $2y$); passwords are never stored in clear", u.ID)
		}
	}
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
