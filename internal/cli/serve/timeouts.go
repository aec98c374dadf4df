package serve

import (
	"io"
	"net/http"
	"time"
)

// writeStep bounds what one write deadline covers when a body goes out
// with ReadFrom (sendfile): a client must take this much within the write
// timeout (256 KiB in 60 s is about 4 KiB/s), however large the file.
const writeStep = 256 << 10

// bounded bounds what a client can make a request's handler wait for.
//
// net/http's WriteTimeout bounds a whole response, which would cut a
// large file to a slow client that still reads. Here every write instead
// gets a deadline of its own, moved forward on progress, as nginx's
// send_timeout: a client that stops reading is dropped after
// writeTimeout, and one that reads slowly is not.
//
// A request body is read (by net/http, which discards what the handler
// left, to keep the connection) under a deadline of readTimeout from the
// start of the handler: a file server reads no bodies, and a client
// trickling one can't hold the connection. Requests without a body get
// no read deadline here: net/http's background read would take its
// expiry for the client hanging up.
//
// After the handler, net/http reads what is left of the body before it
// flushes the response, so the last write deadline leaves room for that
// read first: without it, a body that takes longer than the write
// timeout would cost the client its response.
func bounded(h http.Handler, readTimeout, writeTimeout time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		hasBody := r.Body != nil && r.Body != http.NoBody
		if readTimeout > 0 && hasBody {
			rc.SetReadDeadline(time.Now().Add(readTimeout))
		}
		if writeTimeout <= 0 {
			h.ServeHTTP(w, r)
			return
		}
		rc.SetWriteDeadline(time.Now().Add(writeTimeout))
		h.ServeHTTP(&progressWriter{ResponseWriter: w, rc: rc, timeout: writeTimeout, sendfile: r.ProtoMajor == 1}, r)
		last := writeTimeout
		if hasBody {
			last += readTimeout
		}
		rc.SetWriteDeadline(time.Now().Add(last))
	})
}

// progressWriter moves the write deadline forward before each write.
// On HTTP/1.1 it splits a ReadFrom into steps of writeStep bytes, each
// under its own deadline, still as ReadFrom so that sendfile stays; on
// HTTP/2, which has no sendfile, a ReadFrom is a copy through Write, so
// each buffer's write has its own deadline (the stream's).
type progressWriter struct {
	http.ResponseWriter
	rc       *http.ResponseController
	timeout  time.Duration
	sendfile bool // HTTP/1.1: net/http hands ReadFrom to the connection
}

func (w *progressWriter) arm() { w.rc.SetWriteDeadline(time.Now().Add(w.timeout)) }

func (w *progressWriter) Write(b []byte) (int, error) {
	w.arm()
	return w.ResponseWriter.Write(b)
}

func (w *progressWriter) WriteHeader(code int) {
	w.arm()
	w.ResponseWriter.WriteHeader(code)
}

func (w *progressWriter) ReadFrom(r io.Reader) (int64, error) {
	rf, ok := w.ResponseWriter.(io.ReaderFrom)
	if !ok || !w.sendfile {
		return io.Copy(writerOnly{w}, r)
	}
	// One level of io.LimitedReader around an *os.File is what sendfile
	// recognises, so a limit the caller set (http.ServeContent's, for a
	// range) is folded into each step's instead of wrapped by it.
	src, remain := r, int64(-1)
	if lr, ok := r.(*io.LimitedReader); ok {
		src, remain = lr.R, lr.N
	}
	var total int64
	for remain != 0 {
		n := int64(writeStep)
		if remain > 0 {
			n = min(n, remain)
		}
		step := &io.LimitedReader{R: src, N: n}
		w.arm()
		m, err := rf.ReadFrom(step)
		total += m
		if remain > 0 {
			remain -= m
		}
		if lr, ok := r.(*io.LimitedReader); ok {
			lr.N -= m
		}
		if err != nil || step.N > 0 {
			return total, err // an error, or the end of src
		}
	}
	return total, nil
}

func (w *progressWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// writerOnly hides ReadFrom, so io.Copy doesn't come back to it.
type writerOnly struct{ io.Writer }
