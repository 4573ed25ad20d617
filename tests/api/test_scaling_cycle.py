"""The scaling cycle users put a cluster through, under --spawn and with
writers running: 3 -> 5 -> 3 -> 2 -> 3 replicas through the API (POST
/api/replicas to grow, DELETE /api/replicas/{id} to shrink, the primary
among the removed so that it has to hand over).

At every step:
- the configuration settles on exactly the live replicas: "voters" is the
  set of replicas up, no learner is left, the list holds nobody else, and
  the removed replicas' processes are gone;
- writes keep committing: the longest stretch without an acknowledged write,
  from the change's request until it settled, stays under WRITE_GAP_S;
and at the end every acknowledged write is in the committed log exactly
once, at the index it was acknowledged with.
"""
import threading
import time
import unittest

from harness import Coordinator, figure

WRITERS = 2
WRITE_GAP_S = 2.0  # the bound: writes commit within 2 s of a change
SETTLE_S = 60.0    # generous: the bound is checked on the gaps, not here


class Writers:
    """WRITERS threads, each writing its own ids in order until stopped.
    Every acknowledgement is kept with its time."""

    def __init__(self, co):
        self.co = co
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.acks = []  # (monotonic time, id, index)
        self.errors = []
        self.threads = [threading.Thread(target=self.run, args=(w,), daemon=True)
                        for w in range(WRITERS)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def run(self, w):
        n = 0
        while not self.stop.is_set():
            n += 1
            rid = f"cycle-{w}-{n}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    r = self.co.post("/api/requests", {"data": f"w{w} #{n}", "id": rid}, timeout=15)
                except OSError as e:
                    r = None
                    status = f"error {e}"
                else:
                    status = r.status
                if r is not None and r.status == 201:
                    with self.lock:
                        self.acks.append((time.monotonic(), rid, r.json["index"]))
                    break
                if (r is not None and r.status not in (503, 504)) or time.monotonic() > deadline:
                    with self.lock:
                        self.errors.append(f"{rid}: {status} {r.body[:200] if r else ''}")
                    return
                time.sleep(0.01)

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=40)

    def longest_gap(self, since, until):
        """The longest time in [since, until] without an acknowledgement."""
        with self.lock:
            times = sorted(t for t, _, _ in self.acks if since <= t <= until)
        points = [since] + times + [until]
        return max(b - a for a, b in zip(points, points[1:]))


class ScalingCycle(unittest.TestCase):
    def setUp(self):
        self.co = Coordinator(n=3, name="scaling").start()
        self.addCleanup(self.co.cleanup)
        self.addCleanup(self.co.stop, False)

    def settled(self, n, gone=()):
        """Wait until the configuration is exactly the n live replicas."""
        def ok(c):
            reps = c.get("replicas", [])
            up = sorted(r["id"] for r in reps if r["status"] == "up")
            return (c.get("primary") in up and len(reps) == n and len(up) == n
                    and sorted(c.get("voters", [])) == up and not c.get("learners")
                    and c.get("quorum") == n // 2 + 1
                    and c.get("reachable_voters") == n
                    and all(r["commit_index"] == c["commit_index"] for r in reps)
                    and not set(gone) & set(up))
        return self.co.wait_for(ok, SETTLE_S, f"the configuration to be {n} live voters")

    def change(self, writers, what, n, act):
        """Run one step: act() issues the API calls; returns the view."""
        t0 = time.monotonic()
        gone = act()
        c = self.settled(n, gone)
        t1 = time.monotonic()
        # Past the settling point, the writers must still be writing.
        time.sleep(0.3)
        gap = writers.longest_gap(t0, time.monotonic())
        figure("scaling_cycle", f"{what}: settled after", f"{(t1 - t0) * 1000:.0f} ms")
        figure("scaling_cycle", f"{what}: longest time without a commit", f"{gap * 1000:.0f} ms")
        self.assertLess(gap, WRITE_GAP_S, f"{what}: {gap:.2f} s without a committed write")
        for rid in gone:
            self.co.wait_for(lambda _c: rid not in self.co.replica_pids(), 20,
                             f"the process of removed replica {rid} to end")
        return c

    def add(self, k):
        ids = []
        for _ in range(k):
            r = self.co.post("/api/replicas", timeout=15)
            self.assertEqual(r.status, 202, r)
            ids.append(r.json["id"])
        return []

    def remove(self, ids):
        for rid in ids:
            deadline = time.monotonic() + 30
            while True:
                r = self.co.request("DELETE", f"/api/replicas/{rid}", timeout=15)
                if r.status == 202:
                    self.assertEqual(r.json["removing"], rid)
                    break
                # One change at a time: the previous one may still commit.
                self.assertIn(r.status, (409, 503), r)
                self.assertLess(time.monotonic(), deadline, f"DELETE {rid}: {r}")
                time.sleep(0.1)
        return ids

    def test_three_five_three_two_three(self):
        c = self.co.cluster()
        self.assertEqual(sorted(c["voters"]), sorted(r["id"] for r in c["replicas"]))
        writers = Writers(self.co).start()
        try:
            c = self.change(writers, "3 -> 5", 5, lambda: self.add(2))
            backups = [r["id"] for r in c["replicas"] if r["id"] != c["primary"]]
            c = self.change(writers, "5 -> 3 (primary and a backup removed)", 3,
                            lambda: self.remove([c["primary"], backups[0]]))
            backup = [r["id"] for r in c["replicas"] if r["id"] != c["primary"]][0]
            self.change(writers, "3 -> 2", 2, lambda: self.remove([backup]))
            self.change(writers, "2 -> 3", 3, lambda: self.add(1))
        finally:
            writers.finish()
        self.assertEqual(writers.errors, [])
        acked = {rid: index for _, rid, index in writers.acks}
        figure("scaling_cycle", "writes acknowledged during the cycle", len(acked))
        self.assertGreater(len(acked), 20)
        seen = {}
        for e in self.co.all_entries():
            if e["id"] in acked:
                self.assertNotIn(e["id"], seen, f"{e['id']} committed twice")
                seen[e["id"]] = e["index"]
        self.assertEqual(seen, acked, "acknowledged writes missing or at another index")


if __name__ == "__main__":
    unittest.main()
