package bench

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ktlsgo/ktls/internal/cli/bench/nginx"
)

// Servers are the implementations a run can compare.
var Servers = []string{"ktls", "ktls-write", "ktls-rxoff", "go", "nginx-ktls", "nginx"}

// A server is a running server process.
type server struct {
	name  string
	url   string
	stats string // where a ktls server serves its OffloadCounts, if it does
	cmd   *exec.Cmd
}

func (s *server) pid() int { return s.cmd.Process.Pid }

func (s *server) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
}

// env is where the servers run: the files, the certificate, and the ktls
// binary (this program) for the Go servers.
type env struct {
	dir      string // files to serve
	work     string // scratch: nginx's prefix
	certFile string
	keyFile  string
	self     string
}

func (e *env) start(ctx context.Context, name string) (*server, error) {
	switch name {
	case "ktls", "ktls-write", "ktls-rxoff", "go":
		cmd := exec.CommandContext(ctx, e.self, "bench-server", "--impl", name, "--dir", e.dir,
			"--cert", e.certFile, "--key", e.keyFile)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			return nil, fmt.Errorf("%s: no address: %v", name, err)
		}
		url, stats, ok := parseServing(line)
		if !ok {
			cmd.Process.Kill()
			cmd.Wait()
			return nil, fmt.Errorf("%s: said %q", name, line)
		}
		return &server{name: name, url: url, stats: stats, cmd: cmd}, nil
	case "nginx-ktls", "nginx":
		return e.startNginx(ctx, name, name == "nginx-ktls")
	}
	return nil, fmt.Errorf("unknown server %q (have %s)", name, strings.Join(Servers, ", "))
}

// parseServing reads the line a Go server (ktls bench-server) starts
// with, "serving https://ADDR", followed by " stats http://ADDR" for a
// ktls server that counts its connections' offload: the URL to load, and
// where the counts are.
func parseServing(line string) (url, stats string, ok bool) {
	i := strings.Index(line, "https://")
	if i < 0 {
		return "", "", false
	}
	url = strings.Fields(line[i:])[0]
	if _, after, ok := strings.Cut(line, " stats "); ok {
		stats = strings.TrimSpace(after) + "/offload"
	}
	return url, stats, true
}

// startNginx runs nginx as one process (no master, no daemon), so its CPU
// time is the server's, with OpenSSL's kernel TLS on or off.
func (e *env) startNginx(ctx context.Context, name string, ktls bool) (*server, error) {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if _, err2 := os.Stat("/usr/sbin/nginx"); err2 != nil {
			return nil, fmt.Errorf("nginx is not installed: %w", err)
		}
		bin = "/usr/sbin/nginx"
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := e.nginxConfig(name, addr, ktls)
	args, err := cfg.Write()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			log, _ := os.ReadFile(cfg.ErrorLog())
			return nil, fmt.Errorf("%s did not start: %s", name, log)
		}
	}
	return &server{name: name, url: "https://" + addr, cmd: cmd}, nil
}

// nginxConfig is the configuration of the nginx server named name: one
// server at addr for the files, which reads and drops what is POSTed to
// /upload, with OpenSSL's kernel TLS on or off.
func (e *env) nginxConfig(name, addr string, ktls bool) *nginx.Config {
	return &nginx.Config{
		Prefix: filepath.Join(e.work, name), LogLevel: "warn", Connections: 8192,
		HTTP: []string{"keepalive_requests 1000000;"},
		Servers: []nginx.Server{{
			Listen: addr, CertFile: e.certFile, KeyFile: e.keyFile, Protocols: "TLSv1.2 TLSv1.3", KTLS: ktls, Root: e.dir,
			Directives: []string{"client_max_body_size 0;", "location = /upload { return 204; }"},
		}},
	}
}
