package nginx

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestWrite: the prefix gets the directories nginx wants, the file is the
// configuration, and the arguments point nginx at both; a user, HTTP
// directives and several servers, with and without kernel TLS, each with
// directives of its own, go where nginx takes them.
func TestWrite(t *testing.T) {
	prefix := filepath.Join(t.TempDir(), "nginx")
	c := &Config{Prefix: prefix, User: "root", LogLevel: "info", Connections: 64, HTTP: []string{"keepalive_timeout 0;"},
		Servers: []Server{
			{Listen: "127.0.0.1:1", CertFile: "c.pem", KeyFile: "k.pem", Protocols: "TLSv1.2", KTLS: true, Root: "/www",
				Directives: []string{"ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256;"}},
			{Listen: "127.0.0.1:2", CertFile: "c.pem", KeyFile: "k.pem", Protocols: "TLSv1.3", Root: "/www"},
		}}
	args, err := c.Write()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"-p", prefix, "-c", prefix + "/nginx.conf", "-e", prefix + "/logs/error.log"}; !slices.Equal(args, want) {
		t.Errorf("arguments %q, want %q", args, want)
	}
	for _, d := range []string{"body", "proxy", "fastcgi", "uwsgi", "scgi", "logs"} {
		if st, err := os.Stat(filepath.Join(prefix, d)); err != nil || !st.IsDir() {
			t.Errorf("%s: %v", d, err)
		}
	}
	got, err := os.ReadFile(c.File())
	if err != nil {
		t.Fatal(err)
	}
	want := `daemon off;
master_process off;
user root;
worker_processes 1;
error_log PREFIX/logs/error.log info;
pid PREFIX/nginx.pid;
events { worker_connections 64; }
http {
	access_log off;
	sendfile on;
	keepalive_timeout 0;
	client_body_temp_path PREFIX/body;
	proxy_temp_path PREFIX/proxy;
	fastcgi_temp_path PREFIX/fastcgi;
	uwsgi_temp_path PREFIX/uwsgi;
	scgi_temp_path PREFIX/scgi;
	default_type application/octet-stream;
	server {
		listen 127.0.0.1:1 ssl;
		ssl_certificate c.pem;
		ssl_certificate_key k.pem;
		ssl_protocols TLSv1.2;
		ssl_conf_command Options KTLS;
		root /www;
		ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256;
	}
	server {
		listen 127.0.0.1:2 ssl;
		ssl_certificate c.pem;
		ssl_certificate_key k.pem;
		ssl_protocols TLSv1.3;
		root /www;
	}
}
`
	if w := []byte(strings.ReplaceAll(want, "PREFIX", prefix)); string(got) != string(w) {
		t.Errorf("nginx.conf:\n%s\nwant:\n%s", got, w)
	}
}
