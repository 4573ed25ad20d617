#!/usr/bin/env bash
# tests/integration/dns_glitch.sh — a DNS server that stops answering for a
# while is not "every peer is gone". Three replicas find each other by one
# DNS name (--peers NAME:PORT, as in compose and Swarm), served by a tiny
# DNS server (dns_server.py); all of it runs in a network and mount
# namespace of its own (its own loopback, its own /etc/resolv.conf):
#   1. the replicas come up through the name and elect a primary;
#   2. the DNS server goes silent (no reply: lookups time out), then answers
#      SERVFAIL, for several discovery passes each: no replica drops a peer
#      ("forgetting"), every peer stays connected, the epoch stays, and a
#      write commits meanwhile;
#   3. the server answers NXDOMAIN: that is an answer (nobody is there), so
#      the replicas drop the addresses, as when a service is gone.
# Exits 77 (skipped) without root, unshare or network namespaces.
#
#   dns_glitch.sh REPLICA REPLCTL
set -uo pipefail

replica=$1
replctl=$2
here=$(cd "$(dirname "$0")" && pwd)

if [ "${DNS_GLITCH_INSIDE:-}" != 1 ]; then
  [ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root (namespaces)"; exit 77; }
  command -v unshare >/dev/null && command -v ip >/dev/null || { echo "SKIP: no unshare/ip"; exit 77; }
  unshare --net --mount --propagation private true 2>/dev/null ||
    { echo "SKIP: cannot create network and mount namespaces"; exit 77; }
  # Everything below runs in the new namespaces: when it exits, nothing of
  # it (processes aside, which it stops) is left on the host.
  DNS_GLITCH_INSIDE=1 exec unshare --net --mount --propagation private bash "$0" "$@"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/it-dns.XXXXXX")
declare -a pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  for r in r1 r2 r3; do
    [ -f "$work/$r.log" ] && { echo "--- $r" >&2; tail -n 25 "$work/$r.log" >&2; }
  done
  exit 1
}
log() { echo "$(date +%T.%3N) $*"; }

ip link set lo up
name=peers.rpl-dns.test
port=5000
echo answer >"$work/mode"
printf 'nameserver 127.0.0.53\noptions timeout:1 attempts:1\n' >"$work/resolv.conf"
mount --bind "$work/resolv.conf" /etc/resolv.conf
python3 "$here/dns_server.py" 127.0.0.53 "$name" "$work/mode" 127.0.0.1 127.0.0.2 127.0.0.3 \
  >"$work/dns.log" 2>&1 &
pids+=($!)
mode() { echo "$1" >"$work/mode"; }

ip_of() { echo "127.0.0.${1#r}"; }
for r in r1 r2 r3; do
  a="$(ip_of $r):$port"
  "$replica" --id "dns-$r" --listen "$a" --advertise "$a" --peers "$name:$port" \
    --resolve-interval-ms 300 --data-dir "$work/$r" >"$work/$r.log" 2>&1 &
  pids+=($!)
done
ctl() { "$replctl" -a "$(ip_of "$1"):$port" -t 2000 "${@:2}"; }
field() { ctl "$1" status 2>/dev/null | awk -v k="$2" 'NR == 1 {
  for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) print kv[2] } }'; }
connected_peers() { ctl "$1" status 2>/dev/null | grep -c '^peer .* connected=1 '; }

# --- 1. up through the name ---------------------------------------------------------------
primary=
for _ in $(seq 300); do
  primary=$(field r1 primary)
  if [ -n "$primary" ] && [ "$(connected_peers r1)" = 2 ] && [ "$(connected_peers r2)" = 2 ] &&
    [ "$(connected_peers r3)" = 2 ]; then break; fi
  primary=
  sleep 0.1
done
[ -n "$primary" ] || fail "no primary with every peer connected in 30 s"
ctl r1 put -i dns-1 "before the glitch" >/dev/null || fail "the first write failed"
epoch=$(field r1 epoch)
log "1. found through $name: primary $primary, epoch $epoch, every peer connected"

# --- 2. no answer is not "nobody" ----------------------------------------------------------
# Each pass waits out one 1 s timeout; 5 s of each covers more passes than
# the transport's three before it drops a target.
for m in silent servfail; do
  mode "$m"
  sleep 5
  ctl r2 put -i "dns-$m" "while DNS is $m" >/dev/null || fail "no write committed while DNS was $m"
  for r in r1 r2 r3; do
    [ "$(connected_peers $r)" = 2 ] || fail "while DNS was $m, dns-$r has $(connected_peers $r) of 2 peers connected"
    [ "$(field $r epoch)" = "$epoch" ] || fail "while DNS was $m, dns-$r moved to epoch $(field $r epoch)"
  done
  log "2. DNS $m for 5 s: every peer still connected, epoch $epoch, a write committed"
done
mode answer
grep -h 'forgetting\|is gone' "$work"/r?.log && fail "a replica dropped a peer while DNS did not answer"
grep -q 'keeping the peers we know' "$work/r1.log" || fail "r1 did not say DNS failed"
sleep 1
grep -q 'peer discovery answers again' "$work/r1.log" || fail "r1 did not say DNS answers again"

# --- 3. NXDOMAIN is an answer ---------------------------------------------------------------
mode nxdomain
for _ in $(seq 100); do
  grep -q 'forgetting 127.0.0.2:5000: no longer resolves' "$work/r1.log" && break
  sleep 0.1
done
grep -q 'forgetting 127.0.0.2:5000: no longer resolves' "$work/r1.log" ||
  fail "NXDOMAIN for 10 s: r1 still dials 127.0.0.2"
log "3. NXDOMAIN: the replicas drop the addresses"
echo "PASS"
