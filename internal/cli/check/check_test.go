package check

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io/fs"
	"maps"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"github.com/ktlsgo/ktls/internal/kernel"
	"github.com/ktlsgo/ktls/internal/keyschedule"
)

// fakeSystem answers Collect's questions from tables: files that aren't
// in files don't exist, and probes that aren't in errs succeed.
type fakeSystem struct {
	goos   string
	files  map[string]string
	errs   map[*kernel.Feature]error
	probed []string
	// onProbe, if set, runs at each probe, to change what the files say.
	onProbe func(*kernel.Feature)
}

func (f *fakeSystem) system() system {
	goos := f.goos
	if goos == "" {
		goos = "linux"
	}
	root := fstest.MapFS{}
	for name, data := range f.files {
		root[strings.TrimPrefix(name, "/")] = &fstest.MapFile{Data: []byte(data)}
	}
	return system{
		goos: goos,
		root: root,
		readFile: func(name string) ([]byte, error) {
			s, ok := f.files[name]
			if !ok {
				return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
			}
			return []byte(s), nil
		},
		probe: func(ft *kernel.Feature) error {
			f.probed = append(f.probed, ft.Name)
			if f.onProbe != nil {
				f.onProbe(ft)
			}
			return f.errs[ft]
		},
	}
}

func unsupported(f *kernel.Feature, reason string) error {
	return &kernel.UnsupportedError{Feature: f.Name, MinKernel: f.MinKernel, Reason: reason}
}

const (
	statusRoot = "Name:\tktls\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n"
	statusUser = "Name:\tktls\nCapEff:\t0000000000000000\n"
	tlsStat    = "TlsCurrTxSw                     2\nTlsCurrRxSw                     2\nTlsTxSw                         7\nTlsDecryptError                 0\n"
)

// labKernel is a kernel that has everything but rekey, as Linux 6.12.
func labKernel() *fakeSystem {
	return &fakeSystem{
		files: map[string]string{
			osReleaseFile:            "6.12.118+deb13-amd64\n",
			statusFile:               statusRoot,
			kernel.AvailableULPsFile: "espintcp mptcp tls\n",
			kernel.StatsFile:         tlsStat,
		},
		errs: map[*kernel.Feature]error{
			kernel.FeatureRekey: unsupported(kernel.FeatureRekey, "installing a second TLS_TX key fails with EBUSY"),
			kernel.FeatureTXMaxPayloadLen: unsupported(kernel.FeatureTXMaxPayloadLen,
				"setsockopt TLS_TX_MAX_PAYLOAD_LEN: protocol not available"),
		},
	}
}

func TestCollectUsable(t *testing.T) {
	r := collect(labKernel().system())
	if !r.Usable {
		t.Errorf("Usable = false, want true")
	}
	const want = "kernel TLS: usable (6 of 6 cipher pairs both ways; with zerocopy sendfile, RX no-pad; without rekey)"
	if r.Verdict != want {
		t.Errorf("Verdict = %q\nwant      %q", r.Verdict, want)
	}
	wantULP := ULP{Available: true, Listed: true, AvailableULPs: []string{"espintcp", "mptcp", "tls"}}
	if diff := cmp.Diff(wantULP, r.ULP); diff != "" {
		t.Errorf("ULP (-want +got):\n%s", diff)
	}
	if r.Release != "6.12.118+deb13-amd64" || !r.CapNetAdmin {
		t.Errorf("Release, CapNetAdmin = %q, %v; want 6.12.118+deb13-amd64, true", r.Release, r.CapNetAdmin)
	}
	if got := r.Features.Rekey; got.Supported || got.Reason != "installing a second TLS_TX key fails with EBUSY" || got.MinKernel != "6.14" {
		t.Errorf("Features.Rekey = %+v, want unsupported with the probe's reason and 6.14", got)
	}
	if !r.Features.TXZerocopyRO.Supported || !r.Features.RXExpectNoPad.Supported {
		t.Errorf("Features = %+v, want zerocopy and no-pad", r.Features)
	}
	var names []string
	for _, c := range r.Ciphers {
		names = append(names, c.Version+" "+c.Cipher)
		if !c.Both() || c.Reason != "" {
			t.Errorf("%s %s = %+v, want TX and RX with no reason", c.Version, c.Cipher, c)
		}
		if c.CryptoTLS == (c.Note != "") {
			t.Errorf("%s %s: CryptoTLS %v with note %q: only pairs crypto/tls can't use have one", c.Version, c.Cipher, c.CryptoTLS, c.Note)
		}
	}
	wantNames := []string{
		"TLS 1.2 AES-128-GCM", "TLS 1.2 AES-256-GCM", "TLS 1.2 ChaCha20-Poly1305",
		"TLS 1.3 AES-128-GCM", "TLS 1.3 AES-256-GCM", "TLS 1.3 ChaCha20-Poly1305",
		"TLS 1.2 AES-128-CCM", "TLS 1.3 AES-128-CCM",
	}
	if diff := cmp.Diff(wantNames, names); diff != "" {
		t.Errorf("cipher pairs (-want +got):\n%s", diff)
	}
	wantStat := Counters{{Name: "TlsCurrTxSw", Value: 2}, {Name: "TlsCurrRxSw", Value: 2}, {Name: "TlsTxSw", Value: 7}, {Name: "TlsDecryptError", Value: 0}}
	if diff := cmp.Diff(wantStat, r.TLSStat); diff != "" || r.TLSStatError != "" {
		t.Errorf("TLSStat (-want +got):\n%s\nTLSStatError %q", diff, r.TLSStatError)
	}
}

// TestCiphersAreTheTable: the pairs crypto/tls can use are keyschedule's
// suite table, each reported as kernel.Offloadable answers for its
// suites: check says what the handoff would find, from the same table.
func TestCiphersAreTheTable(t *testing.T) {
	sys := labKernel()
	noChaChaRX := kernel.CipherFeature(kernel.VersionTLS13, kernel.CipherChaCha20Poly1305, kernel.RX)
	sys.errs[noChaChaRX] = unsupported(noChaChaRX, "setsockopt TLS_RX: invalid argument")
	r := collect(sys.system())
	probe := kernel.Probe(sys.system().probe)
	rows := 0
	for _, c := range r.Ciphers {
		if c.CryptoTLS {
			rows++
		}
	}
	seen := map[string]bool{}
	for _, s := range keyschedule.Suites() {
		name := tls.VersionName(s.Version) + " " + kernel.Cipher(s.KernelCipher).String()
		seen[name] = true
		i := slices.IndexFunc(r.Ciphers, func(c Cipher) bool { return c.Version+" "+c.Cipher == name })
		if i < 0 || !r.Ciphers[i].CryptoTLS {
			t.Errorf("%s: no row for %s among those crypto/tls can use", s.Name, name)
			continue
		}
		c := r.Ciphers[i]
		tx := probe.Offloadable(s.Version, s.ID, kernel.TX) == nil
		rx := probe.Offloadable(s.Version, s.ID, kernel.RX) == nil
		if c.TX != tx || c.RX != rx {
			t.Errorf("%s: row %s says TX %v RX %v, Offloadable says %v %v", s.Name, name, c.TX, c.RX, tx, rx)
		}
	}
	if rows != len(seen) {
		t.Errorf("%d rows crypto/tls can use, for %d pairs in the suite table", rows, len(seen))
	}
	if got := r.Ciphers[slices.IndexFunc(r.Ciphers, func(c Cipher) bool { return c.Version == "TLS 1.3" && c.Cipher == "ChaCha20-Poly1305" })]; got.RX {
		t.Errorf("TLS 1.3 ChaCha20-Poly1305 = %+v, want RX no", got)
	}
}

// TestCollectNoULP is the usual CI host: no tls module. Nothing else is
// probed, and the report says what to do.
func TestCollectNoULP(t *testing.T) {
	for _, tc := range []struct {
		name, status, wantReason string
	}{
		{"root", statusRoot,
			`not in /proc/sys/net/ipv4/tcp_available_ulp ("mptcp"), and attaching it fails with ENOENT: ` +
				`the tls module is installed (/lib/modules/6.18.44/kernel/net/tls/tls.ko) but not loaded, and this process may not load it; ` +
				`run 'modprobe tls' as root, and add 'tls' to /etc/modules-load.d/tls.conf to load it at boot`},
		{"user", statusUser,
			`not in /proc/sys/net/ipv4/tcp_available_ulp ("mptcp"), and attaching it fails with ENOENT: ` +
				`the tls module is installed (/lib/modules/6.18.44/kernel/net/tls/tls.ko) but not loaded, and this process may not load it; ` +
				`run 'modprobe tls' as root, and add 'tls' to /etc/modules-load.d/tls.conf to load it at boot ` +
				`(the kernel loads it on demand only for a process with CAP_NET_ADMIN, which this one lacks)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sys := &fakeSystem{
				files: map[string]string{
					osReleaseFile:            "6.18.44\n",
					statusFile:               tc.status,
					kernel.AvailableULPsFile: "mptcp\n",
					"/lib/modules/6.18.44/kernel/net/tls/tls.ko": "",
				},
				errs: map[*kernel.Feature]error{
					kernel.FeatureULP: unsupported(kernel.FeatureULP, "the tls ULP is not available"),
				},
			}
			r := collect(sys.system())
			if diff := cmp.Diff([]string{kernel.FeatureULP.Name}, sys.probed); diff != "" {
				t.Errorf("probes (-want +got):\n%s", diff)
			}
			if r.Usable || r.ULP.Available || r.ULP.Listed || r.ULP.Autoloaded {
				t.Errorf("Usable %v, ULP %+v; want nothing", r.Usable, r.ULP)
			}
			if r.ULP.Reason != tc.wantReason {
				t.Errorf("ULP.Reason = %q\nwant            %q", r.ULP.Reason, tc.wantReason)
			}
			const want = "kernel TLS: not usable: the tls ULP is not available: the tls module is installed (/lib/modules/6.18.44/kernel/net/tls/tls.ko) but not loaded, " +
				"and this process may not load it; run 'modprobe tls' as root, and add 'tls' to /etc/modules-load.d/tls.conf to load it at boot"
			if r.Verdict != want {
				t.Errorf("Verdict = %q\nwant      %q", r.Verdict, want)
			}
			for _, c := range r.Ciphers {
				if c.TX || c.RX || c.Reason != "not tested: the tls ULP is not available" {
					t.Errorf("%s %s = %+v, want untested", c.Version, c.Cipher, c)
				}
			}
			if r.TLSStat != nil || r.TLSStatError != "/proc/net/tls_stat does not exist: the tls module is not loaded" {
				t.Errorf("TLSStat %v, TLSStatError %q; want none, and that the module is not loaded", r.TLSStat, r.TLSStatError)
			}
		})
	}
}

// TestVerdict covers the decision: usable needs the ULP and one pair that
// crypto/tls negotiates, taken both ways.
func TestVerdict(t *testing.T) {
	chacha := func(dir kernel.Direction) []*kernel.Feature {
		return []*kernel.Feature{
			kernel.CipherFeature(kernel.VersionTLS12, kernel.CipherChaCha20Poly1305, dir),
			kernel.CipherFeature(kernel.VersionTLS13, kernel.CipherChaCha20Poly1305, dir),
		}
	}
	allBut := func(keep func(version uint16, c kernel.Cipher, dir kernel.Direction) bool, reason string) map[*kernel.Feature]error {
		errs := map[*kernel.Feature]error{}
		for _, p := range pairs {
			for _, dir := range []kernel.Direction{kernel.TX, kernel.RX} {
				if !keep(p.version, p.cipher, dir) {
					f := kernel.CipherFeature(p.version, p.cipher, dir)
					errs[f] = unsupported(f, reason)
				}
			}
		}
		return errs
	}
	for _, tc := range []struct {
		name       string
		goos       string
		errs       map[*kernel.Feature]error
		ulps       string // tcp_available_ulp; "-" for none
		wantUsable bool
		want       string
	}{
		{
			name:       "everything",
			wantUsable: true,
			want:       "kernel TLS: usable (6 of 6 cipher pairs both ways; with zerocopy sendfile, RX no-pad, rekey)",
		},
		{
			name: "no options",
			errs: map[*kernel.Feature]error{
				kernel.FeatureTXZerocopyRO:  unsupported(kernel.FeatureTXZerocopyRO, "setsockopt TLS_TX_ZEROCOPY_RO: protocol not available"),
				kernel.FeatureRXExpectNoPad: unsupported(kernel.FeatureRXExpectNoPad, "setsockopt TLS_RX_EXPECT_NO_PAD: protocol not available"),
				kernel.FeatureRekey:         unsupported(kernel.FeatureRekey, "EBUSY"),
			},
			wantUsable: true,
			want:       "kernel TLS: usable (6 of 6 cipher pairs both ways; without zerocopy sendfile, RX no-pad, rekey)",
		},
		{
			name: "no ChaCha20",
			errs: func() map[*kernel.Feature]error {
				errs := map[*kernel.Feature]error{}
				for _, f := range append(chacha(kernel.TX), chacha(kernel.RX)...) {
					errs[f] = unsupported(f, "setsockopt TLS_TX: invalid argument")
				}
				return errs
			}(),
			wantUsable: true,
			want:       "kernel TLS: usable (4 of 6 cipher pairs both ways, not TLS 1.2 ChaCha20-Poly1305, TLS 1.3 ChaCha20-Poly1305; with zerocopy sendfile, RX no-pad, rekey)",
		},
		{
			name: "TX only",
			errs: allBut(func(_ uint16, _ kernel.Cipher, dir kernel.Direction) bool { return dir == kernel.TX },
				"setsockopt TLS_RX: invalid argument"),
			want: "kernel TLS: not usable: the kernel takes no cipher crypto/tls negotiates in both directions (TLS 1.2 AES-128-GCM: RX: setsockopt TLS_RX: invalid argument)",
		},
		{
			name: "CCM only",
			errs: allBut(func(_ uint16, c kernel.Cipher, _ kernel.Direction) bool { return c == kernel.CipherAESCCM128 },
				"setsockopt TLS_TX: no such file or directory: the kernel has no crypto module for this cipher"),
			want: "kernel TLS: not usable: the kernel takes no cipher crypto/tls negotiates in both directions (TLS 1.2 AES-128-GCM: setsockopt TLS_TX: no such file or directory: the kernel has no crypto module for this cipher)",
		},
		{
			name: "one pair",
			errs: allBut(func(v uint16, c kernel.Cipher, _ kernel.Direction) bool {
				return v == kernel.VersionTLS13 && c == kernel.CipherAESGCM128
			}, "setsockopt TLS_TX: invalid argument"),
			wantUsable: true,
			want: "kernel TLS: usable (1 of 6 cipher pairs both ways, not TLS 1.2 AES-128-GCM, TLS 1.2 AES-256-GCM, TLS 1.2 ChaCha20-Poly1305, " +
				"TLS 1.3 AES-256-GCM, TLS 1.3 ChaCha20-Poly1305; with zerocopy sendfile, RX no-pad, rekey)",
		},
		{
			name: "probe broken",
			errs: map[*kernel.Feature]error{kernel.FeatureULP: errors.New("listen tcp 127.0.0.1:0: socket: too many open files")},
			want: "kernel TLS: not usable: the tls ULP could not be tested: listen tcp 127.0.0.1:0: socket: too many open files",
		},
		{
			name: "not Linux",
			goos: "darwin",
			errs: map[*kernel.Feature]error{kernel.FeatureULP: unsupported(kernel.FeatureULP, "darwin has no kernel TLS")},
			ulps: "-",
			want: "kernel TLS: not usable: kernel TLS is a Linux feature; this is darwin",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sys := labKernel()
			sys.goos = tc.goos
			sys.errs = tc.errs
			if tc.ulps == "-" {
				delete(sys.files, kernel.AvailableULPsFile)
			}
			r := collect(sys.system())
			if r.Usable != tc.wantUsable || r.Verdict != tc.want {
				t.Errorf("Usable, Verdict = %v, %q\nwant                %v, %q", r.Usable, r.Verdict, tc.wantUsable, tc.want)
			}
		})
	}
}

func TestAutoloaded(t *testing.T) {
	sys := labKernel()
	sys.files[kernel.AvailableULPsFile] = "mptcp\n"
	r := collect(sys.system())
	if !r.ULP.Available || r.ULP.Listed || !r.ULP.Autoloaded {
		t.Errorf("ULP = %+v, want available, autoloaded, not listed", r.ULP)
	}
	// Without the list there is no telling.
	delete(sys.files, kernel.AvailableULPsFile)
	r = collect(sys.system())
	if !r.ULP.Available || r.ULP.Listed || r.ULP.Autoloaded || r.ULP.AvailableULPs != nil {
		t.Errorf("ULP = %+v, want available and nothing else", r.ULP)
	}
}

// TestStatsBeforeProbes: the counters are the system's own, read before
// the probes add their sessions, unless the probes loaded the module and
// so made the file.
func TestStatsBeforeProbes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before string // "" for no file
		want   Counters
	}{
		{"loaded", "TlsTxSw 1\n", Counters{{Name: "TlsTxSw", Value: 1}}},
		{"autoloaded", "", Counters{{Name: "TlsTxSw", Value: 11}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sys := labKernel()
			delete(sys.files, kernel.StatsFile)
			if tc.before != "" {
				sys.files[kernel.StatsFile] = tc.before
			}
			sys.onProbe = func(*kernel.Feature) { sys.files[kernel.StatsFile] = "TlsTxSw 11\n" }
			r := collect(sys.system())
			if diff := cmp.Diff(tc.want, r.TLSStat); diff != "" || r.TLSStatError != "" {
				t.Errorf("TLSStat (-want +got):\n%s\nTLSStatError %q", diff, r.TLSStatError)
			}
		})
	}
}

func TestDirectionsReason(t *testing.T) {
	f := kernel.FeatureRekey
	for _, tc := range []struct {
		tx, rx error
		want   string
	}{
		{nil, nil, ""},
		{unsupported(f, "a"), unsupported(f, "a"), "a"},
		{unsupported(f, "a"), nil, "TX: a"},
		{nil, unsupported(f, "b"), "RX: b"},
		{unsupported(f, "a"), unsupported(f, "b"), "TX: a; RX: b"},
		{errors.New("socket: EMFILE"), nil, "TX: the probe failed: socket: EMFILE"},
	} {
		if got := directionsReason(tc.tx, tc.rx); got != tc.want {
			t.Errorf("directionsReason(%v, %v) = %q, want %q", tc.tx, tc.rx, got, tc.want)
		}
	}
}

// TestJSON pins the shape of ktls check --json: scripts and people's
// tools read these names.
func TestJSON(t *testing.T) {
	data, err := json.Marshal(collect(labKernel().system()))
	if err != nil {
		t.Fatal(err)
	}
	var top map[string]any
	if err := json.Unmarshal(data, &top); err != nil {
		t.Fatal(err)
	}
	keys := func(v any) []string {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%T, want a JSON object", v)
		}
		return slices.Sorted(maps.Keys(m))
	}
	check := func(what string, got, want []string) {
		t.Helper()
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s keys (-want +got):\n%s", what, diff)
		}
	}
	check("report", keys(top), []string{"cap_net_admin", "ciphers", "features", "release", "tls_stat", "ulp", "usable", "verdict"})
	check("ulp", keys(top["ulp"]), []string{"autoloaded", "available", "available_ulps", "listed"})
	ciphers := top["ciphers"].([]any)
	check("cipher", keys(ciphers[0]), []string{"cipher", "crypto_tls", "min_kernel", "rx", "tx", "version"})
	check("CCM cipher", keys(ciphers[6]), []string{"cipher", "crypto_tls", "min_kernel", "note", "rx", "tx", "version"})
	check("features", keys(top["features"]), []string{"rekey", "rx_expect_no_pad", "tx_max_payload_len", "tx_zerocopy_ro"})
	check("rekey", keys(top["features"].(map[string]any)["rekey"]), []string{"min_kernel", "name", "purpose", "reason", "supported"})

	if top["usable"] != true || top["release"] != "6.12.118+deb13-amd64" {
		t.Errorf("usable, release = %v, %v", top["usable"], top["release"])
	}
	if c := ciphers[3].(map[string]any); c["version"] != "TLS 1.3" || c["cipher"] != "AES-128-GCM" || c["tx"] != true || c["rx"] != true {
		t.Errorf("ciphers[3] = %v, want TLS 1.3 AES-128-GCM, both ways", c)
	}
	// The counters keep the kernel's order.
	if !bytes.Contains(data, []byte(`"tls_stat":{"TlsCurrTxSw":2,"TlsCurrRxSw":2,"TlsTxSw":7,"TlsDecryptError":0}`)) {
		t.Errorf("tls_stat is not the kernel's counters in order:\n%s", data)
	}

	// Where the counters can't be read: null, and why.
	sys := labKernel()
	delete(sys.files, kernel.StatsFile)
	data, err = json.Marshal(collect(sys.system()))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(`"tls_stat":null,"tls_stat_error":"/proc/net/tls_stat does not exist: the tls module is not loaded"`)) {
		t.Errorf("no tls_stat: got\n%s", data)
	}
}

func TestCountersJSON(t *testing.T) {
	for _, tc := range []struct {
		c    Counters
		want string
	}{
		{nil, "null"},
		{Counters{}, "{}"},
		{Counters{{Name: "TlsTxRekeyOk", Value: 1}, {Name: "TlsRxRekeyOk", Value: 18446744073709551615}}, `{"TlsTxRekeyOk":1,"TlsRxRekeyOk":18446744073709551615}`},
	} {
		got, err := json.Marshal(tc.c)
		if err != nil || string(got) != tc.want {
			t.Errorf("Marshal(%v) = %s, %v; want %s", tc.c, got, err, tc.want)
		}
	}
}

func TestWriteText(t *testing.T) {
	sys := labKernel()
	sys.errs[kernel.CipherFeature(kernel.VersionTLS13, kernel.CipherAESCCM128, kernel.RX)] =
		unsupported(kernel.CipherFeature(kernel.VersionTLS13, kernel.CipherAESCCM128, kernel.RX), "setsockopt TLS_RX: invalid argument")
	var b strings.Builder
	if err := collect(sys.system()).WriteText(&b); err != nil {
		t.Fatal(err)
	}
	const want = `kernel                     6.12.118+deb13-amd64
tls ULP                    yes            listed in /proc/sys/net/ipv4/tcp_available_ulp
TLS 1.2 AES-128-GCM        TX yes RX yes
TLS 1.2 AES-256-GCM        TX yes RX yes
TLS 1.2 ChaCha20-Poly1305  TX yes RX yes
TLS 1.3 AES-128-GCM        TX yes RX yes
TLS 1.3 AES-256-GCM        TX yes RX yes
TLS 1.3 ChaCha20-Poly1305  TX yes RX yes
TLS 1.2 AES-128-CCM        TX yes RX yes  for information: crypto/tls can't negotiate it
TLS 1.3 AES-128-CCM        TX yes RX no   for information: crypto/tls can't negotiate it; needs Linux 5.2+: RX: setsockopt TLS_RX: invalid argument
TLS_TX_ZEROCOPY_RO         yes            zerocopy sendfile, for a NIC that encrypts (Linux 5.19+)
TLS_RX_EXPECT_NO_PAD       yes            TLS 1.3 records decrypted in place (Linux 6.0+)
TLS 1.3 rekey (KeyUpdate)  no             TLS 1.3 KeyUpdate without ending the connection (Linux 6.14+): installing a second TLS_TX key fails with EBUSY
TLS_TX_MAX_PAYLOAD_LEN     no             records that fit one TCP segment until 128 KiB are sent, as crypto/tls sends them; without it, records are always 16 KiB (Linux 6.19+): setsockopt TLS_TX_MAX_PAYLOAD_LEN: protocol not available
tls_stat TlsCurrTxSw       2
tls_stat TlsCurrRxSw       2
tls_stat TlsTxSw           7
tls_stat TlsDecryptError   0
kernel TLS: usable (6 of 6 cipher pairs both ways; with zerocopy sendfile, RX no-pad; without rekey)
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("WriteText (-want +got):\n%s", diff)
	}
}

func TestHasCapNetAdmin(t *testing.T) {
	for _, tc := range []struct {
		status string
		want   bool
	}{
		{statusRoot, true},
		{statusUser, false},
		{"CapEff:\t0000000000001000\n", true}, // CAP_NET_ADMIN alone
		{"CapEff:\t0000000000000800\n", false},
		{"CapEff:\tnonsense\n", false},
		{"Name:\tno caps line\n", false},
	} {
		sys := &fakeSystem{files: map[string]string{statusFile: tc.status}}
		if got := hasCapNetAdmin(sys.system()); got != tc.want {
			t.Errorf("hasCapNetAdmin(%q) = %v, want %v", tc.status, got, tc.want)
		}
	}
}
