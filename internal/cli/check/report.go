package check

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/ktlsgo/ktls/internal/kernel"
)

// verdict decides whether ktls can offload anything on this kernel, and
// says so in one line.
func verdict(r *Report) (usable bool, line string) {
	const prefix = "kernel TLS: "
	if !r.ULP.Available {
		return false, prefix + "not usable: " + r.ulpProblem
	}
	var both, total int
	var missing []string
	for _, c := range r.Ciphers {
		if !c.CryptoTLS {
			continue // offloadable or not, ktls never gets to use it
		}
		total++
		if c.Both() {
			both++
		} else {
			missing = append(missing, c.Version+" "+c.Cipher)
		}
	}
	if both == 0 {
		// A TX-only pair is not enough: ktls offloads RX only after TX, and
		// a kernel that takes no RX key can't answer the peer's alerts and
		// key updates through the kernel.
		return false, prefix + "not usable: the kernel takes no cipher crypto/tls negotiates in both directions" + firstReason(r)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%susable (%d of %d cipher pairs both ways", prefix, both, total)
	if len(missing) > 0 {
		fmt.Fprintf(&b, ", not %s", strings.Join(missing, ", "))
	}
	var with, without []string
	for _, f := range []struct {
		short string
		f     Feature
	}{
		{"zerocopy sendfile", r.Features.TXZerocopyRO},
		{"RX no-pad", r.Features.RXExpectNoPad},
		{"rekey", r.Features.Rekey},
	} {
		if f.f.Supported {
			with = append(with, f.short)
		} else {
			without = append(without, f.short)
		}
	}
	if len(with) > 0 {
		b.WriteString("; with " + strings.Join(with, ", "))
	}
	if len(without) > 0 {
		b.WriteString("; without " + strings.Join(without, ", "))
	}
	b.WriteString(")")
	return true, b.String()
}

// firstReason is ": " and the reason the first crypto/tls pair fails, as
// an example of what the kernel says; the report has the others.
func firstReason(r *Report) string {
	for _, c := range r.Ciphers {
		if c.CryptoTLS && c.Reason != "" {
			return " (" + c.Version + " " + c.Cipher + ": " + c.Reason + ")"
		}
	}
	return ""
}

// WriteText writes the report for people: one line per item, in columns
// (item, result, detail), ending with the verdict.
func (r *Report) WriteText(w io.Writer) error {
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	row := func(item, result, detail string) {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", item, result, detail)
	}

	release := r.Release
	if release == "" {
		release = "unknown"
	}
	// The release is a trailing cell, so that its width doesn't widen the
	// result column.
	fmt.Fprintf(tw, "kernel\t%s\n", release)

	switch {
	case r.ULP.Available && r.ULP.Autoloaded:
		row("tls ULP", "yes", "loaded on demand: it was not in "+kernel.AvailableULPsFile+" before")
	case r.ULP.Available && r.ULP.Listed:
		row("tls ULP", "yes", "listed in "+kernel.AvailableULPsFile)
	case r.ULP.Available:
		row("tls ULP", "yes", "")
	default:
		row("tls ULP", "no", r.ULP.Reason)
	}

	for _, c := range r.Ciphers {
		detail := c.Reason
		if !c.Both() && c.Reason != "" && !strings.HasPrefix(c.Reason, "not tested") {
			detail = "needs Linux " + c.MinKernel + "+: " + c.Reason
		}
		if c.Note != "" {
			detail = joinNonEmpty("; ", c.Note, detail)
		}
		result := "-"
		if !strings.HasPrefix(c.Reason, "not tested") {
			result = fmt.Sprintf("TX %-3s RX %s", yesNo(c.TX), yesNo(c.RX))
		}
		row(c.Version+" "+c.Cipher, result, detail)
	}

	for _, f := range []Feature{r.Features.TXZerocopyRO, r.Features.RXExpectNoPad, r.Features.Rekey, r.Features.TXMaxPayloadLen} {
		result := yesNo(f.Supported)
		if strings.HasPrefix(f.Reason, "not tested") {
			result = "-"
		}
		detail := f.Purpose + " (Linux " + f.MinKernel + "+)"
		if f.Reason != "" {
			detail += ": " + f.Reason
		}
		row(f.Name, result, detail)
	}

	if r.TLSStat == nil {
		row("tls_stat", "-", r.TLSStatError)
	}
	for _, st := range r.TLSStat {
		row("tls_stat "+st.Name, strconv.FormatUint(st.Value, 10), "")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// tabwriter pads the cells before an empty last one.
	var out strings.Builder
	for line := range strings.Lines(buf.String()) {
		out.WriteString(strings.TrimRight(line, " \n") + "\n")
	}
	out.WriteString(r.Verdict + "\n")
	_, err := io.WriteString(w, out.String())
	return err
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func joinNonEmpty(sep string, parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, sep)
}
