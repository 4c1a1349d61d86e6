// Package kernel is the kernel impairment backend: a veth pair per link
// and, on the egress of each impaired end, one root netem qdisc made
// through rtnetlink (never tc), carrying everything the Spec asks (delay,
// jitter with its distribution table, loss or Gilbert–Elliott loss,
// duplication, corruption, reordering, rate, queue limit). It counts what
// it does from the qdisc's and the interfaces' statistics (netem.Counter,
// drops not split by cause).
//
// It needs a kernel with sch_netem (Available probes for it); this
// project's machines have none, so its root tests run inside the QEMU VM of
// scripts/vm-netem-test.sh (tests/kernelnetem).
package kernel
