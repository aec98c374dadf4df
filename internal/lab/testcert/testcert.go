// Package testcert makes certificates for tests: a CA and a leaf for
// localhost and 127.0.0.1, with ECDSA or RSA keys, made once per process.
package testcert

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// A Kind is the key type of a certificate.
type Kind int

const (
	ECDSA Kind = iota
	RSA
)

// A Bundle is a leaf certificate and the pool that trusts it.
type Bundle struct {
	Cert tls.Certificate
	Pool *x509.CertPool
	// CAPEM, CertPEM and KeyPEM are the same, for programs that read
	// files (openssl, curl, nginx).
	CAPEM, CertPEM, KeyPEM []byte
}

var (
	mu    sync.Mutex
	cache = map[Kind]*Bundle{}
)

// Get returns the bundle of the given kind, making it on first use.
func Get(k Kind) *Bundle { return once(cache, k, func() (*Bundle, error) { return generate(k) }) }

// once returns m[k], made by make on first use under mu: each
// certificate is made once per process. It panics if make fails.
func once[K comparable, V any](m map[K]V, k K, make func() (V, error)) V {
	mu.Lock()
	defer mu.Unlock()
	if v, ok := m[k]; ok {
		return v
	}
	v, err := make()
	if err != nil {
		panic("testcert: " + err.Error())
	}
	m[k] = v
	return v
}

// ServerConfig returns a server config with the bundle's certificate.
func (b *Bundle) ServerConfig() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{b.Cert}}
}

// ClientConfig returns a client config that trusts the bundle's CA.
func (b *Bundle) ClientConfig() *tls.Config {
	return &tls.Config{RootCAs: b.Pool, ServerName: "localhost"}
}

func newKey(k Kind) (crypto.Signer, error) {
	if k == RSA {
		return rsa.GenerateKey(rand.Reader, 2048)
	}
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

// template is a certificate template with the serial number and a
// validity from an hour ago for a day; for a leaf, the names localhost,
// 127.0.0.1 and ::1 too.
func template(serial int64, leaf bool) *x509.Certificate {
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour)}
	if leaf {
		tmpl.Subject = pkix.Name{CommonName: "localhost"}
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	}
	return tmpl
}

// create makes the certificate of tmpl for pub, signed by parent's key
// (tmpl and key themselves for a self-signed one), and parses it.
func create(tmpl, parent *x509.Certificate, pub any, key crypto.Signer) (der []byte, cert *x509.Certificate, err error) {
	if der, err = x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key); err != nil {
		return nil, nil, err
	}
	cert, err = x509.ParseCertificate(der)
	return der, cert, err
}

func generate(k Kind) (*Bundle, error) {
	caKey, err := newKey(k)
	if err != nil {
		return nil, err
	}
	ca := template(1, false)
	ca.Subject = pkix.Name{CommonName: "ktls test CA"}
	ca.IsCA, ca.BasicConstraintsValid = true, true
	ca.KeyUsage = x509.KeyUsageCertSign
	caDER, caCert, err := create(ca, ca, caKey.Public(), caKey)
	if err != nil {
		return nil, err
	}
	leafKey, err := newKey(k)
	if err != nil {
		return nil, err
	}
	leaf := template(2, true)
	leaf.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	leaf.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	leafDER, _, err := create(leaf, caCert, leafKey.Public(), caKey)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(leafKey)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return &Bundle{
		Cert:    tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: leafKey},
		Pool:    pool,
		CAPEM:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// WriteFiles writes the certificate and its key to dir as cert.pem and
// key.pem, for a server that reads files (ktls serve and proxy, openssl),
// and returns their paths. It fails t where it can't.
func (b *Bundle) WriteFiles(t testing.TB, dir string) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for name, data := range map[string][]byte{certFile: b.CertPEM, keyFile: b.KeyPEM} {
		if err := os.WriteFile(name, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return certFile, keyFile
}
