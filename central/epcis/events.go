// Package epcis writes GS1 EPCIS documents from central's stored records:
// EPCIS 2.0 JSON-LD and EPCIS 1.2 XML with the Standard Business Document
// Header and master data that US DSCSA partners expect (GS1 US
// "Applying GS1 Standards for DSCSA and Traceability").
//
// Which record becomes which event (CBV 1.2 / 2.0):
//
//	unit.commissioned              ObjectEvent ADD, commissioning, active; lot and expiry in ILMD
//	unit.decommissioned            ObjectEvent DELETE, decommissioning, inactive
//	                               (destroying, destroyed when the disposition is "destroyed")
//	unit.disposition "destroyed"   ObjectEvent OBSERVE, destroying, destroyed (the serial was
//	                               decommissioned before; the record documents its destruction)
//	container.closed               AggregationEvent ADD, packing, in_progress: the container's
//	                               SSCC and the children packed since it was opened or reopened
//	unpacked                       AggregationEvent DELETE, unpacking
//	shipped (central's journal)    ObjectEvent OBSERVE, shipping, in_transit; source and
//	                               destination (owning party and location) as SGLNs
//
// Other dispositions (sample, rework) and line events have no EPCIS
// counterpart and are left to the audit export. Documents are streamed:
// memory holds the master data and the children of containers still open
// in the record stream, never the units of a batch.
package epcis

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/serialine/serialine/central/config"
	"github.com/serialine/serialine/central/store"
	"github.com/serialine/serialine/sync/record"
)

// Segment is a part of the compliance data a document covers: the records
// of one edge in a time window, optionally only those of one batch.
type Segment struct {
	Edge  string
	Batch string // empty: every record in the window
	// From, To bound the record time (zero: unbounded).
	From, To time.Time
}

// Options configure a document.
type Options struct {
	GS1 config.GS1
	// Receiver is the SBDH receiver GLN. Empty: the single destination of
	// the shipments in scope, else GS1.ReceiverGLN.
	Receiver string
	// InstanceID identifies the document (SBDH InstanceIdentifier);
	// empty: derived from the creation time and the scope.
	InstanceID string
	// Now is the creation time (default time.Now).
	Now time.Time
	// Progress, if set, is called with the number of records read so far.
	Progress func(records int64)
}

// Event is one EPCIS event in the form both writers share.
type Event struct {
	Type        string // ObjectEvent or AggregationEvent
	ID          string // urn:uuid:..., derived from the record
	Time        time.Time
	EPCs        []string // ObjectEvent epcList
	Parent      string   // AggregationEvent parentID
	Children    []string // AggregationEvent childEPCs
	Action      string   // ADD, OBSERVE, DELETE
	BizStep     string   // CBV short name, e.g. commissioning
	Disposition string   // CBV short name, e.g. in_progress
	ReadPoint   string
	BizLocation string
	Lot, Expiry string // ILMD (expiry as YYYY-MM-DD)
	Sources     []SourceDest
	Dests       []SourceDest
	// Ref is the record the event was made from.
	Ref store.Ref
}

// SourceDest is a source or destination (type: owning_party, location).
type SourceDest struct{ Type, ID string }

// Header is what precedes the events.
type Header struct {
	Created             time.Time
	InstanceID          string
	SenderGLN, Receiver string // GLNs
	Sender, ReceiverURI string // SGLN URIs
	Products            []ProductData
	Locations           []LocationData
}

// ProductData is the EPCClass master data of one GTIN.
type ProductData struct {
	ID    string // urn:epc:idpat:sgtin:...
	Attrs []Attr
}

// LocationData is the Location master data of one SGLN.
type LocationData struct {
	ID    string
	Attrs []Attr
}

// Attr is one master data attribute (id: urn:epcglobal:cbv:mda#...).
type Attr struct{ ID, Value string }

const mda = "urn:epcglobal:cbv:mda#"

type gen struct {
	st   store.Store
	opt  Options
	uris URIs
	n    int64
}

func (g *gen) progress() {
	g.n++
	if g.opt.Progress != nil && g.n%500 == 0 {
		g.opt.Progress(g.n)
	}
}

// eventID derives a stable urn:uuid (RFC 9562 version 8, name-based with
// SHA-256) from the record's hash and the event's place among the events
// made from that record.
func eventID(h record.Hash, i int) string {
	sum := sha256.Sum256(append(append([]byte("serialine/epcis/event/v1"), h[:]...), byte(i)))
	sum[6] = sum[6]&0x0f | 0x80
	sum[8] = sum[8]&0x3f | 0x80
	b := sum[:16]
	return fmt.Sprintf("urn:uuid:%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// header collects the master data the scope needs.
func (g *gen) header(ctx context.Context, segs []Segment, ships []store.Shipment) (Header, error) {
	h := Header{Created: g.opt.Now.UTC(), InstanceID: g.opt.InstanceID}
	if g.opt.GS1.GLN == "" {
		return h, errors.New("EPCIS: gs1.gln (the site's GLN: sender, read point, business location) is not configured")
	}
	var err error
	h.SenderGLN = g.opt.GS1.GLN
	if h.Sender, err = g.uris.SGLN(h.SenderGLN, ""); err != nil {
		return h, fmt.Errorf("EPCIS sender: %w", err)
	}
	h.Receiver = g.opt.Receiver
	if h.Receiver == "" {
		dests := map[string]bool{}
		for _, s := range ships {
			dests[s.Destination.GLN] = true
		}
		if len(dests) == 1 {
			for d := range dests {
				h.Receiver = d
			}
		} else {
			h.Receiver = g.opt.GS1.ReceiverGLN
		}
	}
	if h.Receiver == "" {
		return h, errors.New("EPCIS: no receiver GLN: the scope has no single shipment destination and gs1.receiver_gln is not configured (or pass one)")
	}
	if h.ReceiverURI, err = g.uris.SGLN(h.Receiver, ""); err != nil {
		return h, fmt.Errorf("EPCIS receiver: %w", err)
	}
	if h.InstanceID == "" {
		h.InstanceID = fmt.Sprintf("serialine-%s", h.Created.Format("20060102T150405.000000000Z"))
	}
	// Products: every GTIN of the batches in scope.
	seen := map[string]bool{}
	for _, s := range segs {
		bs, err := g.st.Batches(ctx, store.BatchFilter{Edge: s.Edge, ID: s.Batch, From: s.From, To: s.To})
		if err != nil {
			return h, err
		}
		for _, b := range bs {
			if (s.Batch != "" && b.Batch != s.Batch) || b.GTIN == "" || seen[b.GTIN] {
				continue
			}
			seen[b.GTIN] = true
			pd, err := g.product(b)
			if err != nil {
				return h, err
			}
			h.Products = append(h.Products, pd)
		}
	}
	sort.Slice(h.Products, func(i, j int) bool { return h.Products[i].ID < h.Products[j].ID })
	// Locations: the site and every destination.
	locs := map[string]LocationData{}
	site := LocationData{ID: h.Sender}
	if g.opt.GS1.Name != "" {
		site.Attrs = append(site.Attrs, Attr{mda + "name", g.opt.GS1.Name})
	}
	locs[site.ID] = site
	for _, s := range ships {
		id, err := g.uris.SGLN(s.Destination.GLN, "")
		if err != nil {
			return h, fmt.Errorf("shipment %s destination: %w", s.ID, err)
		}
		if _, ok := locs[id]; !ok {
			l := LocationData{ID: id}
			if s.Destination.Name != "" {
				l.Attrs = append(l.Attrs, Attr{mda + "name", s.Destination.Name})
			}
			locs[id] = l
		}
	}
	for _, l := range locs {
		h.Locations = append(h.Locations, l)
	}
	sort.Slice(h.Locations, func(i, j int) bool { return h.Locations[i].ID < h.Locations[j].ID })
	return h, nil
}

func (g *gen) product(b store.Batch) (ProductData, error) {
	id, err := g.uris.SGTINPattern(b.GTIN)
	if err != nil {
		return ProductData{}, fmt.Errorf("batch %s: %w", b.Batch, err)
	}
	pd := ProductData{ID: id}
	p, _ := g.opt.GS1.Product(b.GTIN)
	if p.NDC != "" {
		n11, err := NDC11(p.NDC)
		if err != nil {
			return pd, fmt.Errorf("gs1.products %s: %w", b.GTIN, err)
		}
		pd.Attrs = append(pd.Attrs, Attr{mda + "additionalTradeItemIdentification", n11}, Attr{mda + "additionalTradeItemIdentificationTypeCode", "FDA_NDC_11"})
	}
	name := p.Name
	if name == "" {
		name = b.Product
	}
	add := func(k, v string) {
		if v != "" {
			pd.Attrs = append(pd.Attrs, Attr{mda + k, v})
		}
	}
	add("regulatedProductName", name)
	add("manufacturerOfTradeItemPartyName", p.Manufacturer)
	add("dosageFormType", p.DosageForm)
	add("strengthDescription", p.Strength)
	add("netContentDescription", p.NetContent)
	return pd, nil
}

// shipments returns the shipments in scope, each once, oldest first.
func (g *gen) shipments(ctx context.Context, segs []Segment) ([]store.Shipment, error) {
	seen := map[string]bool{}
	var out []store.Shipment
	for _, s := range segs {
		f := store.ShipmentFilter{Edge: s.Edge, Batch: s.Batch, Limit: 100000}
		if s.Batch == "" {
			f = store.ShipmentFilter{From: s.From, To: s.To, Limit: 100000}
		}
		l, err := g.st.Shipments(ctx, f)
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

var eventKinds = []record.Kind{
	record.KindUnitCommissioned, record.KindUnitDecommissioned, record.KindUnitDisposition,
	record.KindContainerOpened, record.KindContainerReopened, record.KindPacked, record.KindUnpacked, record.KindContainerClosed,
}

// batchOf reads the "batch" field every line record body carries.
func batchOf(body []byte) string {
	var b struct {
		Batch string `json:"batch"`
	}
	_ = json.Unmarshal(body, &b)
	return b.Batch
}

// events streams the events of the segments, then of the shipments.
func (g *gen) events(ctx context.Context, segs []Segment, ships []store.Shipment, emit func(*Event) error) error {
	site, err := g.uris.SGLN(g.opt.GS1.GLN, "")
	if err != nil {
		return err
	}
	for _, s := range segs {
		readPoint := site
		if ext, ok := g.opt.GS1.LineExtension(s.Edge); ok {
			if readPoint, err = g.uris.SGLN(g.opt.GS1.GLN, ext); err != nil {
				return err
			}
		}
		open := map[string][]string{} // containers opened in this stream -> children (EPC URIs)
		err := g.st.ScanRecords(ctx, store.RecordFilter{Edge: s.Edge, From: s.From, To: s.To, Kinds: eventKinds}, func(st store.Stored) error {
			g.progress()
			r := &st.Record
			if s.Batch != "" && batchOf(r.Body) != s.Batch {
				return nil
			}
			ev, err := g.event(r, st.Hash, readPoint, site, open)
			if err != nil {
				return fmt.Errorf("record %s (%s): %w", store.RefOf(r), r.Kind, err)
			}
			if ev == nil {
				return nil
			}
			return emit(ev)
		})
		if err != nil {
			return err
		}
	}
	for _, sh := range ships {
		ev, err := g.shipping(sh, site)
		if err != nil {
			return fmt.Errorf("shipment %s: %w", sh.ID, err)
		}
		if err := emit(ev); err != nil {
			return err
		}
	}
	if g.opt.Progress != nil {
		g.opt.Progress(g.n)
	}
	return nil
}

// child converts a (01)..(21).. or (00).. identifier to its EPC URI.
func (g *gen) child(id string) (string, error) {
	if gtin, serial, ok := store.SplitUnitID(id); ok {
		return g.uris.SGTIN(gtin, serial)
	}
	if sscc, ok := store.ContainerSSCC(id); ok {
		return g.uris.SSCC(sscc)
	}
	return "", fmt.Errorf("child %q is neither (01)GTIN(21)serial nor (00)SSCC", id)
}

func (g *gen) children(ids []string) ([]string, error) {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		c, err := g.child(id)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func (g *gen) event(r *record.Record, h record.Hash, readPoint, site string, open map[string][]string) (*Event, error) {
	ev := &Event{ID: eventID(h, 0), Time: r.Time.UTC(), ReadPoint: readPoint, BizLocation: site, Ref: store.RefOf(r)}
	dec := func(v any) error { return json.Unmarshal(r.Body, v) }
	switch r.Kind {
	case record.KindUnitCommissioned:
		var b record.UnitCommissioned
		if err := dec(&b); err != nil {
			return nil, err
		}
		epc, err := g.uris.SGTIN(b.GTIN, b.Serial)
		if err != nil {
			return nil, err
		}
		ev.Type, ev.EPCs, ev.Action, ev.BizStep, ev.Disposition, ev.Lot = "ObjectEvent", []string{epc}, "ADD", "commissioning", "active", b.Lot
		if b.Expiry != "" {
			if ev.Expiry, err = ExpiryDate(b.Expiry, r.Time); err != nil {
				return nil, err
			}
		}
	case record.KindUnitDecommissioned:
		var b record.UnitDecommissioned
		if err := dec(&b); err != nil {
			return nil, err
		}
		epc, err := g.uris.SGTIN(b.GTIN, b.Serial)
		if err != nil {
			return nil, err
		}
		ev.Type, ev.EPCs, ev.Action, ev.BizStep, ev.Disposition = "ObjectEvent", []string{epc}, "DELETE", "decommissioning", "inactive"
		if b.Disposition == "destroyed" {
			ev.BizStep, ev.Disposition = "destroying", "destroyed"
		}
	case record.KindUnitDisposition:
		var b record.UnitDisposition
		if err := dec(&b); err != nil {
			return nil, err
		}
		if b.Disposition != "destroyed" {
			return nil, nil
		}
		epc, err := g.uris.SGTIN(b.GTIN, b.Serial)
		if err != nil {
			return nil, err
		}
		ev.Type, ev.EPCs, ev.Action, ev.BizStep, ev.Disposition = "ObjectEvent", []string{epc}, "OBSERVE", "destroying", "destroyed"
	case record.KindContainerOpened, record.KindContainerReopened:
		var b record.ContainerOpened
		if err := dec(&b); err != nil {
			return nil, err
		}
		open[b.SSCC] = []string{}
		return nil, nil
	case record.KindPacked:
		var b record.Packed
		if err := dec(&b); err != nil {
			return nil, err
		}
		if _, ok := open[b.Parent]; ok {
			cs, err := g.children(b.Children)
			if err != nil {
				return nil, err
			}
			open[b.Parent] = append(open[b.Parent], cs...)
		}
		return nil, nil
	case record.KindUnpacked:
		var b record.Unpacked
		if err := dec(&b); err != nil {
			return nil, err
		}
		parent, err := g.uris.SSCC(b.Parent)
		if err != nil {
			return nil, err
		}
		cs, err := g.children(b.Children)
		if err != nil {
			return nil, err
		}
		if tracked, ok := open[b.Parent]; ok {
			open[b.Parent] = without(tracked, cs)
		}
		ev.Type, ev.Parent, ev.Children, ev.Action, ev.BizStep = "AggregationEvent", parent, cs, "DELETE", "unpacking"
	case record.KindContainerClosed:
		var b record.ContainerClosed
		if err := dec(&b); err != nil {
			return nil, err
		}
		parent, err := g.uris.SSCC(b.SSCC)
		if err != nil {
			return nil, err
		}
		cs, ok := open[b.SSCC]
		if ok {
			delete(open, b.SSCC)
		} else if cs, err = g.children(b.Children); err != nil { // opened before the window
			return nil, err
		}
		if len(cs) == 0 {
			return nil, nil // a reopened container closed with nothing new packed
		}
		ev.Type, ev.Parent, ev.Children, ev.Action, ev.BizStep, ev.Disposition = "AggregationEvent", parent, cs, "ADD", "packing", "in_progress"
	default:
		return nil, nil
	}
	return ev, nil
}

func without(list, remove []string) []string {
	rm := map[string]bool{}
	for _, r := range remove {
		rm[r] = true
	}
	out := list[:0]
	for _, x := range list {
		if !rm[x] {
			out = append(out, x)
		}
	}
	return out
}

func (g *gen) shipping(sh store.Shipment, site string) (*Event, error) {
	ev := &Event{Type: "ObjectEvent", ID: eventID(sha256.Sum256([]byte("shipment/"+sh.Record.String())), 0), Time: sh.ShippedAt.UTC(),
		Action: "OBSERVE", BizStep: "shipping", Disposition: "in_transit", ReadPoint: site, BizLocation: site, Ref: sh.Record}
	for _, c := range sh.Containers {
		epc, err := g.uris.SSCC(c)
		if err != nil {
			return nil, err
		}
		ev.EPCs = append(ev.EPCs, epc)
	}
	from := site
	if sh.ShipFrom != "" && sh.ShipFrom != g.opt.GS1.GLN {
		var err error
		if from, err = g.uris.SGLN(sh.ShipFrom, ""); err != nil {
			return nil, fmt.Errorf("ship-from: %w", err)
		}
	}
	to, err := g.uris.SGLN(sh.Destination.GLN, "")
	if err != nil {
		return nil, fmt.Errorf("destination: %w", err)
	}
	ev.Sources = []SourceDest{{"owning_party", from}, {"location", from}}
	ev.Dests = []SourceDest{{"owning_party", to}, {"location", to}}
	return ev, nil
}

// Writer receives a document: the header, then each event, then End.
type Writer interface {
	Begin(h Header) error
	Event(e *Event) error
	End() error
}

// Write builds the document of the segments into w.
func Write(ctx context.Context, st store.Store, segs []Segment, opt Options, w Writer) error {
	if opt.Now.IsZero() {
		opt.Now = time.Now()
	}
	g := &gen{st: st, opt: opt, uris: URIs{GS1: &opt.GS1}}
	ships, err := g.shipments(ctx, segs)
	if err != nil {
		return err
	}
	h, err := g.header(ctx, segs, ships)
	if err != nil {
		return err
	}
	if err := w.Begin(h); err != nil {
		return err
	}
	if err := g.events(ctx, segs, ships, w.Event); err != nil {
		return err
	}
	return w.End()
}
