package ktls_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/kernel"
	"github.com/ktlsgo/ktls/internal/lab/kerneltest"
	"github.com/ktlsgo/ktls/internal/lab/ktlstest"
	"github.com/ktlsgo/ktls/internal/record"
)

// TestRXInterleaved runs streams that interleave application data with
// control records through the kernel read path, at read sizes from 1 byte
// to 64 KiB, so that a control record comes both alone and right behind
// data in the same read (the whole stream is queued before the first
// read). Every byte must come, in order, and every control record must
// act: an ignored alert counts towards the limit on records that carry
// nothing, a KeyUpdate moves to the next key (or the data after it could
// not be decrypted), close_notify ends the stream with io.EOF, and a fatal
// alert with its error.
func TestRXInterleaved(t *testing.T) {
	kerneltest.RequireULP(t)
	ktlstest.WarmProbes(t)
	for _, sc := range ktlstest.OnePerVersion {
		for _, sn := range rxScripts {
			if sn.tls13 && sc.Version != tls.VersionTLS13 {
				continue // not run, rather than run and skipped
			}
			t.Run(sc.Name+"/"+sn.name, func(t *testing.T) {
				if sn.rekey {
					kerneltest.Require(t, kernel.FeatureRekey)
				}
				for _, size := range []int{1, 1000, 4096, record.MaxPlaintext, 64 << 10} {
					t.Run(strconv.Itoa(size), func(t *testing.T) { runRXScript(t, sc, sn, size) })
				}
			})
		}
	}
}

// An rxScript is a stream of records, and how reading it must end.
type rxScript struct {
	name  string
	tls13 bool // only in TLS 1.3
	rekey bool // needs the kernel's TLS 1.3 rekey
	build func(s *rxStream)
	// end checks the error that ended the reading.
	end func(t *testing.T, err error)
}

var rxScripts = []rxScript{
	{name: "interleaved", build: func(s *rxStream) {
		s.data(20000) // two records, the second short
		s.ignoredAlert()
		s.empty()
		s.ignoredAlert() // recvmsg(2) that starts at the empty record returns 0: not the end
		s.data(5)
		s.empty()
		s.ignoredAlert()
		s.data(record.MaxPlaintext)
		s.ignoredAlert()
		s.ignoredAlert()
		s.data(1)
		s.data(3000)
		s.alert(record.AlertLevelWarning, record.AlertCloseNotify)
		s.raw(s.p.Out.Seal(record.TypeApplicationData, []byte("after close_notify")))
	}, end: wantEOF},
	{name: "padded", tls13: true, build: func(s *rxStream) {
		// Padding makes the kernel decrypt a record a second time
		// (TLS_RX_EXPECT_NO_PAD); a padded control record retries too.
		s.data(7000)
		s.dataPadded(9000, 300)
		s.raw(s.p.Out.SealPadded(record.TypeAlert, []byte{record.AlertLevelWarning, record.AlertUserCanceled}, 40))
		s.dataPadded(100, 1)
		s.alert(record.AlertLevelWarning, record.AlertCloseNotify)
	}, end: wantEOF},
	{name: "keyupdate", tls13: true, rekey: true, build: func(s *rxStream) {
		s.data(20000)
		s.keyUpdate()
		s.data(3)
		s.keyUpdate()
		s.keyUpdate()
		s.data(40000)
		s.ignoredAlert()
		s.keyUpdate()
		s.alert(record.AlertLevelWarning, record.AlertCloseNotify)
	}, end: wantEOF},
	{name: "fatal-alert", build: func(s *rxStream) {
		s.data(30000)
		s.ignoredAlert()
		s.data(100)
		s.alert(record.AlertLevelFatal, record.AlertInternalError)
		s.raw(s.p.Out.Seal(record.TypeApplicationData, []byte("after the alert")))
	}, end: func(t *testing.T, err error) {
		wantAlert(t, err, "remote error", record.AlertInternalError)
	}},
	{name: "ignored-alerts-over-limit", build: func(s *rxStream) {
		// 16 records that carry nothing in a row are let through, as
		// crypto/tls does; the 17th is an error. An alert lost or taken
		// for data would end this differently.
		s.data(20000)
		for range 17 {
			s.ignoredAlert()
		}
		s.raw(s.p.Out.Seal(record.TypeApplicationData, []byte("never read")))
	}, end: func(t *testing.T, err error) {
		wantAlert(t, err, "local error", record.AlertUnexpectedMessage)
	}},
}

func wantEOF(t *testing.T, err error) {
	t.Helper()
	if err != io.EOF {
		t.Fatalf("Read = %v, want io.EOF", err)
	}
}

func wantAlert(t *testing.T, err error, op string, desc uint8) {
	t.Helper()
	var oe *net.OpError
	var ae tls.AlertError
	if !errors.As(err, &oe) || oe.Op != op || !errors.As(err, &ae) || uint8(ae) != desc {
		t.Fatalf("Read = %v, want %s %v", err, op, tls.AlertError(desc))
	}
}

// An rxStream builds what the raw peer sends, and the application data the
// reader must get from it.
type rxStream struct {
	t    *testing.T
	p    *ktlstest.RawPeer
	rng  *rand.ChaCha8
	wire []byte
	want []byte
}

func (s *rxStream) raw(b []byte) { s.wire = append(s.wire, b...) }

func (s *rxStream) data(n int) { s.dataPadded(n, 0) }

// dataPadded appends n random bytes of application data, in full records
// and a last shorter one, each padded by pad bytes.
func (s *rxStream) dataPadded(n, pad int) {
	b := make([]byte, n)
	s.rng.Read(b)
	s.want = append(s.want, b...)
	for len(b) > 0 {
		m := min(len(b), record.MaxPlaintext-pad)
		s.raw(s.p.Out.SealPadded(record.TypeApplicationData, b[:m], pad))
		b = b[m:]
	}
}

func (s *rxStream) empty() { s.raw(s.p.Out.Seal(record.TypeApplicationData, nil)) }

func (s *rxStream) alert(level, desc uint8) {
	s.raw(s.p.Out.Seal(record.TypeAlert, []byte{level, desc}))
}

// ignoredAlert is an alert the reader drops: a TLS 1.2 warning, a TLS 1.3
// user_canceled.
func (s *rxStream) ignoredAlert() { s.alert(record.AlertLevelWarning, record.AlertUserCanceled) }

// keyUpdate appends a KeyUpdate and moves the peer to its next key.
func (s *rxStream) keyUpdate() {
	s.raw(s.p.Out.Seal(record.TypeHandshake, record.MarshalKeyUpdate(false)))
	s.p.OutSecret = s.p.OutSecret.Next()
	var err error
	if s.p.Out, err = record.NewProtector(s.p.Suite, s.p.OutSecret.Keys(), 0); err != nil {
		s.t.Fatal(err)
	}
}

func runRXScript(t *testing.T, sc ktlstest.SuiteCase, sn rxScript, size int) {
	ccfg, scfg := sc.Configs()
	p, s := ktlstest.ConnectRawPeer(t, ktlstest.KTLS(scfg), ccfg)
	kc := s.(*ktls.Conn)
	if o := kc.Offload(); !o.RX {
		t.Fatalf("Offload() = %v, want RX", o)
	}
	deadline := time.Now().Add(60 * time.Second)
	kc.SetDeadline(deadline)
	p.Conn.SetDeadline(deadline)
	st := &rxStream{t: t, p: p, rng: rand.NewChaCha8([32]byte{byte(size), 7})}
	sn.build(st)
	var rekeyed uint64
	if sn.rekey {
		rekeyed = kerneltest.Stat(t, "TlsRxRekeyOk")
	}

	// The whole stream is written before the first read, where the socket
	// buffers take it, so that control records queue behind data and one
	// read meets both.
	written := make(chan error, 1)
	go func() { _, err := p.Conn.Write(st.wire); written <- err }()
	select {
	case err := <-written:
		written <- err
	case <-time.After(2 * time.Second):
	}

	got, biggest, err := readInSteps(kc, size)
	if werr := <-written; werr != nil {
		t.Fatalf("raw peer: %v", werr)
	}
	if !bytes.Equal(got, st.want) {
		t.Fatalf("read %d bytes, want the %d sent, intact (then: %v)", len(got), len(st.want), err)
	}
	if biggest > size {
		t.Fatalf("a Read of %d bytes returned %d", size, biggest)
	}
	sn.end(t, err)
	if _, again := kc.Read(make([]byte, 10)); again == nil || again.Error() != err.Error() {
		t.Errorf("Read after %v = %v: the error doesn't stick", err, again)
	}
	if sn.rekey {
		if d := kerneltest.Stat(t, "TlsRxRekeyOk") - rekeyed; d < 4 {
			t.Errorf("TlsRxRekeyOk went up by %d, want 4", d)
		}
	}
}

// readInSteps reads with a buffer of size bytes until Read fails, and
// returns what came, the error, and the most one Read returned.
func readInSteps(r io.Reader, size int) (got []byte, biggest int, err error) {
	buf := make([]byte, size)
	for {
		var n int
		n, err = r.Read(buf)
		got = append(got, buf[:n]...)
		biggest = max(biggest, n)
		if err != nil {
			return got, biggest, err
		}
	}
}
