"""Linearizability of the coordinator's API under faults, checked on a
recorded history (linearizability.py holds the checker and its proof).

Against `coordinator --spawn 3` and then `--spawn 5` (a fresh cluster for
each run): 4 appender threads POST /api/requests with unique ids and 4
reader threads GET /api/requests, for DURATION_S, while a fault thread
every 1-2 s fails the primary or a random replica (POST .../fail: the
supervisor restarts it) or pauses the primary or a random replica with
SIGSTOP for 0.5-2 s (SIGCONT in a finally). Appender 3 is impatient: its
socket timeout is IMPATIENT_TIMEOUT_S, so during faults it gives up on
requests the coordinator goes on retrying, which may commit after the
client's "unknown" (the case the checker's +infinity completion covers).
Every operation is recorded
with its invocation and completion times (time.monotonic() around the HTTP
call) and its outcome:

  append  201 -> ok(index); 400/409/other 4xx -> definite failure;
          503 (no_primary may come after an attempt was sent), 504, any
          other 5xx, a socket timeout or a connection error -> unknown.
  read    200 -> ok(entries, commit_index); anything else -> no result.

Reads are one request each, `after=0&limit=1000`, returning the whole
prefix of the log up to the commit index they were served at: the run
stops appending at MAX_APPENDS (< 1000) so that a read is never paged. A
paged read would be several requests served at different commit indexes,
not one atomic read; reading `after=N` instead would leave entries <= N
unverified by that read. One request per read keeps the model exact.

At the end: SIGCONT every replica, join the clients, wait until every
request the coordinator may still be retrying has been answered
(--request-timeout-ms plus its 1 s backstop), append one fence entry
(retried with its id until acknowledged: once the primary of the final
epoch commits it, no unknown append left in some replica's log can commit
any more), wait until every replica is up at the same commit index, and
read the final log (twice, it must not move). The checker then judges the
history against it.

Runs, one cluster each:
  spawn 3 / spawn 5, consistency=linearizable (reads of reader threads 0
  and 2 pass it explicitly, 1 and 3 rely on the default): the test FAILS on
  any anomaly and on a read answer that does not name "consistency":
  "linearizable" (the contract: "the answer names consistency").
  spawn 3 / spawn 5, consistency=serializable: stale and non-monotonic
  reads are allowed there and only REPORTED (they show the checker has
  teeth); any other anomaly (lost, reordered or invented entries, a read of
  something that is not a committed prefix) still fails.

Environment: HIST_DURATION_S (default 25), HIST_SERIALIZABLE_DURATION_S
(default 15), HIST_SEED (fault schedule seed; default random, printed).
With --figures, a run with anomalies also writes its history and final log
as JSON next to the figures file (history_<n>_<consistency>.json).
"""
import http.client
import json
import os
import random
import signal
import threading
import time
import unittest
import urllib.parse

import harness
import linearizability as lz
from harness import HOST, Coordinator, figure

DURATION_S = float(os.environ.get("HIST_DURATION_S", "25"))
SERIALIZABLE_DURATION_S = float(os.environ.get("HIST_SERIALIZABLE_DURATION_S", "15"))
APPENDERS = 4
READERS = 4
MAX_APPENDS = 900            # the whole log in one read (limit 1000), fence included
APPEND_PACE_S = (0.08, 0.20)
READ_PACE_S = (0.03, 0.12)
FAULT_EVERY_S = (1.0, 2.0)
PAUSE_S = (0.5, 2.0)
REQUEST_TIMEOUT_MS = 5000    # the coordinator's --request-timeout-ms
CLIENT_TIMEOUT_S = 9.0       # the client's socket timeout: past the coordinator's own
IMPATIENT_TIMEOUT_S = 0.4    # appender 3's socket timeout (a normal append takes ~10 ms)
READ_LIMIT = 1000
# anomalies a serializable read may show (and are only reported there)
SERIALIZABLE_ALLOWED = {lz.STALE_READ, lz.NONMONOTONIC_READ}


def call(port, method, path, body=None, timeout=CLIENT_TIMEOUT_S):
    """(status, parsed JSON or None, raw) on a fresh connection."""
    headers = {"Connection": "close"}
    if body is not None:
        body = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        raw = r.read()
    finally:
        conn.close()
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = None
    return r.status, parsed, raw


def error_code(parsed):
    try:
        return parsed["error"]["code"]
    except (TypeError, KeyError):
        return None


class Recorder:
    def __init__(self):
        self.lock = threading.Lock()
        self.ops = []
        self.statuses = {}      # (kind, status or exception name) -> count
        self.problems = []      # contract problems seen on the way
        self.consistency_seen = {}  # what read answers named -> count

    def add(self, op, status):
        with self.lock:
            self.ops.append(op)
            key = (op.kind, status)
            self.statuses[key] = self.statuses.get(key, 0) + 1

    def problem(self, text):
        with self.lock:
            if len(self.problems) < 50:
                self.problems.append(text)

    def appends(self):
        with self.lock:
            return sum(1 for op in self.ops if op.kind == lz.APPEND)


class Appender(threading.Thread):
    def __init__(self, k, port, rec, stop, tag, budget):
        super().__init__(daemon=True, name=f"append-{k}")
        self.k, self.port, self.rec, self.stop, self.tag, self.budget = k, port, rec, stop, tag, budget
        self.rng = random.Random(f"{tag}-a{k}")
        self.timeout = IMPATIENT_TIMEOUT_S if k == 3 else CLIENT_TIMEOUT_S

    def run(self):
        i = 0
        while not self.stop.is_set() and self.budget.take():
            rid = f"{self.tag}-a{self.k}-{i}"
            data = f"history {self.tag} appender {self.k} op {i}"
            i += 1
            t0 = time.monotonic()
            try:
                status, parsed, raw = call(self.port, "POST", "/api/requests", {"data": data, "id": rid},
                                            timeout=self.timeout)
            except (OSError, http.client.HTTPException) as e:
                t1 = time.monotonic()
                self.rec.add(lz.append_unknown(rid, data, t0, t1, client=self.name,
                                               note=type(e).__name__), type(e).__name__)
            else:
                t1 = time.monotonic()
                if status == 201:
                    if not isinstance(parsed, dict) or parsed.get("id") != rid or parsed.get("data") != data:
                        self.rec.problem(f"201 for {rid} names another request: {raw[:200]!r}")
                    try:
                        index = int(parsed["index"])
                    except (TypeError, KeyError, ValueError):
                        self.rec.problem(f"201 for {rid} without an index: {raw[:200]!r}")
                        self.rec.add(lz.append_unknown(rid, data, t0, t1, client=self.name,
                                                       note="201 without index"), status)
                        continue
                    self.rec.add(lz.append_ok(rid, data, index, t0, t1, client=self.name), status)
                elif 400 <= status < 500:
                    self.rec.problem(f"POST {rid}: unexpected {status} {raw[:200]!r}")
                    self.rec.add(lz.append_fail(rid, data, t0, t1, client=self.name,
                                                note=f"{status} {error_code(parsed)}"), status)
                else:
                    self.rec.add(lz.append_unknown(rid, data, t0, t1, client=self.name,
                                                   note=f"{status} {error_code(parsed)}"), status)
            self.stop.wait(self.rng.uniform(*APPEND_PACE_S))


class Reader(threading.Thread):
    def __init__(self, k, port, rec, stop, tag, consistency, explicit):
        super().__init__(daemon=True, name=f"read-{k}")
        self.k, self.port, self.rec, self.stop = k, port, rec, stop
        self.consistency, self.explicit = consistency, explicit
        self.rng = random.Random(f"{tag}-r{k}")
        q = {"after": 0, "limit": READ_LIMIT}
        if explicit:
            q["consistency"] = consistency
        self.path = "/api/requests?" + urllib.parse.urlencode(q)

    def run(self):
        how = "explicit" if self.explicit else "default"
        while not self.stop.is_set():
            t0 = time.monotonic()
            try:
                status, parsed, raw = call(self.port, "GET", self.path)
            except (OSError, http.client.HTTPException) as e:
                t1 = time.monotonic()
                self.rec.add(lz.read_unknown(t0, t1, client=self.name, note=type(e).__name__),
                             type(e).__name__)
            else:
                t1 = time.monotonic()
                if status == 200 and isinstance(parsed, dict) and isinstance(parsed.get("entries"), list):
                    entries = parsed["entries"]
                    named = parsed.get("consistency")
                    with self.rec.lock:
                        self.rec.consistency_seen[named] = self.rec.consistency_seen.get(named, 0) + 1
                    if len(entries) >= READ_LIMIT:
                        self.rec.problem(f"a read returned {len(entries)} entries: paged, not modelled")
                        self.rec.add(lz.read_unknown(t0, t1, client=self.name, note="full page"), status)
                    else:
                        self.rec.add(lz.read_ok(entries, t0, t1, commit_index=parsed.get("commit_index"),
                                                client=self.name, note=f"{how} {named}"), status)
                else:
                    if 400 <= status < 500:
                        self.rec.problem(f"GET {self.path}: unexpected {status} {raw[:200]!r}")
                    self.rec.add(lz.read_unknown(t0, t1, client=self.name,
                                                 note=f"{status} {error_code(parsed)}"), status)
            self.stop.wait(self.rng.uniform(*READ_PACE_S))


class Budget:
    """At most n appends in all, whatever their outcome."""

    def __init__(self, n):
        self.n = n
        self.lock = threading.Lock()

    def take(self):
        with self.lock:
            if self.n <= 0:
                return False
            self.n -= 1
            return True


class Faults(threading.Thread):
    """Every 1-2 s one of: fail the primary, fail a random replica, pause
    the primary or a random replica (SIGSTOP, SIGCONT 0.5-2 s later).
    Failing the primary is drawn twice as often as each other fault: the
    window after it, when the coordinator sees no primary, is where a read
    served from a replica's own commit index goes stale."""

    KINDS = ("fail primary", "fail primary", "fail replica", "pause primary", "pause replica")

    def __init__(self, co, stop, seed):
        super().__init__(daemon=True, name="faults")
        self.co, self.stop = co, stop
        self.rng = random.Random(seed)
        self.log = []          # (t0, t1, kind, target, result)
        self.errors = []
        self.paused = set()

    def run(self):
        try:
            while not self.stop.wait(self.rng.uniform(*FAULT_EVERY_S)):
                try:
                    self.one()
                except Exception as e:  # noqa: BLE001 - keep injecting; report at the end
                    self.errors.append(f"{type(e).__name__}: {e}")
        finally:
            self.cont_all()

    def one(self):
        kind = self.rng.choice(self.KINDS)
        try:
            c = self.co.cluster()
        except (OSError, http.client.HTTPException, AssertionError, ValueError):
            self.log.append((time.monotonic(), time.monotonic(), kind, None, "no cluster view"))
            return
        ids = [r["id"] for r in c.get("replicas", [])]
        primary = c.get("primary")
        if not ids:
            return
        target = primary if kind.endswith("primary") else self.rng.choice(ids)
        t0 = time.monotonic()
        if kind == "fail primary":
            status, parsed, _ = call(self.co.port, "POST", "/api/primary/fail")
            target = parsed.get("failed") if status == 202 and isinstance(parsed, dict) else primary
            self.log.append((t0, time.monotonic(), kind, target, status))
        elif kind == "fail replica":
            status, _, _ = call(self.co.port, "POST", f"/api/replicas/{target}/fail")
            self.log.append((t0, time.monotonic(), kind, target, status))
        else:
            if target is None:
                self.log.append((t0, t0, kind, None, "no primary"))
                return
            pid = self.co.replica_pids().get(target)
            if pid is None:
                self.log.append((t0, t0, kind, target, "not running"))
                return
            hold = self.rng.uniform(*PAUSE_S)
            try:
                os.kill(pid, signal.SIGSTOP)
                self.paused.add(pid)
                t0 = time.monotonic()
                time.sleep(hold)
            except ProcessLookupError:
                self.log.append((t0, time.monotonic(), kind, target, "gone"))
                return
            finally:
                self.cont(pid)
            self.log.append((t0, time.monotonic(), kind, target, f"{hold:.2f} s"))

    def cont(self, pid):
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
        self.paused.discard(pid)

    def cont_all(self):
        for pid in list(self.paused):
            self.cont(pid)
        for pid in self.co.replica_pids().values():
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass


class HistoryTests(unittest.TestCase):
    maxDiff = None

    def run_history(self, n, consistency, duration):
        name = f"spawn {n} {consistency}"
        tag = f"h{n}{consistency[0]}{os.getpid() % 10000}"
        seed = int(os.environ.get("HIST_SEED", random.randrange(1 << 30)))
        print(f"\n=== {name}: {duration:.0f} s, {APPENDERS} appenders + {READERS} readers, "
              f"fault seed {seed} ===", flush=True)
        co = Coordinator(n=n, extra=["--request-timeout-ms", str(REQUEST_TIMEOUT_MS)], name=f"hist{n}")
        failed = True
        try:
            co.start(timeout=30)
            co.wait_converged(timeout=20)
            res, rec, faults, final = self.record_and_check(co, n, consistency, duration, tag, seed)
            failed = False
        finally:
            alive = co.alive()
            problems = co.stop(check=False)
            if not alive:
                problems.insert(0, f"coordinator had died (status {co.proc.returncode})")
            co.cleanup(keep=bool(problems))
            if problems and not failed:
                raise AssertionError("; ".join(problems) + "\n" + co.log_tail())
        return name, res, rec, faults, final

    def record_and_check(self, co, n, consistency, duration, tag, seed):
        rec = Recorder()
        stop = threading.Event()
        budget = Budget(MAX_APPENDS - 1)  # one left for the fence
        clients = [Appender(k, co.port, rec, stop, tag, budget) for k in range(APPENDERS)]
        clients += [Reader(k, co.port, rec, stop, tag, consistency,
                           explicit=(consistency != "linearizable" or k % 2 == 0))
                    for k in range(READERS)]
        faults = Faults(co, stop, seed)
        t_start = time.monotonic()
        for c in clients:
            c.start()
        faults.start()
        try:
            stop.wait(duration)
        finally:
            stop.set()
            faults.join(timeout=10)
            faults.cont_all()  # heal, whatever happened to the fault thread
            for c in clients:
                c.join(timeout=CLIENT_TIMEOUT_S + 10)
        self.assertFalse(faults.is_alive(), "fault thread did not finish")
        self.assertFalse(any(c.is_alive() for c in clients), "client threads did not finish")
        wall = time.monotonic() - t_start
        # requests abandoned by the impatient client may still be retried
        # by the coordinator: let every one of them be answered first
        time.sleep(REQUEST_TIMEOUT_MS / 1000.0 + 1.5)

        # ---- fence, converge, final log ---------------------------------------
        fence = self.fence(co, tag)
        rec.add(fence, 201)
        co.wait_converged(timeout=30, min_index=fence.index)
        final = self.final_log(co)
        self.assertTrue(final and final[-1]["id"] == fence.id,
                        f"the final log does not end with the fence {fence.id}: {final[-3:]}")

        # ---- check ------------------------------------------------------------------
        t0 = time.monotonic()
        res = lz.check(rec.ops, final)
        took = time.monotonic() - t0
        name = f"spawn {n} {consistency}"
        self.report(name, consistency, res, rec, faults, wall, took, n, final)
        return res, rec, faults, final

    def fence(self, co, tag):
        """One append retried with its id until acknowledged."""
        rid, data = f"{tag}-fence", "fence"
        t0 = time.monotonic()
        deadline = t0 + 60
        last = None
        while time.monotonic() < deadline:
            try:
                status, parsed, raw = call(co.port, "POST", "/api/requests", {"data": data, "id": rid})
                if status == 201:
                    return lz.append_ok(rid, data, int(parsed["index"]), t0, time.monotonic(),
                                        client="fence")
                last = (status, raw[:200])
            except (OSError, http.client.HTTPException) as e:
                last = repr(e)
            time.sleep(0.2)
        raise AssertionError(f"the fence was not acknowledged within 60 s: {last}\n{co.log_tail()}")

    def final_log(self, co):
        """The converged log, read until two reads 0.5 s apart agree."""
        path = f"/api/requests?after=0&limit={READ_LIMIT}&consistency=linearizable"
        prev = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                status, parsed, raw = call(co.port, "GET", path)
            except (OSError, http.client.HTTPException):
                status = None
            if status == 200:
                entries = parsed["entries"]
                self.assertLess(len(entries), READ_LIMIT, "the final log does not fit in one read")
                if prev is not None and entries == prev:
                    return entries
                prev = entries
            time.sleep(0.5)
        raise AssertionError("the final log did not settle within 30 s")

    def report(self, name, consistency, res, rec, faults, wall, took, n, final):
        c = res.counts
        print(res.report(limit=25), flush=True)
        origin = res.origin
        print(f"--- faults ({len(faults.log)}), times from the first invocation ---")
        for t0, t1, kind, target, result in faults.log:
            print(f"  [{t0 - origin:8.3f}, {t1 - origin:8.3f}] {kind} {target}: {result}")
        for e in faults.errors:
            print(f"  fault thread error: {e}")
        statuses = ", ".join(f"{k} {s}: {v}" for (k, s), v in
                             sorted(rec.statuses.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))))
        by_kind = {}
        for _t0, _t1, kind, _target, _result in faults.log:
            by_kind[kind] = by_kind.get(kind, 0) + 1
        figure("history", f"{name}: operations checked",
               f"{c['operations']} in {wall:.1f} s: appends {c['appends']} (ok {c['appends_ok']}, "
               f"fail {c['appends_fail']}, unknown {c['appends_unknown']}: {c['unknown_present']} "
               f"took effect, {c['unknown_absent']} did not), reads {c['reads']} "
               f"(ok {c['reads_ok']}, no result {c['reads_unknown']}), final log {c['final_log']} "
               f"entries; checked in {took * 1000:.0f} ms")
        figure("history", f"{name}: answers", statuses)
        figure("history", f"{name}: faults injected",
               ", ".join(f"{k} {v}" for k, v in sorted(by_kind.items())) or "none")
        figure("history", f"{name}: read answers naming consistency",
               ", ".join(f"{k!r} {v}" for k, v in sorted(rec.consistency_seen.items(), key=str)))
        kinds = res.kinds()
        figure("history", f"{name}: anomalies",
               ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())) or "none")
        if consistency == "serializable":
            stale = kinds.get(lz.STALE_READ, 0) + kinds.get(lz.NONMONOTONIC_READ, 0)
            figure("history", f"{name}: stale reads found (reported, allowed)",
                   f"{kinds.get(lz.STALE_READ, 0)} stale, {kinds.get(lz.NONMONOTONIC_READ, 0)} "
                   f"non-monotonic of {c['reads_ok']} reads ({stale} in all)")
        if res.anomalies and harness.Config.figures:
            path = os.path.join(os.path.dirname(os.path.abspath(harness.Config.figures)),
                                f"history_{n}_{consistency}.json")
            dump = {"origin": origin, "final_log": final,
                    "anomalies": [a.format(origin) for a in res.anomalies],
                    "faults": [[t0 - origin, t1 - origin, k, tg, str(r)]
                               for t0, t1, k, tg, r in faults.log],
                    "ops": [{"seq": op.seq, "kind": op.kind, "outcome": op.outcome,
                             "invoke": op.invoke - origin, "complete": op.complete - origin,
                             "id": op.id, "data": op.data, "index": op.index,
                             "entries": len(op.entries) if op.entries is not None else None,
                             "last_index": op.entries[-1][0] if op.entries else None,
                             "commit_index": op.commit_index, "client": op.client, "note": op.note}
                            for op in rec.ops]}
            with open(path, "w", encoding="utf-8") as f:
                json.dump(dump, f)
            print(f"(history written to {path})")

    def verdict(self, name, consistency, res, rec, faults):
        self.assertEqual(faults.errors, [], "the fault thread failed")
        self.assertGreater(len(faults.log), 3, "too few faults injected")
        self.assertGreater(res.counts["appends_ok"], 50, "too few appends acknowledged")
        self.assertGreater(res.counts["reads_ok"], 50, "too few reads answered")
        bad = [a for a in res.anomalies
               if consistency == "linearizable" or a.kind not in SERIALIZABLE_ALLOWED]
        msgs = []
        if bad:
            text = "\n".join(a.format(res.origin) for a in bad[:25])
            more = f"\n... and {len(bad) - 25} more" if len(bad) > 25 else ""
            msgs.append(f"{name}: {len(bad)} anomalies:\n{text}{more}")
        if rec.problems:
            msgs.append(f"{name}: unexpected answers:\n  " + "\n  ".join(rec.problems))
        wrong = {k: v for k, v in rec.consistency_seen.items() if k != consistency}
        if wrong:
            msgs.append(f"{name}: read answers that do not name \"consistency\": "
                        f"\"{consistency}\" (the contract says they do): {wrong}")
        if msgs:
            self.fail("\n".join(msgs))

    def one(self, n, consistency):
        duration = DURATION_S if consistency == "linearizable" else SERIALIZABLE_DURATION_S
        name, res, rec, faults, _final = self.run_history(n, consistency, duration)
        self.verdict(name, consistency, res, rec, faults)

    def test_spawn3_linearizable(self):
        self.one(3, "linearizable")

    def test_spawn3_serializable(self):
        self.one(3, "serializable")

    def test_spawn5_linearizable(self):
        self.one(5, "linearizable")

    def test_spawn5_serializable(self):
        self.one(5, "serializable")


if __name__ == "__main__":
    unittest.main()
