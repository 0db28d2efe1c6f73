package epcis

import (
	"bufio"
	"encoding/xml"
	"io"
	"strings"
)

// XMLWriter writes an EPCIS 1.2 XML document with the SBDH header and the
// master data in EPCISHeader/extension/EPCISMasterData, as the GS1 US DSCSA
// guideline shows.
type XMLWriter struct {
	w     *bufio.Writer
	depth int
}

// NewXMLWriter writes to w.
func NewXMLWriter(w io.Writer) *XMLWriter { return &XMLWriter{w: bufio.NewWriterSize(w, 64<<10)} }

func (x *XMLWriter) indent() { x.w.WriteString(strings.Repeat("  ", x.depth)) }

func (x *XMLWriter) open(tag string, attrs ...string) {
	x.indent()
	x.w.WriteString("<" + tag)
	for i := 0; i+1 < len(attrs); i += 2 {
		x.w.WriteString(" " + attrs[i] + `="`)
		xml.EscapeText(x.w, []byte(attrs[i+1]))
		x.w.WriteString(`"`)
	}
	x.w.WriteString(">\n")
	x.depth++
}

func (x *XMLWriter) close(tag string) {
	x.depth--
	x.indent()
	x.w.WriteString("</" + tag + ">\n")
}

func (x *XMLWriter) elem(tag, text string, attrs ...string) {
	x.indent()
	x.w.WriteString("<" + tag)
	for i := 0; i+1 < len(attrs); i += 2 {
		x.w.WriteString(" " + attrs[i] + `="`)
		xml.EscapeText(x.w, []byte(attrs[i+1]))
		x.w.WriteString(`"`)
	}
	x.w.WriteString(">")
	xml.EscapeText(x.w, []byte(text))
	x.w.WriteString("</" + tag + ">\n")
}

// Begin implements Writer.
func (x *XMLWriter) Begin(h Header) error {
	x.w.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	x.open("epcis:EPCISDocument", "xmlns:epcis", "urn:epcglobal:epcis:xsd:1",
		"xmlns:sbdh", "http://www.unece.org/cefact/namespaces/StandardBusinessDocumentHeader",
		"xmlns:cbvmda", "urn:epcglobal:cbv:mda", "schemaVersion", "1.2", "creationDate", stamp(h.Created))
	x.open("EPCISHeader")
	x.open("sbdh:StandardBusinessDocumentHeader")
	x.elem("sbdh:HeaderVersion", "1.0")
	x.open("sbdh:Sender")
	x.elem("sbdh:Identifier", h.Sender, "Authority", "SGLN")
	x.close("sbdh:Sender")
	x.open("sbdh:Receiver")
	x.elem("sbdh:Identifier", h.ReceiverURI, "Authority", "SGLN")
	x.close("sbdh:Receiver")
	x.open("sbdh:DocumentIdentification")
	x.elem("sbdh:Standard", "EPCglobal")
	x.elem("sbdh:TypeVersion", "1.0")
	x.elem("sbdh:InstanceIdentifier", h.InstanceID)
	x.elem("sbdh:Type", "Events")
	x.elem("sbdh:CreationDateAndTime", stamp(h.Created))
	x.close("sbdh:DocumentIdentification")
	x.close("sbdh:StandardBusinessDocumentHeader")
	if len(h.Products)+len(h.Locations) > 0 {
		x.open("extension")
		x.open("EPCISMasterData")
		x.open("VocabularyList")
		vocab := func(typ string, ids []string, attrs [][]Attr) {
			x.open("Vocabulary", "type", typ)
			x.open("VocabularyElementList")
			for i, id := range ids {
				x.open("VocabularyElement", "id", id)
				for _, a := range attrs[i] {
					x.elem("attribute", a.Value, "id", a.ID)
				}
				x.close("VocabularyElement")
			}
			x.close("VocabularyElementList")
			x.close("Vocabulary")
		}
		if len(h.Products) > 0 {
			var ids []string
			var attrs [][]Attr
			for _, p := range h.Products {
				ids, attrs = append(ids, p.ID), append(attrs, p.Attrs)
			}
			vocab("urn:epcglobal:epcis:vtype:EPCClass", ids, attrs)
		}
		if len(h.Locations) > 0 {
			var ids []string
			var attrs [][]Attr
			for _, l := range h.Locations {
				ids, attrs = append(ids, l.ID), append(attrs, l.Attrs)
			}
			vocab("urn:epcglobal:epcis:vtype:Location", ids, attrs)
		}
		x.close("VocabularyList")
		x.close("EPCISMasterData")
		x.close("extension")
	}
	x.close("EPCISHeader")
	x.open("EPCISBody")
	x.open("EventList")
	return nil
}

const (
	bizStepURN = "urn:epcglobal:cbv:bizstep:"
	dispURN    = "urn:epcglobal:cbv:disp:"
	sdtURN     = "urn:epcglobal:cbv:sdt:"
)

// Event implements Writer.
func (x *XMLWriter) Event(e *Event) error {
	x.open(e.Type)
	x.elem("eventTime", stamp(e.Time))
	x.elem("eventTimeZoneOffset", "+00:00")
	x.open("baseExtension")
	x.elem("eventID", e.ID)
	x.close("baseExtension")
	list := func(tag string, ids []string) {
		if len(ids) == 0 {
			x.indent()
			x.w.WriteString("<" + tag + "/>\n")
			return
		}
		x.open(tag)
		for _, id := range ids {
			x.elem("epc", id)
		}
		x.close(tag)
	}
	if e.Type == "AggregationEvent" {
		if e.Parent != "" {
			x.elem("parentID", e.Parent)
		}
		list("childEPCs", e.Children)
	} else {
		list("epcList", e.EPCs)
	}
	x.elem("action", e.Action)
	if e.BizStep != "" {
		x.elem("bizStep", bizStepURN+e.BizStep)
	}
	if e.Disposition != "" {
		x.elem("disposition", dispURN+e.Disposition)
	}
	if e.ReadPoint != "" {
		x.open("readPoint")
		x.elem("id", e.ReadPoint)
		x.close("readPoint")
	}
	if e.BizLocation != "" {
		x.open("bizLocation")
		x.elem("id", e.BizLocation)
		x.close("bizLocation")
	}
	if len(e.Sources)+len(e.Dests) > 0 || e.Lot != "" || e.Expiry != "" {
		x.open("extension")
		if len(e.Sources) > 0 {
			x.open("sourceList")
			for _, s := range e.Sources {
				x.elem("source", s.ID, "type", sdtURN+s.Type)
			}
			x.close("sourceList")
		}
		if len(e.Dests) > 0 {
			x.open("destinationList")
			for _, s := range e.Dests {
				x.elem("destination", s.ID, "type", sdtURN+s.Type)
			}
			x.close("destinationList")
		}
		if e.Type == "ObjectEvent" && (e.Lot != "" || e.Expiry != "") {
			x.open("ilmd")
			if e.Lot != "" {
				x.elem("cbvmda:lotNumber", e.Lot)
			}
			if e.Expiry != "" {
				x.elem("cbvmda:itemExpirationDate", e.Expiry)
			}
			x.close("ilmd")
		}
		x.close("extension")
	}
	x.close(e.Type)
	if x.w.Buffered() > 48<<10 {
		return x.w.Flush()
	}
	return nil
}

// End implements Writer.
func (x *XMLWriter) End() error {
	x.close("EventList")
	x.close("EPCISBody")
	x.close("epcis:EPCISDocument")
	return x.w.Flush()
}
