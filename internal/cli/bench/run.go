package bench

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ktlsgo/ktls/internal/cli/serve"
)

// Scenarios a run can include.
var Scenarios = []string{"files", "bulk", "upload", "latency", "handshake"}

// Config says what to run.
type Config struct {
	Scenarios []string
	Servers   []string
	Sizes     []int64 // file sizes for the files scenario
	BulkSize  int64   // the one big transfer of the bulk scenario
	Conns     int     // concurrent connections for files
	Repeat    int     // samples per case
	// PerSample is about how many bytes each files sample moves.
	PerSample int64
	Self      string    // this program, which runs the Go servers
	Progress  io.Writer // one line per sample
	Machine   string
	Kernel    string
	Emulated  bool
}

// cipher cases of the bulk scenario, and how the client asks for each.
var bulkCiphers = []struct {
	name   string
	config func(*tls.Config)
}{
	{"TLS1.3 AES-128-GCM", func(*tls.Config) {}},
	{"TLS1.2 AES-256-GCM", func(c *tls.Config) {
		c.MaxVersion = tls.VersionTLS12
		c.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384}
	}},
	{"TLS1.3 ChaCha20-Poly1305", func(c *tls.Config) {
		// A Go server picks ChaCha20 for TLS 1.3 when the client lists a
		// ChaCha20 suite first; nginx (OpenSSL) follows the client's order.
		c.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}
	}},
}

// Run runs the benchmark and returns its report. A server that fails is
// reported with its error; the others go on.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	work, err := os.MkdirTemp("", "ktls-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	e := &env{dir: filepath.Join(work, "www"), work: work, self: cfg.Self}
	if err := os.MkdirAll(e.dir, 0o755); err != nil {
		return nil, err
	}
	pool, err := e.writeCert()
	if err != nil {
		return nil, err
	}
	base := &tls.Config{RootCAs: pool, ServerName: "localhost"}

	rep := &Report{Machine: cfg.Machine, Kernel: cfg.Kernel, Emulated: cfg.Emulated, Date: time.Now().UTC()}
	type job struct {
		scenario, server, cse string
		ld                    load
	}
	var jobs []job
	file := func(size int64) (string, error) {
		name := fmt.Sprintf("f-%s.bin", sizeName(size))
		p := filepath.Join(e.dir, name)
		if _, err := os.Stat(p); err == nil {
			return name, nil
		}
		f, err := os.Create(p)
		if err != nil {
			return "", err
		}
		defer f.Close()
		_, err = io.CopyN(f, rand.Reader, size)
		return name, err
	}
	// add queues a case of scenario sc on every server, each with its own
	// copy of the client's TLS config (base, unless the load has one).
	add := func(sc, cse string, ld load) {
		tc := ld.tls
		if tc == nil {
			tc = base
		}
		for _, srv := range cfg.Servers {
			ld.tls = tc.Clone()
			jobs = append(jobs, job{sc, srv, cse, ld})
		}
	}
	for _, sc := range cfg.Scenarios {
		switch sc {
		case "files":
			for _, size := range cfg.Sizes {
				name, err := file(size)
				if err != nil {
					return nil, err
				}
				conns := cfg.Conns
				// Small files are about requests, not bytes: a few
				// thousand make a sample.
				requests := int(min(max(int64(conns), cfg.PerSample/size), 4000))
				add(sc, sizeName(size), load{url: "/" + name, size: size, conns: conns, requests: requests, keepAlive: true})
			}
		case "bulk":
			name, err := file(cfg.BulkSize)
			if err != nil {
				return nil, err
			}
			for _, c := range bulkCiphers {
				t := base.Clone()
				c.config(t)
				add(sc, c.name, load{url: "/" + name, size: cfg.BulkSize, conns: 1, requests: 1, keepAlive: true, tls: t})
			}
		case "upload":
			// What the server spends receiving: the RX side, where kernel
			// TLS is said to lose.
			add(sc, sizeName(cfg.BulkSize)+" POST", load{url: "/upload", size: cfg.BulkSize, conns: 1, requests: 1,
				keepAlive: true, upload: true})
		case "latency":
			name, err := file(128)
			if err != nil {
				return nil, err
			}
			add(sc, "128 B", load{url: "/" + name, size: 128, conns: 1, requests: 300, keepAlive: true, latencies: true})
		case "handshake":
			name, err := file(128)
			if err != nil {
				return nil, err
			}
			add(sc, "new conn + 128 B", load{url: "/" + name, size: 128, conns: 4, requests: 200})
		default:
			return nil, fmt.Errorf("unknown scenario %q (have %s)", sc, strings.Join(Scenarios, ", "))
		}
	}

	// One server process at a time, all its cases in a row.
	for _, srvName := range cfg.Servers {
		var mine []job
		for _, j := range jobs {
			if j.server == srvName {
				mine = append(mine, j)
			}
		}
		if len(mine) == 0 {
			continue
		}
		srv, err := e.start(ctx, srvName)
		if err != nil {
			for _, j := range mine {
				rep.Results = append(rep.Results, Result{Scenario: j.scenario, Server: srvName, Case: j.cse, Conns: j.ld.conns, Err: err.Error()})
			}
			fmt.Fprintf(cfg.Progress, "bench: %s: %v\n", srvName, err)
			continue
		}
		for _, j := range mine {
			r := Result{Scenario: j.scenario, Server: srvName, Case: j.cse, Conns: j.ld.conns}
			j.ld.url = srv.url + j.ld.url
			for i := range cfg.Repeat {
				if ctx.Err() != nil {
					break
				}
				fmt.Fprintf(cfg.Progress, "bench: %-9s %-10s %-26s sample %d/%d", j.scenario, srvName, j.cse, i+1, cfg.Repeat)
				s, err := j.ld.run(ctx, srv.pid(), srv.stats)
				if err != nil {
					r.Err = err.Error()
					fmt.Fprintf(cfg.Progress, ": %v\n", err)
					break
				}
				fmt.Fprintf(cfg.Progress, ": %.1f MiB/s, %v\n", s.Throughput(), s.Elapsed.Round(time.Millisecond))
				r.Samples = append(r.Samples, s)
			}
			rep.Results = append(rep.Results, r)
		}
		srv.stop()
		if ctx.Err() != nil {
			break
		}
	}
	// Keep the report in scenario order, as configured.
	slices.SortStableFunc(rep.Results, func(a, b Result) int {
		return slices.Index(cfg.Scenarios, a.Scenario) - slices.Index(cfg.Scenarios, b.Scenario)
	})
	return rep, ctx.Err()
}

// writeCert makes a self-signed certificate for the servers and returns
// the pool that trusts it.
func (e *env) writeCert() (*x509.CertPool, error) {
	cert, err := serve.SelfSigned()
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, err
	}
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return nil, err
	}
	e.certFile, e.keyFile = filepath.Join(e.work, "cert.pem"), filepath.Join(e.work, "key.pem")
	if err := os.WriteFile(e.certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(e.keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600); err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return pool, nil
}

func sizeName(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dG", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dM", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dK", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}
