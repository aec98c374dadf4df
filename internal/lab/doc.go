// Package lab is the kernel lab's host side: it fetches Debian kernels
// (Cache), installs and starts QEMU with the host's root filesystem shared
// read-only over 9p, and runs a job in the guest (Runner): a program, or
// test binaries built on the host (BuildTests, RunTests), whose results
// come back over the job protocol of lab/job.
//
// It knows nothing of ktls: cmd/ktls-lab is its command, lab/init and
// lab/guest are what runs inside, and the helpers that tests import live
// beside it as the test rig (kerneltest, labnet, testcert, tlstest,
// hostiletest). internal/lab/archtest enforces that separation.
package lab
