// Package check answers "why isn't kernel TLS offloading here?": it
// tries, on loopback sockets, everything ktls needs from the running
// kernel (the tls ULP, each protocol version and cipher in each
// direction, the optional socket options) and reports what works, what
// doesn't and why, with a verdict.
//
// Nothing is inferred from the kernel version: distributions backport
// features and configure ciphers out, so every item is probed for real
// with throwaway keys on a socket that never sends a byte. The version is
// reported only to explain a missing feature.
package check

import (
	"bytes"
	"cmp"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/ktlsgo/ktls/internal/kernel"
	"github.com/ktlsgo/ktls/internal/keyschedule"
)

// A Report is what Collect found. Its JSON form is ktls check --json: the
// field names are stable.
type Report struct {
	// Usable is true when the kernel has the tls ULP and takes at least
	// one version and cipher that crypto/tls negotiates in both
	// directions: then ktls offloads connections that use it.
	Usable bool `json:"usable"`
	// Verdict is the one-line summary: "kernel TLS: usable (...)" or
	// "kernel TLS: not usable: REASON".
	Verdict string `json:"verdict"`
	// Release is the kernel release, as uname -r prints it; empty where
	// the system doesn't say.
	Release string `json:"release"`
	// CapNetAdmin is whether this process has CAP_NET_ADMIN, without which
	// the kernel won't load the tls module on demand.
	CapNetAdmin bool `json:"cap_net_admin"`

	ULP      ULP      `json:"ulp"`
	Ciphers  []Cipher `json:"ciphers"`
	Features Features `json:"features"`

	// TLSStat are the counters of /proc/net/tls_stat; null, with
	// TLSStatError saying why, where they can't be read. They are read
	// before the probes, which set up sessions of their own, unless the
	// file only appears with them: when they load the tls module.
	TLSStat      Counters `json:"tls_stat"`
	TLSStatError string   `json:"tls_stat_error,omitempty"`

	// ulpProblem is ULP.Reason cut down to fit the verdict.
	ulpProblem string
}

// ULP is the state of the tls upper layer protocol.
type ULP struct {
	// Available is whether the kernel attached the tls ULP to a loopback
	// TCP socket.
	Available bool `json:"available"`
	// Listed is whether AvailableULPsFile listed tls before the probe,
	// that is whether the module was already loaded (or built in).
	Listed bool `json:"listed"`
	// Autoloaded is Available without Listed: attaching the ULP made the
	// kernel load the module.
	Autoloaded bool `json:"autoloaded"`
	// AvailableULPs is what AvailableULPsFile listed before the probe;
	// null where it could not be read.
	AvailableULPs []string `json:"available_ulps"`
	// Reason says why the ULP is not available, with what to do about it.
	Reason string `json:"reason,omitempty"`
}

// A Cipher is one protocol version and cipher, tested in both directions.
type Cipher struct {
	Version string `json:"version"` // "TLS 1.2" or "TLS 1.3"
	Cipher  string `json:"cipher"`  // "AES-128-GCM", ...
	TX      bool   `json:"tx"`      // the kernel took TLS_TX keys for it
	RX      bool   `json:"rx"`      // the kernel took TLS_RX keys for it
	// MinKernel is the first upstream release with the combination in
	// both directions.
	MinKernel string `json:"min_kernel"`
	// CryptoTLS is whether crypto/tls can negotiate it, and so whether
	// ktls can use it at all.
	CryptoTLS bool `json:"crypto_tls"`
	// Reason says why a direction isn't offloadable ("TX: ...; RX: ..."
	// where they differ).
	Reason string `json:"reason,omitempty"`
	// Note is said about the pair whatever the result.
	Note string `json:"note,omitempty"`
}

// Both reports whether the kernel takes the pair in both directions.
func (c Cipher) Both() bool { return c.TX && c.RX }

// Features are the optional capabilities ktls uses when they are there.
type Features struct {
	TXZerocopyRO  Feature `json:"tx_zerocopy_ro"`
	RXExpectNoPad Feature `json:"rx_expect_no_pad"`
	Rekey         Feature `json:"rekey"`
	// TXMaxPayloadLen lets ktls keep crypto/tls's small first records;
	// without it the kernel's records are always 16 KiB.
	TXMaxPayloadLen Feature `json:"tx_max_payload_len"`
}

// A Feature is one optional capability.
type Feature struct {
	Name      string `json:"name"`       // as kernel.Feature names it
	Purpose   string `json:"purpose"`    // what ktls uses it for
	Supported bool   `json:"supported"`  // the probe succeeded
	MinKernel string `json:"min_kernel"` // the first upstream release with it
	Reason    string `json:"reason,omitempty"`
}

// Counters are the kernel's TLS counters. They marshal to a JSON object
// in the kernel's order, which groups them by kind; nil is null.
type Counters kernel.Stats

// MarshalJSON writes {"Name": value, ...}.
func (c Counters) MarshalJSON() ([]byte, error) {
	if c == nil {
		return []byte("null"), nil
	}
	return OrderedObject(len(c), func(i int) (string, string) {
		return c[i].Name, strconv.FormatUint(c[i].Value, 10)
	})
}

// OrderedObject writes a JSON object of n members in their order, which a
// map would lose (encoding/json sorts its keys): member i's name, and its
// value as JSON text. Counters and ktls stat's changes use it.
func OrderedObject(n int, member func(i int) (name, value string)) ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		name, value := member(i)
		quoted, err := json.Marshal(name)
		if err != nil {
			return nil, err
		}
		b.Write(quoted)
		b.WriteByte(':')
		b.WriteString(value)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// A pair is a protocol version and kernel cipher that Collect tests.
type pair struct {
	version uint16
	cipher  kernel.Cipher
	// suite is a suite of keyschedule's table with this version and
	// cipher, for kernel.Offloadable; nil for a pair crypto/tls can't
	// negotiate, reported for information.
	suite *keyschedule.Suite
}

// pairs are what Collect tests, in the order it reports them: first each
// version and kernel cipher of the suites ktls offloads (keyschedule's
// table, which is what crypto/tls negotiates and the kernel takes), by
// version and cipher; then, for information, infoCiphers at each version.
var pairs = tablePairs()

// infoCiphers are kernel ciphers that only other TLS stacks use.
var infoCiphers = []kernel.Cipher{kernel.CipherAESCCM128}

func tablePairs() []pair {
	var out []pair
	for _, s := range keyschedule.Suites() {
		p := pair{s.Version, kernel.Cipher(s.KernelCipher), s}
		if !slices.ContainsFunc(out, func(q pair) bool { return q.version == p.version && q.cipher == p.cipher }) {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b pair) int {
		return cmp.Or(cmp.Compare(a.version, b.version), cmp.Compare(a.cipher, b.cipher))
	})
	for _, v := range []uint16{kernel.VersionTLS12, kernel.VersionTLS13} {
		for _, c := range infoCiphers {
			out = append(out, pair{version: v, cipher: c})
		}
	}
	return out
}

// Paths Collect reads.
const (
	osReleaseFile = "/proc/sys/kernel/osrelease"
	statusFile    = "/proc/self/status"
)

// system is what Collect asks of the machine; tests replace it.
type system struct {
	goos     string
	readFile func(name string) ([]byte, error)
	root     fs.FS // the same files, for kernel.GatherULPFacts
	probe    func(*kernel.Feature) error
}

var host = system{
	goos:     runtime.GOOS,
	readFile: os.ReadFile,
	root:     os.DirFS("/"),
	probe:    (*kernel.Feature).Check,
}

// Collect probes the running kernel, each probe on a loopback connection
// of its own, and returns the report. It never fails: what it can't find
// out is in the report, with why.
func Collect() *Report { return collect(host) }

func collect(sys system) *Report {
	r := &Report{Release: release(sys), CapNetAdmin: hasCapNetAdmin(sys)}

	// The list and the counters first: the probes below may load the
	// module, and add to the counters.
	stat, statErr := sys.readFile(kernel.StatsFile)
	if data, err := sys.readFile(kernel.AvailableULPsFile); err == nil {
		r.ULP.AvailableULPs = strings.Fields(string(data))
		if r.ULP.AvailableULPs == nil {
			r.ULP.AvailableULPs = []string{}
		}
		r.ULP.Listed = slices.Contains(r.ULP.AvailableULPs, "tls")
	}
	if err := sys.probe(kernel.FeatureULP); err != nil {
		r.ULP.Reason, r.ulpProblem = ulpReason(sys, r, err)
	} else {
		r.ULP.Available = true
		r.ULP.Autoloaded = !r.ULP.Listed && r.ULP.AvailableULPs != nil
	}

	// Without the ULP every other probe fails the same way: say so once,
	// in the ULP's line, and mark the rest untested.
	untested := ""
	if !r.ULP.Available {
		untested = "not tested: the tls ULP is not available"
	}
	for _, p := range pairs {
		c := Cipher{
			Version:   tls.VersionName(p.version),
			Cipher:    p.cipher.String(),
			MinKernel: kernel.CipherFeature(p.version, p.cipher, kernel.RX).MinKernel,
			CryptoTLS: p.suite != nil,
			Reason:    untested,
		}
		if p.suite == nil {
			c.Note = "for information: crypto/tls can't negotiate it"
		}
		if untested == "" {
			// What the handoff asks, for the pairs it can meet; the
			// kernel's cipher alone for the others.
			offloadable := func(dir kernel.Direction) error {
				if p.suite == nil {
					return sys.probe(kernel.CipherFeature(p.version, p.cipher, dir))
				}
				return kernel.Probe(sys.probe).Offloadable(p.suite.Version, p.suite.ID, dir)
			}
			txErr, rxErr := offloadable(kernel.TX), offloadable(kernel.RX)
			c.TX, c.RX = txErr == nil, rxErr == nil
			c.Reason = directionsReason(txErr, rxErr)
		}
		r.Ciphers = append(r.Ciphers, c)
	}

	feature := func(f *kernel.Feature, purpose string) Feature {
		out := Feature{Name: f.Name, Purpose: purpose, MinKernel: f.MinKernel, Reason: untested}
		if untested == "" {
			err := sys.probe(f)
			out.Supported = err == nil
			out.Reason = reasonOf(err)
		}
		return out
	}
	r.Features = Features{
		TXZerocopyRO:  feature(kernel.FeatureTXZerocopyRO, "zerocopy sendfile, for a NIC that encrypts"),
		RXExpectNoPad: feature(kernel.FeatureRXExpectNoPad, "TLS 1.3 records decrypted in place"),
		Rekey:         feature(kernel.FeatureRekey, "TLS 1.3 KeyUpdate without ending the connection"),
		TXMaxPayloadLen: feature(kernel.FeatureTXMaxPayloadLen,
			"records that fit one TCP segment until 128 KiB are sent, as crypto/tls sends them; without it, records are always 16 KiB"),
	}

	if errors.Is(statErr, fs.ErrNotExist) {
		stat, statErr = sys.readFile(kernel.StatsFile)
	}
	switch {
	case errors.Is(statErr, fs.ErrNotExist):
		r.TLSStatError = kernel.StatsFile + " does not exist: the tls module is not loaded"
	case statErr != nil:
		r.TLSStatError = statErr.Error()
	default:
		stats, err := kernel.ParseStats(stat)
		if err != nil {
			r.TLSStatError = err.Error()
		} else {
			r.TLSStat = Counters(stats)
			if r.TLSStat == nil {
				r.TLSStat = Counters{}
			}
		}
	}

	r.Usable, r.Verdict = verdict(r)
	return r
}

// ulpReason explains a failed ULP probe, with what to do about it, and
// says it again in a few words for the verdict.
func ulpReason(sys system, r *Report, err error) (reason, short string) {
	if sys.goos != "linux" {
		reason = "kernel TLS is a Linux feature; this is " + sys.goos
		return reason, reason
	}
	if !errors.Is(err, kernel.ErrNotSupported) {
		return "attaching it to a loopback socket failed: " + err.Error(),
			"the tls ULP could not be tested: " + err.Error()
	}
	// What the machine shows about kernel TLS: its build configuration,
	// the module on disk, the module loaded. Only what applies is said.
	facts := kernel.GatherULPFacts(sys.root)
	short = "the tls ULP is not available: " + facts.Reason()
	if r.ULP.Listed {
		// Listed but refused: odd enough to report as the kernel put it.
		return "listed in " + kernel.AvailableULPsFile + ", yet attaching it fails: " + reasonOf(err), short
	}
	var b strings.Builder
	if r.ULP.AvailableULPs == nil {
		b.WriteString("attaching it to a loopback socket fails with ENOENT")
	} else {
		fmt.Fprintf(&b, "not in %s (%q), and attaching it fails with ENOENT",
			kernel.AvailableULPsFile, strings.Join(r.ULP.AvailableULPs, " "))
	}
	b.WriteString(": " + facts.Reason())
	if facts.ModuleFile != "" && !r.CapNetAdmin {
		b.WriteString(" (the kernel loads it on demand only for a process with CAP_NET_ADMIN, which this one lacks)")
	}
	return b.String(), short
}

// directionsReason says why one or both directions failed, once where
// the reasons are the same.
func directionsReason(txErr, rxErr error) string {
	tx, rx := reasonOf(txErr), reasonOf(rxErr)
	switch {
	case tx == rx:
		return tx
	case tx == "":
		return "RX: " + rx
	case rx == "":
		return "TX: " + tx
	}
	return "TX: " + tx + "; RX: " + rx
}

// reasonOf is what a probe error says beyond "not supported": the kernel's
// answer, or why the probe couldn't run at all.
func reasonOf(err error) string {
	var ue *kernel.UnsupportedError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &ue) && ue.Reason != "":
		return ue.Reason
	case errors.Is(err, kernel.ErrNotSupported):
		return "not supported by this kernel"
	}
	return "the probe failed: " + err.Error()
}

// Release returns the running kernel's release, as uname -r prints it,
// or "" where the system doesn't say.
func Release() string { return release(host) }

func release(sys system) string {
	data, err := sys.readFile(osReleaseFile)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}

// hasCapNetAdmin reads CAP_NET_ADMIN (bit 12) from the effective set in
// /proc/self/status. Where that can't be read it answers false, which
// only adds a hint that may not apply.
func hasCapNetAdmin(sys system) bool {
	data, err := sys.readFile(statusFile)
	if err != nil {
		return false
	}
	for line := range strings.Lines(string(data)) {
		hex, ok := strings.CutPrefix(line, "CapEff:")
		if !ok {
			continue
		}
		caps, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
		return err == nil && caps&(1<<capNetAdmin) != 0
	}
	return false
}

// capNetAdmin is CAP_NET_ADMIN's bit (include/uapi/linux/capability.h).
const capNetAdmin = 12

// HasCapNetAdmin reports whether this process has CAP_NET_ADMIN, which
// the kernel asks of a process before it loads the tls module on demand
// and, before Linux 6.15, before it reports a socket's TLS state through
// sock_diag.
func HasCapNetAdmin() bool { return hasCapNetAdmin(host) }
