package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/kernel"
)

// What each sample's connections got from the kernel is measured, not
// assumed: a server named "ktls" on a host without kernel TLS runs
// crypto/tls, and its row must say so. A ktls server counts its own
// connections' Offload and serves the counts (OffloadCounts); for nginx
// the kernel's counters tell: TlsTxSw and TlsRxSw count the sessions that
// installed a TX or RX key, host-wide, so their change over a sample is
// nginx's only if nothing else on the host set keys meanwhile, and a
// change larger than the connections the client opened says that
// something did. Servers that can't offload (go, nginx without KTLS) are
// "none" by construction.

// OffloadCounts counts a server's connections by what the kernel took,
// and serves the counts as JSON.
type OffloadCounts struct {
	conns, tx, rx atomic.Int64
}

// Add counts one connection.
func (c *OffloadCounts) Add(o ktls.Offload) {
	c.conns.Add(1)
	if o.TX {
		c.tx.Add(1)
	}
	if o.RX {
		c.rx.Add(1)
	}
}

type offloadCountsJSON struct {
	Conns int64 `json:"conns"`
	TX    int64 `json:"tx"`
	RX    int64 `json:"rx"`
}

func (c *OffloadCounts) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	json.NewEncoder(w).Encode(offloadCountsJSON{c.conns.Load(), c.tx.Load(), c.rx.Load()})
}

// readOffloadCounts fetches a server's counts.
func readOffloadCounts(url string) (offloadCountsJSON, error) {
	var n offloadCountsJSON
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return n, fmt.Errorf("bench: reading the server's offload counts: %w", err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&n); err != nil {
		return n, fmt.Errorf("bench: reading the server's offload counts: %w", err)
	}
	return n, nil
}

// kernelSessions is a reading of the counters of sessions set up.
type kernelSessions struct {
	tx, rx uint64
	ok     bool // /proc/net/tls_stat exists: kernel TLS is loaded
}

func readKernelSessions() (kernelSessions, error) { return readKernelSessionsFrom(kernel.StatsFile) }

// readKernelSessionsFrom reads the counters from file, a tls_stat; where
// there is none, kernel TLS is not loaded, and the reading says so.
func readKernelSessionsFrom(file string) (kernelSessions, error) {
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return kernelSessions{}, nil
	}
	if err != nil {
		return kernelSessions{}, err
	}
	st, err := kernel.ParseStats(data)
	if err != nil {
		return kernelSessions{}, err
	}
	tx, _ := st.Get("TlsTxSw")
	rx, _ := st.Get("TlsRxSw")
	return kernelSessions{tx: tx, rx: rx, ok: true}, nil
}

// offloads says whether a server is meant to run on kernel TLS, and so is
// labelled as fallen back when its connections didn't.
var offloads = map[string]bool{"ktls": true, "ktls-write": true, "ktls-rxoff": true, "nginx-ktls": true}

// Offload summarises what the kernel did for the result's connections:
// "TX+RX", "TX", "none", or "TX on 3 of 8 conns" where it was mixed; and,
// when the server is meant to offload and its connections didn't, why
// its row is a fallback row.
func (r Result) Offload() (offload, fallback string) {
	var conns, tx, rx int
	for _, s := range r.Samples {
		if !s.KernelTLS {
			if offloads[r.Server] {
				fallback = "no kernel TLS on this host (no /proc/net/tls_stat): every connection ran on user-space TLS"
			}
			return "none", fallback
		}
		conns += s.Conns
		tx += s.KernelTX
		rx += s.KernelRX
	}
	switch {
	case len(r.Samples) == 0:
		return "", ""
	case !offloads[r.Server]:
		return "none", ""
	case tx > conns || rx > conns:
		// Only tls_stat's host-wide counters can say more than there
		// were connections: something else set keys meanwhile.
		return "unknown (tls_stat moved for other processes too)", ""
	}
	switch {
	case tx == 0:
		offload = "none"
	case tx == conns && rx == conns:
		offload = "TX+RX"
	case tx == conns && rx == 0:
		offload = "TX"
	default:
		offload = fmt.Sprintf("TX on %d, RX on %d of %d conns", tx, rx, conns)
	}
	if offloads[r.Server] && tx < conns {
		fallback = fmt.Sprintf("the kernel encrypted %d of %d connections", tx, conns)
	}
	return offload, fallback
}

// minTicks is how many clock ticks of server CPU a sample needs for its
// CPU figure to be worth reading: /proc counts CPU time in ticks of
// 10 ms, so below a second's worth the rounding is over 1%.
const minTicks = 100

// coarseCPU reports whether some sample's CPU time rests on fewer than
// minTicks clock ticks.
func (r Result) coarseCPU() bool {
	for _, s := range r.Samples {
		if (s.User+s.Sys)*clockTick/1e9 < minTicks {
			return true
		}
	}
	return false
}

// annotate fills the fields of r that are derived from its samples, for
// the JSON report.
func (r *Result) annotate() {
	r.OffloadSummary, r.Fallback = r.Offload()
	r.CoarseCPU = r.coarseCPU()
}
