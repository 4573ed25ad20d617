#!/usr/bin/env python3
"""bench/bench.py — the side-by-side benchmark behind bench/run (read that first).

Starts each system on 127.0.0.1 only (ours through `coordinator --spawn N`, a
3-member etcd cluster, Redis with 2 replicas and 3 Sentinels), one system at a
time, loads it, measures, stops it, and prints one markdown table with ratios
against the peers measured in the same run. Every process it starts is
recorded in WORK/pids and stopped by pid at the end, whatever happens.

Standard library only (Debian's python3).
"""
import argparse
import base64
import http.client
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
LUA = os.path.join(HERE, "wrk", "post.lua")
READ_LUA = os.path.join(HERE, "wrk", "read.lua")
READ_LIMIT = 10  # entries per read: the most recent page of a 1,000-entry log / 10 keys in etcd
READ_LEVELS = ("linearizable", "serializable")
ETCD_READ_PREFIX = "bench/read/"
T_START = time.monotonic()


def log(msg):
    print(f"[{time.monotonic() - T_START:6.1f}s] {msg}", file=sys.stderr, flush=True)


class Failure(Exception):
    pass


# ---------------------------------------------------------------------------
# processes: everything we start is recorded and stopped by pid
# ---------------------------------------------------------------------------

class Procs:
    def __init__(self, work):
        self.work = work
        self.live = {}  # pid -> (name, Popen or None for adopted grandchildren)
        self.pidfile = os.path.join(work, "pids")
        os.makedirs(os.path.join(work, "logs"), exist_ok=True)

    def _save(self):
        tmp = self.pidfile + ".tmp"
        with open(tmp, "w") as f:
            for pid, (name, _) in self.live.items():
                f.write(f"{pid} {name}\n")
        os.replace(tmp, self.pidfile)

    def start(self, name, argv, env=None):
        logf = open(os.path.join(self.work, "logs", name + ".log"), "ab")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                             env=env, cwd=self.work, start_new_session=True)
        logf.close()
        self.live[p.pid] = (name, p)
        self._save()
        return p

    def adopt(self, pid, name):
        """A process one of ours started (a replica spawned by the coordinator)."""
        if pid not in self.live:
            self.live[pid] = (name, None)
            self._save()

    def _gone(self, pid):
        name, p = self.live.get(pid, ("", None))
        if p is not None:
            return p.poll() is not None
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                ours = self.work.encode() in f.read()
            return state == "Z" or not ours
        except OSError:
            return True

    def forget(self, pid):
        self.live.pop(pid, None)
        self._save()

    def kill9(self, pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def reap(self, pid, timeout=5.0):
        deadline = time.monotonic() + timeout
        while not self._gone(pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        self.forget(pid)

    def stop(self, pids, grace=8.0):
        pids = [p for p in pids if p in self.live]
        for pid in pids:
            if not self._gone(pid):
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and not all(self._gone(p) for p in pids):
            time.sleep(0.05)
        for pid in pids:
            if not self._gone(pid):
                log(f"pid {pid} ({self.live[pid][0]}) did not stop: SIGKILL")
                self.kill9(pid)
        for pid in pids:
            self.reap(pid, 2.0)

    def stop_all(self):
        # newest first: the coordinator before its replicas (it stops them itself)
        self.stop(list(reversed(list(self.live.keys()))))


def rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


class RssSampler:
    """Max RSS per label while the block runs; pids_fn() gives {label: [pids]}."""

    def __init__(self, pids_fn, period=0.2):
        self.pids_fn = pids_fn
        self.period = period
        self.max = {}
        self._stop = threading.Event()

    def _run(self):
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.period)

    def sample(self):
        for label, pids in self.pids_fn().items():
            for pid in pids:
                r = rss_mb(pid)
                if r is not None and r > self.max.get(label, 0):
                    self.max[label] = r

    def __enter__(self):
        self.th = threading.Thread(target=self._run, daemon=True)
        self.th.start()
        return self

    def __exit__(self, *a):
        self._stop.set()
        self.th.join()


def idle_rss(pids_by_label):
    out = {}
    for label, pids in pids_by_label.items():
        vals = [r for r in (rss_mb(p) for p in pids) if r is not None]
        if vals:
            out[label] = max(vals)
    return out


# ---------------------------------------------------------------------------
# ports, http, load tools
# ---------------------------------------------------------------------------

class Ports:
    def __init__(self):
        self.used = set()
        self.rng = random.Random(os.getpid() ^ int(time.time()))

    @staticmethod
    def free(port):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False
        finally:
            s.close()

    def block(self, n):
        for _ in range(500):
            base = self.rng.randrange(20000, 32000)
            ports = range(base, base + n)
            if not any(p in self.used for p in ports) and all(self.free(p) for p in ports):
                self.used.update(ports)
                return base
        raise Failure(f"no block of {n} free ports")


def http_req(method, port, path, body=None, timeout=5.0):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def http_json(method, port, path, body=None, timeout=5.0):
    st, data = http_req(method, port, path, body, timeout)
    return st, json.loads(data) if data else None


def run_json(argv, timeout, prefix=None):
    """Run a tool and parse its last JSON line (optionally after `prefix`)."""
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=timeout)
    for line in reversed(p.stdout.splitlines()):
        if prefix and line.startswith(prefix):
            return json.loads(line[len(prefix):])
        if not prefix and line.startswith("{"):
            return json.loads(line)
    raise Failure(f"{os.path.basename(argv[0])} gave no result (exit {p.returncode}): "
                  f"{(p.stderr or p.stdout).strip()[-300:]}")


def wrk(port, mode, size, conns, secs, tag):
    threads = min(2, conns)
    argv = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{secs}s", "--timeout", "10s", "-s", LUA,
            f"http://127.0.0.1:{port}", "--", mode, str(size), tag]
    r = run_json(argv, secs + 30, prefix="JSON ")
    if r["status_errors"] or r["timeouts"]:
        log(f"  wrk {mode}: {r['status_errors']} non-2xx, {r['timeouts']} timeouts")
    return r


def wrk_read(port, mode, level, conns, secs, arg):
    """wrk with read.lua: the same page over and over at `level` (see read.lua)."""
    threads = min(2, conns)
    argv = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{secs}s", "--timeout", "10s", "-s", READ_LUA,
            f"http://127.0.0.1:{port}", "--", mode, level, str(READ_LIMIT), str(arg)]
    r = run_json(argv, secs + 30, prefix="JSON ")
    if r["status_errors"] or r["timeouts"]:
        log(f"  wrk read {mode} {level}: {r['status_errors']} non-2xx, {r['timeouts']} timeouts")
    return r


def percentile(vals, p):
    if not vals:
        return None
    s = sorted(vals)
    return s[min(len(s) - 1, int(p / 100.0 * len(s)))]


def probe_first_success(attempt, t0, timeout_s=30.0, interval=0.01, max_inflight=256):
    """Start attempt(i) every `interval` s in its own thread (each bounded by its
    own timeout, 1 s) until one returns True; the ms from t0 to that success.
    A new attempt every 10 ms whatever the earlier ones do, so a request that
    hangs (etcd's gateway holds a put forwarded to a dead leader) costs no
    resolution; 256 in flight at most."""
    lock = threading.Lock()
    first = []
    done = threading.Event()
    inflight = [0]

    def run(i):
        try:
            ok = attempt(i)
        except Exception:
            ok = False
        t = time.monotonic()
        with lock:
            inflight[0] -= 1
            if ok:
                first.append(t)
                done.set()

    i = 0
    deadline = t0 + timeout_s
    while not done.is_set() and time.monotonic() < deadline:
        with lock:
            room = inflight[0] < max_inflight
            if room:
                inflight[0] += 1
        if room:
            threading.Thread(target=run, args=(i,), daemon=True).start()
            i += 1
        done.wait(interval)
    if not first:
        raise Failure(f"no committed write within {timeout_s:.0f} s of the kill")
    return (min(first) - t0) * 1000.0


# ---------------------------------------------------------------------------
# ours
# ---------------------------------------------------------------------------

class Ours:
    def __init__(self, ctx, n, tag):
        self.ctx, self.n, self.tag = ctx, n, tag
        self.http_port = ctx.ports.block(1)
        self.base = ctx.ports.block(n)
        self.addrs = ",".join(f"127.0.0.1:{self.base + i}" for i in range(n))
        self.data = os.path.join(ctx.work, tag)
        self.proc = None

    def lg(self, cmd):
        """loadgen CMD, proving the cluster secret --spawn made (builds from
        before issue 16 make none)."""
        secret = os.path.join(self.data, "cluster-secret")
        return [self.ctx.bins["loadgen"], cmd] + (["-K", secret] if os.path.exists(secret) else [])

    def start(self):
        argv = [self.ctx.bins["coordinator"], "--listen", f"127.0.0.1:{self.http_port}",
                "--spawn", str(self.n), "--spawn-base-port", str(self.base),
                "--data-dir", self.data, "--replica-bin", self.ctx.bins["replica"]]
        self.proc = self.ctx.procs.start(self.tag + "-coordinator", argv)
        self.wait_ready(30)

    def cluster(self, timeout=2.0):
        st, c = http_json("GET", self.http_port, "/api/cluster", timeout=timeout)
        if st != 200:
            raise Failure(f"/api/cluster: {st}")
        return c

    def replica_pids(self):
        """{id: pid} of the coordinator's children (adopted so they are stopped too)."""
        out = {}
        cpid = self.proc.pid
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/stat") as f:
                    st = f.read().rsplit(")", 1)[1].split()
                if int(st[1]) != cpid or st[0] == "Z":
                    continue
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    args = f.read().decode(errors="replace").split("\0")
            except (OSError, ValueError, IndexError):
                continue
            if "--id" in args:
                rid = args[args.index("--id") + 1]
                out[rid] = int(d)
                self.ctx.procs.adopt(int(d), f"{self.tag}-{rid}")
        return out

    def settled(self):
        c = self.cluster()
        reps = c.get("replicas", [])
        if not c.get("primary") or len(reps) != self.n:
            return None
        if any(r.get("status") != "up" for r in reps):
            return None
        if len({r.get("last_index") for r in reps}) != 1 or len({r.get("commit_index") for r in reps}) != 1:
            return None
        return c

    def wait_settled(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                c = self.settled()
                if c and len(self.replica_pids()) == self.n:
                    return c
            except (OSError, Failure, ValueError):
                pass
            time.sleep(0.05)
        raise Failure(f"{self.tag}: cluster not settled within {timeout} s")

    def write(self, data="hello", rid=None, timeout=10.0):
        body = {"data": data}
        if rid:
            body["id"] = rid
        st, r = http_json("POST", self.http_port, "/api/requests", json.dumps(body), timeout)
        if st != 201:
            raise Failure(f"POST /api/requests: {st} {r}")
        return r

    def wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Failure(f"{self.tag}: coordinator exited ({self.proc.returncode}); see logs")
            try:
                if self.settled():
                    self.write("ready", timeout=5)
                    self.wait_settled(timeout)
                    return
            except (OSError, Failure, ValueError) as e:
                last = str(e)
            time.sleep(0.1)
        raise Failure(f"{self.tag}: no primary/commit within {timeout} s {last}")

    def pids_by_label(self):
        return {"replica": list(self.replica_pids().values()), "coordinator": [self.proc.pid]}

    def stop(self):
        pids = list(self.replica_pids().values())
        self.ctx.procs.stop([self.proc.pid])
        self.ctx.procs.stop(pids, grace=3.0)  # already gone when the coordinator stopped them

    def loadgen(self, conns, size, secs, extra=()):
        argv = [*self.lg("write"), "-a", self.addrs, "-c", str(conns), "-s",
                str(size), "-d", str(secs), "-P", f"{self.tag}-lg{random.randrange(1 << 30)}",
                *extra]
        return run_json(argv, secs + 60)

    def read(self, level, conns, secs, after, target=None):
        """loadgen read: linearizable at the primary, serializable at one backup
        (unless `target`), the page of READ_LIMIT entries after `after`."""
        argv = [*self.lg("read"), "-a", self.addrs, "-C", level, "-c", str(conns),
                "-l", str(READ_LIMIT), "-i", str(after), "-d", str(secs)]
        if target:
            argv += ["-T", target]
        r = run_json(argv, secs + 60)
        if r["ops"] and r["entries"] != r["ops"] * READ_LIMIT:
            raise Failure(f"loadgen read {level}: {r['entries']} entries in {r['ops']} reads, "
                          f"not {READ_LIMIT} each")
        return r

    def http_read(self, level, after):
        """One GET /api/requests at `level`: (served_by, entries) after checking the answer."""
        st, r = http_json("GET", self.http_port,
                          f"/api/requests?after={after}&limit={READ_LIMIT}&consistency={level}")
        if st != 200 or r.get("consistency") != level or len(r.get("entries", [])) != READ_LIMIT:
            raise Failure(f"GET /api/requests {level}: {st} {str(r)[:200]}")
        return r["served_by"], len(r["entries"])

    def fill_for_reads(self, n=1000):
        """n 16-byte requests (loadgen, 16 connections), then recent_page()."""
        w = run_json([*self.lg("write"), "-a", self.addrs, "-c", "16", "-s", "16",
                      "-n", str(n), "-d", "60", "-P", f"{self.tag}-fill{random.randrange(1 << 30)}"], 120)
        if w["ops"] < n:
            raise Failure(f"only {w['ops']} of {n} writes committed before the reads")
        return self.recent_page()

    def recent_page(self):
        """The `after` of the most recent READ_LIMIT entries, once every replica has them
        (asked of the replicas themselves: the coordinator's view lags by its status period)."""
        addrs = self.addrs.split(",")
        status = lambda addr: run_json([*self.lg("status"), "-a", addr, "-t", "2000"], 10)
        commit = max(status(addr)["commit_index"] for addr in addrs)
        deadline = time.monotonic() + 30
        while min(status(addr)["commit_index"] for addr in addrs) < commit:
            if time.monotonic() > deadline:
                raise Failure(f"replicas not all at commit index {commit} within 30 s")
            time.sleep(0.05)
        return commit - READ_LIMIT

    def failover_direct(self):
        c = self.wait_settled(30)
        pid = self.replica_pids()[c["primary"]]
        argv = [*self.lg("failover"), "-a", self.addrs, "-k", str(pid), "-t",
                "30000", "-P", f"{self.tag}-fo{random.randrange(1 << 30)}"]
        r = run_json(argv, 60)
        self.ctx.procs.forget(pid)
        return r["failover_ms"]

    def failover_http(self):
        c = self.wait_settled(30)
        pid = self.replica_pids()[c["primary"]]
        self.write("before-kill")
        tag = f"{self.tag}-fh{random.randrange(1 << 30)}"

        def attempt(i):
            st, _ = http_req("POST", self.http_port, "/api/requests",
                         json.dumps({"data": "after-kill", "id": f"{tag}-{i}"}), timeout=1.0)
            return st == 201

        t0 = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        ms = probe_first_success(attempt, t0)
        self.ctx.procs.forget(pid)
        return ms


# ---------------------------------------------------------------------------
# etcd
# ---------------------------------------------------------------------------

def b64(s):
    return base64.b64encode(s.encode()).decode()


class Etcd:
    def __init__(self, ctx, tag, heartbeat=None, election=None):
        self.ctx, self.tag = ctx, tag
        base = ctx.ports.block(6)
        self.client = [base + 2 * i for i in range(3)]
        self.peer = [base + 2 * i + 1 for i in range(3)]
        self.names = [f"e{i + 1}" for i in range(3)]
        self.cluster_arg = ",".join(f"{n}=http://127.0.0.1:{p}" for n, p in zip(self.names, self.peer))
        self.tuning = []
        if heartbeat:
            self.tuning = ["--heartbeat-interval", str(heartbeat), "--election-timeout", str(election)]
        self.procs = [None] * 3
        self.data = os.path.join(ctx.work, tag)

    def argv(self, i):
        return ["etcd", "--name", self.names[i], "--data-dir", os.path.join(self.data, self.names[i]),
                "--listen-client-urls", f"http://127.0.0.1:{self.client[i]}",
                "--advertise-client-urls", f"http://127.0.0.1:{self.client[i]}",
                "--listen-peer-urls", f"http://127.0.0.1:{self.peer[i]}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.peer[i]}",
                "--initial-cluster", self.cluster_arg, "--initial-cluster-state", "new",
                "--initial-cluster-token", self.tag, "--logger", "zap", "--log-level", "warn",
                *self.tuning]

    def start_member(self, i):
        self.procs[i] = self.ctx.procs.start(f"{self.tag}-{self.names[i]}", self.argv(i))

    def start(self):
        for i in range(3):
            self.start_member(i)
        self.wait_healthy(30)
        self.put(self.leader(), "ready")

    def status(self, i, timeout=1.0):
        st, s = http_json("POST", self.client[i], "/v3/maintenance/status", "{}", timeout)
        if st != 200:
            raise Failure(f"etcd status {st}")
        return s

    def wait_healthy(self, timeout):
        """Every member up, agreeing on one leader, at the same raft index."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            try:
                ss = [self.status(i) for i in range(3)]
                leaders = {s.get("leader") for s in ss}
                idx = {s.get("raftAppliedIndex") for s in ss}
                if len(leaders) == 1 and "0" not in leaders and None not in leaders and len(idx) == 1:
                    return ss
                last = f"leaders {leaders} applied {idx}"
            except (OSError, Failure, ValueError) as e:
                last = str(e)
            time.sleep(0.05)
        raise Failure(f"{self.tag}: not healthy within {timeout} s: {last}")

    def leader(self):
        ss = self.wait_healthy(30)
        lid = ss[0]["leader"]
        for i, s in enumerate(ss):
            if s["header"]["member_id"] == lid:
                return i
        raise Failure("etcd leader not among members")

    def put(self, i, value, key=None, timeout=5.0):
        key = key or f"bench/{self.tag}/{random.randrange(1 << 40)}"
        st, body = http_req("POST", self.client[i], "/v3/kv/put",
                        json.dumps({"key": b64(key), "value": b64(value)}), timeout)
        if st != 200 or b'"error"' in body:
            raise Failure(f"etcd put {st}: {body[:200]!r}")
        return body

    def pids_by_label(self):
        return {"member": [p.pid for p in self.procs if p is not None]}

    def fill_for_reads(self):
        """READ_LIMIT keys of 16 B under ETCD_READ_PREFIX (what read.lua ranges over)."""
        li = self.leader()
        for k in range(READ_LIMIT):
            self.put(li, "abcdefghijklmnop", key=f"{ETCD_READ_PREFIX}{k:02d}")
        self.wait_healthy(30)

    def range_read(self, i, level):
        """One range over the read prefix on member i: the number of keys (checked)."""
        body = {"key": b64(ETCD_READ_PREFIX), "range_end": b64(ETCD_READ_PREFIX[:-1] + "0"),
                "limit": READ_LIMIT}
        if level == "serializable":
            body["serializable"] = True
        st, r = http_json("POST", self.client[i], "/v3/kv/range", json.dumps(body))
        if st != 200 or len(r.get("kvs", [])) != READ_LIMIT:
            raise Failure(f"etcd range {level} on e{i + 1}: {st} {str(r)[:200]}")
        return len(r["kvs"])

    def failover(self):
        li = self.leader()
        self.put(li, "before-kill")
        others = [i for i in range(3) if i != li]
        tag = f"{self.tag}-fo{random.randrange(1 << 30)}"

        def attempt(k):
            self.put(others[k % 2], "after-kill", key=f"{tag}/{k}", timeout=1.0)
            return True

        pid = self.procs[li].pid
        t0 = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        ms = probe_first_success(attempt, t0)
        self.ctx.procs.reap(pid)
        self.start_member(li)  # same data dir: it rejoins as a follower
        self.wait_healthy(60)
        return ms

    def stop(self):
        self.ctx.procs.stop([p.pid for p in self.procs if p is not None])


# ---------------------------------------------------------------------------
# Redis: a primary, 2 async replicas, 3 Sentinels
# ---------------------------------------------------------------------------

def resp_cmd(*args):
    out = [f"*{len(args)}\r\n".encode()]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


def resp_read(f):
    line = f.readline()
    if not line:
        raise Failure("redis: connection closed")
    t, rest = line[:1], line[1:-2]
    if t in (b"+", b"-", b":"):
        return (t + rest).decode()
    if t == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)[:-2]
        return data.decode(errors="replace")
    if t == b"*":
        n = int(rest)
        return None if n < 0 else [resp_read(f) for _ in range(n)]
    raise Failure(f"redis: bad reply {line!r}")


def redis_call(port, *args, timeout=1.0):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(resp_cmd(*args))
        with s.makefile("rb") as f:
            return resp_read(f)


class Redis:
    DOWN_AFTER_MS = 1000  # 300 and 500 gave cascading failovers here (see README)
    FAILOVER_TIMEOUT_MS = 3000

    def __init__(self, ctx, tag):
        self.ctx, self.tag = ctx, tag
        base = ctx.ports.block(6)
        self.server_ports = [base, base + 1, base + 2]
        self.sentinel_ports = [base + 3, base + 4, base + 5]
        self.dir = os.path.join(ctx.work, tag)
        os.makedirs(self.dir, exist_ok=True)
        self.servers = [None] * 3
        self.sentinels = [None] * 3

    def server_conf(self, i):
        path = os.path.join(self.dir, f"redis-{i + 1}.conf")
        if not os.path.exists(path):
            d = os.path.join(self.dir, f"r{i + 1}")
            os.makedirs(d, exist_ok=True)
            lines = [f"port {self.server_ports[i]}", "bind 127.0.0.1", "daemonize no",
                     f"dir {d}", 'save ""', "appendonly no", "protected-mode yes",
                     "repl-diskless-sync-delay 0"]
            if i > 0:
                lines.append(f"replicaof 127.0.0.1 {self.server_ports[0]}")
            with open(path, "w") as f:
                f.write("\n".join(lines) + "\n")
        return path

    def sentinel_conf(self, i):
        path = os.path.join(self.dir, f"sentinel-{i + 1}.conf")
        d = os.path.join(self.dir, f"s{i + 1}")
        os.makedirs(d, exist_ok=True)
        with open(path, "w") as f:
            f.write("\n".join([
                f"port {self.sentinel_ports[i]}", "bind 127.0.0.1", "daemonize no", f"dir {d}",
                f"sentinel monitor bench 127.0.0.1 {self.server_ports[0]} 2",
                f"sentinel down-after-milliseconds bench {self.DOWN_AFTER_MS}",
                f"sentinel failover-timeout bench {self.FAILOVER_TIMEOUT_MS}",
                "sentinel parallel-syncs bench 1"]) + "\n")
        return path

    def start_server(self, i, replicaof=None):
        argv = ["redis-server", self.server_conf(i)]
        if replicaof:
            argv += ["--replicaof", "127.0.0.1", str(replicaof)]
        self.servers[i] = self.ctx.procs.start(f"{self.tag}-server{i + 1}", argv)

    def start(self):
        for i in range(3):
            self.start_server(i)
        for i in range(3):
            self.sentinels[i] = self.ctx.procs.start(
                f"{self.tag}-sentinel{i + 1}", ["redis-sentinel", self.sentinel_conf(i)])
        self.wait_healthy(30)
        self.set(self.master_port(), "ready", "1")

    def master_port(self, k=0):
        r = redis_call(self.sentinel_ports[k % 3], "SENTINEL", "get-master-addr-by-name", "bench")
        if not r:
            raise Failure("sentinel knows no master")
        return int(r[1])

    def set(self, port, key, value, timeout=1.0):
        r = redis_call(port, "SET", key, value, timeout=timeout)
        if r != "+OK":
            raise Failure(f"redis SET: {r}")

    def wait_healthy(self, timeout):
        """Sentinels agree on the master, which has 2 replicas online, all linked up."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            try:
                masters = {self.master_port(k) for k in range(3)}
                if len(masters) == 1:
                    m = masters.pop()
                    info = redis_call(m, "INFO", "replication")
                    online = info.count("state=online")
                    reps = [p for p in self.server_ports if p != m]
                    links = [redis_call(p, "INFO", "replication") for p in reps]
                    seen = [redis_call(sp, "SENTINEL", "replicas", "bench") for sp in self.sentinel_ports]
                    sentinels = [redis_call(sp, "SENTINEL", "sentinels", "bench") for sp in self.sentinel_ports]
                    ok_seen = all(
                        len(lst) == 2 and all("flags" in x and x[x.index("flags") + 1] == "slave"
                                              for x in lst) for lst in seen)
                    if ("role:master" in info and online == 2 and ok_seen
                            and all(len(s) == 2 for s in sentinels)
                            and all("master_link_status:up" in x for x in links)):
                        return m
                    last = f"master {m} online {online} sentinel views ok={ok_seen}"
                else:
                    last = f"sentinels disagree: {masters}"
            except (OSError, Failure, ValueError, IndexError) as e:
                last = str(e)
            time.sleep(0.1)
        raise Failure(f"{self.tag}: not healthy within {timeout} s: {last}")

    def pids_by_label(self):
        return {"server": [p.pid for p in self.servers if p], "sentinel": [p.pid for p in self.sentinels if p]}

    def bench(self, conns, size, secs):
        m = self.master_port()
        redis_call(m, "FLUSHALL", timeout=30)
        keyspace = "1000000" if size <= 64 else "100000"
        base = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(m), "-t", "set", "-c", str(conns),
                "-d", str(size), "-r", keyspace, "--csv"]
        # calibrate the count so the run lasts about `secs`
        warm = self._parse(subprocess.run(base + ["-n", str(max(2000, conns * 100))],
                                          capture_output=True, text=True, timeout=60))
        n = int(min(max(warm["ops_per_s"] * secs, 1000), 3_000_000))
        r = self._parse(subprocess.run(base + ["-n", str(n)], capture_output=True, text=True,
                                       timeout=secs * 4 + 60))
        r["ops"] = n
        return r

    @staticmethod
    def _parse(p):
        lines = [l for l in p.stdout.splitlines() if l.startswith('"')]
        if len(lines) < 2:
            raise Failure(f"redis-benchmark gave no CSV (exit {p.returncode}): {p.stderr[-300:]}")
        head = [h.strip('"') for h in lines[0].split(",")]
        vals = [v.strip('"') for v in lines[-1].split(",")]
        d = dict(zip(head, vals))
        return {"tool": "redis-benchmark", "ops_per_s": float(d["rps"]),
                "mean_ms": float(d["avg_latency_ms"]), "p50_ms": float(d["p50_latency_ms"]),
                "p99_ms": float(d["p99_latency_ms"]), "max_ms": float(d["max_latency_ms"]),
                "errors": 0}

    def failover(self):
        m = self.wait_healthy(60)
        mi = self.server_ports.index(m)
        self.set(m, "before-kill", "1")
        tag = f"{self.tag}-fo{random.randrange(1 << 30)}"

        def attempt(k):
            port = self.master_port(k)
            if port == m:
                return False  # Sentinel has not failed over yet; the old one is dead
            self.set(port, f"{tag}/{k}", "after-kill")
            return True

        pid = self.servers[mi].pid
        t0 = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        ms = probe_first_success(attempt, t0)
        self.ctx.procs.reap(pid)
        # Back as a replica of the new master, as an operator would restart it
        # (left alone it returns as a master and Sentinel converts it ~10 s later).
        self.start_server(mi, replicaof=self.master_port())
        self.wait_healthy(60)
        return ms

    def stop(self):
        self.ctx.procs.stop([p.pid for p in self.sentinels + self.servers if p is not None])


# ---------------------------------------------------------------------------
# catch-up: replicas started directly (no supervisor), one kept down
# ---------------------------------------------------------------------------

def catchup(ctx, missed):
    base = ctx.ports.block(3)
    addrs = [f"127.0.0.1:{base + i}" for i in range(3)]
    data = os.path.join(ctx.work, "catchup")
    procs = {}

    def start(i):
        argv = [ctx.bins["replica"], "--id", f"r{i + 1}", "--listen", addrs[i], "--advertise", addrs[i],
                "--peers", ",".join(addrs), "--data-dir", os.path.join(data, f"r{i + 1}")]
        procs[i] = ctx.procs.start(f"catchup-r{i + 1}", argv)

    def status(i):
        return run_json([ctx.bins["loadgen"], "status", "-a", addrs[i], "-t", "2000"], 10)

    try:
        for i in range(3):
            start(i)
        lg = [ctx.bins["loadgen"], "write", "-a", ",".join(addrs), "-c", "1", "-n", "10", "-d", "30"]
        run_json(lg, 60)  # waits for a primary, then 10 writes
        roles = {i: status(i) for i in range(3)}
        victim = max(i for i in range(3) if roles[i]["role"] != "primary")
        ctx.procs.stop([procs[victim].pid])
        live = ",".join(a for j, a in enumerate(addrs) if j != victim)
        log(f"  catch-up: r{victim + 1} stopped; writing {missed} requests to the other two")
        w = run_json([ctx.bins["loadgen"], "write", "-a", live, "-c", "64", "-s", "16", "-n",
                      str(missed), "-d", "600"], 700)
        if w["ops"] < missed:
            raise Failure(f"catch-up: only {w['ops']} of {missed} writes committed")
        target = max(status(j)["commit_index"] for j in range(3) if j != victim)
        t_spawn_ms = time.monotonic() * 1000.0  # CLOCK_MONOTONIC, as loadgen's clock
        start(victim)
        r = run_json([ctx.bins["loadgen"], "catchup", "-a", addrs[victim], "-i", str(target), "-t",
                      "300000", "-S", f"{t_spawn_ms:.3f}"], 330)
        r["missed"] = w["ops"]
        r["entries_per_s"] = w["ops"] / (r["catchup_ms"] / 1000.0) if r["catchup_ms"] > 0 else None
        r["rss_mb"] = rss_mb(procs[victim].pid)
        return r
    finally:
        ctx.procs.stop([p.pid for p in procs.values()])


# ---------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------

class Ctx:
    def __init__(self, args):
        self.args = args
        self.work = args.work
        self.procs = Procs(self.work)
        self.ports = Ports()
        self.bins = {"replica": args.replica, "coordinator": args.coordinator, "loadgen": args.loadgen}
        self.res = {}  # key -> value (numbers or dicts)
        self.failures = []

    def attempt(self, what, fn, *a):
        try:
            return fn(*a)
        except (Failure, OSError, subprocess.TimeoutExpired, ValueError, KeyError) as e:
            log(f"FAILED {what}: {e}")
            self.failures.append(f"{what}: {e}")
            return None


def load_matrix(ctx, name, run_one, sizes, conns_list, secs, warm=True):
    """run_one(conns, size, secs) -> dict; results under res[(name, conns, size)]."""
    for size in sizes:
        if warm:
            ctx.attempt(f"{name} warm-up", run_one, 16, size, 1)
        for conns in conns_list:
            r = ctx.attempt(f"{name} {conns} conn {size} B", run_one, conns, size, secs)
            if r:
                ctx.res[(name, conns, size)] = r
                log(f"  {name:14s} c={conns:<3d} {size:5d} B: {r['ops_per_s']:9.1f}/s "
                    f"p50 {r['p50_ms']:.3f} p99 {r['p99_ms']:.3f} ms errors {r.get('errors', 0)}")


def failovers(ctx, name, fn, kills):
    vals = []
    for k in range(kills):
        ms = ctx.attempt(f"{name} failover #{k + 1}", fn)
        if ms is None:
            break
        vals.append(ms)
        log(f"  {name} failover #{k + 1}: {ms:.1f} ms")
    if vals:
        ctx.res[(name, "failover")] = vals


def phase_ours(ctx, a):
    o = Ours(ctx, 3, "ours3")
    log(f"ours: coordinator on :{o.http_port}, 3 replicas on :{o.base}..")
    o.start()
    o.replica_pids()
    time.sleep(a.idle_wait)
    ctx.res[("ours", "rss_idle")] = idle_rss(o.pids_by_label())
    with RssSampler(o.pids_by_label) as s:
        load_matrix(ctx, "ours-http", lambda c, z, t: wrk(o.http_port, "coordinator", z, c, t, f"h{c}-{z}-{random.randrange(1 << 30)}"),
                    a.sizes, a.conns, a.secs)
        load_matrix(ctx, "ours-proto", lambda c, z, t: o.loadgen(c, z, t), a.sizes, a.conns, a.secs)
    ctx.res[("ours", "rss_load")] = s.max
    o.stop()
    # failover on a fresh cluster (a small log: restarts are quick)
    o = Ours(ctx, 3, "ours3-failover")
    o.start()
    failovers(ctx, "ours-proto", o.failover_direct, a.kills)
    failovers(ctx, "ours-http", o.failover_http, a.kills)
    o.stop()


def phase_scale(ctx, a):
    for n in a.scale:
        o = Ours(ctx, n, f"ours{n}")
        log(f"ours with {n} replicas")
        o.start()
        for conns in a.scale_conns:
            for name, fn in (("http", lambda c, z, t: wrk(o.http_port, "coordinator", z, c, t, f"s{n}-{c}-{random.randrange(1 << 30)}")),
                             ("proto", lambda c, z, t: o.loadgen(c, z, t))):
                r = ctx.attempt(f"ours {n} replicas {name} {conns} conn", fn, conns, 16, a.secs)
                if r:
                    ctx.res[(f"ours-{name}", conns, 16, n)] = r
                    log(f"  {n} replicas {name:5s} c={conns:<3d}: {r['ops_per_s']:9.1f}/s "
                        f"p50 {r['p50_ms']:.3f} p99 {r['p99_ms']:.3f} ms")
        o.stop()


def phase_catchup(ctx, a):
    r = ctx.attempt("catch-up", catchup, ctx, a.missed)
    if r:
        ctx.res[("ours", "catchup")] = r
        log(f"  catch-up of {r['missed']} requests: {r['catchup_ms']:.0f} ms "
            f"({r['entries_per_s']:.0f} entries/s), listening after {r['listening_ms']:.0f} ms")


def phase_etcd(ctx, a):
    e = Etcd(ctx, "etcd")
    log(f"etcd (defaults: heartbeat 100 ms, election 1000 ms) on :{e.client}")
    e.start()
    time.sleep(a.idle_wait)
    ctx.res[("etcd", "rss_idle")] = idle_rss(e.pids_by_label())
    with RssSampler(e.pids_by_label) as s:
        load_matrix(ctx, "etcd", lambda c, z, t: wrk(e.client[e.leader()], "etcd", z, c, t, f"e{c}-{z}-{random.randrange(1 << 30)}"),
                    a.sizes, a.conns, a.secs)
    ctx.res[("etcd", "rss_load")] = s.max
    failovers(ctx, "etcd", e.failover, a.kills)
    e.stop()
    e = Etcd(ctx, "etcd-tuned", heartbeat=50, election=300)
    log(f"etcd tuned (heartbeat 50 ms, election 300 ms) on :{e.client}")
    e.start()
    if a.tuned_load:
        load_matrix(ctx, "etcd-tuned", lambda c, z, t: wrk(e.client[e.leader()], "etcd", z, c, t, f"t{c}-{z}-{random.randrange(1 << 30)}"),
                    [16], [1, 64] if not a.smoke else [1], a.secs, warm=False)
    failovers(ctx, "etcd-tuned", e.failover, a.kills)
    e.stop()


def phase_redis(ctx, a):
    r = Redis(ctx, "redis")
    log(f"redis: servers on :{r.server_ports}, sentinels on :{r.sentinel_ports} "
        f"(down-after-milliseconds {Redis.DOWN_AFTER_MS})")
    r.start()
    time.sleep(a.idle_wait)
    ctx.res[("redis", "rss_idle")] = idle_rss(r.pids_by_label())
    with RssSampler(r.pids_by_label) as s:
        load_matrix(ctx, "redis", r.bench, a.sizes, a.conns, a.secs, warm=False)
    ctx.res[("redis", "rss_load")] = s.max
    failovers(ctx, "redis", r.failover, a.kills)
    r.stop()


def phase_reads(ctx, a):
    """Reads at both consistency levels, nothing written meanwhile: ours over
    the protocol (loadgen read) and over HTTP (wrk read.lua through the
    coordinator), etcd through its v3 gateway (wrk read.lua, POST
    /v3/kv/range). Linearizable at the primary / leader; serializable at one
    backup / follower (HTTP: where the coordinator sends it). Every read the
    same page of READ_LIMIT 16-byte entries. At each connection count the
    levels alternate in `a.read_rounds` rounds of secs / rounds each, so both
    see the same background load (see points())."""

    def points(name, conns, fns, pids):
        """fns: {level: fn(conns, secs)}. Rounds of every level in turn; per
        level: reads/s over all rounds, p50 and p99 the median of the rounds'
        (each round's from its tool), and the CPU time (user + system) that
        `pids` (every replica and the coordinator, or every etcd member) spent
        per read."""
        secs = max(1, round(a.secs / a.read_rounds))
        rounds = {level: [] for level in fns}
        cpu = {level: 0.0 for level in fns}
        for k in range(a.read_rounds):
            for level, fn in fns.items():
                c0 = [cpu_seconds(p) for p in pids]
                r = ctx.attempt(f"{name} {level} {conns} conn, round {k + 1}", fn, conns, secs)
                c1 = [cpu_seconds(p) for p in pids]
                if r is None:
                    continue
                rounds[level].append(r)
                cpu[level] = None if cpu[level] is None or None in c0 + c1 else \
                    cpu[level] + sum(y - x for x, y in zip(c0, c1))
                log(f"  {name:15s} {level:12s} c={conns:<3d} round {k + 1}: {r['ops_per_s']:9.1f}/s "
                    f"p50 {r['p50_ms']:.3f} p99 {r['p99_ms']:.3f} ms errors {r.get('errors', 0)}"
                    + (f" on {r['servers']}" if "servers" in r else ""))
        for level, rs in rounds.items():
            ops = sum(r["ops"] for r in rs)
            if not ops:
                continue
            agg = {"ops": ops, "seconds": sum(r["seconds"] for r in rs),
                   "errors": sum(r.get("errors", 0) for r in rs),
                   "p50_ms": statistics.median(r["p50_ms"] for r in rs),
                   "p99_ms": statistics.median(r["p99_ms"] for r in rs),
                   "rounds": [{k: r[k] for k in ("ops_per_s", "p50_ms", "p99_ms")} for r in rs]}
            agg["ops_per_s"] = ops / agg["seconds"]
            if cpu[level] is not None:
                agg["server_cpu_us"] = cpu[level] * 1e6 / ops
            ctx.res[(name, level, conns)] = agg
            log(f"  {name:15s} {level:12s} c={conns:<3d} in all: {agg['ops_per_s']:9.1f}/s "
                f"p50 {agg['p50_ms']:.3f} p99 {agg['p99_ms']:.3f} ms (medians of {len(rs)}), "
                f"server CPU {agg.get('server_cpu_us', 0):.1f} µs/read")

    o = Ours(ctx, 3, "ours3-reads")
    log(f"ours (reads): coordinator on :{o.http_port}, 3 replicas on :{o.base}..")
    o.start()
    try:
        after = o.fill_for_reads()
        for level in READ_LEVELS:
            served_by, _ = o.http_read(level, after)
            log(f"  ours: a {level} GET of {READ_LIMIT} entries after {after} served by {served_by}")
        ctx.attempt("ours-proto reads warm-up", o.read, "linearizable", 16, 1, after)
        pids = list(o.replica_pids().values()) + [o.proc.pid]
        for conns in a.read_conns:
            points("ours-proto-read", conns,
                   {lv: (lambda c, t, lv=lv: o.read(lv, c, t, after)) for lv in READ_LEVELS}, pids)
        for conns in a.read_conns:
            points("ours-http-read", conns,
                   {lv: (lambda c, t, lv=lv: wrk_read(o.http_port, "coordinator", lv, c, t, after))
                    for lv in READ_LEVELS}, pids)
    finally:
        o.stop()
    e = Etcd(ctx, "etcd-reads")
    log(f"etcd (reads; defaults) on :{e.client}")
    e.start()
    try:
        e.fill_for_reads()
        li = e.leader()
        fi = min(i for i in range(3) if i != li)
        member = {"linearizable": li, "serializable": fi}
        for level in READ_LEVELS:
            e.range_read(member[level], level)
        log(f"  etcd: linearizable at the leader e{li + 1}, serializable at the follower e{fi + 1}")
        ctx.attempt("etcd reads warm-up", wrk_read, e.client[li], "etcd", "linearizable", 16, 1,
                    ETCD_READ_PREFIX)
        for conns in a.read_conns:
            points("etcd-read", conns,
                   {lv: (lambda c, t, lv=lv: wrk_read(e.client[member[lv]], "etcd", lv, c, t,
                                                       ETCD_READ_PREFIX)) for lv in READ_LEVELS},
                   [p.pid for p in e.procs])
    finally:
        e.stop()


# ---------------------------------------------------------------------------
# storage (issue 13): a long log — memory while writing, restart, catch-up
# ---------------------------------------------------------------------------

STORAGE_CONNS = 64  # loadgen connections for both parts of the log
STORAGE_WRITE_SECS = 3000  # bound on each part's loadgen run
STORAGE_WAIT_SECS = 900  # bound on a restart or a catch-up
STORAGE_SAMPLE_S = 0.5  # RSS sampling period
STORAGE_MEM_FLOOR_MB = 1024  # MemAvailable below this: the replicas are killed (a shared machine)
STORAGE_TARGET_RSS_MB = 64
STORAGE_TARGET_RESTART_MS = 2000
STORAGE_TARGET_CATCHUP_PER_S = 1_000_000


def proc_mem(pid):
    """(VmRSS, VmHWM) of pid in MB, from /proc/PID/status; (None, None) once it is gone."""
    rss = hwm = None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) / 1024.0
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return rss, hwm


def mem_available_mb():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return None


class MemSampler:
    """Every STORAGE_SAMPLE_S while the block runs: VmRSS and VmHWM of each
    process of pids_fn() ({label: pid}); the max of each per label. If the
    machine's MemAvailable falls under STORAGE_MEM_FLOOR_MB, on_low() is called
    once (it kills the replicas: better a failed phase than the OOM killer
    choosing among other people's processes)."""

    def __init__(self, pids_fn, on_low=None, period=STORAGE_SAMPLE_S):
        self.pids_fn, self.on_low, self.period = pids_fn, on_low, period
        self.rss, self.hwm = {}, {}
        self.low = None  # MemAvailable MB when on_low fired
        self._stop = threading.Event()

    def sample(self):
        for label, pid in self.pids_fn().items():
            rss, hwm = proc_mem(pid)
            if rss is not None:
                self.rss[label] = max(rss, self.rss.get(label, 0))
            if hwm is not None:
                self.hwm[label] = max(hwm, self.hwm.get(label, 0))
        avail = mem_available_mb()
        if avail is not None and avail < STORAGE_MEM_FLOOR_MB and self.low is None:
            self.low = avail
            log(f"  storage: MemAvailable {avail:.0f} MB < {STORAGE_MEM_FLOOR_MB} MB: killing the replicas")
            if self.on_low:
                self.on_low()

    def _run(self):
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.period)

    def __enter__(self):
        self.th = threading.Thread(target=self._run, daemon=True)
        self.th.start()
        return self

    def __exit__(self, *a):
        self._stop.set()
        self.th.join()
        self.sample()  # the last word: VmHWM covers what the period missed
        if self.low is not None:
            raise Failure(f"MemAvailable fell to {self.low:.0f} MB (< {STORAGE_MEM_FLOOR_MB} MB): "
                          "replicas killed; run with smaller --storage-small/--storage-large")


class Direct:
    """Replicas started directly (no coordinator, no supervisor), as catchup()
    does: r1..rN on one block of ports, each with its own --data-dir under
    WORK/TAG; `spare` more addresses for replicas added later (every replica's
    --peers lists them all, as the supervisor's do)."""

    def __init__(self, ctx, tag, n, spare=0):
        self.ctx, self.tag, self.n = ctx, tag, n
        self.base = ctx.ports.block(n + spare)
        self.addrs = [f"127.0.0.1:{self.base + i}" for i in range(n + spare)]
        self.data = os.path.join(ctx.work, tag)
        self.procs = {}  # index -> Popen, the ones running
        self.tools = set()  # loadgen runs in progress (Popen), killed with the replicas
        self.killed = False  # by kill_all: no more tools

    def label(self, i):
        return f"r{i + 1}"

    def start(self, i):
        argv = [self.ctx.bins["replica"], "--id", self.label(i), "--listen", self.addrs[i],
                "--advertise", self.addrs[i], "--peers", ",".join(self.addrs),
                "--data-dir", os.path.join(self.data, self.label(i))]
        p = self.ctx.procs.start(f"{self.tag}-{self.label(i)}", argv)
        self.procs[i] = p
        try:  # the OOM killer's first choice, before anybody else's processes
            with open(f"/proc/{p.pid}/oom_score_adj", "w") as f:
                f.write("1000")
        except OSError:
            pass
        return p

    def pids(self):
        return {self.label(i): p.pid for i, p in self.procs.items() if p.poll() is None}

    def status(self, i):
        return run_json([self.ctx.bins["loadgen"], "status", "-a", self.addrs[i], "-t", "2000"], 10)

    def live_addrs(self):
        return ",".join(self.addrs[i] for i in sorted(self.procs))

    def stop(self, idxs, grace=120.0):
        """SIGTERM to all of idxs at once; {label: ms until it exited} (SIGKILL after grace)."""
        t0 = time.monotonic()
        todo = {i: self.procs.pop(i) for i in idxs if i in self.procs}
        for p in todo.values():
            if p.poll() is None:
                os.kill(p.pid, signal.SIGTERM)
        out = {}
        while todo and time.monotonic() - t0 < grace:
            for i, p in list(todo.items()):
                if p.poll() is not None:
                    out[self.label(i)] = (time.monotonic() - t0) * 1000.0
                    self.ctx.procs.forget(p.pid)
                    del todo[i]
            time.sleep(0.005)
        for p in todo.values():
            log(f"  {self.tag}: pid {p.pid} still running {grace:.0f} s after SIGTERM: SIGKILL")
        self.ctx.procs.stop([p.pid for p in todo.values()], grace=0)
        return out

    def kill_all(self):
        self.killed = True
        for p in list(self.procs.values()) + list(self.tools):
            try:
                p.kill()
            except OSError:
                pass

    def tool(self, argv, timeout):
        """run_json, killable by kill_all (a loadgen write would otherwise retry
        dead replicas until its -d runs out)."""
        if self.killed:
            raise Failure(f"{self.tag}: replicas killed")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        self.tools.add(p)
        try:
            if self.killed:  # kill_all ran while it started
                p.kill()
            out, err = p.communicate(timeout=timeout)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            self.tools.discard(p)
        for line in reversed(out.splitlines()):
            if line.startswith("{"):
                r = json.loads(line)
                if err.strip():
                    r["stderr"] = err.strip()[-300:]
                return r
        raise Failure(f"{os.path.basename(argv[0])} gave no result (exit {p.returncode}): "
                      f"{(err or out).strip()[-300:]}")

    def disk_bytes(self, i):
        total = 0
        for root, _, files in os.walk(os.path.join(self.data, self.label(i))):
            for name in files:
                try:
                    total += os.path.getsize(os.path.join(root, name))
                except OSError:
                    pass
        return total


def catchup_watch(cl, i, index, t_spawn_ms, timeout_s, serving=True):
    """`loadgen catchup [-r]` on addr, read line by line: the replica's
    (VmRSS, VmHWM) the moment its status first answers and the moment it is
    caught up (and, with serving, names a primary). Returns loadgen's final
    JSON plus rss_answered/hwm_answered/rss_done/hwm_done."""
    addr, pid = cl.addrs[i], cl.procs[i].pid
    argv = [cl.ctx.bins["loadgen"], "catchup", "-a", addr, "-i", str(index), "-t",
            str(int(timeout_s * 1000)), "-S", f"{t_spawn_ms:.3f}"] + (["-r"] if serving else [])
    if cl.killed:
        raise Failure(f"{cl.tag}: replicas killed")
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    cl.tools.add(p)
    out = {}
    try:
        if cl.killed:  # kill_all ran while it started
            p.kill()
        for line in p.stdout:
            if not line.startswith("{"):
                continue
            mem = proc_mem(pid)
            r = json.loads(line)
            if "catchup_ms" in r:
                out.update(r)
                out["rss_done"], out["hwm_done"] = mem
            else:
                out["rss_answered"], out["hwm_answered"] = mem
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        cl.tools.discard(p)
    if "catchup_ms" not in out:
        raise Failure(f"loadgen catchup {addr} (exit {p.returncode}): {p.stderr.read().strip()[-300:]}")
    return out


def storage(ctx, a):
    """Issue 13's long log on 3 replicas started directly (data dirs under the
    work dir): a.storage_small 16-byte then a.storage_large 4 KiB entries
    (loadgen write, STORAGE_CONNS connections) with every replica's VmRSS and
    VmHWM sampled; then every replica stopped (SIGTERM) and restarted at once:
    per replica the time from exec to caught up and serving (its status
    answers, names a primary, and its commit index is back at the one before
    the stop) and its RSS then, for the cluster the time from exec to the
    first committed write; then a 4th replica with an empty data dir catches
    up on the whole log (one backup stopped first, so that no more than 3
    replicas hold the log in memory at once). Results land in ctx.res as
    each part ends, so a later part's failure keeps the earlier figures."""
    R = ctx.res
    cl = Direct(ctx, "storage", 3, spare=1)
    lg = ctx.bins["loadgen"]
    log(f"storage: 3 replicas on :{cl.base}.., data in {cl.data}; "
        f"{a.storage_small:,} x 16 B then {a.storage_large:,} x 4096 B")
    try:
        for i in range(3):
            cl.start(i)
        cl.tool([lg, "write", "-a", cl.live_addrs(), "-c", "1", "-n", "10", "-d", "30"], 60)
        for part, n, size in (("small", a.storage_small, 16), ("large", a.storage_large, 4096)):
            t0 = time.monotonic()
            with MemSampler(cl.pids, cl.kill_all) as s:
                w = cl.tool([lg, "write", "-a", cl.live_addrs(), "-c", str(STORAGE_CONNS), "-s", str(size),
                              "-n", str(n), "-d", str(STORAGE_WRITE_SECS),
                              "-P", f"storage-{part}{random.randrange(1 << 30)}"], STORAGE_WRITE_SECS + 120)
            disk = {cl.label(i): cl.disk_bytes(i) for i in range(3)}
            st = {cl.label(i): cl.status(i) for i in range(3)}
            R[("storage", "write", part)] = {"n": n, "size": size, "write": w, "rss": s.rss, "hwm": s.hwm,
                                             "disk": disk, "wall_s": time.monotonic() - t0,
                                             "epochs": {k: v["epoch"] for k, v in st.items()}}
            roles = ", ".join(f"{k} {v['role']} epoch {v['epoch']}" for k, v in sorted(st.items()))
            log(f"  storage {part}: {w['ops']:,} x {size} B in {w['seconds']:.0f} s, {w['ops_per_s']:,.0f}/s "
                f"p50 {w['p50_ms']:.2f} p99 {w['p99_ms']:.2f} max {w['max_ms']:.0f} ms errors {w['errors']}"
                f"{' (' + w['stderr'] + ')' if w.get('stderr') else ''}; "
                f"max VmRSS MB {', '.join(f'{k} {v:,.0f}' for k, v in sorted(s.rss.items()))}; "
                f"log on disk {max(disk.values()) / 1e9:.2f} GB; MemAvailable {mem_available_mb():,.0f} MB; "
                f"now {roles}")
            # loadgen's -n counts requests issued: one that failed (a failover) is not retried
            if w["ops"] + w["errors"] < n:
                raise Failure(f"storage {part}: only {w['ops']:,} of {n:,} writes committed")

        # --- restart: every replica stopped, then all started at once ---
        before = {i: cl.status(i) for i in range(3)}
        commit = max(s["commit_index"] for s in before.values())
        old_primary = next((cl.label(i) for i, s in before.items() if s["role"] == "primary"), None)
        stop_ms = cl.stop(range(3))
        log(f"  storage restart: commit index {commit:,} (primary {old_primary}); stopped (SIGTERM → exit ms) "
            f"{', '.join(f'{k} {v:,.0f}' for k, v in sorted(stop_ms.items()))}")
        rs = {"commit_index": commit, "old_primary": old_primary, "stop_ms": stop_ms, "replicas": {}}
        R[("storage", "restart")] = rs
        watched = {}
        errors = []

        def watch(i, t_ms):
            try:
                watched[cl.label(i)] = catchup_watch(cl, i, commit, t_ms, STORAGE_WAIT_SECS)
            except (Failure, OSError, ValueError, subprocess.TimeoutExpired) as e:
                errors.append(f"{cl.label(i)}: {e}")

        with MemSampler(cl.pids, cl.kill_all) as s:
            t_spawn = time.monotonic()
            for i in range(3):
                cl.start(i)
            ths = [threading.Thread(target=watch, args=(i, t_spawn * 1000.0), daemon=True) for i in range(3)]
            for th in ths:
                th.start()
            # the cluster: the first write committed after the exec (loadgen finds the
            # primary once there is one; each attempt is one write, retried until it commits)
            first_ms = None
            deadline = t_spawn + STORAGE_WAIT_SECS
            k = 0
            while first_ms is None and s.low is None and cl.pids() and time.monotonic() < deadline:
                k += 1
                try:
                    w = cl.tool([lg, "write", "-a", ",".join(cl.addrs[:3]), "-c", "1", "-n", "1", "-d", "5",
                                  "-t", "2000", "-P", f"storage-rs{k}-{random.randrange(1 << 30)}"], 30)
                    if w["ops"] >= 1:
                        first_ms = (time.monotonic() - t_spawn) * 1000.0
                except (Failure, subprocess.TimeoutExpired, ValueError):
                    time.sleep(0.005)
            for th in ths:
                th.join(STORAGE_WAIT_SECS + 60)
        rs.update(first_write_ms=first_ms, attempts=k, replicas=watched, rss=s.rss, hwm=s.hwm)
        for label, r in sorted(watched.items()):
            log(f"  storage restart {label}: answers after {r['answered_ms']:,.0f} ms, serving after "
                f"{r['catchup_ms']:,.0f} ms (primary known at {r['primary_ms']:,.0f}); VmRSS MB "
                f"{r['rss_answered'] or 0:,.0f} then {r['rss_done'] or 0:,.0f}, VmHWM {r['hwm_done'] or 0:,.0f}")
        log(f"  storage restart: first committed write {first_ms if first_ms is None else f'{first_ms:,.0f}'} ms "
            f"after the exec ({k} attempts)")
        if errors or first_ms is None:
            raise Failure(f"storage restart: {'; '.join(errors) or 'no committed write'}")

        # --- catch-up: a 4th replica, empty data dir, missed the whole log ---
        st = {i: cl.status(i) for i in range(3)}
        prim = next(i for i, s in st.items() if s["role"] == "primary")
        victim = max(i for i in range(3) if i != prim)
        cl.stop([victim])
        target = cl.status(prim)["commit_index"]
        prim_rss0 = proc_mem(cl.procs[prim].pid)[0]
        log(f"  storage catch-up: {cl.label(victim)} stopped; r4 (empty) catches up to {target:,} from "
            f"{cl.label(prim)} (VmRSS {prim_rss0 or 0:,.0f} MB)")
        new = 3
        with MemSampler(lambda: {k: v for k, v in cl.pids().items() if k in (cl.label(prim), cl.label(new))},
                        cl.kill_all) as s:
            t_spawn = time.monotonic()
            cl.start(new)
            r = catchup_watch(cl, new, target, t_spawn * 1000.0, STORAGE_WAIT_SECS, serving=False)
        secs = r["catchup_ms"] / 1000.0
        r.update(entries=target, bytes=cl.disk_bytes(new), primary=cl.label(prim), primary_rss_before=prim_rss0,
                 rss_new=s.rss.get(cl.label(new)), hwm_new=s.hwm.get(cl.label(new)),
                 rss_primary=s.rss.get(cl.label(prim)))
        r["entries_per_s"] = target / secs if secs > 0 else None
        r["mb_per_s"] = r["bytes"] / 1e6 / secs if secs > 0 else None
        R[("storage", "catchup")] = r
        log(f"  storage catch-up: {target:,} entries ({r['bytes'] / 1e9:.2f} GB) in {secs:.1f} s: "
            f"{r['entries_per_s']:,.0f} entries/s, {r['mb_per_s']:,.0f} MB/s; max VmRSS MB new "
            f"{r['rss_new'] or 0:,.0f} (VmHWM {r['hwm_new'] or 0:,.0f}), primary {r['rss_primary'] or 0:,.0f}")
    finally:
        cl.stop(list(cl.procs), grace=60.0)
        if not a.keep:
            shutil.rmtree(cl.data, ignore_errors=True)


def phase_storage(ctx, a):
    ctx.attempt("storage", storage, ctx, a)


# ---------------------------------------------------------------------------
# the table
# ---------------------------------------------------------------------------

def fmt(v, unit=""):
    if v is None:
        return "—"
    if isinstance(v, str):
        return v
    if v >= 1000:
        s = f"{v:,.0f}"
    elif v >= 100:
        s = f"{v:.0f}"
    elif v >= 10:
        s = f"{v:.1f}"
    elif v >= 1:
        s = f"{v:.2f}"
    else:
        s = f"{v:.3f}"
    return s + unit


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "—"
    return f"{a / b:.2f}x"


def table(ctx, a):
    R = ctx.res
    rows = []

    def get(name, conns, size, field, n=None):
        # (reads: conns is the level, size the connection count)
        key = (name, conns, size) if n is None else (name, conns, size, n)
        r = R.get(key)
        return None if r is None else r.get(field)

    head = ["#", "measurement", "ours: HTTP (coordinator)", "ours: protocol (primary)",
            "etcd (v3 gateway)", "etcd tuned", "redis (async)", "HTTP ÷ etcd", "protocol ÷ etcd",
            "protocol ÷ redis"]
    for size in a.sizes:
        for conns in a.conns:
            for field, label, fig in (("ops_per_s", "writes/s", "1/2"), ("p50_ms", "p50 ms", "1/2"),
                                      ("p99_ms", "p99 ms", "1/2")):
                h, p = get("ours-http", conns, size, field), get("ours-proto", conns, size, field)
                e, t, r = (get("etcd", conns, size, field), get("etcd-tuned", conns, size, field),
                           get("redis", conns, size, field))
                rows.append([fig, f"{label}, {conns} conn, {size} B", fmt(h), fmt(p), fmt(e), fmt(t),
                             fmt(r), ratio(h, e), ratio(p, e), ratio(p, r)])
    for stat, label in ((statistics.median, "median"), (max, "worst")):
        vals = {k: (stat(R[(k, "failover")]) if (k, "failover") in R else None)
                for k in ("ours-http", "ours-proto", "etcd", "etcd-tuned", "redis")}
        n = {k: len(R.get((k, "failover"), [])) for k in vals}
        rows.append(["3", f"failover {label} ms (kill → next commit; n={max(n.values())})",
                     fmt(vals["ours-http"]), fmt(vals["ours-proto"]), fmt(vals["etcd"]),
                     fmt(vals["etcd-tuned"]), fmt(vals["redis"]), ratio(vals["ours-http"], vals["etcd"]),
                     ratio(vals["ours-proto"], vals["etcd"]), ratio(vals["ours-proto"], vals["redis"])])
        rows.append(["3", f"failover {label} ms vs etcd tuned", "", "", "", "",
                     "", ratio(vals["ours-http"], vals["etcd-tuned"]),
                     ratio(vals["ours-proto"], vals["etcd-tuned"]), ""])
    c = R.get(("ours", "catchup"))
    rows.append(["4", f"catch-up ms after missing {c['missed'] if c else a.missed:,} requests (16 B)", "",
                 fmt(c and c["catchup_ms"]) + (f" ({c['entries_per_s']:,.0f}/s)" if c else ""),
                 "", "", "", "", "", ""])
    for when, key in (("idle", "rss_idle"), ("under load (max)", "rss_load")):
        o, e, r = R.get(("ours", key), {}), R.get(("etcd", key), {}), R.get(("redis", key), {})
        rows.append(["5", f"RSS MB {when}: replica / member / server", "",
                     fmt(o.get("replica")), fmt(e.get("member")), "", fmt(r.get("server")), "",
                     ratio(o.get("replica"), e.get("member")), ratio(o.get("replica"), r.get("server"))])
        rows.append(["5", f"RSS MB {when}: coordinator / sentinel", fmt(o.get("coordinator")), "", "",
                     "", fmt(r.get("sentinel")), "", "", ""])
    for n in [3] + list(a.scale):
        for conns in a.scale_conns:
            if n == 3:
                h, p = R.get(("ours-http", conns, 16)), R.get(("ours-proto", conns, 16))
            else:
                h, p = R.get(("ours-http", conns, 16, n)), R.get(("ours-proto", conns, 16, n))
            if h is None and p is None:
                continue
            cell = lambda r: "—" if r is None else f"{fmt(r['ops_per_s'])}/s p50 {fmt(r['p50_ms'])} p99 {fmt(r['p99_ms'])}"
            rows.append(["6", f"{n} replicas, {conns} conn, 16 B", cell(h), cell(p), "", "", "", "", "", ""])
    for conns in a.read_conns:
        for field, label in (("ops_per_s", "reads/s"), ("p50_ms", "p50 ms"), ("p99_ms", "p99 ms"),
                             ("server_cpu_us", "server CPU µs/read")):
            for level in READ_LEVELS:
                h, p, e = (get("ours-http-read", level, conns, field),
                           get("ours-proto-read", level, conns, field),
                           get("etcd-read", level, conns, field))
                rows.append(["7", f"{label}, {conns} conn, {level} read of {READ_LIMIT}", fmt(h),
                             fmt(p), fmt(e), "", "", ratio(h, e), ratio(p, e), ""])
        for field, label in (("ops_per_s", "reads/s"), ("p50_ms", "p50"), ("server_cpu_us", "server CPU/read")):
            v = {n: (get(n, "serializable", conns, field), get(n, "linearizable", conns, field))
                 for n in ("ours-http-read", "ours-proto-read", "etcd-read")}
            rows.append(["7", f"{label}, {conns} conn: serializable ÷ linearizable",
                         ratio(*v["ours-http-read"]), ratio(*v["ours-proto-read"]),
                         ratio(*v["etcd-read"]), "", "", "", "", ""])
    rows += storage_rows(R)
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def per_replica(d, unit=""):
    """'max X (r1 a, r2 b, ...)' of {label: value}."""
    if not d:
        return "—"
    vals = [v for v in d.values() if v is not None]
    return (f"{fmt(max(vals) if vals else None, unit)} ("
            + ", ".join(f"{k} {fmt(v, unit)}" for k, v in sorted(d.items())) + ")")


def storage_rows(R):
    """Rows 8: the storage phase (issue 13), in the protocol column, each with its target."""
    rows = []

    def row(label, v):
        rows.append(["8", label, "", v, "", "", "", "", "", ""])

    rss_t, restart_t = f"target < {STORAGE_TARGET_RSS_MB}", f"target < {STORAGE_TARGET_RESTART_MS:,}"
    parts = [R[("storage", "write", p)] for p in ("small", "large") if ("storage", "write", p) in R]
    for p in parts:
        w = p["write"]
        row(f"storage: writes/s, {w['ops']:,} x {p['size']} B ({STORAGE_CONNS} conn)",
            f"{fmt(w['ops_per_s'])}/s ({fmt(w['ops_per_s'] * p['size'] / 1e6)} MB/s of data) "
            f"p50 {fmt(w['p50_ms'])} p99 {fmt(w['p99_ms'])} max {fmt(w['max_ms'])} ms"
            + (f", {w['errors']:,} errors (epoch now {max(p['epochs'].values())})" if w["errors"] else ""))
        row(f"storage: replica RSS MB, max while writing those (VmRSS every {STORAGE_SAMPLE_S} s; {rss_t})",
            per_replica(p["rss"]))
    if parts:
        hwm = {}
        for p in parts:
            for k, v in p["hwm"].items():
                hwm[k] = max(v, hwm.get(k, 0))
        row(f"storage: replica peak RSS MB over all the writing (VmHWM; {rss_t})", per_replica(hwm))
        row("storage: log on disk per replica after the writing, GB",
            per_replica({k: v / 1e9 for k, v in parts[-1]["disk"].items()}))
    rs = R.get(("storage", "restart"))
    if rs:
        reps = rs.get("replicas", {})
        pick = lambda f: {k: r.get(f) for k, r in reps.items()}
        row(f"storage restart: SIGTERM → exit ms (commit index {rs['commit_index']:,})", per_replica(rs["stop_ms"]))
        row("storage restart: exec → status answers (log read back) ms", per_replica(pick("answered_ms")))
        row(f"storage restart: exec → caught up and serving ms ({restart_t})", per_replica(pick("catchup_ms")))
        row(f"storage restart: exec → first committed write, cluster, ms ({restart_t})",
            fmt(rs.get("first_write_ms")))
        row(f"storage restart: RSS MB when its status first answers ({rss_t})", per_replica(pick("rss_answered")))
        row(f"storage restart: RSS MB once serving ({rss_t})", per_replica(pick("rss_done")))
        row(f"storage restart: peak RSS MB while reading the log back (VmHWM; {rss_t})",
            per_replica(pick("hwm_done")))
    c = R.get(("storage", "catchup"))
    if c:
        row(f"storage catch-up: a new replica, {c['entries']:,} entries ({fmt(c['bytes'] / 1e9)} GB), entries/s "
            f"(target ≥ {STORAGE_TARGET_CATCHUP_PER_S:,})",
            f"{fmt(c['entries_per_s'])}/s ({fmt(c['catchup_ms'])} ms, {fmt(c['mb_per_s'])} MB/s)")
        row(f"storage catch-up: RSS MB max, new replica / primary ({rss_t})",
            f"{fmt(c['rss_new'])} (VmHWM {fmt(c['hwm_new'])}) / {fmt(c['rss_primary'])} "
            f"(before: {fmt(c['primary_rss_before'])})")
    return rows


def targets(ctx, a):
    R = ctx.res
    lines = []

    def check(label, ok, detail):
        lines.append(f"- [{'x' if ok else ' '}] {label}: {detail}")

    size = 16
    for name in ("ours-http", "ours-proto"):
        # issue 6: 3x / one third for both; issue 10: 3.5x / 0.4x through HTTP
        writes = ((3.0, "3x"), (3.5, "3.5x")) if name == "ours-http" else ((3.0, "3x"),)
        lat = ((1 / 3, "1/3"), (0.4, "0.4x")) if name == "ours-http" else ((1 / 3, "1/3"),)
        o, e = R.get((name, 64, size)), R.get(("etcd", 64, size))
        if o and e:
            for k, label in writes:
                check(f"{name} 64 conn ≥ {label} etcd writes/s", o["ops_per_s"] >= k * e["ops_per_s"],
                      f"{o['ops_per_s'] / e['ops_per_s']:.2f}x")
        o, e = R.get((name, 1, size)), R.get(("etcd", 1, size))
        if o and e:
            for k, label in lat:
                check(f"{name} 1 conn p50 ≤ {label} etcd's", o["p50_ms"] <= k * e["p50_ms"],
                      f"{o['p50_ms']:.3f} vs {e['p50_ms']:.3f} ms ({o['p50_ms'] / e['p50_ms']:.2f}x)")
        f, t = R.get((name, "failover")), R.get(("etcd-tuned", "failover"))
        if f:
            check(f"{name} failover median < 300 ms", statistics.median(f) < 300,
                  f"{statistics.median(f):.1f} ms")
            if t:
                check(f"{name} failover median ≤ etcd tuned", statistics.median(f) <= statistics.median(t),
                      f"{statistics.median(f):.1f} vs {statistics.median(t):.1f} ms")
    rss = R.get(("ours", "rss_idle"), {}).get("replica")
    if rss:
        check("replica < 10 MB RSS idle", rss < 10, f"{rss:.1f} MB")
    # issue 13: a log that can run for months
    parts = [R[("storage", "write", p)] for p in ("small", "large") if ("storage", "write", p) in R]
    if parts:
        peak = max(max(p["hwm"].values(), default=0) for p in parts)
        what = " then ".join(f"{p['write']['ops']:,} x {p['size']} B" for p in parts)
        check(f"replica RSS < {STORAGE_TARGET_RSS_MB} MB while writing {what}", peak < STORAGE_TARGET_RSS_MB,
              f"peak {peak:,.0f} MB (VmHWM)")
    rs = R.get(("storage", "restart"))
    if rs and rs.get("replicas"):
        slow = max(r["catchup_ms"] for r in rs["replicas"].values())
        check(f"restart < {STORAGE_TARGET_RESTART_MS:,} ms: every replica caught up and serving",
              slow < STORAGE_TARGET_RESTART_MS, f"slowest {slow:,.0f} ms")
        rss = max((r.get("rss_done") or 0) for r in rs["replicas"].values())
        check(f"replica RSS < {STORAGE_TARGET_RSS_MB} MB after a restart", rss < STORAGE_TARGET_RSS_MB,
              f"{rss:,.0f} MB once serving")
    if rs and rs.get("first_write_ms") is not None:
        check(f"restart < {STORAGE_TARGET_RESTART_MS:,} ms: the cluster's first committed write",
              rs["first_write_ms"] < STORAGE_TARGET_RESTART_MS, f"{rs['first_write_ms']:,.0f} ms")
    c = R.get(("ours", "catchup"))
    if c and c["missed"] >= 1_000_000:
        check(f"catch-up of a replica that missed {c['missed']:,} entries (row 4) ≥ "
              f"{STORAGE_TARGET_CATCHUP_PER_S:,} entries/s", c["entries_per_s"] >= STORAGE_TARGET_CATCHUP_PER_S,
              f"{c['entries_per_s']:,.0f}/s ({c['catchup_ms']:,.0f} ms from its start)")
    c = R.get(("storage", "catchup"))
    if c:
        check(f"catch-up of the whole storage log ≥ {STORAGE_TARGET_CATCHUP_PER_S:,} entries/s",
              c["entries_per_s"] >= STORAGE_TARGET_CATCHUP_PER_S, f"{c['entries_per_s']:,.0f}/s")
        rss = max(c.get("rss_new") or 0, c.get("rss_primary") or 0)
        check(f"RSS < {STORAGE_TARGET_RSS_MB} MB during a catch-up (new replica and primary)",
              rss < STORAGE_TARGET_RSS_MB, f"{rss:,.0f} MB")
    # issue: serializable reads measurably faster than linearizable ones
    for conns in a.read_conns:
        lin, ser = R.get(("ours-proto-read", "linearizable", conns)), R.get(("ours-proto-read", "serializable", conns))
        if lin and ser:
            check(f"ours-proto serializable reads/s > linearizable, {conns} conn",
                  ser["ops_per_s"] > lin["ops_per_s"],
                  f"{ser['ops_per_s']:,.0f} vs {lin['ops_per_s']:,.0f}/s ({ser['ops_per_s'] / lin['ops_per_s']:.2f}x); "
                  f"p50 {ser['p50_ms']:.3f} vs {lin['p50_ms']:.3f} ms")
    return "\n".join(lines)


def machine():
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            mem = f"{int(f.readline().split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    disk = subprocess.run(["df", "-h", "--output=source,fstype,size", "/tmp"], capture_output=True,
                          text=True).stdout.strip().splitlines()[-1]
    return f"{os.cpu_count()} CPUs ({cpu}), {mem} RAM, /tmp on {' '.join(disk.split())}, kernel {os.uname().release}"


def versions():
    def first(argv):
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            return (p.stdout or p.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"
    return "; ".join([first(["etcd", "--version"]), first(["redis-server", "--version"]),
                      first(["wrk", "--version"]).split(" Copyright")[0]])


# ---------------------------------------------------------------------------
# smoke
# ---------------------------------------------------------------------------

def smoke(ctx, a):
    """Every system starts and answers: one write each, a second of load each
    (2 connections, 16 B), one failover each, a small catch-up; then the same
    table as a full run, from these numbers. Asserts answers, not speed."""
    checks = []
    a.sizes, a.conns, a.scale, a.scale_conns, a.read_conns = [16], [2], [], [2], [2]
    R = ctx.res

    def expect(what, fn):
        try:
            r = fn()
            checks.append((what, True, r))
            log(f"ok   {what}: {r}")
        except Exception as e:  # noqa: BLE001 — any failure is a failed check
            checks.append((what, False, str(e)))
            log(f"FAIL {what}: {e}")

    def load(key, r):
        if not r or r.get("ops", 0) <= 0 or r.get("errors", 0) or r.get("status_errors", 0):
            raise Failure(f"no clean load: {r}")
        R[key] = r
        return f"{r['ops_per_s']:.0f}/s, p50 {r['p50_ms']:.2f} ms"

    def failover(name, fn):
        ms = fn()
        R[(name, "failover")] = [ms]
        return f"{ms:.0f} ms"

    def started(name, start, obj, answer):
        start()
        R[(name, "rss_idle")] = idle_rss(obj.pids_by_label())
        return answer()

    o = e = rd = None
    try:
        o = Ours(ctx, 3, "ours3")
        expect("ours: coordinator + 3 replicas start, a write commits (HTTP 201)",
               lambda: started("ours", o.start, o, lambda: f"index {o.write('smoke')['index']}"))
        expect("ours: wrk through the coordinator",
               lambda: load(("ours-http", 2, 16), wrk(o.http_port, "coordinator", 16, 2, 1, "smoke")))
        expect("ours: loadgen to the primary", lambda: load(("ours-proto", 2, 16), o.loadgen(2, 16, 1)))

        def reads():
            after = o.recent_page()
            out = []
            for level in READ_LEVELS:  # a short loadgen read and one GET of each level
                out.append(f"{level} {load(('ours-proto-read', level, 2), o.read(level, 2, 0.5, after))}"
                           f", GET served by {o.http_read(level, after)[0]}")
            load(("ours-http-read", "linearizable", 2),
                 wrk_read(o.http_port, "coordinator", "linearizable", 2, 1, after))
            return "; ".join(out) + "; wrk read.lua ok"

        expect("ours: reads at both levels (loadgen, GET, wrk)", reads)
        expect("ours: failover (protocol)", lambda: failover("ours-proto", o.failover_direct))
        expect("ours: failover (HTTP)", lambda: failover("ours-http", o.failover_http))
    finally:
        if o and o.proc:
            o.stop()

    def small_catchup():
        r = catchup(ctx, 2000)
        R[("ours", "catchup")] = r
        return f"{r['catchup_ms']:.0f} ms"

    expect("ours: catch-up of a replica that missed 2,000 requests", small_catchup)
    try:
        e = Etcd(ctx, "etcd-tuned", heartbeat=50, election=300)
        expect("etcd (tuned): 3 members start, a put answers",
               lambda: started("etcd", e.start, e, lambda: "leader e%d" % (e.leader() + 1)))
        expect("etcd: wrk through the v3 gateway",
               lambda: load(("etcd-tuned", 2, 16), wrk(e.client[e.leader()], "etcd", 16, 2, 1, "smoke")))

        def etcd_reads():
            e.fill_for_reads()
            li = e.leader()
            fi = min(i for i in range(3) if i != li)
            return (f"linearizable range on e{li + 1}: {e.range_read(li, 'linearizable')} keys, "
                    f"serializable on e{fi + 1}: {e.range_read(fi, 'serializable')} keys")

        expect("etcd: a range read of each level", etcd_reads)
        expect("etcd: failover", lambda: failover("etcd-tuned", e.failover))
    finally:
        if e and any(e.procs):
            e.stop()
    try:
        rd = Redis(ctx, "redis")
        expect("redis: primary + 2 replicas + 3 sentinels start, SET answers",
               lambda: started("redis", rd.start, rd, lambda: f"master :{rd.master_port()}"))
        expect("redis: redis-benchmark SET", lambda: load(("redis", 2, 16), rd.bench(2, 16, 1)))
        expect("redis: sentinel failover", lambda: failover("redis", rd.failover))
    finally:
        if rd and any(rd.servers):
            rd.stop()
    bad = [c for c in checks if not c[1]]
    print("| smoke check | result |\n|---|---|")
    for what, ok, r in checks:
        print(f"| {what} | {'ok' if ok else 'FAILED'}: {r} |")
    print()
    print(table(ctx, a))  # keeps the full run's table code exercised
    print(f"\nsmoke: {len(checks) - len(bad)}/{len(checks)} checks passed in {time.monotonic() - T_START:.0f} s")
    return 1 if bad else 0


# ---------------------------------------------------------------------------
# profile: where the time goes under 64-connection load (bench/run --profile DIR)
# ---------------------------------------------------------------------------

def cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read().rsplit(")", 1)[1].split()
        return (int(st[11]) + int(st[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


SYSCALLS = ["read", "write", "readv", "writev", "recvfrom", "sendto", "recvmsg", "sendmsg",
            "epoll_wait", "epoll_pwait", "epoll_ctl", "poll", "ppoll", "fdatasync", "fsync",
            "pwrite64", "futex", "accept4", "close", "mmap", "munmap", "madvise", "brk", "getpid",
            "clock_nanosleep", "sched_yield", "setsockopt", "ioctl", "openat"]


def perf_syscalls(pid, secs, out):
    """Count syscalls of every thread of pid for `secs` (syscall tracepoints: cheap)."""
    ev = ",".join(f"syscalls:sys_enter_{n}" for n in SYSCALLS)
    return subprocess.Popen(["perf", "stat", "-x,", "-o", out, "-e", ev, "-p", str(pid), "--",
                             "sleep", str(secs)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def read_syscalls(path):
    counts = {}
    try:
        with open(path) as f:
            for line in f:
                parts = line.strip().split(",")
                if len(parts) > 2 and parts[0].isdigit() and int(parts[0]) > 0:
                    counts[parts[2].replace("syscalls:sys_enter_", "")] = int(parts[0])
    except OSError:
        pass
    return counts


def profile(ctx, a):
    """One 3-replica cluster; under 64-connection 16-byte load (loadgen straight
    to the primary, then wrk through the coordinator): CPU per request of every
    process, syscalls per request (perf stat on syscall tracepoints, cheap),
    and a perf cpu-clock call-graph profile of the primary, a backup and the
    coordinator. Everything lands in DIR; a summary is printed."""
    out = os.path.abspath(a.profile)
    os.makedirs(out, exist_ok=True)
    have_perf = subprocess.run(["perf", "record", "-e", "cpu-clock", "-o", "/dev/null", "--", "true"],
                               capture_output=True).returncode == 0
    o = Ours(ctx, 3, "prof")
    o.start()
    summary = []
    win = max(3, min(a.secs, 10))
    try:
        for mode in ("proto", "http"):
            c = o.wait_settled(30)
            pids = o.replica_pids()
            prim = c["primary"]
            backup = sorted(r for r in pids if r != prim)[0]
            procs = {"primary": pids[prim], "backup": pids[backup], "coordinator": o.proc.pid}
            if mode == "proto":
                load = subprocess.Popen([*o.lg("write"), "-a", o.addrs, "-c", "64", "-s", "16",
                                         "-d", str(win + 4), "-P", f"prof{random.randrange(1 << 30)}"],
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            else:
                load = subprocess.Popen(["wrk", "-t2", "-c64", f"-d{win + 4}s", "-s", LUA,
                                         f"http://127.0.0.1:{o.http_port}", "--", "coordinator", "16",
                                         f"prof{random.randrange(1 << 30)}"],
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            procs["load tool"] = load.pid
            time.sleep(2)
            addr = f"127.0.0.1:{o.base + int(prim[1:]) - 1}"
            st = lambda: run_json([*o.lg("status"), "-a", addr, "-t", "2000"], 10)["commit_index"]
            # perf's windows: `sleep PW` after its setup; our own rate window sits inside it
            pw = win + 4
            stats = {k: perf_syscalls(p, pw, os.path.join(out, f"{mode}-{k}.syscalls"))
                     for k, p in procs.items() if k != "load tool"}
            # perf report selects the single-threaded replicas by tid, the coordinator's
            # threads by name (only our pids are in the recording)
            select = {"primary": ["--tid", str(procs["primary"])], "backup": ["--tid", str(procs["backup"])],
                      "coordinator": ["--comm", "coordinator,civetweb-worker,civetweb-master"]}
            rec = None
            if have_perf:
                rec = subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F", "999", "-g", "-o",
                                        os.path.join(out, f"{mode}.perf.data"), "-p",
                                        ",".join(str(procs[k]) for k in ("primary", "backup", "coordinator")),
                                        "--", "sleep", str(pw)],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(2)
            i0, t0 = st(), time.monotonic()
            cpu0 = {k: cpu_seconds(p) for k, p in procs.items()}
            time.sleep(win)
            i1, t1 = st(), time.monotonic()
            cpu1 = {k: cpu_seconds(p) for k, p in procs.items()}
            for p in stats.values():
                p.wait()
            if rec:
                rec.wait()
            load.terminate()
            load.communicate(timeout=60)
            rate = (i1 - i0) / (t1 - t0)
            n = max(1, i1 - i0)
            n_perf = max(1.0, rate * pw)  # requests during perf's window (steady load)
            summary.append(f"## {mode}: 64 connections, 16 B, {n} requests committed in {t1 - t0:.1f} s "
                           f"({rate:,.0f}/s), with perf attached")
            summary.append("")
            summary.append("| process | CPU µs / request | CPU % of one core | syscalls / request (top) |")
            summary.append("|---|---|---|---|")
            for k, p in procs.items():
                cpu = (cpu1[k] - cpu0[k]) if cpu0.get(k) is not None and cpu1.get(k) is not None else None
                sc = read_syscalls(os.path.join(out, f"{mode}-{k}.syscalls"))
                tot = sum(sc.values())
                top = ", ".join(f"{name} {v / n_perf:.2f}" for name, v in sorted(sc.items(), key=lambda x: -x[1])[:8])
                summary.append(f"| {k} | {fmt(cpu * 1e6 / n) if cpu is not None else '?'} | "
                               f"{fmt(100 * cpu / (t1 - t0)) if cpu is not None else '?'} | "
                               f"{f'{tot / n_perf:.2f} in all: ' + top if sc else '—'} |")
            summary.append("")
            if have_perf:
                data = os.path.join(out, f"{mode}.perf.data")
                for k in ("primary", "backup", "coordinator"):
                    rep = subprocess.run(["perf", "report", "-i", data, "--stdio", "--children", "-g", "none",
                                          *select[k], "--sort", "sym", "--percent-limit", "2"],
                                         capture_output=True, text=True).stdout
                    path = os.path.join(out, f"{mode}-{k}.top.txt")
                    with open(path, "w") as f:
                        f.write(rep)
                    rows = [l for l in rep.splitlines() if l.strip() and not l.startswith("#")][:40]
                    summary.append(f"perf, {k} ({mode}): % of its on-CPU samples in each symbol and its callees:")
                    summary.append("```")
                    summary += rows
                    summary.append("```")
                    cg = subprocess.run(["perf", "report", "-i", data, "--stdio", "--children", *select[k],
                                         "--sort", "sym", "-g", "caller,0.5,callee",
                                         "--percent-limit", "5"], capture_output=True, text=True).stdout
                    with open(os.path.join(out, f"{mode}-{k}.callgraph.txt"), "w") as f:
                        f.write(cg)
            summary.append("")
    finally:
        o.stop()
    text = "\n".join(summary)
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(text + "\n")
    print(text)
    return 0


# ---------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", required=True)
    ap.add_argument("--replica", required=True)
    ap.add_argument("--coordinator", required=True)
    ap.add_argument("--loadgen", required=True)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--secs", type=int, default=10, help="seconds per load measurement")
    ap.add_argument("--kills", type=int, default=10, help="failovers per system")
    ap.add_argument("--missed", type=int, default=1000000, help="requests the catch-up replica misses")
    ap.add_argument("--only", default="ours,scale,catchup,etcd,redis,reads")
    ap.add_argument("--out", help="also write the table (markdown) here")
    ap.add_argument("--profile", metavar="DIR", help="profile our replication path under load into DIR")
    ap.add_argument("--sizes", default="16,4096", help="payload bytes, comma-separated")
    ap.add_argument("--conns", default="1,16,64", help="connection counts, comma-separated")
    ap.add_argument("--read-conns", default="1,64", help="connection counts of the reads phase")
    ap.add_argument("--read-rounds", type=int, default=3,
                    help="reads phase: the levels alternate in this many rounds of secs/rounds")
    ap.add_argument("--storage-small", type=int, default=5_000_000,
                    help="storage phase: 16-byte entries written first")
    ap.add_argument("--storage-large", type=int, default=1_000_000,
                    help="storage phase: 4 KiB entries written next")
    ap.add_argument("--keep", action="store_true",
                    help="keep the storage phase's data dirs (bench/run --keep keeps the whole work dir)")
    a = ap.parse_args()
    a.sizes = [int(x) for x in a.sizes.split(",")]
    a.conns = [int(x) for x in a.conns.split(",")]
    a.read_conns = [int(x) for x in a.read_conns.split(",")]
    a.scale = [5, 7]
    a.scale_conns = [1, 64]
    a.idle_wait = 3
    a.tuned_load = True

    ctx = Ctx(a)

    def on_signal(sig, frame):
        for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(s, signal.SIG_IGN)  # once: let the cleanup finish
        log(f"signal {sig}: stopping everything")
        raise SystemExit(128 + sig)

    for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(s, on_signal)
    try:
        if a.smoke:
            return smoke(ctx, a)
        if a.profile:
            return profile(ctx, a)
        phases = {"ours": phase_ours, "scale": phase_scale, "catchup": phase_catchup,
                  "etcd": phase_etcd, "redis": phase_redis, "reads": phase_reads, "storage": phase_storage}
        for name in a.only.split(","):
            try:
                phases[name](ctx, a)
            except (Failure, OSError, subprocess.TimeoutExpired, ValueError, KeyError) as e:
                log(f"FAILED phase {name}: {e}")
                ctx.failures.append(f"phase {name}: {e}")
                ctx.procs.stop_all()
        storage_run = (f"storage {a.storage_small:,} x 16 B + {a.storage_large:,} x 4096 B, "
                       if "storage" in a.only.split(",") else "")
        text = [f"Machine: {machine()}", f"Peers: {versions()}",
                f"Run: {a.secs} s per load point, {a.kills} kills per system, {storage_run}"
                f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {time.monotonic() - T_START:.0f} s in all",
                "", table(ctx, a), "", "Targets (issues 6 and 10, reads, and storage: issue 13):", targets(ctx, a)]
        if ctx.failures:
            text += ["", "Failed measurements:"] + [f"- {f}" for f in ctx.failures]
        out = "\n".join(text)
        print(out)
        if a.out:
            with open(a.out, "w") as f:
                f.write(out + "\n")
        with open(os.path.join(a.work, "results.json"), "w") as f:
            json.dump({" ".join(map(str, k)): v for k, v in ctx.res.items()}, f, indent=1)
        return 1 if ctx.failures else 0
    finally:
        ctx.procs.stop_all()


if __name__ == "__main__":
    sys.exit(main())
