package ktls

import (
	"sync"

	"github.com/ktlsgo/ktls/internal/record"
)

// A recordBuf is the receiving side's record buffer: where a record's
// plaintext goes when the reader's own buffer can't take it whole. A
// control record must fit whole in recvmsg(2)'s buffer, the kernel
// decrypts straight into the reader's memory only when the read holds the
// record (see rxHalf.smallReadBuf), and a deferred RX reads a whole record
// through crypto/tls before the kernel takes over.
//
// At 18 KiB it would be most of what an idle connection holds, so a
// connection holds one only while it reads, or while plaintext in it waits
// to be read (rxHalf.releaseBufLocked), and otherwise gives it back to a
// pool that all connections share. A connection blocked in Read, as an idle
// HTTP keep-alive connection is, holds none either: socket.recvRecord
// takes the buffer only once the socket has data, and gives it back each
// time the socket turns out to have none.
//
// A buffer goes back to the pool with the plaintext it held, uncleared:
// the pool is this file's, and every reader of a buffer (readKernel,
// controlRecord, readDeferred) reads only the n bytes recvmsg(2) or
// crypto/tls has just written into it, so no connection can be handed
// bytes another one read. That plaintext is no more exposed than in
// crypto/tls's own record buffers, which are never cleared either.
// WriteTo hands a slice of the buffer to the destination's Write, as
// bufio.Writer hands its own; a Writer that kept the slice, against
// io.Writer's contract, could see later plaintext of any connection.
// Clearing each buffer on its way back would cost a pass over 18 KiB per
// record read in small pieces, about as much as the copy out again.
type recordBuf struct {
	b    []byte // the buffer, while held
	size int    // how long a read the next take is for
}

// recordBufSize fits a record's plaintext, and for the deferred RX a whole
// TLS 1.2 record.
const recordBufSize = record.MaxCiphertextTLS12

var recordBufs = sync.Pool{New: func() any { return new([recordBufSize]byte) }}

// take returns the buffer, size bytes long, taking one from the pool if
// none is held. A size over recordBufSize (benchmarks only, see
// rxSmallReadBuf) gets a buffer of its own, which is kept, as it was
// before there was a pool, so that those benchmarks measure the size and
// not an allocation per record.
func (r *recordBuf) take() []byte {
	if cap(r.b) < r.size {
		r.give()
		if r.size > recordBufSize {
			r.b = make([]byte, r.size)
		} else {
			r.b = recordBufs.Get().(*[recordBufSize]byte)[:]
		}
	}
	return r.b[:r.size]
}

// give gives the pool's buffer back, if one is held. Nothing may refer to
// it after.
func (r *recordBuf) give() {
	if cap(r.b) != recordBufSize {
		return // none, or a benchmark's own
	}
	recordBufs.Put((*[recordBufSize]byte)(r.b[:recordBufSize]))
	r.b = nil
}
