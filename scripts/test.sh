#!/usr/bin/env bash
# The project's test command: sudo ./scripts/test.sh
#
# Installs what the tests need on a fresh Debian or Ubuntu machine (Go must
# be there already), then runs, in order: formatting, vet and staticcheck;
# unit and root integration tests (around them, a lab of the machine's that
# must stay up and working: the tests touch only labs they make, and
# `labctl clean` is tested in a private machine); every fuzz target
# briefly; and the kernel tc-netem tests inside a QEMU VM booting Debian's
# stock kernel.
#
#   FUZZTIME=50000x  inputs per fuzz target (0 skips fuzzing); a count, not a
#                    duration: Go 1.26's fuzz coordinator can fail a target
#                    with "context deadline exceeded" when a duration runs
#                    out (golang/go#75804, fixed in 1.27). -timeout bounds it.
#   SKIP_VM=1     skip the QEMU VM test (it needs about a minute cold)
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n=== %s\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
  echo "scripts/test.sh: run it as root (sudo): the integration tests build network namespaces" >&2
  exit 1
fi

# sudo's secure_path usually hides Go: look where installers put it.
if ! command -v go >/dev/null; then
  for d in /usr/local/go/bin /usr/lib/go/bin /snap/bin "${SUDO_USER:+/home/$SUDO_USER/go/bin}" "${SUDO_USER:+/home/$SUDO_USER/sdk/go/bin}"; do
    if [ -n "$d" ] && [ -x "$d/go" ]; then PATH="$d:$PATH"; break; fi
  done
fi
command -v go >/dev/null || { echo "scripts/test.sh: Go is not installed (https://go.dev/doc/install)" >&2; exit 1; }
export PATH="$(go env GOPATH)/bin:$PATH"

# Debian packages the tests use: iproute2 (tests cross-check with `ip`),
# tshark (reads captures back), chromium (the web page's tests), iperf3 is
# not needed. The VM test installs its own (qemu, busybox, the kernel
# package).
need=()
command -v ip >/dev/null || need+=(iproute2)
command -v tshark >/dev/null || need+=(tshark)
# labctl grade's generated class: C and Java submissions are compiled.
command -v gcc >/dev/null || need+=(gcc libc6-dev)
command -v javac >/dev/null || need+=(default-jdk-headless)
command -v python3 >/dev/null || need+=(python3)
command -v Xvfb >/dev/null || need+=(xvfb)            # display: true (GUI programs)
/usr/bin/python3 -c "import tkinter" 2>/dev/null || need+=(python3-tk)   # tests/gui_test.go: a tkinter client
# The console's tests: ping inside hosts, tmux for `xterm` without DISPLAY.
command -v ping >/dev/null || need+=(iputils-ping)
command -v tmux >/dev/null || need+=(tmux)
command -v chromium >/dev/null || need+=(chromium)   # tests/web_test.go drives the page in it
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

say "go $(go env GOVERSION): build, gofmt, vet, staticcheck"
go build ./...
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then echo "gofmt would change: $unformatted" >&2; exit 1; fi
go vet ./...
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

say "unit and integration tests (root)"
# A lab that is up before the tests must be up and working after them: the
# tests touch only labs they make (see scripts/sentinel.sh).
source scripts/sentinel.sh
sentinel_bin=$(mktemp -d /tmp/labctl-sentinel.XXXXXX)
trap 'sentinel_down "$sentinel_bin/labctl"; rm -rf "$sentinel_bin"' EXIT
go build -o "$sentinel_bin/labctl" ./cmd/labctl
sentinel_up "$sentinel_bin/labctl"
echo "sentinel lab $sentinel is up"
# One package at a time: the root tests of netem and tests both work the
# kernel's namespace machinery hard, and side by side they time each other out.
go test -p 1 -count=1 -timeout 20m ./...
sentinel_check "$sentinel_bin/labctl"
sentinel_down "$sentinel_bin/labctl"

FUZZTIME=${FUZZTIME:-50000x}
if [ "$FUZZTIME" != 0 ]; then
  say "fuzz targets, $FUZZTIME each"
  for dir in $(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -r -n1 dirname | sort -u); do
    for f in $(go test -list '^Fuzz' "$dir" | grep '^Fuzz' || true); do
      echo "--- $dir $f"
      go test -run '^$' -fuzz "^$f\$" -fuzztime "$FUZZTIME" -timeout 3m "$dir" >/tmp/labctl-fuzz.log 2>&1 || { cat /tmp/labctl-fuzz.log; exit 1; }
    done
  done
fi

if [ "${SKIP_VM:-0}" != 1 ] && [ -x scripts/vm-netem-test.sh ]; then
  say "kernel tc-netem tests inside a QEMU VM (Debian's stock kernel)"
  scripts/vm-netem-test.sh
fi

say "all tests passed"
