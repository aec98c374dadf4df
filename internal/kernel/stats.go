package kernel

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// StatsFile is where the kernel publishes its TLS counters (Linux 5.3).
const StatsFile = "/proc/net/tls_stat"

// A Stat is one counter from /proc/net/tls_stat, such as TlsTxSw (sessions
// whose TX was installed in software) or TlsDecryptError.
type Stat struct {
	Name  string
	Value uint64
}

// Stats are the kernel's TLS counters, in the kernel's order.
type Stats []Stat

// Get returns the value of the named counter, and whether the kernel has
// it: newer kernels add counters (TlsRxNoPadViolation in 6.0, the rekey
// counters in 6.14).
func (s Stats) Get(name string) (uint64, bool) {
	for _, st := range s {
		if st.Name == name {
			return st.Value, true
		}
	}
	return 0, false
}

// ParseStats parses the contents of /proc/net/tls_stat: one
// "Name<whitespace>value" pair per line.
func ParseStats(data []byte) (Stats, error) {
	var stats Stats
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		if len(fields) != 2 {
			return nil, fmt.Errorf("kernel: malformed tls_stat line %q", sc.Text())
		}
		v, err := strconv.ParseUint(fields[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("kernel: malformed tls_stat line %q", sc.Text())
		}
		stats = append(stats, Stat{Name: fields[0], Value: v})
	}
	return stats, sc.Err()
}
