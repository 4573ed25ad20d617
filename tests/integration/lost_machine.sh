#!/usr/bin/env bash
# tests/integration/lost_machine.sh — a machine that vanishes closes nothing.
# Three replicas, each on its own "machine" (a network namespace wired to a
# bridge in a namespace of its own), proving a cluster secret:
#   1. they elect a primary and commit a write;
#   2. the primary's machine loses its link, then its replica is killed:
#      no FIN and no RST reaches anyone, as after a power cut;
#   3. the two others elect a new primary, which commits a write;
#   4. both stop counting the lost replica as connected within 60 s (the
#      kernel alone keeps such connections open for 11 to 15 minutes: the
#      new primary's carry unanswered Appends, the other backup's are idle);
#   5. the link comes back and the replica restarts on its data dir: it
#      follows the new primary and holds every committed entry.
# Exits 77 (skipped) without root or network namespaces. Every namespace
# and process it makes, it removes (trap), by the names and pids it made.
#
#   lost_machine.sh REPLICA REPLCTL
set -uo pipefail

replica=$1
replctl=$2
prefix=rpllost-$$
net=${LOST_MACHINE_SUBNET:-10.241.$(($$ % 200 + 20))}
work=$(mktemp -d "${TMPDIR:-/tmp}/it-lost.XXXXXX")
declare -A pid=()

skip() {
  echo "SKIP: $*"
  rm -rf "$work"
  exit 77
}
[ "$(id -u)" -eq 0 ] || skip "needs root (network namespaces)"
command -v ip >/dev/null || skip "no ip command"
ip netns add "$prefix-probe" 2>/dev/null || skip "cannot create network namespaces"
ip netns del "$prefix-probe"

cleanup() {
  for n in "${!pid[@]}"; do
    [ -n "${pid[$n]}" ] && kill -9 "${pid[$n]}" 2>/dev/null
  done
  wait 2>/dev/null
  for n in br m1 m2 m3; do ip netns del "$prefix-$n" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  for n in m1 m2 m3; do
    [ -f "$work/$n.log" ] && { echo "--- $n" >&2; tail -n 25 "$work/$n.log" >&2; }
  done
  exit 1
}
log() { echo "$(date +%T.%3N) $*"; }

ip_of() { echo "$net.$((10 + ${1#m}))"; }
addr_of() { echo "$(ip_of "$1"):5000"; }
on() { # machine, command...
  local m=$1
  shift
  ip netns exec "$prefix-$m" "$@"
}
ctl() { # machine to ask from and about, replctl arguments...
  local m=$1
  shift
  on "$m" "$replctl" -a "$(addr_of "$m")" -t 2000 --cluster-secret-file "$work/secret" "$@"
}

# --- the machines ----------------------------------------------------------------
ip netns add "$prefix-br"
ip -n "$prefix-br" link add br0 type bridge
ip -n "$prefix-br" link set br0 up
for m in m1 m2 m3; do
  ip netns add "$prefix-$m"
  ip -n "$prefix-br" link add "v-$m" type veth peer name eth0 netns "$prefix-$m"
  ip -n "$prefix-br" link set "v-$m" master br0 up
  ip -n "$prefix-$m" addr add "$(ip_of "$m")/24" dev eth0
  ip -n "$prefix-$m" link set eth0 up
  ip -n "$prefix-$m" link set lo up
done
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/secret"
chmod 600 "$work/secret"
peers="$(addr_of m1),$(addr_of m2),$(addr_of m3)"

start() {
  local m=$1
  ip netns exec "$prefix-$m" "$replica" --id "lost-$m" --data-dir "$work/$m" --listen "$(addr_of "$m")" \
    --advertise "$(addr_of "$m")" --peers "$peers" --cluster-secret-file "$work/secret" \
    >>"$work/$m.log" 2>&1 &
  pid[$m]=$!
}
# status_of MACHINE: "role primary commit_index" of that replica's own view
# ("-" for no primary known)
status_of() {
  ctl "$1" status 2>/dev/null | awk 'NR == 1 {
    for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    print v["role"], (v["primary"] == "" ? "-" : v["primary"]), v["commit_index"] }'
}
# connected MACHINE ID: 1 or 0 as that replica sees ID, nothing if not listed
connected() { ctl "$1" status 2>/dev/null | sed -n "s/^peer id=$2 .* connected=\([01]\) .*/\1/p"; }
machine_of() { echo "${1#lost-}"; }

for m in m1 m2 m3; do start "$m"; done

# --- 1. a primary, a write ------------------------------------------------------------
primary=
for _ in $(seq 300); do
  read -r role p _ < <(status_of m1) || true
  if [ -n "${p:-}" ] && [ "$p" != - ] && [ "${role:-}" != candidate ]; then
    primary=$p
    break
  fi
  sleep 0.1
done
[ -n "$primary" ] || fail "no primary elected in 30 s"
lost=$(machine_of "$primary")
ctl m1 put -i lost-1 "before the loss" >/dev/null || fail "the first write was not acknowledged"
log "1. primary $primary (on $lost), a write committed"

# --- 2. its machine vanishes -----------------------------------------------------------
survivors=()
for m in m1 m2 m3; do [ "$m" != "$lost" ] && survivors+=("$m"); done
t0=$(date +%s%3N)
ip -n "$prefix-$lost" link set eth0 down
{
  kill -9 "${pid[$lost]}"
  wait "${pid[$lost]}"
} 2>/dev/null
pid[$lost]=
log "2. $lost's link down, then its replica killed"

# --- 3. a new primary commits ------------------------------------------------------------
new=
for _ in $(seq 300); do
  if ctl "${survivors[0]}" put -i lost-2 "after the loss" >"$work/put.out" 2>&1; then
    new=$(sed -n 's/.*primary=\([^ ]*\).*/\1/p' "$work/put.out")
    break
  fi
  sleep 0.1
done
[ -n "$new" ] && [ "$new" != "$primary" ] || fail "no write committed by a new primary: $(cat "$work/put.out")"
log "3. $new committed a write $(($(date +%s%3N) - t0)) ms after the loss"

# --- 4. nobody counts the lost one as connected -----------------------------------------
for m in "${survivors[@]}"; do
  seen=
  for _ in $(seq 600); do
    c=$(connected "$m" "$primary")
    [ "$c" = 0 ] && { seen=1; break; }
    sleep 0.1
  done
  [ -n "$seen" ] || fail "lost-$m still counts $primary as connected 60 s after its machine vanished"
  log "4. lost-$m sees $primary disconnected $(($(date +%s%3N) - t0)) ms after the loss"
done

# --- 5. back: it rejoins and catches up --------------------------------------------------
ip -n "$prefix-$lost" link set eth0 up
start "$lost"
for _ in $(seq 600); do
  read -r role p ci < <(status_of "$lost") || true
  read -r _ _ want < <(status_of "$(machine_of "$new")") || true
  if [ "${role:-}" = backup ] && [ "${p:-}" = "$new" ] && [ -n "${ci:-}" ] && [ "$ci" = "${want:-x}" ]; then
    break
  fi
  sleep 0.1
done
[ "${role:-}" = backup ] && [ "${p:-}" = "$new" ] && [ "${ci:-}" = "${want:-x}" ] ||
  fail "$primary did not rejoin as a caught-up backup of $new: role=${role:-} primary=${p:-} commit=${ci:-}/${want:-}"
ctl "$lost" read -c serializable | grep -q "after the loss" ||
  fail "$primary does not hold the write committed while it was away"
log "5. $primary back: a backup of $new at commit $ci, holding the write made while it was away"
echo "PASS"
