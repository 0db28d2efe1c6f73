package uaserver_test

import (
	"testing"

	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/ua"
)

// Every request body a client sends is decoded by the library's
// ua.DecodeService on the server's reader goroutine, outside any recover
// of ours: it must never panic, whatever the bytes.
func FuzzDecodeService(f *testing.F) {
	seed := func(typeID uint16, req ua.Request) {
		b, err := ua.Encode(req)
		if err != nil {
			f.Fatal(err)
		}
		tid, _ := ua.NewFourByteExpandedNodeID(0, typeID).Encode()
		f.Add(append(tid, b...))
	}
	hdr := &ua.RequestHeader{AuthenticationToken: ua.NewNumericNodeID(0, 1), AdditionalHeader: ua.NewExtensionObject(nil)}
	seed(id.ReadRequest_Encoding_DefaultBinary, &ua.ReadRequest{RequestHeader: hdr, NodesToRead: []*ua.ReadValueID{{NodeID: ua.NewStringNodeID(1, "a"), AttributeID: 13, DataEncoding: &ua.QualifiedName{}}}})
	v, _ := ua.NewVariant(int32(4))
	seed(id.WriteRequest_Encoding_DefaultBinary, &ua.WriteRequest{RequestHeader: hdr, NodesToWrite: []*ua.WriteValue{{NodeID: ua.NewStringNodeID(1, "a"), AttributeID: 13,
		Value: &ua.DataValue{EncodingMask: ua.DataValueValue, Value: v}}}})
	seed(id.CreateMonitoredItemsRequest_Encoding_DefaultBinary, &ua.CreateMonitoredItemsRequest{RequestHeader: hdr, ItemsToCreate: []*ua.MonitoredItemCreateRequest{
		{ItemToMonitor: &ua.ReadValueID{NodeID: ua.NewNumericNodeID(0, 1), DataEncoding: &ua.QualifiedName{}}, RequestedParameters: &ua.MonitoringParameters{Filter: ua.NewExtensionObject(&ua.DataChangeFilter{})}}}})
	seed(id.ActivateSessionRequest_Encoding_DefaultBinary, &ua.ActivateSessionRequest{RequestHeader: hdr, ClientSignature: &ua.SignatureData{},
		UserIdentityToken: ua.NewExtensionObject(&ua.UserNameIdentityToken{UserName: "u", Password: []byte("p")}), UserTokenSignature: &ua.SignatureData{}})
	f.Add([]byte{0x01, 0x00, 0x77, 0x02, 0xff, 0xff, 0xff, 0x7f})
	f.Fuzz(func(t *testing.T, b []byte) {
		ua.DecodeService(b) // a panic fails the fuzz run
	})
}
