package bench

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
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
}

// client makes the HTTP/1.1 clients of a load, one per connection, so
// each connection is its own and stays open across requests.
func (l *load) clients() []*http.Client {
	cs := make([]*http.Client, l.conns)
	for i := range cs {
		t := &http.Transport{
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
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return n, err
	}
	if resp.StatusCode != http.StatusOK || n != size {
		return n, fmt.Errorf("GET %s: %s, %d bytes, want %d", url, resp.Status, n, size)
	}
	return n, nil
}

// run measures one sample against the server process pid: the bytes and
// requests done, the time, and the server's CPU time meanwhile.
func (l *load) run(ctx context.Context, pid int) (Sample, error) {
	cs := l.clients()
	defer closeClients(cs)
	if l.keepAlive {
		// Connect and handshake first: the sample is about the data.
		for _, c := range cs {
			if _, err := get(ctx, c, l.url, l.size); err != nil {
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
				n, err := get(ctx, c, l.url, l.size)
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
	smp := Sample{Bytes: bytes.Load(), Requests: l.requests, Elapsed: elapsed, User: u1 - u0, Sys: s1 - s0}
	if len(lat) > 0 {
		slices.Sort(lat)
		smp.P50 = lat[len(lat)/2]
		smp.P99 = lat[min(len(lat)-1, len(lat)*99/100)]
	}
	return smp, nil
}
