#!/usr/bin/env bash
# Stop-and-wait goodput vs loss over a lab, side by side with the analytical
# bound: sudo scripts/bench-stopwait.sh
#
# A lab of two hosts on a switch; the client's link has DELAY each way and
# loss p in both directions (set live per level with `labctl netem set`).
# For each p the UDP stop-and-wait client (labctl app stopwait-client) sends
# N messages of SIZE bytes with retransmission timer TIMEOUT; the table
# gives the measured rate and goodput beside the bound.
#
# The bound. A try succeeds when the frame and its ACK both cross the lossy
# link: q = (1-p)^2. Tries per message are geometric: E[tries] = 1/q. Each
# failed try costs the timer, TIMEOUT (the client retransmits when it
# fires); the successful one costs one round trip, RTT = 2 x DELAY. So
#
#   E[T] = RTT + (1/q - 1) x TIMEOUT     per message
#   rate = 1 / E[T],   goodput = SIZE x 8 / E[T]
#
# It is the best a stop-and-wait sender with this timer can expect on
# average (one frame in flight; a loss always waits out the timer); over N
# messages the measured tries scatter around 1/q by a few per cent.
#
# Measured times include the engine's own latency, process start-up and the
# TCHAU/BYE exchange (amortized over N), so they sit a little below the
# bound; the "tries" columns compare the retransmissions alone, and the last
# columns put the measured time per message at 0 % loss in place of RTT
# (rtt0: what one clean exchange really costs here), which leaves only the
# loss process to compare; rate/pred is the measured rate over the rate
# that E[T] with rtt0 predicts.
#
#   DELAY=10ms TIMEOUT=100ms N=100 SIZE=100 LOSSES="0 5 10 20 30"
set -euo pipefail
cd "$(dirname "$0")/.."

DELAY=${DELAY:-10ms}
TIMEOUT=${TIMEOUT:-100ms}
N=${N:-100}
SIZE=${SIZE:-100}
LOSSES=${LOSSES:-0 5 10 20 30}

if [ "$(id -u)" != 0 ]; then
	echo "bench-stopwait.sh: run it as root (sudo): it builds a lab" >&2
	exit 1
fi
ms() { # 10ms, 0.1s, 1s -> milliseconds
	case $1 in
	*ms) echo "${1%ms}" ;;
	*s) awk -v s="${1%s}" 'BEGIN { print s * 1000 }' ;;
	*) echo "bench-stopwait.sh: durations are like 10ms or 1s, not $1" >&2; exit 2 ;;
	esac
}
delay_ms=$(ms "$DELAY")
timeout_ms=$(ms "$TIMEOUT")

tmp=$(mktemp -d)
chmod 755 "$tmp"
lab=swbench-$$
cleanup() {
	"$tmp/labctl" down "$lab" >/dev/null 2>&1 || true
	rm -rf "$tmp"
}
trap cleanup EXIT
go build -o "$tmp/labctl" ./cmd/labctl
labctl() { "$tmp/labctl" "$@"; }

cat >"$tmp/lab.yaml" <<EOF
name: $lab
hosts:
  server:
    programs:
      - name: udp
        command: labctl app stopwait-server --udp --port 9000
        service: true
        ready: {udp: 9000, timeout: 10s}
  client: {}
switches: [s1]
links:
  - endpoints: [{node: server, ip: 10.77.0.1/24}, s1]
  - endpoints: [{node: client, ip: 10.77.0.2/24}, s1]
    netem: {delay: $DELAY}
EOF
labctl up -f "$tmp/lab.yaml" >/dev/null

# N messages of SIZE bytes, one a line, then TCHAU.
awk -v n="$N" -v size="$SIZE" 'BEGIN {
	pad = ""; for (i = 0; i < size; i++) pad = pad "x"
	for (i = 0; i < n; i++) { s = sprintf("m%05d-%s", i, pad); print substr(s, 1, size) }
	print "TCHAU"
}' >"$tmp/msgs"

echo "stop-and-wait over UDP: delay $DELAY each way (RTT $((2 * delay_ms)) ms), timer $TIMEOUT, $N messages of $SIZE bytes, loss both ways"
printf '%-5s %-6s %-9s %-9s %-8s %-10s %-7s %-7s %-12s %-10s %-9s %-5s\n' \
	loss q tries/msg "bound 1/q" "ms/msg" "bound E[T]" "msg/s" "bound" "goodput kb/s" "bound kb/s" "E[T] rtt0" "rate/pred"
rtt0=$((2 * delay_ms))
for p in $LOSSES; do
	labctl netem set "$lab" client-s1 --delay "$DELAY" --loss "$p%" >/dev/null
	start=$(date +%s%N)
	if ! timeout 600 "$tmp/labctl" exec --lab "$lab" client -- "$tmp/labctl" app stopwait-client --udp \
		--server 10.77.0.1:9000 --timeout "$TIMEOUT" --tries 1000 <"$tmp/msgs" >"$tmp/out" 2>"$tmp/err"; then
		echo "loss $p%: the client failed:" >&2
		tail -5 "$tmp/err" >&2
		exit 1
	fi
	end=$(date +%s%N)
	got=$(grep -c '^delivered ' "$tmp/out" || true)
	if [ "$got" != "$N" ]; then
		echo "loss $p%: $got of $N messages delivered" >&2
		exit 1
	fi
	tries=$(sed -n 's/^delivered .*(\([0-9]*\) tr[a-z]*)$/\1/p' "$tmp/out" | awk '{ s += $1 } END { print s }')
	if [ "$p" = 0 ]; then
		rtt0=$(awk -v ns=$((end - start)) -v n="$N" 'BEGIN { print ns / 1e6 / n }')
	fi
	awk -v p="$p" -v n="$N" -v size="$SIZE" -v ns=$((end - start)) -v tries="$tries" \
		-v rtt=$((2 * delay_ms)) -v rtt0="$rtt0" -v to="$timeout_ms" 'BEGIN {
		q = (1 - p / 100) ^ 2
		et = rtt + (1 / q - 1) * to          # ms per message, the bound
		et0 = rtt0 + (1 / q - 1) * to        # the same with the measured clean exchange
		t = ns / 1e6 / n                      # ms per message, measured
		printf "%-5s %-6.4f %-9.3f %-9.3f %-8.1f %-10.1f %-7.1f %-7.1f %-12.1f %-10.1f %-9.1f %-5.2f\n",
			p "%", q, tries / n, 1 / q, t, et, 1000 / t, 1000 / et,
			size * 8 / t, size * 8 / et, et0, et0 / t
	}'
done
