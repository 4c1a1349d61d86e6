#!/usr/bin/env bash
# Benchmark: build + teardown time of labs, labctl side by side with Mininet
# in the same run (the machine is shared and noisy: compare the ratio).
#
#   sudo scripts/bench-core.sh [RUNS]      (default 3 runs, median reported)
#
# Mininet is installed from Debian's packages when missing
# (apt-get install mininet bridge-utils) and run as
#   mn --switch lxbr --controller none --topo T --test none
# which builds the topology with Linux bridges and tears it down. Set
# NO_MININET=1 to measure labctl alone. single,1000 is not run on Mininet
# unless MININET_BIG=1 (it takes minutes there).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
TOPOS=${TOPOS:-"linear,100 single,100 tree,2,10 single,1000"}
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
command -v go >/dev/null || PATH=/usr/local/go/bin:$PATH

bin=$(mktemp -d)/labctl
go build -o "$bin" ./cmd/labctl
if [ "${NO_MININET:-0}" != 1 ] && ! command -v mn >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mininet bridge-utils >/dev/null 2>&1 ||
    echo "mininet could not be installed: labctl alone" >&2
fi

now() { echo "${EPOCHREALTIME/./}"; }           # microseconds
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
secs() { awk -v u="$1" 'BEGIN {printf "%.2f", u/1e6}'; }

printf '%-12s %10s %10s %10s %10s %9s %s\n' topology "labctl up" "down" "total" "mininet" "speedup" "procs/idle host"
for t in $TOPOS; do
  ups=(); downs=(); tots=(); mns=(); procs=0
  name="bench-$$"
  for ((i = 0; i < RUNS; i++)); do
    s=$(now)
    "$bin" up --name "$name" --topo "$t" --test none --backend auto >/dev/null 2>&1
    m=$(now); upt=$((m - s))
    if [ "$i" = 0 ]; then # processes kept alive inside the lab's namespaces (not timed)
      declare -A inos=()
      for ns in /run/netns/lab-"$name"-*; do inos["net:[$(stat -L -c %i "$ns")]"]=1; done
      procs=0
      for p in /proc/[0-9]*/ns/net; do
        l=$(readlink "$p" 2>/dev/null) || continue
        [ -n "${inos[$l]:-}" ] && procs=$((procs + 1))
      done
      unset inos
    fi
    m=$(now)
    "$bin" down "$name" >/dev/null
    e=$(now)
    ups+=($upt); downs+=($((e - m))); tots+=($((upt + e - m)))
    if command -v mn >/dev/null && [ "${NO_MININET:-0}" != 1 ] && { [ "$t" != single,1000 ] || [ "${MININET_BIG:-0}" = 1 ]; }; then
      s=$(now)
      (cd /tmp && timeout 600 mn --switch lxbr --controller none --topo "$t" --test none >/dev/null 2>&1) || true
      e=$(now)
      mns+=($((e - s)))
      mn -c >/dev/null 2>&1 || true
    fi
  done
  up=$(printf '%s\n' "${ups[@]}" | median); down=$(printf '%s\n' "${downs[@]}" | median)
  tot=$(printf '%s\n' "${tots[@]}" | median)
  if [ ${#mns[@]} -gt 0 ]; then
    mnt=$(printf '%s\n' "${mns[@]}" | median)
    printf '%-12s %9ss %9ss %9ss %9ss %8sx %d\n' "$t" "$(secs "$up")" "$(secs "$down")" "$(secs "$tot")" "$(secs "$mnt")" "$(awk -v a="$mnt" -v b="$tot" 'BEGIN{printf "%.1f", a/b}')" "$procs"
  else
    printf '%-12s %9ss %9ss %9ss %10s %9s %d\n' "$t" "$(secs "$up")" "$(secs "$down")" "$(secs "$tot")" "-" "-" "$procs"
  fi
done
