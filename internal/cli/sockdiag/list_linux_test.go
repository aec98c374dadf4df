package sockdiag_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ktlsgo/ktls/internal/cli/sockdiag"
	"github.com/ktlsgo/ktls/internal/kernel"
	"github.com/ktlsgo/ktls/internal/lab/kerneltest"
	"github.com/ktlsgo/ktls/internal/lab/wiretest"
)

// TestList walks one loopback connection through the states a ktls
// connection goes through, and reads each back from sock_diag: the ULP
// attached with no keys (both directions "base", no version or cipher
// yet), TLS_TX installed ("sw"), then TLS_RX.
func TestList(t *testing.T) {
	kerneltest.RequireULP(t)
	const (
		version = kernel.VersionTLS13
		cipher  = kernel.CipherAESGCM128
	)
	kerneltest.Require(t,
		kernel.CipherFeature(version, cipher, kernel.TX),
		kernel.CipherFeature(version, cipher, kernel.RX))

	client, server := wiretest.TCPPair(t, "tcp4")
	wiretest.Control(t, client, func(fd int) { must(t, kernel.AttachULP(fd)) })

	s := find(t, client)
	checkIdentity(t, client, s)
	checkTLS(t, "attached", s, sockdiag.TLSInfo{TX: sockdiag.ConfBase, RX: sockdiag.ConfBase})
	// The server end has no ULP, so List leaves it out.
	if _, ok := lookup(t, server); ok {
		t.Errorf("List has the server end %v, which has no ULP", server.LocalAddr())
	}

	wiretest.Control(t, client, func(fd int) { must(t, kernel.SetCryptoInfo(fd, kernel.TX, zeroKeys(version, cipher))) })
	checkTLS(t, "TLS_TX", find(t, client), sockdiag.TLSInfo{
		Version: version, Cipher: cipher, TX: sockdiag.ConfSW, RX: sockdiag.ConfBase,
	})

	wiretest.Control(t, client, func(fd int) { must(t, kernel.SetCryptoInfo(fd, kernel.RX, zeroKeys(version, cipher))) })
	s = find(t, client)
	checkTLS(t, "TLS_RX", s, sockdiag.TLSInfo{
		Version: version, Cipher: cipher, TX: sockdiag.ConfSW, RX: sockdiag.ConfSW,
	})
	// TLS_INFO_TX_MAX_PAYLOAD_LEN is new; where the kernel has it, it
	// starts at the protocol's limit, 2^14.
	if n := s.TLS.TXMaxPayload; n != 0 && n != 1<<14 {
		t.Errorf("TXMaxPayload = %d, want 16384 or 0 (not reported)", n)
	}
	t.Logf("kernel %s: %+v TLS %+v", kerneltest.Release(), s, *s.TLS)

	t.Run("RXNoPad", func(t *testing.T) {
		kerneltest.Require(t, kernel.FeatureRXExpectNoPad)
		wiretest.Control(t, client, func(fd int) { must(t, kernel.SetRXExpectNoPad(fd)) })
		if got := find(t, client).TLS; !got.RXNoPad {
			t.Errorf("after TLS_RX_EXPECT_NO_PAD, RXNoPad is false: %+v", *got)
		}
	})

	// The kernel reports TLS_INFO_ZC_RO_TX only when TX runs on the NIC:
	// on this software socket the option is on, as getsockopt says, and
	// sock_diag says nothing about it.
	t.Run("ZerocopyTX", func(t *testing.T) {
		kerneltest.Require(t, kernel.FeatureTXZerocopyRO)
		wiretest.Control(t, client, func(fd int) {
			must(t, kernel.SetTXZerocopyRO(fd))
			on, err := kernel.TXZerocopyRO(fd)
			must(t, err)
			if !on {
				t.Fatal("getsockopt TLS_TX_ZEROCOPY_RO is off after setting it")
			}
		})
		got := find(t, client).TLS
		if want := got.TX == sockdiag.ConfHW; got.ZerocopyTX != want {
			t.Errorf("with TX %v and TLS_TX_ZEROCOPY_RO on, ZerocopyTX = %v, want %v", got.TX, got.ZerocopyTX, want)
		}
	})
}

// TestListIPv6 reads a TLS 1.2 ChaCha20-Poly1305 socket back from the
// AF_INET6 dump.
func TestListIPv6(t *testing.T) {
	const (
		version = kernel.VersionTLS12
		cipher  = kernel.CipherChaCha20Poly1305
	)
	kerneltest.Require(t, kernel.FeatureULP, kernel.CipherFeature(version, cipher, kernel.TX))
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		kerneltest.Unavailable(t, "no IPv6 loopback: %v", err)
	}
	ln.Close()

	client, _ := wiretest.TCPPair(t, "tcp6")
	wiretest.Control(t, client, func(fd int) {
		must(t, kernel.AttachULP(fd))
		must(t, kernel.SetCryptoInfo(fd, kernel.TX, zeroKeys(version, cipher)))
	})
	s := find(t, client)
	checkIdentity(t, client, s)
	checkTLS(t, "TLS_TX", s, sockdiag.TLSInfo{
		Version: version, Cipher: cipher, TX: sockdiag.ConfSW, RX: sockdiag.ConfBase,
	})
}

// TestListWithoutNetAdmin is what an unprivileged "ktls stat" sees. It
// drops CAP_NET_ADMIN from one thread (Linux keeps capabilities per
// thread) and lists from there: the kernel checks the capability of
// whoever opened the netlink socket and of the task running the dump, both
// that thread. Before Linux 6.15 the kernel then leaves the ULP info out,
// and List finds nothing; from 6.15 on it finds the socket all the same.
func TestListWithoutNetAdmin(t *testing.T) {
	const (
		version = kernel.VersionTLS13
		cipher  = kernel.CipherAESGCM128
	)
	kerneltest.Require(t, kernel.FeatureULP, kernel.CipherFeature(version, cipher, kernel.TX))
	if !hasCapNetAdmin(t) {
		kerneltest.Unavailable(t, "needs CAP_NET_ADMIN, to drop it")
	}
	client, _ := wiretest.TCPPair(t, "tcp4")
	wiretest.Control(t, client, func(fd int) {
		must(t, kernel.AttachULP(fd))
		must(t, kernel.SetCryptoInfo(fd, kernel.TX, zeroKeys(version, cipher)))
	})
	find(t, client) // with CAP_NET_ADMIN

	type result struct {
		s   sockdiag.Socket
		ok  bool
		err error
	}
	done := make(chan result)
	go func() {
		// Never unlocked: the thread, with its reduced capabilities,
		// exits with the goroutine.
		runtime.LockOSThread()
		var r result
		if r.err = dropCapNetAdmin(); r.err == nil {
			var all []sockdiag.Socket
			all, r.err = sockdiag.List()
			r.s, r.ok = match(all, client)
		}
		done <- r
	}()
	r := <-done
	must(t, r.err)
	rel := kerneltest.Release()
	if want := kernel.CompareRelease(rel, "6.15") >= 0; r.ok != want {
		t.Fatalf("kernel %s without CAP_NET_ADMIN: List found the socket: %v, want %v", rel, r.ok, want)
	}
	if r.ok {
		checkTLS(t, "without CAP_NET_ADMIN", r.s, sockdiag.TLSInfo{
			Version: version, Cipher: cipher, TX: sockdiag.ConfSW, RX: sockdiag.ConfBase,
		})
	}
	t.Logf("kernel %s without CAP_NET_ADMIN: found the socket: %v", rel, r.ok)
}

func capData() (unix.CapUserHeader, [2]unix.CapUserData, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	err := unix.Capget(&hdr, &data[0])
	return hdr, data, err
}

func hasCapNetAdmin(t *testing.T) bool {
	_, data, err := capData()
	must(t, err)
	return data[0].Effective&(1<<unix.CAP_NET_ADMIN) != 0
}

// dropCapNetAdmin clears CAP_NET_ADMIN from the calling thread's
// effective set.
func dropCapNetAdmin() error {
	hdr, data, err := capData()
	if err != nil {
		return err
	}
	data[0].Effective &^= 1 << unix.CAP_NET_ADMIN
	return unix.Capset(&hdr, &data[0])
}

// TestDump needs no kernel TLS: it finds a plain loopback connection, both
// ends, in the raw dump that List filters, so the netlink side and Parse
// meet a real kernel on any Linux host.
func TestDump(t *testing.T) {
	client, server := wiretest.TCPPair(t, "tcp4")
	all, err := sockdiag.Dump(2) // AF_INET
	if errors.Is(err, kernel.ErrNotSupported) {
		kerneltest.Unavailable(t, "%v", err)
	}
	must(t, err)
	for _, c := range []net.Conn{client, server} {
		local := c.LocalAddr().(*net.TCPAddr).AddrPort()
		remote := c.RemoteAddr().(*net.TCPAddr).AddrPort()
		found := false
		for _, s := range all {
			if s.Local == local && s.Remote == remote {
				found = true
				checkIdentity(t, c, s)
				if s.TLS != nil {
					t.Errorf("%v -> %v: TLS = %+v, want nil: no ULP", local, remote, *s.TLS)
				}
			}
		}
		if !found {
			t.Errorf("the AF_INET dump has no %v -> %v among its %d sockets", local, remote, len(all))
		}
	}
}

// checkIdentity compares what sock_diag says about the socket with what
// the socket says about itself.
func checkIdentity(t *testing.T, c net.Conn, s sockdiag.Socket) {
	t.Helper()
	if s.State != "ESTABLISHED" {
		t.Errorf("State = %q, want ESTABLISHED", s.State)
	}
	if s.UID != uint32(os.Geteuid()) {
		t.Errorf("UID = %d, want %d", s.UID, os.Geteuid())
	}
	wiretest.Control(t, c, func(fd int) {
		var st unix.Stat_t
		must(t, unix.Fstat(fd, &st))
		if s.Inode != uint32(st.Ino) {
			t.Errorf("Inode = %d, want %d (fstat)", s.Inode, st.Ino)
		}
		cookie, err := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_COOKIE)
		must(t, err)
		if s.Cookie != cookie {
			t.Errorf("Cookie = %#x, want %#x (SO_COOKIE)", s.Cookie, cookie)
		}
	})
}

// checkTLS compares everything but TXMaxPayload, which depends on the
// kernel.
func checkTLS(t *testing.T, step string, s sockdiag.Socket, want sockdiag.TLSInfo) {
	t.Helper()
	if s.TLS == nil {
		t.Fatalf("%s: TLS is nil", step)
	}
	got := *s.TLS
	got.TXMaxPayload = 0
	if got != want {
		t.Errorf("%s: TLS = %+v, want %+v", step, got, want)
	}
}

// find returns c's entry in List, or fails the test.
func find(t *testing.T, c net.Conn) sockdiag.Socket {
	t.Helper()
	s, ok := lookup(t, c)
	if !ok {
		all, _ := sockdiag.List()
		t.Fatalf("List has no socket %v -> %v; it has %s", c.LocalAddr(), c.RemoteAddr(), describe(all))
	}
	return s
}

func lookup(t *testing.T, c net.Conn) (sockdiag.Socket, bool) {
	t.Helper()
	all, err := sockdiag.List()
	if errors.Is(err, kernel.ErrNotSupported) {
		// Everything else kernel TLS needs is there: kerneltest.Require
		// passed. Debian builds inet_diag and tcp_diag as modules, which
		// the kernel asks modprobe for on first use; the lab's guest
		// doesn't load them that way, so the lab must preload them.
		if name, inLab := kerneltest.InLab(); inLab {
			t.Fatalf("lab kernel %s (%s): %v\n"+
				"The lab must preload inet_diag and tcp_diag (preloadModules in internal/lab/modules.go; "+
				"kernels cached before that change lack the modules until refetched)",
				name, kerneltest.Release(), err)
		}
		t.Skipf("kernel %s: %v", kerneltest.Release(), err)
	}
	must(t, err)
	return match(all, c)
}

func match(all []sockdiag.Socket, c net.Conn) (sockdiag.Socket, bool) {
	local := c.LocalAddr().(*net.TCPAddr).AddrPort()
	remote := c.RemoteAddr().(*net.TCPAddr).AddrPort()
	for _, s := range all {
		if s.Local == local && s.Remote == remote {
			return s, true
		}
	}
	return sockdiag.Socket{}, false
}

func describe(all []sockdiag.Socket) string {
	if len(all) == 0 {
		return "none"
	}
	var b strings.Builder
	for _, s := range all {
		fmt.Fprintf(&b, "\n\t%v -> %v %s %+v", s.Local, s.Remote, s.State, *s.TLS)
	}
	return b.String()
}

// zeroKeys is key material of the right sizes, all zero: the sockets
// never carry a record.
func zeroKeys(version uint16, c kernel.Cipher) *kernel.CryptoInfo {
	info := &kernel.CryptoInfo{Version: version, Cipher: c,
		IV: make([]byte, 8), Key: make([]byte, 16), Salt: make([]byte, 4)}
	switch c {
	case kernel.CipherAESGCM256:
		info.Key = make([]byte, 32)
	case kernel.CipherChaCha20Poly1305:
		info.IV, info.Key, info.Salt = make([]byte, 12), make([]byte, 32), nil
	}
	return info
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
