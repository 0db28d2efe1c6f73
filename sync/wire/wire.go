// Package wire defines what edge and central exchange over MQTT: topic names,
// the record envelope (a run of chained records), acknowledgements, replay
// requests and the edge's live status.
//
// Topics (edge id E):
//
//	serialine/v1/edge/E/records   edge -> central  envelope, QoS 1
//	serialine/v1/edge/E/ack       central -> edge  Ack JSON, QoS 1, retained
//	serialine/v1/edge/E/replay    central -> edge  Replay JSON, QoS 1
//	serialine/v1/edge/E/status    edge -> central  Status JSON, QoS 0, retained
//
// Broker PUBACK is never delivery: the edge prunes its outbox only when an Ack
// (sent by central after its store committed) covers the records.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/serialine/serialine/sync/record"
)

// TopicPrefix is the root of all Serialine topics.
const TopicPrefix = "serialine/v1/edge/"

// Topic builds the topic of an edge for a channel ("records", "ack", "replay", "status").
func Topic(edge, channel string) string { return TopicPrefix + edge + "/" + channel }

// ParseTopic splits a Serialine topic into edge id and channel. Shared
// subscription prefixes ($share/group/) are stripped.
func ParseTopic(topic string) (edge, channel string, ok bool) {
	if !strings.HasPrefix(topic, TopicPrefix) {
		return "", "", false
	}
	rest := topic[len(TopicPrefix):]
	i := strings.IndexByte(rest, '/')
	if i <= 0 || strings.ContainsAny(rest[i+1:], "/+#") {
		return "", "", false
	}
	return rest[:i], rest[i+1:], true
}

// ValidEdgeID reports whether id may be used as an edge id (and thus in a topic).
func ValidEdgeID(id string) error {
	if id == "" || len(id) > 64 {
		return fmt.Errorf("edge id %q: want 1 to 64 characters", id)
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("edge id %q: character %q not allowed (letters, digits, - _ .)", id, r)
		}
	}
	return nil
}

const envMagic = "SLE1"

// MaxEnvelope bounds an envelope's size on the wire.
const MaxEnvelope = 4 << 20

// MaxRecords bounds the number of records in one envelope.
const MaxRecords = 10000

// Errors.
var ErrMalformed = errors.New("malformed envelope")

// EncodeEnvelope encodes a run of records: "SLE1", uvarint count, then per
// record uvarint len | canonical bytes | uvarint len | signature.
func EncodeEnvelope(recs []record.Record) []byte {
	size := 8
	for i := range recs {
		size += len(recs[i].Body) + len(recs[i].Edge) + 128
	}
	b := make([]byte, 0, size)
	b = append(b, envMagic...)
	b = binary.AppendUvarint(b, uint64(len(recs)))
	var tmp []byte
	for i := range recs {
		tmp = recs[i].AppendCanonical(tmp[:0])
		b = binary.AppendUvarint(b, uint64(len(tmp)))
		b = append(b, tmp...)
		b = binary.AppendUvarint(b, uint64(len(recs[i].Sig)))
		b = append(b, recs[i].Sig...)
	}
	return b
}

// AppendRaw appends one already-encoded record (canonical bytes + signature)
// to an envelope under construction; used by the edge outbox, which stores
// records in their canonical form.
func AppendRaw(env []byte, canonical, sig []byte) []byte {
	env = binary.AppendUvarint(env, uint64(len(canonical)))
	env = append(env, canonical...)
	env = binary.AppendUvarint(env, uint64(len(sig)))
	return append(env, sig...)
}

// EnvelopeHeader starts an envelope of n records for AppendRaw.
func EnvelopeHeader(n int) []byte {
	b := make([]byte, 0, 64)
	b = append(b, envMagic...)
	return binary.AppendUvarint(b, uint64(n))
}

// DecodeEnvelope parses an envelope. Every record is decoded and checked for
// well-formedness; chain and signature checks are the receiver's.
func DecodeEnvelope(b []byte) ([]record.Record, error) {
	if len(b) > MaxEnvelope {
		return nil, fmt.Errorf("%w: %d bytes exceeds %d", ErrMalformed, len(b), MaxEnvelope)
	}
	if len(b) < len(envMagic) || string(b[:len(envMagic)]) != envMagic {
		return nil, fmt.Errorf("%w: bad magic", ErrMalformed)
	}
	b = b[len(envMagic):]
	n, k := record.Uvarint(b)
	if k <= 0 || n == 0 || n > MaxRecords {
		return nil, fmt.Errorf("%w: bad record count", ErrMalformed)
	}
	b = b[k:]
	recs := make([]record.Record, 0, min(n, 1024))
	next := func(what string, i uint64, max uint64) ([]byte, error) {
		l, k := record.Uvarint(b)
		if k <= 0 || l > max || l > uint64(len(b)-k) {
			return nil, fmt.Errorf("%w: record %d: bad %s length", ErrMalformed, i, what)
		}
		v := b[k : k+int(l)]
		b = b[k+int(l):]
		return v, nil
	}
	for i := uint64(0); i < n; i++ {
		raw, err := next("record", i, record.MaxBody+1024)
		if err != nil {
			return nil, err
		}
		sig, err := next("signature", i, 64)
		if err != nil {
			return nil, err
		}
		r, err := record.Decode(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: record %d: %v", ErrMalformed, i, err)
		}
		if len(sig) > 0 {
			r.Sig = append([]byte(nil), sig...)
		}
		recs = append(recs, r)
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(b))
	}
	return recs, nil
}

// Ack tells an edge that central durably stored its records up to Seq.
type Ack struct {
	Epoch uint32 `json:"epoch"`
	Seq   uint64 `json:"seq"`
	Hash  string `json:"hash"` // hash of record Seq, hex
}

// Replay asks an edge to resend records From..To (inclusive; To 0 = to the end).
type Replay struct {
	Epoch  uint32 `json:"epoch"`
	From   uint64 `json:"from"`
	To     uint64 `json:"to,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// Status is the edge's live snapshot for the dashboard (not a compliance record).
type Status struct {
	Edge        string            `json:"edge"`
	Line        string            `json:"line"`
	State       string            `json:"state"`
	Batch       string            `json:"batch,omitempty"`
	GTIN        string            `json:"gtin,omitempty"`
	Lot         string            `json:"lot,omitempty"`
	Good        int               `json:"good"`
	Rejected    int               `json:"rejected"`
	Reasons     map[string]int    `json:"reasons,omitempty"`
	CasesClosed int               `json:"cases_closed"`
	PalletsDone int               `json:"pallets_closed"`
	OpenCase    int               `json:"open_case_fill"`
	OpenPallet  int               `json:"open_pallet_fill"`
	LastSeq     uint64            `json:"last_seq"`
	AckedSeq    uint64            `json:"acked_seq"`
	Pending     uint64            `json:"pending_sync"`
	UnitsPerMin float64           `json:"units_per_min"`
	Devices     map[string]string `json:"devices,omitempty"` // device -> "ok" or fault
	Time        string            `json:"time"`
	// Added for the dashboard; an older edge leaves them empty.
	OpenCaseSSCC   string   `json:"open_case,omitempty"`
	OpenPalletSSCC string   `json:"open_pallet,omitempty"`
	Aggregated     int      `json:"aggregated,omitempty"` // good units of the batch in closed cases
	InFlight       int      `json:"in_flight,omitempty"`  // units printed, awaiting a verdict
	Commissioned   int      `json:"commissioned,omitempty"`
	Planned        int      `json:"planned,omitempty"`
	BatchState     string   `json:"batch_state,omitempty"`
	Alarms         []string `json:"alarms,omitempty"`
}
