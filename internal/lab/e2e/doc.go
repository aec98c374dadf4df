// Package e2e holds ktls's end-to-end tests; it has no code of its own.
// They drive the library through its public API only, from outside, as
// a user's program does, against real peers and real networks:
//
//   - interop: OpenSSL's s_server and s_client, with KeyUpdates both
//     ways (interop_test.go), and the interop matrix
//     of OpenSSL, GnuTLS, nginx and curl against every version and cipher
//     the kernel takes (interop_matrix_test.go);
//   - load: ktls serve in this process under 2,000 connections at once,
//     with its descriptors and goroutines back where they were after
//     shutdown (load_test.go);
//   - across hosts: two network namespaces joined by a veth pair
//     (netns_linux_test.go);
//   - hostile peers: a raw peer that completes a real handshake and then
//     breaks the record layer on purpose, one way per case
//     (hostile_test.go).
//
// Most of them need kernel TLS and the peer programs .ci/run installs: on
// a host without them they skip, and in the kernel lab, where everything
// is there, they run (go run ./cmd/ktls-lab test ./internal/lab/e2e). The
// tests of the API itself, which need the package's private hooks or
// none of this, stay with the root package.
package e2e
