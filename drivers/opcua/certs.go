package opcua

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"time"
)

// GenerateCert makes a self-signed RSA-2048 application instance
// certificate (DER) with the application URI OPC UA servers check against
// the client's ApplicationDescription.
func GenerateCert(appURI, name string) (*rsa.PrivateKey, []byte, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, err
	}
	uri, err := url.Parse(appURI)
	if err != nil {
		return nil, nil, fmt.Errorf("application URI %q: %w", appURI, err)
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	tmpl := x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: name, Organization: []string{"Serialine"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(2, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageDataEncipherment | x509.KeyUsageContentCommitment | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, URIs: []*url.URL{uri}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, &tmpl, &key.PublicKey, key)
	return key, der, err
}

// readDER reads a PEM (first block of the given type) or DER file.
func readDER(path, pemType string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return pemOrDER(raw, pemType), nil
}

// pemOrDER returns the first PEM block of pemType, or raw (DER) when there
// is none.
func pemOrDER(raw []byte, pemType string) []byte {
	for rest := raw; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type == pemType || (pemType == "PRIVATE KEY" && b.Type == "RSA PRIVATE KEY") {
			return b.Bytes
		}
	}
	return raw
}

func loadCert(path string) ([]byte, error) {
	der, err := readDER(path, "CERTIFICATE")
	if err != nil {
		return nil, err
	}
	if _, err := x509.ParseCertificate(der); err != nil {
		return nil, fmt.Errorf("%s: not a certificate: %w", path, err)
	}
	return der, nil
}

func loadKeyPair(certPath, keyPath string) (*rsa.PrivateKey, []byte, error) {
	certRaw, err := os.ReadFile(certPath)
	if err != nil {
		return nil, nil, fmt.Errorf("cert_file %w", err)
	}
	keyRaw, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, fmt.Errorf("key_file %w", err)
	}
	return parseKeyPair(certRaw, keyRaw, certPath, keyPath)
}

// parseKeyPair parses a certificate and its RSA key (PEM or DER).
func parseKeyPair(certRaw, keyRaw []byte, certPath, keyPath string) (*rsa.PrivateKey, []byte, error) {
	cert := pemOrDER(certRaw, "CERTIFICATE")
	if _, err := x509.ParseCertificate(cert); err != nil {
		return nil, nil, fmt.Errorf("cert_file %s: not a certificate: %w", certPath, err)
	}
	der := pemOrDER(keyRaw, "PRIVATE KEY")
	var key *rsa.PrivateKey
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		key = k
	} else if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		var ok bool
		if key, ok = k.(*rsa.PrivateKey); !ok {
			return nil, nil, fmt.Errorf("key_file %s: OPC UA security policies need an RSA key, not %T", keyPath, k)
		}
	} else {
		return nil, nil, fmt.Errorf("key_file %s: not a PKCS#1 or PKCS#8 RSA private key", keyPath)
	}
	c, _ := x509.ParseCertificate(cert)
	if pub, ok := c.PublicKey.(*rsa.PublicKey); !ok || !pub.Equal(&key.PublicKey) {
		return nil, nil, fmt.Errorf("key_file %s does not belong to cert_file %s", keyPath, certPath)
	}
	return key, cert, nil
}

// certURI is the application URI in a certificate's subject alt names.
func certURI(der []byte) (string, error) {
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return "", err
	}
	if len(c.URIs) == 0 {
		return "", errors.New("the certificate has no URI subject alternative name (the OPC UA application URI)")
	}
	return c.URIs[0].String(), nil
}

// thumbprint is the SHA-1 thumbprint OPC UA uses to name certificates.
func thumbprint(der []byte) []byte {
	h := sha1.Sum(der)
	return h[:]
}
