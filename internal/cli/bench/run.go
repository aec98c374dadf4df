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
	// UploadReads are the sizes of the reads in which the server reads
	// the upload's body, a case each.
	UploadReads []int64
	Conns       int // concurrent connections for files
	Repeat      int // samples per case, interleaved across the servers
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
				// A sample moves about PerSample bytes, whatever the
				// size: small files make many requests, so their CPU
				// figure rests on as many clock ticks as a big file's.
				requests := int(max(int64(conns), cfg.PerSample/size))
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
			// What the server spends receiving: the RX side. The Go
			// servers' handler reads the body in reads of each size
			// (net/http itself reads 4 to 8 KiB at a time); nginx reads
			// its own way whatever the case says.
			for _, rd := range cfg.UploadReads {
				add(sc, fmt.Sprintf("%s POST, %s reads", sizeName(cfg.BulkSize), sizeName(rd)),
					load{url: fmt.Sprintf("/upload?read=%d", rd), size: cfg.BulkSize, conns: 1, requests: 1,
						keepAlive: true, upload: true})
			}
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

	// Every server runs for the whole benchmark, idle while another is
	// measured, and the samples interleave: each case takes its rounds in
	// turn, and every round samples each server once, in an order that
	// reverses every other round. Whatever drifts on the machine during a
	// run (other work, thermal state, page cache) then lands on every
	// server alike, instead of on whichever ran last.
	servers := make(map[string]*server)
	failed := make(map[string]string) // server name → why it didn't start
	defer func() {
		for _, srv := range servers {
			srv.stop()
		}
	}()
	for _, name := range cfg.Servers {
		srv, err := e.start(ctx, name)
		if err != nil {
			failed[name] = err.Error()
			fmt.Fprintf(cfg.Progress, "bench: %s: %v\n", name, err)
			continue
		}
		servers[name] = srv
	}
	results := make([]Result, len(jobs))
	for i, j := range jobs {
		results[i] = Result{Scenario: j.scenario, Server: j.server, Case: j.cse, Conns: j.ld.conns, Err: failed[j.server]}
		if srv := servers[j.server]; srv != nil {
			jobs[i].ld.url = srv.url + j.ld.url
		}
	}
	for _, st := range interleave(len(jobs), len(cfg.Servers), cfg.Repeat) {
		if ctx.Err() != nil {
			break
		}
		j, r := jobs[st.job], &results[st.job]
		srv := servers[j.server]
		if srv == nil || r.Err != "" {
			continue // didn't start, or failed an earlier sample
		}
		fmt.Fprintf(cfg.Progress, "bench: %-9s %-10s %-26s sample %d/%d", j.scenario, j.server, j.cse, st.sample+1, cfg.Repeat)
		s, err := j.ld.run(ctx, srv.pid(), srv.stats)
		if err != nil {
			r.Err = err.Error()
			fmt.Fprintf(cfg.Progress, ": %v\n", err)
			continue
		}
		fmt.Fprintf(cfg.Progress, ": %.1f MiB/s, %v\n", s.Throughput(), s.Elapsed.Round(time.Millisecond))
		r.Samples = append(r.Samples, s)
	}
	// Report each scenario's rows server by server, as configured.
	rep.Results = results
	slices.SortStableFunc(rep.Results, func(a, b Result) int {
		if d := slices.Index(cfg.Scenarios, a.Scenario) - slices.Index(cfg.Scenarios, b.Scenario); d != 0 {
			return d
		}
		return slices.Index(cfg.Servers, a.Server) - slices.Index(cfg.Servers, b.Server)
	})
	return rep, ctx.Err()
}

// A step is one sample of one job.
type step struct{ job, sample int }

// interleave orders the samples of jobs, which come as cases of servers
// servers each (a case's jobs side by side, one per server, in the
// servers' order): case by case, round by round, each round sampling
// every server of the case once, forwards in even rounds and backwards
// in odd ones, so no server always goes first.
func interleave(jobs, servers, repeat int) []step {
	var steps []step
	for c := 0; c < jobs; c += servers {
		for round := range repeat {
			for k := range servers {
				if round%2 == 1 {
					k = servers - 1 - k
				}
				steps = append(steps, step{c + k, round})
			}
		}
	}
	return steps
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
