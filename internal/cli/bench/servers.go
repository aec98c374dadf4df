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
		i := strings.Index(line, "https://")
		if i < 0 {
			cmd.Process.Kill()
			cmd.Wait()
			return nil, fmt.Errorf("%s: said %q", name, line)
		}
		srv := &server{name: name, url: strings.Fields(line[i:])[0], cmd: cmd}
		if _, after, ok := strings.Cut(line, " stats "); ok {
			srv.stats = strings.TrimSpace(after) + "/offload"
		}
		return srv, nil
	case "nginx-ktls", "nginx":
		return e.startNginx(ctx, name, name == "nginx-ktls")
	}
	return nil, fmt.Errorf("unknown server %q (have %s)", name, strings.Join(Servers, ", "))
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
	prefix := filepath.Join(e.work, name)
	for _, d := range []string{"body", "proxy", "fastcgi", "uwsgi", "scgi", "logs"} {
		if err := os.MkdirAll(filepath.Join(prefix, d), 0o755); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	ktlsLine := ""
	if ktls {
		ktlsLine = "ssl_conf_command Options KTLS;"
	}
	conf := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
error_log %[1]s/logs/error.log warn;
pid %[1]s/nginx.pid;
events { worker_connections 8192; }
http {
	access_log off;
	sendfile on;
	keepalive_requests 1000000;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	default_type application/octet-stream;
	server {
		listen %[2]s ssl;
		ssl_certificate %[3]s;
		ssl_certificate_key %[4]s;
		ssl_protocols TLSv1.2 TLSv1.3;
		%[5]s
		root %[6]s;
		client_max_body_size 0;
		location = /upload { return 204; }
	}
}
`, prefix, addr, e.certFile, e.keyFile, ktlsLine, e.dir)
	confFile := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, bin, "-p", prefix, "-c", confFile, "-e", filepath.Join(prefix, "logs", "error.log"))
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
			log, _ := os.ReadFile(filepath.Join(prefix, "logs", "error.log"))
			return nil, fmt.Errorf("%s did not start: %s", name, log)
		}
	}
	return &server{name: name, url: "https://" + addr, cmd: cmd}, nil
}
