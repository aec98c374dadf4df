package ktls_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/kernel"
	"github.com/ktlsgo/ktls/internal/lab/kerneltest"
	"github.com/ktlsgo/ktls/internal/lab/ktlstest"
	"github.com/ktlsgo/ktls/internal/lab/wiretest"
	"github.com/ktlsgo/ktls/internal/record"
)

// TestLargeTicketInTinyRecords is issue 13's finding 7 in the lab: once
// the kernel decrypts, a server sends a NewSessionTicket in 1-byte
// records. The largest that crypto/tls would take, 64 KiB, is reassembled
// and dropped, and the data after it arrives; one byte more is refused at
// its header with decode_error, without waiting for (or buffering) the
// body. The ticket's first and last KiB come in 1-byte records and the
// middle in full ones: under the lab's emulated CPU every record costs
// the kernel about half a millisecond to decrypt, whatever ktls does with
// it. TestPostHandshakeReassemblyLinear counts the work on the host.
func TestLargeTicketInTinyRecords(t *testing.T) {
	kerneltest.Require(t, kernel.FeatureULP, kernel.CipherFeature(kernel.VersionTLS13, kernel.CipherAESGCM128, kernel.RX))
	for _, tc := range []struct {
		name  string
		size  int
		alert int // the client's alert, -1 for none
	}{
		{"64KiB", record.MaxNewSessionTicket, -1},
		{"64KiB+1", record.MaxNewSessionTicket + 1, int(record.AlertDecodeError)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ccfg, scfg := ktlstest.TLS13.Configs()
			ccfg.ClientSessionCache = nil // RX goes to the kernel at once
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			deadline := time.Now().Add(60 * time.Second)
			peerErr := make(chan error, 1)
			go func() {
				peerErr <- func() error {
					conn, err := ln.Accept()
					if err != nil {
						return err
					}
					defer conn.Close()
					conn.SetDeadline(deadline)
					p, err := ktlstest.AcceptRawTLS13(conn, scfg)
					if err != nil {
						return err
					}
					n := tc.size
					msg := append([]byte{record.MsgNewSessionTicket, byte(n >> 16), byte(n >> 8), byte(n)}, bytes.Repeat([]byte{'t'}, n)...)
					if tc.alert >= 0 {
						// The header and a little of the body: the rest
						// is never read.
						msg = msg[:100]
					}
					var out []byte
					for i := 0; i < len(msg); {
						n := 1
						if i >= 1024 && i < len(msg)-1024 {
							n = min(record.MaxPlaintext, len(msg)-1024-i)
						}
						out = append(out, p.Out.Seal(record.TypeHandshake, msg[i:i+n])...)
						i += n
					}
					out = append(out, p.Out.Seal(record.TypeApplicationData, []byte("after"))...)
					out = append(out, p.Out.Seal(record.TypeAlert, []byte{record.AlertLevelWarning, record.AlertCloseNotify})...)
					if _, err := conn.Write(out); err != nil {
						return err
					}
					if tc.alert < 0 {
						return nil
					}
					typ, data, err := p.Recv()
					if err != nil || typ != record.TypeAlert || !bytes.Equal(data, []byte{record.AlertLevelFatal, byte(tc.alert)}) {
						return errors.New("raw server: did not get the client's alert")
					}
					return nil
				}()
			}()

			raw, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			c := ktls.Client(raw, ccfg)
			defer c.Close()
			c.SetDeadline(deadline)
			if err := c.Handshake(); err != nil {
				t.Fatal(err)
			}
			if o := c.Offload(); !o.TX || !o.RX {
				t.Fatalf("Offload() = %+v, want TX and RX", o)
			}
			start := time.Now()
			got, err := wiretest.ReadAll(c)
			t.Logf("read %q, %v, in %v", got, err, time.Since(start))
			if wiretest.IsTimeout(err) {
				t.Fatalf("Read timed out on a %d-byte ticket in 1-byte records", tc.size)
			}
			if tc.alert < 0 {
				if string(got) != "after" || err != io.EOF {
					t.Fatalf("read %q, %v; want %q to the end", got, err, "after")
				}
			} else {
				var ae tls.AlertError
				if len(got) != 0 || !errors.As(err, &ae) || int(ae) != tc.alert {
					t.Fatalf("read %q, %v; want the local alert %d", got, err, tc.alert)
				}
			}
			if err := <-peerErr; err != nil {
				t.Fatal(err)
			}
		})
	}
}
