#!/usr/bin/env bash
# tests/swarm/swarm.sh — docker-stack.yml on a three-node Docker Swarm,
# end to end (issue 15).
#
# Builds the image on the host's Docker, makes three machines out of network
# namespaces, each with its own dockerd (cluster.sh), forms a swarm of three
# managers, loads the image into every node (docker save | docker load, no
# registry), deploys the stack and, with a writer running, through the
# coordinators' HTTP API (from a client namespace) checks:
#   1. 3 replicas come up with one primary, all voters;
#   2. `docker kill` of the primary's task: the next write commits from a
#      new primary (timed); Swarm restarts the task on its node with its
#      volume, so it comes back under its id and catches up (timed);
#   3. the whole node holding the primary is lost (its link cut, then its
#      dockerd and every process of it killed): the next write commits on
#      another node (timed); Swarm reschedules the node's tasks onto the
#      others with new, empty volumes, so they join as new members, and the
#      dead ones are removed by the dead-member timeout (timed until the
#      rescheduled replica is a caught-up voter and the configuration is
#      exactly the live replicas);
#   4. `docker service scale` 3 -> 5 -> 3, each step settling on exactly the
#      live replicas;
#   5. a rolling update of the replica service to another image tag, one
#      task at a time (never two replicas down at once: the coordinator
#      never sees more than one of them down), writes going on;
#   6. every acknowledged request is in the committed log exactly once, at
#      its acknowledged index and epoch (tests/compose/api.py check-log).
# Prints the measured times at the end. Always tears everything down (trap):
# daemons by pid, their processes, namespaces, cgroups, data roots, image tags.
# Exits 77 (ctest: skipped) when it cannot run here (not root, no Docker,
# no network namespaces, no cgroup v1 hierarchies).
#
#   tests/swarm/swarm.sh                 (as root, host dockerd running)
#   KEEP_LOGS=1 tests/swarm/swarm.sh     print the tasks' logs even on success
#   SWARM_TMP=/tmp/x                     where the nodes' data roots go (mktemp -d $SWARM_TMP.XXXXXX)
#   SWARM_PREFIX=name                    namespace/cgroup prefix (rplswarm)
#   SWARM_SUBNET=10.231.0                the nodes' /24 (must be free)
#   SWARM_WATCHDOG_S=N                   give up (and tear down) after N s (600)
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
api_py=$top/tests/compose/api.py

e2e_name=swarm
# shellcheck source=../compose/lib.sh
source "$top/tests/compose/lib.sh"

# --- can we run here? ----------------------------------------------------------
if [ -n "${REPLICACAO_SWARM_SKIP:-}" ]; then skip "$REPLICACAO_SWARM_SKIP"; fi
[ "$(id -u)" -eq 0 ] || skip "needs root (network namespaces, a dockerd per node)"
for c in ip unshare dockerd docker python3 mount; do
  command -v "$c" >/dev/null || skip "$c not found"
done
docker info >/dev/null 2>&1 || skip "the host's Docker daemon is not usable (it builds the image)"
[ -d /sys/fs/cgroup/pids ] && [ -d /sys/fs/cgroup/devices ] ||
  skip "no cgroup v1 hierarchies under /sys/fs/cgroup (the nodes' dockerds mount them)"
probe=rplswarm-probe-$$
ip netns add "$probe" 2>/dev/null || skip "cannot create network namespaces"
ip netns del "$probe"

work=$(mktemp -d "${SWARM_TMP:-/tmp/rplswarm}.XXXXXX")
# shellcheck source=cluster.sh
source "$here/cluster.sh"
if ip netns list | grep -q "^$sw_prefix-"; then
  rm -rf "$work"
  skip "namespaces named $sw_prefix-* exist already (another run? set SWARM_PREFIX)"
fi

stack=rsw
image=replicacao:$sw_prefix-v1
image2=replicacao:$sw_prefix-v2
acks=$work/acks.jsonl
: >"$acks"
writer_pid=
watchdog_pid=
t_start=$(now_ms)

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  [ -n "$watchdog_pid" ] && kill "$watchdog_pid" 2>/dev/null
  [ -n "$writer_pid" ] && kill "$writer_pid" 2>/dev/null
  if [ "$rc" -ne 0 ] || [ -n "${KEEP_LOGS:-}" ]; then
    log "exit status $rc; state and logs:"
    for n in "${sw_nodes[@]}"; do
      [ -n "${sw_pid[$n]:-}" ] || continue
      dn "$n" service ps --no-trunc "${stack}_replica" 2>/dev/null | head -30 && break
    done
    [ -n "${base:-}" ] && api cluster 2>/dev/null | python3 -m json.tool 2>/dev/null | head -100
    for n in "${sw_nodes[@]}"; do
      [ -n "${sw_pid[$n]:-}" ] || continue
      for c in $(dn "$n" ps -aq 2>/dev/null); do
        echo "--- $n $(dn "$n" inspect -f '{{.Name}} {{.Config.Hostname}}' "$c")"
        dn "$n" logs --tail 60 "$c" 2>&1
      done
    done
  fi
  log "tearing down (daemons, namespaces, data roots)"
  sw_teardown
  docker rmi "$image" "$image2" >/dev/null 2>&1
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'log "interrupted (watchdog or signal)"; exit 124' TERM
start_watchdog "${SWARM_WATCHDOG_S:-600}"

# --- helpers ------------------------------------------------------------------------
base=
api() { in_client python3 "$api_py" "$base" "$@"; }
coord() { printf 'http://%s:8080\n' "$(sw_ip "$1")"; }
jf() {
  python3 -c 'import json, sys
d = json.loads(sys.argv[1])
out = []
for path in sys.argv[2:]:
    v = d
    for k in path.split("."):
        v = v[int(k)] if isinstance(v, list) else v.get(k)
    out.append("-" if v is None else " ".join(map(str, v)) if isinstance(v, list) else str(v))
print(" ".join(out))' "$@"
}
summary() {
  python3 -c 'import json, sys
c = json.loads(sys.argv[1])
print("epoch=%s primary=%s commit_index=%s voters=%s learners=%s" % (c["epoch"], c["primary"],
      c["commit_index"], c.get("voters"), c.get("learners")))' "$1"
}
live_nodes() { for n in "${sw_nodes[@]}"; do [ -n "${sw_pid[$n]:-}" ] && echo "$n"; done; }
manager() { live_nodes | head -n 1; }
# The node and container running a replica: its id is "<hostname>-<random>"
# (docs/membership.md), the hostname replica-<slot>.
locate() {
  local host=${1%-*} n c
  for n in $(live_nodes); do
    for c in $(dn "$n" ps -q --filter "label=com.docker.swarm.service.name=${stack}_replica"); do
      if [ "$(dn "$n" inspect -f '{{.Config.Hostname}}' "$c" 2>/dev/null)" = "$host" ]; then
        echo "$n $c"
        return 0
      fi
    done
  done
  return 1
}
ids_of() { jf "$1" voters | tr ' ' '\n' | sort | tr '\n' ' '; }
start_writer() { # coordinator's node
  local stop=$work/stop-writer
  rm -f "$stop"
  in_client python3 "$api_py" "$(coord "$1")" writer "$stack-writer-$1-$(now_ms)" "$acks" "$stop" \
    --timeout 60 >"$work/writer.out" 2>"$work/writer.err" &
  writer_pid=$!
}
stop_writer() {
  touch "$work/stop-writer"
  wait "$writer_pid" || die "the writer failed: $(cat "$work/writer.err")"
  writer_pid=
  log "writer: $(cat "$work/writer.out")"
}
# wait_members N TIMEOUT: exactly N live replicas, all voters, caught up.
wait_members() { api wait --replicas "$1" --members "$1" --caught-up --timeout "$2"; }

# --- the image, the machines, the swarm ---------------------------------------------
"$top/docker/base-image.sh" || die "no debian:bookworm-slim image"
log "building the image on the host's Docker"
t=$(now_ms)
docker build -q -t "$image" "$top" >"$work/build.log" 2>&1 || {
  tail -n 40 "$work/build.log"
  die "docker build failed"
}
docker tag "$image" "$image2"
log "image built in $(($(now_ms) - t)) ms; three nodes in namespaces $sw_prefix-n1..n3"
t=$(now_ms)
sw_network_up || die "cannot set up the namespaces and the bridge"
for n in "${sw_nodes[@]}"; do sw_dockerd "$n"; done
for n in "${sw_nodes[@]}"; do sw_wait_daemon "$n" || die "dockerd of $n did not start"; done
sw_swarm_up || die "cannot form the swarm"
docker save "$image" "$image2" >"$work/image.tar" || die "docker save failed"
loads=()
for n in "${sw_nodes[@]}"; do
  dn "$n" load -q -i "$work/image.tar" >/dev/null &
  loads+=($!)
done
for p in "${loads[@]}"; do wait "$p"; done
for n in "${sw_nodes[@]}"; do
  dn "$n" image inspect "$image" >/dev/null 2>&1 || die "the image did not load on $n"
done
rm -f "$work/image.tar"
log "swarm of 3 managers up and the image on every node in $(($(now_ms) - t)) ms"
dn n1 node ls

# --- deploy ------------------------------------------------------------------------------
# The two Docker secrets the stack names, made as the README says; every API
# call proves the token.
mkdir -p "$work/secrets"
for f in cluster-secret api-token; do
  head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/secrets/$f"
done
REPLICACAO_API_TOKEN=$(cat "$work/secrets/api-token")
export REPLICACAO_API_TOKEN
t=$(now_ms)
REPLICACAO_SECRETS_DIR=$work/secrets REPLICACAO_IMAGE=$image REPLICACAO_DEAD_MEMBER_TIMEOUT=8s REPLICACAO_UPDATE_DELAY=12s \
  dn n1 stack deploy --resolve-image never -c "$top/docker-stack.yml" "$stack" >"$work/deploy.log" 2>&1 || {
  cat "$work/deploy.log"
  die "docker stack deploy failed"
}
base=$(coord n1)
c=$(wait_members 3 180) || die "the stack did not come up"
log "stack up in $(($(now_ms) - t)) ms: $(summary "$c")"
dn n1 service ps --format '{{.Name}} {{.Node}} {{.CurrentState}}' "${stack}_replica"
for i in $(seq 1 10); do
  api put "$stack-init-$i" "initial request $i" --timeout 30 >>"$acks" || die "put failed"
done
log "10 requests acknowledged"

# --- 2. kill the primary's task ---------------------------------------------------------
start_writer n1
c=$(wait_members 3 60) || die "not settled before the kill"
read -r old old_epoch < <(jf "$c" primary epoch)
before=$(ids_of "$c")
read -r node ctr < <(locate "$old") || die "cannot find the task of $old"
log "killing the primary $old: container $ctr on $node"
r=$(in_client env DOCKER_HOST="$(sw_sock "$node")" python3 "$api_py" "$base" kill-put "$ctr" \
  "$stack-after-task-kill" "after the task kill" --timeout 30) || die "no write after the kill"
echo "$r" >>"$acks"
read -r kill_ms new epoch < <(jf "$r" elapsed_ms primary epoch)
[ "$new" != "$old" ] && [ "$epoch" -gt "$old_epoch" ] || die "no new primary after the kill: $r"
log "task kill: next write committed by $new in epoch $epoch, $kill_ms ms after docker kill"
t=$(now_ms)
c=$(api wait --replicas 3 --members 3 --caught-up --up "$old" --timeout 90) ||
  die "$old did not come back"
rejoin_ms=$(($(now_ms) - t))
[ "$(ids_of "$c")" = "$before" ] || die "the members changed: $before -> $(ids_of "$c")"
read -r node2 ctr2 < <(locate "$old")
[ "$ctr2" != "$ctr" ] || die "$old still runs in the killed container $ctr"
log "Swarm replaced the task ($ctr2 on $node2); $old is back under its id and caught up" \
  "$rejoin_ms ms after the kill's write"

# --- 3. lose the node holding the primary ---------------------------------------------------
c=$(wait_members 3 60) || die "not settled before the node loss"
read -r old old_epoch < <(jf "$c" primary epoch)
before=$(ids_of "$c")
read -r victim _ < <(locate "$old") || die "cannot find the task of $old"
survivor=$(live_nodes | grep -v "^$victim$" | head -n 1)
# The writer talks to a coordinator that stays up.
stop_writer
start_writer "$survivor"
base=$(coord "$survivor")
on_victim=$(for c in $(dn "$victim" ps -q --filter "label=com.docker.swarm.service.name=${stack}_replica"); do
  dn "$victim" inspect -f '{{.Config.Hostname}}' "$c"
done | tr '\n' ' ')
log "losing node $victim (primary $old; replicas there: $on_victim), writing through $survivor"
t_down=$(now_ms)
sw_node_down "$victim"
r=$(api put "$stack-after-node-loss" "after the node loss" --t0 "$t_down" --timeout 60) ||
  die "no write after the node loss"
echo "$r" >>"$acks"
read -r node_ms new epoch < <(jf "$r" elapsed_ms primary epoch)
[ "$new" != "$old" ] && [ "$epoch" -gt "$old_epoch" ] || die "no new primary after the node loss: $r"
log "node loss: next write committed by $new in epoch $epoch, $node_ms ms after the link went down"
# The rescheduled replica: a new id (its volume is new), a caught-up voter.
c=$(api wait --new-voter "$before" --timeout 150) || die "no rescheduled replica became a voter"
voter_ms=$(($(now_ms) - t_down))
c=$(wait_members 3 120) || die "the configuration did not settle on the live replicas"
clean_ms=$(($(now_ms) - t_down))
after=$(ids_of "$c")
for id in $after; do
  case " $before " in *" $id "*) ;; *) new_id=$id ;; esac
done
case " $after " in *" $old "*) die "the lost primary $old is still a member" ;; esac
log "node loss: rescheduled replica $new_id a caught-up voter $voter_ms ms after the link" \
  "went down; the dead member removed, configuration $after after $clean_ms ms"
[ "${new_id%-*}" = "${old%-*}" ] && log "($new_id took over hostname ${old%-*} under a new id)"
dn "$survivor" service ps --format '{{.Name}} {{.Node}} {{.CurrentState}}' "${stack}_replica" |
  head -n 8

# --- 4. scale 3 -> 5 -> 3 ---------------------------------------------------------------------
scale_log=()
for want in 5 3; do
  t=$(now_ms)
  dn "$survivor" service scale -d "${stack}_replica=$want" >/dev/null || die "service scale failed"
  c=$(wait_members "$want" 150) || die "the configuration did not settle on $want replicas"
  scale_log+=("$want:$(($(now_ms) - t))ms")
  log "scaled to $want: $(summary "$c") after $(($(now_ms) - t)) ms"
done

# --- 5. rolling update, one task at a time -------------------------------------------------
t=$(now_ms)
max_down=0
# (It warns that the tag has no registry digest: there is no registry.)
dn "$survivor" service update -d --image "$image2" "${stack}_replica" >"$work/update.log" 2>&1 || {
  cat "$work/update.log"
  die "service update failed"
}
while :; do
  state=$(dn "$survivor" service inspect -f '{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}' \
    "${stack}_replica")
  c=$(api cluster 2>/dev/null) || c='{"replicas":[]}'
  down=$(python3 -c 'import json, sys
c = json.loads(sys.argv[1])
v = set(c.get("voters") or [])
print(sum(1 for r in c["replicas"] if r["id"] in v and r.get("status") != "up"))' "$c")
  [ "$down" -gt "$max_down" ] && max_down=$down
  case "$state" in
  completed) break ;;
  paused | rollback_*) die "the update stopped: $state" ;;
  esac
  [ $(($(now_ms) - t)) -lt 240000 ] || die "the update did not complete in 240 s (state $state)"
  sleep 0.5
done
[ "$max_down" -le 1 ] || die "the update took $max_down voters down at once"
c=$(wait_members 3 120) || die "not settled after the update"
update_ms=$(($(now_ms) - t))
running=$(dn "$survivor" service ps -f desired-state=running --format '{{.Image}}' "${stack}_replica" |
  sort -u | tr '\n' ' ')
[ "$running" = "$image2 " ] || die "after the update the tasks run: $running"
log "rolling update to $image2 done in $update_ms ms, at most $max_down voter down at a time: $(summary "$c")"

# --- 6. the log -------------------------------------------------------------------------------
stop_writer
r=$(api check-log "$acks") || die "log check failed"
log "log check: $r"
log "measured: primary task killed -> next commit $kill_ms ms; its task back and caught up" \
  "$rejoin_ms ms later; node of the primary lost -> next commit $node_ms ms; rescheduled replica" \
  "a caught-up voter after $voter_ms ms, dead member removed after $clean_ms ms" \
  "(dead-member timeout 8 s); scale ${scale_log[*]}; rolling update of 3 tasks $update_ms ms"
log "PASS in $(($(now_ms) - t_start)) ms"
