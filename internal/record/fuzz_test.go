package record_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"testing"

	"github.com/ktlsgo/ktls/internal/keyschedule"
	"github.com/ktlsgo/ktls/internal/record"
)

func FuzzParseHeader(f *testing.F) {
	f.Add([]byte{23, 3, 3, 0, 0x43})
	f.Add([]byte{22, 3, 1, 2, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := record.ParseHeader(b)
		if err != nil {
			var re *record.Error
			if !errors.As(err, &re) {
				t.Fatalf("error %v is %T, want *record.Error", err, err)
			}
			return
		}
		switch {
		case len(b) < record.HeaderLen:
			t.Fatalf("accepted a %d-byte header", len(b))
		case h.Type < record.TypeChangeCipherSpec || h.Type > record.TypeApplicationData:
			t.Fatalf("accepted content type %d", h.Type)
		case h.Version>>8 != 3:
			t.Fatalf("accepted version %#04x", h.Version)
		case h.Length < 0 || h.Length > record.MaxCiphertextTLS12:
			t.Fatalf("accepted length %d", h.Length)
		}
		var out [record.HeaderLen]byte
		h.Marshal(out[:])
		if !bytes.Equal(out[:], b[:record.HeaderLen]) {
			t.Fatalf("Marshal(ParseHeader(%x)) = %x", b[:record.HeaderLen], out)
		}
	})
}

// FuzzOpen feeds Open arbitrary records, which must fail cleanly, and
// authentic records around arbitrary contents, whose outcome is predicted
// independently of the code under test.
func FuzzOpen(f *testing.F) {
	f.Add(uint8(0), uint64(0), []byte{23, 3, 3, 0, 17, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, []byte("hello\x17"))
	f.Add(uint8(3), uint64(1), []byte{22, 3, 3, 0, 0}, []byte{0, 0, 0})
	f.Fuzz(func(t *testing.T, suite uint8, seq uint64, rec, contents []byte) {
		suites := keyschedule.Suites()
		s := suites[int(suite)%len(suites)]
		keys := testKeys(s)

		p := newProtector(t, s, keys, seq)
		if typ, pt, err := p.Open(rec); err == nil {
			// Forging a tag by chance is not going to happen; if it
			// did, the result must still be well formed.
			if len(pt) > record.MaxPlaintext || typ < record.TypeAlert || typ > record.TypeApplicationData {
				t.Fatalf("Open accepted a record: type %d, %d bytes", typ, len(pt))
			}
		} else {
			var re *record.Error
			if !errors.As(err, &re) {
				t.Fatalf("error %v is %T, want *record.Error", err, err)
			}
			if p.Seq() != seq {
				t.Fatalf("failed Open moved the sequence number from %d to %d", seq, p.Seq())
			}
		}

		if s.Version == tls.VersionTLS13 {
			if len(contents)+16 > 0xffff {
				return
			}
			// contents is the whole TLSInnerPlaintext: data, type, padding.
			i := len(contents) - 1
			for i >= 0 && contents[i] == 0 {
				i--
			}
			wantErr := i < 0 || len(contents) > record.MaxPlaintext+1 || i > record.MaxPlaintext ||
				(contents[i] != record.TypeAlert && contents[i] != record.TypeHandshake && contents[i] != record.TypeApplicationData)
			typ, pt, err := newProtector(t, s, keys, seq).Open(sealInner(t, s, keys, seq, contents))
			if wantErr {
				if err == nil {
					t.Fatalf("Open accepted inner plaintext %x", contents)
				}
				return
			}
			if err != nil || typ != contents[i] || !bytes.Equal(pt, contents[:i]) {
				t.Fatalf("Open of inner plaintext %x = %d, %x, %v", contents, typ, pt, err)
			}
			return
		}

		if len(contents)+8+16 > 0xffff {
			return
		}
		typ := []uint8{record.TypeAlert, record.TypeHandshake, record.TypeApplicationData}[seq%3]
		sealed := newProtector(t, s, keys, seq).Seal(typ, contents)
		gotType, pt, err := newProtector(t, s, keys, seq).Open(sealed)
		if len(contents) > record.MaxPlaintext {
			if err == nil {
				t.Fatalf("Open accepted %d bytes of plaintext", len(contents))
			}
			return
		}
		if err != nil || gotType != typ || !bytes.Equal(pt, contents) {
			t.Fatalf("round trip of %x = %d, %x, %v", contents, gotType, pt, err)
		}
	})
}

func FuzzParseHandshake(f *testing.F) {
	f.Add(record.MarshalKeyUpdate(true))
	f.Add([]byte{4, 0, 0, 2, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		in := bytes.Clone(b)
		msgs, rest, err := record.ParseHandshake(b)
		if !bytes.Equal(b, in) {
			t.Fatal("ParseHandshake modified its input")
		}
		// Whatever the outcome, messages and rest account for every byte.
		var again []byte
		for _, m := range msgs {
			n := len(m.Body)
			if n > 1<<16 {
				t.Fatalf("accepted a %d-byte message", n)
			}
			again = append(again, m.Type, byte(n>>16), byte(n>>8), byte(n))
			again = append(again, m.Body...)
			if m.Type == record.MsgKeyUpdate {
				if _, kerr := record.ParseKeyUpdate(m.Body); (kerr == nil) != (n == 1 && m.Body[0] <= 1) {
					t.Fatalf("ParseKeyUpdate(%x) = %v", m.Body, kerr)
				}
			}
		}
		again = append(again, rest...)
		if !bytes.Equal(again, b) {
			t.Fatalf("messages and rest %x do not add up to the input %x", again, b)
		}
		if err != nil {
			if alertOf(err) != int(record.AlertDecodeError) {
				t.Fatalf("error %v, want decode_error", err)
			}
			return
		}
		if len(rest) >= 4 && len(rest)-4 >= int(rest[1])<<16|int(rest[2])<<8|int(rest[3]) {
			t.Fatalf("rest %x holds a complete message", rest)
		}
	})
}
