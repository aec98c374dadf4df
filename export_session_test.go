package ktls

import "testing"

// SetResumedMasterHook makes f see, and maybe change, every master secret
// read from a resumed TLS 1.2 session, until the test ends.
func SetResumedMasterHook(t testing.TB, f func(master []byte)) {
	testHookResumedMaster = f
	t.Cleanup(func() { testHookResumedMaster = nil })
}
