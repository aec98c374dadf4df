// Package ktls runs TLS connections on the Linux kernel's TLS record
// layer, with the handshake done by the standard crypto/tls.
//
// A Conn is used like a *tls.Conn, and Client, Server, Dial, Listen and
// NewListener mirror the functions of crypto/tls. After crypto/tls has
// finished the handshake, ktls takes the traffic secrets from a
// per-connection tls.Config.KeyLogWriter (still passing every line on to
// the application's own writer, if it set one), installs the keys in the
// kernel with setsockopt(SOL_TLS, TLS_TX and TLS_RX), and from then on the
// kernel encrypts and decrypts: Write is a write(2) of plaintext, Read a
// recvmsg(2), and io.Copy from a file to a Conn is a sendfile(2) that never
// copies the file through user space.
//
// # Fallback
//
// Where the kernel can't take a connection (no CONFIG_TLS, a cipher suite
// the kernel lacks, a socket that isn't TCP, a kernel that refuses a key),
// the connection stays on crypto/tls and works as it would have.
// Conn.Offload says what the kernel handles and, for each direction it
// doesn't, why. A connection never fails because offload was refused.
//
// A connection the kernel is sure not to take (TX disabled, or a kernel
// that has already shown this process it has no kernel TLS) is
// crypto/tls's from the start: its handshake runs on the config as given,
// over the socket as crypto/tls reads it, without the bookkeeping the
// handoff needs (the key log capture, the record-boundary reader).
//
// Session tickets and resumption are crypto/tls's, unchanged, whichever
// config sets them. One consequence: when a server's GetConfigForClient
// returns a config without an UnwrapSession of its own, and the
// connection resumes a TLS 1.2 session, ktls can't see the session's
// master secret, and that connection stays on crypto/tls
// (ErrResumedTLS12).
//
// # What the kernel takes
//
// TLS 1.2 and 1.3, with AES-128-GCM, AES-256-GCM and ChaCha20-Poly1305,
// in both directions. TX offload comes first: RX offload needs it, because
// the connection answers the peer's alerts and key updates through the
// kernel. A TLS 1.3 client with a ClientSessionCache lets crypto/tls read
// until the first application data, so the server's session tickets reach
// the cache; RX offload starts then.
//
// # Behaviour the kernel path keeps
//
//   - close_notify from the peer is io.EOF; a connection that ends without
//     one is io.ErrUnexpectedEOF, on both paths.
//   - Alerts from the peer, and ones this side sends, are errors that
//     match tls.AlertError, on both paths.
//   - A record that fails authentication is bad_record_mac, sent to the
//     peer; the error sticks.
//   - Close sends close_notify; CloseWrite sends it and shuts down the
//     writing side of the socket.
//   - TLS 1.3 KeyUpdate works both ways on Linux 6.14 and later; earlier
//     kernels can't install new keys, and a key update then ends the
//     connection with ErrKeyUpdateNotSupported, after all the data before
//     it was delivered.
//
// # Key material
//
// Keys are derived in memory, copied into the kernel, and zeroed. TLS 1.2
// secrets are zeroed at the handoff. The TLS 1.3 application traffic
// secrets are kept, as crypto/tls keeps them, because a KeyUpdate derives
// the next keys from them. Nothing is logged; the application's
// KeyLogWriter, if it set one, gets exactly the lines crypto/tls writes.
package ktls
