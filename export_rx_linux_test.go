package ktls

// SetRXSmallReadBuf sets the size of the buffer a read smaller than a
// record goes through (0: one record's plaintext; negative: none, for
// benchmarks only), and returns what restores it.
func SetRXSmallReadBuf(n int) (restore func()) {
	old := rxSmallReadBuf.Swap(int64(n))
	return func() { rxSmallReadBuf.Store(old) }
}
