package recordio

import (
	"crypto/tls"
	"io"
	"testing"

	"github.com/ktlsgo/ktls/internal/lab/testcert"
	"github.com/ktlsgo/ktls/internal/lab/wiretest"
)

// handshake runs a TLS 1.3 handshake between two watching Conns over
// loopback TCP, and has the server send data, which the client reads.
func handshake(t *testing.T) (client, server *Conn) {
	t.Helper()
	craw, sraw := wiretest.TCPPair(t, "tcp")
	b := testcert.Get(testcert.ECDSA)
	client, server = NewConn(craw, true), NewConn(sraw, false)
	tc, ts := tls.Client(client, b.ClientConfig()), tls.Server(server, b.ServerConfig())
	if cerr, serr := wiretest.Handshake(tc, ts); cerr != nil || serr != nil {
		t.Fatalf("handshake: client: %v, server: %v", cerr, serr)
	}
	wrote := wiretest.Go(func() error { _, err := ts.Write(make([]byte, 4096)); return err })
	if _, err := io.ReadFull(tc, make([]byte, 4096)); err != nil {
		t.Fatal(err)
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	return client, server
}

// held names what a Conn still holds of its watch.
func held(c *Conn) []string {
	var h []string
	if c.rbuf != nil {
		h = append(h, "the record buffer")
	}
	if len(c.wpartial.partial) > 0 || cap(c.wpartial.partial) > 0 {
		h = append(h, "a partial record")
	}
	if c.stats != nil {
		h = append(h, "the stats")
	}
	return h
}

// TestWatchReleased checks that a Conn lets go of what the watch kept
// once neither direction is watched, however the directions leave it: the
// Conn lives as long as the crypto/tls Conn over it. Before, the record
// buffer (as large as the largest record read), the hello randoms and the
// counts stayed for the life of the connection.
func TestWatchReleased(t *testing.T) {
	for _, tt := range []struct {
		name string
		end  func(c *Conn)
	}{
		{"passthrough", func(c *Conn) { c.ReadPassthrough(); c.WritePassthrough() }},
		{"write passthrough first", func(c *Conn) { c.WritePassthrough(); c.ReadPassthrough() }},
		{"handed off", func(c *Conn) {
			c.HandOffWrite(func([]byte) error { return nil })
			c.HandOffRead()
			c.StopTranslating()
		}},
		{"TX handed off, RX on crypto/tls", func(c *Conn) {
			c.HandOffWrite(func([]byte) error { return nil })
			c.ReadPassthrough()
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			client, server := handshake(t)
			for _, c := range []*Conn{client, server} {
				if c.rbuf == nil || c.stats == nil {
					t.Fatal("the watch kept nothing to release: the test can't fail")
				}
				tt.end(c)
				if h := held(c); len(h) > 0 {
					t.Errorf("isClient %v: still held after the watch: %v", c.isClient, h)
				}
				if _, ok := c.ClientRandom(); ok {
					t.Errorf("isClient %v: ClientRandom still answers after the watch", c.isClient)
				}
			}
		})
	}
}

// TestWatchKeptWhileWatching checks that what the handoff still needs
// stays while one direction is watched: the randoms, and the records read
// (ReadRecords) after the written ones were taken.
func TestWatchKeptWhileWatching(t *testing.T) {
	client, _ := handshake(t)
	client.HandOffWrite(func([]byte) error { return nil })
	if _, ok := client.ClientRandom(); !ok {
		t.Error("ClientRandom is gone while the reads are watched")
	}
	if r := client.ReadRecords(); r.Total == 0 || len(r.Tail) == 0 {
		t.Errorf("ReadRecords = %+v while the reads are watched, want the records read", r)
	}
}
