package khttp_test

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/ktlsgo/ktls/internal/lab/hostiletest"
)

// TestOutOfFiles: a server out of file descriptors (a client that opens
// connections until none are left) waits for one, as net/http does,
// instead of stopping: afterwards it serves again. (Serve returned
// accept's EMFILE, and ktls serve exited.)
func TestOutOfFiles(t *testing.T) {
	_, base := startServer(t, &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	})})
	hostiletest.OutOfFiles(t, base[len("https://"):], 100*time.Millisecond)
	for name, c := range clients(t) {
		c.Timeout = 5 * time.Second
		resp, err := c.Get(base)
		if err != nil {
			t.Fatalf("%s: after running out of files, the server doesn't serve: %v", name, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "ok" || err != nil {
			t.Errorf("%s: after running out of files, GET = %q, %v", name, b, err)
		}
	}
}
