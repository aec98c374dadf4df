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
	"math/big"
	"net"
	"time"
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
	mu.Lock()
	defer mu.Unlock()
	if b, ok := large[padding]; ok {
		return b
	}
	b, err := generateLarge(padding)
	if err != nil {
		panic("testcert: " + err.Error())
	}
	large[padding] = b
	return b
}

func generateLarge(padding int) (*Bundle, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	pad := make([]byte, padding)
	rand.Read(pad)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(3),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		// A self-signed certificate is its own CA.
		IsCA:                  true,
		BasicConstraintsValid: true,
		ExtraExtensions: []pkix.Extension{{
			// 32473 is the enterprise number kept for documentation
			// (RFC 5612): nothing reads this extension.
			Id:    asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 32473, 1},
			Value: pad,
		}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("a certificate with %d bytes of padding: %w", padding, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &Bundle{Cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, Pool: pool}, nil
}
