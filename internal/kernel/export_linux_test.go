package kernel

// SetSetsockopt replaces the raw setsockopt(2) SetCryptoInfo calls, until
// the returned function restores it.
func SetSetsockopt(f func(fd, level, opt int, b []byte) error) (restore func()) {
	old := setsockopt
	setsockopt = f
	return func() { setsockopt = old }
}
