package kernel

// NewFeature returns a feature with the given probe, so tests can make a
// probe fail the way a busy process's would.
func NewFeature(name string, probe func() error) *Feature {
	return &Feature{Name: name, MinKernel: "4.13", probe: probe}
}

// Unsupported is the error a probe returns when the kernel says no.
func (f *Feature) Unsupported(reason string) error { return f.unsupported(reason) }

// ParseRecordType is parseRecordType, for the fuzz target.
var ParseRecordType = parseRecordType
