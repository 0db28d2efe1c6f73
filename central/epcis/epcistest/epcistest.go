// Package epcistest validates EPCIS documents in tests against GS1's
// official schemas, and checks that the validators reject a broken copy
// (so a validator that passes everything fails the test).
package epcistest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/serialine/serialine/central/epcis"
)

// AssertValid validates an EPCIS 2.0 JSON-LD and an EPCIS 1.2 XML document
// (either may be nil) against schemaPath (EPCIS-JSON-Schema.json) and xsd
// (EPCglobal-epcis-1_2.xsd, with xmllint). Without xmllint the XML check
// skips, unless SERIALINE_REQUIRE_TOOLS=1.
func AssertValid(t *testing.T, schemaPath, xsd string, jsonDoc, xmlDoc []byte) {
	t.Helper()
	if jsonDoc != nil {
		s, err := epcis.CompileSchema(schemaPath)
		if err != nil {
			t.Fatalf("GS1 EPCIS JSON schema: %v", err)
		}
		if err := epcis.ValidateJSON(s, bytes.NewReader(jsonDoc)); err != nil {
			t.Fatalf("EPCIS 2.0 document invalid: %v", err)
		}
		broken := bytes.Replace(jsonDoc, []byte(`"action":"ADD"`), []byte(`"action":"ADDED"`), 1)
		if bytes.Equal(broken, jsonDoc) {
			t.Fatal("no ADD event to break")
		}
		if err := epcis.ValidateJSON(s, bytes.NewReader(broken)); err == nil {
			t.Fatal("the schema accepted an event with action ADDED")
		}
		noTZ := bytes.Replace(jsonDoc, []byte(`"eventTimeZoneOffset":"+00:00",`), nil, 1)
		if err := epcis.ValidateJSON(s, bytes.NewReader(noTZ)); err == nil {
			t.Fatal("the schema accepted an event without eventTimeZoneOffset")
		}
	}
	if xmlDoc == nil {
		return
	}
	if _, err := exec.LookPath("xmllint"); err != nil {
		if os.Getenv("SERIALINE_REQUIRE_TOOLS") == "1" {
			t.Fatal("xmllint required (SERIALINE_REQUIRE_TOOLS=1) but not installed (Debian libxml2-utils)")
		}
		t.Skip("xmllint not installed (Debian libxml2-utils)")
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "doc.xml")
	if err := os.WriteFile(good, xmlDoc, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := epcis.ValidateXML(context.Background(), xsd, good); err != nil {
		t.Fatalf("EPCIS 1.2 document invalid: %v", err)
	}
	bad := filepath.Join(dir, "bad.xml")
	b := bytes.Replace(xmlDoc, []byte("<action>ADD</action>"), []byte("<action>ADD</action><action>ADD</action>"), 1)
	if bytes.Equal(b, xmlDoc) {
		t.Fatal("no ADD event to break")
	}
	os.WriteFile(bad, b, 0o644)
	if err := epcis.ValidateXML(context.Background(), xsd, bad); err == nil {
		t.Fatal("xmllint accepted an event with two actions")
	}
}
