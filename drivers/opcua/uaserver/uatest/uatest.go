// Package uatest speaks raw OPC UA binary for tests that must send what no
// well-behaved client sends: it opens a None secure channel by hand and
// then writes message chunks with arbitrary bodies.
package uatest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/ua"
	"github.com/gopcua/opcua/uacp"
	"github.com/gopcua/opcua/uasc"
)

// Raw is a hand-made None secure channel.
type Raw struct {
	c              *uacp.Conn
	channel, token uint32
	seq, req       uint32
}

// Dial does HEL/ACK and OpenSecureChannel (policy None).
func Dial(ctx context.Context, endpoint string) (*Raw, error) {
	c, err := uacp.Dial(ctx, endpoint)
	if err != nil {
		return nil, err
	}
	r := &Raw{c: c, seq: 1, req: 1}
	body, err := Body(id.OpenSecureChannelRequest_Encoding_DefaultBinary, &ua.OpenSecureChannelRequest{
		RequestHeader: &ua.RequestHeader{AuthenticationToken: ua.NewTwoByteNodeID(0), Timestamp: time.Now(), AdditionalHeader: ua.NewExtensionObject(nil)},
		RequestType:   ua.SecurityTokenRequestTypeIssue, SecurityMode: ua.MessageSecurityModeNone, RequestedLifetime: 3600000})
	if err != nil {
		return nil, err
	}
	asym, _ := uasc.NewAsymmetricSecurityHeader(ua.SecurityPolicyURINone, nil, nil).Encode()
	if err := r.chunk("OPN", 0, asym, body); err != nil {
		return nil, err
	}
	b, err := c.Receive()
	if err != nil {
		return nil, fmt.Errorf("OpenSecureChannel answer: %w", err)
	}
	var h uasc.Header
	n, err := h.Decode(b)
	if err != nil {
		return nil, err
	}
	var ah uasc.AsymmetricSecurityHeader
	m, err := ah.Decode(b[n:])
	if err != nil {
		return nil, err
	}
	_, v, err := ua.DecodeService(b[n+m+8:]) // after the sequence header
	if err != nil {
		return nil, err
	}
	resp, ok := v.(*ua.OpenSecureChannelResponse)
	if !ok || resp.SecurityToken == nil {
		return nil, fmt.Errorf("OpenSecureChannel answered %T", v)
	}
	r.channel, r.token = resp.SecurityToken.ChannelID, resp.SecurityToken.TokenID
	return r, nil
}

func (r *Raw) chunk(typ string, channel uint32, secHeader, body []byte) error {
	seq, _ := uasc.NewSequenceHeader(r.seq, r.req).Encode()
	r.seq++
	r.req++
	msg := append(append(secHeader, seq...), body...)
	h := uasc.Header{MessageType: typ, ChunkType: 'F', MessageSize: uint32(12 + len(msg)), SecureChannelID: channel}
	hb, err := h.Encode()
	if err != nil {
		return err
	}
	_, err = r.c.Write(append(hb, msg...))
	return err
}

// Send writes one MSG chunk with a raw service body (type id + encoding).
func (r *Raw) Send(body []byte) error {
	sym, _ := uasc.NewSymmetricSecurityHeader(r.token).Encode()
	return r.chunk("MSG", r.channel, sym, body)
}

// Receive waits for the next message (or the connection's end).
func (r *Raw) Receive(d time.Duration) ([]byte, error) {
	r.c.SetReadDeadline(time.Now().Add(d))
	return r.c.Receive()
}

// Close closes the connection.
func (r *Raw) Close() error { return r.c.Close() }

// Body encodes a service request with its type id, as on the wire.
func Body(typeID uint16, req any) ([]byte, error) {
	tid, err := ua.NewFourByteExpandedNodeID(0, typeID).Encode()
	if err != nil {
		return nil, err
	}
	b, err := ua.Encode(req)
	if err != nil {
		return nil, err
	}
	return append(tid, b...), nil
}

// NegativeVariantArray is a WriteRequest whose value is an Int32 array of
// length -5: gopcua v0.9.0's Variant decoder calls reflect.MakeSlice with
// it and panics on the library's reader goroutine, which no handler
// wrapper can recover.
func NegativeVariantArray(node *ua.NodeID) ([]byte, error) {
	v, err := ua.NewVariant([]int32{0x5e5e5e5e})
	if err != nil {
		return nil, err
	}
	b, err := Body(id.WriteRequest_Encoding_DefaultBinary, &ua.WriteRequest{
		RequestHeader: &ua.RequestHeader{AuthenticationToken: ua.NewNumericNodeID(0, 1), Timestamp: time.Now(), AdditionalHeader: ua.NewExtensionObject(nil)},
		NodesToWrite: []*ua.WriteValue{{NodeID: node, AttributeID: ua.AttributeIDValue,
			Value: &ua.DataValue{EncodingMask: ua.DataValueValue, Value: v}}}})
	if err != nil {
		return nil, err
	}
	// The array: mask 0x86 (Int32 | array), length 1, the element.
	marker := []byte{0x86, 1, 0, 0, 0, 0x5e, 0x5e, 0x5e, 0x5e}
	i := bytes.Index(b, marker)
	if i < 0 {
		return nil, errors.New("variant array not found in the encoding")
	}
	binary.LittleEndian.PutUint32(b[i+1:], uint32(0xFFFFFFFB)) // -5
	return b, nil
}
