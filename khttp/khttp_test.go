package khttp_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/lab/kerneltest"
	"github.com/ktlsgo/ktls/internal/lab/testcert"
	"github.com/ktlsgo/ktls/internal/lab/wiretest"
	"github.com/ktlsgo/ktls/khttp"
)

func TestMain(m *testing.M) {
	if addrFile := os.Getenv(envServe); addrFile != "" {
		serveForStrace(addrFile)
		return
	}
	goleak.VerifyTestMain(m,
		// net/http's and x/net's idle connection machinery outlives a
		// closed transport by design.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"))
}

func inLab() bool { _, ok := kerneltest.InLab(); return ok }

// writeFile writes n pseudo-random bytes to dir/name and returns the
// SHA-256 in hex.
func writeFile(t testing.TB, dir, name string, n int64) string {
	t.Helper()
	sum := wiretest.RandomFile(t, filepath.Join(dir, name), n, 42)
	return hex.EncodeToString(sum[:])
}

// info is what /info reports about the request's connection.
type info struct {
	Proto   string
	TLS     bool
	Version uint16
	TX, RX  bool
	Reason  string
}

func handler(dir string) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/files/", http.StripPrefix("/files/", http.FileServer(http.Dir(dir))))
	mux.HandleFunc("/info", func(w http.ResponseWriter, r *http.Request) {
		in := info{Proto: r.Proto, TLS: r.TLS != nil && r.TLS.HandshakeComplete}
		if r.TLS != nil {
			in.Version = r.TLS.Version
		}
		if c, ok := khttp.ConnFromContext(r.Context()); ok {
			o := c.Offload()
			in.TX, in.RX = o.TX, o.RX
			in.Reason = o.String()
		}
		json.NewEncoder(w).Encode(in)
	})
	mux.HandleFunc("/etag/", func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Open(filepath.Join(dir, strings.TrimPrefix(r.URL.Path, "/etag/")))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		defer f.Close()
		w.Header().Set("ETag", `"v1"`)
		http.ServeContent(w, r, f.Name(), time.Unix(1700000000, 0), f)
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(500 * time.Millisecond)
		io.WriteString(w, "done")
	})
	return mux
}

// startServer serves handler over ktls on loopback.
func startServer(t testing.TB, srv *http.Server) (*khttp.Server, string) {
	t.Helper()
	b := testcert.Get(testcert.ECDSA)
	srv.TLSConfig = b.ServerConfig()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ks := &khttp.Server{HTTP: srv}
	done := make(chan error, 1)
	go func() { done <- ks.Serve(ln) }()
	t.Cleanup(func() {
		ks.Close()
		if err := <-done; err != http.ErrServerClosed {
			t.Errorf("Serve returned %v, want http.ErrServerClosed", err)
		}
	})
	return ks, "https://" + ln.Addr().String()
}

func clients(t testing.TB) map[string]*http.Client {
	cfg := testcert.Get(testcert.ECDSA).ClientConfig()
	h1 := khttp.NewTransport(cfg, nil)
	h2 := khttp.NewHTTP2Transport(cfg, nil)
	t.Cleanup(func() { h1.CloseIdleConnections(); h2.CloseIdleConnections() })
	return map[string]*http.Client{"HTTP/1.1": {Transport: h1}, "HTTP/2.0": {Transport: h2}}
}

func getInfo(t testing.TB, c *http.Client, base string) info {
	t.Helper()
	resp, err := c.Get(base + "/info")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var in info
	if err := json.NewDecoder(resp.Body).Decode(&in); err != nil {
		t.Fatal(err)
	}
	return in
}

// TestServe: both protocols, r.TLS set, the file intact, the server's
// offload as the kernel allows: TX and RX in the lab, neither (with a
// reason) on a host without kernel TLS.
func TestServe(t *testing.T) {
	dir := t.TempDir()
	sum := writeFile(t, dir, "f.bin", 4<<20)
	_, base := startServer(t, &http.Server{Handler: handler(dir)})
	for proto, c := range clients(t) {
		t.Run(proto, func(t *testing.T) {
			in := getInfo(t, c, base)
			if in.Proto != proto || !in.TLS || in.Version != tls.VersionTLS13 {
				t.Fatalf("info = %+v, want %s over TLS 1.3", in, proto)
			}
			offloaded := kerneltest.HaveULP()
			if in.TX != offloaded || in.RX != offloaded {
				t.Fatalf("server offload %q, want TX and RX = %v", in.Reason, offloaded)
			}
			resp, err := c.Get(base + "/files/f.bin")
			if err != nil {
				t.Fatal(err)
			}
			h := sha256.New()
			_, err = io.Copy(h, resp.Body)
			resp.Body.Close()
			if err != nil || hex.EncodeToString(h.Sum(nil)) != sum {
				t.Fatalf("download: %v, or the hash differs", err)
			}
		})
	}
}

// TestLikeNetHTTP: Range and conditional requests get the same answers as
// from net/http's own TLS server, on both protocols.
func TestLikeNetHTTP(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "f.bin", 1<<20+17)
	_, base := startServer(t, &http.Server{Handler: handler(dir)})
	ref := httptest.NewUnstartedServer(handler(dir))
	ref.EnableHTTP2 = true
	ref.TLS = testcert.Get(testcert.ECDSA).ServerConfig()
	ref.StartTLS()
	defer ref.Close()
	refClient := ref.Client()
	refClient.Transport.(*http.Transport).TLSClientConfig.RootCAs = testcert.Get(testcert.ECDSA).Pool
	requests := []map[string]string{
		{"path": "/etag/f.bin"},
		{"path": "/etag/f.bin", "Range": "bytes=0-0"},
		{"path": "/etag/f.bin", "Range": "bytes=4097-70000"},
		{"path": "/etag/f.bin", "Range": "bytes=-100"},
		{"path": "/etag/f.bin", "Range": "bytes=1000-2000,5000-6000"},
		{"path": "/etag/f.bin", "Range": "bytes=99999999-"},
		{"path": "/etag/f.bin", "If-None-Match": `"v1"`},
		{"path": "/etag/f.bin", "If-None-Match": `"v0"`},
		{"path": "/etag/f.bin", "If-Modified-Since": time.Unix(1700000000, 0).UTC().Format(http.TimeFormat)},
		{"path": "/etag/f.bin", "If-Range": `"v0"`, "Range": "bytes=0-9"},
		{"path": "/files/"},
		{"path": "/files/nope"},
	}
	for proto, c := range clients(t) {
		for _, req := range requests {
			got := fetch(t, c, base, req)
			want := fetch(t, refClient, ref.URL, req)
			if got != want {
				t.Errorf("%s %v:\n got %s\nwant %s", proto, req, got, want)
			}
		}
	}
}

// fetch summarizes a response: status, the headers that matter, and the
// body's hash. Multipart boundaries are random; they are cut out.
func fetch(t testing.TB, c *http.Client, base string, req map[string]string) string {
	t.Helper()
	r, _ := http.NewRequest("GET", base+req["path"], nil)
	for k, v := range req {
		if k != "path" {
			r.Header.Set(k, v)
		}
	}
	resp, err := c.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	ct := resp.Header.Get("Content-Type")
	if i := strings.Index(ct, "boundary="); i >= 0 {
		boundary := ct[i+len("boundary="):]
		body = []byte(strings.ReplaceAll(string(body), boundary, "B"))
		ct = ct[:i]
	}
	return fmt.Sprintf("%d %q %q %q %q %x", resp.StatusCode, ct, resp.Header.Get("Content-Range"),
		resp.Header.Get("ETag"), resp.Header.Get("Accept-Ranges"), sha256.Sum256(body))
}

// TestCurl: Debian's curl downloads a 256 MiB file over HTTP/1.1 and
// HTTP/2 (32 MiB on the lab kernels other than kerneltest.BulkKernel), and
// its SHA-256 matches. In the lab, the server offloads both
// directions and the kernel's TlsTxSw counts the connections.
func TestCurl(t *testing.T) {
	curl := kerneltest.Program(t, "curl")
	size := kerneltest.BulkSize(256<<20, 32<<20)
	if testing.Short() {
		size = 8 << 20
	}
	dir := t.TempDir()
	sum := writeFile(t, dir, "big.bin", size)
	_, base := startServer(t, &http.Server{Handler: handler(dir)})
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(caFile, testcert.Get(testcert.ECDSA).CAPEM, 0o644)
	for _, proto := range []string{"--http1.1", "--http2"} {
		t.Run(proto, func(t *testing.T) {
			var before uint64
			if inLab() {
				before = tlsStat(t, "TlsTxSw")
			}
			out, err := exec.Command("sh", "-c", fmt.Sprintf("%s -sS --fail %s --cacert %s %s/files/big.bin | sha256sum", curl, proto, caFile, base)).CombinedOutput()
			if err != nil {
				t.Fatalf("curl: %v\n%s", err, out)
			}
			if got := strings.Fields(string(out)); len(got) == 0 || got[0] != sum {
				t.Fatalf("curl's SHA-256 %q, want %s", out, sum)
			}
			if inLab() {
				if d := tlsStat(t, "TlsTxSw") - before; d < 1 {
					t.Errorf("TlsTxSw went up by %d, want at least 1", d)
				}
			}
			// What the server thought of curl's connection.
			out, err = exec.Command(curl, "-sS", "--fail", proto, "--cacert", caFile, base+"/info").CombinedOutput()
			if err != nil {
				t.Fatalf("curl /info: %v\n%s", err, out)
			}
			var in info
			json.Unmarshal(out, &in)
			wantProto := map[string]string{"--http1.1": "HTTP/1.1", "--http2": "HTTP/2.0"}[proto]
			offloaded := kerneltest.HaveULP()
			if in.Proto != wantProto || in.TX != offloaded || in.RX != offloaded {
				t.Fatalf("server saw %+v, want %s with offload %v", in, wantProto, offloaded)
			}
		})
	}
}

func tlsStat(t testing.TB, name string) uint64 { return kerneltest.Stat(t, name) }

// TestShutdown: Shutdown waits for requests in flight on both protocols,
// and the server stops accepting.
func TestShutdown(t *testing.T) {
	ks, base := startServer(t, &http.Server{Handler: handler(t.TempDir())})
	cs := clients(t)
	var wg sync.WaitGroup
	results := make(chan string, 2)
	for _, c := range cs {
		getInfo(t, c, base) // connect first
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.Get(base + "/slow")
			if err != nil {
				results <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			results <- string(b)
		}()
	}
	time.Sleep(100 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ks.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	wg.Wait()
	close(results)
	for r := range results {
		if r != "done" {
			t.Errorf("a request in flight during Shutdown got %q", r)
		}
	}
	if _, err := net.Dial("tcp", strings.TrimPrefix(base, "https://")); err == nil {
		t.Error("the server still accepts after Shutdown")
	}
}

// TestConnStateAndHijack: ConnState hooks see HTTP/1.1 connections come
// and go, and a handler can hijack one. Both get the *ktls.Conn where the
// kernel encrypts, and a wrapper without ReadFrom where it doesn't (on a
// host without kernel TLS: this test failed there when the http.Server
// got the *ktls.Conn, whose ReadFrom net/http splits every response
// around); ConnFromNetConn finds the *ktls.Conn in either.
func TestConnStateAndHijack(t *testing.T) {
	states := newConnStates(t)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, buf, err := w.(http.Hijacker).Hijack()
			if err != nil {
				t.Errorf("Hijack: %v", err)
				return
			}
			defer c.Close()
			if err := checkServed(c); err != nil {
				t.Errorf("Hijack: %v", err)
			}
			buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nhijacked")
			buf.Flush()
		}),
		ConnState: states.hook,
	}
	_, base := startServer(t, srv)
	resp, err := clients(t)["HTTP/1.1"].Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "hijacked" {
		t.Fatalf("body %q", body)
	}
	if n := states.counts(); n[http.StateNew] != 1 || n[http.StateActive] != 1 || n[http.StateHijacked] != 1 {
		t.Errorf("ConnState calls %v, want one each of new, active, hijacked", n)
	}
}

// connStates counts an http.Server's ConnState calls, each of which must
// get the connection as checkServed says.
type connStates struct {
	t  *testing.T
	mu sync.Mutex
	n  map[http.ConnState]int
}

func newConnStates(t *testing.T) *connStates {
	return &connStates{t: t, n: map[http.ConnState]int{}}
}

// hook is the http.Server's ConnState.
func (s *connStates) hook(c net.Conn, state http.ConnState) {
	if err := checkServed(c); err != nil {
		s.t.Errorf("ConnState: %v", err)
	}
	s.mu.Lock()
	s.n[state]++
	s.mu.Unlock()
}

// counts returns the calls so far, by state.
func (s *connStates) counts() map[http.ConnState]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.n)
}

// checkServed says what is wrong with a connection the http.Server
// passes on (to ConnState, or from Hijack): it must be the *ktls.Conn
// where the kernel encrypts, and a wrapper without ReadFrom, whose
// NetConn is the *ktls.Conn, where it doesn't.
func checkServed(c net.Conn) error {
	kc, ok := khttp.ConnFromNetConn(c)
	if !ok {
		return fmt.Errorf("ConnFromNetConn(%T) found no *ktls.Conn", c)
	}
	tx := kc.Offload().TX
	if _, isKTLS := c.(*ktls.Conn); isKTLS != tx {
		return fmt.Errorf("got a %T for a connection with TX offload %v", c, tx)
	}
	if _, readFrom := c.(io.ReaderFrom); readFrom != tx {
		return fmt.Errorf("got a %T with ReadFrom %v, TX offload %v", c, readFrom, tx)
	}
	if nc, ok := c.(interface{ NetConn() net.Conn }); !tx && (!ok || nc.NetConn() != net.Conn(kc)) {
		return fmt.Errorf("the wrapper's NetConn is not the *ktls.Conn")
	}
	return nil
}

// TestClientOpenSSL: the client helper fetches from openssl s_server -WWW
// over TLS 1.2 and 1.3, offloaded in the lab.
func TestClientOpenSSL(t *testing.T) {
	kerneltest.RequireULP(t)
	openssl := kerneltest.Program(t, "openssl")
	b := testcert.Get(testcert.ECDSA)
	dir := t.TempDir()
	sum := writeFile(t, dir, "f.bin", 2<<20)
	certFile, keyFile := b.WriteFiles(t, dir)
	for _, v := range []string{"-tls1_2", "-tls1_3"} {
		t.Run(v, func(t *testing.T) {
			ln, _ := net.Listen("tcp", "127.0.0.1:0")
			addr := ln.Addr().String()
			ln.Close()
			srv := exec.Command(openssl, "s_server", "-accept", addr, "-cert", certFile, "-key", keyFile, v, "-WWW", "-quiet")
			srv.Dir = dir
			if err := srv.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { srv.Process.Kill(); srv.Wait() }()
			var conn net.Conn
			ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
				GotConn: func(ci httptrace.GotConnInfo) { conn = ci.Conn },
			})
			c := &http.Client{Transport: khttp.NewTransport(b.ClientConfig(), nil)}
			defer c.CloseIdleConnections()
			var resp *http.Response
			var err error
			for i := 0; i < 100; i++ { // until s_server listens
				req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+addr+"/f.bin", nil)
				if resp, err = c.Do(req); err == nil {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err != nil {
				t.Fatal(err)
			}
			h := sha256.New()
			io.Copy(h, bufio.NewReader(resp.Body))
			resp.Body.Close()
			if hex.EncodeToString(h.Sum(nil)) != sum {
				t.Fatal("the file from openssl differs")
			}
			if o := conn.(*ktls.Conn).Offload(); !o.TX || !o.RX {
				t.Fatalf("client Offload() = %v, want TX and RX", o)
			}
		})
	}
}

// TestConnStateHTTP2: an HTTP/2 connection is reported new when it
// starts and closed when it ends, as net/http reports its own; a hook
// that counts open connections (ktls serve's gauge) returns to zero. The
// hook gets the connection as HTTP/1.1's do (checkServed).
func TestConnStateHTTP2(t *testing.T) {
	states := newConnStates(t)
	srv := &http.Server{
		Handler:   http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hi") }),
		ConnState: states.hook,
	}
	_, base := startServer(t, srv)
	c := clients(t)["HTTP/2.0"]
	resp, err := c.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("served over %s", resp.Proto)
	}
	c.CloseIdleConnections()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		n := states.counts()
		if n[http.StateNew] == 1 && n[http.StateClosed] == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("ConnState calls %v, want the connection new once and closed once", n)
		}
	}
}
