#!/usr/bin/env bash
# tests/integration/identity.sh — a replica's id bound to its data dir, with
# the real binaries (docs/membership.md, "A replica's identity"):
#   1. without --id, a new data dir gets <hostname>-<8 hex>, stored in DIR/id;
#      the replica serves under it (status, a committed write);
#   2. restarted without --id (SIGTERM, start again) it is the same member:
#      same id, its write still in its log;
#   3. --id other on that dir: refused, exit 1, both ids named, dir untouched;
#   4. an empty data dir under the same hostname: a new id;
#   5. --id given on a new dir: stored, and read back later without --id.
#
#   identity.sh REPLICA REPLCTL
set -euo pipefail

replica=$1
replctl=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/it-identity.XXXXXX")
pid=
cleanup() {
  [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  [ -f "$work/replica.log" ] && tail -n 20 "$work/replica.log" >&2
  exit 1
}

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
addr=127.0.0.1:$port
host=$(hostname)

# start DIR [ARGS...]: one single-replica cluster on $addr, until it is primary.
start() {
  local dir=$1
  shift
  "$replica" --data-dir "$dir" --listen "$addr" --advertise "$addr" --peers "$addr" \
    --initial-size 1 "$@" >"$work/replica.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    if "$replctl" -a "$addr" -t 500 ready >/dev/null 2>&1; then return 0; fi
    kill -0 "$pid" 2>/dev/null || fail "the replica exited: $(cat "$work/replica.log")"
    sleep 0.1
  done
  fail "the replica did not become primary"
}
stop() {
  kill -TERM "$pid"
  wait "$pid" || true
  pid=
}
id_of() { "$replctl" -a "$addr" -t 2000 status | sed -n '1s/^id=\([^ ]*\) .*/\1/p'; }

# 1. a generated id
start "$work/a"
id1=$(id_of)
[[ "$id1" =~ ^.+-[0-9a-f]{8}$ ]] || fail "generated id '$id1' is not <hostname>-<8 hex>"
[ "${id1%-*}" = "${host:0:54}" ] || fail "generated id '$id1' does not start with the hostname '$host'"
[ "$(cat "$work/a/id")" = "$id1" ] || fail "$work/a/id holds '$(cat "$work/a/id")', not '$id1'"
"$replctl" -a "$addr" -t 5000 put -i it-identity-1 "kept across restarts" >/dev/null ||
  fail "the write was not acknowledged"
echo "1. new data dir: id $id1, stored, a write acknowledged"

# 2. restarted: the same member
stop
start "$work/a"
[ "$(id_of)" = "$id1" ] || fail "after a restart the id is '$(id_of)', not '$id1'"
"$replctl" -a "$addr" -t 5000 read | grep -q "it-identity-1" ||
  fail "the write is not in the restarted replica's log"
echo "2. restarted: still $id1, its write in its log"
stop

# 3. another --id on that dir
rc=0
"$replica" --id other --data-dir "$work/a" --listen "$addr" --peers "$addr" \
  --initial-size 1 >"$work/refused.log" 2>&1 || rc=$?
[ "$rc" -eq 1 ] || fail "--id other on $id1's dir: exit $rc, not 1"
grep -q "belongs to replica '$id1', not 'other'" "$work/refused.log" ||
  fail "no clear refusal: $(cat "$work/refused.log")"
[ "$(cat "$work/a/id")" = "$id1" ] || fail "the refused start changed the id file"
echo "3. --id other refused: $(cat "$work/refused.log")"

# 4. an empty dir, same hostname: a new member
start "$work/b"
id2=$(id_of)
[ "$id2" != "$id1" ] && [ "${id2%-*}" = "${id1%-*}" ] ||
  fail "a new dir under the same hostname got '$id2' (first: '$id1')"
echo "4. empty data dir, same hostname: new id $id2"
stop

# 5. an explicit id is stored too
start "$work/c" --id it-r1
[ "$(id_of)" = it-r1 ] || fail "--id it-r1 serves as '$(id_of)'"
stop
start "$work/c"
[ "$(id_of)" = it-r1 ] || fail "without --id, the dir of it-r1 serves as '$(id_of)'"
stop
echo "5. --id it-r1 stored and read back without --id"
echo "PASS"
