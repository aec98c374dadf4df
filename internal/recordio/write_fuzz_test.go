package recordio_test

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"net"
	"testing"

	"github.com/ktlsgo/ktls/internal/keyschedule"
	rec "github.com/ktlsgo/ktls/internal/record"
	"github.com/ktlsgo/ktls/internal/recordio"
)

// sink is a net.Conn whose writes all succeed and go nowhere.
type sink struct{ net.Conn }

func (sink) Write(b []byte) (int, error) { return len(b), nil }

// tailLimit is the bound on what a Conn keeps of the records written,
// from handoff.go.
const tailLimit = 128 << 10

// writeChunked writes stream to hc in pieces whose sizes come from sizes
// (each byte, times 257, plus 1), the rest in one piece.
func writeChunked(t *testing.T, hc *recordio.Conn, stream, sizes []byte) {
	t.Helper()
	for len(stream) > 0 {
		n := len(stream)
		if len(sizes) > 0 {
			n = min(n, int(sizes[0])*257+1)
			sizes = sizes[1:]
		}
		if w, err := hc.Write(stream[:n]); w != n || err != nil {
			t.Fatalf("Write = %d, %v", w, err)
		}
		stream = stream[n:]
	}
}

// model is what the records of a stream are, worked out the plain way.
type model struct {
	total, sinceCCS, appData int
	sawCCS                   bool
	candidates               []recordio.Record // every record that may be protected
	hello                    []byte
}

func modelOf(stream []byte) model {
	var m model
	for len(stream) >= 5 {
		n := 5 + int(binary.BigEndian.Uint16(stream[3:5]))
		if len(stream) < n {
			break
		}
		r := stream[:n]
		stream = stream[n:]
		c := recordio.Record{Bytes: r, SinceCCS: -1, AppData: m.appData}
		if m.sawCCS {
			c.SinceCCS = m.sinceCCS
			m.sinceCCS++
		} else if r[0] == 20 {
			m.sawCCS = true
		} else if r[0] == 22 {
			m.hello = append(m.hello, r[5:]...)
		}
		m.total++
		if r[0] == 23 {
			m.appData++
		}
		if c.SinceCCS >= 0 || r[0] == 23 {
			m.candidates = append(m.candidates, c)
		}
	}
	if !m.sawCCS {
		m.sinceCCS = -1
	}
	return m
}

// FuzzWriter writes any stream of records, cut into any pieces, through a
// Conn, and checks what it saw against a model: every whole record is
// counted, whatever the cuts; the records kept are the newest of those
// that may be protected, whole and in order, within the bound and as many
// as fit in it; and the hello random is that of the first hello in the
// stream.
func FuzzWriter(f *testing.F) {
	hello := append([]byte{1, 0, 0, 40, 3, 3}, bytes.Repeat([]byte{0xaa}, 34)...)
	f.Add(append(append(append(recordOf(22, hello), record(20, 1)...), record(22, 40)...), record(23, 100)...), []byte{0, 2, 1}, true)
	f.Add(append(append(record(22, 3), recordOf(22, hello[3:])...), record(23, 16401)...), []byte{}, false)
	f.Add(bytes.Repeat(record(23, 16401), 10), []byte{70, 0, 0, 255}, true)
	f.Add([]byte{22, 3, 3, 0, 2, 2, 0}, []byte{0, 0, 0, 0}, false)
	f.Fuzz(func(t *testing.T, stream, sizes []byte, isClient bool) {
		hc := recordio.NewConn(sink{}, isClient)
		writeChunked(t, hc, stream, sizes)
		m := modelOf(stream)

		// The hello random, from the direction this end writes.
		random, ok := hc.ClientRandom()
		msgType, other := byte(1), hc.ServerRandom
		if !isClient {
			random, ok = hc.ServerRandom()
			msgType, other = 2, hc.ClientRandom
		}
		wantOK := len(m.hello) >= 38 && m.hello[0] == msgType
		if ok != wantOK || ok && !bytes.Equal(random[:], m.hello[6:38]) {
			t.Fatalf("random %x, %v; the stream's first hello starts %x", random, ok, m.hello[:min(len(m.hello), 38)])
		}
		if _, ok := other(); ok {
			t.Fatal("a random was found in the direction nothing was read from")
		}

		w := hc.Written()
		if w.Total != m.total || w.SinceCCS != m.sinceCCS || w.AppData != m.appData {
			t.Fatalf("counted %d records, %d after CCS, %d application_data; the stream has %d, %d, %d",
				w.Total, w.SinceCCS, w.AppData, m.total, m.sinceCCS, m.appData)
		}
		kept := 0
		for _, r := range w.Tail {
			kept += len(r.Bytes)
		}
		if kept > tailLimit {
			t.Fatalf("kept %d bytes of records", kept)
		}
		want := m.candidates[len(m.candidates)-len(w.Tail):]
		if len(want) < len(m.candidates) && kept+len(m.candidates[len(m.candidates)-len(w.Tail)-1].Bytes) <= tailLimit {
			t.Fatalf("kept %d of %d records, %d bytes, and the one before would have fit", len(w.Tail), len(m.candidates), kept)
		}
		for i, r := range w.Tail {
			if !bytes.Equal(r.Bytes, want[i].Bytes) || r.SinceCCS != want[i].SinceCCS || r.AppData != want[i].AppData {
				t.Fatalf("kept record %d differs from the stream's", i)
			}
		}
		// Once taken, nothing more is kept, but everything is counted.
		if len(stream) == totalLen(stream) {
			writeChunked(t, hc, record(23, 10), nil)
			if w := hc.Written(); len(w.Tail) != 0 || w.Total != m.total+1 {
				t.Fatalf("after Written: %d records kept, %d counted, want 0, %d", len(w.Tail), w.Total, m.total+1)
			}
		}
	})
}

// totalLen returns the length of the whole records at the start of stream.
func totalLen(stream []byte) int {
	off := 0
	for off+5 <= len(stream) {
		n := 5 + int(binary.BigEndian.Uint16(stream[off+3:]))
		if off+n > len(stream) {
			break
		}
		off += n
	}
	return off
}

func recordOf(typ byte, body []byte) []byte {
	return append([]byte{typ, 3, 3, byte(len(body) >> 8), byte(len(body))}, body...)
}

// FuzzSequence writes the records of a handshake, sealed with real keys,
// the sizes of its records and how the stream is cut chosen by the
// fuzzer, and checks the count the handoff proves from them: exact, or an
// error when what is kept can't prove it; never a wrong number.
//
// TLS 1.3: a hello, a ChangeCipherSpec, records under the handshake key,
// then records under the application key. TLS 1.2: a hello, a
// ChangeCipherSpec, then records under the new key.
func FuzzSequence(f *testing.F) {
	f.Add(true, []byte{200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 1}, byte(1), []byte{7, 0, 255})
	f.Add(true, []byte{1, 2, 3}, byte(6), []byte{})
	f.Add(true, []byte{1}, byte(9), []byte{})
	f.Add(false, []byte{1}, byte(0), []byte{3})
	f.Add(false, []byte{255, 255, 255, 255, 255, 255, 255, 255, 255, 255}, byte(0), []byte{})
	f.Fuzz(func(t *testing.T, tls13 bool, hsSizes []byte, nApp byte, cuts []byte) {
		if len(hsSizes) == 0 || len(hsSizes) > 24 {
			return
		}
		apps := int(nApp % 12)
		version, suite := uint16(tls.VersionTLS13), uint16(tls.TLS_AES_128_GCM_SHA256)
		if !tls13 {
			version, suite, apps = tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, 0
		}
		s, _ := keyschedule.Lookup(version, suite)
		hsKeys := keyschedule.TrafficKeys{Key: bytes.Repeat([]byte{1}, s.KeyLen), IV: bytes.Repeat([]byte{2}, s.FixedIVLen)}
		appKeys := keyschedule.TrafficKeys{Key: bytes.Repeat([]byte{3}, s.KeyLen), IV: bytes.Repeat([]byte{4}, s.FixedIVLen)}
		hsP, _ := rec.NewProtector(s, hsKeys, 0)
		appP, _ := rec.NewProtector(s, appKeys, 0)

		stream := recordOf(22, append([]byte{2, 0, 0, 40, 3, 3}, bytes.Repeat([]byte{9}, 34)...))
		stream = append(stream, record(20, 1)...)
		// A record's plaintext is 1 to 16384 bytes, the size scaled from
		// one byte, so that a few bytes make a large flight.
		size := func(b byte) int { return 1 + int(b)*16383/255 }
		for _, b := range hsSizes {
			stream = append(stream, hsP.Seal(22, make([]byte, size(b)))...)
		}
		appLen := 0
		for i := range apps {
			r := appP.Seal(22, make([]byte, size(byte(i*37+200))))
			appLen += len(r)
			stream = append(stream, r...)
		}
		hc := recordio.NewConn(sink{}, false)
		writeChunked(t, hc, stream, cuts)
		w := hc.Written()

		var got uint64
		var err error
		if tls13 {
			got, err = w.Sequence13(s, hsKeys, appKeys)
		} else {
			got, err = w.Sequence12(s, hsKeys)
		}
		want := uint64(apps)
		if !tls13 {
			want = uint64(len(hsSizes))
		}
		if err == nil && got != want {
			t.Fatalf("counted %d records under the new key, want %d", got, want)
		}
		// The proof needs every record under the application key and one
		// under the handshake key kept; anything that fits must succeed.
		lastHS := 5 + size(hsSizes[len(hsSizes)-1]) + 1 + 16
		if !tls13 {
			lastHS = 5 + 8 + size(hsSizes[len(hsSizes)-1]) + 16
		}
		if err != nil && appLen+lastHS <= tailLimit {
			t.Fatalf("no count (%v), though the %d bytes of records it needs fit", err, appLen+lastHS)
		}
		// Keys that are not the handshake's never give a count.
		if tls13 {
			if _, err := w.Sequence13(s, appKeys, appKeys); err == nil {
				t.Fatal("counted with the application key in place of the handshake key")
			}
		} else if _, err := w.Sequence12(s, appKeys); err == nil {
			t.Fatal("counted with the wrong key")
		}
	})
}
