package keylog_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/ktlsgo/ktls/internal/keylog"
	"github.com/ktlsgo/ktls/internal/lab/wiretest"
)

var (
	random1 = bytes.Repeat([]byte{0xa1}, 32)
	random2 = bytes.Repeat([]byte{0xb2}, 32)
)

// line formats a key log line exactly as crypto/tls does in
// (*Config).writeKeyLog.
func line(label string, clientRandom, secret []byte) []byte {
	return fmt.Appendf(nil, "%s %x %x\n", label, clientRandom, secret)
}

func seq(n int, start byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

func TestParseLine(t *testing.T) {
	for _, label := range []string{
		keylog.LabelClientRandom, keylog.LabelClientHandshake, keylog.LabelServerHandshake,
		keylog.LabelClientTraffic0, keylog.LabelServerTraffic0, "EXPORTER_SECRET",
	} {
		for _, n := range []int{1, 32, 48, 64} {
			secret := seq(n, 0xf0)
			in := line(label, random1, secret)
			for _, in := range [][]byte{in, in[:len(in)-1]} { // with and without '\n'
				e, err := keylog.ParseLine(in)
				if err != nil {
					t.Errorf("ParseLine(%q): %v", in, err)
					continue
				}
				if e.Label != label || !bytes.Equal(e.ClientRandom[:], random1) || !bytes.Equal(e.Secret, secret) {
					t.Errorf("ParseLine(%q) = %+v", in, e)
				}
				if got, want := e.AppendLine(nil), line(label, random1, secret); !bytes.Equal(got, want) {
					t.Errorf("AppendLine = %q, want %q", got, want)
				}
			}
		}
	}
}

func TestParseLineErrors(t *testing.T) {
	r := hex.EncodeToString(random1)
	s := "00112233445566778899aabbccddeeff"
	tests := []struct {
		name string
		line string
	}{
		{"empty", ""},
		{"newline only", "\n"},
		{"one field", "CLIENT_RANDOM\n"},
		{"two fields", "CLIENT_RANDOM " + r + "\n"},
		{"four fields", "CLIENT_RANDOM " + r + " " + s + " " + s + "\n"},
		{"double space", "CLIENT_RANDOM  " + r + " " + s + "\n"},
		{"leading space", " CLIENT_RANDOM " + r + " " + s + "\n"},
		{"trailing space", "CLIENT_RANDOM " + r + " " + s + " \n"},
		{"tab separator", "CLIENT_RANDOM\t" + r + " " + s + "\n"},
		{"CRLF", "CLIENT_RANDOM " + r + " " + s + "\r\n"},
		{"two newlines", "CLIENT_RANDOM " + r + " " + s + "\n\n"},
		{"two lines", "CLIENT_RANDOM " + r + " " + s + "\nCLIENT_RANDOM " + r + " " + s + "\n"},
		{"empty label", " " + r + " " + s + "\n"},
		{"lower-case label", "client_random " + r + " " + s + "\n"},
		{"label with dash", "CLIENT-RANDOM " + r + " " + s + "\n"},
		{"short random", "CLIENT_RANDOM " + r[2:] + " " + s + "\n"},
		{"long random", "CLIENT_RANDOM " + r + "00 " + s + "\n"},
		{"upper-case random", "CLIENT_RANDOM " + strings.ToUpper(r) + " " + s + "\n"},
		{"non-hex random", "CLIENT_RANDOM " + r[:62] + "zz " + s + "\n"},
		{"empty secret", "CLIENT_RANDOM " + r + " \n"},
		{"odd secret", "CLIENT_RANDOM " + r + " " + s[1:] + "\n"},
		{"upper-case secret", "CLIENT_RANDOM " + r + " " + strings.ToUpper(s) + "\n"},
		{"non-hex secret", "CLIENT_RANDOM " + r + " " + s[:30] + "0g\n"},
		{"65-byte secret", "CLIENT_RANDOM " + r + " " + strings.Repeat("ab", 65) + "\n"},
		{"NUL in secret", "CLIENT_RANDOM " + r + " " + s + "\x00\n"},
	}
	for _, tt := range tests {
		e, err := keylog.ParseLine([]byte(tt.line))
		if err == nil {
			t.Errorf("%s: ParseLine(%q) = %+v, want error", tt.name, tt.line, e)
			continue
		}
		if errors.Is(err, keylog.ErrComment) {
			t.Errorf("%s: got ErrComment", tt.name)
		}
		if !strings.HasPrefix(err.Error(), "keylog: ") {
			t.Errorf("%s: error %q lacks the package prefix", tt.name, err)
		}
		// Errors must not leak any part of the secret or the line.
		for _, f := range strings.Fields(tt.line) {
			if len(f) >= 8 && strings.Contains(err.Error(), f[:8]) {
				t.Errorf("%s: error %q quotes the input", tt.name, err)
			}
		}
		if strings.Contains(err.Error(), "0011") || strings.Contains(err.Error(), "abab") {
			t.Errorf("%s: error %q quotes the secret", tt.name, err)
		}
	}
}

func TestParseLineComment(t *testing.T) {
	for _, l := range []string{"#", "#\n", "# SSL/TLS secrets log file\n", "#CLIENT_RANDOM 00 00\n"} {
		if _, err := keylog.ParseLine([]byte(l)); err != keylog.ErrComment {
			t.Errorf("ParseLine(%q) error = %v, want ErrComment", l, err)
		}
	}
}

func TestSecrets(t *testing.T) {
	var fwd bytes.Buffer
	s := keylog.NewSecrets(&fwd)
	for _, f := range []func() ([]byte, bool){s.MasterSecret, s.ClientTrafficSecret, s.ServerTrafficSecret} {
		if b, ok := f(); ok || b != nil {
			t.Fatalf("empty Secrets returned %x, %v", b, ok)
		}
	}
	if _, ok := s.ClientRandom(); ok {
		t.Fatal("empty Secrets has a client random")
	}

	master, cts, sts := seq(48, 1), seq(32, 2), seq(48, 3)
	lines := [][]byte{
		[]byte("# a comment is forwarded and ignored\n"),
		line(keylog.LabelClientHandshake, random1, seq(32, 4)),
		line(keylog.LabelServerHandshake, random1, seq(32, 5)),
		line(keylog.LabelClientTraffic0, random1, cts),
		line(keylog.LabelServerTraffic0, random1, sts),
		line(keylog.LabelClientRandom, random1, master),
		line("EXPORTER_SECRET", random1, seq(32, 6)),
	}
	var want []byte
	for _, l := range lines {
		n, err := s.Write(l)
		if err != nil || n != len(l) {
			t.Fatalf("Write(%q) = %d, %v", l, n, err)
		}
		want = append(want, l...)
	}
	if !bytes.Equal(fwd.Bytes(), want) {
		t.Errorf("forwarded %q, want %q", fwd.Bytes(), want)
	}

	check := func(name string, f func() ([]byte, bool), want []byte) {
		t.Helper()
		got, ok := f()
		if !ok || !bytes.Equal(got, want) {
			t.Errorf("%s = %x, %v; want %x", name, got, ok, want)
		}
		// The accessor hands out a copy.
		clear(got)
		if again, _ := f(); !bytes.Equal(again, want) {
			t.Errorf("%s: clearing the returned slice changed the stored secret", name)
		}
	}
	check("MasterSecret", s.MasterSecret, master)
	check("ClientTrafficSecret", s.ClientTrafficSecret, cts)
	check("ServerTrafficSecret", s.ServerTrafficSecret, sts)
	check("ClientHandshakeTrafficSecret", s.ClientHandshakeTrafficSecret, seq(32, 4))
	check("ServerHandshakeTrafficSecret", s.ServerHandshakeTrafficSecret, seq(32, 5))
	if r, ok := s.ClientRandom(); !ok || !bytes.Equal(r[:], random1) {
		t.Errorf("ClientRandom = %x, %v", r, ok)
	}

	// A later line for the same label replaces the earlier one.
	if _, err := s.Write(line(keylog.LabelClientTraffic0, random1, seq(32, 9))); err != nil {
		t.Fatal(err)
	}
	check("ClientTrafficSecret after rewrite", s.ClientTrafficSecret, seq(32, 9))

	s.Zero()
	for name, f := range map[string]func() ([]byte, bool){
		"MasterSecret": s.MasterSecret, "ClientTrafficSecret": s.ClientTrafficSecret, "ServerTrafficSecret": s.ServerTrafficSecret,
		"ClientHandshakeTrafficSecret": s.ClientHandshakeTrafficSecret, "ServerHandshakeTrafficSecret": s.ServerHandshakeTrafficSecret,
	} {
		if b, ok := f(); ok || b != nil {
			t.Errorf("%s after Zero = %x, %v", name, b, ok)
		}
	}
	if r, ok := s.ClientRandom(); !ok || !bytes.Equal(r[:], random1) {
		t.Errorf("ClientRandom after Zero = %x, %v; want it kept", r, ok)
	}
}

func TestSecretsNoForward(t *testing.T) {
	s := keylog.NewSecrets(nil)
	l := line(keylog.LabelClientRandom, random1, seq(48, 0))
	if n, err := s.Write(l); err != nil || n != len(l) {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if _, ok := s.MasterSecret(); !ok {
		t.Error("master secret not kept")
	}
}

// errWriter fails every write; shortWriter accepts one byte less than asked.
type errWriter struct{ err error }

func (w errWriter) Write([]byte) (int, error) { return 0, w.err }

type shortWriter struct{}

func (shortWriter) Write(p []byte) (int, error) { return len(p) - 1, nil }

func TestSecretsWriteErrors(t *testing.T) {
	good := line(keylog.LabelClientTraffic0, random1, seq(32, 0))

	boom := errors.New("disk full")
	if _, err := keylog.NewSecrets(errWriter{boom}).Write(good); err != boom {
		t.Errorf("forward error: got %v, want %v", err, boom)
	}
	if _, err := keylog.NewSecrets(shortWriter{}).Write(good); err == nil {
		t.Error("short forward write: no error")
	}

	// A malformed line is an error, and is not forwarded.
	var fwd bytes.Buffer
	s := keylog.NewSecrets(&fwd)
	if n, err := s.Write([]byte("CLIENT_RANDOM zz zz\n")); err == nil || n != 0 {
		t.Errorf("malformed line: Write = %d, %v", n, err)
	}
	if fwd.Len() != 0 {
		t.Errorf("malformed line was forwarded: %q", fwd.Bytes())
	}

	// Lines from a second handshake mean the collector is shared.
	if _, err := s.Write(good); err != nil {
		t.Fatal(err)
	}
	other := line(keylog.LabelServerTraffic0, random2, seq(32, 1))
	if _, err := s.Write(other); err == nil {
		t.Error("line with a different client random: no error")
	}
	if _, ok := s.ServerTrafficSecret(); ok {
		t.Error("secret from the second handshake was kept")
	}
	if r, _ := s.ClientRandom(); !bytes.Equal(r[:], random1) {
		t.Errorf("client random changed to %x", r)
	}
}

func TestSecretsConcurrent(t *testing.T) {
	var fwd wiretest.SyncBuffer
	s := keylog.NewSecrets(&fwd)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for j := range 50 {
				if _, err := s.Write(line(keylog.LabelClientTraffic0, random1, seq(32, byte(i*50+j)))); err != nil {
					t.Error(err)
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			for range 50 {
				s.ClientTrafficSecret()
				s.ClientRandom()
				if i == 0 {
					s.Zero()
				}
			}
		}()
	}
	wg.Wait()
	if n := bytes.Count(fwd.Bytes(), []byte("\n")); n != 8*50 {
		t.Errorf("forwarded %d lines, want %d", n, 8*50)
	}
	for l := range bytes.Lines(fwd.Bytes()) {
		if _, err := keylog.ParseLine(l); err != nil {
			t.Fatalf("forwarded lines were interleaved: %v", err)
		}
	}
}

func FuzzParseLine(f *testing.F) {
	f.Add(line(keylog.LabelClientRandom, random1, seq(48, 0)))
	f.Add(bytes.TrimSuffix(line(keylog.LabelServerTraffic0, random2, seq(32, 7)), []byte("\n")))
	f.Fuzz(func(t *testing.T, in []byte) {
		e, err := keylog.ParseLine(in)
		if err != nil {
			if errors.Is(err, keylog.ErrComment) != (len(in) > 0 && in[0] == '#') {
				t.Fatalf("ParseLine(%q) = %v: comment detection is wrong", in, err)
			}
			return
		}
		// Whatever parses is canonical: it formats back byte for byte.
		want := in
		if want[len(want)-1] != '\n' {
			want = append(bytes.Clone(want), '\n')
		}
		got := e.AppendLine(nil)
		if !bytes.Equal(got, want) {
			t.Fatalf("ParseLine(%q) formats back as %q", in, got)
		}
		e2, err := keylog.ParseLine(got)
		if err != nil || e2.Label != e.Label || e2.ClientRandom != e.ClientRandom || !bytes.Equal(e2.Secret, e.Secret) {
			t.Fatalf("canonical line %q reparses as %+v, %v", got, e2, err)
		}
		if len(e.Secret) == 0 || len(e.Secret) > 64 {
			t.Fatalf("accepted a %d-byte secret", len(e.Secret))
		}
	})
}
