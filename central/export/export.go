// Package export writes audit packages: everything central holds about a
// batch, a date range or a product (GTIN), for QA, inspectors and trading
// partners.
//
// A package holds, per table: the batches and their reconciliation, every
// unit with its status and case, the commissioning and verification
// evidence of every unit (printer, camera, decoded data, grade, verdict),
// the containers (the aggregation hierarchy: each unit's case in units, each
// container's parent in containers), rejects and dispositions, the line's
// downtime / maintenance / calibration / fault records during the scope,
// user actions and e-signatures (line records carrying a signature, and
// central's journal records about the scope), shipments, every record in
// full, and a chain-verification report.
//
// Formats:
//
//	csv        a ZIP file: manifest.json, one CSV file per table, and for
//	           each edge records-<edge>.jsonl, the signed records in the
//	           format `serialine verify` checks offline with the edge's key
//	json       one JSON document {"manifest": ..., "<table>": [rows...], ...}
//	html       a printable human-readable summary (counts, reject reasons,
//	           equipment events, signatures, shipments, verification)
//	epcis-2.0  EPCIS 2.0 JSON-LD (package central/epcis)
//	epcis-1.2  EPCIS 1.2 XML with the DSCSA SBDH header (central/epcis)
//
// Exports stream: rows are spooled to temporary files table by table and
// the package is assembled from them, so memory does not grow with the
// number of units; a progress callback reports records and units done
// against the total counted first.
package export

import (
	"archive/zip"
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/serialine/serialine/central/config"
	"github.com/serialine/serialine/central/epcis"
	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/central/trace"
	"github.com/serialine/serialine/sync/record"
)

// Formats.
const (
	FormatCSV     = "csv"
	FormatJSON    = "json"
	FormatHTML    = "html"
	FormatEPCIS2  = "epcis-2.0"
	FormatEPCIS12 = "epcis-1.2"
)

// Formats lists every format.
var Formats = []string{FormatCSV, FormatJSON, FormatHTML, FormatEPCIS2, FormatEPCIS12}

// ValidFormat reports whether f is a known format.
func ValidFormat(f string) bool {
	for _, x := range Formats {
		if x == f {
			return true
		}
	}
	return false
}

// Ext is the file name extension of a format.
func Ext(format string) string {
	switch format {
	case FormatCSV:
		return ".zip"
	case FormatJSON:
		return ".json"
	case FormatHTML:
		return ".html"
	case FormatEPCIS2:
		return ".jsonld"
	case FormatEPCIS12:
		return ".xml"
	}
	return ""
}

// ContentType is the MIME type of a format.
func ContentType(format string) string {
	switch format {
	case FormatCSV:
		return "application/zip"
	case FormatJSON:
		return "application/json"
	case FormatHTML:
		return "text/html; charset=utf-8"
	case FormatEPCIS2:
		return "application/ld+json"
	case FormatEPCIS12:
		return "application/xml"
	}
	return "application/octet-stream"
}

// Scope says what to export: a batch (id or lot), a product (GTIN), a
// date range, or a combination (the date range narrows batches and
// products).
type Scope struct {
	Batch    string    `json:"batch,omitempty"`
	GTIN     string    `json:"gtin,omitempty"`
	Edge     string    `json:"edge,omitempty"`
	From, To time.Time `json:"-"`
}

// MarshalJSON renders the scope with RFC 3339 times.
func (s Scope) MarshalJSON() ([]byte, error) {
	type alias Scope
	v := struct {
		alias
		From string `json:"from,omitempty"`
		To   string `json:"to,omitempty"`
	}{alias: alias(s)}
	if !s.From.IsZero() {
		v.From = s.From.UTC().Format(time.RFC3339Nano)
	}
	if !s.To.IsZero() {
		v.To = s.To.UTC().Format(time.RFC3339Nano)
	}
	return json.Marshal(v)
}

func (s Scope) String() string {
	var p []string
	if s.Batch != "" {
		p = append(p, "batch "+s.Batch)
	}
	if s.GTIN != "" {
		p = append(p, "GTIN "+s.GTIN)
	}
	if s.Edge != "" {
		p = append(p, "edge "+s.Edge)
	}
	if !s.From.IsZero() || !s.To.IsZero() {
		p = append(p, fmt.Sprintf("%s to %s", stamp(s.From), stamp(s.To)))
	}
	return strings.Join(p, ", ")
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "…"
	}
	return t.UTC().Format(time.RFC3339)
}

// Part is one edge's share of a scope: a batch, or a time window.
type Part struct {
	Segment epcis.Segment
	Batch   *store.Batch // nil for a time window without batch
}

// Resolve turns a scope into parts. It fails when nothing matches.
func Resolve(ctx context.Context, st store.Store, s Scope) ([]Part, error) {
	if s.Batch == "" && s.GTIN == "" && s.From.IsZero() && s.To.IsZero() {
		return nil, errors.New("export: give a batch, a GTIN or a date range")
	}
	if !s.From.IsZero() && !s.To.IsZero() && !s.To.After(s.From) {
		return nil, fmt.Errorf("export: date range %s to %s is empty", stamp(s.From), stamp(s.To))
	}
	var parts []Part
	if s.Batch != "" || s.GTIN != "" {
		bs, err := st.Batches(ctx, store.BatchFilter{Edge: s.Edge, ID: s.Batch, GTIN: s.GTIN, From: s.From, To: s.To, Limit: 100000})
		if err != nil {
			return nil, err
		}
		for i := range bs {
			b := bs[i]
			seg := epcis.Segment{Edge: b.Edge, Batch: b.Batch, From: b.StartedAt, To: b.ClosedAt}
			if !s.From.IsZero() && s.From.After(seg.From) {
				seg.From = s.From
			}
			if !s.To.IsZero() && (seg.To.IsZero() || s.To.Before(seg.To)) {
				seg.To = s.To
			}
			parts = append(parts, Part{Segment: seg, Batch: &b})
		}
		if len(parts) == 0 {
			return nil, fmt.Errorf("export: no batch matches %s", s)
		}
		return parts, nil
	}
	edges, err := st.RecordEdges(ctx, s.From, s.To)
	if err != nil {
		return nil, err
	}
	for _, e := range edges {
		if store.IsJournal(e) || (s.Edge != "" && e != s.Edge) {
			continue
		}
		parts = append(parts, Part{Segment: epcis.Segment{Edge: e, From: s.From, To: s.To}})
	}
	if len(parts) == 0 {
		return nil, fmt.Errorf("export: no line recorded anything in %s", s)
	}
	return parts, nil
}

// Progress is reported while an export runs.
type Progress struct {
	Phase string `json:"phase"`
	Done  int64  `json:"done"`
	Total int64  `json:"total"`
}

// Options configure an export.
type Options struct {
	Store store.Store
	GS1   config.GS1
	// Receiver is the EPCIS receiver GLN (see epcis.Options).
	Receiver string
	// By names who asked for the export (manifest).
	By string
	// TempDir holds the spool files (default os.TempDir()).
	TempDir  string
	Now      func() time.Time
	Progress func(Progress)
}

// Verification is the chain check of one edge's records in an export.
type Verification struct {
	Edge  string `json:"edge"`
	Epoch uint32 `json:"epoch"`
	// FromSeq..ToSeq is the range verified (ToSeq may reach past the
	// exported records to the signed checkpoint that covers them).
	FromSeq    uint64 `json:"from_seq"`
	ToSeq      uint64 `json:"to_seq"`
	Records    int64  `json:"records"`
	Signatures int64  `json:"signatures"`
	// KeySHA256 fingerprints the enrolled Ed25519 public key used.
	KeySHA256 string `json:"key_sha256"`
	Verified  bool   `json:"verified"`
	// Error is the first bad record, exactly, when not verified.
	Error string `json:"error,omitempty"`
}

// Statement says in words what was verified.
func (v Verification) Statement() string {
	if !v.Verified {
		return fmt.Sprintf("FAILED: %s epoch %d seq %d..%d: %s", v.Edge, v.Epoch, v.FromSeq, v.ToSeq, v.Error)
	}
	return fmt.Sprintf("%s epoch %d seq %d..%d: %d records, hash chain intact, %d signatures verify with the enrolled key (SHA-256 %s), every record covered by a signature",
		v.Edge, v.Epoch, v.FromSeq, v.ToSeq, v.Records, v.Signatures, v.KeySHA256[:16])
}

// Summary is what an export found (manifest, HTML, CLI).
type Summary struct {
	Scope       Scope            `json:"scope"`
	Format      string           `json:"format"`
	GeneratedAt time.Time        `json:"generated_at"`
	By          string           `json:"by,omitempty"`
	Tables      map[string]int64 `json:"tables,omitempty"`
	Batches     []store.Batch    `json:"-"`
	// Units by status, reject reasons, dispositions.
	UnitStatus   map[string]int64       `json:"unit_status"`
	RejectReason map[string]int64       `json:"reject_reasons"`
	Dispositions map[string]int64       `json:"dispositions"`
	Cases        ContainerCount         `json:"cases"`
	Pallets      ContainerCount         `json:"pallets"`
	Equipment    []trace.EquipmentEvent `json:"-"`
	EquipmentN   int64                  `json:"equipment_events"`
	Signatures   []SignatureRow         `json:"-"`
	SignaturesN  int64                  `json:"signatures"`
	Shipments    []store.Shipment       `json:"-"`
	Verification []Verification         `json:"verification"`
	Records      int64                  `json:"records"`
}

// ContainerCount counts containers.
type ContainerCount struct {
	Total, Closed, Partial, Shipped int64
}

// Verified reports whether every edge's chain verified.
func (s *Summary) Verified() bool {
	for _, v := range s.Verification {
		if !v.Verified {
			return false
		}
	}
	return len(s.Verification) > 0
}

// SignatureRow is one e-signature or user action.
type SignatureRow struct {
	Ref                                   store.Ref
	Time                                  time.Time
	Kind                                  record.Kind
	User, Name, Meaning, SignedAt, Reason string
	Action, Target                        string
}

// Keep at most this many equipment and signature rows in memory for the
// HTML summary (the CSV/JSON tables hold all of them).
const summaryRows = 2000

// Run writes the export of scope in format to w.
func Run(ctx context.Context, opt Options, s Scope, format string, w io.Writer) (*Summary, error) {
	if !ValidFormat(format) {
		return nil, fmt.Errorf("export: unknown format %q (want %s)", format, strings.Join(Formats, ", "))
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.TempDir == "" {
		opt.TempDir = os.TempDir()
	}
	parts, err := Resolve(ctx, opt.Store, s)
	if err != nil {
		return nil, err
	}
	sum := &Summary{Scope: s, Format: format, GeneratedAt: opt.Now().UTC(), By: opt.By, Tables: map[string]int64{},
		UnitStatus: map[string]int64{}, RejectReason: map[string]int64{}, Dispositions: map[string]int64{}}
	for _, p := range parts {
		if p.Batch != nil {
			sum.Batches = append(sum.Batches, *p.Batch)
		}
	}
	if format == FormatEPCIS2 || format == FormatEPCIS12 {
		segs := make([]epcis.Segment, len(parts))
		for i, p := range parts {
			segs[i] = p.Segment
		}
		var total int64
		for _, sg := range segs {
			n, err := opt.Store.CountRecordsIn(ctx, store.RecordFilter{Edge: sg.Edge, From: sg.From, To: sg.To})
			if err != nil {
				return nil, err
			}
			total += n
		}
		eo := epcis.Options{GS1: opt.GS1, Receiver: opt.Receiver, Now: sum.GeneratedAt, Progress: func(n int64) {
			if opt.Progress != nil {
				opt.Progress(Progress{Phase: "events", Done: n, Total: total})
			}
		}}
		var ew epcis.Writer = epcis.NewJSONWriter(w)
		if format == FormatEPCIS12 {
			ew = epcis.NewXMLWriter(w)
		}
		return sum, epcis.Write(ctx, opt.Store, segs, eo, ew)
	}
	x := &exporter{opt: opt, sum: sum, format: format, parts: parts}
	defer x.cleanup()
	if err := x.run(ctx); err != nil {
		return nil, err
	}
	switch format {
	case FormatCSV:
		err = x.writeZip(w)
	case FormatJSON:
		err = x.writeJSON(w)
	case FormatHTML:
		err = WriteHTML(w, sum)
	}
	return sum, err
}

type exporter struct {
	opt    Options
	sum    *Summary
	format string
	parts  []Part
	tables []*table
	byName map[string]*table
	jsonl  []*jsonlFile
	done   int64
	total  int64
	phase  string
}

type jsonlFile struct {
	edge string
	f    *os.File
	bw   *bufio.Writer
	n    int64
	size int64 // bytes written
	keep int64 // bytes to keep (journal: up to the last record in scope)
}

func (j *jsonlFile) write(r *record.Record) error {
	raw, err := json.Marshal(record.Export(r))
	if err != nil {
		return err
	}
	n, err := j.bw.Write(append(raw, '\n'))
	j.size += int64(n)
	j.n++
	return err
}

var tableDefs = []struct {
	name string
	cols []string
}{
	{"batches", []string{"edge", "batch", "line", "gtin", "product", "lot", "expiry", "planned", "state", "started_at", "closed_at", "reconciliation"}},
	{"units", []string{"edge", "batch", "gtin", "serial", "lot", "expiry", "status", "reason", "disposition", "grade", "case", "commissioned_at", "verified_at"}},
	{"evidence", []string{"edge", "epoch", "seq", "time", "kind", "gtin", "serial", "printer", "camera", "data", "grade", "letter", "pass", "reason", "latency_us", "hash"}},
	{"containers", []string{"edge", "batch", "sscc", "level", "parent", "closed", "partial", "count", "closed_at", "shipment"}},
	{"rejects", []string{"edge", "epoch", "seq", "time", "kind", "gtin", "serial", "reason", "disposition", "grade", "camera", "signed_by"}},
	{"equipment", []string{"edge", "epoch", "seq", "time", "kind", "equipment", "class", "body"}},
	{"signatures", []string{"edge", "epoch", "seq", "time", "kind", "user", "name", "meaning", "signed_at", "reason", "action", "target"}},
	{"shipments", []string{"shipment", "shipped_at", "destination_gln", "destination_name", "ship_from", "containers", "reference", "by", "record"}},
	{"records", []string{"edge", "epoch", "seq", "kind", "time", "hash", "prev", "signed", "body"}},
	{"verification", []string{"edge", "epoch", "from_seq", "to_seq", "records", "signatures", "key_sha256", "verified", "error", "statement"}},
}

func (x *exporter) cleanup() {
	for _, t := range x.tables {
		t.close()
	}
	for _, j := range x.jsonl {
		j.f.Close()
		os.Remove(j.f.Name())
	}
}

func (x *exporter) tick(n int64) {
	x.done += n
	if x.opt.Progress != nil && (x.done%1000 < n || x.done == x.total) {
		x.opt.Progress(Progress{Phase: x.phase, Done: x.done, Total: x.total})
	}
}

func (x *exporter) run(ctx context.Context) error {
	x.byName = map[string]*table{}
	for _, d := range tableDefs {
		t, err := newTable(x.opt.TempDir, d.name, d.cols, x.format)
		if err != nil {
			return err
		}
		x.tables = append(x.tables, t)
		x.byName[d.name] = t
	}
	st := x.opt.Store
	// Count first, for progress.
	x.phase = "counting"
	for _, p := range x.parts {
		sg := p.Segment
		n, err := st.CountRecordsIn(ctx, store.RecordFilter{Edge: sg.Edge, From: sg.From, To: sg.To})
		if err != nil {
			return err
		}
		x.total += n
		uf := store.UnitFilter{Edge: sg.Edge, Batch: sg.Batch}
		if sg.Batch == "" {
			uf = store.UnitFilter{Edge: sg.Edge, From: sg.From, To: sg.To}
		}
		if n, err = st.CountUnits(ctx, uf); err != nil {
			return err
		}
		x.total += n
	}
	x.tick(0)
	ships, err := x.shipments(ctx)
	if err != nil {
		return err
	}
	shippedIn := map[string]string{}
	for _, sh := range ships {
		for _, c := range sh.Containers {
			shippedIn[c] = sh.ID
		}
	}
	bt := x.byName["batches"]
	for _, b := range x.sum.Batches {
		if err := bt.row(b.Edge, b.Batch, b.Line, b.GTIN, b.Product, b.Lot, b.Expiry, b.Planned, b.State, b.StartedAt, b.ClosedAt, b.Reconciliation); err != nil {
			return err
		}
	}
	x.phase = "units"
	for _, p := range x.parts {
		if err := x.units(ctx, p); err != nil {
			return err
		}
		if err := x.containers(ctx, p, shippedIn); err != nil {
			return err
		}
	}
	x.phase = "records"
	for _, p := range x.parts {
		if err := x.records(ctx, p); err != nil {
			return err
		}
	}
	x.phase = "journal"
	if err := x.journal(ctx, ships); err != nil {
		return err
	}
	sht := x.byName["shipments"]
	for _, sh := range ships {
		if err := sht.row(sh.ID, sh.ShippedAt, sh.Destination.GLN, sh.Destination.Name, sh.ShipFrom, strings.Join(sh.Containers, " "), sh.Reference, sh.By, sh.Record.String()); err != nil {
			return err
		}
	}
	x.sum.Shipments = ships
	vt := x.byName["verification"]
	for _, v := range x.sum.Verification {
		if err := vt.row(v.Edge, v.Epoch, v.FromSeq, v.ToSeq, v.Records, v.Signatures, v.KeySHA256, v.Verified, v.Error, v.Statement()); err != nil {
			return err
		}
	}
	for _, t := range x.tables {
		x.sum.Tables[t.name] = t.rows
		if err := t.finish(); err != nil {
			return err
		}
	}
	for _, j := range x.jsonl {
		if err := j.bw.Flush(); err != nil {
			return err
		}
		if _, err := j.f.Seek(0, io.SeekStart); err != nil {
			return err
		}
	}
	x.phase = "done"
	x.tick(0)
	return nil
}

func (x *exporter) shipments(ctx context.Context) ([]store.Shipment, error) {
	seen := map[string]bool{}
	var out []store.Shipment
	for _, p := range x.parts {
		sg := p.Segment
		f := store.ShipmentFilter{Edge: sg.Edge, Batch: sg.Batch, Limit: 1 << 20}
		if sg.Batch == "" {
			f = store.ShipmentFilter{From: sg.From, To: sg.To, Limit: 1 << 20}
		}
		l, err := x.opt.Store.Shipments(ctx, f)
		if err != nil {
			return nil, err
		}
		for _, sh := range l {
			if !seen[sh.ID] {
				seen[sh.ID] = true
				out = append(out, sh)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].ShippedAt.Before(out[j].ShippedAt) })
	return out, nil
}

func (x *exporter) units(ctx context.Context, p Part) error {
	sg := p.Segment
	uf := store.UnitFilter{Edge: sg.Edge, Batch: sg.Batch}
	if sg.Batch == "" {
		uf = store.UnitFilter{Edge: sg.Edge, From: sg.From, To: sg.To}
	}
	t := x.byName["units"]
	return x.opt.Store.ScanUnits(ctx, uf, func(u store.Unit) error {
		x.sum.UnitStatus[u.Status]++
		if u.Disposition != "" {
			x.sum.Dispositions[u.Disposition]++
		}
		x.tick(1)
		return t.row(u.Edge, u.Batch, u.GTIN, u.Serial, u.Lot, u.Expiry, u.Status, u.Reason, u.Disposition, u.Grade, u.Parent, u.CommissionedAt, u.VerifiedAt)
	})
}

func (x *exporter) containers(ctx context.Context, p Part, shippedIn map[string]string) error {
	var batches []string
	if p.Batch != nil {
		batches = []string{p.Batch.Batch}
	} else {
		bs, err := x.opt.Store.Batches(ctx, store.BatchFilter{Edge: p.Segment.Edge, From: p.Segment.From, To: p.Segment.To, Limit: 100000})
		if err != nil {
			return err
		}
		for _, b := range bs {
			batches = append(batches, b.Batch)
		}
	}
	t := x.byName["containers"]
	for _, b := range batches {
		err := x.opt.Store.ScanContainers(ctx, store.ContainerFilter{Edge: p.Segment.Edge, Batch: b}, func(c store.Container) error {
			cc := &x.sum.Cases
			if c.Level == "pallet" {
				cc = &x.sum.Pallets
			}
			cc.Total++
			if c.Closed {
				cc.Closed++
			}
			if c.Partial {
				cc.Partial++
			}
			if shippedIn[c.SSCC] != "" {
				cc.Shipped++
			}
			return t.row(c.Edge, c.Batch, c.SSCC, c.Level, c.Parent, c.Closed, c.Partial, c.Count, c.ClosedAt, shippedIn[c.SSCC])
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func keySHA(pub ed25519.PublicKey) string {
	s := sha256.Sum256(pub)
	return hex.EncodeToString(s[:])
}

// chain verifies one edge's records as they stream by, per epoch.
type chain struct {
	st    store.Store
	edge  string
	pub   ed25519.PublicKey
	v     *record.Verifier
	cur   *Verification
	buf   []record.Record // records since the last signature, for VerifyRun
	out   []Verification
	dirty bool
}

func newChain(ctx context.Context, st store.Store, edge string) (*chain, error) {
	e, err := st.Edge(ctx, edge)
	if err != nil {
		return nil, fmt.Errorf("export: edge %s: %w", edge, err)
	}
	return &chain{st: st, edge: edge, pub: e.PublicKey}, nil
}

const maxBuffer = 20000

func (c *chain) add(ctx context.Context, s store.Stored) {
	r := s.Record
	if c.cur == nil || c.cur.Epoch != r.Epoch {
		c.finish(ctx)
		c.cur = &Verification{Edge: c.edge, Epoch: r.Epoch, FromSeq: r.Seq, KeySHA256: keySHA(c.pub), Verified: true}
		c.v = record.NewVerifier(c.pub, record.Head{})
		c.buf = c.buf[:0]
		c.dirty = false
	}
	if c.cur.Error != "" {
		return
	}
	c.cur.ToSeq = r.Seq
	c.cur.Records++
	h, err := c.v.Add(&r)
	if err == nil && h != s.Hash {
		err = fmt.Errorf("edge %s epoch %d seq %d: the stored hash is not the hash of the stored record", r.Edge, r.Epoch, r.Seq)
	}
	if err != nil {
		c.fail(ctx, r, err)
		return
	}
	if len(r.Sig) > 0 {
		c.cur.Signatures++
		c.buf = c.buf[:0]
	} else if len(c.buf) < maxBuffer {
		c.buf = append(c.buf, r)
	}
	c.dirty = true
}

// fail pins the first bad record down with record.VerifyRun over the run
// from the last good checkpoint to the next one.
func (c *chain) fail(ctx context.Context, r record.Record, err error) {
	c.cur.Verified = false
	c.cur.Error = err.Error()
	run := append(append([]record.Record(nil), c.buf...), r)
	_ = c.st.ScanRecords(ctx, store.RecordFilter{Edge: c.edge, Epoch: r.Epoch, FromSeq: r.Seq + 1, ToSeq: r.Seq + maxBuffer}, func(s store.Stored) error {
		run = append(run, s.Record)
		if len(s.Record.Sig) > 0 {
			return errStop
		}
		return nil
	})
	if _, verr := record.VerifyRun(c.pub, record.Head{}, run); verr != nil {
		c.cur.Error = verr.Error()
	}
}

var errStop = errors.New("stop")

// finish extends the current epoch's check to the signature that covers
// its last records and closes it.
func (c *chain) finish(ctx context.Context) {
	if c.cur == nil {
		return
	}
	if c.cur.Verified {
		if n, first := c.v.Unsigned(); n > 0 {
			err := c.st.ScanRecords(ctx, store.RecordFilter{Edge: c.edge, Epoch: c.cur.Epoch, FromSeq: c.cur.ToSeq + 1, ToSeq: c.cur.ToSeq + maxBuffer}, func(s store.Stored) error {
				c.add(ctx, s)
				if !c.cur.Verified || len(s.Record.Sig) > 0 {
					return errStop
				}
				return nil
			})
			if err != nil && !errors.Is(err, errStop) {
				c.cur.Verified, c.cur.Error = false, err.Error()
			}
			if c.cur.Verified {
				if n, _ := c.v.Unsigned(); n > 0 {
					c.cur.Verified = false
					c.cur.Error = fmt.Sprintf("%d records from seq %d on are not covered by a signature (the edge has not signed them yet)", n, first)
				}
			}
		}
	}
	c.out = append(c.out, *c.cur)
	c.cur = nil
}

func (x *exporter) jsonlFor(edge string) (*jsonlFile, error) {
	if x.format != FormatCSV {
		return nil, nil
	}
	for _, j := range x.jsonl {
		if j.edge == edge {
			return j, nil
		}
	}
	f, err := os.CreateTemp(x.opt.TempDir, "export-records-*")
	if err != nil {
		return nil, err
	}
	j := &jsonlFile{edge: edge, f: f, bw: bufio.NewWriterSize(f, 64<<10)}
	x.jsonl = append(x.jsonl, j)
	return j, nil
}

// record writes one record to the records table (and the offline
// verification file) and to the tables its kind feeds.
func (x *exporter) record(s store.Stored, jl *jsonlFile) error {
	r := &s.Record
	x.sum.Records++
	if err := x.byName["records"].row(r.Edge, r.Epoch, r.Seq, string(r.Kind), r.Time, s.Hash.String(), r.Prev.String(), len(r.Sig) > 0, json.RawMessage(r.Body)); err != nil {
		return err
	}
	if jl != nil {
		if err := jl.write(r); err != nil {
			return err
		}
	}
	ref := store.RefOf(r)
	switch r.Kind {
	case record.KindUnitCommissioned:
		var b record.UnitCommissioned
		_ = json.Unmarshal(r.Body, &b)
		if err := x.byName["evidence"].row(ref.Edge, ref.Epoch, ref.Seq, r.Time, string(r.Kind), b.GTIN, b.Serial, b.Printer, "", b.Data, nil, "", nil, "", nil, s.Hash.String()); err != nil {
			return err
		}
	case record.KindUnitVerified:
		var b record.UnitVerified
		_ = json.Unmarshal(r.Body, &b)
		if err := x.byName["evidence"].row(ref.Edge, ref.Epoch, ref.Seq, r.Time, string(r.Kind), b.GTIN, b.Serial, "", b.Camera, b.Data, b.Grade, b.Letter, b.Pass, b.Reason, b.Latency, s.Hash.String()); err != nil {
			return err
		}
		if !b.Pass {
			x.sum.RejectReason[b.Reason]++
			if err := x.byName["rejects"].row(ref.Edge, ref.Epoch, ref.Seq, r.Time, string(r.Kind), b.GTIN, b.Serial, b.Reason, "", b.Grade, b.Camera, ""); err != nil {
				return err
			}
		}
	case record.KindUnitDecommissioned:
		var b record.UnitDecommissioned
		_ = json.Unmarshal(r.Body, &b)
		if err := x.byName["rejects"].row(ref.Edge, ref.Epoch, ref.Seq, r.Time, string(r.Kind), b.GTIN, b.Serial, b.Reason, b.Disposition, nil, "", ""); err != nil {
			return err
		}
	case record.KindUnitDisposition:
		var b record.UnitDisposition
		_ = json.Unmarshal(r.Body, &b)
		by := ""
		if b.Signature != nil {
			by = b.Signature.User
		}
		if err := x.byName["rejects"].row(ref.Edge, ref.Epoch, ref.Seq, r.Time, string(r.Kind), b.GTIN, b.Serial, b.Reason, b.Disposition, nil, "", by); err != nil {
			return err
		}
	}
	for _, k := range trace.EquipmentKinds {
		if r.Kind == k {
			ev := trace.ReadEquipment(s)
			x.sum.EquipmentN++
			if len(x.sum.Equipment) < summaryRows {
				x.sum.Equipment = append(x.sum.Equipment, ev)
			}
			if err := x.byName["equipment"].row(ref.Edge, ref.Epoch, ref.Seq, r.Time, string(r.Kind), ev.Equipment, ev.Class, json.RawMessage(r.Body)); err != nil {
				return err
			}
		}
	}
	return x.signature(s)
}

// signature writes the e-signature or user action a record carries.
func (x *exporter) signature(s store.Stored) error {
	r := &s.Record
	var b struct {
		Signature *record.Signature `json:"signature"`
		User      string            `json:"user"`
		Name      string            `json:"name"`
		Action    string            `json:"action"`
		Target    string            `json:"target"`
		Reason    string            `json:"reason"`
	}
	if json.Unmarshal(r.Body, &b) != nil {
		return nil
	}
	if b.Signature == nil && r.Kind != record.KindUserAction {
		return nil
	}
	row := SignatureRow{Ref: store.RefOf(r), Time: r.Time, Kind: r.Kind, User: b.User, Name: b.Name, Reason: b.Reason}
	if r.Kind == record.KindUserAction {
		row.Action, row.Target = b.Action, b.Target
	}
	if sg := b.Signature; sg != nil {
		row.User, row.Name, row.Meaning, row.SignedAt = sg.User, sg.Name, sg.Meaning, sg.Time
		if sg.Reason != "" {
			row.Reason = sg.Reason
		}
	}
	x.sum.SignaturesN++
	if len(x.sum.Signatures) < summaryRows {
		x.sum.Signatures = append(x.sum.Signatures, row)
	}
	return x.byName["signatures"].row(row.Ref.Edge, row.Ref.Epoch, row.Ref.Seq, row.Time, string(row.Kind), row.User, row.Name, row.Meaning, row.SignedAt, row.Reason, row.Action, row.Target)
}

func (x *exporter) records(ctx context.Context, p Part) error {
	sg := p.Segment
	c, err := newChain(ctx, x.opt.Store, sg.Edge)
	if err != nil {
		return err
	}
	jl, err := x.jsonlFor(sg.Edge)
	if err != nil {
		return err
	}
	err = x.opt.Store.ScanRecords(ctx, store.RecordFilter{Edge: sg.Edge, From: sg.From, To: sg.To}, func(s store.Stored) error {
		c.add(ctx, s)
		x.tick(1)
		return x.record(s, jl)
	})
	if err != nil {
		return err
	}
	c.finish(ctx)
	x.sum.Verification = append(x.sum.Verification, c.out...)
	return nil
}

// journal exports central's journal records about the scope: the
// shipments of its containers, and user actions whose target is one of its
// batches or lots (or, for a date range, every journal record in it), and
// verifies the journal over the range read.
func (x *exporter) journal(ctx context.Context, ships []store.Shipment) error {
	edges, err := x.opt.Store.Edges(ctx)
	if err != nil {
		return err
	}
	targets := map[string]bool{}
	var from, to time.Time
	dateOnly := true
	for _, p := range x.parts {
		if p.Batch != nil {
			dateOnly = false
			targets[p.Batch.Batch], targets[p.Batch.Lot] = true, true
		}
		if from.IsZero() || p.Segment.From.Before(from) {
			from = p.Segment.From
		}
	}
	if dateOnly {
		to = x.parts[0].Segment.To
	}
	wanted := map[store.Ref]bool{}
	for _, sh := range ships {
		wanted[sh.Record] = true
	}
	for _, e := range edges {
		if !store.IsJournal(e.ID) {
			continue
		}
		c, err := newChain(ctx, x.opt.Store, e.ID)
		if err != nil {
			return err
		}
		jl, err := x.jsonlFor(e.ID)
		if err != nil {
			return err
		}
		// The offline verification file holds the journal's records from
		// the first to the last one in scope, contiguous (a chain with
		// gaps does not verify), so it may include unrelated actions in
		// between; the tables hold only the records in scope.
		inScope := false
		err = x.opt.Store.ScanRecords(ctx, store.RecordFilter{Edge: e.ID, From: from, To: to}, func(s store.Stored) error {
			c.add(ctx, s)
			r := &s.Record
			keep := dateOnly || wanted[store.RefOf(r)]
			if !keep && r.Kind == record.KindUserAction {
				var a record.UserAction
				_ = json.Unmarshal(r.Body, &a)
				keep = targets[a.Target]
			}
			if jl != nil && (inScope || keep) {
				if err := jl.write(r); err != nil {
					return err
				}
				if keep {
					jl.keep = jl.size
				}
			}
			if !keep {
				return nil
			}
			inScope = true
			return x.record(s, nil)
		})
		if err != nil {
			return err
		}
		c.finish(ctx)
		if jl != nil {
			if err := jl.bw.Flush(); err != nil {
				return err
			}
			if err := jl.f.Truncate(jl.keep); err != nil {
				return err
			}
			jl.size = jl.keep
			if _, err := jl.f.Seek(jl.keep, io.SeekStart); err != nil {
				return err
			}
		}
		if inScope {
			x.sum.Verification = append(x.sum.Verification, c.out...)
		}
	}
	return nil
}

func (x *exporter) manifest() ([]byte, error) {
	m := struct {
		Version int `json:"export_version"`
		*Summary
		Statements []string `json:"verification_statements"`
	}{Version: 1, Summary: x.sum}
	for _, v := range x.sum.Verification {
		m.Statements = append(m.Statements, v.Statement())
	}
	return json.MarshalIndent(m, "", "  ")
}

func (x *exporter) writeZip(w io.Writer) error {
	zw := zip.NewWriter(w)
	man, err := x.manifest()
	if err != nil {
		return err
	}
	mod := x.sum.GeneratedAt
	create := func(name string) (io.Writer, error) {
		return zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: mod})
	}
	f, err := create("manifest.json")
	if err != nil {
		return err
	}
	f.Write(append(man, '\n'))
	for _, t := range x.tables {
		f, err := create(t.name + ".csv")
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, t.f); err != nil {
			return err
		}
	}
	for _, j := range x.jsonl {
		if j.size == 0 {
			continue
		}
		f, err := create("records-" + j.edge + ".jsonl")
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, j.f); err != nil {
			return err
		}
	}
	return zw.Close()
}

func (x *exporter) writeJSON(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	man, err := x.manifest()
	if err != nil {
		return err
	}
	bw.WriteString(`{"manifest":`)
	bw.Write(man)
	for _, t := range x.tables {
		fmt.Fprintf(bw, ",\n%q:[\n", t.name)
		if _, err := io.Copy(bw, t.f); err != nil {
			return err
		}
		bw.WriteString("\n]")
	}
	bw.WriteString("}\n")
	return bw.Flush()
}
