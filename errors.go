package ktls

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/ktlsgo/ktls/internal/kernel"
)

// ErrNotSupported is what an Offload reason matches (errors.Is) when the
// kernel, or this system, can't offload the connection: no TLS ULP, a
// cipher suite or feature the kernel lacks.
var ErrNotSupported = kernel.ErrNotSupported

// ErrKeyUpdateNotSupported is returned when a TLS 1.3 key update is needed
// on a connection the kernel encrypts or decrypts, and the kernel can't
// install new keys: that arrived in Linux 6.14. The data before the key
// update has been delivered intact; the connection can't go on.
var ErrKeyUpdateNotSupported = fmt.Errorf("ktls: TLS 1.3 KeyUpdate needs Linux 6.14 to rekey kernel TLS: %w", ErrNotSupported)

// Reasons in an Offload that are not failures.
var (
	// ErrDisabled is the reason for a direction or option that Options
	// turned off.
	ErrDisabled = errors.New("ktls: disabled by Options")
	// ErrDeferred is a TLS 1.3 client's RX reason until the first
	// application data: crypto/tls reads the server's session tickets
	// first, for the ClientSessionCache.
	ErrDeferred = errors.New("ktls: RX offload waits until the server's session tickets have been read")
	// ErrRXNeedsTX is the RX reason when TX isn't offloaded.
	ErrRXNeedsTX = errors.New("ktls: RX offload needs TX offload")
)

// A RequiredError is the handshake error of a connection whose Options
// make a direction Required, when the kernel didn't take it. The
// connection is closed. Reason is why, as Offload would have said it.
type RequiredError struct {
	Direction string // "TX" or "RX"
	Reason    error
}

func (e *RequiredError) Error() string {
	return "ktls: " + e.Direction + " offload is required, and the kernel did not take it: " + e.Reason.Error()
}

func (e *RequiredError) Unwrap() error { return e.Reason }

var (
	errShutdown        = errors.New("tls: protocol is shutdown")
	errEarlyCloseWrite = errors.New("tls: CloseWrite called before handshake complete")
)

// localAlert is a fatal alert this side sent, in the form crypto/tls
// returns it: a *net.OpError with Op "local error" around the alert, which
// matches tls.AlertError with errors.As.
func localAlert(alert uint8) error {
	return &net.OpError{Op: "local error", Err: tls.AlertError(alert)}
}

// remoteAlert is a fatal alert the peer sent.
func remoteAlert(alert uint8) error {
	return &net.OpError{Op: "remote error", Err: tls.AlertError(alert)}
}

// notOffloadable is the reason a cipher suite stays on crypto/tls.
func notOffloadable(version, suite uint16) error {
	return fmt.Errorf("ktls: %s with %s: %w", tls.VersionName(version), tls.CipherSuiteName(suite), ErrNotSupported)
}

// alertCodes maps the text of every alert, as crypto/tls prints it, to the
// alert.
var alertCodes = sync.OnceValue(func() map[string]tls.AlertError {
	m := make(map[string]tls.AlertError, 256)
	for i := range 256 {
		a := tls.AlertError(i)
		m[a.Error()] = a
	}
	return m
})

// fromTLS makes an alert error from crypto/tls match tls.AlertError, as
// the ones from the kernel path do. crypto/tls returns alerts as a
// *net.OpError ("remote error" or "local error") around an unexported
// type with the same text as tls.AlertError; this swaps in the exported
// type, so callers handle both paths alike.
func fromTLS(err error) error {
	if err == nil {
		// Before oe, whose address errors.As takes: it lives on the heap,
		// and the fallback's every Read and Write comes through here.
		return nil
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || (oe.Op != "remote error" && oe.Op != "local error") {
		return err
	}
	var ae tls.AlertError
	if errors.As(oe.Err, &ae) {
		return err
	}
	if a, ok := alertCodes()[oe.Err.Error()]; ok {
		return &net.OpError{Op: oe.Op, Net: oe.Net, Source: oe.Source, Addr: oe.Addr, Err: a}
	}
	return err
}

// handshakeError is fromTLS for the error of a handshake over raw. A
// first record that is not TLS at all (the start of a plain HTTP request,
// say) gives a tls.RecordHeaderError whose Conn is the connection
// crypto/tls runs over, here the record reader (handshakeConn) or the
// Conn itself (plainTransport); the caller uses it to answer in plain
// text and close, as net/http answers an HTTP request to an HTTPS server
// with a 400. It gets raw itself, as from a tls.Conn, with what else the
// peer had sent read, as crypto/tls would have read it (see
// discardQueued). The error stays a bare RecordHeaderError, which is what
// net/http checks for.
func handshakeError(err error, raw net.Conn) error {
	if re, ok := err.(tls.RecordHeaderError); ok && re.Conn != nil {
		discardQueued(raw)
		re.Conn = raw
		return re
	}
	return fromTLS(err)
}
