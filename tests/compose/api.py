#!/usr/bin/env python3
"""tests/compose/api.py — the coordinator's HTTP API for e2e.sh (stdlib only).

  api.py URL free-port
  api.py URL cluster                              the /api/cluster JSON
  api.py URL wait --replicas N [--primary-not ID] [--min-epoch E]
                  [--voters] [--caught-up] [--up ID] [--backup ID] [--epoch E]
                  [--members N] [--new-voter "ID ..."]
                  [--timeout S]                   poll until it holds; print the snapshot
  api.py URL put ID DATA [--timeout S] [--t0 MS]  POST, retrying 503/504/no answer with
                                                  the same id until 201; prints the reply
                                                  plus "elapsed_ms" and "attempts"
  api.py URL kill-put CONTAINER ID DATA [--timeout S]
                                                  docker kill, then put (timed from the kill)
  api.py x raw-put HOST:PORT ID DATA [--timeout S]
                                                  one request straight to one replica,
                                                  no hint followed; prints its reply
  api.py URL log                                  every committed entry (paged), one JSON list
  api.py URL check-log ACKS [--old-epoch E --new-epoch E2 [--old-last N]] [--extra ID]
                                                  the safety checks, see check_log()

Every failing check exits 1 with a message on stderr starting "FAIL:".
"""
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def http(base, method, path, body=None, timeout=15.0):
    """(status, parsed JSON or None); status 0 when nothing answered."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    token = os.environ.get("REPLICACAO_API_TOKEN")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
            status = r.status
    except urllib.error.HTTPError as e:
        raw = e.read()
        status = e.code
    except (urllib.error.URLError, OSError, TimeoutError):
        return 0, None
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, None


def cluster(base):
    status, c = http(base, "GET", "/api/cluster", timeout=5.0)
    return c if status == 200 and isinstance(c, dict) else None


def opts(args, spec):
    """--name value / --flag options after positional ones."""
    out, pos, i = {}, [], 0
    while i < len(args):
        a = args[i]
        if a.startswith("--"):
            name = a[2:]
            if spec.get(name) is bool:
                out[name] = True
                i += 1
            elif name in spec:
                out[name] = spec[name](args[i + 1])
                i += 2
            else:
                fail("unknown option " + a)
        else:
            pos.append(a)
            i += 1
    return out, pos


# How far back a replica's commit index may be and still count as caught up
# while writes go on (see caught_up).
CAUGHT_UP_WINDOW_S = 1.0


def caught_up(r, c, seen):
    """Has replica r caught up? It holds the commit index of this snapshot, or,
    with writes going on, at least the one the cluster had CAUGHT_UP_WINDOW_S
    ago: a backup learns a commit with the primary's next message, and the
    coordinator asks each replica at its own moment, so under a steady stream
    of writes every snapshot can show the backups an entry or two behind.
    seen: [(monotonic time, cluster commit index)] of the earlier snapshots."""
    ci = c.get("commit_index", 0)
    rc = r.get("commit_index")
    if rc == ci:
        return True
    old = [commit for t, commit in seen if t <= time.monotonic() - CAUGHT_UP_WINDOW_S]
    return bool(old) and rc is not None and rc >= old[-1]


def holds(c, o, seen=()):
    """Why the snapshot does not satisfy the wait options yet ('' when it does)."""
    reps = c.get("replicas") or []
    up = [r for r in reps if r.get("status") == "up"]
    byid = {r["id"]: r for r in reps}
    want = o.get("replicas")
    if want is not None and len(up) < want:
        return "%d/%d replicas up" % (len(up), want)
    p = c.get("primary")
    if not p:
        return "no primary"
    pr = byid.get(p)
    if pr is None or pr.get("role") != "primary" or pr.get("status") != "up":
        return "primary %s not up" % p
    if o.get("primary-not") and p == o["primary-not"]:
        return "primary is still %s" % p
    if o.get("min-epoch") is not None and c.get("epoch", 0) < o["min-epoch"]:
        return "epoch %s < %s" % (c.get("epoch"), o["min-epoch"])
    if o.get("epoch") is not None and c.get("epoch") != o["epoch"]:
        return "cluster epoch %s != %s" % (c.get("epoch"), o["epoch"])
    others = [r for r in up if r["id"] != p]
    if o.get("voters"):
        nv = [r["id"] for r in up if not r.get("voter")]
        if nv:
            return "not voters yet: " + ",".join(nv)
    if o.get("caught-up"):
        ci = c.get("commit_index", 0)
        lagging = ["%s(%s/%s)" % (r["id"], r.get("commit_index"), ci) for r in up
                   if not caught_up(r, c, seen)]
        if lagging:
            return "not caught up: " + ",".join(lagging)
        if any(r.get("epoch") != c.get("epoch") for r in up):
            return "epochs differ"
    for key in ("up", "backup"):
        rid = o.get(key)
        if rid:
            r = byid.get(rid)
            if r is None or r.get("status") != "up":
                return "%s not up" % rid
            if key == "backup" and r.get("role") != "backup":
                return "%s is %s" % (rid, r.get("role"))
            if key == "backup" and o.get("epoch") is not None and r.get("epoch") != o["epoch"]:
                return "%s in epoch %s" % (rid, r.get("epoch"))
    if o.get("new-voter") is not None:
        # A replica not among the given ids is an up, caught-up voter.
        known = o["new-voter"].split()
        if not any(r["id"] not in known and r.get("voter") and caught_up(r, c, seen)
                   for r in up):
            return "no caught-up voter other than " + " ".join(known)
    if want is not None and len(others) < want - 1:
        return "backups missing"
    n = o.get("members")
    if n is not None:
        # Exactly the live replicas are the configuration: n voters, no
        # learner, and the list holds nobody else (dead ones cleaned up).
        voters, learners = c.get("voters"), c.get("learners")
        if voters is None:
            return "no configuration in /api/cluster"
        if len(voters) != n or learners:
            return "configuration: voters %s, learners %s" % (voters, learners)
        if len(reps) != n or len(up) != n:
            return "listed: %s" % ",".join("%s(%s)" % (r["id"], r.get("status")) for r in reps)
        if sorted(voters) != sorted(r["id"] for r in up):
            return "voters %s are not the live replicas" % voters
    return ""


def cmd_wait(base, args):
    o, _ = opts(args, {"replicas": int, "primary-not": str, "min-epoch": int, "voters": bool,
                       "caught-up": bool, "up": str, "backup": str, "epoch": int,
                       "members": int, "new-voter": str, "timeout": float})
    deadline = time.monotonic() + o.get("timeout", 90.0)
    why = "no answer from the coordinator"
    seen = []
    while time.monotonic() < deadline:
        c = cluster(base)
        if c is not None:
            why = holds(c, o, seen)
            if not why:
                print(json.dumps(c))
                return
            seen.append((time.monotonic(), c.get("commit_index", 0)))
            seen = seen[-100:]
        time.sleep(0.1)
    fail("wait %s: timed out after %.0f s: %s" % (" ".join(args), o.get("timeout", 90.0), why))


def cmd_put(base, args, t0_wall=None, extra=None):
    o, pos = opts(args, {"timeout": float, "t0": int})
    rid, data = pos
    t0 = time.monotonic()
    # --t0: wall-clock ms (date +%s%3N) to measure from instead of now.
    if t0_wall is None:
        t0_wall = o["t0"] / 1000.0 if "t0" in o else time.time()
    deadline = t0 + o.get("timeout", 60.0)
    attempts, last = 0, None
    while time.monotonic() < deadline:
        attempts += 1
        status, body = http(base, "POST", "/api/requests", {"data": data, "id": rid},
                            timeout=max(1.0, min(30.0, deadline - time.monotonic())))
        if status == 201:
            body["elapsed_ms"] = round((time.time() - t0_wall) * 1000.0, 1)
            body["attempts"] = attempts
            body.update(extra or {})
            if body.get("id") != rid:
                fail("put %s: 201 with id %r" % (rid, body.get("id")))
            print(json.dumps(body))
            return
        last = (status, body)
        if status not in (0, 502, 503, 504):
            fail("put %s: unexpected answer %s %s" % (rid, status, body))
        time.sleep(0.01 if status in (503, 504) else 0.05)
    fail("put %s: not committed within %.0f s, last answer %s" % (rid, o.get("timeout", 60.0), last))


def cmd_kill_put(base, args):
    """docker kill CONTAINER, then put: elapsed_ms counts from the moment
    `docker kill` returned (the container is dead by then), kill_ms is how
    long `docker kill` itself took. Done here, not in the shell, so that no
    interpreter start-up lands inside the measured time."""
    container, rest = args[0], args[1:]
    t_start = time.time()
    subprocess.run(["docker", "kill", container], check=True, stdout=subprocess.DEVNULL)
    t_killed = time.time()
    cmd_put(base, rest, t0_wall=t_killed,
            extra={"kill_ms": round((t_killed - t_start) * 1000.0, 1),
                   "killed_at": time.strftime("%H:%M:%S", time.localtime(t_killed)) +
                   ".%03d" % int((t_killed % 1) * 1000)})


def cmd_writer(base, args):
    """Write requests one after another until STOP_FILE exists; each
    acknowledged one goes to ACKS (JSON lines, as put prints them). At the
    end, prints the longest time between two acknowledgements, and fails if
    a request was refused for a reason other than a failover."""
    o, pos = opts(args, {"timeout": float})
    prefix, acks_path, stop_path = pos
    n, gaps, last_ack = 0, [], time.monotonic()
    with open(acks_path, "a") as acks:
        while not os.path.exists(stop_path):
            n += 1
            rid = "%s-%d" % (prefix, n)
            deadline = time.monotonic() + o.get("timeout", 60.0)
            while True:
                status, body = http(base, "POST", "/api/requests",
                                    {"data": "writer %d" % n, "id": rid}, timeout=30.0)
                if status == 201:
                    break
                if status not in (0, 502, 503, 504) or time.monotonic() > deadline:
                    fail("writer: %s not committed: %s %s" % (rid, status, body))
                time.sleep(0.02)
            now = time.monotonic()
            gaps.append(now - last_ack)
            last_ack = now
            acks.write(json.dumps(body) + "\n")
            acks.flush()
            time.sleep(0.02)
    print(json.dumps({"written": n, "max_gap_ms": round(max(gaps or [0]) * 1000.0, 1)}))


# --- a one-shot wire-protocol client (proto/replicacao.proto, hand-encoded) ---
# It follows no hint: the answer is that replica's own. With the cluster
# secret ($REPLICACAO_CLUSTER_SECRET) it proves it first (common/peer_auth.h,
# the same computation in Python's hashlib and hmac), so its request goes
# only once the replica answered the Hello: to a paused replica, right after
# it resumes. Without a secret it does not wait for the Hello, and the
# request sits in the paused replica's socket.

def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(num, value):
    if isinstance(value, int):
        return _varint(num << 3) + _varint(value)
    if isinstance(value, str):
        value = value.encode()
    return _varint(num << 3 | 2) + _varint(len(value)) + value


def _frame(body_num, body):
    env = _field(1, 1) + _field(2, "e2e-probe") + _field(body_num, body)
    return len(env).to_bytes(4, "big") + env


def _decode(buf):
    """{field number: value} of one message (last value wins)."""
    out, i = {}, 0
    while i < len(buf):
        key, i = _read_varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            out[num], i = _read_varint(buf, i)
        elif wt == 2:
            n, i = _read_varint(buf, i)
            out[num], i = buf[i:i + n], i + n
        elif wt == 1:
            out[num], i = buf[i:i + 8], i + 8
        elif wt == 5:
            out[num], i = buf[i:i + 4], i + 4
        else:
            raise ValueError("wire type %d" % wt)
    return out


def _read_varint(buf, i):
    n, shift = 0, 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def _handshake(sock, secret, name):
    """Hello with a nonce, check nothing of the replica's answer but take
    its nonce, and prove the secret as the dialer; returns bytes left over."""
    secret = secret.rstrip(b"\r\n ")
    key = hashlib.blake2b(b"replicacao cluster secret v1\0" + secret, digest_size=32).digest()
    nonce = os.urandom(32)
    sock.sendall(_frame(10, _field(1, name) + _field(3, 1) + _field(5, nonce)))
    buf, hello, auth = b"", None, None
    while auth is None:
        chunk = sock.recv(65536)
        if not chunk:
            raise OSError("closed during the handshake (another secret?)")
        buf += chunk
        while len(buf) >= 4 and len(buf) >= 4 + int.from_bytes(buf[:4], "big"):
            n = int.from_bytes(buf[:4], "big")
            env, buf = _decode(buf[4:4 + n]), buf[4 + n:]
            if 10 in env:
                hello = (env.get(2, b""), _decode(env[10]))
            elif 36 in env:
                auth = env[36]

    def party(ident, client, n):
        return bytes([1 if client else 0, len(ident) >> 8, len(ident) & 255]) + ident + n

    their_id, their_hello = hello
    t = hashlib.sha256(b"replicacao/auth/1\0" + party(name.encode(), True, nonce) +
                       party(their_id, False, their_hello.get(5, b""))).digest()
    proof = hmac.new(key, b"D" + t, hashlib.sha256).digest()
    sock.sendall(_frame(36, _field(1, proof)))
    return buf


def cmd_raw_put(args):
    """raw-put HOST:PORT CLIENT_ID DATA [--timeout S]: one JSON line, the
    replica's ClientReply ({"status": "OK"|"NOT_PRIMARY"|"UNKNOWN"|"REJECTED",
    "index", "epoch", "primary", "message"}) or {"status": "closed"/"timeout"}."""
    o, pos = opts(args, {"timeout": float})
    addr, cid, data = pos
    host, port = addr.rsplit(":", 1)
    deadline = time.monotonic() + o.get("timeout", 10.0)
    sock = socket.create_connection((host, int(port)), timeout=5)
    secret = os.environ.get("REPLICACAO_CLUSTER_SECRET")
    buf = b""
    if secret:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            buf = _handshake(sock, secret.encode(), "e2e-probe")
        except OSError as e:
            print(json.dumps({"status": "closed", "message": str(e)}))
            return
    else:
        sock.sendall(_frame(10, _field(1, "e2e-probe") + _field(3, 1)))
    sock.sendall(_frame(20, _field(1, 7) + _field(2, cid) + _field(3, data)))
    result = {"status": "timeout"}
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        except OSError as e:
            result = {"status": "closed", "message": str(e)}
            break
        if not chunk:
            result = {"status": "closed"}
            break
        buf += chunk
        while len(buf) >= 4 and len(buf) >= 4 + int.from_bytes(buf[:4], "big"):
            n = int.from_bytes(buf[:4], "big")
            env, buf = _decode(buf[4:4 + n]), buf[4 + n:]
            if 21 in env:
                r = _decode(env[21])
                names = {0: "OK", 1: "NOT_PRIMARY", 2: "UNKNOWN", 3: "REJECTED"}
                result = {"status": names.get(r.get(2, 0), str(r.get(2))),
                          "index": r.get(3, 0), "epoch": r.get(4, 0),
                          "primary": r.get(5, b"").decode(),
                          "message": r.get(7, b"").decode()}
                print(json.dumps(result))
                return
            if 29 in env:
                result = {"status": "error",
                          "message": _decode(env[29]).get(1, b"").decode()}
    print(json.dumps(result))


def read_log(base):
    entries, after = [], 0
    while True:
        status, body = http(base, "GET", "/api/requests?after=%d&limit=1000" % after)
        if status != 200 or not isinstance(body, dict):
            fail("GET /api/requests?after=%d: %s %s" % (after, status, body))
        page = body.get("entries") or []
        if not page:
            return entries, body.get("commit_index", 0)
        for e in page:
            if e["index"] <= after:
                fail("GET /api/requests?after=%d returned index %d" % (after, e["index"]))
            after = e["index"]
        entries.extend(page)


def check_log(base, args):
    """Acked requests (a file of put replies, one JSON per line) are each in the
    committed log exactly once, at the acked index and epoch; indices increase,
    epochs never go down; no client id appears twice; with --old-epoch and
    --new-epoch: no entry of the old epoch sits after the new epoch's first
    entry (the deposed primary committed nothing once its successor existed),
    and with --old-last N none of the old epoch beyond index N (the deposed
    primary's last index when it was paused)."""
    o, pos = opts(args, {"old-epoch": int, "old-last": int, "new-epoch": int, "extra": str})
    acks = [json.loads(line) for line in open(pos[0]) if line.strip()]
    # The coordinator's view can lag a replica's by a poll; wait until the
    # log reaches the highest acked index.
    need = max([a["index"] for a in acks] or [0])
    deadline = time.monotonic() + 30
    while True:
        entries, commit = read_log(base)
        if (entries and entries[-1]["index"] >= need) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    byindex, ids = {}, {}
    prev_index, prev_epoch = 0, 0
    for e in entries:
        if e["index"] <= prev_index:
            fail("log index %d after %d" % (e["index"], prev_index))
        if e["epoch"] < prev_epoch:
            fail("log epoch goes down: index %d epoch %d after epoch %d" %
                 (e["index"], e["epoch"], prev_epoch))
        prev_index, prev_epoch = e["index"], e["epoch"]
        byindex[e["index"]] = e
        if e.get("id"):
            ids.setdefault(e["id"], []).append(e["index"])
    dups = {k: v for k, v in ids.items() if len(v) > 1}
    if dups:
        fail("client ids committed more than once: %s" % dups)
    for a in acks:
        got = ids.get(a["id"], [])
        if len(got) != 1:
            fail("acked %s (index %s epoch %s) appears %d times in the log" %
                 (a["id"], a["index"], a["epoch"], len(got)))
        e = byindex[got[0]]
        if e["index"] != a["index"] or e["epoch"] != a["epoch"]:
            fail("acked %s at index %s epoch %s, but the log has it at index %s epoch %s" %
                 (a["id"], a["index"], a["epoch"], e["index"], e["epoch"]))
    if o.get("extra"):
        got = ids.get(o["extra"], [])
        if len(got) != 1:
            fail("%s appears %d times in the log" % (o["extra"], len(got)))
    report = {"entries": len(entries), "commit_index": commit, "acked": len(acks),
              "client_ids": len(ids)}
    if o.get("old-epoch") is not None:
        old, new = o["old-epoch"], o["new-epoch"]
        first_new = min([e["index"] for e in entries if e["epoch"] >= new] or [0])
        if first_new == 0:
            fail("no committed entry in epoch >= %d" % new)
        late = [e for e in entries if e["epoch"] == old and e["index"] >= first_new]
        if late:
            fail("entries of the old epoch %d after the new epoch's first index %d: %s" %
                 (old, first_new, late))
        if o.get("old-last") is not None:
            beyond = [e for e in entries if e["epoch"] == old and e["index"] > o["old-last"]]
            if beyond:
                fail("entries of the old epoch %d beyond the old primary's last index %d at the"
                     " pause were committed: %s" % (old, o["old-last"], beyond))
        report["first_index_of_new_epoch"] = first_new
        last_old = max([e["index"] for e in entries if e["epoch"] == old] or [0])
        report["last_index_of_old_epoch"] = last_old
    print(json.dumps(report))


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("0.0.0.0", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    base, cmd, args = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3:]
    if cmd == "free-port":
        print(free_port())
    elif cmd == "cluster":
        c = cluster(base)
        if c is None:
            fail("no /api/cluster answer")
        print(json.dumps(c))
    elif cmd == "wait":
        cmd_wait(base, args)
    elif cmd == "put":
        cmd_put(base, args)
    elif cmd == "writer":
        cmd_writer(base, args)
    elif cmd == "kill-put":
        cmd_kill_put(base, args)
    elif cmd == "raw-put":
        cmd_raw_put(args)
    elif cmd == "log":
        print(json.dumps(read_log(base)[0]))
    elif cmd == "check-log":
        check_log(base, args)
    else:
        fail("unknown command " + cmd)


if __name__ == "__main__":
    main()
