#!/usr/bin/env bash
# tests/swarm/cluster.sh — a three-machine Docker Swarm on one Linux host,
# sourced by swarm.sh. Each node is a network namespace with its own dockerd (own
# data root, exec root, socket, hostname), wired by a veth to a bridge that
# lives in a namespace of its own (so the host's iptables never see the
# traffic); a client namespace on the same bridge plays the user's machine.
#
# Needs: root, ip, unshare, dockerd; sets nothing up outside its namespaces
# and $work. Every name starts with $sw_prefix.

sw_prefix=${SWARM_PREFIX:-rplswarm}
sw_net=${SWARM_SUBNET:-10.231.0}        # nodes .11-.13, client .2
sw_nodes=(n1 n2 n3)
declare -A sw_pid=()                    # node -> dockerd's pid (its unshare wrapper)

sw_ns() { printf '%s-%s\n' "$sw_prefix" "$1"; }
sw_ip() { printf '%s.%s\n' "$sw_net" "$((10 + ${1#n}))"; }
sw_sock() { printf 'unix://%s/%s/docker.sock\n' "$work" "$1"; }
# docker CLI against one node
dn() {
  local node=$1
  shift
  DOCKER_HOST=$(sw_sock "$node") docker "$@"
}
# run a command in the client namespace (HTTP to the nodes' published ports)
in_client() { ip netns exec "$(sw_ns cl)" "$@"; }

sw_link() { # namespace, address
  local ns=$1 addr=$2 br
  br=$(sw_ns br)
  ip netns add "$ns"
  ip -n "$br" link add "v-${ns##*-}" type veth peer name eth0 netns "$ns"
  ip -n "$br" link set "v-${ns##*-}" master br0 up
  ip -n "$ns" addr add "$addr/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set lo up
}

sw_network_up() {
  local br
  br=$(sw_ns br)
  ip netns add "$br"
  ip -n "$br" link add br0 type bridge
  ip -n "$br" link set br0 up
  sw_link "$(sw_ns cl)" "$sw_net.2"
  for n in "${sw_nodes[@]}"; do sw_link "$(sw_ns "$n")" "$(sw_ip "$n")"; done
}

# One node's dockerd: `ip netns exec` remounts /sys, hiding the cgroup
# hierarchies dockerd needs, so mount them again in its mount namespace;
# its own UTS namespace gives it its own hostname (the swarm node name).
sw_dockerd() {
  local n=$1 i=${1#n} d=$work/$1
  mkdir -p "$d"
  ip netns exec "$(sw_ns "$n")" unshare --uts bash -c '
    set -e
    hostname "$1"
    mount -t tmpfs cgroup /sys/fs/cgroup
    for c in cpu cpuacct cpuset memory devices freezer blkio pids; do
      mkdir -p /sys/fs/cgroup/$c
      mount -t cgroup -o $c cgroup /sys/fs/cgroup/$c
    done
    mkdir -p /sys/fs/cgroup/systemd /sys/fs/cgroup/unified
    mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd
    mount -t cgroup2 cgroup2 /sys/fs/cgroup/unified || true
    export DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1
    exec dockerd --data-root "$2/root" --exec-root "$2/exec" --pidfile "$2/docker.pid" \
      -H "unix://$2/docker.sock" --bip "172.$3.0.1/24" \
      --default-address-pool "base=172.$3.0.0/16,size=24" \
      --cgroup-parent "/$4" --storage-driver overlay2
  ' _ "$sw_prefix-$n" "$d" "$((20 + i))" "$sw_prefix-$n" >"$d/dockerd.log" 2>&1 &
  sw_pid[$n]=$!
}

sw_wait_daemon() {
  local n=$1
  for _ in $(seq 60); do
    dn "$n" info >/dev/null 2>&1 && return 0
    kill -0 "${sw_pid[$n]}" 2>/dev/null || break
    sleep 1
  done
  tail -n 30 "$work/$n/dockerd.log" >&2
  return 1
}

# Three managers: any one node can be lost and the swarm keeps its quorum.
# A 2 s dispatcher heartbeat (default 5 s) lets Swarm see a lost node sooner.
sw_swarm_up() {
  dn n1 swarm init --advertise-addr "$(sw_ip n1)" --listen-addr "$(sw_ip n1):2377" \
    --default-addr-pool 10.232.0.0/16 --dispatcher-heartbeat 2s >/dev/null
  local token
  token=$(dn n1 swarm join-token -q manager)
  for n in n2 n3; do
    dn "$n" swarm join --token "$token" --advertise-addr "$(sw_ip "$n")" \
      --listen-addr "$(sw_ip "$n"):2377" "$(sw_ip n1):2377" >/dev/null
  done
}

# Node loss as a machine losing power would look to the others: its link
# goes first (no FIN, no goodbye reaches anyone), then its daemon and every
# process it ran.
sw_node_down() {
  local n=$1
  ip -n "$(sw_ns "$n")" link set eth0 down
  sw_daemon_kill "$n"
}

sw_daemon_kill() {
  local n=$1
  local pid=${sw_pid[$n]:-}
  [ -n "$pid" ] || return 0
  # The containers' processes sit in the node's cgroups; dockerd, containerd
  # and the shims in its namespace. SIGKILL all: nothing is shut down
  # cleanly on a lost machine.
  local cg p
  for cg in /sys/fs/cgroup/pids/"$sw_prefix-$n"/*/cgroup.procs; do
    [ -f "$cg" ] && while read -r p; do kill -9 "$p" 2>/dev/null; done <"$cg"
  done
  for p in $(ip netns pids "$(sw_ns "$n")" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  sw_pid[$n]=
}

# Everything, whatever state it is in: daemons by pid, then by namespace,
# the namespaces (which removes the veths and the bridge), cgroups and data
# roots (after unmounting what the daemons left mounted in them).
sw_teardown() {
  local n
  for n in "${sw_nodes[@]}"; do
    if [ -n "${sw_pid[$n]:-}" ]; then
      kill -TERM "${sw_pid[$n]}" 2>/dev/null
    fi
  done
  for n in "${sw_nodes[@]}"; do
    if [ -n "${sw_pid[$n]:-}" ]; then
      for _ in $(seq 20); do kill -0 "${sw_pid[$n]}" 2>/dev/null || break; sleep 0.5; done
    fi
    sw_daemon_kill "$n"
  done
  local cg
  for n in "${sw_nodes[@]}"; do
    for cg in /sys/fs/cgroup/*/"$sw_prefix-$n"; do
      [ -d "$cg" ] && find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null
    done
  done
  for n in "${sw_nodes[@]}" cl br; do
    ip netns del "$(sw_ns "$n")" 2>/dev/null
  done
  if [ -n "${work:-}" ] && [ -d "$work" ]; then
    grep -o " $work/[^ ]*" /proc/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
    rm -rf "$work"
  fi
}
