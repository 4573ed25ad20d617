# shellcheck shell=bash disable=SC2154,SC2034  # e2e_name comes from the caller, watchdog_pid goes to it
# tests/compose/lib.sh — what the Docker end-to-end scripts (compose/e2e.sh,
# swarm/swarm.sh) share: logging, skip/fail, a millisecond clock, and a
# watchdog that stays inside ctest's TIMEOUT so the caller's teardown trap
# still runs. Set e2e_name before sourcing.

log() { printf '%s %s: %s\n' "$(date +%H:%M:%S.%3N)" "$e2e_name" "$*"; }
skip() {
  log "SKIP: $*"
  exit 77
}
die() {
  log "FAIL: $*" >&2
  exit 1
}
now_ms() { date +%s%3N; }

# start_watchdog SECONDS: SIGTERM this shell after SECONDS; sets
# watchdog_pid (kill it when done). Its output goes nowhere: a sleep holding
# ctest's pipe open would keep the test "running".
start_watchdog() {
  local main=$$
  (
    trap 'kill "$sleep_pid" 2>/dev/null; exit 0' TERM
    sleep "$1" &
    sleep_pid=$!
    wait "$sleep_pid"
    kill -TERM "$main"
  ) >/dev/null 2>&1 &
  watchdog_pid=$!
}
