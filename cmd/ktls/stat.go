package main

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ktlsgo/ktls/internal/cli/check"
	"github.com/ktlsgo/ktls/internal/cli/sockdiag"
	"github.com/ktlsgo/ktls/internal/kernel"
)

func newStatCmd() *cobra.Command {
	var (
		watch  time.Duration
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "stat",
		Short: "Show the kernel's TLS counters and connections",
		Long: `Stat prints the counters of /proc/net/tls_stat, each with what it counts, and
the TCP connections that have kernel TLS, as sock_diag reports them: their
addresses, TCP state, TLS version and cipher, and whether each direction is
encrypted in software (sw), on the NIC (hw) or not yet (base).

Before Linux 6.15 the kernel shows a connection's TLS state only to a process
with CAP_NET_ADMIN: run it as root there.

--watch redraws every interval (1s unless given, as --watch=500ms) until
interrupted, with each counter's change since the previous sample. --json
prints each sample as a JSON object; with --watch, one per line.

It fails when the host has no kernel TLS loaded (no /proc/net/tls_stat).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("watch") && watch <= 0 {
				return fmt.Errorf("--watch: the interval must be positive, not %v", watch)
			}
			return runStat(cmd, watch, asJSON)
		},
	}
	f := cmd.Flags()
	f.DurationVar(&watch, "watch", 0, "redraw every interval until interrupted, with the counters' changes")
	f.Lookup("watch").NoOptDefVal = "1s"
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// A statSample is one reading of the counters and the connections.
type statSample struct {
	time  time.Time
	stats kernel.Stats
	conns []sockdiag.Socket
	// connsErr is why the connections are unknown. It doesn't fail the
	// command: the counters are still worth showing.
	connsErr error
}

func takeStatSample() (*statSample, error) {
	data, err := os.ReadFile(kernel.StatsFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no kernel TLS on this host: %s does not exist, so the tls module is not loaded (ktls check says why)", kernel.StatsFile)
	}
	if err != nil {
		return nil, err
	}
	s := &statSample{time: time.Now()}
	if s.stats, err = kernel.ParseStats(data); err != nil {
		return nil, err
	}
	s.conns, s.connsErr = sockdiag.List()
	slices.SortFunc(s.conns, func(a, b sockdiag.Socket) int {
		if c := a.Local.Compare(b.Local); c != 0 {
			return c
		}
		return a.Remote.Compare(b.Remote)
	})
	return s, nil
}

func runStat(cmd *cobra.Command, watch time.Duration, asJSON bool) error {
	err := runStatSamples(cmd, watch, asJSON)
	if err != nil && asJSON {
		// A program reading --json gets JSON whatever happened; the error
		// also goes to stderr, and the exit status is still 1.
		writeStatErrorJSON(cmd.OutOrStdout(), err, watch == 0)
	}
	return err
}

func runStatSamples(cmd *cobra.Command, watch time.Duration, asJSON bool) error {
	out := cmd.OutOrStdout()
	s, err := takeStatSample()
	if err != nil {
		return err
	}
	if watch == 0 {
		if asJSON {
			return writeStatJSON(out, s, nil, true)
		}
		return writeStatText(out, s, nil, false)
	}

	// On a terminal, each sample replaces the last; elsewhere (a file, a
	// pipe) they follow each other.
	redraw := false
	if f, ok := out.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			redraw = true
		}
	}
	tick := time.NewTicker(watch)
	defer tick.Stop()
	var prev *statSample
	for {
		var err error
		switch {
		case asJSON:
			err = writeStatJSON(out, s, prev, false)
		case redraw:
			// Cursor home, clear the screen.
			if _, err = io.WriteString(out, "\x1b[H\x1b[2J"); err == nil {
				err = writeStatText(out, s, prev, true)
			}
		default:
			if prev != nil {
				fmt.Fprintln(out)
			}
			err = writeStatText(out, s, prev, true)
		}
		if err != nil {
			return err
		}
		select {
		case <-cmd.Context().Done():
			return nil
		case <-tick.C:
		}
		prev = s
		if s, err = takeStatSample(); err != nil {
			return err
		}
	}
}

// statHelp says what each counter counts (Documentation/networking/tls.rst,
// net/tls/tls_proc.c). A counter from a newer kernel that isn't here is
// shown without it.
var statHelp = map[string]string{
	"TlsCurrTxSw":         "TX sessions open now, software crypto",
	"TlsCurrRxSw":         "RX sessions open now, software crypto",
	"TlsCurrTxDevice":     "TX sessions open now, on the NIC",
	"TlsCurrRxDevice":     "RX sessions open now, on the NIC",
	"TlsTxSw":             "TX sessions set up in software, ever",
	"TlsRxSw":             "RX sessions set up in software, ever",
	"TlsTxDevice":         "TX sessions set up on the NIC, ever",
	"TlsRxDevice":         "RX sessions set up on the NIC, ever",
	"TlsDecryptError":     "records that failed to decrypt (bad_record_mac)",
	"TlsRxDeviceResync":   "RX resyncs asked of the NIC",
	"TlsDecryptRetry":     "records decrypted twice: TLS_RX_EXPECT_NO_PAD guessed wrong",
	"TlsRxNoPadViolation": "data records the peer padded despite TLS_RX_EXPECT_NO_PAD",
	"TlsTxRekeyOk":        "TX key updates installed",
	"TlsRxRekeyOk":        "RX key updates installed",
	"TlsTxRekeyError":     "TX key updates refused",
	"TlsRxRekeyError":     "RX key updates refused",
	"TlsRxRekeyReceived":  "KeyUpdate messages received (RX waits for a new key)",
}

// writeStatText writes a sample as two tables, the counters and the
// connections. With watching, it starts with the time and has a column
// for each counter's change since prev (blank on the first sample).
func writeStatText(w io.Writer, s, prev *statSample, watching bool) error {
	var buf bytes.Buffer
	if watching {
		fmt.Fprintf(&buf, "%s  Linux %s\n\n", s.time.Format("15:04:05"), check.Release())
	}
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	if watching {
		fmt.Fprintln(tw, "COUNTER\tVALUE\tCHANGE\tCOUNTS")
	} else {
		fmt.Fprintln(tw, "COUNTER\tVALUE\tCOUNTS")
	}
	deltas := statDeltas(s.stats, prev)
	for i, st := range s.stats {
		if watching {
			change := ""
			if deltas != nil && deltas[i].delta != 0 {
				change = fmt.Sprintf("%+d", deltas[i].delta)
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", st.Name, st.Value, change, statHelp[st.Name])
		} else {
			fmt.Fprintf(tw, "%s\t%d\t%s\n", st.Name, st.Value, statHelp[st.Name])
		}
	}
	tw.Flush()
	fmt.Fprintln(&buf)

	switch {
	case s.connsErr != nil:
		fmt.Fprintf(&buf, "kernel TLS connections: unknown: %v\n", s.connsErr)
	case len(s.conns) == 0:
		fmt.Fprintf(&buf, "kernel TLS connections: none%s\n", hiddenConnsNote())
	default:
		fmt.Fprintf(&buf, "kernel TLS connections: %d\n", len(s.conns))
		tw = tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "LOCAL\tREMOTE\tSTATE\tVERSION\tCIPHER\tTX\tRX\tOPTIONS")
		for _, c := range s.conns {
			j := connToJSON(c)
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", j.Local, j.Remote, j.State,
				dash(j.Version), dash(j.Cipher), j.TX, j.RX, dash(strings.Join(connOptions(c), ",")))
		}
		tw.Flush()
	}

	// tabwriter pads the cells before an empty last one.
	var text strings.Builder
	for line := range strings.Lines(buf.String()) {
		text.WriteString(strings.TrimRight(line, " \n") + "\n")
	}
	_, err := io.WriteString(w, text.String())
	return err
}

// hiddenConnsNote explains an empty list that may not be empty: before
// Linux 6.15, sock_diag leaves the TLS state out for a caller without
// CAP_NET_ADMIN, and then List can't tell TLS sockets from others.
func hiddenConnsNote() string {
	rel := check.Release()
	if check.HasCapNetAdmin() || rel == "" || kernel.CompareRelease(rel, "6.15") >= 0 {
		return ""
	}
	return " seen (before Linux 6.15 the kernel shows them only to a process with CAP_NET_ADMIN, which this one lacks: run as root)"
}

func connOptions(c sockdiag.Socket) []string {
	var opts []string
	if c.TLS.ZerocopyTX {
		opts = append(opts, "zerocopy-tx")
	}
	if c.TLS.RXNoPad {
		opts = append(opts, "rx-no-pad")
	}
	return opts
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// statJSON is a sample as --json prints it.
type statJSON struct {
	Time    time.Time      `json:"time"`
	Release string         `json:"release"`
	TLSStat check.Counters `json:"tls_stat"`
	// Changes are each counter's change since the previous sample; only
	// with --watch, from the second sample on.
	Changes          counterChanges `json:"changes,omitempty"`
	Connections      []connJSON     `json:"connections"`
	ConnectionsError string         `json:"connections_error,omitempty"`
}

// connJSON is one connection in statJSON.
type connJSON struct {
	Local   string `json:"local"`
	Remote  string `json:"remote"`
	State   string `json:"state"`
	Version string `json:"version,omitempty"` // none before the first key
	Cipher  string `json:"cipher,omitempty"`
	TX      string `json:"tx"` // "sw", "hw" or "base"
	RX      string `json:"rx"`
	// ZerocopyTX and RXNoPad are as sockdiag.TLSInfo has them.
	ZerocopyTX bool   `json:"zerocopy_tx"`
	RXNoPad    bool   `json:"rx_no_pad"`
	UID        uint32 `json:"uid"`
	Inode      uint32 `json:"inode"`
}

func connToJSON(c sockdiag.Socket) connJSON {
	j := connJSON{
		Local:      c.Local.String(),
		Remote:     c.Remote.String(),
		State:      c.State,
		TX:         c.TLS.TX.String(),
		RX:         c.TLS.RX.String(),
		ZerocopyTX: c.TLS.ZerocopyTX,
		RXNoPad:    c.TLS.RXNoPad,
		UID:        c.UID,
		Inode:      c.Inode,
	}
	if c.TLS.Version != 0 {
		j.Version = tls.VersionName(c.TLS.Version)
		j.Cipher = c.TLS.Cipher.String()
	}
	return j
}

func writeStatJSON(w io.Writer, s, prev *statSample, indent bool) error {
	j := statJSON{
		Time:        s.time,
		Release:     check.Release(),
		TLSStat:     check.Counters(s.stats),
		Changes:     statDeltas(s.stats, prev),
		Connections: []connJSON{},
	}
	if j.TLSStat == nil {
		j.TLSStat = check.Counters{}
	}
	for _, c := range s.conns {
		j.Connections = append(j.Connections, connToJSON(c))
	}
	if s.connsErr != nil {
		j.ConnectionsError = s.connsErr.Error()
		j.Connections = nil
	}
	enc := json.NewEncoder(w)
	if indent {
		enc.SetIndent("", "  ")
	}
	return enc.Encode(j)
}

// statErrorJSON is what --json prints when there is no sample to print.
type statErrorJSON struct {
	Time    time.Time `json:"time"`
	Release string    `json:"release"`
	Error   string    `json:"error"`
}

func writeStatErrorJSON(w io.Writer, err error, indent bool) error {
	enc := json.NewEncoder(w)
	if indent {
		enc.SetIndent("", "  ")
	}
	return enc.Encode(statErrorJSON{Time: time.Now(), Release: check.Release(), Error: err.Error()})
}

// counterChanges are counters' changes between two samples, in the
// kernel's order. The current-session counters go down as well as up.
type counterChanges []counterChange

type counterChange struct {
	name  string
	delta int64
}

// statDeltas returns each counter's change since prev, or nil without
// prev. A counter prev lacks (none should: the kernel doesn't change)
// counts from zero.
func statDeltas(cur kernel.Stats, prev *statSample) counterChanges {
	if prev == nil {
		return nil
	}
	out := make(counterChanges, 0, len(cur))
	for _, st := range cur {
		old, _ := prev.stats.Get(st.Name)
		out = append(out, counterChange{st.Name, int64(st.Value - old)})
	}
	return out
}

// MarshalJSON writes {"Name": delta, ...}, in order.
func (cs counterChanges) MarshalJSON() ([]byte, error) {
	return check.OrderedObject(len(cs), func(i int) (string, string) {
		return cs[i].name, strconv.FormatInt(cs[i].delta, 10)
	})
}
