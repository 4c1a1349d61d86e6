#!/bin/bash
# Runs the kernel backend's integration tests (tests/kernelnetem) as root
# inside a QEMU guest that boots Debian's stock cloud kernel, which has
# sch_netem (this project's machines do not). Returns the tests' pass/fail.
#
#   scripts/vm-netem-test.sh [go test flags for the guest, e.g. -test.run Loss]
#
# Installs qemu-system-x86 and busybox-static when missing (apt-get update
# first), downloads linux-image-cloud-amd64's .deb and only extracts it.
# The kernel and the base initramfs are cached in $VM_CACHE (default
# .cache/vm in the repo, gitignored); each run builds the static test binary
# and appends it as a second initramfs archive. Warm: about 20-30 s.
# Environment: VM_CACHE, ACCEL (tcg; this host's KVM hangs a stock kernel),
# MEM (512M), VM_SMP (2: under TCG one vCPU is too slow for the Go runtime
# to keep up with 1000 probes/s plus their echoes),
# VM_TIMEOUT (seconds, 240), VM_LOG (console log path), VM_APPEND
# (extra kernel command line).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${VM_CACHE:-$REPO/.cache/vm}
ACCEL=${ACCEL:-tcg}
MEM=${MEM:-512M}
VM_TIMEOUT=${VM_TIMEOUT:-240}
MODS="sch_netem veth bridge"
export DEBIAN_FRONTEND=noninteractive
us() { echo "${EPOCHREALTIME/./}"; }
T0=$(us)
lap() { local d=$(( $(us) - T0 )); printf '== %d.%02ds %s\n' $((d / 1000000)) $((d / 10000 % 100)) "$*"; }

[ "$(id -u)" = 0 ] || { echo "vm-netem-test: run as root (apt-get, and the guest's tests need it)" >&2; exit 2; }

# 1. Host packages, only when missing.
need=
command -v qemu-system-x86_64 >/dev/null || need="$need qemu-system-x86"
[ -x /bin/busybox ] && /bin/busybox --list 2>/dev/null | grep -x depmod >/dev/null || need="$need busybox-static"
if [ -n "$need" ]; then
  echo "vm-netem-test: installing$need"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $need >/dev/null
fi
mkdir -p "$CACHE"

# 2. The kernel: extracted from its .deb, never installed.
KPKG=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}' || true)
if [ -z "$KPKG" ]; then apt-get update -qq; KPKG=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/{print $2; exit}'); fi
KVER=${KPKG#linux-image-}
K=$CACHE/k-$KVER
if [ ! -f "$K/boot/vmlinuz-$KVER" ]; then
  rm -rf "$K" "$CACHE"/dl && mkdir -p "$CACHE/dl"
  (cd "$CACHE/dl" && apt-get download "$KPKG" >/dev/null 2>&1 || { apt-get update -qq && apt-get download "$KPKG"; })
  dpkg-deb -x "$CACHE"/dl/"$KPKG"_*.deb "$K.tmp" && mv "$K.tmp" "$K" && rm -rf "$CACHE/dl"
fi
M=lib/modules/$KVER
[ -f "$K/$M/modules.dep" ] || busybox depmod -b "$K" "$KVER"   # the .deb ships no modules.dep
lap "kernel ready ($KPKG)"

# 3. Base initramfs (busybox, modules, netem distribution tables, /init),
#    cached by kernel version and init script.
KEY=$(cat "$REPO/scripts/vm/init.sh" "$0" | sha256sum | cut -c1-12)
BASE=$CACHE/base-$KVER-$KEY.cpio.gz
if [ ! -f "$BASE" ]; then
  R=$(mktemp -d) && trap 'rm -rf "$R"' EXIT
  mkdir -p "$R"/{bin,sbin,proc,sys,dev,run,tmp,usr/lib/tc}
  cp /bin/busybox "$R/bin/" && ln -s ../bin/busybox "$R/sbin/modprobe"   # the kernel autoloads through /sbin/modprobe
  for a in $(/bin/busybox --list); do [ -e "$R/bin/$a" ] || ln -s busybox "$R/bin/$a"; done
  for m in $MODS; do grep -E "/$m\.ko(\.[a-z]+)?:" "$K/$M/modules.dep" | tr -d :; done | tr ' ' '\n' | sort -u |
    while read -r f; do
      [ -n "$f" ] || continue
      install -D -m644 "$K/$M/$f" "$R/$M/$f"
      case $f in *.xz) xz -d "$R/$M/$f";; *.zst) zstd -q -d --rm "$R/$M/$f";; esac
    done
  busybox depmod -b "$R" "$KVER"
  for d in /usr/lib/x86_64-linux-gnu/tc /usr/lib/tc /usr/lib64/tc; do   # jitter tables, if iproute2 is here
    ls "$d"/*.dist >/dev/null 2>&1 && { cp "$d"/*.dist "$R/usr/lib/tc/"; break; }
  done
  echo "$MODS" > "$R/modules"
  install -m755 "$REPO/scripts/vm/init.sh" "$R/init"
  (cd "$R" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) > "$BASE.tmp" && mv "$BASE.tmp" "$BASE"
  rm -rf "$R"; trap - EXIT
  # Keep one base archive and one kernel: older ones are for other versions.
  find "$CACHE" -maxdepth 1 -name 'base-*.cpio.gz' ! -name "${BASE##*/}" -delete
  find "$CACHE" -maxdepth 1 -name 'k-*' ! -name "${K##*/}" -exec rm -rf {} +
fi
lap "base initramfs ready ($(du -h "$BASE" | cut -f1))"

# 4. The test binary (static) and its arguments, as a second archive.
W=$(mktemp -d) && trap 'rm -rf "$W"' EXIT
(cd "$REPO" && CGO_ENABLED=0 go test -c -o "$W/root/kernelnetem.test" ./tests/kernelnetem &&
  CGO_ENABLED=0 go build -o "$W/root/labctl" ./cmd/labctl)   # for the end-to-end CLI test
printf '%s\n' "$*" > "$W/root/args"
(cd "$W/root" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) > "$W/tests.cpio.gz"
cat "$BASE" "$W/tests.cpio.gz" > "$W/initrd.gz"
lap "test binary and labctl built"

# 5. Boot. No NIC; stdin closed; bounded by timeout. The TSC clocksource
#    (instead of the emulated HPET) makes netem's timers under TCG about
#    1 ms tighter.
LOG=${VM_LOG:-$W/console.log}
set +e
timeout --kill-after=10 "$VM_TIMEOUT" qemu-system-x86_64 -accel "$ACCEL" -m "$MEM" -smp "${VM_SMP:-2}" -nographic -nic none -no-reboot \
  -kernel "$K/boot/vmlinuz-$KVER" -initrd "$W/initrd.gz" \
  -append "console=ttyS0 quiet panic=-1 loglevel=3 tsc=reliable clocksource=tsc ${VM_APPEND:-}" </dev/null 2>&1 | tr -d '\r' | tee "$LOG"
qrc=${PIPESTATUS[0]}
set -e
lap "guest exited (qemu rc $qrc, accel $ACCEL)"
res=$(sed -n 's/^GUEST-RESULT: \([0-9]*\).*/\1/p' "$LOG" | tail -1)
if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then echo "vm-netem-test: FAIL: the guest ran past ${VM_TIMEOUT}s" >&2; exit 1; fi
if [ "$res" = 0 ]; then echo "vm-netem-test: PASS"; exit 0; fi
echo "vm-netem-test: FAIL (guest result '${res:-none}')" >&2
exit 1
