package serve_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ktlsgo/ktls/internal/kerneltest"
	"github.com/ktlsgo/ktls/internal/serve"
	"github.com/ktlsgo/ktls/internal/testcert"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// The clients' idle connections outlive a test by design.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"))
}

// logBuf is a log that tests can wait on.
type logBuf struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	line chan string // the first line of stdout, for the address
}

func (b *logBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if b.line != nil {
		if i := bytes.IndexByte(b.buf.Bytes(), '\n'); i >= 0 {
			b.line <- b.buf.String()[:i]
			b.line = nil
		}
	}
	return len(p), nil
}

func (b *logBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor waits up to limit for the log to hold a line containing s.
func (b *logBuf) waitFor(s string, limit time.Duration) (string, bool) {
	deadline := time.Now().Add(limit)
	for {
		for _, line := range strings.Split(b.String(), "\n") {
			if strings.Contains(line, s) {
				return line, true
			}
		}
		if time.Now().After(deadline) {
			return "", false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// server is a running serve.Run.
type server struct {
	addr string
	log  *logBuf
}

// start runs serve.Run on cfg, with its address, certificate (the test
// CA's) and output filled in unless set.
func start(t *testing.T, cfg serve.Config) *server {
	t.Helper()
	if cfg.CertFile == "" {
		dir := t.TempDir()
		b := testcert.Get(testcert.ECDSA)
		cfg.CertFile, cfg.KeyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
		os.WriteFile(cfg.CertFile, b.CertPEM, 0o600)
		os.WriteFile(cfg.KeyFile, b.KeyPEM, 0o600)
	}
	cfg.Addr = "127.0.0.1:0"
	out := &logBuf{line: make(chan string, 1)}
	first := out.line
	log := &logBuf{}
	cfg.Stdout, cfg.Log = out, slog.New(slog.NewTextHandler(log, nil))
	cfg.ShutdownTimeout = time.Second
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve.Run(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Logf("Run: %v", err)
		}
	})
	select {
	case line := <-first:
		return &server{addr: strings.Fields(strings.TrimPrefix(line, "serving https://"))[0], log: log}
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("serve printed nothing")
	}
	return nil
}

func (s *server) client() *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: testcert.Get(testcert.ECDSA).ClientConfig()}, Timeout: 10 * time.Second}
}

// get fetches path and returns the status and body.
func (s *server) get(t *testing.T, path string) (int, string) {
	t.Helper()
	c := s.client()
	defer c.CloseIdleConnections()
	resp, err := c.Get("https://" + s.addr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading the body: %v", path, err)
	}
	return resp.StatusCode, string(b)
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{9}).Read(b)
	return b
}

// dialTLS opens a TLS connection to the server, for a client that writes
// requests by hand.
func (s *server) dialTLS(t *testing.T) *tls.Conn {
	t.Helper()
	c, err := tls.Dial("tcp", s.addr, testcert.Get(testcert.ECDSA).ClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestServeStalledReader: a client that asks for a large file and stops
// reading is dropped after the write timeout. (Issue 13, finding 5: it
// was held indefinitely; 3 min 33 s observed.)
func TestServeStalledReader(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "big.bin"), randBytes(32<<20))
	s := start(t, serve.Config{Dir: dir, WriteTimeout: 300 * time.Millisecond})
	c := s.dialTLS(t)
	fmt.Fprintf(c, "GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
	line, ok := s.log.waitFor("msg=request", 5*time.Second)
	if !ok {
		t.Fatal("the server still holds a client that stopped reading after 5s")
	}
	if strings.Contains(line, "bytes=33554432") {
		t.Fatalf("the whole file went to a client that reads nothing: %s", line)
	}
	// And the connection is closed: what is in flight, then the end.
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, c); err != nil && isTimeout(err) {
		t.Fatal("the connection is still open")
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// TestServeSlowReader: the write timeout bounds each write's progress,
// not a whole response: a client that reads slowly, over many times the
// timeout, still gets the whole file, on HTTP/1.1 and HTTP/2.
func TestServeSlowReader(t *testing.T) {
	dir := t.TempDir()
	data := randBytes(2 << 20)
	writeFile(t, filepath.Join(dir, "f.bin"), data)
	timeout := 300 * time.Millisecond
	if _, ok := kerneltest.InLab(); ok {
		timeout = 500 * time.Millisecond // the emulated client reads slower
	}
	s := start(t, serve.Config{Dir: dir, WriteTimeout: timeout})
	for _, h2 := range []bool{false, true} {
		tr := &http.Transport{TLSClientConfig: testcert.Get(testcert.ECDSA).ClientConfig(), ForceAttemptHTTP2: h2}
		resp, err := (&http.Client{Transport: tr}).Get("https://" + s.addr + "/f.bin")
		if err != nil {
			t.Fatal(err)
		}
		var got []byte
		buf := make([]byte, 64<<10)
		for {
			time.Sleep(50 * time.Millisecond) // 2 MiB in more than 1.6 s
			n, err := io.ReadFull(resp.Body, buf)
			got = append(got, buf[:n]...)
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: read %d bytes, then %v", resp.Proto, len(got), err)
			}
		}
		resp.Body.Close()
		tr.CloseIdleConnections()
		if !bytes.Equal(got, data) {
			t.Errorf("%s: got %d bytes, want the %d of the file", resp.Proto, len(got), len(data))
		}
	}
}

// TestServeSymlinkEscape: nothing outside --dir is served, whatever the
// symlinks inside it point to; a symlink that stays inside still works.
// (Issue 13, finding 9.)
func TestServeSymlinkEscape(t *testing.T) {
	top := t.TempDir()
	dir := filepath.Join(top, "www")
	writeFile(t, filepath.Join(top, "secret.txt"), []byte("SECRET"))
	writeFile(t, filepath.Join(dir, "ok.txt"), []byte("ok"))
	for link, target := range map[string]string{
		"rel.txt":      "../secret.txt",
		"abs.txt":      filepath.Join(top, "secret.txt"),
		"up":           "..",
		"root":         "/",
		"sub/in.txt":   "../ok.txt",
		"sub/deep.txt": "../../secret.txt",
	} {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, link)), 0o755)
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	s := start(t, serve.Config{Dir: dir})
	for _, p := range []string{"/rel.txt", "/abs.txt", "/up/secret.txt", "/root/etc/passwd", "/sub/deep.txt", "/../secret.txt"} {
		if code, body := s.get(t, p); code != http.StatusNotFound || strings.Contains(body, "SECRET") {
			t.Errorf("GET %s = %d %q, want 404", p, code, body)
		}
	}
	if code, body := s.get(t, "/sub/in.txt"); code != 200 || body != "ok" {
		t.Errorf("GET /sub/in.txt (a symlink inside) = %d %q, want 200 \"ok\"", code, body)
	}
}

// TestServeDotfiles: a path with an element that starts with "." is not
// found and not listed, unless Dotfiles. (Issue 13, finding 9.)
func TestServeDotfiles(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, ".git", "config"), []byte("SECRET git"))
	writeFile(t, filepath.Join(dir, ".env"), []byte("SECRET env"))
	writeFile(t, filepath.Join(dir, "sub", ".htpasswd"), []byte("SECRET pw"))
	writeFile(t, filepath.Join(dir, "sub", "ok.txt"), []byte("ok"))
	hidden := []string{"/.git/config", "/.env", "/sub/.htpasswd", "/.git/", "/sub/./.htpasswd"}

	s := start(t, serve.Config{Dir: dir})
	for _, p := range hidden {
		if code, body := s.get(t, p); code != http.StatusNotFound || strings.Contains(body, "SECRET") {
			t.Errorf("GET %s = %d %q, want 404", p, code, body)
		}
	}
	for _, p := range []string{"/", "/sub/"} {
		code, body := s.get(t, p)
		if code != 200 || strings.Contains(body, ".git") || strings.Contains(body, ".env") || strings.Contains(body, ".htpasswd") {
			t.Errorf("GET %s = %d, listing %q: want 200 without dotfiles", p, code, body)
		}
	}
	if code, body := s.get(t, "/sub/ok.txt"); code != 200 || body != "ok" {
		t.Errorf("GET /sub/ok.txt = %d %q", code, body)
	}

	s = start(t, serve.Config{Dir: dir, Dotfiles: true})
	if code, body := s.get(t, "/.git/config"); code != 200 || body != "SECRET git" {
		t.Errorf("with Dotfiles, GET /.git/config = %d %q, want 200", code, body)
	}
	if _, body := s.get(t, "/sub/"); !strings.Contains(body, ".htpasswd") {
		t.Errorf("with Dotfiles, the listing of /sub/ leaves out .htpasswd: %q", body)
	}
}

// TestServeKeyInDirWarning: a private key inside --dir gets a warning at
// startup, and is not served. (Issue 13, finding 9.)
func TestServeKeyInDirWarning(t *testing.T) {
	dir := t.TempDir()
	b := testcert.Get(testcert.ECDSA)
	writeFile(t, filepath.Join(dir, "tls", "key.pem"), b.KeyPEM)
	writeFile(t, filepath.Join(dir, "tls", "cert.pem"), b.CertPEM)
	s := start(t, serve.Config{Dir: dir, CertFile: filepath.Join(dir, "tls", "cert.pem"), KeyFile: filepath.Join(dir, "tls", "key.pem")})
	if line, ok := s.log.waitFor("level=WARN", time.Second); !ok || !strings.Contains(line, "private key") || !strings.Contains(line, "key.pem") {
		t.Errorf("no warning about the key inside the directory; log:\n%s", s.log)
	}
	if code, body := s.get(t, "/tls/key.pem"); code != http.StatusNotFound || strings.Contains(body, "PRIVATE") {
		t.Errorf("GET /tls/key.pem = %d %q, want 404", code, body)
	}
	if code, _ := s.get(t, "/tls/cert.pem"); code != 200 {
		t.Errorf("GET /tls/cert.pem = %d, want 200", code)
	}

	// A key outside the directory: no warning.
	s = start(t, serve.Config{Dir: filepath.Join(dir, "tls", "..", "tls")})
	s.get(t, "/cert.pem")
	if strings.Contains(s.log.String(), "level=WARN") {
		t.Errorf("a warning with the key outside the directory:\n%s", s.log)
	}
}

// TestServeRangesAndConditionals: serving through os.Root keeps
// net/http's byte ranges, 304s and listings.
func TestServeRangesAndConditionals(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "f.txt"), []byte("0123456789abcdef"))
	s := start(t, serve.Config{Dir: dir})
	c := s.client()
	defer c.CloseIdleConnections()
	req, _ := http.NewRequest("GET", "https://"+s.addr+"/f.txt", nil)
	req.Header.Set("Range", "bytes=4-9")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || string(body) != "456789" {
		t.Errorf("Range: bytes=4-9 = %d %q, want 206 \"456789\"", resp.StatusCode, body)
	}
	req.Header.Del("Range")
	req.Header.Set("If-Modified-Since", resp.Header.Get("Last-Modified"))
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-Modified-Since = %d, want 304", resp.StatusCode)
	}
	if code, body := s.get(t, "/"); code != 200 || !strings.Contains(body, `<a href="f.txt">f.txt</a>`) {
		t.Errorf("GET / = %d %q, want a listing", code, body)
	}
}

// TestServeKeyInDirAliases: the private key inside --dir is not served by
// any other name that reaches the same file: a symlink to it, a path
// through a symlinked directory (the one --key itself may name), or a
// hard link.
func TestServeKeyInDirAliases(t *testing.T) {
	dir := t.TempDir()
	b := testcert.Get(testcert.ECDSA)
	writeFile(t, filepath.Join(dir, "keys", "key.pem"), b.KeyPEM)
	writeFile(t, filepath.Join(dir, "keys", "cert.pem"), b.CertPEM)
	for link, target := range map[string]string{
		"tls":      "keys",
		"site.pem": "keys/key.pem",
	} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Link(filepath.Join(dir, "keys", "key.pem"), filepath.Join(dir, "hard.pem")); err != nil {
		t.Fatal(err)
	}
	// --key names the key through the symlinked directory.
	s := start(t, serve.Config{Dir: dir, CertFile: filepath.Join(dir, "tls", "cert.pem"), KeyFile: filepath.Join(dir, "tls", "key.pem")})
	for _, p := range []string{"/keys/key.pem", "/tls/key.pem", "/site.pem", "/hard.pem"} {
		if code, body := s.get(t, p); code != http.StatusNotFound || strings.Contains(body, "PRIVATE") {
			t.Errorf("GET %s = %d %q, want 404", p, code, body)
		}
	}
	if code, _ := s.get(t, "/tls/cert.pem"); code != 200 {
		t.Errorf("GET /tls/cert.pem = %d, want 200", code)
	}
}

// TestServeManyRanges: a Range header with many small, overlapping
// ranges doesn't make the server cut the file into a part for each (a
// multipart body many times the file's size, a seek and a read each,
// from one request header: "Apache Killer"); past a few ranges the header
// is ignored and the file comes whole, as RFC 9110 allows. A few ranges
// still get their multipart answer.
func TestServeManyRanges(t *testing.T) {
	dir := t.TempDir()
	data := randBytes(64 << 10)
	writeFile(t, filepath.Join(dir, "f.bin"), data)
	s := start(t, serve.Config{Dir: dir})
	c := s.client()
	defer c.CloseIdleConnections()
	get := func(rng string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest("GET", "https://"+s.addr+"/f.bin", nil)
		req.Header.Set("Range", rng)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		return resp, body
	}
	resp, body := get("bytes=" + strings.Repeat("0-0,", 4000) + "0-0")
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, data) {
		t.Errorf("4,001 ranges: %d, %d bytes (%s); want 200 and the file, %d bytes", resp.StatusCode, len(body), resp.Header.Get("Content-Type"), len(data))
	}
	resp, body = get("bytes=0-1,10-11")
	if resp.StatusCode != http.StatusPartialContent || !strings.HasPrefix(resp.Header.Get("Content-Type"), "multipart/byteranges") || len(body) > 1000 {
		t.Errorf("2 ranges: %d %s, %d bytes; want 206 multipart/byteranges", resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
	}
}
