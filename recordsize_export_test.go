package ktls

import "github.com/ktlsgo/ktls/internal/keyschedule"

// SmallRecordPayload is the cap ktls puts on the kernel's first records
// under a version and cipher suite.
func SmallRecordPayload(version, suite uint16) int {
	s, ok := keyschedule.Lookup(version, suite)
	if !ok {
		panic("no such suite")
	}
	return smallRecordPayload(s)
}
