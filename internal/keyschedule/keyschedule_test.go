package keyschedule_test

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"strings"
	"testing"

	"github.com/ktlsgo/ktls/internal/keyschedule"
	"github.com/ktlsgo/ktls/internal/lab/wiretest"
)

// Values from RFC 8448, Section 3 ("Simple 1-RTT Handshake"), which uses
// TLS_AES_128_GCM_SHA256.
const (
	rfc8448ClientHandshakeSecret = `b3 ed db 12 6e 06 7f 35 a7 80 b3 ab f4 5e 2d 8f
		3b 1a 95 07 38 f5 2e 96 00 74 6a 0e 27 a5 5a 21`
	rfc8448ServerHandshakeSecret = `b6 7b 7d 69 0c c1 6c 4e 75 e5 42 13 cb 2d 37 b4
		e9 c9 12 bc de d9 10 5d 42 be fd 59 d3 91 ad 38`
	rfc8448MasterSecret = `18 df 06 84 3d 13 a0 8b f2 a4 49 84 4c 5f 8a 47
		80 01 bc 4d 4c 62 79 84 d5 a4 1d a8 d0 40 29 19`
	// Transcript hash of ClientHello..server Finished.
	rfc8448ServerFinishedHash = `96 08 10 2a 0f 1c cc 6d b6 25 0b 7b 7e 41 7b 1a
		00 0e aa da 3d aa e4 77 7a 76 86 c9 ff 83 df 13`
	// Transcript hash of ClientHello..client Finished.
	rfc8448ClientFinishedHash = `20 91 45 a9 6e e8 e2 a1 22 ff 81 00 47 cc 95 26
		84 65 8d 60 49 e8 64 29 42 6d b8 7c 54 ad 14 3d`
	rfc8448ClientAppSecret = `9e 40 64 6c e7 9a 7f 9d c0 5a f8 88 9b ce 65 52
		87 5a fa 0b 06 df 00 87 f7 92 eb b7 c1 75 04 a5`
	rfc8448ServerAppSecret = `a1 1a f9 f0 55 31 f8 56 ad 47 11 6b 45 a9 50 32
		82 04 b4 f4 4b fb 6b 3a 4b 4f 1f 3f cb 63 16 43`
)

func TestExpandLabelRFC8448(t *testing.T) {
	tests := []struct {
		name    string
		secret  string
		label   string
		context string
		length  int
		want    string
	}{
		{"server handshake key", rfc8448ServerHandshakeSecret, "key", "", 16,
			`3f ce 51 60 09 c2 17 27 d0 f2 e4 e8 6e e4 03 bc`},
		{"server handshake iv", rfc8448ServerHandshakeSecret, "iv", "", 12,
			`5d 31 3e b2 67 12 76 ee 13 00 0b 30`},
		{"server finished key", rfc8448ServerHandshakeSecret, "finished", "", 32,
			`00 8d 3b 66 f8 16 ea 55 9f 96 b5 37 e8 85 c3 1f
			 c0 68 bf 49 2c 65 2f 01 f2 88 a1 d8 cd c1 9f c8`},
		{"client handshake key", rfc8448ClientHandshakeSecret, "key", "", 16,
			`db fa a6 93 d1 76 2c 5b 66 6a f5 d9 50 25 8d 01`},
		{"client handshake iv", rfc8448ClientHandshakeSecret, "iv", "", 12,
			`5b d3 c7 1b 83 6e 0b 76 bb 73 26 5f`},
		{"client finished key", rfc8448ClientHandshakeSecret, "finished", "", 32,
			`b8 0a d0 10 15 fb 2f 0b d6 5f f7 d4 da 5d 6b f8
			 3f 84 82 1d 1f 87 fd c7 d3 c7 5b 5a 7b 42 d9 c4`},
		{"c ap traffic", rfc8448MasterSecret, "c ap traffic", rfc8448ServerFinishedHash, 32,
			rfc8448ClientAppSecret},
		{"s ap traffic", rfc8448MasterSecret, "s ap traffic", rfc8448ServerFinishedHash, 32,
			rfc8448ServerAppSecret},
		{"exp master", rfc8448MasterSecret, "exp master", rfc8448ServerFinishedHash, 32,
			`fe 22 f8 81 17 6e da 18 eb 8f 44 52 9e 67 92 c5
			 0c 9a 3f 89 45 2f 68 d8 ae 31 1b 43 09 d3 cf 50`},
		{"res master", rfc8448MasterSecret, "res master", rfc8448ClientFinishedHash, 32,
			`7d f2 35 f2 03 1d 2a 05 12 87 d0 2b 02 41 b0 bf
			 da f8 6c c8 56 23 1f 2d 5a ba 46 c4 34 ec 19 6c`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := keyschedule.ExpandLabel(crypto.SHA256, wiretest.Unhex(t, tt.secret), tt.label, wiretest.Unhex(t, tt.context), tt.length)
			if want := wiretest.Unhex(t, tt.want); !bytes.Equal(got, want) {
				t.Errorf("ExpandLabel(%q) = %x, want %x", tt.label, got, want)
			}
		})
	}
}

func TestExpandLabelPanics(t *testing.T) {
	secret := make([]byte, 32)
	for name, f := range map[string]func(){
		"empty label":    func() { keyschedule.ExpandLabel(crypto.SHA256, secret, "", nil, 16) },
		"long label":     func() { keyschedule.ExpandLabel(crypto.SHA256, secret, strings.Repeat("a", 250), nil, 16) },
		"long context":   func() { keyschedule.ExpandLabel(crypto.SHA256, secret, "key", make([]byte, 256), 16) },
		"negative":       func() { keyschedule.ExpandLabel(crypto.SHA256, secret, "key", nil, -1) },
		"beyond HKDF":    func() { keyschedule.ExpandLabel(crypto.SHA256, secret, "key", nil, 255*32+1) },
		"beyond uint16":  func() { keyschedule.ExpandLabel(crypto.SHA256, secret, "key", nil, 1<<16) },
		"zeroed secret":  func() { s := mustAppSecret(t, tls.TLS_AES_128_GCM_SHA256, secret); s.Zero(); s.Keys() },
		"zeroed to Next": func() { s := mustAppSecret(t, tls.TLS_AES_128_GCM_SHA256, secret); s.Zero(); s.Next() },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f()
		})
	}
}

func mustAppSecret(t testing.TB, id uint16, secret []byte) *keyschedule.ApplicationSecret {
	t.Helper()
	s, ok := keyschedule.Lookup(tls.VersionTLS13, id)
	if !ok {
		t.Fatalf("Lookup(TLS 1.3, %#04x) failed", id)
	}
	a, err := keyschedule.NewApplicationSecret(s, secret)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestApplicationSecretRFC8448(t *testing.T) {
	tests := []struct {
		name, secret, key, iv string
	}{
		{"client", rfc8448ClientAppSecret,
			`17 42 2d da 59 6e d5 d9 ac d8 90 e3 c6 3f 50 51`,
			`5b 78 92 3d ee 08 57 90 33 e5 23 d9`},
		{"server", rfc8448ServerAppSecret,
			`9f 02 28 3b 6c 9c 07 ef c2 6b b9 f2 ac 92 e3 56`,
			`cf 78 2b 88 dd 83 54 9a ad f1 e9 84`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			secret := wiretest.Unhex(t, tt.secret)
			a := mustAppSecret(t, tls.TLS_AES_128_GCM_SHA256, secret)
			// The stage must own its copy of the secret.
			clear(secret)
			k := a.Keys()
			if want := wiretest.Unhex(t, tt.key); !bytes.Equal(k.Key, want) {
				t.Errorf("key = %x, want %x", k.Key, want)
			}
			if want := wiretest.Unhex(t, tt.iv); !bytes.Equal(k.IV, want) {
				t.Errorf("iv = %x, want %x", k.IV, want)
			}
		})
	}
}

func TestApplicationSecretNext(t *testing.T) {
	// No published vector covers "traffic upd"; TestKeyUpdateInterop checks
	// the result against crypto/tls. Here: Next is ExpandLabel with that
	// label and the hash length, and it does not disturb the receiver.
	for _, id := range []uint16{tls.TLS_AES_128_GCM_SHA256, tls.TLS_AES_256_GCM_SHA384, tls.TLS_CHACHA20_POLY1305_SHA256} {
		s, _ := keyschedule.Lookup(tls.VersionTLS13, id)
		secret := bytes.Repeat([]byte{0x42}, s.Hash.Size())
		a := mustAppSecret(t, id, secret)
		before := a.Keys()
		next := a.Next()
		if after := a.Keys(); !bytes.Equal(before.Key, after.Key) || !bytes.Equal(before.IV, after.IV) {
			t.Errorf("%s: Next modified the receiver", s.Name)
		}
		want := keyschedule.ExpandLabel(s.Hash, secret, "traffic upd", nil, s.Hash.Size())
		wantKeys := keyschedule.TrafficKeys{
			Key: keyschedule.ExpandLabel(s.Hash, want, "key", nil, s.KeyLen),
			IV:  keyschedule.ExpandLabel(s.Hash, want, "iv", nil, 12),
		}
		got := next.Keys()
		if !bytes.Equal(got.Key, wantKeys.Key) || !bytes.Equal(got.IV, wantKeys.IV) {
			t.Errorf("%s: Next().Keys() = %x/%x, want %x/%x", s.Name, got.Key, got.IV, wantKeys.Key, wantKeys.IV)
		}
		if len(got.Key) != s.KeyLen || len(got.IV) != 12 {
			t.Errorf("%s: key/iv lengths %d/%d", s.Name, len(got.Key), len(got.IV))
		}
	}
}

func TestNewApplicationSecretErrors(t *testing.T) {
	aes128, _ := keyschedule.Lookup(tls.VersionTLS13, tls.TLS_AES_128_GCM_SHA256)
	aes256, _ := keyschedule.Lookup(tls.VersionTLS13, tls.TLS_AES_256_GCM_SHA384)
	tls12, _ := keyschedule.Lookup(tls.VersionTLS12, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)
	tests := []struct {
		name   string
		suite  *keyschedule.Suite
		secret []byte
	}{
		{"nil suite", nil, make([]byte, 32)},
		{"TLS 1.2 suite", tls12, make([]byte, 32)},
		{"short", aes128, make([]byte, 31)},
		{"SHA-256 secret for SHA-384 suite", aes256, make([]byte, 32)},
		{"empty", aes128, nil},
	}
	for _, tt := range tests {
		_, err := keyschedule.NewApplicationSecret(tt.suite, tt.secret)
		wantPackageError(t, tt.name, err)
	}
}

// wantPackageError fails the test unless err is an error, and one that
// says it comes from this package.
func wantPackageError(t *testing.T, name string, err error) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error", name)
	} else if !strings.HasPrefix(err.Error(), "keyschedule: ") {
		t.Errorf("%s: error %q lacks the package prefix", name, err)
	}
}

func TestPRF(t *testing.T) {
	// The P_SHA256 and P_SHA384 vectors posted to the IETF TLS mailing list
	// (msg03416) and used by several TLS libraries' test suites.
	tests := []struct {
		name   string
		hash   crypto.Hash
		secret string
		seed   string
		want   string
	}{
		{"SHA-256", crypto.SHA256,
			"9bbe436ba940f017b17652849a71db35",
			"a0ba9f936cda311827a6f796ffd5198c",
			`e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a
			 6b301791e90d35c9c9a46b4e14baf9af0fa022f7077def17abfd3797c0564bab
			 4fbc91666e9def9b97fce34f796789baa48082d122ee42c5a72e5a5110fff701
			 87347b66`},
		{"SHA-384", crypto.SHA384,
			"b80b733d6ceefcdc71566ea48e5567df",
			"cd665cf6a8447dd6ff8b27555edb7465",
			`7b0c18e9ced410ed1804f2cfa34a336a1c14dffb4900bb5fd7942107e81c83cd
			 e9ca0faa60be9fe34f82b1233c9146a0e534cb400fed2700884f9dc236f80edd
			 8bfa961144c9e8d792eca722a7b32fc3d416d473ebc2c5fd4abfdad05d918425
			 9b5bf8cd4d90fa0d31e2dec479e4f1a26066f2eea9a69236a3e52655c9e9aee6
			 91c8f3a26854308d5eaa3be85e0990703d73e56f`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := wiretest.Unhex(t, tt.want)
			got := keyschedule.PRF(tt.hash, wiretest.Unhex(t, tt.secret), "test label", wiretest.Unhex(t, tt.seed), len(want))
			if !bytes.Equal(got, want) {
				t.Fatalf("PRF = %x\nwant  %x", got, want)
			}
			// P_hash is a stream: a shorter output, including one that
			// ends inside a hash block, is a prefix of a longer one.
			for _, n := range []int{0, 1, tt.hash.Size() - 1, tt.hash.Size(), tt.hash.Size() + 1} {
				if got := keyschedule.PRF(tt.hash, wiretest.Unhex(t, tt.secret), "test label", wiretest.Unhex(t, tt.seed), n); !bytes.Equal(got, want[:n]) {
					t.Errorf("PRF(length %d) = %x, want %x", n, got, want[:n])
				}
			}
		})
	}
}

func TestKeyBlock(t *testing.T) {
	master := bytes.Repeat([]byte{1}, 48)
	clientRandom := bytes.Repeat([]byte{2}, 32)
	serverRandom := bytes.Repeat([]byte{3}, 32)
	for _, s := range keyschedule.Suites() {
		if s.Version != tls.VersionTLS12 {
			continue
		}
		client, server, err := keyschedule.KeyBlock(s, master, clientRandom, serverRandom)
		if err != nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
		// The layout, checked against an independent slicing of the PRF
		// output; TestTLS12Interop checks the whole against crypto/tls.
		block := keyschedule.PRF(s.Hash, master, "key expansion", append(append([]byte(nil), serverRandom...), clientRandom...), 2*s.KeyLen+2*s.FixedIVLen)
		k := s.KeyLen
		want := []struct {
			name      string
			got, want []byte
		}{
			{"client key", client.Key, block[:k]},
			{"server key", server.Key, block[k : 2*k]},
			{"client iv", client.IV, block[2*k : 2*k+s.FixedIVLen]},
			{"server iv", server.IV, block[2*k+s.FixedIVLen:]},
		}
		for _, w := range want {
			if !bytes.Equal(w.got, w.want) {
				t.Errorf("%s: %s = %x, want %x", s.Name, w.name, w.got, w.want)
			}
		}
		// Zero must wipe one direction without touching the other.
		client.Zero()
		if !bytes.Equal(client.Key, make([]byte, k)) || !bytes.Equal(client.IV, make([]byte, s.FixedIVLen)) {
			t.Errorf("%s: Zero left key material behind", s.Name)
		}
		if !bytes.Equal(server.Key, block[k:2*k]) {
			t.Errorf("%s: zeroing the client keys changed the server keys", s.Name)
		}
	}
}

func TestKeyBlockErrors(t *testing.T) {
	tls12, _ := keyschedule.Lookup(tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)
	tls13, _ := keyschedule.Lookup(tls.VersionTLS13, tls.TLS_AES_128_GCM_SHA256)
	m, r := make([]byte, 48), make([]byte, 32)
	tests := []struct {
		name                 string
		suite                *keyschedule.Suite
		master, crand, srand []byte
	}{
		{"nil suite", nil, m, r, r},
		{"TLS 1.3 suite", tls13, m, r, r},
		{"short master", tls12, m[:47], r, r},
		{"long master", tls12, append(m, 0), r, r},
		{"short client random", tls12, m, r[:31], r},
		{"short server random", tls12, m, r, r[:31]},
		{"long server random", tls12, m, r, append(r, 0)},
	}
	for _, tt := range tests {
		_, _, err := keyschedule.KeyBlock(tt.suite, tt.master, tt.crand, tt.srand)
		wantPackageError(t, tt.name, err)
	}
}

func TestLookup(t *testing.T) {
	want := []struct {
		version    uint16
		id         uint16
		keyLen     int
		fixedIVLen int
		hash       crypto.Hash
	}{
		{tls.VersionTLS13, tls.TLS_AES_128_GCM_SHA256, 16, 12, crypto.SHA256},
		{tls.VersionTLS13, tls.TLS_AES_256_GCM_SHA384, 32, 12, crypto.SHA384},
		{tls.VersionTLS13, tls.TLS_CHACHA20_POLY1305_SHA256, 32, 12, crypto.SHA256},
		{tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, 16, 4, crypto.SHA256},
		{tls.VersionTLS12, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, 16, 4, crypto.SHA256},
		{tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, 32, 4, crypto.SHA384},
		{tls.VersionTLS12, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, 32, 4, crypto.SHA384},
		{tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, 32, 12, crypto.SHA256},
		{tls.VersionTLS12, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, 32, 12, crypto.SHA256},
		{tls.VersionTLS12, tls.TLS_RSA_WITH_AES_128_GCM_SHA256, 16, 4, crypto.SHA256},
		{tls.VersionTLS12, tls.TLS_RSA_WITH_AES_256_GCM_SHA384, 32, 4, crypto.SHA384},
	}
	if got := len(keyschedule.Suites()); got != len(want) {
		t.Errorf("Suites() has %d entries, want %d", got, len(want))
	}
	for _, w := range want {
		s, ok := keyschedule.Lookup(w.version, w.id)
		if !ok {
			t.Errorf("Lookup(%#04x, %s) failed", w.version, tls.CipherSuiteName(w.id))
			continue
		}
		if s.ID != w.id || s.Version != w.version || s.KeyLen != w.keyLen || s.FixedIVLen != w.fixedIVLen || s.Hash != w.hash || s.Name != tls.CipherSuiteName(w.id) {
			t.Errorf("Lookup(%#04x, %s) = %+v", w.version, tls.CipherSuiteName(w.id), *s)
		}
		aead, err := s.NewAEAD(make([]byte, s.KeyLen))
		if err != nil {
			t.Errorf("%s: NewAEAD: %v", s.Name, err)
		} else if aead.NonceSize() != 12 || aead.Overhead() != 16 {
			t.Errorf("%s: AEAD nonce %d, overhead %d", s.Name, aead.NonceSize(), aead.Overhead())
		}
		if _, err := s.NewAEAD(make([]byte, s.KeyLen-1)); err == nil {
			t.Errorf("%s: NewAEAD accepted a short key", s.Name)
		}
	}

	// Suites that must not be offloaded, and suites at the wrong version.
	for _, c := range []struct{ version, id uint16 }{
		{tls.VersionTLS12, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA},
		{tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA},
		{tls.VersionTLS12, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256},
		{tls.VersionTLS12, tls.TLS_RSA_WITH_AES_128_CBC_SHA},
		{tls.VersionTLS12, tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA},
		{tls.VersionTLS12, tls.TLS_ECDHE_RSA_WITH_RC4_128_SHA},
		{tls.VersionTLS12, tls.TLS_AES_128_GCM_SHA256},
		{tls.VersionTLS13, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256},
		{tls.VersionTLS11, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256},
		{tls.VersionTLS13, 0x1304}, // TLS_AES_128_CCM_SHA256
	} {
		if s, ok := keyschedule.Lookup(c.version, c.id); ok || s != nil {
			t.Errorf("Lookup(%#04x, %s) = %v, %v; want nil, false", c.version, tls.CipherSuiteName(c.id), s, ok)
		}
	}

	// Suites returns a copy that callers may reorder freely.
	all := keyschedule.Suites()
	all[0] = nil
	if keyschedule.Suites()[0] == nil {
		t.Error("Suites returned the package's own slice")
	}
}

func TestNewAEADUnregistered(t *testing.T) {
	s := &keyschedule.Suite{Name: "fake", KeyLen: 16}
	if _, err := s.NewAEAD(make([]byte, 16)); err == nil {
		t.Error("NewAEAD succeeded on a suite that did not come from Lookup")
	}
}

func TestTrafficKeysZero(t *testing.T) {
	k := keyschedule.TrafficKeys{Key: []byte{1, 2, 3}, IV: []byte{4, 5}}
	k.Zero()
	if !bytes.Equal(k.Key, []byte{0, 0, 0}) || !bytes.Equal(k.IV, []byte{0, 0}) {
		t.Errorf("after Zero: %x %x", k.Key, k.IV)
	}
	keyschedule.TrafficKeys{}.Zero() // must not panic on nil slices
}

// TestHandshakeKeysRFC8448: the keys of both handshake traffic secrets of
// RFC 8448, Section 3, and a secret of the wrong size refused.
func TestHandshakeKeysRFC8448(t *testing.T) {
	s, _ := keyschedule.Lookup(tls.VersionTLS13, tls.TLS_AES_128_GCM_SHA256)
	for _, tt := range []struct{ name, secret, key, iv string }{
		{"server", rfc8448ServerHandshakeSecret, `3f ce 51 60 09 c2 17 27 d0 f2 e4 e8 6e e4 03 bc`, `5d 31 3e b2 67 12 76 ee 13 00 0b 30`},
		{"client", rfc8448ClientHandshakeSecret, `db fa a6 93 d1 76 2c 5b 66 6a f5 d9 50 25 8d 01`, `5b d3 c7 1b 83 6e 0b 76 bb 73 26 5f`},
	} {
		k, err := keyschedule.HandshakeKeys(s, wiretest.Unhex(t, tt.secret))
		if err != nil || !bytes.Equal(k.Key, wiretest.Unhex(t, tt.key)) || !bytes.Equal(k.IV, wiretest.Unhex(t, tt.iv)) {
			t.Errorf("%s: HandshakeKeys = %x, %x, %v; want %s, %s", tt.name, k.Key, k.IV, err, tt.key, tt.iv)
		}
	}
	if _, err := keyschedule.HandshakeKeys(s, make([]byte, 31)); err == nil {
		t.Error("HandshakeKeys took a 31-byte secret for a SHA-256 suite")
	}
}
