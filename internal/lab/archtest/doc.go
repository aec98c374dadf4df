// Package archtest holds the tests that keep docs/ARCHITECTURE.md true: the
// dependency rules between the library core, the command's internals and
// the lab, and the shape of the root package's files.
//
// It has no code of its own, only tests, and those tests read the source
// tree through the go tool (go list, export data). So they run on the host
// only: cmd/ktls-lab's suite leaves this package out of the guest run, as it
// does internal/lab, and a host without the go tool fails them rather than
// skipping, since a rule that is never checked is no rule.
package archtest
