package ktls

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/ktlsgo/ktls/internal/kernel"
	"github.com/ktlsgo/ktls/internal/record"
)

// setZerocopySendfile sets TLS_TX_ZEROCOPY_RO (Options.ZerocopySendfile)
// on a socket the kernel encrypts: with a NIC that encrypts, sendfile then
// skips the copy of the file's pages. It returns why not, where the
// kernel lacks it.
func (h *txHalf) setZerocopySendfile() error {
	return h.sock.setOption(kernel.FeatureTXZerocopyRO, kernel.SetTXZerocopyRO)
}

// readFromStep bounds one ReadFrom step. Between steps ReadFrom updates
// the key if one is due (from a regular file, a step is at most 2^12
// records of the 4 KiB or more that sendfile fills, far inside the margin
// afterWrite keeps; other sources take smaller steps, see readFromKernel),
// and checks that TCP still has the connection.
const readFromStep = 16 << 20

// readFromKernel copies r into the socket the kernel encrypts, in steps.
// h is locked.
func (h *txHalf) readFromKernel(r io.Reader) (int64, error) {
	lr, limited := r.(*io.LimitedReader)
	src := r
	if limited {
		src = lr.R
	}
	// sendfile from a regular file fills records of 4 KiB or more, so
	// afterWrite's estimate holds. Any other source can make a record of
	// every byte: splice and net's copy pass on what a socket or a pipe
	// holds as it comes, and write(2) what a reader returns. Its records
	// are counted as bytes, and a step makes no more than the margin
	// before the record limit, so that the check between steps comes in
	// time.
	stepLen := int64(readFromStep)
	perByte := !isRegularFile(src)
	if limit := h.recordLimit(); perByte && limit != 0 {
		stepLen = max(1, min(stepLen, int64(h.recordMargin())))
	}
	var written int64
	for {
		if err := h.failure(); err != nil {
			return written, err
		}
		if err := h.pendingUpdateLocked(); err != nil {
			return written, err
		}
		stepN := h.sizing.room(stepLen) // the records grow at the threshold
		step := &io.LimitedReader{R: r, N: stepN}
		if limited {
			// Keep the caller's limit in force: hand net the same shape
			// it knows, a LimitedReader around the source.
			step = &io.LimitedReader{R: lr.R, N: min(lr.N, stepN)}
		}
		n, err := h.readFromKernelStep(step)
		written += n
		if limited {
			lr.N -= n
		}
		h.sentRecordsConn(n)
		if err == nil {
			if perByte {
				err = h.afterRecords(uint64(n))
			} else {
				err = h.afterWrite(n)
			}
		}
		if err == nil && n > 0 {
			err = h.checkSent()
		}
		if err != nil || n < stepN || limited && lr.N <= 0 {
			return written, err
		}
	}
}

// isRegularFile reports whether r is a regular file, which net sends with
// sendfile(2).
func isRegularFile(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode().IsRegular()
}

// errClosedUnderTLS is the error for bytes that sendfile or splice took
// after TCP had closed the connection.
var errClosedUnderTLS = fmt.Errorf("the connection was closed, and the kernel's TLS layer reported bytes sent after it: %w", unix.EPIPE)

// checkSent makes sure the connection is still open after sendfile or
// splice reported bytes sent. Linux's TLS layer can lose a reset from the
// peer on that path: the socket error is cleared along the way, and from
// then on every record TCP refuses is still counted as sent, so sendfile
// and splice go on "succeeding" into a closed connection. In the lab a
// 64 MiB sendfile to a peer that reset after 256 KiB completed without an
// error in 6 runs of 48, on each of 6.1.192, 6.12.118 and 7.3.4
// (TestPeerClosesMidTransfer). poll(2) still reports the hangup. Plain
// writes keep the error (TestWritesAfterPeerReset) and are not checked.
// h is locked.
func (h *txHalf) checkSent() error {
	var (
		revents int16
		soerr   int
		serr    error
	)
	err := h.sock.rawConn().Control(func(fd uintptr) {
		if revents, serr = pollNow(fd, unix.POLLOUT); serr != nil {
			serr = os.NewSyscallError("poll", serr)
			return
		}
		if revents&unix.POLLERR != 0 {
			if soerr, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR); serr != nil {
				serr = os.NewSyscallError("getsockopt", serr)
			}
		}
	})
	if err == nil {
		err = serr
	}
	if err == nil {
		switch {
		case soerr != 0:
			err = os.NewSyscallError("write", unix.Errno(soerr))
		case revents&(unix.POLLHUP|unix.POLLERR) != 0:
			err = errClosedUnderTLS
		default:
			return nil
		}
	}
	h.err = h.sock.opError("write", err)
	return h.err
}

// readFromKernelStep copies one step of readFromKernel. h is locked.
func (h *txHalf) readFromKernelStep(r io.Reader) (int64, error) {
	src, remain := r, int64(-1)
	lr, limited := r.(*io.LimitedReader)
	if limited {
		src, remain = lr.R, lr.N
		if remain <= 0 {
			return 0, nil
		}
	}
	var (
		n   int64
		err error
	)
	if f, ok := src.(*os.File); ok && isPipe(f) {
		// net's own ReadFrom would read a pipe into user space.
		n, err = h.sock.spliceFromPipe(f, remain)
		if limited {
			lr.N -= n
		}
	} else if rf, ok := h.sock.conn.(io.ReaderFrom); ok {
		// A *net.TCPConn: sendfile for files, splice for sockets, plain
		// writes otherwise; all of it into the kernel's TLS layer.
		n, err = rf.ReadFrom(r)
	} else {
		// kernelWriter has no ReadFrom of its own to come back to.
		n, err = io.Copy(kernelWriter{h}, r)
	}
	if err != nil {
		err = h.writeErrorLocked(h.sock.opError("write", err))
	}
	return n, err
}

// kernelWriter writes through the kernel with h already locked.
type kernelWriter struct{ h *txHalf }

func (w kernelWriter) Write(b []byte) (int, error) { return w.h.writeKernel(b) }

func isPipe(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeNamedPipe != 0
}

// spliceChunk is the most one splice call moves.
const spliceChunk = 1 << 20

// spliceFromPipe splices from a pipe into the socket until the pipe's
// writer closes it, or remain bytes (-1: no limit).
func (s socket) spliceFromPipe(f *os.File, remain int64) (int64, error) {
	prc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var pfd int
	prc.Control(func(fd uintptr) { pfd = int(fd) })
	src := s.rawConn()
	var written int64
	for remain != 0 {
		// Ask for exactly what the pipe holds. Asked for more, the
		// kernel passes MSG_MORE with the last piece, and its TLS layer
		// holds that piece back in an open record, waiting for more that
		// may not come until the reader has seen it.
		avail, err := unix.IoctlGetInt(pfd, unix.TIOCINQ) // FIONREAD
		if err != nil {
			return written, os.NewSyscallError("ioctl FIONREAD", err)
		}
		chunk := min(max(avail, 1), spliceChunk)
		if remain > 0 && remain < int64(chunk) {
			chunk = int(remain)
		}
		var (
			n    int64
			serr error
		)
		err = src.Write(func(sfd uintptr) bool {
			for {
				n, serr = unix.Splice(pfd, nil, int(sfd), nil, chunk, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
				if serr != unix.EINTR {
					return true
				}
			}
		})
		if err != nil {
			return written, err
		}
		switch {
		case serr == unix.EAGAIN:
			// The pipe is empty or the socket full, or both; splice
			// doesn't say which. Wait for each in turn: a wait on the
			// wrong one would never end.
			if err := prc.Read(ready(unix.POLLIN)); err != nil {
				return written, err
			}
			if err := src.Write(ready(unix.POLLOUT)); err != nil {
				return written, err
			}
			continue
		case serr != nil:
			return written, os.NewSyscallError("splice", serr)
		case n == 0:
			return written, nil // the pipe's writer closed it
		}
		written += n
		if remain > 0 {
			remain -= n
		}
	}
	return written, nil
}

// ready returns a RawConn callback that is done when poll(2) reports one
// of events on the descriptor, or an error or hangup. Asking poll, rather
// than trying and waiting for the poller's next edge, can't miss readiness
// that came before the wait began.
func ready(events int16) func(fd uintptr) bool {
	return func(fd uintptr) bool {
		revents, err := pollNow(fd, events)
		return err != nil || revents != 0
	}
}

// pollNow asks poll(2), without waiting, which of events the descriptor
// has, along with POLLERR and POLLHUP, which poll always reports.
func pollNow(fd uintptr, events int16) (revents int16, err error) {
	pfd := []unix.PollFd{{Fd: int32(fd), Events: events}}
	for {
		_, err = unix.Poll(pfd, 0)
		if err != unix.EINTR {
			return pfd[0].Revents, err
		}
	}
}

// writeToKernel copies what the kernel decrypts to w. relay, if not nil,
// is the sending side of w, another *Conn, locked for the relay
// (Conn.lockRelay). h is locked.
func (h *rxHalf) writeToKernel(w io.Writer, relay *txHalf) (int64, error) {
	// Into another *Conn, the relay writes as that Conn's writer
	// (lockRelay holds its lock), so it does what a writer does: a
	// KeyUpdate the peer asked for goes before the next chunk, a fatal
	// error from its read side stops it, and the records count towards
	// the key's limit. Splice also goes down the same kernel path as
	// ReadFrom's sendfile, which can lose a reset (see checkSent), so it
	// gets the same check every readFromStep bytes and before the copy is
	// reported done. That check has not been seen to fire here: in 84
	// relays to a peer that reset (TestRelayToResetPeer), splice itself
	// failed with EPIPE or ECONNRESET every time. Whatever does not go by
	// splice goes through kernelWriter: the Conn's own Write would wait
	// for the lock the relay holds.
	var dst syscall.RawConn
	d := relay
	if d != nil {
		dst = d.sock.rawConn()
		w = kernelWriter{d}
	} else {
		var ok bool
		if dst, ok = spliceTarget(w); !ok {
			return h.copyKernel(w)
		}
	}
	p, err := newSplicePipe()
	if err != nil {
		return h.copyKernel(w)
	}
	defer p.close()
	var written, unchecked int64 // unchecked: into d since its last checkSent
	for {
		n, err := h.sock.spliceToPipe(p)
		switch {
		case errors.Is(err, unix.EINVAL), err == nil && n == 0:
			// EINVAL: the next record is not application data, and
			// splice can't carry its content type. 0: the stream ended,
			// or splice took an empty application_data record, which is
			// legal. Either way recvmsg takes the next record, and tells
			// them apart.
			m, err := h.controlRecord(w, err == nil)
			written += m
			if err == io.EOF {
				err = nil
				if d != nil && unchecked > 0 {
					err = d.checkSent()
				}
				return written, err
			}
			if err != nil {
				return written, err
			}
			continue
		case err != nil:
			return written, h.readError(err)
		}
		h.useless = 0
		// From here the n bytes in the pipe exist nowhere else: they
		// have left the socket. Whatever fails, they go to w or stay
		// for the next Read (rescuePipe), never to the pipe's close.
		if d != nil {
			err := d.failure()
			if err == nil {
				err = d.pendingUpdateLocked()
			}
			if err != nil {
				// d can't be written any more: writing the data after
				// all would break its key schedule or its alert.
				_, rerr := h.rescuePipe(p, n, w, false)
				if rerr == nil {
					rerr = err
				}
				return written, rerr
			}
		}
		m, err := p.drainTo(dst, n)
		written += m
		if err != nil {
			// Splice into dst failed: dst may not take splice at all (a
			// file system without it), or it failed. Either way user
			// space is the only way left to dst.
			m, werr := h.rescuePipe(p, n-m, w, true)
			written += m
			if werr != nil {
				return written, werr
			}
			// dst took through write(2) what splice could not give it:
			// go on that way.
			m, err = h.copyKernel(w)
			written += m
			if err == nil && d != nil && unchecked > 0 {
				err = d.checkSent()
			}
			return written, err
		}
		if d == nil {
			continue
		}
		d.sentRecordsConn(m)
		if err := d.afterWrite(m); err != nil {
			return written, err
		}
		if unchecked += m; unchecked >= readFromStep {
			unchecked = 0
			if err := d.checkSent(); err != nil {
				return written, err
			}
		}
	}
}

// rescuePipe takes the left bytes in the pipe back into user space after
// a splice into the destination failed, offers them to w once if write
// is set, and keeps what w didn't take for the next Read. It returns
// what w took, and w's error. h is locked, and h.pending is empty.
func (h *rxHalf) rescuePipe(p *splicePipe, left int64, w io.Writer, write bool) (int64, error) {
	if left <= 0 {
		return 0, nil
	}
	buf := make([]byte, left)
	if err := p.readFull(buf); err != nil {
		// Not seen to happen: the bytes are in the pipe. Should it, the
		// stream has a hole in it, and reading on must fail rather than
		// skip it.
		h.err = fmt.Errorf("ktls: %d decrypted bytes could not be taken back from the splice pipe: %w", left, err)
		return 0, h.err
	}
	if !write {
		h.pending = buf
		return 0, nil
	}
	m, err := w.Write(buf)
	if err == nil && m < len(buf) {
		err = io.ErrShortWrite
	}
	if err != nil {
		h.pending = buf[m:]
	}
	return int64(m), err
}

// copyKernel is writeToKernel for a writer splice can't reach. What w
// doesn't take stays for the next Read. h is locked.
func (h *rxHalf) copyKernel(w io.Writer) (int64, error) {
	return copyKeeping(w, make([]byte, 64<<10), h.readKernel, h.keepPendingLocked)
}

// controlRecord reads the record that stopped a splice: an alert, a
// handshake message, the end of the stream, or, if data came first after
// all, data for w. afterEmpty says splice returned 0, which it does both
// at the end of the stream and for an empty record it took: unless the
// stream ended, that record counts as useless. h is locked.
func (h *rxHalf) controlRecord(w io.Writer, afterEmpty bool) (int64, error) {
	n, typ, buf, err := h.recvRecord(nil, h.lendBuf(record.MaxPlaintext))
	if err != nil {
		return 0, h.readError(err)
	}
	if afterEmpty && typ != 0 {
		if err := h.uselessRecord(); err != nil {
			return 0, err
		}
	}
	if data, err := h.recordLocked(typ, buf[:n]); !data || err != nil {
		return 0, err
	}
	m, err := w.Write(buf[:n])
	if err == nil && m < n {
		err = io.ErrShortWrite
	}
	if err != nil {
		h.pending = buf[m:n] // for the next Read
	}
	return int64(m), err
}

// spliceTarget returns the raw connection splice writes to for w: a
// file or a socket. (Another *Conn is Conn.lockRelay's.)
func spliceTarget(w io.Writer) (syscall.RawConn, bool) {
	switch d := w.(type) {
	case *os.File:
		rc, err := d.SyscallConn()
		if err != nil || !spliceWritable(rc) {
			return nil, false
		}
		return rc, true
	case syscall.Conn:
		switch w.(type) {
		case interface{ CloseWrite() error }: // TCP and Unix stream sockets
			rc, err := d.SyscallConn()
			if err != nil {
				return nil, false
			}
			return rc, true
		}
	}
	return nil, false
}

// spliceWritable reports whether splice(2) can write to the file: it
// refuses files opened with O_APPEND (EINVAL), and O_DIRECT ones need
// aligned writes. It fails only after the data has left the socket, so
// such files are found here and written from user space.
func spliceWritable(rc syscall.RawConn) bool {
	var (
		flags int
		ferr  error
	)
	if err := rc.Control(func(fd uintptr) { flags, ferr = unix.FcntlInt(fd, unix.F_GETFL, 0) }); err != nil || ferr != nil {
		return false
	}
	if flags&unix.O_ACCMODE == unix.O_RDONLY || flags&(unix.O_APPEND|unix.O_DIRECT|unix.O_PATH) != 0 {
		return false
	}
	return true
}

// splicePipe is the pipe that splice moves data through between two
// sockets: socket to pipe, pipe to socket.
type splicePipe struct{ r, w int }

func newSplicePipe() (*splicePipe, error) {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		return nil, err
	}
	// A bigger pipe means fewer calls; the default limit for an
	// unprivileged process is 1 MiB, and failing to grow is harmless.
	unix.FcntlInt(uintptr(fds[1]), unix.F_SETPIPE_SZ, spliceChunk)
	return &splicePipe{r: fds[0], w: fds[1]}, nil
}

func (p *splicePipe) close() {
	unix.Close(p.r)
	unix.Close(p.w)
}

// spliceToPipe moves decrypted data from the socket into the pipe,
// waiting in the poller for data.
func (s socket) spliceToPipe(p *splicePipe) (int64, error) {
	var (
		n    int64
		serr error
	)
	err := s.rawConn().Read(func(fd uintptr) bool {
		for {
			n, serr = unix.Splice(int(fd), nil, p.w, nil, spliceChunk, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
			if serr == unix.EINTR {
				continue
			}
			return serr != unix.EAGAIN
		}
	})
	if err != nil {
		return 0, s.opError("read", err)
	}
	if serr != nil {
		return 0, os.NewSyscallError("splice", serr)
	}
	return n, nil
}

// readFull reads len(b) bytes that are in the pipe.
func (p *splicePipe) readFull(b []byte) error {
	for got := 0; got < len(b); {
		n, err := unix.Read(p.r, b[got:])
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return os.NewSyscallError("read", err)
		case n == 0:
			return io.ErrUnexpectedEOF
		}
		got += n
	}
	return nil
}

// drainTo moves n bytes from the pipe to dst.
func (p *splicePipe) drainTo(dst syscall.RawConn, n int64) (int64, error) {
	var moved int64
	var serr error
	err := dst.Write(func(fd uintptr) bool {
		for moved < n {
			m, err := unix.Splice(p.r, nil, int(fd), nil, int(n-moved), unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
			switch {
			case err == unix.EINTR:
				continue
			case err == unix.EAGAIN:
				return false
			case err != nil:
				serr = os.NewSyscallError("splice", err)
				return true
			}
			moved += m
		}
		return true
	})
	if err == nil {
		err = serr
	}
	return moved, err
}
