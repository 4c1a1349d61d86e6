#!/bin/sh
# Benchmark `labctl web` on linear,100 with traffic on every link: the web
# process's CPU and the bytes per second it pushes per page, with 0, 1 and
# 2 pages open, side by side in one run. Bounded: about 80 s. Needs root.
set -eu
cd "$(dirname "$0")/.."
exec go test -run '^$' -bench '^BenchmarkWebLinear100$' -benchtime 1x -count 1 "$@" ./tests
