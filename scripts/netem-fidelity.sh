#!/bin/bash
# Prints the kernel backend's fidelity table: for each impairment parameter,
# configured vs predicted (the documented semantics) vs measured inside the
# QEMU guest of scripts/vm-netem-test.sh, with the tolerance and verdict.
#
#   scripts/netem-fidelity.sh [go test flags for the guest, e.g. -test.run Loss]
#
# The guest run's own output goes to stderr; the table to stdout. Exits
# non-zero when the guest's tests fail.
set -uo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
LOG=$(mktemp) && trap 'rm -f "$LOG"' EXIT
VM_LOG=$LOG "$REPO/scripts/vm-netem-test.sh" "$@" >&2
rc=$?
echo
printf '%-50s %-28s %12s %12s %11s  %s\n' PARAMETER CONFIGURED PREDICTED MEASURED TOLERANCE VERDICT
grep '^FIDELITY|' "$LOG" | while IFS='|' read -r _ param cfg pred meas tol verdict; do
  printf '%-50s %-28s %12s %12s %11s  %s\n' "$param" "$cfg" "$pred" "$meas" "$tol" "$verdict"
done
kver=$(sed -n 's/.*kernel \([^,]*\),.*/\1/p' "$LOG" | head -1)
echo "(Debian kernel ${kver:-?} under QEMU ${ACCEL:-tcg}; RTT/one-way from UDP probes, rate from TCP goodput;"
echo " slack = the guest's timer overshoot at the time, added to delay tolerances: see tests/kernelnetem)"
exit $rc
