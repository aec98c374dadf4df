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
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/cli/serve"
	"github.com/ktlsgo/ktls/internal/lab/hostiletest"
	"github.com/ktlsgo/ktls/internal/lab/kerneltest"
	"github.com/ktlsgo/ktls/internal/lab/testcert"
	"github.com/ktlsgo/ktls/internal/lab/wiretest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// The clients' idle connections outlive a test by design.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"))
}

// logBuf is a log that tests can wait on.
type logBuf struct{ wiretest.SyncBuffer }

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
		cfg.CertFile, cfg.KeyFile = testcert.Get(testcert.ECDSA).WriteFiles(t, t.TempDir())
	}
	cfg.Addr = "127.0.0.1:0"
	log := &logBuf{}
	cfg.Log = slog.New(slog.NewTextHandler(log, nil))
	cfg.ShutdownTimeout = time.Second
	line := wiretest.StartServer(t, func(ctx context.Context, stdout io.Writer) error {
		cfg.Stdout = stdout
		return serve.Run(ctx, cfg)
	}, t.Logf)
	return &server{addr: strings.Fields(strings.TrimPrefix(line, "serving https://"))[0], log: log}
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
	s, _, do := serveFile(t)
	resp, body := do("Range", "bytes=4-9")
	if resp.StatusCode != http.StatusPartialContent || body != "456789" {
		t.Errorf("Range: bytes=4-9 = %d %q, want 206 \"456789\"", resp.StatusCode, body)
	}
	resp, _ = do("If-Modified-Since", resp.Header.Get("Last-Modified"))
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-Modified-Since = %d, want 304", resp.StatusCode)
	}
	if code, body := s.get(t, "/"); code != 200 || !strings.Contains(body, `<a href="f.txt">f.txt</a>`) {
		t.Errorf("GET / = %d %q, want a listing", code, body)
	}
}

// serveFile serves a directory that holds f.txt, "0123456789abcdef", and
// returns the server, the directory, and a function that fetches /f.txt
// with the given header fields (name, value, name, value...) and returns
// the response and its body.
func serveFile(t *testing.T) (s *server, dir string, do func(hdr ...string) (*http.Response, string)) {
	t.Helper()
	dir = t.TempDir()
	writeFile(t, filepath.Join(dir, "f.txt"), []byte("0123456789abcdef"))
	s = start(t, serve.Config{Dir: dir})
	c := s.client()
	t.Cleanup(c.CloseIdleConnections)
	return s, dir, func(hdr ...string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", "https://"+s.addr+"/f.txt", nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(body)
	}
}

// TestServeETag: file responses carry a weak ETag from size and
// modification time; If-None-Match with it is a 304, a changed file gets
// a new one, and If-Range (which needs a strong ETag) sends the whole
// file, as net/http does for a weak one.
func TestServeETag(t *testing.T) {
	s, dir, do := serveFile(t)
	resp, _ := do()
	etag := resp.Header.Get("ETag")
	if !strings.HasPrefix(etag, `W/"`) {
		t.Fatalf("ETag %q, want a weak one", etag)
	}
	if resp, _ := do("If-None-Match", etag); resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: %s = %d, want 304", etag, resp.StatusCode)
	}
	if resp, body := do("Range", "bytes=0-3", "If-Range", etag); resp.StatusCode != http.StatusOK || body != "0123456789abcdef" {
		t.Errorf("If-Range with a weak ETag = %d %q, want 200 and the whole file", resp.StatusCode, body)
	}
	if resp, body := do("Range", "bytes=0-3"); resp.StatusCode != http.StatusPartialContent || body != "0123" {
		t.Errorf("Range = %d %q, want 206 \"0123\"", resp.StatusCode, body)
	}
	writeFile(t, filepath.Join(dir, "f.txt"), []byte("changed, and longer"))
	if resp, body := do("If-None-Match", etag); resp.StatusCode != http.StatusOK || body != "changed, and longer" || resp.Header.Get("ETag") == etag {
		t.Errorf("after a change: %d %q ETag %q, want 200, the new body and a new ETag", resp.StatusCode, body, resp.Header.Get("ETag"))
	}
	if code, _ := s.get(t, "/"); code != 200 {
		t.Errorf("GET / = %d", code)
	}
}

// TestServeStartupFailsEarly: what can fail at startup fails before the
// serving line: a metrics address that doesn't bind, and a directory
// the server may not list (checked as an unprivileged user: root reads
// anything).
func TestServeStartupFailsEarly(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	var out bytes.Buffer
	err = serve.Run(context.Background(), serve.Config{Addr: "127.0.0.1:0", Dir: t.TempDir(), Metrics: busy.Addr().String(),
		Stdout: &out, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err == nil || !strings.Contains(err.Error(), "metrics: listen tcp") || out.Len() != 0 {
		t.Errorf("Run with a busy metrics address: %v, printed %q; want a metrics error and nothing printed", err, out.String())
	}
}

// TestServeUnreadableDir: a directory the server may not list fails at
// startup, where it would otherwise answer 403 to everything. Root reads
// any directory, so as root the check runs in a copy of this test binary
// started as nobody.
func TestServeUnreadableDir(t *testing.T) {
	if os.Getenv("KTLS_TEST_UNREADABLE_DIR") != "" {
		dir := os.Getenv("KTLS_TEST_UNREADABLE_DIR")
		err := serve.Run(context.Background(), serve.Config{Addr: "127.0.0.1:0", Dir: dir,
			Stdout: io.Discard, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
		fmt.Println("Run:", err)
		return
	}
	base, err := os.MkdirTemp("", "ktls-unreadable-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(base)
	os.Chmod(base, 0o755)
	dir := filepath.Join(base, "www")
	os.Mkdir(dir, 0o700) // owned by this user: nobody else may list it
	if os.Geteuid() != 0 {
		os.Chmod(dir, 0o300) // not even its owner, who isn't root
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(base, "serve.test")
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestServeUnreadableDir$", "-test.count=1")
	cmd.Env = append(os.Environ(), "KTLS_TEST_UNREADABLE_DIR="+dir)
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(string(out), "Run: directory to serve: ") || !strings.Contains(string(out), "permission denied") {
		t.Errorf("serving a directory it may not list: %s\nwant a startup error saying so", out)
	}
}

// TestServeMetricsAfterTraffic: after real traffic, the metrics say what
// happened, by value: handshakes by offload, requests by code, body bytes
// by path (sendfile where the kernel encrypts, write elsewhere), and the
// connections still open. In the lab the connections are offloaded; on a
// host without kernel TLS they say why not.
func TestServeMetricsAfterTraffic(t *testing.T) {
	dir := t.TempDir()
	const size = 1 << 20
	writeFile(t, filepath.Join(dir, "f.bin"), randBytes(size))
	busy, _ := net.Listen("tcp", "127.0.0.1:0")
	maddr := busy.Addr().String()
	busy.Close()
	s := start(t, serve.Config{Dir: dir, Metrics: maddr})
	c := s.client()
	c.Transport.(*http.Transport).TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{} // HTTP/1.1
	for range 3 {
		if code, body := s.get(t, "/f.bin"); code != 200 || len(body) != size {
			t.Fatalf("GET /f.bin = %d, %d bytes", code, len(body))
		}
	}
	req, _ := http.NewRequest("GET", "https://"+s.addr+"/f.bin", nil)
	for range 2 {
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if code, _ := s.get(t, "/missing"); code != 404 {
		t.Fatalf("GET /missing = %d", code)
	}
	c.CloseIdleConnections()

	offload, reason, bodyPath := "none", "no-ulp", "write"
	if kerneltest.HaveULP() {
		offload, reason, bodyPath = "tx+rx", "", "sendfile"
	}
	// A request is counted when its handler returns, which can be after
	// the client has the whole response (a body sent with sendfile): the
	// page is read once every connection is closed, as the clients
	// closed theirs, since a connection closes only after its handlers
	// returned.
	page := waitForMetric(t, "http://"+maddr+"/metrics", "ktls_connections_open", 0)
	const notFound = float64(len("404 page not found\n"))
	for _, want := range []struct {
		series string
		value  float64
	}{
		// s.get makes a client per call: 3 + 1 (missing) connections of
		// its own, and c one more for its two requests.
		{fmt.Sprintf(`ktls_handshakes_total{offload=%q,reason=%q}`, offload, reason), 5},
		{`ktls_http_requests_total{code="200",method="GET"}`, 5},
		{`ktls_http_requests_total{code="404",method="GET"}`, 1},
		// The file bodies by sendfile or write; the 404's body is written.
		{fmt.Sprintf(`ktls_http_response_bytes_total{offload=%q,path=%q}`, offload, bodyPath), map[bool]float64{true: 5 * size, false: 5*size + notFound}[bodyPath == "sendfile"]},
		{fmt.Sprintf(`ktls_http_response_bytes_total{offload=%q,path="write"}`, offload), map[bool]float64{true: notFound, false: 5*size + notFound}[bodyPath == "sendfile"]},
		{`ktls_http_request_duration_seconds_count{method="GET"}`, 6},
	} {
		if got, ok := metricValue(page, want.series); !ok || got != want.value {
			t.Errorf("%s = %v (found %v), want %v", want.series, got, ok, want.value)
		}
	}
	if t.Failed() {
		t.Logf("metrics page:\n%s", grepLines(page, "ktls_"))
	}
}

// waitForMetric scrapes url until series has the value want, and returns
// that page; it fails the test after hostiletest.Bound.
func waitForMetric(t *testing.T, url, series string, want float64) string {
	t.Helper()
	deadline := time.Now().Add(hostiletest.Bound)
	for {
		page := scrape(t, url)
		if got, ok := metricValue(page, series); ok && got == want {
			return page
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never became %v:\n%s", series, want, grepLines(page, "ktls_"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// metricValue finds a series' value on a metrics page.
func metricValue(page, series string) (float64, bool) {
	for _, l := range strings.Split(page, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
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

// TestServeLogsOffload: what the kernel took of a connection is logged
// from the connection's own Offload, once per kind of connection, and
// agrees with the access log; the serving line predicts nothing, it says
// what the options ask.
func TestServeLogsOffload(t *testing.T) {
	s := start(t, serve.Config{Dir: t.TempDir()})
	for range 2 {
		if code, _ := s.get(t, "/"); code != 200 {
			t.Fatalf("GET / = %d", code)
		}
	}
	// A request, not a bare handshake: a client that closes at once can
	// be gone before the server's handoff, which then (truly) logs that
	// the kernel refused the socket.
	c := s.client()
	c.Transport.(*http.Transport).TLSClientConfig.MaxVersion = tls.VersionTLS12
	resp, err := c.Get("https://" + s.addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	c.CloseIdleConnections()

	want, reason := "ktls=none ktls_reason=no-ulp", "kernel TLS (the tls ULP) is not"
	if kerneltest.HaveULP() {
		want, reason = "ktls=tx+rx", ""
	}
	if _, ok := s.log.waitFor("msg=offload ktls=", hostiletest.Bound); !ok {
		t.Fatalf("no offload line in the log:\n%s", s.log)
	}
	var lines []string
	for _, l := range strings.Split(s.log.String(), "\n") {
		if strings.Contains(l, "msg=offload ") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 2 {
		t.Fatalf("%d offload lines, want 2: one for the two TLS 1.3 connections, one for the TLS 1.2 one:\n%s", len(lines), s.log)
	}
	for i, version := range []string{"TLS 1.3", "TLS 1.2"} {
		if l := lines[i]; !strings.Contains(l, " "+want+" ") || !strings.Contains(l, "("+version+", TLS_") || !strings.Contains(l, reason) {
			t.Errorf("offload line %q, want %s, %s and %q", l, want, version, reason)
		}
	}
	if req, ok := s.log.waitFor("msg=request", 0); !ok || !strings.HasSuffix(req, " "+want) {
		t.Errorf("request line %q, want it to end %q as the offload line", req, want)
	}
}

func TestOffloadModes(t *testing.T) {
	for _, tc := range []struct {
		opts *ktls.Options
		want string
	}{
		{nil, "TX auto, RX auto; offload is logged per connection"},
		{&ktls.Options{TX: ktls.Enabled, RX: ktls.Disabled}, "TX auto, RX off; offload is logged per connection"},
		{&ktls.Options{TX: ktls.Required, RX: ktls.Required}, "TX required, RX required; offload is logged per connection"},
		{&ktls.Options{TX: ktls.Disabled}, "off, connections stay on crypto/tls: TX offload is disabled"},
	} {
		if got := serve.OffloadModes(tc.opts); got != tc.want {
			t.Errorf("OffloadModes(%+v) = %q, want %q", tc.opts, got, tc.want)
		}
	}
}
