#!/usr/bin/env bash
# tests/compose/e2e.sh — the Docker Compose deployment, end to end.
#
# Builds the image, starts docker-compose.yml as its own project on a free
# port, and through the coordinator's HTTP API checks:
#   0. safe defaults (issue 16): the first `up` made the cluster secret and
#      the API token; only the coordinator's port is published, on
#      127.0.0.1; a call without the token is 401;
#   1. 3 replicas come up with one primary; 20 requests are acknowledged;
#   2. 10 times: `docker kill` the primary's container, the next write is
#      committed by a new primary within 2 s (timed, printed), `docker start`
#      rejoins the container as a backup and it catches up;
#   3. `--scale replica=5`: the 2 new replicas join and become voters;
#   4. `docker pause` of the primary: a write commits in a higher epoch from
#      a new primary; writes sent directly to the paused old primary (replctl
#      from another container, which follows "not primary" hints, and a
#      one-shot wire client from the host, whose handshake waits for the old
#      primary to resume and whose request follows at once) are never
#      acknowledged in the old epoch; after unpause the old primary is a
#      backup in the new epoch;
#   5. every acknowledged request is in the committed log exactly once, at
#      its acknowledged index and epoch, and nothing of the old epoch was
#      committed after the new epoch began;
#   6. while a writer writes without pause: --scale replica=3, =2, =3; at
#      each step the configuration settles on exactly the live containers
#      (dead members removed after the dead-member timeout, new ones voters)
#      and writes go on; then `docker kill` of a backup (writes go on);
#   7. quorum loss: two of three killed, no primary; `replctl force-config`
#      on the survivor makes it primary again; the others rejoin;
#   8. the log check again over everything acknowledged, and no volume of
#      the project is left after scaling down.
# Always tears its project down (`down -v --remove-orphans`), also on failure.
# Exits 77 (ctest: skipped) when Docker or Compose cannot be used here.
#
#   tests/compose/e2e.sh          (as root, with dockerd running)
#   KEEP_LOGS=1 tests/compose/e2e.sh   print the containers' logs even on success
#   E2E_WATCHDOG_S=N                   give up (and tear down) after N s (840)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
api_py=$here/api.py

e2e_name="compose e2e"
# shellcheck source=lib.sh
source "$here/lib.sh"

# --- can we run here? -------------------------------------------------------
if [ -n "${REPLICACAO_COMPOSE_SKIP:-}" ]; then skip "$REPLICACAO_COMPOSE_SKIP"; fi
command -v python3 >/dev/null || skip "python3 not found"
command -v docker >/dev/null || skip "docker not found"
docker info >/dev/null 2>&1 || skip "the Docker daemon is not usable (not running, or not root / not in the docker group)"
if command -v docker-compose >/dev/null && docker-compose version >/dev/null 2>&1; then
  compose=(docker-compose)
elif docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
else
  skip "neither docker-compose nor the docker compose plugin is installed"
fi

project=replicacao_e2e_$$
port=$(python3 "$api_py" x free-port)
export REPLICACAO_HTTP_PORT=$port
base=http://127.0.0.1:$port
work=$(mktemp -d /tmp/replicacao-e2e.XXXXXX)
acks=$work/acks.jsonl
: >"$acks"

dc() { "${compose[@]}" -f "$top/docker-compose.yml" -p "$project" "$@"; }
writer_pid=
api() { python3 "$api_py" "$base" "$@"; }
# jf JSON PATH...: fields (dotted paths) of a JSON text, space-separated;
# booleans as true/false, null as "-". Read several at once with `read -r`.
jf() {
  python3 -c 'import json, sys
out = []
for path in sys.argv[2:]:
    d = json.loads(sys.argv[1])
    for k in path.split("."):
        d = d[int(k)] if isinstance(d, list) else d.get(k)
    out.append("-" if d is None else str(d).lower() if isinstance(d, bool) else str(d))
print(" ".join(out))' "$@"
}
# One line per replica: id role status epoch commit_index voter.
summary() {
  python3 -c 'import json, sys
c = json.loads(sys.argv[1])
print("epoch=%s primary=%s commit_index=%s" % (c["epoch"], c["primary"], c["commit_index"]))
for r in c["replicas"]:
    print("    %s %-9s %-6s epoch=%s commit_index=%s voter=%s" % (r["id"], r["role"], r["status"],
          r["epoch"], r["commit_index"], r["voter"]))' "$1"
}
# A replica's container: its id is "<hostname>-<random>" (docs/membership.md,
# identity), and compose names a container's host after its short id.
ctr() { printf '%s\n' "${1%-*}"; }
# Make sure a replica id names a container of OUR project before touching it.
ours() {
  local label
  label=$(docker container inspect -f '{{index .Config.Labels "com.docker.compose.project"}}' "$(ctr "$1")" 2>/dev/null) ||
    die "no container for $1"
  [ "$label" = "$project" ] || die "container of $1 belongs to project '$label', not $project"
}
ip_of() { docker container inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$(ctr "$1")"; }

# --- teardown, always ---------------------------------------------------------
started=0
bg_pid=
raw_pid=
watchdog_pid=
cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  [ -n "$watchdog_pid" ] && kill "$watchdog_pid" 2>/dev/null
  [ -n "$bg_pid" ] && kill "$bg_pid" 2>/dev/null
  [ -n "$raw_pid" ] && kill "$raw_pid" 2>/dev/null
  [ -n "$writer_pid" ] && kill "$writer_pid" 2>/dev/null
  if [ "$started" = 1 ]; then
    if [ "$rc" -ne 0 ] || [ -n "${KEEP_LOGS:-}" ]; then
      log "exit status $rc; state and logs of project $project:"
      dc ps
      api cluster 2>/dev/null | python3 -m json.tool 2>/dev/null | head -120
      dc logs --no-color --tail=200 coordinator replica
    fi
    local paused
    paused=$(docker ps -q --filter "label=com.docker.compose.project=$project" --filter status=paused)
    if [ -n "$paused" ]; then
      log "unpausing $paused"
      # shellcheck disable=SC2086
      docker unpause $paused >/dev/null
    fi
    log "tearing down $project"
    dc down -v --remove-orphans >"$work/down.log" 2>&1 || cat "$work/down.log"
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'log "interrupted (watchdog or signal)"; exit 124' TERM
start_watchdog "${E2E_WATCHDOG_S:-840}"

t_start=$(now_ms)
log "project $project, coordinator on $base, $("${compose[@]}" version --short 2>/dev/null || echo compose)"

# --- build and start ----------------------------------------------------------
"$top/docker/base-image.sh"
log "building the image and starting the cluster (docker-compose up -d --build)"
started=1
t_build=$(now_ms)
(cd "$top" && dc up -d --build) >"$work/up.log" 2>&1 || {
  tail -n 60 "$work/up.log"
  die "docker-compose up --build failed"
}
log "up after $(($(now_ms) - t_build)) ms"

# --- safe by default (issue 16) ----------------------------------------------------
# The first `up` made the cluster secret and the API token (docker/
# entrypoint.sh); every call below proves them.
coord=$(dc ps -q coordinator)
REPLICACAO_API_TOKEN=$(docker exec "$coord" cat /var/lib/replicacao-secrets/api-token)
REPLICACAO_CLUSTER_SECRET=$(docker exec "$coord" cat /var/lib/replicacao-secrets/cluster-secret)
export REPLICACAO_API_TOKEN REPLICACAO_CLUSTER_SECRET
[ ${#REPLICACAO_API_TOKEN} -ge 32 ] && [ ${#REPLICACAO_CLUSTER_SECRET} -ge 32 ] ||
  die "the generated token or secret is too short"
published=$(docker port "$coord" 8080/tcp)
[ "$published" = "127.0.0.1:$port" ] || die "the coordinator is published on '$published', not 127.0.0.1:$port"
for r in $(dc ps -q replica); do
  [ -z "$(docker port "$r")" ] || die "replica container $r publishes $(docker port "$r")"
done
code=$(curl -s -o /dev/null -w '%{http_code}' "$base/api/cluster")
[ "$code" = 401 ] || die "GET /api/cluster without the token: $code, want 401"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $REPLICACAO_API_TOKEN" "$base/api/cluster")
[ "$code" = 200 ] || die "GET /api/cluster with the token: $code, want 200"
log "secrets made by the first up; coordinator on 127.0.0.1:$port only, replicas publish nothing, no token 401"

c=$(api wait --replicas 3 --voters --caught-up --timeout 90)
log "cluster ready: $(summary "$c")"

# --- the fault lab takes the names compose shows ---------------------------------------
# A backup's display name is its container's (project_replica_N), not its id.
read -r lab_name lab_id < <(python3 -c 'import json, sys
c = json.loads(sys.argv[1])
b = [r for r in c["replicas"] if r["id"] != c["primary"]][0]
print(b["name"], b["id"])' "$c")
[ "$lab_name" != "$lab_id" ] || die "replica $lab_id has no name of its own"
r=$(curl -s -w ' %{http_code}' -H "Authorization: Bearer $REPLICACAO_API_TOKEN" \
  -H 'Content-Type: application/json' -X POST "$base/api/faults" \
  -d "{\"kind\": \"isolate\", \"replica\": \"$lab_name\", \"duration_ms\": 60000}")
[ "${r##* }" = 201 ] || die "isolating $lab_name by its name: $r"
read -r fid freplica < <(jf "${r% *}" id replica)
[ "$freplica" = "$lab_id" ] || die "the fault on $lab_name names $freplica, not $lab_id"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $REPLICACAO_API_TOKEN" \
  -X DELETE "$base/api/faults/$fid")
[ "$code" = 200 ] || die "healing fault $fid: $code"
log "fault lab: isolated $lab_name by its name (fault on $lab_id), healed"

# --- 20 requests ------------------------------------------------------------------
for i in $(seq 1 20); do
  api put "$project-init-$i" "initial request $i" --timeout 30 >>"$acks"
done
log "20 requests acknowledged, last: $(tail -n 1 "$acks")"

# --- kill the primary, 10 times ---------------------------------------------------
times=()
totals=()
for round in $(seq 1 10); do
  c=$(api wait --replicas 3 --voters --caught-up --timeout 90)
  read -r old old_epoch < <(jf "$c" primary epoch)
  ours "$old"
  r=$(api kill-put "$(ctr "$old")" "$project-failover-$round" "after kill $round" --timeout 30)
  echo "$r" >>"$acks"
  read -r ms kill_ms killed_at new epoch index attempts < <(jf "$r" elapsed_ms kill_ms killed_at primary epoch index attempts)
  log "kill $round: killed primary $old (epoch $old_epoch) at $killed_at (docker kill took $kill_ms ms);" \
    "next write committed by $new in epoch $epoch at index $index" \
    "$ms ms after the kill ($attempts attempt(s))"
  [ "$new" != "$old" ] || die "kill $round: the write was committed by the killed primary $old"
  [ "$epoch" -gt "$old_epoch" ] || die "kill $round: epoch $epoch is not above $old_epoch"
  # The limit holds even counting the `docker kill` call itself.
  total=$(python3 -c 'import sys; print(round(float(sys.argv[1]) + float(sys.argv[2]), 1))' "$ms" "$kill_ms")
  python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) < 2000 else 1)' "$total" ||
    die "kill $round: failover took $ms ms after docker kill returned, $total ms with it (limit 2000 ms)"
  times+=("$ms")
  totals+=("$total")
  docker start "$(ctr "$old")" >/dev/null
  t_rejoin=$(now_ms)
  c=$(api wait --replicas 3 --backup "$old" --epoch "$epoch" --caught-up --timeout 90)
  log "kill $round: $old back as a backup in epoch $epoch and caught up" \
    "(commit_index $(jf "$c" commit_index)) $(($(now_ms) - t_rejoin)) ms after docker start"
done
stats=$(python3 -c 'import statistics, sys
a = [float(x) for x in sys.argv[1:]]
t, w = a[:len(a) // 2], a[len(a) // 2:]
print("compose failover: median %.0f ms, worst %.0f ms over %d kills"
      " (kill -> next write committed, from docker kill returning; each: %s ms)."
      " Counting the docker kill call too: median %.0f ms, worst %.0f ms" %
      (statistics.median(t), max(t), len(t), ", ".join("%.0f" % x for x in t),
       statistics.median(w), max(w)))' "${times[@]}" "${totals[@]}")
log "$stats"

r=$(api check-log "$acks")
log "log check after the kills: $r"

# --- scale to 5 ------------------------------------------------------------------
log "scaling to 5 replicas"
(cd "$top" && dc up -d --scale replica=5 --no-recreate) >"$work/scale.log" 2>&1 || {
  cat "$work/scale.log"
  die "docker-compose up --scale replica=5 failed"
}
t_scale=$(now_ms)
c=$(api wait --replicas 5 --voters --caught-up --timeout 120)
log "5 replicas, all voters and caught up, $(($(now_ms) - t_scale)) ms after scaling: $(summary "$c")"
for i in 1 2 3; do
  api put "$project-five-$i" "five replicas $i" --timeout 30 >>"$acks"
done
log "3 requests acknowledged by the 5-replica cluster"
# The one-shot wire client used below, on a healthy primary first: it must
# get OK there, so that what it gets from the paused one means something.
c=$(api wait --replicas 5 --voters --caught-up --timeout 60)
p=$(jf "$c" primary)
ours "$p"
r=$(api raw-put "$(ip_of "$p"):5000" "$project-raw-0" "raw client check" --timeout 10)
[ "$(jf "$r" status)" = OK ] || die "the raw wire client got no OK from the primary $p: $r"
python3 -c 'import json, sys; r = json.loads(sys.argv[1]); r["id"] = sys.argv[2]; print(json.dumps(r))' \
  "$r" "$project-raw-0" >>"$acks"
log "raw wire client check on primary $p: $r"

# --- pause the primary ---------------------------------------------------------------
c=$(api wait --replicas 5 --voters --caught-up --timeout 60)
read -r old old_epoch < <(jf "$c" primary epoch)
# What the old primary holds before the pause: nothing of its epoch beyond
# this may ever be committed.
old_last=$(python3 -c 'import json, sys
c = json.loads(sys.argv[1])
print([r["last_index"] for r in c["replicas"] if r["id"] == c["primary"]][0])' "$c")
ours "$old"
old_ip=$(ip_of "$old")
other=$(python3 -c 'import json, sys
c = json.loads(sys.argv[1])
print([r["id"] for r in c["replicas"] if r["id"] != c["primary"] and r["status"] == "up"][0])' "$c")
ours "$other"
log "pausing primary $old ($old_ip, epoch $old_epoch, last_index $old_last)"
t_pause=$(now_ms)
docker pause "$(ctr "$old")" >/dev/null
r=$(api put "$project-paused-1" "while $old is paused" --timeout 30 --t0 "$t_pause")
echo "$r" >>"$acks"
read -r new new_epoch index ms attempts < <(jf "$r" primary epoch index elapsed_ms attempts)
log "while $old is paused: write committed by $new in epoch $new_epoch at index $index," \
  "$ms ms after docker pause ($attempts attempt(s))"
[ "$new" != "$old" ] || die "the paused primary $old acknowledged a write"
[ "$new_epoch" -gt "$old_epoch" ] || die "epoch $new_epoch is not above the old $old_epoch"

# Past the election timeout, then a write straight to the paused old primary.
sleep_s=$(python3 -c 'import sys; print(max(0.0, (1500 - (int(sys.argv[2]) - int(sys.argv[1]))) / 1000.0))' \
  "$t_pause" "$(now_ms)")
sleep "$sleep_s"
direct_id=$project-direct-1
raw_id=$project-raw-1
log "sending $direct_id directly to the paused $old_ip:5000 (replctl in $other)," \
  "and $raw_id (one-shot wire client from the host: it proves the secret, then sends; no hint followed)"
python3 "$api_py" x raw-put "$old_ip:5000" "$raw_id" "raw, sent to the paused primary" --timeout 10 \
  >"$work/raw.out" 2>&1 &
raw_pid=$!
docker exec "$(ctr "$other")" replctl -a "$old_ip:5000" -t 8000 put -i "$direct_id" "sent to the paused primary" \
  >"$work/direct.out" 2>"$work/direct.err" &
bg_pid=$!
sleep 0.5
docker unpause "$(ctr "$old")" >/dev/null
t_unpause=$(now_ms)
log "unpaused $old after $((t_unpause - t_pause)) ms paused"
c=$(api wait --replicas 5 --backup "$old" --epoch "$new_epoch" --timeout 10)
log "old primary $old is a backup in epoch $new_epoch $(($(now_ms) - t_unpause)) ms after unpause"
st=$(docker exec "$(ctr "$old")" replctl -a 127.0.0.1:5000 -t 3000 status | head -n 1)
log "its own status: $st"
case "$st" in
*" role=backup epoch=$new_epoch "*) ;;
*) die "the old primary's own status is not role=backup epoch=$new_epoch: $st" ;;
esac

raw_rc=0
wait "$raw_pid" || raw_rc=$?
raw_pid=
raw_out=$(cat "$work/raw.out")
log "wire client's request to the old primary: exit $raw_rc, answer: $raw_out"
[ "$raw_rc" -eq 0 ] || die "the wire client failed: $raw_out"
read -r raw_status raw_epoch < <(jf "$raw_out" status epoch)
if [ "$raw_status" = OK ]; then
  [ "$raw_epoch" -ge "$new_epoch" ] ||
    die "the old primary acknowledged $raw_id in epoch $raw_epoch, below the new epoch $new_epoch"
  python3 -c 'import json, sys; r = json.loads(sys.argv[1]); r["id"] = sys.argv[2]; print(json.dumps(r))' \
    "$raw_out" "$raw_id" >>"$acks"
fi

direct_rc=0
wait "$bg_pid" || direct_rc=$?
bg_pid=
direct_out=$(cat "$work/direct.out")
log "replctl put to the old primary: exit $direct_rc, out: ${direct_out:-<none>}, err: $(tr '\n' ' ' <"$work/direct.err")"
extra=()
if [ "$direct_rc" -eq 0 ]; then
  d_epoch=$(sed -n 's/.* epoch=\([0-9]*\) .*/\1/p' <<<"$direct_out")
  d_index=$(sed -n 's/^index=\([0-9]*\) .*/\1/p' <<<"$direct_out")
  { [ -n "$d_epoch" ] && [ -n "$d_index" ]; } || die "cannot parse replctl's answer: $direct_out"
  [ "$d_epoch" -ge "$new_epoch" ] ||
    die "the old primary acknowledged $direct_id in epoch $d_epoch, below the new epoch $new_epoch"
  printf '{"id":"%s","index":%s,"epoch":%s}\n' "$direct_id" "$d_index" "$d_epoch" >>"$acks"
  extra=(--extra "$direct_id")
fi

# --- the log ----------------------------------------------------------------------
api wait --replicas 5 --voters --caught-up --timeout 60 >/dev/null
r=$(api check-log "$acks" --old-epoch "$old_epoch" --old-last "$old_last" \
  --new-epoch "$new_epoch" "${extra[@]}")
log "log check: $r"
log "all $(wc -l <"$acks") acknowledged requests are committed exactly once"

# --- scale down and up while a writer writes -----------------------------------------
# scale N: compose up with N replicas, then wait until the configuration is
# exactly the N live containers (voters, no learner, nobody else listed).
scale() {
  local n=$1 t0
  t0=$(now_ms)
  (cd "$top" && dc up -d --scale replica="$n" --no-recreate) >"$work/scale.log" 2>&1 || {
    cat "$work/scale.log"
    die "docker-compose up --scale replica=$n failed"
  }
  c=$(api wait --replicas "$n" --members "$n" --caught-up --timeout 120)
  log "scale to $n: the configuration is the $n live replicas, voters $(jf "$c" voters),"     "$(($(now_ms) - t0)) ms after the scale command (dead-member timeout 10 s)"
  settle+=("$n:$(($(now_ms) - t0))")
}
settle=()
stop_file=$work/stop-writer
python3 "$api_py" "$base" writer "$project-writer" "$acks" "$stop_file" --timeout 30 \
  >"$work/writer.out" 2>"$work/writer.err" &
writer_pid=$!
scale 3
scale 2
scale 3
c=$(api wait --replicas 3 --members 3 --caught-up --timeout 60)
victim=$(python3 -c 'import json, sys
c = json.loads(sys.argv[1])
print([r["id"] for r in c["replicas"] if r["id"] != c["primary"]][0])' "$c")
ours "$victim"
log "killing backup $victim after 3 -> 2 -> 3"
docker kill "$(ctr "$victim")" >/dev/null
r=$(api put "$project-after-backup-kill" "one backup of three killed" --timeout 30)
echo "$r" >>"$acks"
log "write after killing backup $victim: $(jf "$r" elapsed_ms) ms, committed by $(jf "$r" primary)"
docker start "$(ctr "$victim")" >/dev/null
c=$(api wait --replicas 3 --members 3 --caught-up --timeout 120)
log "$victim back, the configuration is 3 voters again: $(jf "$c" voters)"
touch "$stop_file"
wait "$writer_pid" || die "the writer failed: $(cat "$work/writer.err")"
writer_pid=
log "writer during the scaling cycle: $(cat "$work/writer.out")"
log "configuration settled after each scale command (replicas:ms): ${settle[*]}"
# The one volume the project means to keep is `secrets` (the cluster secret
# and the API token, shared by every container): no other may pile up.
secrets_vol=${project}_secrets
leftover=$(docker volume ls -q --filter "label=com.docker.compose.project=$project" |
  grep -vcx "$secrets_vol" || true)
anonymous=$(docker ps -a --filter "label=com.docker.compose.project=$project" -q |
  xargs -r docker inspect -f '{{range .Mounts}}{{.Type}}:{{.Name}} {{end}}' | tr ' ' '\n' |
  grep '^volume:' | grep -vcx "volume:$secrets_vol" || true)
[ "$leftover" -eq 0 ] && [ "$anonymous" -eq 0 ] ||
  die "volumes left: $leftover labelled, $anonymous mounted by containers"

# --- quorum loss and the forced recovery ----------------------------------------------
c=$(api wait --replicas 3 --members 3 --caught-up --timeout 60)
read -r survivor < <(jf "$c" primary)
mapfile -t others < <(python3 -c 'import json, sys
c = json.loads(sys.argv[1])
print("\n".join(r["id"] for r in c["replicas"] if r["id"] != c["primary"]))' "$c")
for o in "${others[@]}"; do ours "$o"; done
ours "$survivor"
log "killing ${others[*]}: a majority of three"
for o in "${others[@]}"; do ctr "$o"; done | xargs docker kill >/dev/null
# The health check (replctl ready) turns unready: no primary can be elected.
t_unready=$(now_ms)
until ! ready=$(docker exec "$(ctr "$survivor")" replctl -a 127.0.0.1:5000 -t 2000 ready); do
  [ $(($(now_ms) - t_unready)) -lt 15000 ] || die "$survivor still ready 15 s after losing the majority: $ready"
  sleep 0.5
done
log "$survivor's health check after losing the majority: $ready"
readyz=$(python3 -c 'import sys, urllib.request, urllib.error
try:
    r = urllib.request.urlopen(sys.argv[1] + "/readyz", timeout=5)
    print(r.status, r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())' "$base")
log "coordinator /readyz: $readyz"
[ "${readyz%% *}" = 503 ] || die "/readyz answered $readyz without a primary"
out=$(docker exec "$(ctr "$survivor")" replctl -a 127.0.0.1:5000 -t 5000 force-config 2>&1) ||
  die "replctl force-config on $survivor failed: $out"
log "replctl force-config on $survivor: $(tr '\n' ' ' <<<"$out")"
r=$(api put "$project-after-force" "after the forced recovery" --timeout 30)
docker exec "$(ctr "$survivor")" replctl -a 127.0.0.1:5000 -t 2000 ready >/dev/null ||
  die "$survivor is not ready after the forced recovery"
echo "$r" >>"$acks"
[ "$(jf "$r" primary)" = "$survivor" ] || die "after the recovery the primary is $(jf "$r" primary), not $survivor"
for o in "${others[@]}"; do ctr "$o"; done | xargs docker start >/dev/null
c=$(api wait --replicas 3 --members 3 --caught-up --timeout 120)
log "the killed two rejoined: voters $(jf "$c" voters), epoch $(jf "$c" epoch)"
r=$(api check-log "$acks")
log "log check after scaling and recovery: $r"

log "$stats"
log "PASS in $(($(now_ms) - t_start)) ms; tearing down"
