package ktls

import "testing"

// SetResumedMasterHook makes f see, and maybe change, every master secret
// read from a resumed TLS 1.2 session, until the test ends.
func SetResumedMasterHook(t testing.TB, f func(master []byte)) {
	testHookResumedMaster = f
	t.Cleanup(func() { testHookResumedMaster = nil })
}

// SetAfterTXHook makes f run in every handoff once the kernel encrypts,
// before the receive direction is decided, until the test ends.
func SetAfterTXHook(t testing.TB, f func(*Conn)) {
	testHookAfterTX = f
	t.Cleanup(func() { testHookAfterTX = nil })
}
