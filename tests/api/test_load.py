"""Load under failover: 50 client threads with unique ids, retrying the same
id on 503/504/connection errors, while the primary is failed 5 times.
Every acknowledged request must appear exactly once, at the index it was
acknowledged with, and each thread's acknowledgements in index order."""
import http.client
import json
import random
import threading
import time
import unittest

from harness import HOST, CoordinatorTestCase, WebSocket, figure, ms, percentile

THREADS = 50
PER_THREAD_MAX = 80          # at most 4000 requests in all
PACE_S = (0.04, 0.12)        # think time between one thread's requests
MAX_ATTEMPTS = 40
FAILOVERS = 5
FAILOVER_SPACING_S = 1.0
HARD_DEADLINE_S = 50


class Client(threading.Thread):
    def __init__(self, k, port, stop, deadline):
        super().__init__(daemon=True)
        self.k, self.port, self.stop, self.deadline = k, port, stop, deadline
        self.acked = []        # (index, id, data, epoch) in ack order
        self.latency = []
        self.retries = 0
        self.s503 = self.s504 = self.conn_errors = 0
        self.other = []        # unexpected answers
        self.gave_up = []      # ids never acknowledged
        self.rng = random.Random(k)

    def post(self, body):
        conn = http.client.HTTPConnection(HOST, self.port, timeout=20)
        try:
            conn.request("POST", "/api/requests", body=body,
                         headers={"Content-Type": "application/json", "Connection": "close"})
            r = conn.getresponse()
            return r.status, r.getheader("Retry-After"), r.read()
        finally:
            conn.close()

    def run(self):
        for i in range(PER_THREAD_MAX):
            if self.stop.is_set() or time.monotonic() > self.deadline:
                return
            rid = f"L{self.k:02d}-{i:03d}"
            data = f"load {self.k} {i}"
            body = json.dumps({"data": data, "id": rid})
            t0 = time.monotonic()
            for attempt in range(MAX_ATTEMPTS):
                if attempt:
                    self.retries += 1
                try:
                    status, retry_after, raw = self.post(body)
                except (OSError, http.client.HTTPException):
                    self.conn_errors += 1
                    time.sleep(0.05)
                    continue
                if status == 201:
                    b = json.loads(raw)
                    if b.get("id") != rid or b.get("data") != data:
                        self.other.append((rid, status, raw[:200]))
                    self.acked.append((b["index"], rid, data, b["epoch"]))
                    self.latency.append(time.monotonic() - t0)
                    break
                if status in (503, 504):
                    if status == 503:
                        self.s503 += 1
                        wait = min(float(retry_after or 1), 0.2)
                    else:
                        self.s504 += 1
                        wait = 0.05
                    time.sleep(wait)
                    continue
                self.other.append((rid, status, raw[:200]))
                break
            else:
                self.gave_up.append(rid)
            time.sleep(self.rng.uniform(*PACE_S))


class LoadTests(CoordinatorTestCase):
    coordinator_name = "load"

    def test_load_under_failover(self):
        self.co.wait_converged(timeout=15)
        ws = WebSocket(self.port)
        ws.next(timeout=5)
        stop = threading.Event()
        t_start = time.monotonic()
        clients = [Client(k, self.port, stop, t_start + HARD_DEADLINE_S) for k in range(THREADS)]
        for c in clients:
            c.start()

        failovers = []  # (old, new, fail call -> elected on WS, failover_ms, fail call -> new primary in /api/cluster)
        try:
            time.sleep(1.0)
            for n in range(FAILOVERS):
                c = self.co.wait_primary(timeout=10)
                old, epoch = c["primary"], c["epoch"]
                t0 = time.monotonic()
                r = self.co.post("/api/primary/fail", timeout=10)
                if r.status != 202:  # the view was a poll old: try once more
                    time.sleep(0.1)
                    c = self.co.wait_primary(timeout=10)
                    old, epoch = c["primary"], c["epoch"]
                    t0 = time.monotonic()
                    r = self.co.post("/api/primary/fail", timeout=10)
                self.assertEqual(r.status, 202, r)
                old = r.json["failed"]
                t_ev, ev = ws.wait_event(lambda e: e["type"] == "elected" and e["replica"] != old,
                                         timeout=10, what=f"elected after failover {n + 1}")
                c2 = self.co.wait_primary(timeout=10, not_id=old, min_epoch=epoch + 1)
                t_view = time.monotonic()
                failovers.append((old, ev["replica"], t_ev - t0, ev.get("failover_ms"), t_view - t0))
                self.assertEqual(c2["primary"], ev["replica"])
                time.sleep(FAILOVER_SPACING_S)
            time.sleep(0.5)
        finally:
            stop.set()
            for c in clients:
                c.join(timeout=60)
            ws.close()
        wall = time.monotonic() - t_start
        self.assertFalse(any(c.is_alive() for c in clients), "client threads did not finish")

        # ---- what was acknowledged is there, once, at its index ----------
        self.co.wait_converged(timeout=20, min_index=max((a[0] for c in clients for a in c.acked), default=0))
        t_read = time.monotonic()
        entries = self.co.all_entries(page=1000)
        read_time = time.monotonic() - t_read
        by_id = {}
        for e in entries:
            by_id.setdefault(e["id"], []).append(e)
        acked = [a for c in clients for a in c.acked]
        problems = []
        for index, rid, data, _epoch in acked:
            got = by_id.get(rid, [])
            if len(got) != 1:
                problems.append(f"{rid}: acknowledged at {index}, found {len(got)} times")
            elif got[0]["index"] != index or got[0]["data"] != data:
                problems.append(f"{rid}: acknowledged at {index}, found {got[0]}")
        dups = {rid: len(v) for rid, v in by_id.items() if rid.startswith("L") and len(v) > 1}
        for c in clients:
            idx = [a[0] for a in c.acked]
            if idx != sorted(idx) or len(set(idx)) != len(idx):
                problems.append(f"thread {c.k}: acknowledged indices out of order: {idx}")
        order = [e["index"] for e in entries]
        if order != sorted(set(order)):
            problems.append("GET /api/requests: indices not strictly increasing")
        other = [o for c in clients for o in c.other]

        # ---- figures ----------------------------------------------------------------
        lat = [x for c in clients for x in c.latency]
        retries = sum(c.retries for c in clients)
        s503 = sum(c.s503 for c in clients)
        s504 = sum(c.s504 for c in clients)
        cerr = sum(c.conn_errors for c in clients)
        gave_up = [g for c in clients for g in c.gave_up]
        figure("load", "clients / requests acknowledged / wall time",
               f"{THREADS} threads / {len(acked)} / {wall:.1f} s ({len(acked) / wall:.0f} acked/s)")
        figure("load", "retries / 503 / 504 / connection errors / gave up",
               f"{retries} / {s503} / {s504} / {cerr} / {len(gave_up)}")
        figure("load", "request latency incl. retries p50 / p99 / max",
               f"{ms(percentile(lat, 50))} / {ms(percentile(lat, 99))} / {ms(max(lat))}")
        for i, (old, new, dt_ev, fo, dt_view) in enumerate(failovers):
            figure("load", f"failover {i + 1} {old} -> {new}",
                   f"fail call -> elected on WS {ms(dt_ev)}, failover_ms {fo}, "
                   f"-> new primary in /api/cluster {ms(dt_view)}")
        fos = [f[3] for f in failovers if isinstance(f[3], (int, float))]
        if fos:
            figure("load", "failover_ms under load min / median / max",
                   f"{min(fos)} / {percentile(fos, 50)} / {max(fos)}")
        figure("load", f"reading back {len(entries)} entries (pages of 1000)", ms(read_time))

        self.assertEqual(len(failovers), FAILOVERS)
        self.assertEqual(other, [], "unexpected answers")
        self.assertEqual(gave_up, [], f"requests never acknowledged after {MAX_ATTEMPTS} attempts")
        self.assertEqual(problems, [])
        self.assertEqual(dups, {}, "ids applied more than once")
        self.assertGreater(len(acked), 1000, "too little load to mean anything")
        self.assertTrue(all(isinstance(f, (int, float)) for f in [x[3] for x in failovers]),
                        f"elected events without failover_ms: {failovers}")


if __name__ == "__main__":
    unittest.main()
