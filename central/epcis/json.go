package epcis

import (
	"bufio"
	"encoding/json"
	"io"
	"time"
)

// Context is the JSON-LD context of EPCIS 2.0 documents.
const Context = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"

// JSONWriter writes an EPCIS 2.0 JSON-LD document, one event per line.
type JSONWriter struct {
	w     *bufio.Writer
	n     int
	close func() error
}

// NewJSONWriter writes to w.
func NewJSONWriter(w io.Writer) *JSONWriter { return &JSONWriter{w: bufio.NewWriterSize(w, 64<<10)} }

type jsonID struct {
	ID string `json:"id"`
}

type jsonAttr struct {
	ID        string `json:"id"`
	Attribute string `json:"attribute"`
}

type jsonVocabElement struct {
	ID         string     `json:"id"`
	Attributes []jsonAttr `json:"attributes,omitempty"`
}

type jsonVocab struct {
	Type     string             `json:"type"`
	Elements []jsonVocabElement `json:"vocabularyElementList"`
}

type jsonSourceDest struct {
	Type   string `json:"type"`
	Source string `json:"source,omitempty"`
	Dest   string `json:"destination,omitempty"`
}

type jsonEvent struct {
	Type        string            `json:"type"`
	EventTime   string            `json:"eventTime"`
	TZ          string            `json:"eventTimeZoneOffset"`
	EventID     string            `json:"eventID"`
	EPCList     []string          `json:"epcList,omitempty"`
	ParentID    string            `json:"parentID,omitempty"`
	ChildEPCs   []string          `json:"childEPCs,omitempty"`
	Action      string            `json:"action"`
	BizStep     string            `json:"bizStep,omitempty"`
	Disposition string            `json:"disposition,omitempty"`
	ReadPoint   *jsonID           `json:"readPoint,omitempty"`
	BizLocation *jsonID           `json:"bizLocation,omitempty"`
	Sources     []jsonSourceDest  `json:"sourceList,omitempty"`
	Dests       []jsonSourceDest  `json:"destinationList,omitempty"`
	ILMD        map[string]string `json:"ilmd,omitempty"`
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

func vocabs(h Header) []jsonVocab {
	var out []jsonVocab
	conv := func(id string, attrs []Attr) jsonVocabElement {
		e := jsonVocabElement{ID: id}
		for _, a := range attrs {
			e.Attributes = append(e.Attributes, jsonAttr{a.ID, a.Value})
		}
		return e
	}
	if len(h.Products) > 0 {
		v := jsonVocab{Type: "urn:epcglobal:epcis:vtype:EPCClass"}
		for _, p := range h.Products {
			v.Elements = append(v.Elements, conv(p.ID, p.Attrs))
		}
		out = append(out, v)
	}
	if len(h.Locations) > 0 {
		v := jsonVocab{Type: "urn:epcglobal:epcis:vtype:Location"}
		for _, l := range h.Locations {
			v.Elements = append(v.Elements, conv(l.ID, l.Attrs))
		}
		out = append(out, v)
	}
	return out
}

// Begin implements Writer.
func (j *JSONWriter) Begin(h Header) error {
	doc := struct {
		Context    []string `json:"@context"`
		Type       string   `json:"type"`
		Version    string   `json:"schemaVersion"`
		Created    string   `json:"creationDate"`
		InstanceID string   `json:"instanceIdentifier"`
		Sender     string   `json:"sender"`
		Receiver   string   `json:"receiver"`
		Header     struct {
			MasterData struct {
				Vocabs []jsonVocab `json:"vocabularyList"`
			} `json:"epcisMasterData"`
		} `json:"epcisHeader"`
	}{Context: []string{Context}, Type: "EPCISDocument", Version: "2.0", Created: stamp(h.Created), InstanceID: h.InstanceID, Sender: h.Sender, Receiver: h.ReceiverURI}
	doc.Header.MasterData.Vocabs = vocabs(h)
	raw, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	// Reopen the object to append the body.
	j.w.Write(raw[:len(raw)-1])
	_, err = j.w.WriteString(`,"epcisBody":{"eventList":[` + "\n")
	return err
}

func jsonSD(l []SourceDest, source bool) []jsonSourceDest {
	var out []jsonSourceDest
	for _, s := range l {
		x := jsonSourceDest{Type: s.Type}
		if source {
			x.Source = s.ID
		} else {
			x.Dest = s.ID
		}
		out = append(out, x)
	}
	return out
}

// Event implements Writer.
func (j *JSONWriter) Event(e *Event) error {
	je := jsonEvent{Type: e.Type, EventTime: stamp(e.Time), TZ: "+00:00", EventID: e.ID, EPCList: e.EPCs, ParentID: e.Parent,
		Action: e.Action, BizStep: e.BizStep, Disposition: e.Disposition, Sources: jsonSD(e.Sources, true), Dests: jsonSD(e.Dests, false)}
	if e.Type == "AggregationEvent" {
		je.ChildEPCs = e.Children
	}
	if e.ReadPoint != "" {
		je.ReadPoint = &jsonID{e.ReadPoint}
	}
	if e.BizLocation != "" {
		je.BizLocation = &jsonID{e.BizLocation}
	}
	if e.Lot != "" || e.Expiry != "" {
		je.ILMD = map[string]string{}
		if e.Lot != "" {
			je.ILMD["cbvmda:lotNumber"] = e.Lot
		}
		if e.Expiry != "" {
			je.ILMD["cbvmda:itemExpirationDate"] = e.Expiry
		}
	}
	raw, err := json.Marshal(je)
	if err != nil {
		return err
	}
	if j.n > 0 {
		j.w.WriteString(",\n")
	}
	j.n++
	_, err = j.w.Write(raw)
	return err
}

// End implements Writer.
func (j *JSONWriter) End() error {
	j.w.WriteString("\n]}}\n")
	return j.w.Flush()
}
