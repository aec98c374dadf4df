package record_test

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/ktlsgo/ktls/internal/keyschedule"
	"github.com/ktlsgo/ktls/internal/lab/wiretest"
	"github.com/ktlsgo/ktls/internal/record"
)

func lookup(t testing.TB, version, id uint16) *keyschedule.Suite {
	t.Helper()
	s, ok := keyschedule.Lookup(version, id)
	if !ok {
		t.Fatalf("Lookup(%#04x, %s) failed", version, tls.CipherSuiteName(id))
	}
	return s
}

func newProtector(t testing.TB, s *keyschedule.Suite, keys keyschedule.TrafficKeys, seq uint64) *record.Protector {
	t.Helper()
	p, err := record.NewProtector(s, keys, seq)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// testKeys returns distinct, recognisable keys for s.
func testKeys(s *keyschedule.Suite) keyschedule.TrafficKeys {
	k := keyschedule.TrafficKeys{Key: make([]byte, s.KeyLen), IV: make([]byte, s.FixedIVLen)}
	for i := range k.Key {
		k.Key[i] = byte(i + 1)
	}
	for i := range k.IV {
		k.IV[i] = byte(0xa0 + i)
	}
	return k
}

func alertOf(err error) int {
	var re *record.Error
	if !errors.As(err, &re) {
		return -1
	}
	return int(re.Alert)
}

// Records from RFC 8448, Section 3, all TLS_AES_128_GCM_SHA256. The keys
// are the document's own; TestApplicationSecretRFC8448 in keyschedule checks
// their derivation.
var rfc8448Records = []struct {
	name     string
	key, iv  string
	seq      uint64
	record   string
	typ      uint8
	contents string
}{
	{
		name: "client Finished, client handshake keys",
		key:  "db fa a6 93 d1 76 2c 5b 66 6a f5 d9 50 25 8d 01",
		iv:   "5b d3 c7 1b 83 6e 0b 76 bb 73 26 5f",
		seq:  0,
		record: `17 03 03 00 35 75 ec 4d c2 38 cc e6 0b 29 80 44
			a7 1e 21 9c 56 cc 77 b0 51 7f e9 b9 3c 7a 4b fc 44 d8 7f 38 f8 03
			38 ac 98 fc 46 de b3 84 bd 1c ae ac ab 68 67 d7 26 c4 05 46`,
		typ: record.TypeHandshake,
		contents: `14 00 00 20 a8 ec 43 6d 67 76 34 ae 52 5a c1 fc eb e1
			1a 03 9e c1 76 94 fa c6 e9 85 27 b6 42 f2 ed d5 ce 61`,
	},
	{
		name: "client application data",
		key:  "17 42 2d da 59 6e d5 d9 ac d8 90 e3 c6 3f 50 51",
		iv:   "5b 78 92 3d ee 08 57 90 33 e5 23 d9",
		seq:  0,
		record: `17 03 03 00 43 a2 3f 70 54 b6 2c 94 d0 af fa fe
			82 28 ba 55 cb ef ac ea 42 f9 14 aa 66 bc ab 3f 2b 98 19 a8 a5 b4
			6b 39 5b d5 4a 9a 20 44 1e 2b 62 97 4e 1f 5a 62 92 a2 97 70 14 bd
			1e 3d ea e6 3a ee bb 21 69 49 15 e4`,
		typ:      record.TypeApplicationData,
		contents: rfc8448AppData,
	},
	{
		// The server's first application-key record is its
		// NewSessionTicket, so its data goes out with sequence number 1.
		name: "server application data",
		key:  "9f 02 28 3b 6c 9c 07 ef c2 6b b9 f2 ac 92 e3 56",
		iv:   "cf 78 2b 88 dd 83 54 9a ad f1 e9 84",
		seq:  1,
		record: `17 03 03 00 43 2e 93 7e 11 ef 4a c7 40 e5 38 ad
			36 00 5f c4 a4 69 32 fc 32 25 d0 5f 82 aa 1b 36 e3 0e fa f9 7d 90
			e6 df fc 60 2d cb 50 1a 59 a8 fc c4 9c 4b f2 e5 f0 a2 1c 00 47 c2
			ab f3 32 54 0d d0 32 e1 67 c2 95 5d`,
		typ:      record.TypeApplicationData,
		contents: rfc8448AppData,
	},
	{
		name:     "client close_notify",
		key:      "17 42 2d da 59 6e d5 d9 ac d8 90 e3 c6 3f 50 51",
		iv:       "5b 78 92 3d ee 08 57 90 33 e5 23 d9",
		seq:      1,
		record:   `17 03 03 00 13 c9 87 27 60 65 56 66 b7 4d 7f f1 15 3e fd 6d b6 d0 b0 e3`,
		typ:      record.TypeAlert,
		contents: "01 00",
	},
	{
		name:     "server close_notify",
		key:      "9f 02 28 3b 6c 9c 07 ef c2 6b b9 f2 ac 92 e3 56",
		iv:       "cf 78 2b 88 dd 83 54 9a ad f1 e9 84",
		seq:      2,
		record:   `17 03 03 00 13 b5 8f d6 71 66 eb f5 99 d2 47 20 cf be 7e fa 7a 88 64 a9`,
		typ:      record.TypeAlert,
		contents: "01 00",
	},
}

// The 50 bytes 00 01 02 ... 31 that both sides send in RFC 8448, Section 3.
const rfc8448AppData = `00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f 10 11 12 13
	14 15 16 17 18 19 1a 1b 1c 1d 1e 1f 20 21 22 23 24 25 26 27 28 29 2a 2b 2c 2d
	2e 2f 30 31`

func TestRFC8448Records(t *testing.T) {
	s := lookup(t, tls.VersionTLS13, tls.TLS_AES_128_GCM_SHA256)
	for _, tt := range rfc8448Records {
		t.Run(tt.name, func(t *testing.T) {
			keys := keyschedule.TrafficKeys{Key: wiretest.Unhex(t, tt.key), IV: wiretest.Unhex(t, tt.iv)}
			rec, want := wiretest.Unhex(t, tt.record), wiretest.Unhex(t, tt.contents)

			p := newProtector(t, s, keys, tt.seq)
			typ, pt, err := p.Open(rec)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if typ != tt.typ || !bytes.Equal(pt, want) {
				t.Errorf("Open = %d, %x; want %d, %x", typ, pt, tt.typ, want)
			}
			if p.Seq() != tt.seq+1 {
				t.Errorf("Seq after Open = %d, want %d", p.Seq(), tt.seq+1)
			}

			// Sealing is deterministic, so Seal must reproduce the record.
			p = newProtector(t, s, keys, tt.seq)
			if got := p.Seal(tt.typ, want); !bytes.Equal(got, rec) {
				t.Errorf("Seal = %x\nwant   %x", got, rec)
			}

			// One sequence number off must fail.
			p = newProtector(t, s, keys, tt.seq+1)
			if _, _, err := p.Open(rec); alertOf(err) != int(record.AlertBadRecordMAC) {
				t.Errorf("Open at the wrong sequence number: %v", err)
			}
		})
	}
}

func TestSealOpenRoundTrip(t *testing.T) {
	sizes := []int{0, 1, 15, 16, 17, 255, 1000, record.MaxPlaintext - 1, record.MaxPlaintext}
	for _, s := range keyschedule.Suites() {
		t.Run(s.Name+"/"+tls.VersionName(s.Version), func(t *testing.T) {
			keys := testKeys(s)
			const start = 1000
			sealer := newProtector(t, s, keys, start)
			opener := newProtector(t, s, keys, start)
			types := []uint8{record.TypeApplicationData, record.TypeHandshake, record.TypeAlert}
			for i, n := range sizes {
				pt := bytes.Repeat([]byte{byte(i + 1)}, n)
				typ := types[i%len(types)]
				if n == 0 && typ != record.TypeApplicationData {
					typ = record.TypeApplicationData
				}
				rec := sealer.Seal(typ, pt)
				checkSealed(t, s, rec, typ, len(pt), 0, start+uint64(i))
				gotType, got, err := opener.Open(bytes.Clone(rec))
				if err != nil {
					t.Fatalf("Open of %d-byte record: %v", n, err)
				}
				if gotType != typ || !bytes.Equal(got, pt) {
					t.Fatalf("round trip of %d bytes: got type %d, %d bytes", n, gotType, len(got))
				}
			}
			if sealer.Seq() != start+uint64(len(sizes)) || opener.Seq() != sealer.Seq() {
				t.Errorf("Seq = %d and %d, want %d", sealer.Seq(), opener.Seq(), start+len(sizes))
			}
		})
	}
}

// checkSealed checks the framing of a record produced by Seal.
func checkSealed(t *testing.T, s *keyschedule.Suite, rec []byte, typ uint8, n, pad int, seq uint64) {
	t.Helper()
	h, err := record.ParseHeader(rec)
	if err != nil {
		t.Fatal(err)
	}
	want := record.Header{Type: typ, Version: tls.VersionTLS12, Length: n + 16}
	switch {
	case s.Version == tls.VersionTLS13:
		want.Type = record.TypeApplicationData
		want.Length += 1 + pad
	case s.FixedIVLen == 4:
		want.Length += 8
		// crypto/tls and the kernel use the sequence number as the
		// explicit nonce; so do we, so that nonces never repeat.
		if got := binary.BigEndian.Uint64(rec[record.HeaderLen:]); got != seq {
			t.Errorf("explicit nonce %d, want sequence number %d", got, seq)
		}
	}
	if h != want || len(rec) != record.HeaderLen+want.Length {
		t.Errorf("sealed header %+v (record %d bytes), want %+v", h, len(rec), want)
	}
}

func TestSealPadded(t *testing.T) {
	for _, s := range keyschedule.Suites() {
		if s.Version != tls.VersionTLS13 {
			continue
		}
		keys := testKeys(s)
		sealer := newProtector(t, s, keys, 0)
		opener := newProtector(t, s, keys, 0)
		for _, c := range []struct{ n, pad int }{{0, 1}, {5, 1}, {5, 100}, {0, record.MaxPlaintext}, {record.MaxPlaintext, 0}} {
			pt := bytes.Repeat([]byte{'x'}, c.n)
			rec := sealer.SealPadded(record.TypeApplicationData, pt, c.pad)
			checkSealed(t, s, rec, record.TypeApplicationData, c.n, c.pad, 0)
			typ, got, err := opener.Open(rec)
			if err != nil || typ != record.TypeApplicationData || !bytes.Equal(got, pt) {
				t.Errorf("%s: %d bytes + %d padding: Open = %d, %d bytes, %v", s.Name, c.n, c.pad, typ, len(got), err)
			}
		}
	}

	s := lookup(t, tls.VersionTLS12, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)
	p := newProtector(t, s, testKeys(s), 0)
	defer func() {
		if recover() == nil {
			t.Error("SealPadded with padding in TLS 1.2 did not panic")
		}
	}()
	p.SealPadded(record.TypeApplicationData, nil, 1)
}

func TestOpenTampered(t *testing.T) {
	for _, s := range keyschedule.Suites() {
		t.Run(s.Name+"/"+tls.VersionName(s.Version), func(t *testing.T) {
			keys := testKeys(s)
			rec := newProtector(t, s, keys, 7).Seal(record.TypeApplicationData, []byte("attack at dawn"))
			for i := range rec {
				bad := bytes.Clone(rec)
				bad[i] ^= 0x01
				p := newProtector(t, s, keys, 7)
				if _, _, err := p.Open(bad); err == nil {
					t.Errorf("Open accepted a record with byte %d flipped", i)
				} else if p.Seq() != 7 {
					t.Errorf("failed Open advanced the sequence number to %d", p.Seq())
				}
			}
			for _, n := range []int{0, 4, record.HeaderLen, len(rec) - 1} {
				p := newProtector(t, s, keys, 7)
				if _, _, err := p.Open(rec[:n]); err == nil {
					t.Errorf("Open accepted the record truncated to %d bytes", n)
				}
			}
			if _, _, err := newProtector(t, s, keys, 7).Open(append(bytes.Clone(rec), 0)); alertOf(err) != int(record.AlertDecodeError) {
				t.Errorf("Open of a record with a trailing byte: %v", err)
			}

			// Other keys must fail.
			other := testKeys(s)
			other.Key[0] ^= 0xff
			if _, _, err := newProtector(t, s, other, 7).Open(rec); alertOf(err) != int(record.AlertBadRecordMAC) {
				t.Errorf("Open with the wrong key: %v", err)
			}
			other = testKeys(s)
			other.IV[0] ^= 0xff
			if _, _, err := newProtector(t, s, other, 7).Open(rec); alertOf(err) != int(record.AlertBadRecordMAC) {
				t.Errorf("Open with the wrong IV: %v", err)
			}

			// Open must leave its input alone.
			orig := bytes.Clone(rec)
			if _, _, err := newProtector(t, s, keys, 7).Open(rec); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(rec, orig) {
				t.Error("Open modified the record")
			}
		})
	}
}

// sealInner builds a TLS 1.3 record around an arbitrary TLSInnerPlaintext,
// bypassing Seal, to produce what only a hostile peer would send.
func sealInner(t testing.TB, s *keyschedule.Suite, keys keyschedule.TrafficKeys, seq uint64, inner []byte) []byte {
	t.Helper()
	aead, err := s.NewAEAD(keys.Key)
	if err != nil {
		t.Fatal(err)
	}
	nonce := bytes.Clone(keys.IV)
	binary.BigEndian.PutUint64(nonce[4:], binary.BigEndian.Uint64(nonce[4:])^seq)
	n := len(inner) + aead.Overhead()
	hdr := []byte{record.TypeApplicationData, 3, 3, byte(n >> 8), byte(n)}
	return aead.Seal(hdr, nonce, inner, hdr)
}

func TestOpenTLS13InnerPlaintext(t *testing.T) {
	s := lookup(t, tls.VersionTLS13, tls.TLS_CHACHA20_POLY1305_SHA256)
	keys := testKeys(s)
	big := make([]byte, record.MaxPlaintext+1)
	big[record.MaxPlaintext] = record.TypeApplicationData
	tests := []struct {
		name     string
		inner    []byte
		wantType uint8
		want     []byte
		alert    int
	}{
		{"empty application data", []byte{23}, 23, []byte{}, -1},
		{"padded", []byte{'h', 'i', 22, 0, 0, 0}, 22, []byte("hi"), -1},
		{"zeros in content", []byte{0, 0, 'x', 0, 21, 0}, 21, []byte{0, 0, 'x', 0}, -1},
		{"maximum", big, 23, big[:record.MaxPlaintext], -1},
		{"empty", []byte{}, 0, nil, int(record.AlertUnexpectedMessage)},
		{"all padding", make([]byte, 100), 0, nil, int(record.AlertUnexpectedMessage)},
		{"change_cipher_spec inside", []byte{1, 20}, 0, nil, int(record.AlertUnexpectedMessage)},
		{"unknown inner type", []byte{'x', 99, 0}, 0, nil, int(record.AlertUnexpectedMessage)},
		{"overflow", append(bytes.Clone(big), 0), 0, nil, int(record.AlertRecordOverflow)},
		{"content overflow", append(make([]byte, record.MaxPlaintext+1), 23), 0, nil, int(record.AlertRecordOverflow)},
	}
	for _, tt := range tests {
		p := newProtector(t, s, keys, 3)
		typ, pt, err := p.Open(sealInner(t, s, keys, 3, tt.inner))
		if tt.alert >= 0 {
			if alertOf(err) != tt.alert {
				t.Errorf("%s: Open error %v, want alert %d", tt.name, err, tt.alert)
			}
			continue
		}
		if err != nil || typ != tt.wantType || !bytes.Equal(pt, tt.want) {
			t.Errorf("%s: Open = %d, %q, %v; want %d, %q", tt.name, typ, pt, err, tt.wantType, tt.want)
		}
	}
}

func TestOpenRejects(t *testing.T) {
	s13 := lookup(t, tls.VersionTLS13, tls.TLS_AES_256_GCM_SHA384)
	k13 := testKeys(s13)
	s12 := lookup(t, tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384)
	k12 := testKeys(s12)

	withHeader := func(rec []byte, typ uint8, version uint16) []byte {
		rec = bytes.Clone(rec)
		rec[0] = typ
		binary.BigEndian.PutUint16(rec[1:], version)
		return rec
	}
	// Seal does not refuse oversized plaintext, which lets these tests
	// build what a misbehaving peer would send.
	huge13 := sealInner(t, s13, k13, 0, make([]byte, record.MaxCiphertextTLS13-16+1))

	tests := []struct {
		name  string
		suite *keyschedule.Suite
		keys  keyschedule.TrafficKeys
		rec   []byte
		alert uint8
	}{
		{"TLS 1.3 handshake outer type", s13, k13,
			withHeader(newProtector(t, s13, k13, 0).Seal(22, []byte("x")), 22, 0x0303), record.AlertUnexpectedMessage},
		{"TLS 1.3 plaintext change_cipher_spec", s13, k13, []byte{20, 3, 3, 0, 1, 1}, record.AlertUnexpectedMessage},
		{"TLS 1.3 version 0x0301", s13, k13,
			withHeader(newProtector(t, s13, k13, 0).Seal(23, []byte("x")), 23, 0x0301), record.AlertProtocolVersion},
		{"TLS 1.3 ciphertext overflow", s13, k13, huge13, record.AlertRecordOverflow},
		{"TLS 1.3 too short for a tag", s13, k13, []byte{23, 3, 3, 0, 3, 1, 2, 3}, record.AlertBadRecordMAC},
		{"TLS 1.2 plaintext overflow", s12, k12,
			newProtector(t, s12, k12, 0).Seal(23, make([]byte, record.MaxPlaintext+1)), record.AlertRecordOverflow},
		{"TLS 1.2 change_cipher_spec", s12, k12,
			newProtector(t, s12, k12, 0).Seal(20, []byte{1}), record.AlertUnexpectedMessage},
		{"TLS 1.2 version 0x0302", s12, k12,
			withHeader(newProtector(t, s12, k12, 0).Seal(23, []byte("x")), 23, 0x0302), record.AlertProtocolVersion},
		{"TLS 1.2 type changed", s12, k12,
			withHeader(newProtector(t, s12, k12, 0).Seal(23, []byte("x")), 22, 0x0303), record.AlertBadRecordMAC},
		{"TLS 1.2 shorter than explicit nonce and tag", s12, k12,
			[]byte{23, 3, 3, 0, 23, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, record.AlertBadRecordMAC},
	}
	for _, tt := range tests {
		p := newProtector(t, tt.suite, tt.keys, 0)
		_, _, err := p.Open(tt.rec)
		if alertOf(err) != int(tt.alert) {
			t.Errorf("%s: Open error %v, want alert %d", tt.name, err, tt.alert)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "record: ") {
			t.Errorf("%s: error %q lacks the package prefix", tt.name, err)
		}
		if p.Seq() != 0 {
			t.Errorf("%s: failed Open advanced the sequence number", tt.name)
		}
	}
}

func TestSequenceExhaustion(t *testing.T) {
	for _, s := range []*keyschedule.Suite{
		lookup(t, tls.VersionTLS13, tls.TLS_AES_128_GCM_SHA256),
		lookup(t, tls.VersionTLS12, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256),
		lookup(t, tls.VersionTLS12, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256),
	} {
		keys := testKeys(s)
		sealer := newProtector(t, s, keys, math.MaxUint64)
		opener := newProtector(t, s, keys, math.MaxUint64)
		rec := sealer.Seal(record.TypeApplicationData, []byte("last"))
		if _, pt, err := opener.Open(rec); err != nil || string(pt) != "last" {
			t.Fatalf("%s: record with the last sequence number: %q, %v", s.Name, pt, err)
		}
		if _, _, err := opener.Open(rec); err == nil {
			t.Errorf("%s: Open after the last sequence number succeeded", s.Name)
		}
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: Seal after the last sequence number did not panic", s.Name)
				}
			}()
			sealer.Seal(record.TypeApplicationData, nil)
		}()
	}
}

func TestNewProtectorErrors(t *testing.T) {
	s := lookup(t, tls.VersionTLS12, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)
	good := testKeys(s)
	tests := []struct {
		name  string
		suite *keyschedule.Suite
		keys  keyschedule.TrafficKeys
	}{
		{"nil suite", nil, good},
		{"short key", s, keyschedule.TrafficKeys{Key: good.Key[:15], IV: good.IV}},
		{"long IV", s, keyschedule.TrafficKeys{Key: good.Key, IV: make([]byte, 12)}},
		{"no IV", s, keyschedule.TrafficKeys{Key: good.Key}},
		{"unregistered suite", &keyschedule.Suite{Name: "x", KeyLen: 16, FixedIVLen: 4}, good},
	}
	for _, tt := range tests {
		if _, err := record.NewProtector(tt.suite, tt.keys, 0); err == nil {
			t.Errorf("%s: no error", tt.name)
		}
	}

	// The Protector keeps its own copy of the IV.
	keys := testKeys(s)
	p := newProtector(t, s, keys, 0)
	rec := p.Seal(record.TypeApplicationData, []byte("x"))
	keys.Zero()
	if _, _, err := newProtector(t, s, testKeys(s), 0).Open(rec); err != nil {
		t.Fatal(err)
	}
	rec = p.Seal(record.TypeApplicationData, []byte("y"))
	if _, _, err := newProtector(t, s, testKeys(s), 1).Open(rec); err != nil {
		t.Errorf("zeroing the caller's keys broke the Protector: %v", err)
	}
}
