#!/bin/sh
# Benchmark the userspace link engine side by side with a plain veth: TCP
# throughput of one flow (clean and 1% loss), engine CPU per Gbit/s, and
# delay accuracy at 1, 10 and 100 ms. Needs root; installs iperf3 if absent.
set -eu
cd "$(dirname "$0")/.."
if ! command -v iperf3 >/dev/null 2>&1; then
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iperf3
fi
exec go test -run '^$' -bench '^BenchmarkUserspace$' -benchtime 1x -count 1 "$@" ./netem/engine
