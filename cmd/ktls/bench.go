package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/cli/bench"
	"github.com/ktlsgo/ktls/khttp"
)

func newBenchCmd() *cobra.Command {
	var (
		scenarios, servers, sizes string
		bulk, uploadReads         string
		conns, repeat             int
		perSample                 string
		jsonOut, chart            string
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure ktls against Go's crypto/tls and nginx with OpenSSL, side by side",
		Long: `Bench runs each server as its own process, drives it with the same Go load
client, and measures throughput, latency, and the server's CPU time per GiB
(user and system, from /proc/PID/stat). Every figure is repeated and shown as
median [min–max]; ratios are against Go's net/http with crypto/tls.

Servers: ktls (ktls serve: HTTP/1.1 bodies by sendfile through the kernel),
ktls-write (the same, with bodies written, not sent from the file),
ktls-rxoff (ktls with RX left to crypto/tls), go (Go's net/http with
crypto/tls), nginx-ktls (nginx, sendfile on, OpenSSL's kernel TLS), nginx
(the same without kernel TLS).

Scenarios: files (many connections, each size), bulk (one connection, one
big file, per cipher), upload (one connection posting a big body, which the
server reads in reads of each --upload-reads size: the receive path),
latency (p50 and p99 of small requests), handshake (a new connection per
request).

All servers run for the whole benchmark, and their samples interleave:
each round samples every server once, in an order that reverses every
other round, so drift on the machine lands on all of them alike. Compare
only figures from one run: in the kernel lab everything is emulated.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkBenchFlags(scenarios, servers, conns, repeat); err != nil {
				return err
			}
			self, err := os.Executable()
			if err != nil {
				return err
			}
			cfg := bench.Config{
				Scenarios: splitList(scenarios),
				Servers:   splitList(servers),
				Conns:     conns,
				Repeat:    repeat,
				Self:      self,
				Progress:  cmd.ErrOrStderr(),
			}
			for _, s := range splitList(sizes) {
				n, err := parseByteSize(s)
				if err != nil {
					return fmt.Errorf("--sizes: %w", err)
				}
				cfg.Sizes = append(cfg.Sizes, n)
			}
			if cfg.BulkSize, err = parseByteSize(bulk); err != nil {
				return fmt.Errorf("--bulk: %w", err)
			}
			for _, s := range splitList(uploadReads) {
				n, err := parseByteSize(s)
				if err != nil || n > maxUploadRead {
					return fmt.Errorf("--upload-reads: %q is not a size from 1 to 16M", s)
				}
				cfg.UploadReads = append(cfg.UploadReads, n)
			}
			if cfg.PerSample, err = parseByteSize(perSample); err != nil {
				return fmt.Errorf("--per-sample: %w", err)
			}
			cfg.Machine, cfg.Kernel, cfg.Emulated = machine()
			rep, err := bench.Run(cmd.Context(), cfg)
			if rep == nil {
				return err
			}
			rep.WriteTable(cmd.OutOrStdout())
			if jsonOut != "" {
				if err := writeFileWith(jsonOut, rep.WriteJSON); err != nil {
					return err
				}
			}
			if chart != "" {
				for _, sc := range []string{"files", "bulk"} {
					ext := filepath.Ext(chart) // not the first dot: "out/6.1.svg"
					file := strings.TrimSuffix(chart, ext) + "-" + sc + ext
					if err := rep.WriteChart(file, sc); err == nil {
						fmt.Fprintf(cmd.ErrOrStderr(), "bench: wrote %s\n", file)
					}
				}
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&scenarios, "scenarios", strings.Join(bench.Scenarios, ","), "scenarios to run")
	f.StringVar(&servers, "servers", strings.Join(bench.Servers, ","), "servers to compare")
	f.StringVar(&sizes, "sizes", "4K,1M,256M", "file sizes for the files scenario")
	f.StringVar(&bulk, "bulk", "256M", "size of the bulk scenario's transfer, and of the upload's body")
	f.StringVar(&uploadReads, "upload-reads", "4K,256K", "read sizes in which the Go servers read the upload's body, a case each")
	f.IntVar(&conns, "conns", 16, "concurrent connections for the files scenario")
	f.IntVar(&repeat, "repeat", 3, "samples per case")
	f.StringVar(&perSample, "per-sample", "512M", "about how much each files sample moves")
	f.StringVar(&jsonOut, "json", "", "also write the report as JSON to this file")
	f.StringVar(&chart, "chart", "", "also draw charts (SVG or PNG, by extension), one per scenario")
	return cmd
}

// machine describes where the benchmark runs.
func machine() (desc, kernelRelease string, emulated bool) {
	rel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	kernelRelease = strings.TrimSpace(string(rel))
	desc = "this machine"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "model name\t: "); ok {
				desc = v
				break
			}
		}
	}
	if name, ok := os.LookupEnv("KTLS_LAB"); ok {
		// The lab says whether the guest runs under KVM, at native
		// speed, or emulated by TCG, where only ratios mean anything.
		if os.Getenv("KTLS_LAB_ACCEL") == "kvm" {
			desc = fmt.Sprintf("kernel lab %s, QEMU KVM on %s", name, desc)
		} else {
			desc = fmt.Sprintf("kernel lab %s, QEMU TCG on %s", name, desc)
			emulated = true
		}
	}
	return desc, kernelRelease, emulated
}

func writeFileWith(name string, write func(io.Writer) error) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// checkBenchFlags rejects what would otherwise only show up as an error
// row in the report, after the run: the flags' mistakes fail at once.
func checkBenchFlags(scenarios, servers string, conns, repeat int) error {
	for _, l := range []struct {
		flag, value string
		known       []string
	}{
		{"--scenarios", scenarios, bench.Scenarios},
		{"--servers", servers, bench.Servers},
	} {
		names := splitList(l.value)
		if len(names) == 0 {
			return fmt.Errorf("%s: name at least one of %s", l.flag, strings.Join(l.known, ", "))
		}
		for i, name := range names {
			if !slices.Contains(l.known, name) {
				return fmt.Errorf("%s: unknown %q (have %s)", l.flag, name, strings.Join(l.known, ", "))
			}
			if slices.Contains(names[:i], name) {
				return fmt.Errorf("%s: %q twice", l.flag, name)
			}
		}
	}
	if conns < 1 {
		return fmt.Errorf("--conns: %d; it takes at least one connection", conns)
	}
	if repeat < 1 {
		return fmt.Errorf("--repeat: %d; it takes at least one sample", repeat)
	}
	return nil
}

// parseByteSize parses a positive size with an optional binary suffix:
// 4096, 4K, 1M, 2G.
func parseByteSize(s string) (int64, error) {
	digits, mult := s, int64(1)
	for suffix, m := range map[string]int64{"K": 1 << 10, "M": 1 << 20, "G": 1 << 30} {
		if v, ok := strings.CutSuffix(s, suffix); ok {
			digits, mult = v, m
			break
		}
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n <= 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is not a size like 4K, 1M or 256M", s)
	}
	return n * mult, nil
}

// maxUploadRead bounds the reads of the upload case, and so the buffer
// the bench server makes for them.
const maxUploadRead = 16 << 20

// newBenchServerCmd is the server process bench starts for the Go
// implementations: no access log, nothing but the file server.
func newBenchServerCmd() *cobra.Command {
	var impl, dir, certFile, keyFile string
	cmd := &cobra.Command{
		Use:    "bench-server",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cert, err := tls.LoadX509KeyPair(certFile, keyFile)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return err
			}
			files := http.FileServer(http.Dir(dir))
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/upload" {
					// Read the body in reads of the size asked for and
					// throw it away: the receive path.
					n, err := strconv.Atoi(r.URL.Query().Get("read"))
					if err != nil || n < 1 || n > maxUploadRead {
						n = 8 << 10 // io.Copy's size
					}
					buf := make([]byte, n)
					for {
						if _, err := r.Body.Read(buf); err != nil {
							break
						}
					}
					w.WriteHeader(http.StatusNoContent)
					return
				}
				files.ServeHTTP(w, r)
			})
			srv := &http.Server{Handler: h, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}
			var serve func() error
			var shutdown func(context.Context) error
			var stats string // where a ktls server says what the kernel took
			switch impl {
			case "go":
				serve = func() error { return srv.ServeTLS(ln, "", "") }
				shutdown = srv.Shutdown
			case "ktls", "ktls-write", "ktls-rxoff":
				var opts *ktls.Options
				switch impl {
				case "ktls-write":
					srv.Handler = writePath(h)
				case "ktls-rxoff":
					opts = &ktls.Options{RX: ktls.Disabled}
				}
				// The server counts what the kernel took of its own
				// connections, and serves the counts on a plaintext
				// address of its own: tls_stat is the whole host's.
				var counts bench.OffloadCounts
				ks := &khttp.Server{HTTP: srv, Options: opts, OnHandshake: func(c *ktls.Conn, err error) {
					if err == nil {
						counts.Add(c.Offload())
					}
				}}
				sln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					return err
				}
				defer sln.Close()
				go (&http.Server{Handler: &counts, ReadHeaderTimeout: 10 * time.Second}).Serve(sln)
				stats = " stats http://" + sln.Addr().String()
				serve = func() error { return ks.Serve(ln) }
				shutdown = ks.Shutdown
			default:
				return fmt.Errorf("unknown --impl %q", impl)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "serving https://%s%s\n", ln.Addr(), stats)
			errc := make(chan error, 1)
			go func() { errc <- serve() }()
			select {
			case err := <-errc:
				return err
			case <-cmd.Context().Done():
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			shutdown(ctx)
			if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&impl, "impl", "ktls", "ktls, ktls-write, ktls-rxoff or go")
	f.StringVar(&dir, "dir", ".", "directory to serve")
	f.StringVar(&certFile, "cert", "", "certificate")
	f.StringVar(&keyFile, "key", "", "key")
	return cmd
}

// writePath hides the ResponseWriter's ReadFrom, so bodies are read from
// the file and written, not sent with sendfile: the kernel's write path.
func writePath(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(writeOnly{w}, r)
	})
}

// writeOnly is a ResponseWriter whose ReadFrom copies through Write, with
// a pooled buffer as net/http's own copy has: io.Copy would allocate one
// per response, which for small files costs more than the write path
// saves or loses.
type writeOnly struct{ http.ResponseWriter }

var copyBufs = sync.Pool{New: func() any { return new([32 << 10]byte) }}

func (w writeOnly) ReadFrom(r io.Reader) (int64, error) {
	buf := copyBufs.Get().(*[32 << 10]byte)
	defer copyBufs.Put(buf)
	return io.CopyBuffer(struct{ io.Writer }{w.ResponseWriter}, r, buf[:])
}
