package opcua

import (
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
)

func TestParseKeyPair(t *testing.T) {
	key, der, err := GenerateCert("urn:serialine:test", "test")
	if err != nil {
		t.Fatal(err)
	}
	other, _, _ := GenerateCert("urn:serialine:other", "other")
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	pkcs8DER, _ := x509.MarshalPKCS8PrivateKey(key)
	for name, pair := range map[string][2][]byte{"PEM/PKCS#1": {certPEM, pkcs1}, "DER/PKCS#8 DER": {der, pkcs8DER}} {
		k, c, err := parseKeyPair(pair[0], pair[1], "c", "k")
		if err != nil || !k.Equal(key) || string(c) != string(der) {
			t.Errorf("%s: %v", name, err)
		}
	}
	bad := map[string][2][]byte{
		"not a certificate": {[]byte("hello"), pkcs1},
		"not a key":         {certPEM, certPEM},
		"another key":       {certPEM, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(other)})},
	}
	for name, pair := range bad {
		if _, _, err := parseKeyPair(pair[0], pair[1], "edge.crt", "edge.key"); err == nil || !strings.Contains(err.Error(), "edge.") {
			t.Errorf("%s: %v", name, err)
		}
	}
	if uri, err := certURI(der); err != nil || uri != "urn:serialine:test" {
		t.Errorf("certURI %q %v", uri, err)
	}
}

// Certificate and key files come from the config: parsing never panics.
func FuzzParseKeyPair(f *testing.F) {
	key, der, err := GenerateCert("urn:serialine:fuzz", "fuzz")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), x509.MarshalPKCS1PrivateKey(key))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n"), []byte{0x30, 0x82})
	f.Fuzz(func(t *testing.T, cert, k []byte) {
		if key, c, err := parseKeyPair(cert, k, "c", "k"); err == nil && (key == nil || len(c) == 0) {
			t.Fatal("nil key or certificate without an error")
		}
		certURI(cert)
	})
}
