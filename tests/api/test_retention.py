"""Retention: old entries go, a snapshot stands for them, nothing is lost.

One `coordinator --spawn 3` whose replicas keep only the newest 300
entries (REPLICA_RETAIN) in 8 KiB segments (REPLICA_SEGMENT_BYTES), both
inherited by the replicas it spawns. A backup is frozen (SIGSTOP) while the
others commit far more than that; thawed, it is behind the retained range
and must be brought up to date from the primary's snapshot plus the
retained segments. Checked: reads below the retained range answer 410 with
the first retained index; the thawed replica reaches the others' commit
index and serves the same retained entries; a thawed old primary keeps
counting what it processed; every acknowledged write is in
the log once; a retry of an old request is not applied again; after a
restart of every replica (kill) the cluster comes back with its history.
"""
import os
import signal
import time
import unittest
import uuid

from harness import CoordinatorTestCase

RETAIN = 300
WRITES = 1500


class RetentionTests(CoordinatorTestCase):
    coordinator_name = "retention"

    @classmethod
    def setUpClass(cls):
        env = {"REPLICA_RETAIN": str(RETAIN), "REPLICA_SEGMENT_BYTES": "8192"}
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            super().setUpClass()
        finally:
            for k, v in saved.items():
                if v is None:
                    del os.environ[k]
                else:
                    os.environ[k] = v

    def write(self, rid, data, seen=None):
        body = {"id": rid, "data": data}
        if seen is not None:
            body["seen_index"] = seen
        r = self.co.post("/api/requests", body, timeout=30)
        self.assertEqual(r.status, 201, r)
        return r.json

    def replica(self, rid):
        r = self.co.get(f"/api/replicas/{rid}", timeout=20)
        self.assertEqual(r.status, 200, r)
        return r.json

    def entries_from(self, after, consistency="linearizable"):
        out = []
        while True:
            r = self.co.get(f"/api/requests?after={after}&limit=1000&consistency={consistency}",
                            timeout=20)
            self.assertEqual(r.status, 200, r)
            if not r.json["entries"]:
                return out
            out.extend(r.json["entries"])
            after = out[-1]["index"]

    def test_far_behind_replica_and_horizon(self):
        co = self.co
        first = self.write("ret-first", "the very first")
        cluster = co.wait_primary(timeout=20, all_up=True)
        primary = cluster["primary"]
        backup = next(r["id"] for r in cluster["replicas"] if r["id"] != primary)
        pid = co.replica_pids()[backup]
        acked = {"ret-first": first["index"]}
        os.kill(pid, signal.SIGSTOP)
        try:
            for i in range(WRITES):
                rid = f"ret-{i}-{uuid.uuid4().hex[:6]}"
                acked[rid] = self.write(rid, f"value {i}")["index"]
        finally:
            os.kill(pid, signal.SIGCONT)

        # Below what the primary keeps: 410 and where the log starts now.
        r = co.get("/api/requests?after=0", timeout=20)
        self.assertEqual(r.status, 410, r)
        horizon = r.json["first_index"]
        self.assertGreater(horizon, 1)
        self.assertEqual(r.json["error"]["code"], "compacted")
        self.assertLess(horizon, max(acked.values()) - RETAIN + 2,
                        "the newest --retain entries must all be kept")

        # The thawed backup catches up from the snapshot and the segments.
        target = max(acked.values())
        co.wait_for(lambda c: any(x["id"] == backup and x["commit_index"] >= target
                                  for x in c["replicas"]), 60,
                    f"{backup} caught up to {target}")
        detail = self.replica(backup)
        self.assertEqual(detail["storage"]["disk"], "ok")
        self.assertGreater(detail["storage"]["first_index"], 1, "it kept only what it holds")

        # Every acknowledged write still kept is there once, at its index.
        kept = self.entries_from(horizon - 1)
        by_id = {}
        for e in kept:
            self.assertNotIn(e["id"], by_id, f"{e['id']} twice")
            by_id[e["id"]] = e["index"]
        for rid, index in acked.items():
            if index >= horizon:
                self.assertEqual(by_id.get(rid), index, rid)

        # A retry of the first request (its entry long dropped): not again.
        again = co.post("/api/requests", {"id": "ret-first", "data": "the very first",
                                          "seen_index": 0}, timeout=30)
        self.assertIn(again.status, (201, 409), again)
        if again.status == 201:
            self.assertEqual(again.json["index"], first["index"], "a retry answers the original")
        else:
            self.assertEqual(again.json["error"]["code"], "session_expired")

        # Every replica killed at once and restarted by the supervisor: the
        # history comes back from snapshots and segments.
        before = co.cluster()["commit_index"]
        for p in co.replica_pids().values():
            os.kill(p, signal.SIGKILL)
        co.wait_primary(timeout=60, all_up=True)
        self.write("ret-after", "after the restart")
        co.wait_for(lambda c: all(x["commit_index"] > before for x in c["replicas"]), 60,
                    "every replica past the old commit index")
        kept_after = self.entries_from(co.get("/api/requests?after=0").json.get("first_index", 1)
                                       - 1)
        ids = [e["id"] for e in kept_after]
        self.assertEqual(len(ids), len(set(ids)), "an entry applied twice after the restart")

    def test_old_primary_brought_back_by_snapshot_keeps_its_count(self):
        """A primary frozen after processing writes is deposed, left behind
        the retained range, then thawed: it installs the new primary's
        snapshot, and the writes it processed still count as its own."""
        co = self.co
        cluster = co.wait_primary(timeout=20, all_up=True)
        old = cluster["primary"]
        for i in range(20):
            last = self.write(f"own-{i}-{uuid.uuid4().hex[:6]}", f"by the first primary {i}")
        # One status that already counts the last write (an older one would
        # make the count look as if it grew later).
        co.wait_for(lambda c: self.replica(old)["commit_index"] >= last["index"], 30,
                    f"{old}'s status shows its last write committed")
        before = self.replica(old)["processed"]
        self.assertGreaterEqual(before, 20)
        pid = co.replica_pids()[old]
        os.kill(pid, signal.SIGSTOP)
        try:
            co.wait_for(lambda c: c.get("primary") not in (None, old), 30, "a new primary")
            for i in range(WRITES):
                self.write(f"new-{i}-{uuid.uuid4().hex[:6]}", f"by the next primary {i}")
        finally:
            os.kill(pid, signal.SIGCONT)
        target = co.cluster()["commit_index"]
        co.wait_for(lambda c: any(x["id"] == old and x["commit_index"] >= target
                                  for x in c["replicas"]), 60, f"{old} caught up to {target}")
        detail = self.replica(old)
        self.assertGreater(detail["storage"]["first_index"], 1, "it was brought back by a snapshot")
        self.assertEqual(detail["processed"], before,
                         "the writes it processed before it fell behind are still its own")


if __name__ == "__main__":
    unittest.main()
