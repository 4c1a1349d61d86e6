# Sourced by scripts/test.sh: a lab of the machine's, brought up before the
# tests and checked after them. The tests must never touch labs they did
# not make (`labctl clean` is tested in a private machine), so this lab has
# to be still up, and still forwarding, when they end.
#
#   sentinel_up BIN      bring it up under a unique name (sets $sentinel)
#   sentinel_check BIN   fail unless it is still up and h1 reaches h2
#   sentinel_down BIN    take it down (safe to call twice, or if never up)

sentinel=""

sentinel_up() {
  sentinel="sentinel-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
  "$1" up --name "$sentinel" --topo minimal --test none >/dev/null || {
    echo "sentinel lab $sentinel: labctl up failed" >&2
    return 1
  }
}

sentinel_check() {
  if ! "$1" inspect "$sentinel" >/dev/null; then
    echo "the tests took down lab $sentinel, which they did not make" >&2
    return 1
  fi
  if ! "$1" ping "$sentinel" h1 h2 -c 3 -W 2s; then
    echo "the tests broke lab $sentinel, which they did not make: h1 no longer reaches h2" >&2
    return 1
  fi
}

sentinel_down() {
  [ -n "$sentinel" ] || return 0
  "$1" down "$sentinel" >/dev/null 2>&1 || true
}
