package bench

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// load is what the client does for one sample.
type load struct {
	url       string
	size      int64 // expected body size
	conns     int
	requests  int  // in all, spread over the connections
	keepAlive bool // false: a new connection (and handshake) per request
	tls       *tls.Config
	latencies bool
	upload    bool // POST size bytes instead of GET
}

// client makes the HTTP/1.1 clients of a load, one per connection, so
// each connection is its own and stays open across requests. dials counts
// the TCP connections they open.
func (l *load) clients(dials *atomic.Int64) []*http.Client {
	cs := make([]*http.Client, l.conns)
	d := &net.Dialer{}
	for i := range cs {
		t := &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				dials.Add(1)
				return d.DialContext(ctx, network, addr)
			},
			TLSClientConfig:     l.tls,
			MaxIdleConnsPerHost: 1,
			DisableKeepAlives:   !l.keepAlive,
			DisableCompression:  true,
			ForceAttemptHTTP2:   false,
			TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{}, // HTTP/1.1: sendfile's path
		}
		cs[i] = &http.Client{Transport: t, Timeout: 10 * time.Minute}
	}
	return cs
}

func closeClients(cs []*http.Client) {
	for _, c := range cs {
		c.CloseIdleConnections()
	}
}

// get fetches the URL once, checks the body's length, and discards it.
func get(ctx context.Context, c *http.Client, url string, size int64) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return 0, err
	}
	return do(c, req, size)
}

// post sends size bytes to the URL, for a server to read and discard.
func post(ctx context.Context, c *http.Client, url string, size int64) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", url, io.LimitReader(pattern{}, size))
	if err != nil {
		return 0, err
	}
	req.ContentLength = size
	if _, err := do(c, req, -1); err != nil {
		return 0, err
	}
	return size, nil
}

// pattern is an endless reader of cheap bytes for uploads.
type pattern struct{}

func (pattern) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(i)
	}
	return len(p), nil
}

// do runs a request and checks the response: 2xx, and size bytes of body
// unless size is -1.
func do(c *http.Client, req *http.Request, size int64) (int64, error) {
	url := req.URL.String()
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return n, err
	}
	if resp.StatusCode/100 != 2 || size >= 0 && n != size {
		return n, fmt.Errorf("%s %s: %s, %d bytes, want %d", req.Method, url, resp.Status, n, size)
	}
	return n, nil
}

func (l *load) request(ctx context.Context, c *http.Client) (int64, error) {
	if l.upload {
		return post(ctx, c, l.url, l.size)
	}
	return get(ctx, c, l.url, l.size)
}

// run measures one sample against the server process pid: the bytes and
// requests done, the time, and the server's CPU time meanwhile.
func (l *load) run(ctx context.Context, pid int, stats string) (Sample, error) {
	var dials atomic.Int64
	k0, err := readKernelSessions()
	if err != nil {
		return Sample{}, err
	}
	var c0 offloadCountsJSON
	if stats != "" {
		if c0, err = readOffloadCounts(stats); err != nil {
			return Sample{}, err
		}
	}
	cs := l.clients(&dials)
	defer closeClients(cs)
	if l.keepAlive {
		// Connect and handshake first: the sample is about the data.
		for _, c := range cs {
			if _, err := l.request(ctx, c); err != nil {
				return Sample{}, err
			}
		}
	}
	u0, s0, err := processCPU(pid)
	if err != nil {
		return Sample{}, err
	}
	var (
		left  atomic.Int64
		bytes atomic.Int64
		mu    sync.Mutex
		lat   []time.Duration
		first error
		wg    sync.WaitGroup
	)
	left.Store(int64(l.requests))
	start := time.Now()
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for left.Add(-1) >= 0 {
				t := time.Now()
				n, err := l.request(ctx, c)
				d := time.Since(t)
				bytes.Add(n)
				mu.Lock()
				if err != nil && first == nil {
					first = err
				}
				if l.latencies {
					lat = append(lat, d)
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	u1, s1, err := processCPU(pid)
	if err != nil {
		return Sample{}, err
	}
	if first != nil {
		return Sample{}, first
	}
	k1, err := readKernelSessions()
	if err != nil {
		return Sample{}, err
	}
	smp := Sample{Bytes: bytes.Load(), Requests: l.requests, Elapsed: elapsed, User: u1 - u0, Sys: s1 - s0,
		KernelTLS: k0.ok && k1.ok, Conns: int(dials.Load()),
		KernelTX: int(k1.tx - k0.tx), KernelRX: int(k1.rx - k0.rx)}
	if stats != "" {
		// The server's own count, where it keeps one: exact, whatever
		// else runs on the host.
		c1, err := readOffloadCounts(stats)
		if err != nil {
			return Sample{}, err
		}
		smp.Conns, smp.KernelTX, smp.KernelRX = int(c1.Conns-c0.Conns), int(c1.TX-c0.TX), int(c1.RX-c0.RX)
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		smp.P50 = lat[len(lat)/2]
		smp.P99 = lat[min(len(lat)-1, len(lat)*99/100)]
	}
	return smp, nil
}
