// Package nginx writes the configuration of an nginx that serves files
// over TLS as one process, with or without OpenSSL's kernel TLS: the
// nginx that ktls bench measures, and the one the interop tests fetch
// from (internal/lab/e2e). One writer keeps the two alike.
package nginx

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// A Config is an nginx.conf for one process: no daemon, no master, one
// worker, sendfile on, no access log, and its pid file, error log and
// temporary files under Prefix.
type Config struct {
	Prefix      string // nginx's -p
	User        string // the user directive; "" leaves nginx's default
	LogLevel    string // of the error log
	Connections int    // worker_connections
	HTTP        []string
	Servers     []Server
}

// A Server is one TLS server block: files from Root at Listen.
type Server struct {
	Listen            string // host:port
	CertFile, KeyFile string
	Protocols         string // ssl_protocols: "TLSv1.2 TLSv1.3"
	KTLS              bool   // OpenSSL's kernel TLS (ssl_conf_command Options KTLS)
	Root              string
	// Directives are added to the block, each with its ';': ciphers,
	// locations.
	Directives []string
}

// ErrorLog is where nginx logs errors: Prefix/logs/error.log.
func (c *Config) ErrorLog() string { return filepath.Join(c.Prefix, "logs", "error.log") }

// File is the configuration file Write writes: Prefix/nginx.conf.
func (c *Config) File() string { return filepath.Join(c.Prefix, "nginx.conf") }

// tempPaths are the temporary directories nginx wants, whatever it
// serves, by directive: under the prefix, not where it was built to put
// them (/var/lib/nginx), which the lab's read-only root doesn't have.
var tempPaths = [][2]string{
	{"client_body_temp_path", "body"},
	{"proxy_temp_path", "proxy"},
	{"fastcgi_temp_path", "fastcgi"},
	{"uwsgi_temp_path", "uwsgi"},
	{"scgi_temp_path", "scgi"},
}

// Bytes returns the configuration's text.
func (c *Config) Bytes() []byte {
	var b strings.Builder
	b.WriteString("daemon off;\nmaster_process off;\n")
	if c.User != "" {
		fmt.Fprintf(&b, "user %s;\n", c.User)
	}
	fmt.Fprintf(&b, "worker_processes 1;\nerror_log %s %s;\npid %s;\n", c.ErrorLog(), c.LogLevel, filepath.Join(c.Prefix, "nginx.pid"))
	fmt.Fprintf(&b, "events { worker_connections %d; }\nhttp {\n\taccess_log off;\n\tsendfile on;\n", c.Connections)
	for _, d := range c.HTTP {
		fmt.Fprintf(&b, "\t%s\n", d)
	}
	for _, p := range tempPaths {
		fmt.Fprintf(&b, "\t%s %s;\n", p[0], filepath.Join(c.Prefix, p[1]))
	}
	b.WriteString("\tdefault_type application/octet-stream;\n")
	for _, s := range c.Servers {
		fmt.Fprintf(&b, "\tserver {\n\t\tlisten %s ssl;\n\t\tssl_certificate %s;\n\t\tssl_certificate_key %s;\n\t\tssl_protocols %s;\n",
			s.Listen, s.CertFile, s.KeyFile, s.Protocols)
		if s.KTLS {
			b.WriteString("\t\tssl_conf_command Options KTLS;\n")
		}
		fmt.Fprintf(&b, "\t\troot %s;\n", s.Root)
		for _, d := range s.Directives {
			fmt.Fprintf(&b, "\t\t%s\n", d)
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	return []byte(b.String())
}

// Write makes the prefix's directories and writes the configuration file,
// and returns the arguments that start nginx with it.
func (c *Config) Write() (args []string, err error) {
	for _, p := range append(tempPaths, [2]string{"", "logs"}) {
		if err := os.MkdirAll(filepath.Join(c.Prefix, p[1]), 0o755); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(c.File(), c.Bytes(), 0o644); err != nil {
		return nil, err
	}
	return []string{"-p", c.Prefix, "-c", c.File(), "-e", c.ErrorLog()}, nil
}
