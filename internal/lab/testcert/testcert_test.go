package testcert_test

import (
	"crypto/tls"
	"crypto/x509"
	"testing"

	"github.com/ktlsgo/ktls/internal/lab/testcert"
)

// TestBundles: each bundle's leaf is for localhost and its loopback
// addresses, and its pool verifies it; a large certificate carries its
// padding and verifies itself; a large subject is as large as asked.
func TestBundles(t *testing.T) {
	for name, b := range map[string]*testcert.Bundle{
		"ECDSA": testcert.Get(testcert.ECDSA), "RSA": testcert.Get(testcert.RSA), "Large": testcert.Large(100_000),
	} {
		leaf, err := x509.ParseCertificate(b.Cert.Certificate[0])
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, host := range []string{"localhost", "127.0.0.1", "::1"} {
			if _, err := leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: b.Pool}); err != nil {
				t.Errorf("%s: for %s: %v", name, host, err)
			}
		}
		if _, err := tls.X509KeyPair(b.CertPEM, b.KeyPEM); name != "Large" && err != nil {
			t.Errorf("%s: the PEM files: %v", name, err)
		}
	}
	if n := len(testcert.Large(100_000).Cert.Certificate[0]); n < 100_000 {
		t.Errorf("a certificate with 100,000 bytes of padding has %d bytes", n)
	}
	if n := len(testcert.LargeSubject(1000).RawSubject); n < 1000 {
		t.Errorf("a subject of 1000 bytes has %d", n)
	}
}
