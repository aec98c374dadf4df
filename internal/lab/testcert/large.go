package testcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"strings"
)

// MaxPadding is the largest padding Large takes whose certificate a Go
// peer still accepts: crypto/tls refuses a Certificate message over 256
// KiB, and with this padding the self-signed certificate is 261,816 bytes.
const MaxPadding = 261_500

var large = map[int]*Bundle{}

// Large returns a self-signed ECDSA P-256 certificate for localhost and
// 127.0.0.1, for a server or a client, that carries padding random bytes
// in a non-critical extension: a way to make a handshake flight of any
// size. Its pool trusts it. Each size is made once per process.
func Large(padding int) *Bundle {
	return once(large, padding, func() (*Bundle, error) { return generateLarge(padding) })
}

func generateLarge(padding int) (*Bundle, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	pad := make([]byte, padding)
	rand.Read(pad)
	tmpl := template(3, true)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	// A self-signed certificate is its own CA.
	tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
	tmpl.ExtraExtensions = []pkix.Extension{{
		// 32473 is the enterprise number kept for documentation
		// (RFC 5612): nothing reads this extension.
		Id:    asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 32473, 1},
		Value: pad,
	}}
	der, cert, err := create(tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("a certificate with %d bytes of padding: %w", padding, err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &Bundle{Cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, Pool: pool}, nil
}

// MaxSubject is about the largest subject size LargeSubject takes whose
// certificate a server can list, with one small one, among the client CAs
// of its CertificateRequest: the list has a 2-byte length, and crypto/tls
// fails the handshake when it overflows (at 66,000 here).
const MaxSubject = 65_400

var subjects = map[int]*x509.Certificate{}

// LargeSubject returns a self-signed certificate whose subject holds n
// bytes: added to a server's ClientCAs, it makes the CertificateRequest,
// which lists their subjects, about that much larger. Each size is made
// once per process.
func LargeSubject(n int) *x509.Certificate {
	return once(subjects, n, func() (*x509.Certificate, error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		tmpl := template(4, false)
		tmpl.Subject = pkix.Name{Organization: []string{strings.Repeat("o", n)}}
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage = x509.KeyUsageCertSign
		_, c, err := create(tmpl, tmpl, key.Public(), key)
		return c, err
	})
}
