package recordio_test

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/ktlsgo/ktls/internal/keylog"
	"github.com/ktlsgo/ktls/internal/lab/testcert"
	"github.com/ktlsgo/ktls/internal/lab/wiretest"
	"github.com/ktlsgo/ktls/internal/recordio"
)

// readRecord reads one whole record from r.
func readRecord(t *testing.T, r io.Reader) []byte {
	t.Helper()
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(r, hdr); err != nil {
		t.Fatalf("reading a record header: %v", err)
	}
	body := make([]byte, binary.BigEndian.Uint16(hdr[3:]))
	if _, err := io.ReadFull(r, body); err != nil {
		t.Fatalf("reading a record body: %v", err)
	}
	return append(hdr, body...)
}

// TestNothingReadPastHandshake is why the package exists. A TLS 1.3 server
// sends its session ticket right behind its Finished, and often data too;
// crypto/tls on a plain socket reads them into its buffer. Through a
// recordio.Conn, the client's handshake ends with both still in the socket,
// for the kernel to read.
func TestNothingReadPastHandshake(t *testing.T) {
	craw, sraw := wiretest.TCPPair(t, "tcp")
	b := testcert.Get(testcert.ECDSA)
	ccfg := b.ClientConfig()
	ccfg.ClientSessionCache = tls.NewLRUClientSessionCache(1) // so the server sends a ticket
	hc := recordio.NewConn(craw, true)
	client := tls.Client(hc, ccfg)
	server := tls.Server(sraw, b.ServerConfig())

	errc := make(chan error, 1)
	go func() {
		if err := server.Handshake(); err != nil {
			errc <- err
			return
		}
		_, err := server.Write([]byte("0.5-RTT data"))
		errc <- err
	}()
	if err := client.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if hc.Buffered() {
		t.Fatal("part of a record is buffered after the handshake")
	}
	// What crypto/tls did not read is still in the socket: the ticket and
	// the data, whole records of outer type application_data.
	craw.SetReadDeadline(time.Now().Add(5 * time.Second))
	for i := range 2 {
		rec := readRecord(t, craw)
		if rec[0] != 23 {
			t.Errorf("record %d after the handshake has type %d, want 23", i, rec[0])
		}
	}
}

// TestSequenceNumbers: in TLS 1.2 each side's Finished is the first record
// under the new keys, so after the handshake both sides are at 1.
func TestSequenceNumbers(t *testing.T) {
	craw, sraw := wiretest.TCPPair(t, "tcp")
	b := testcert.Get(testcert.ECDSA)
	ccfg := b.ClientConfig()
	ccfg.MaxVersion = tls.VersionTLS12
	chc, shc := recordio.NewConn(craw, true), recordio.NewConn(sraw, false)
	clog, slog := keylog.NewSecrets(nil), keylog.NewSecrets(nil)
	ccfg.KeyLogWriter = clog
	scfg := b.ServerConfig()
	scfg.KeyLogWriter = slog
	client, server := tls.Client(chc, ccfg), tls.Server(shc, scfg)
	errc := make(chan error, 1)
	go func() { errc <- server.Handshake() }()
	if err := client.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	for _, hc := range []*recordio.Conn{chc, shc} {
		if r, w := hc.RecordsSinceCCS(); r != 1 || w != 1 {
			t.Errorf("RecordsSinceCCS = %d, %d; want 1, 1", r, w)
		}
	}
	// Both ends saw the same randoms, and the key log agrees.
	want, _ := clog.ClientRandom()
	for _, hc := range []*recordio.Conn{chc, shc} {
		if got, ok := hc.ClientRandom(); !ok || got != want {
			t.Errorf("ClientRandom = %x, %v; want %x", got, ok, want)
		}
	}
	cs, ok1 := chc.ServerRandom()
	ss, ok2 := shc.ServerRandom()
	if !ok1 || !ok2 || cs != ss {
		t.Errorf("ServerRandom: client saw %x, server sent %x", cs, ss)
	}
	// The server's Finished, under the new keys, was kept for the caller.
	if w := shc.Written(); len(w.Tail) != 1 || w.Tail[0].Bytes[0] != 22 || w.SinceCCS != 1 {
		t.Errorf("server kept %d of %d records after ChangeCipherSpec, want its Finished", len(w.Tail), w.SinceCCS)
	}
}

// trickle is a net.Conn whose reads return at most one byte, and every
// other one a timeout, to show that reading resumes where it stopped.
type trickle struct {
	net.Conn
	r    io.Reader
	odd  bool
	read int
}

func (t *trickle) Read(b []byte) (int, error) {
	t.odd = !t.odd
	if t.odd {
		return 0, os.ErrDeadlineExceeded
	}
	n, err := t.r.Read(b[:1])
	t.read += n
	return n, err
}

func TestResumesAfterTimeout(t *testing.T) {
	stream := append(record(22, 300), record(23, 40)...)
	tr := &trickle{r: bytes.NewReader(stream)}
	hc := recordio.NewConn(tr, true)
	var got []byte
	buf := make([]byte, 1000)
	for len(got) < len(stream) {
		n, err := hc.Read(buf)
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatal(err)
		}
		got = append(got, buf[:n]...)
		if n > 0 && len(got) <= 305 && tr.read > 305 {
			t.Fatal("read into the second record while serving the first")
		}
	}
	if !bytes.Equal(got, stream) {
		t.Fatal("stream differs")
	}
}

// TestOversizedRecord: a header no TLS record can have goes to crypto/tls
// as is, which rejects it; the Conn then steps aside.
func TestOversizedRecord(t *testing.T) {
	stream := []byte{23, 3, 3, 0xff, 0xff, 1, 2, 3}
	hc := recordio.NewConn(&trickle{r: bytes.NewReader(stream), odd: true}, true)
	var got []byte
	buf := make([]byte, 100)
	for {
		n, err := hc.Read(buf)
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
	}
	if !bytes.Equal(got, stream) {
		t.Fatalf("got %x, want %x", got, stream)
	}
}

func TestSawEOF(t *testing.T) {
	hc := recordio.NewConn(&trickle{r: bytes.NewReader(record(23, 10))}, true)
	buf := make([]byte, 100)
	for {
		_, err := hc.Read(buf)
		if err == io.EOF {
			break
		}
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatal(err)
		}
	}
	if !hc.SawEOF() {
		t.Error("SawEOF = false after the stream ended")
	}
}

func TestHandedOff(t *testing.T) {
	craw, _ := wiretest.TCPPair(t, "tcp")
	hc := recordio.NewConn(craw, true)
	hc.HandOffRead()
	if _, err := hc.Read(make([]byte, 1)); !errors.Is(err, recordio.ErrHandedOff) {
		t.Errorf("Read after HandOffRead = %v, want ErrHandedOff", err)
	}
	var seen [][]byte
	hc.HandOffWrite(func(rec []byte) error { seen = append(seen, bytes.Clone(rec)); return nil })
	// Records written after the handoff go to the translator, whole, even
	// when split across writes.
	stream := append(record(21, 20), record(22, 5)...)
	for _, part := range [][]byte{stream[:3], stream[3:30], stream[30:]} {
		if n, err := hc.Write(part); n != len(part) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if len(seen) != 2 || seen[0][0] != 21 || seen[1][0] != 22 {
		t.Fatalf("translator saw %d records", len(seen))
	}
	hc.StopTranslating()
	if _, err := hc.Write(record(21, 2)); !errors.Is(err, recordio.ErrHandedOff) {
		t.Errorf("Write after StopTranslating = %v, want ErrHandedOff", err)
	}
}

func record(typ byte, n int) []byte {
	r := []byte{typ, 3, 3, byte(n >> 8), byte(n)}
	return append(r, bytes.Repeat([]byte{0x5a}, n)...)
}
