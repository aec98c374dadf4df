package khttp_test

import (
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ktlsgo/ktls/internal/lab/testcert"
	"github.com/ktlsgo/ktls/internal/lab/wiretest"
)

// TestPlainHTTPLikeNetHTTP: what a client speaking plain HTTP, or
// something else that isn't TLS, gets from a khttp server is what it gets
// from net/http's own TLS server, byte for byte, at once: a 400 it can
// read for an HTTP request, a closed connection otherwise. The servers
// log the same reason.
func TestPlainHTTPLikeNetHTTP(t *testing.T) {
	var klog, nlog wiretest.SyncBuffer
	_, kbase := startServer(t, &http.Server{Handler: handler(t.TempDir()), ErrorLog: log.New(&klog, "", 0)})
	ref := httptest.NewUnstartedServer(handler(t.TempDir()))
	ref.TLS = testcert.Get(testcert.ECDSA).ServerConfig()
	ref.Config.ErrorLog = log.New(&nlog, "", 0)
	ref.StartTLS()
	defer ref.Close()

	sends := []string{
		"GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n",
		"GET /",
		"HEAD /info HTTP/1.1\r\nHost: localhost\r\n\r\n",
		"POST /form HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\n\r\na=b",
		"PUT /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: localhost\r\n\r\n",
		"DELETE /x HTTP/1.1\r\nHost: localhost\r\n\r\n", // not a prefix net/http knows
		"SSH-2.0-OpenSSH_9.6\r\n",
		"\x17\x03\x03\x10\x00",
	}
	for _, send := range sends {
		got := exchangePlain(t, strings.TrimPrefix(kbase, "https://"), send)
		want := exchangePlain(t, strings.TrimPrefix(ref.URL, "https://"), send)
		if got != want {
			t.Errorf("sent %q:\n got %q\nwant %q (net/http)", send, got, want)
		}
	}

	// A client that speaks HTTP reads the 400 as a response.
	plain := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := plain.Get("http://" + strings.TrimPrefix(kbase, "https://") + "/info")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || string(body) != "Client sent an HTTP request to an HTTPS server.\n" {
		t.Errorf("GET http:// = %s %q", resp.Status, body)
	}

	// The logs name the same reasons. Both servers log after they close,
	// so the order of the lines may differ.
	addr := regexp.MustCompile(`127\.0\.0\.1:\d+`)
	lines := func(s string) string {
		l := strings.Split(addr.ReplaceAllString(s, "ADDR"), "\n")
		slices.Sort(l)
		return strings.Join(l, "\n")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		k := lines(klog.String())
		n := lines(nlog.String() + "http: TLS handshake error from ADDR: client sent an HTTP request to an HTTPS server\n") // the http.Get above
		if k == n {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("khttp logged:\n%s\nnet/http logged:\n%s", k, n)
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// exchangePlain sends b on a plain TCP connection to addr and returns all
// it reads back until the server closes, and how the reading ended.
func exchangePlain(t *testing.T, addr, b string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Only a broken server waits: both answer at once.
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, b); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		return string(got) + " then " + err.Error()
	}
	return string(got)
}
