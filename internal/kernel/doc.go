// Package kernel is a thin layer over the Linux kernel's TLS interface
// (Documentation/networking/tls.rst): attaching the "tls" upper layer
// protocol to a TCP socket, installing traffic keys for each direction,
// the optional socket options, and sending and receiving records of a
// given content type through control messages.
//
// It knows the kernel's ABI, and of TLS only what the ABI needs: how a
// suite of keyschedule's table is laid out for the kernel (NewCryptoInfo),
// and whether this kernel can offload it (Offloadable, from the cached
// feature probes). Deriving keys and deciding what to do with a record
// are the caller's job. Every syscall wrapper takes a raw file descriptor
// and is named after what it wraps; failures come back as
// *os.SyscallError wrapping the errno, for errors.Is.
//
// Everything here is Linux-only. On other systems the functions exist and
// return ErrNotSupported, so programs that use them still build.
package kernel
