package khttp_test

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ktlsgo/ktls/internal/lab/kerneltest"
	"github.com/ktlsgo/ktls/internal/lab/testcert"
	"github.com/ktlsgo/ktls/khttp"
)

// envServe makes the test binary serve files instead of running tests,
// under strace, for TestSendfileBody.
const envServe = "KHTTP_TEST_SERVE"

func serveForStrace(addrFile string) {
	dir := filepath.Dir(addrFile)
	// The parent made the certificate: testcert makes a new CA per process.
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		os.Exit(1)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(dir)), TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		os.Exit(1)
	}
	os.WriteFile(addrFile+".tmp", []byte(ln.Addr().String()), 0o644)
	os.Rename(addrFile+".tmp", addrFile)
	ks := &khttp.Server{HTTP: srv}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM)
		<-sig
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ks.Shutdown(ctx)
	}()
	ks.Serve(ln)
	os.Exit(0)
}

// TestSendfileBody proves an HTTP/1.1 body goes out with sendfile through
// the kernel: the server runs in a child process under strace, curl
// fetches a file, and the bytes sendfile moved add up to the file, less
// the 512 bytes net/http writes itself to sniff the content type.
func TestSendfileBody(t *testing.T) {
	kerneltest.RequireULP(t)
	straceBin := kerneltest.Program(t, "strace")
	curl := kerneltest.Program(t, "curl")
	dir := t.TempDir()
	const size = 16 << 20
	sum := writeFile(t, dir, "f.bin", size)
	addrFile := filepath.Join(dir, "addr")
	testcert.Get(testcert.ECDSA).WriteFiles(t, dir) // serveForStrace reads them from dir
	out := filepath.Join(t.TempDir(), "strace.out")
	cmd := kerneltest.Strace(straceBin, out, "sendfile", os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envServe+"="+addrFile)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var addr []byte
	for i := 0; i < 300 && len(addr) == 0; i++ {
		time.Sleep(100 * time.Millisecond)
		addr, _ = os.ReadFile(addrFile)
	}
	if len(addr) == 0 {
		t.Fatal("the server under strace did not start")
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(caFile, testcert.Get(testcert.ECDSA).CAPEM, 0o644)
	got, err := exec.Command("sh", "-c", curl+" -sS --fail --http1.1 --cacert "+caFile+" https://"+string(addr)+"/f.bin | sha256sum").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(got), sum) {
		t.Fatalf("curl: %v, %s", err, got)
	}
	// Stop the server: strace passes the signal on to it.
	cmd.Process.Signal(syscall.SIGTERM)
	waitDone := make(chan error, 1)
	go func() { waitDone <- cmd.Wait() }()
	select {
	case <-waitDone:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-waitDone
	}
	moved, _ := kerneltest.StraceBytes(t, out, "sendfile")
	t.Logf("sendfile moved %d of %d bytes", moved, size)
	if moved != size-512 {
		t.Fatalf("sendfile moved %d bytes, want %d (the file less the 512 bytes net/http sniffs)", moved, size-512)
	}
}
