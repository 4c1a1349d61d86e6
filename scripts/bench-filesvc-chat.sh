#!/bin/sh
# Benchmark the file server and the chat on real labs, one run, tables on
# stdout: filesvc `get` goodput next to a raw TCP stream on the same lab
# link (100mbit rate-limited, so the link is the bottleneck, and a link
# without netem, where the CPU is), and chat fan-out to 500 clients
# (broadcast latency p50/p99/max, paced and in a burst, deliveries/s), and
# a flooded room with and without 10 members that never read (latency of
# the live members side by side, when the dead ones were dropped).
# Bounded: about 40 s on 2 cores. Needs root (network namespaces).
# LABCTL_BENCH_CLIENTS=N changes the chat's client count.
set -eu
cd "$(dirname "$0")/.."
exec go test -run '^$' -bench '^Benchmark(FilesvcGetGoodputVsRawTCP|ChatFanOut500Clients|ChatDeadReaders)$' -benchtime 1x -count 1 "$@" ./tests
