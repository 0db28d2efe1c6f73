package opcua

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/gopcua/opcua/ua"
)

// NodeRef is a node id as written in a line config, in the OPC UA string
// notation (Part 6, 5.3.1.10): an optional namespace, "ns=<index>;" or
// "nsu=<namespace URI>;", then exactly one identifier: "i=<uint32>",
// "s=<string>", "g=<GUID>" or "b=<base64>". Without a namespace it is
// namespace 0.
//
// Prefer nsu=: namespace indexes are positions in the server's namespace
// array and may change when a PLC program or firmware changes; the driver
// resolves URIs against the array on every (re)connect.
type NodeRef struct {
	NamespaceURI string // set for nsu=
	Namespace    uint16 // for ns= (or 0)
	Kind         byte   // 'i', 's', 'g' or 'b'
	ID           string // the identifier text after "x="
}

// Bounds on what a config may hold.
const (
	maxStringID = 4096
	maxURI      = 1024
)

// ParseNodeRef parses a node id. Errors say what is wrong with it.
func ParseNodeRef(s string) (NodeRef, error) {
	var r NodeRef
	if s == "" {
		return r, errors.New("empty node id")
	}
	if !utf8.ValidString(s) {
		return r, errors.New("node id is not valid UTF-8")
	}
	rest := s
	switch {
	case strings.HasPrefix(rest, "nsu="):
		uri, tail, ok := strings.Cut(rest[4:], ";")
		if !ok {
			return r, fmt.Errorf("node id %q: nsu=<URI> must be followed by ;i=, ;s=, ;g= or ;b=", s)
		}
		if uri == "" || len(uri) > maxURI || strings.IndexFunc(uri, unicode.IsSpace) >= 0 || hasControl(uri) {
			return r, fmt.Errorf("node id %q: namespace URI must be 1..%d characters without spaces", s, maxURI)
		}
		r.NamespaceURI, rest = uri, tail
	case strings.HasPrefix(rest, "ns="):
		idx, tail, ok := strings.Cut(rest[3:], ";")
		if !ok {
			return r, fmt.Errorf("node id %q: ns=<index> must be followed by ;i=, ;s=, ;g= or ;b=", s)
		}
		n, err := strconv.ParseUint(idx, 10, 16)
		if err != nil || (len(idx) > 1 && idx[0] == '0') {
			return r, fmt.Errorf("node id %q: namespace index %q: want 0..65535", s, idx)
		}
		r.Namespace, rest = uint16(n), tail
	}
	if len(rest) < 2 || rest[1] != '=' {
		return r, fmt.Errorf("node id %q: want i=<number>, s=<string>, g=<GUID> or b=<base64> (e.g. ns=2;s=Line1.Reject)", s)
	}
	r.Kind, r.ID = rest[0], rest[2:]
	switch r.Kind {
	case 'i':
		if _, err := strconv.ParseUint(r.ID, 10, 32); err != nil || (len(r.ID) > 1 && r.ID[0] == '0') {
			return r, fmt.Errorf("node id %q: numeric identifier %q: want 0..4294967295", s, r.ID)
		}
	case 's':
		if r.ID == "" || len(r.ID) > maxStringID || hasControl(r.ID) {
			return r, fmt.Errorf("node id %q: string identifier must be 1..%d characters without control characters", s, maxStringID)
		}
	case 'g':
		if !isGUID(r.ID) {
			return r, fmt.Errorf("node id %q: GUID identifier %q: want 8-4-4-4-12 hex digits", s, r.ID)
		}
	case 'b':
		b, err := base64.StdEncoding.DecodeString(r.ID)
		if err != nil || len(b) == 0 || len(b) > maxStringID {
			return r, fmt.Errorf("node id %q: opaque identifier %q: want 1..%d bytes of base64", s, r.ID, maxStringID)
		}
	default:
		return r, fmt.Errorf("node id %q: identifier type %q: want i, s, g or b", s, string(r.Kind))
	}
	return r, nil
}

func hasControl(s string) bool { return strings.IndexFunc(s, unicode.IsControl) >= 0 }

func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// String is the node id in the notation ParseNodeRef reads.
func (r NodeRef) String() string {
	id := string(r.Kind) + "=" + r.ID
	switch {
	case r.NamespaceURI != "":
		return "nsu=" + r.NamespaceURI + ";" + id
	case r.Namespace != 0:
		return "ns=" + strconv.Itoa(int(r.Namespace)) + ";" + id
	}
	return id
}

// Resolve builds the node id for a server whose namespace array is
// namespaces (needed for nsu=).
func (r NodeRef) Resolve(namespaces []string) (*ua.NodeID, error) {
	ns := r.Namespace
	if r.NamespaceURI != "" {
		found := false
		for i, u := range namespaces {
			if u == r.NamespaceURI && i <= 0xFFFF {
				ns, found = uint16(i), true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("namespace %q is not in the server's namespace array", r.NamespaceURI)
		}
	}
	switch r.Kind {
	case 'i':
		n, _ := strconv.ParseUint(r.ID, 10, 32)
		return ua.NewNumericNodeID(ns, uint32(n)), nil
	case 's':
		return ua.NewStringNodeID(ns, r.ID), nil
	case 'g':
		return ua.NewGUIDNodeID(ns, r.ID), nil
	case 'b':
		b, err := base64.StdEncoding.DecodeString(r.ID)
		if err != nil {
			return nil, err
		}
		return ua.NewByteStringNodeID(ns, b), nil
	}
	return nil, fmt.Errorf("node id %s: unknown identifier type", r)
}
