#!/usr/bin/env bash
# labctl grade's throughput: N copies of a correct Python client of the xy
# lab graded with --jobs 2 and with --jobs 1, side by side in one run:
#   sudo scripts/bench-grade.sh            (N=40)
#
# Prints each wall time and the ratio jobs1/jobs2 (the speedup from two at
# a time). Each submission is one lab (deploy, 3 programs, checks, down),
# confined to its own cgroup. On a 2-core machine shared with other work
# about 2x: most of a submission's time is its lab waiting (the stdin
# delays, readiness), which overlaps; set-up and teardown (which take the
# kernel's RTNL lock) run one at a time.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-40}
tmp=$(mktemp -d /tmp/labctl-bench-grade.XXXXXX)
chmod 755 "$tmp"
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/labctl" ./cmd/labctl
mkdir -p "$tmp/class"
for i in $(seq -w 1 "$N"); do
  mkdir -p "$tmp/class/s$i"
  cat >"$tmp/class/s$i/client.py" <<'PY'
import socket, sys
s = socket.create_connection((sys.argv[1], 12000))
f = s.makefile("rw")
hello = f.readline().strip()
print(hello)
name = input()
msg = "Client %s: %s" % (hello.split()[1], name)
f.write(msg + "\n"); f.flush()
print(msg)
print(f.readline().strip())
PY
done
run() { # jobs
  local name="bench-$1-$RANDOM" t0 t1
  t0=$(date +%s.%N)
  "$tmp/labctl" grade xy --submissions "$tmp/class" --name "$name" --out "$tmp/out-$1" \
    --jobs "$1" --program 'x=python3 client.py ${server}' >"$tmp/log-$1" 2>&1 || { cat "$tmp/log-$1"; exit 1; }
  t1=$(date +%s.%N)
  grep -o 'graded: .*points' "$tmp/log-$1" >&2
  grep -E '^ +\[[0-9]+/[0-9]+\] +[^ ]+ +(fail|timeout|crashed|out-of-memory|not-gradable) ' "$tmp/log-$1" >&2 || true
  awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }'
}
w2=$(run 2)
w1=$(run 1)
awk -v n="$N" -v w1="$w1" -v w2="$w2" 'BEGIN {
  printf "%-8s %10s %12s\n", "jobs", "wall", "per-sub"
  printf "%-8s %9.1fs %11.2fs\n", 1, w1, w1 / n
  printf "%-8s %9.1fs %11.2fs\n", 2, w2, w2 / n
  printf "speedup (jobs 1 / jobs 2): %.2fx\n", w1 / w2
}'
