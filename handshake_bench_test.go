package ktls_test

import (
	"slices"
	"testing"
	"time"
)

// BenchmarkHandshakeInterleaved is BenchmarkHandshake for a machine that
// runs other work: each of b.N rounds runs a batch of handshakes through
// crypto/tls and a batch through ktls, in alternating order, and times
// each batch's CPU (both ends, the whole process). Batches next to each
// other see about the same load, so the ratio of their times drifts far
// less than two benchmarks run one after the other. It reports the
// median of the rounds' ratios (ktls/crypto-tls) and each side's median
// CPU per handshake.
func BenchmarkHandshakeInterleaved(b *testing.B) {
	const batch = 50
	loops := [2]func(int){handshakeLoop(b, false), handshakeLoop(b, true)}
	for _, l := range loops {
		l(batch) // warm up: the first ktls handshake probes the kernel
	}
	var ratios []float64
	var per [2][]float64
	b.ResetTimer()
	for i := range b.N {
		var t [2]time.Duration
		for k := range 2 {
			j := (i + k) % 2
			cpu0 := processCPU(b)
			loops[j](batch)
			t[j] = processCPU(b) - cpu0
			per[j] = append(per[j], float64(t[j].Nanoseconds())/batch)
		}
		ratios = append(ratios, float64(t[1])/float64(t[0]))
	}
	b.StopTimer()
	b.ReportMetric(median(ratios), "ktls/crypto-tls")
	b.ReportMetric(median(per[0]), "crypto-tls-cpu-ns/handshake")
	b.ReportMetric(median(per[1]), "ktls-cpu-ns/handshake")
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
