#!/bin/sh
# Benchmark `labctl web` on linear,100 (199 plain veth links: netlink
# counters) and on linear,30 (59 links through the userspace engine: its
# counters) with traffic on every link: the web process's CPU and the bytes
# per second it pushes per page, with 0, 1 and 2 pages open, side by side
# in one run. Bounded: about 2.5 minutes. Needs root.
set -eu
cd "$(dirname "$0")/.."
exec go test -run '^$' -bench '^BenchmarkWeb(Linear100|Linear30Engine)$' -benchtime 1x -count 1 "$@" ./tests
