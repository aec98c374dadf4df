package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/cli/bench/nginx"
	"github.com/ktlsgo/ktls/internal/lab/kerneltest"
	"github.com/ktlsgo/ktls/internal/lab/ktlstest"
	"github.com/ktlsgo/ktls/internal/lab/testcert"
	"github.com/ktlsgo/ktls/internal/lab/wiretest"
)

// The interop matrix runs ktls against other TLS implementations, as
// client and as server, for both versions and every cipher the kernel can
// take, and moves at least 16 MiB each way the peer allows, checked with
// SHA-256. The peers are the programs Debian ships (.ci/run installs
// them; the lab's guests run the host's binaries):
//
//	ktls client  ->  openssl s_server -WWW    a file, peer to ktls
//	ktls client  ->  gnutls-serv --echo       text lines, echoed: both ways
//	ktls client  ->  nginx (KTLS, sendfile)   a file, peer to ktls
//	openssl s_client  ->  ktls server         stdin up, a stream down
//	gnutls-cli        ->  ktls server         stdin up, a short stream down
//	curl              ->  ktls server         an upload (PUT), then a download
//
// gnutls-cli writes what it receives to stdout one byte per write(2):
// 16 MiB would be 16 million system calls, minutes under emulation. It
// gets 64 KiB; ktls's records into GnuTLS are covered in bulk by
// gnutls-serv.
//
// A Go client can't choose its TLS 1.3 suite, so wherever ktls is the
// client, the peer's configuration picks it; where ktls serves, the
// peer's client offers that one suite only.

// matrixCipher is one AEAD, named in each implementation's dialect.
type matrixCipher struct {
	name    string
	tls12   uint16 // the ECDHE-ECDSA suite (the certificate is ECDSA)
	tls13   uint16
	openssl string // OpenSSL's TLS 1.2 cipher name; TLS 1.3 uses Go's
	gnutls  string
}

var matrixCiphers = []matrixCipher{
	{"AES-128-GCM", tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_AES_128_GCM_SHA256, "ECDHE-ECDSA-AES128-GCM-SHA256", "AES-128-GCM"},
	{"AES-256-GCM", tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_AES_256_GCM_SHA384, "ECDHE-ECDSA-AES256-GCM-SHA384", "AES-256-GCM"},
	{"CHACHA20-POLY1305", tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_CHACHA20_POLY1305_SHA256, "ECDHE-ECDSA-CHACHA20-POLY1305", "CHACHA20-POLY1305"},
}

// A matrixCell is one version and cipher.
type matrixCell struct {
	version uint16
	cipher  matrixCipher
}

func (c matrixCell) String() string {
	return strings.ReplaceAll(tls.VersionName(c.version), " ", "") + "/" + c.cipher.name
}

func (c matrixCell) suite() uint16 {
	if c.version == tls.VersionTLS13 {
		return c.cipher.tls13
	}
	return c.cipher.tls12
}

// openssl returns the s_server and s_client flags that allow this cell
// only.
func (c matrixCell) openssl() []string {
	if c.version == tls.VersionTLS13 {
		return []string{"-tls1_3", "-ciphersuites", tls.CipherSuiteName(c.cipher.tls13)}
	}
	return []string{"-tls1_2", "-cipher", c.cipher.openssl}
}

// gnutlsPriority is a GnuTLS priority string that allows this cell only.
func (c matrixCell) gnutlsPriority() string {
	v := "VERS-TLS1.2"
	if c.version == tls.VersionTLS13 {
		v = "VERS-TLS1.3"
	}
	return "NORMAL:-VERS-ALL:+" + v + ":-CIPHER-ALL:+" + c.cipher.gnutls
}

// curl returns curl's flags for this cell.
func (c matrixCell) curl() []string {
	if c.version == tls.VersionTLS13 {
		return []string{"--tlsv1.3", "--tls-max", "1.3", "--tls13-ciphers", tls.CipherSuiteName(c.cipher.tls13)}
	}
	return []string{"--tlsv1.2", "--tls-max", "1.2", "--ciphers", c.cipher.openssl}
}

// clientConfig and serverConfig are ktls's configs for the cell: TLS 1.2
// with the one suite, or TLS 1.3 with whatever suite the peer picks.
func (c matrixCell) clientConfig(b *testcert.Bundle) *tls.Config { return c.restrict(b.ClientConfig()) }
func (c matrixCell) serverConfig(b *testcert.Bundle) *tls.Config { return c.restrict(b.ServerConfig()) }

func (c matrixCell) restrict(cfg *tls.Config) *tls.Config {
	cfg.MinVersion, cfg.MaxVersion = c.version, c.version
	if c.version == tls.VersionTLS12 {
		cfg.CipherSuites = []uint16{c.cipher.tls12}
	}
	return cfg
}

// matrixEnv is what every cell shares: certificates, and a file of
// pseudo-random bytes that servers serve and clients upload.
type matrixEnv struct {
	peerFiles
	file           string // dir/data.bin
	fileSum        [32]byte
	size           int64
	nginxPorts     map[string]string // cell to port
	nginxErrorLogs string
}

// matrixResult is one line of the summary.
type matrixResult struct {
	peer, role string
	cell       matrixCell
	// tx is ktls to the peer, rx the peer to ktls: "ok", "FAIL", or "-"
	// where the peer moves no data that way; with the size moved.
	tx, rx     string
	offload    string // what ktls reported
	peerKernel string // what the peer itself handed to the kernel
	took       time.Duration
}

// A matrixPeer is one program, and how a cell runs against it.
type matrixPeer struct {
	name    string
	role    string // ktls's role
	program string
	tx, rx  bool // the directions it moves data in
	setup   func(t *testing.T, env *matrixEnv, cells []matrixCell, program string)
	run     func(t *testing.T, env *matrixEnv, cell matrixCell, program string, res *matrixResult)
}

var matrixPeers = []matrixPeer{
	{name: "openssl s_server", role: "client", program: "openssl", rx: true, run: runOpenSSLServer},
	{name: "gnutls-serv", role: "client", program: "gnutls-serv", tx: true, rx: true, run: runGnuTLSServer},
	{name: "nginx", role: "client", program: "nginx", rx: true, setup: setupNginx, run: runNginx},
	{name: "openssl s_client", role: "server", program: "openssl", tx: true, rx: true, run: runOpenSSLClient},
	{name: "gnutls-cli", role: "server", program: "gnutls-cli", tx: true, rx: true, run: runGnuTLSClient},
	{name: "curl", role: "server", program: "curl", tx: true, rx: true, run: runCurl},
}

// TestInteropMatrix runs every peer against every version and cipher, and
// prints the matrix at the end.
func TestInteropMatrix(t *testing.T) {
	kerneltest.RequireULP(t)
	size := int64(16 << 20)
	if testing.Short() {
		size = 1 << 20
	}
	env := &matrixEnv{peerFiles: writePeerFiles(t), size: size}
	env.file, env.fileSum = randomFile(t, env.dir, size)
	ktlstest.WarmProbes(t)

	var cells []matrixCell
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		for _, c := range matrixCiphers {
			cells = append(cells, matrixCell{v, c})
		}
	}
	var results []*matrixResult
	start := time.Now()
	for _, p := range matrixPeers {
		t.Run(strings.ReplaceAll(p.name, " ", "_"), func(t *testing.T) {
			program := kerneltest.Program(t, p.program)
			if p.setup != nil {
				p.setup(t, env, cells, program)
			}
			for _, cell := range cells {
				res := &matrixResult{peer: p.name, role: p.role, cell: cell, tx: "-", rx: "-"}
				if p.tx {
					res.tx = "FAIL"
				}
				if p.rx {
					res.rx = "FAIL"
				}
				results = append(results, res)
				t.Run(cell.String(), func(t *testing.T) {
					txSw, rxSw := kerneltest.Stat(t, "TlsTxSw"), kerneltest.Stat(t, "TlsRxSw")
					begin := time.Now()
					p.run(t, env, cell, program, res)
					res.took = time.Since(begin)
					// ktls's own connection counts one each way; the
					// rest is the peer's.
					res.peerKernel = peerOffload(kerneltest.Stat(t, "TlsTxSw")-txSw, kerneltest.Stat(t, "TlsRxSw")-rxSw)
				})
			}
		})
	}
	logMatrix(t, results, time.Since(start))
}

// peerOffload says what the peer offloaded, from the kernel's counters of
// sockets that installed a key, less ktls's own.
func peerOffload(tx, rx uint64) string {
	switch {
	case tx > 1 && rx > 1:
		return "TX+RX"
	case tx > 1:
		return "TX"
	case rx > 1:
		return "RX"
	}
	return "-"
}

func logMatrix(t *testing.T, results []*matrixResult, took time.Duration) {
	var b strings.Builder
	fmt.Fprintf(&b, "interop matrix, kernel %s, SHA-256 checked, %.0fs:\n", kerneltest.Release(), took.Seconds())
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "peer\tktls is\tversion\tcipher\tktls→peer\tpeer→ktls\tktls offload\tpeer offload\ttime")
	failed := 0
	for _, r := range results {
		if r.tx == "FAIL" || r.rx == "FAIL" {
			failed++
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.1fs\n", r.peer, r.role, tls.VersionName(r.cell.version), r.cell.cipher.name,
			r.tx, r.rx, r.offload, r.peerKernel, r.took.Seconds())
	}
	w.Flush()
	fmt.Fprintf(&b, "%d cells, %d failed", len(results), failed)
	for _, line := range strings.Split(b.String(), "\n") {
		t.Log(line)
	}
}

// okSize is a direction that moved n bytes intact.
func okSize(n int64) string {
	if n >= 1<<20 {
		return fmt.Sprintf("ok %d MiB", n>>20)
	}
	return fmt.Sprintf("ok %d KiB", n>>10)
}

// checkOffload records in res what ktls offloaded, and says what is
// wrong unless it took both directions with the cell's version and suite.
func (res *matrixResult) checkOffload(o ktls.Offload, cell matrixCell) error {
	res.offload = "FAIL"
	if !o.TX || !o.RX || o.Version != cell.version || o.CipherSuite != cell.suite() {
		return fmt.Errorf("Offload() = %v, want TX+RX with %s %s", o, tls.VersionName(cell.version), tls.CipherSuiteName(cell.suite()))
	}
	res.offload = "TX+RX"
	return nil
}

// cellContext bounds one cell: emulated crypto is slow, but not this slow.
func cellContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func deadline(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}

// dialCell dials addr as a ktls client for the cell, and checks the
// offload.
func dialCell(t *testing.T, ctx context.Context, addr string, env *matrixEnv, cell matrixCell, res *matrixResult) *ktls.Conn {
	t.Helper()
	d := &ktls.Dialer{Config: cell.clientConfig(env.bundle)}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	kc := c.(*ktls.Conn)
	t.Cleanup(func() { kc.Close() })
	kc.SetDeadline(deadline(ctx))
	if err := res.checkOffload(kc.Offload(), cell); err != nil {
		t.Fatal(err)
	}
	return kc
}

// sumWriter hashes and counts what is written to it.
type sumWriter struct {
	h hash.Hash
	n int64
}

func newSumWriter() *sumWriter { return &sumWriter{h: sha256.New()} }

func (w *sumWriter) Write(p []byte) (int, error) {
	w.h.Write(p)
	w.n += int64(len(p))
	return len(p), nil
}

func (w *sumWriter) sum() [32]byte { return [32]byte(w.h.Sum(nil)) }

// getFile sends an HTTP/1.0 GET for path and checks that the body is the
// environment's file, and that the server ended the stream with
// close_notify (or after Content-Length bytes).
func getFile(t *testing.T, conn net.Conn, env *matrixEnv, path string) {
	t.Helper()
	if _, err := io.WriteString(conn, "GET "+path+" HTTP/1.0\r\nHost: localhost\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReaderSize(conn, 64<<10)
	status, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("reading the status line: %v", err)
	}
	if f := strings.Fields(status); len(f) < 2 || f[1] != "200" {
		t.Fatalf("status %q", status)
	}
	length := int64(-1)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the headers: %v", err)
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			break
		}
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "Content-Length") {
			length, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	w := newSumWriter()
	var body io.Reader = r
	if length >= 0 {
		body = io.LimitReader(r, length)
	}
	_, err = io.Copy(w, body)
	if err != nil {
		t.Fatalf("reading the body: %v, after %d bytes", err, w.n)
	}
	if w.n != env.size || w.sum() != env.fileSum {
		t.Fatalf("got %d bytes, want %d intact", w.n, env.size)
	}
}

// runOpenSSLServer: a ktls client fetches the file from s_server -WWW.
func runOpenSSLServer(t *testing.T, env *matrixEnv, cell matrixCell, openssl string, res *matrixResult) {
	ctx := cellContext(t)
	addr := startOpenSSLServer(t, ctx, openssl, env.peerFiles, nil, append([]string{"-WWW", "-naccept", "1", "-quiet"}, cell.openssl()...)...)
	conn := dialCell(t, ctx, addr, env, cell, res)
	getFile(t, conn, env, "/"+filepath.Base(env.file))
	res.rx = okSize(env.size)
}

// textStream writes n bytes of hex lines from a seeded generator, and
// returns their SHA-256. gnutls-serv's echo mode answers a line at a time
// and handles its input as a C string, so it echoes text only.
func textStream(w io.Writer, n int64, seed uint64) ([32]byte, error) {
	h := sha256.New()
	rng := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 2})
	raw := make([]byte, 32)
	line := make([]byte, 65)
	buf := make([]byte, 0, 64<<10)
	for n > 0 {
		buf = buf[:0]
		for len(buf)+len(line) <= cap(buf) {
			rng.Read(raw)
			hex.Encode(line, raw)
			line[64] = '\n'
			buf = append(buf, line...)
		}
		chunk := buf[:min(int64(len(buf)), n)]
		h.Write(chunk)
		if _, err := w.Write(chunk); err != nil {
			return [32]byte{}, err
		}
		n -= int64(len(chunk))
	}
	return [32]byte(h.Sum(nil)), nil
}

// runGnuTLSServer: a ktls client sends text lines to gnutls-serv --echo
// and reads them back at the same time.
func runGnuTLSServer(t *testing.T, env *matrixEnv, cell matrixCell, gnutlsServ string, res *matrixResult) {
	ctx := cellContext(t)
	port := freePort(t)
	srv := exec.CommandContext(ctx, gnutlsServ, "--echo", "--port", port, "--disable-client-cert",
		"--x509certfile", env.cert, "--x509keyfile", env.key, "--priority", cell.gnutlsPriority())
	// It prints every line it echoes: stdout goes nowhere.
	startAndWait(t, srv, "127.0.0.1:"+port)
	conn := dialCell(t, ctx, "127.0.0.1:"+port, env, cell, res)

	type result struct {
		sum [32]byte
		err error
	}
	sent := make(chan result, 1)
	go func() {
		s, err := textStream(conn, env.size, 3)
		sent <- result{s, err}
	}()
	got, err := wiretest.Drain(conn, env.size)
	s := <-sent
	if s.err != nil {
		t.Fatalf("sending: %v", s.err)
	}
	if err != nil {
		t.Fatalf("reading the echo: %v", err)
	}
	if got != s.sum {
		t.Fatal("the echo differs from what was sent")
	}
	res.tx, res.rx = okSize(env.size), okSize(env.size)
	if err := conn.CloseWrite(); err != nil {
		t.Fatalf("CloseWrite: %v", err)
	}
}

// setupNginx starts one nginx with a server per cell, each on its own
// port, with OpenSSL's kernel TLS and sendfile on: the configuration
// ktls bench gives nginx, one connection per request.
func setupNginx(t *testing.T, env *matrixEnv, cells []matrixCell, nginxBin string) {
	// User root, as the lab runs the tests, not nginx's default nobody:
	// the files are in the test's temporary directories, which are
	// private to their owner.
	cfg := &nginx.Config{Prefix: t.TempDir(), User: "root", LogLevel: "info", Connections: 64, HTTP: []string{"keepalive_timeout 0;"}}
	env.nginxPorts = map[string]string{}
	for _, cell := range cells {
		port := freePort(t)
		env.nginxPorts[cell.String()] = port
		proto, ciphers := "TLSv1.2", "ssl_ciphers "+cell.cipher.openssl+";"
		if cell.version == tls.VersionTLS13 {
			proto, ciphers = "TLSv1.3", "ssl_conf_command Ciphersuites "+tls.CipherSuiteName(cell.cipher.tls13)+";"
		}
		cfg.Servers = append(cfg.Servers, nginx.Server{Listen: "127.0.0.1:" + port, CertFile: env.cert, KeyFile: env.key,
			Protocols: proto, KTLS: true, Root: env.dir, Directives: []string{ciphers}})
	}
	args, err := cfg.Write()
	if err != nil {
		t.Fatal(err)
	}
	env.nginxErrorLogs = cfg.ErrorLog()
	cmd := exec.Command(nginxBin, args...)
	// startAndWait's probe looks for one port; nginx opens them all at
	// once.
	startAndWait(t, cmd, cfg.Servers[0].Listen)
	t.Cleanup(func() {
		if t.Failed() {
			log, _ := os.ReadFile(env.nginxErrorLogs)
			t.Logf("nginx error log:\n%s", log)
		}
	})
}

// runNginx: a ktls client fetches the file from nginx.
func runNginx(t *testing.T, env *matrixEnv, cell matrixCell, _ string, res *matrixResult) {
	ctx := cellContext(t)
	conn := dialCell(t, ctx, "127.0.0.1:"+env.nginxPorts[cell.String()], env, cell, res)
	getFile(t, conn, env, "/"+filepath.Base(env.file))
	res.rx = okSize(env.size)
}

// serveCell is serveOne for the cell, with the cell's offload recorded
// in res.
func serveCell(t *testing.T, ctx context.Context, env *matrixEnv, cell matrixCell, res *matrixResult, serve func(*ktls.Conn) error) (net.Listener, <-chan error) {
	return serveOne(t, ctx, cell.serverConfig(env.bundle), func(o ktls.Offload) error { return res.checkOffload(o, cell) }, serve)
}

// exchangeStreams receives in bytes and sends out bytes at once on c, and
// returns the hashes of both.
func exchangeStreams(c net.Conn, in, out int64, seed uint64) (got, sent [32]byte, err error) {
	sending := wiretest.Async(func() ([32]byte, error) { return wiretest.Stream(c, out, seed) })
	got, rerr := wiretest.Drain(c, in)
	w := <-sending
	return got, w.V, errors.Join(rerr, w.Err)
}

// runStdioClient runs a client program that sends its stdin to the ktls
// server and writes what it receives to stdout (s_client, gnutls-cli),
// upSize and downSize bytes at once, and ends when the server closes.
func runStdioClient(t *testing.T, env *matrixEnv, cell matrixCell, res *matrixResult, program string, upSize, downSize int64, args func(addr string) []string) {
	ctx := cellContext(t)
	var up, down [32]byte
	ln, served := serveCell(t, ctx, env, cell, res, func(kc *ktls.Conn) error {
		var err error
		up, down, err = exchangeStreams(kc, upSize, downSize, 11)
		return err
	})
	cmd := exec.CommandContext(ctx, program, args(ln.Addr().String())...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out := newSumWriter()
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = out, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// stdin stays open until the program exits: gnutls-cli ends the
	// connection when its input ends.
	wrote := make(chan [32]byte, 1)
	go func() {
		s, _ := wiretest.Stream(stdin, upSize, 12)
		wrote <- s
	}()
	werr := cmd.Wait()
	ln.Close()
	serr := <-served
	sentUp := <-wrote
	if serr != nil {
		t.Errorf("ktls server: %v", serr)
	}
	if werr != nil {
		t.Errorf("%s: %v\n%s", filepath.Base(program), werr, stderr.Bytes())
	}
	if serr == nil && up == sentUp {
		res.rx = okSize(upSize)
	} else {
		t.Errorf("the stream from %s arrived corrupted or short", filepath.Base(program))
	}
	if out.n == downSize && out.sum() == down {
		res.tx = okSize(downSize)
	} else {
		t.Errorf("%s received %d bytes, want %d intact", filepath.Base(program), out.n, downSize)
	}
}

// runOpenSSLClient: openssl s_client to a ktls server. -quiet implies
// -ign_eof: it reads until the server closes.
func runOpenSSLClient(t *testing.T, env *matrixEnv, cell matrixCell, openssl string, res *matrixResult) {
	runStdioClient(t, env, cell, res, openssl, env.size, env.size, func(addr string) []string {
		return append([]string{"s_client", "-connect", addr, "-servername", "localhost", "-CAfile", env.ca,
			"-verify_return_error", "-quiet"}, cell.openssl()...)
	})
}

// runGnuTLSClient: gnutls-cli to a ktls server, with its messages in a
// log file so stdout carries the data only.
func runGnuTLSClient(t *testing.T, env *matrixEnv, cell matrixCell, gnutlsCLI string, res *matrixResult) {
	logFile := filepath.Join(t.TempDir(), "gnutls-cli.log")
	runStdioClient(t, env, cell, res, gnutlsCLI, env.size, 64<<10, func(addr string) []string {
		host, port, _ := net.SplitHostPort(addr)
		return []string{host, "--port", port, "--x509cafile", env.ca, "--verify-hostname", "localhost",
			"--sni-hostname", "localhost", "--priority", cell.gnutlsPriority(), "--logfile", logFile}
	})
	if t.Failed() {
		log, _ := os.ReadFile(logFile)
		t.Logf("gnutls-cli log:\n%s", log)
	}
}

// runCurl: curl uploads the file with PUT to a ktls server, which checks
// it and answers with a stream of its own.
func runCurl(t *testing.T, env *matrixEnv, cell matrixCell, curl string, res *matrixResult) {
	ctx := cellContext(t)
	var down [32]byte
	upOK := false
	ln, served := serveCell(t, ctx, env, cell, res, func(kc *ktls.Conn) error {
		r := bufio.NewReader(kc)
		length := int64(-1)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return fmt.Errorf("reading the request: %w", err)
			}
			line = strings.TrimRight(line, "\r\n")
			if line == "" {
				break
			}
			if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "Content-Length") {
				length, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			}
		}
		if length != env.size {
			return fmt.Errorf("Content-Length %d, want %d", length, env.size)
		}
		got, err := wiretest.Drain(r, length)
		if err != nil {
			return fmt.Errorf("reading the upload: %w", err)
		}
		upOK = got == env.fileSum
		fmt.Fprintf(kc, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n", env.size)
		down, err = wiretest.Stream(kc, env.size, 13)
		return err
	})
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	args := append([]string{"--silent", "--show-error", "--fail", "--http1.1", "--cacert", env.ca,
		"--resolve", "localhost:" + port + ":127.0.0.1", "--header", "Expect:",
		"--upload-file", env.file, "--output", "-", "https://localhost:" + port + "/upload"}, cell.curl()...)
	cmd := exec.CommandContext(ctx, curl, args...)
	out := newSumWriter()
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = out, &stderr
	err := cmd.Run()
	ln.Close()
	if serr := <-served; serr != nil {
		t.Errorf("ktls server: %v", serr)
	}
	if err != nil {
		t.Errorf("curl: %v\n%s", err, stderr.Bytes())
	}
	if upOK {
		res.rx = okSize(env.size)
	} else {
		t.Error("the upload from curl arrived corrupted or short")
	}
	if out.n == env.size && out.sum() == down {
		res.tx = okSize(env.size)
	} else {
		t.Errorf("curl received %d bytes, want %d intact", out.n, env.size)
	}
}
