// Package recordio sits between crypto/tls and the TCP connection during the
// handshake, so the kernel can take over the record layer at the exact
// byte where crypto/tls stops.
//
// crypto/tls reads ahead: given a socket, it may pull in bytes past the
// last record of the handshake, and those bytes would then be lost to the
// kernel. A Conn feeds crypto/tls one whole record at a time and reads the
// socket only up to that record's end, so after the handshake nothing
// beyond what crypto/tls consumed has left the socket. While doing so it
// watches the records in both directions, which is how the caller learns
// what crypto/tls does not expose: the TLS 1.2 server random, how many
// records went each way, and the newest of those that may be protected,
// from which Records.Sequence12 and Sequence13 prove how many were under
// each key.
//
// When offload is off, the Conn switches to passthrough and gets out of
// the way: reads and writes go straight to the socket.
package recordio

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"

	"github.com/ktlsgo/ktls/internal/record"
)

// Read and write modes.
const (
	modeWatch       int32 = iota // exact record reads, watched writes
	modePassthrough              // straight to the socket
	modeHandedOff                // the kernel has this direction; crypto/tls must not touch it
)

// tailLimit bounds the bytes of the newest possibly protected records a
// Conn keeps of what crypto/tls wrote, for the caller to open them.
//
// A handshake's flight can be far larger (a TLS 1.3 server's Certificate
// alone may reach 256 KiB, its CertificateRequest 64 KiB), so keeping
// everything would let the flight size decide the memory, and keeping the
// oldest, as this package once did, loses exactly the records that matter:
// the last ones under the handshake keys and every one under the
// application keys. So a Conn counts every record and keeps only the
// newest, and the caller proves from the oldest record kept that all the
// ones before it were under the handshake keys (see Records.Sequence13).
// What it must keep is the records under the application keys that
// crypto/tls wrote before the handshake returned (a TLS 1.3 server's
// session ticket: one NewSessionTicket, at most 64 KiB, so at most five
// records) plus one record under the handshake keys: 128 KiB holds seven
// records of the largest size crypto/tls writes. Where it would not, the
// proof fails and offload is refused; nothing is guessed.
const tailLimit = 128 << 10

// ErrHandedOff is returned to crypto/tls when it reads after the kernel has
// taken over the receive direction.
var ErrHandedOff = errors.New("recordio: the kernel has taken over this direction")

// A Conn wraps the TCP connection under a crypto/tls Conn.
type Conn struct {
	net.Conn
	isClient bool

	rmode atomic.Int32
	wmode atomic.Int32
	eof   atomic.Bool // the socket's read side reached its end

	// Read side, used by crypto/tls only, one call at a time.
	rbuf   []byte // the current record
	need   int    // its length while it is being read, else 0
	ready  int    // how much of it crypto/tls may have: the header, then all
	served int    // how much of it crypto/tls has had
	onRead func(record []byte)

	// Write side.
	wmu       sync.Mutex
	wpartial  assembler // a record split across writes
	translate func(record []byte) error

	smu   sync.Mutex // guards stats
	stats *stats     // nil once neither direction is watched
}

// stats is what the watch saw of the records going each way. It is
// allocated apart from the Conn, and dropped as the watch ends, so that a
// Conn that outlives its handshake (it lives as long as the crypto/tls
// Conn over it) costs little.
type stats struct {
	in  direction // records read
	out direction // records written
}

// direction is what was seen of the records going one way.
type direction struct {
	records  int
	sawCCS   bool
	afterCCS int    // records after the first ChangeCipherSpec
	appData  int    // records of outer type application_data
	hello    []byte // the start of the handshake stream, for the ServerHello
	// The newest records that may be protected, and their bytes. keep is
	// how many bytes may be kept; 0 keeps only the newest record, and
	// stopped keeps none.
	tail    []Record
	tailLen int
	keep    int
	stopped bool
}

// helloPrefix is how much of a hello message holds the random: type (1),
// length (3), version (2), random (32).
const helloPrefix = 38

// NewConn wraps c, the TCP connection of a client or a server.
func NewConn(c net.Conn, isClient bool) *Conn {
	// Of the records read, the newest one suffices: what the caller must
	// prove of them is that the last one before the handoff was under the
	// handshake keys, which implies the same of all before it.
	return &Conn{Conn: c, isClient: isClient, stats: &stats{out: direction{keep: tailLimit}}}
}

// Read gives crypto/tls at most the rest of one record.
func (c *Conn) Read(b []byte) (int, error) {
	if c.served < c.ready {
		n := copy(b, c.rbuf[c.served:c.ready])
		c.served += n
		return n, nil
	}
	switch c.rmode.Load() {
	case modePassthrough:
		n, err := c.Conn.Read(b)
		if err == io.EOF {
			c.eof.Store(true)
		}
		return n, err
	case modeHandedOff:
		return 0, ErrHandedOff
	}
	if err := c.fill(); err != nil {
		return 0, err
	}
	n := copy(b, c.rbuf[c.served:c.ready])
	c.served += n
	return n, nil
}

// fill reads exactly one record: its header, then as many bytes as the
// header says. The header is served on its own, before the body is read,
// as crypto/tls reads from a socket: it checks the header first and
// refuses many at once (the first bytes of a plain HTTP request or of an
// SSLv2 hello, a wrong version, a length over its limit), without waiting
// for a body that may never come. Only crypto/tls knows which headers it
// accepts at this point of the handshake, so every one goes to it; if it
// reads on, fill reads the body. After an error, such as a deadline, the
// next call resumes.
func (c *Conn) fill() error {
	if c.need == 0 {
		c.rbuf = c.rbuf[:0]
		c.need = record.HeaderLen
		c.served, c.ready = 0, 0
	}
	for len(c.rbuf) < c.need {
		if cap(c.rbuf) < c.need {
			nb := make([]byte, len(c.rbuf), c.need)
			copy(nb, c.rbuf)
			c.rbuf = nb
		}
		n, err := c.Conn.Read(c.rbuf[len(c.rbuf):c.need])
		c.rbuf = c.rbuf[:len(c.rbuf)+n]
		if len(c.rbuf) == record.HeaderLen && c.need == record.HeaderLen {
			length := int(binary.BigEndian.Uint16(c.rbuf[3:5]))
			if length > record.MaxCiphertextTLS12 {
				// Not a record we could frame. Give crypto/tls the header,
				// which it rejects with the right alert, and step aside.
				c.rmode.Store(modePassthrough)
				c.need, c.ready = 0, record.HeaderLen
				return nil
			}
			c.need += length
			if length > 0 {
				// An error that came with the header comes again on the
				// next read, if crypto/tls wants the body.
				if err == io.EOF {
					c.eof.Store(true)
				}
				c.ready = record.HeaderLen
				return nil
			}
		}
		if err != nil {
			if err == io.EOF {
				c.eof.Store(true)
				if len(c.rbuf) > 0 {
					err = io.ErrUnexpectedEOF
				}
			}
			return err
		}
	}
	c.see(false, c.rbuf)
	if c.onRead != nil {
		c.onRead(c.rbuf)
	}
	c.ready, c.need = len(c.rbuf), 0
	return nil
}

// Write writes b and watches the records in it.
func (c *Conn) Write(b []byte) (int, error) {
	switch c.wmode.Load() {
	case modePassthrough:
		return c.Conn.Write(b)
	case modeHandedOff:
		return c.translateWrite(b)
	}
	n, err := c.Conn.Write(b)
	c.wmu.Lock()
	// Only what reached the socket counts. A short write fails
	// crypto/tls's connection, so nothing of this stream is sent again.
	c.wpartial.feed(b[:n], func(rec []byte) error {
		c.see(true, rec)
		return nil
	})
	c.wmu.Unlock()
	return n, err
}

// translateWrite hands each complete record crypto/tls writes after the
// kernel took over transmission to the translate function, which decrypts
// it and sends it again through the kernel.
func (c *Conn) translateWrite(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.translate == nil {
		return 0, ErrHandedOff
	}
	if err := c.wpartial.feed(b, c.translate); err != nil {
		return 0, err
	}
	return len(b), nil
}

// An assembler cuts a byte stream written in pieces of any size into
// records. It holds at most one incomplete record: a header of at most 5
// bytes and a body of at most 64 KiB, whatever the writer does.
type assembler struct {
	partial []byte
}

// feed calls fn for each record that b completes, in order, and keeps the
// start of an incomplete one for the next call. fn must not keep the
// slice it is given. If fn fails, feed stops and returns the error,
// keeping the record fn refused and what follows it.
func (a *assembler) feed(b []byte, fn func(record []byte) error) error {
	for {
		if len(a.partial) > 0 {
			// Complete the header first, then, once it says how long
			// the record is, the record.
			take := min(recordEnd(a.partial)-len(a.partial), len(b))
			a.partial = append(a.partial, b[:take]...)
			b = b[take:]
			if len(a.partial) < recordEnd(a.partial) {
				if len(b) == 0 {
					return nil
				}
				continue // the header just became whole
			}
			if err := fn(a.partial); err != nil {
				a.partial = append(a.partial, b...)
				return err
			}
			a.partial = a.partial[:0]
			continue
		}
		if len(b) == 0 {
			return nil
		}
		end := recordEnd(b)
		if len(b) < end {
			// Copy, so the caller's slice can be reused.
			a.partial = append(a.partial[:0], b...)
			return nil
		}
		if err := fn(b[:end]); err != nil {
			a.partial = append(a.partial[:0], b...)
			return err
		}
		b = b[end:]
	}
}

// recordEnd returns the length of the record that b starts, or the header
// length while b holds less than a header.
func recordEnd(b []byte) int {
	if len(b) < record.HeaderLen {
		return record.HeaderLen
	}
	return record.HeaderLen + int(binary.BigEndian.Uint16(b[3:5]))
}

// see records a record going one way: written, or read.
func (c *Conn) see(written bool, rec []byte) {
	c.smu.Lock()
	defer c.smu.Unlock()
	if c.stats == nil {
		return
	}
	d := &c.stats.in
	if written {
		d = &c.stats.out
	}
	d.see(rec)
}

func (d *direction) see(rec []byte) {
	r := Record{SinceCCS: -1, AppData: d.appData}
	switch {
	case d.sawCCS:
		r.SinceCCS = d.afterCCS
		d.afterCCS++
	case rec[0] == record.TypeChangeCipherSpec:
		d.sawCCS = true
	case rec[0] == record.TypeHandshake && len(d.hello) < helloPrefix:
		body := rec[record.HeaderLen:]
		d.hello = append(d.hello, body[:min(len(body), helloPrefix-len(d.hello))]...)
	}
	d.records++
	if rec[0] == record.TypeApplicationData {
		d.appData++
	}
	if d.stopped || (r.SinceCCS < 0 && rec[0] != record.TypeApplicationData) {
		return
	}
	// Drop the oldest records until this one fits, keeping it even when
	// it alone is over the limit.
	drop := 0
	for drop < len(d.tail) && d.tailLen+len(rec) > d.keep {
		d.tailLen -= len(d.tail[drop].Bytes)
		d.tail[drop] = Record{}
		drop++
	}
	d.tail = append(d.tail[drop:], r)
	d.tail[len(d.tail)-1].Bytes = append([]byte(nil), rec...)
	d.tailLen += len(rec)
}

// snapshot returns what d saw, and stops keeping records.
func (d *direction) snapshot() Records {
	r := Records{Total: d.records, SinceCCS: d.afterCCS, AppData: d.appData, Tail: d.tail}
	if !d.sawCCS {
		r.SinceCCS = -1
	}
	d.tail, d.tailLen, d.stopped = nil, 0, true
	return r
}

// ServerRandom returns the random of the ServerHello, once it has passed,
// and until neither direction is watched.
func (c *Conn) ServerRandom() (random [32]byte, ok bool) {
	return c.random(!c.isClient, 2) // server_hello
}

// ClientRandom returns the random of the ClientHello, once it has passed,
// and until neither direction is watched.
func (c *Conn) ClientRandom() (random [32]byte, ok bool) {
	return c.random(c.isClient, 1) // client_hello
}

// random returns the random of the first hello written, or read.
func (c *Conn) random(written bool, msgType uint8) (random [32]byte, ok bool) {
	c.smu.Lock()
	defer c.smu.Unlock()
	if c.stats == nil {
		return random, false
	}
	d := &c.stats.in
	if written {
		d = &c.stats.out
	}
	if len(d.hello) < helloPrefix || d.hello[0] != msgType {
		return random, false
	}
	copy(random[:], d.hello[6:38])
	return random, true
}

// RecordsSinceCCS returns how many records were read and written after
// each side's ChangeCipherSpec: in TLS 1.2 those are the records under the
// new keys, starting with Finished, so these are the next sequence
// numbers. Once neither direction is watched, it returns 0, 0.
func (c *Conn) RecordsSinceCCS() (read, written int) {
	c.smu.Lock()
	defer c.smu.Unlock()
	if c.stats == nil {
		return 0, 0
	}
	return c.stats.in.afterCCS, c.stats.out.afterCCS
}

// RecordsRead returns how many records crypto/tls has been given, or 0
// once neither direction is watched.
func (c *Conn) RecordsRead() int {
	c.smu.Lock()
	defer c.smu.Unlock()
	if c.stats == nil {
		return 0
	}
	return c.stats.in.records
}

// Written returns what crypto/tls has written: the counts, and the newest
// records that may be under new keys (those after its ChangeCipherSpec,
// and any of outer type application_data). From then on, no more records
// are kept, only counted. Once neither direction is watched, it returns
// the zero Records.
func (c *Conn) Written() Records { return c.records(false) }

// ReadRecords returns what crypto/tls has been given to read, as Written
// does; of the records that may be under new keys, only the newest is
// kept.
func (c *Conn) ReadRecords() Records { return c.records(true) }

// records returns what the watch holds of one direction: read if in,
// else written.
func (c *Conn) records(in bool) Records {
	c.smu.Lock()
	defer c.smu.Unlock()
	switch {
	case c.stats == nil:
		return Records{SinceCCS: -1}
	case in:
		return c.stats.in.snapshot()
	}
	return c.stats.out.snapshot()
}

// Buffered reports whether part of a record has been read from the socket
// but not yet given to crypto/tls. After a handshake it is always false:
// crypto/tls stops at a record boundary.
func (c *Conn) Buffered() bool {
	return len(c.rbuf) > c.served
}

// watching reports whether the Conn watches either direction still.
func (c *Conn) watching() bool {
	return c.rmode.Load() == modeWatch || c.wmode.Load() == modeWatch
}

// SawEOF reports whether a read of the socket returned io.EOF. crypto/tls
// returns io.EOF both for a close_notify and for a connection that just
// ended; it never reads the socket again after a close_notify, so if the
// socket did reach its end, the close_notify never came.
func (c *Conn) SawEOF() bool { return c.eof.Load() }

// OnRead sets a function to see every record crypto/tls is given from now
// on. It must be set while no Read is running.
func (c *Conn) OnRead(fn func(record []byte)) { c.onRead = fn }

// The calls below end the watch of a direction. A Conn lives as long as
// the crypto/tls Conn over it, which may be as long as the connection, so
// each lets go of what the watch no longer needs: the kept records (in
// Written and ReadRecords), the record buffer once crypto/tls has had all
// of it, and, once neither direction is watched, the counts and the hello
// randoms.

// ReadPassthrough lets crypto/tls read the socket directly from now on.
// It must be called while no Read is running.
func (c *Conn) ReadPassthrough() {
	c.rmode.Store(modePassthrough)
	c.onRead = nil
	c.ReadRecords()
	c.releaseRead()
	c.releaseStats()
}

// WritePassthrough lets crypto/tls write the socket directly from now on.
func (c *Conn) WritePassthrough() {
	c.wmode.Store(modePassthrough)
	c.Written()
	c.wmu.Lock()
	// What was written of a record split across writes reached the
	// socket already; the rest will too, directly.
	c.wpartial = assembler{}
	c.wmu.Unlock()
	c.releaseStats()
}

// HandOffRead marks the receive direction as the kernel's: crypto/tls
// reads fail from now on. It must be called while no Read is running.
func (c *Conn) HandOffRead() {
	c.rmode.Store(modeHandedOff)
	c.onRead = nil
	c.releaseRead()
	c.releaseStats()
}

// HandOffWrite marks the transmit direction as the kernel's. From now on,
// every record crypto/tls writes (an alert, or a reply to a KeyUpdate,
// while it still reads) goes to translate instead of the socket; with a
// nil translate, crypto/tls writes fail.
func (c *Conn) HandOffWrite(translate func(record []byte) error) {
	c.wmu.Lock()
	c.translate = translate
	c.wmu.Unlock()
	c.Written()
	c.wmode.Store(modeHandedOff)
	c.releaseStats()
}

// StopTranslating makes crypto/tls writes fail from now on.
func (c *Conn) StopTranslating() {
	c.wmu.Lock()
	c.translate = nil
	// Nothing more is assembled: a record crypto/tls had begun is
	// refused with the rest.
	c.wpartial = assembler{}
	c.wmu.Unlock()
}

// releaseRead drops the record buffer once crypto/tls has had all of it
// and no record is half read: after a handshake, it always has.
func (c *Conn) releaseRead() {
	if c.need == 0 && c.served >= c.ready {
		c.rbuf, c.served, c.ready = nil, 0, 0
	}
}

// releaseStats drops what the watch saw once neither direction is
// watched: the handoff has read it by then.
func (c *Conn) releaseStats() {
	if c.watching() {
		return
	}
	c.smu.Lock()
	c.stats = nil
	c.smu.Unlock()
}
