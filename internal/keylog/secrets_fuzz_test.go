package keylog_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/ktlsgo/ktls/internal/keylog"
)

// FuzzSecrets writes a stream of key log lines, one per Write as
// crypto/tls writes them, into a Secrets, and checks it against a model
// built on ParseLine (which FuzzParseLine checks): a line that doesn't
// parse is refused and not forwarded; a comment is forwarded and kept
// nowhere; the first parsed line fixes the client random, and a line with
// another is refused; each kept label holds the secret of its latest
// line; and Zero forgets them all.
func FuzzSecrets(f *testing.F) {
	f.Add(bytes.Join([][]byte{
		line(keylog.LabelClientHandshake, random1, seq(32, 1)),
		line(keylog.LabelClientTraffic0, random1, seq(32, 2)),
		line(keylog.LabelServerTraffic0, random1, seq(32, 3)),
	}, nil))
	f.Add(bytes.Join([][]byte{
		[]byte("# comment\n"),
		line(keylog.LabelClientRandom, random1, seq(48, 4)),
		line(keylog.LabelClientRandom, random2, seq(48, 5)),
		line(keylog.LabelClientRandom, random1, seq(48, 6)),
	}, nil))
	f.Add([]byte("CLIENT_RANDOM zz 00\n\nSERVER_TRAFFIC_SECRET_0 " + string(bytes.Repeat([]byte("ab"), 32)) + " 01\n"))
	f.Fuzz(func(t *testing.T, stream []byte) {
		var fwd bytes.Buffer
		s := keylog.NewSecrets(&fwd)
		var (
			wantFwd    []byte
			random     [32]byte
			haveRandom bool
			kept       = map[string][]byte{}
		)
		for _, l := range bytes.SplitAfter(stream, []byte("\n")) {
			if len(l) == 0 {
				continue
			}
			n, err := s.Write(l)
			e, perr := keylog.ParseLine(l)
			accept := perr == nil && (!haveRandom || e.ClientRandom == random) || errors.Is(perr, keylog.ErrComment)
			if accept != (err == nil) {
				t.Fatalf("Write(%q) = %d, %v; the model says accepted: %v (ParseLine: %v)", l, n, err, accept, perr)
			}
			if !accept {
				if n != 0 {
					t.Fatalf("a refused Write returned %d", n)
				}
				continue
			}
			if n != len(l) {
				t.Fatalf("Write(%q) = %d", l, n)
			}
			wantFwd = append(wantFwd, l...)
			if perr == nil {
				random, haveRandom = e.ClientRandom, true
				switch e.Label {
				case keylog.LabelClientRandom, keylog.LabelClientTraffic0, keylog.LabelServerTraffic0,
					keylog.LabelClientHandshake, keylog.LabelServerHandshake:
					kept[e.Label] = e.Secret
				}
			}
		}
		if !bytes.Equal(fwd.Bytes(), wantFwd) {
			t.Fatalf("forwarded %q, want %q", fwd.Bytes(), wantFwd)
		}
		if r, ok := s.ClientRandom(); ok != haveRandom || r != random {
			t.Fatalf("ClientRandom = %x, %v; want %x, %v", r, ok, random, haveRandom)
		}
		getters := map[string]func() ([]byte, bool){
			keylog.LabelClientRandom:    s.MasterSecret,
			keylog.LabelClientTraffic0:  s.ClientTrafficSecret,
			keylog.LabelServerTraffic0:  s.ServerTrafficSecret,
			keylog.LabelClientHandshake: s.ClientHandshakeTrafficSecret,
			keylog.LabelServerHandshake: s.ServerHandshakeTrafficSecret,
		}
		for label, get := range getters {
			got, ok := get()
			want, wantOK := kept[label]
			if ok != wantOK || !bytes.Equal(got, want) {
				t.Fatalf("%s: %x, %v; want %x, %v", label, got, ok, want, wantOK)
			}
		}
		s.Zero()
		for label, get := range getters {
			if got, ok := get(); ok || got != nil {
				t.Fatalf("%s after Zero: %x, %v", label, got, ok)
			}
		}
	})
}
