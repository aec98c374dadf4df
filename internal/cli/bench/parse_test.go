package bench

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ktlsgo/ktls"
)

// TestParseStat: utime and stime are fields 14 and 15 of /proc/PID/stat,
// counted from after the command name, which may hold spaces and
// parentheses; each tick is 10 ms.
func TestParseStat(t *testing.T) {
	// Fields 3 to 15 of a real line: state, ppid, pgrp, session, tty_nr,
	// tpgid, flags, minflt, cminflt, majflt, cmajflt, utime, stime.
	const rest = " S 1 2 3 0 -1 4194560 5 6 7 8 250 75 0 0 20 0 1 0 9 10 11"
	for _, tc := range []struct {
		name, line string
		user, sys  time.Duration
		err        string // "" for none
	}{
		{"plain", "42 (nginx)" + rest, 2500 * time.Millisecond, 750 * time.Millisecond, ""},
		{"command with spaces and parentheses", "42 (nginx: worker (x) ))" + rest, 2500 * time.Millisecond, 750 * time.Millisecond, ""},
		{"zero", "42 (ktls) S 1 2 3 0 -1 0 0 0 0 0 0 0", 0, 0, ""},
		{"no command name", "42 nginx" + rest, 0, 0, "no command name"},
		{"short", "42 (nginx) S 1 2 3 0 -1 4194560 5 6 7 8 250", 0, 0, "short: 12 fields"},
		{"not a number", "42 (nginx) S 1 2 3 0 -1 4194560 5 6 7 8 x 75", 0, 0, `utime "x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			user, sys, err := parseStat(tc.line)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("parseStat = %v, %v, %v; want an error saying %q", user, sys, err, tc.err)
				}
				return
			}
			if err != nil || user != tc.user || sys != tc.sys {
				t.Fatalf("parseStat = %v, %v, %v; want %v, %v", user, sys, err, tc.user, tc.sys)
			}
		})
	}
}

// TestParseServing reads the line a Go server starts with: its URL, and
// for a ktls server the URL of its offload counts.
func TestParseServing(t *testing.T) {
	for _, tc := range []struct {
		line, url, stats string
		ok               bool
	}{
		{"serving https://127.0.0.1:4433\n", "https://127.0.0.1:4433", "", true},
		{"serving https://127.0.0.1:4433 stats http://127.0.0.1:9000\n", "https://127.0.0.1:4433", "http://127.0.0.1:9000/offload", true},
		{"listen tcp: address already in use\n", "", "", false},
	} {
		url, stats, ok := parseServing(tc.line)
		if url != tc.url || stats != tc.stats || ok != tc.ok {
			t.Errorf("parseServing(%q) = %q, %q, %v; want %q, %q, %v", tc.line, url, stats, ok, tc.url, tc.stats, tc.ok)
		}
	}
}

// TestReadKernelSessions reads the counters of sessions that installed a
// key from a tls_stat; without the file, kernel TLS is not loaded, which
// is no error.
func TestReadKernelSessions(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "tls_stat")
	stat := "TlsCurrTxSw                     \t2\nTlsCurrRxSw                     \t1\nTlsTxSw                         \t17\nTlsRxSw                         \t9\n"
	if err := os.WriteFile(file, []byte(stat), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := readKernelSessionsFrom(file)
	if err != nil || got != (kernelSessions{tx: 17, rx: 9, ok: true}) {
		t.Errorf("with tls_stat: %+v, %v; want tx 17, rx 9, ok", got, err)
	}
	got, err = readKernelSessionsFrom(filepath.Join(dir, "none"))
	if err != nil || got.ok {
		t.Errorf("without tls_stat: %+v, %v; want not ok, and no error", got, err)
	}
	if err := os.WriteFile(file, []byte("TlsTxSw x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := readKernelSessionsFrom(file); err == nil {
		t.Errorf("a malformed tls_stat read as %+v", got)
	}
}

// TestOffloadCounts: what a ktls server counts is what the load client
// reads back over HTTP.
func TestOffloadCounts(t *testing.T) {
	var c OffloadCounts
	for _, o := range []ktls.Offload{{TX: true, RX: true}, {TX: true}, {}, {TX: true, RX: true}} {
		c.Add(o)
	}
	srv := httptest.NewServer(&c)
	defer srv.Close()
	got, err := readOffloadCounts(srv.URL + "/offload")
	if err != nil || got != (offloadCountsJSON{Conns: 4, TX: 3, RX: 2}) {
		t.Errorf("readOffloadCounts = %+v, %v; want 4 connections, 3 TX, 2 RX", got, err)
	}
	notJSON := httptest.NewServer(nil)
	defer notJSON.Close()
	if got, err := readOffloadCounts(notJSON.URL); err == nil || !strings.Contains(err.Error(), "offload counts") {
		t.Errorf("a page that isn't the counts read as %+v, %v", got, err)
	}
}

func TestSizeName(t *testing.T) {
	for n, want := range map[int64]string{
		128: "128B", 1000: "1000B", 4 << 10: "4K", 1<<20 + 1<<10: "1025K", 256 << 20: "256M",
		1 << 30: "1G", 3 << 30: "3G", 1<<30 + 1<<20: "1025M",
	} {
		if got := sizeName(n); got != want {
			t.Errorf("sizeName(%d) = %q, want %q", n, got, want)
		}
	}
}
