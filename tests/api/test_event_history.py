"""The coordinator's bounded history of events and snapshots
(GET /api/history, and the `history` message a WebSocket client gets on
connect): what a reloaded dashboard rebuilds its timeline from."""
import os
import signal
import time
import unittest
import uuid

from harness import Coordinator, CoordinatorTestCase, WebSocket


def entries_of(h, kind=None, etype=None):
    out = []
    for e in h["entries"]:
        if kind and e.get("type") != kind:
            continue
        if etype and (e.get("event") or {}).get("type") != etype:
            continue
        out.append(e)
    return out


class HistoryTests(CoordinatorTestCase):
    coordinator_name = "history"

    def history(self):
        r = self.co.get("/api/history")
        self.assertEqual(r.status, 200, r)
        return r.json

    def post(self, data):
        r = self.co.post("/api/requests", {"data": data, "id": f"h-{uuid.uuid4().hex[:10]}"})
        self.assertEqual(r.status, 201, r)
        return r.json

    def test_shape_and_order(self):
        h = self.history()
        for k in ("capacity", "recorded", "dropped", "first_seq", "last_seq", "entries"):
            self.assertIn(k, h)
        self.assertEqual(h["recorded"], len(h["entries"]))
        seqs = [e["seq"] for e in h["entries"]]
        self.assertEqual(seqs, sorted(seqs))
        self.assertEqual(seqs, list(range(h["first_seq"], h["last_seq"] + 1)))
        # The cluster formed: an election and snapshots naming the primary.
        self.assertTrue(entries_of(h, "event", "elected"), h)
        snaps = entries_of(h, "snapshot")
        self.assertTrue(snaps)
        last = snaps[-1]
        self.assertTrue(last["time_ms"] > 0)
        self.assertEqual(len(last["replicas"]), 3)
        for r in last["replicas"]:
            for k in ("id", "name", "role", "status", "epoch"):
                self.assertIn(k, r)

    def test_requests_from_any_client_are_recorded(self):
        """A plain POST (no WebSocket listening) is in the history."""
        data = f"curl-{uuid.uuid4().hex[:8]}"
        ans = self.post(data)
        deadline = time.monotonic() + 5
        while True:
            got = [e for e in entries_of(self.history(), "event", "request_committed")
                   if e["event"].get("request", {}).get("data") == data]
            if got or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(len(got), 1, f"request {data} not recorded once")
        self.assertEqual(got[0]["event"]["request"]["index"], ans["index"])

    def test_long_data_is_cut(self):
        data = "x" * 5000
        self.post(data)
        time.sleep(0.3)
        got = [e for e in entries_of(self.history(), "event", "request_committed")
               if e["event"]["request"].get("data", "").startswith("xxxx")]
        self.assertTrue(got)
        self.assertLess(len(got[-1]["event"]["request"]["data"]), 1000)
        self.assertTrue(got[-1]["event"]["request"].get("data_cut"))
        # The live event is cut as well (events show what a request was;
        # the log has it whole).
        w = WebSocket(self.port)
        try:
            self.post("y" * 5000)
            deadline = time.monotonic() + 10
            while True:
                _t, m = w.next(timeout=5)
                if m.get("type") == "event" and m["event"]["type"] == "request_committed" \
                        and m["event"]["request"]["data"].startswith("yyyy"):
                    break
                self.assertLess(time.monotonic(), deadline, "no live request_committed")
            self.assertEqual(len(m["event"]["request"]["data"]), 200)
            self.assertTrue(m["event"]["request"].get("data_cut"))
        finally:
            w.close()

    def test_cut_keeps_whole_characters(self):
        """Cut at a byte count, data in two-byte characters must stay valid
        UTF-8 (the history is a WebSocket text frame too)."""
        data = "x" + "é" * 3000   # odd: the byte limit falls inside a character
        self.post(data)
        time.sleep(0.3)
        raw = self.co.get("/api/history").body
        raw.decode("utf-8")  # strict: raises on a split character
        got = [e for e in entries_of(self.history(), "event", "request_committed")
               if e["event"]["request"].get("data", "").startswith("xé")]
        self.assertTrue(got)
        cut = got[-1]["event"]["request"]["data"]
        self.assertTrue(set(cut[1:]) == {"é"} and len(cut.encode()) <= 200, cut)

    def test_frozen_replica_is_not_answering(self):
        """A SIGSTOPped replica keeps its connection (status "up") but stops
        answering: `answering` turns false and `status_age_ms` grows, which
        is what the dashboard counts as up."""
        c = self.co.cluster()
        backup = next(r["id"] for r in c["replicas"] if r["id"] != c["primary"])
        pid = self.co.replica_pids()[backup]
        for r in c["replicas"]:
            self.assertTrue(r["answering"], r)
            self.assertLess(r["status_age_ms"], 1000, r)
        os.kill(pid, signal.SIGSTOP)
        try:
            def frozen(c):
                return next((r for r in c["replicas"] if r["id"] == backup and r["status"] == "up"
                             and not r["answering"]), None)
            r = frozen(self.co.wait_for(frozen, 5, f"{backup} up but not answering"))
            self.assertGreater(r["status_age_ms"], 900)
            # The history keeps it, so a reloaded timeline shows the frozen stretch.
            # (published with the next cluster message: paced, so not at once)
            deadline = time.monotonic() + 3
            while not any(x["id"] == backup and x["answering"] is False
                          for sn in entries_of(self.history(), "snapshot") for x in sn["replicas"]):
                self.assertLess(time.monotonic(), deadline, "no snapshot with it frozen")
                time.sleep(0.05)
        finally:
            os.kill(pid, signal.SIGCONT)
        self.co.wait_for(lambda c: all(r["answering"] for r in c["replicas"]), 5, "all answering again")

    def test_websocket_gets_history_then_numbered_live_events(self):
        data = f"before-{uuid.uuid4().hex[:8]}"
        self.post(data)
        time.sleep(0.2)
        w = WebSocket(self.port)
        try:
            _t, first = w.next()
            self.assertEqual(first.get("type"), "cluster")
            _t, hist = w.next()
            self.assertEqual(hist.get("type"), "history", str(hist)[:300])
            self.assertTrue(any(e["event"].get("request", {}).get("data") == data
                                for e in entries_of(hist, "event", "request_committed")))
            after = f"after-{uuid.uuid4().hex[:8]}"
            self.post(after)
            while True:
                _t, m = w.next(timeout=5)
                if m.get("type") == "event" and m["event"]["type"] == "request_committed" \
                        and m["event"]["request"]["data"] == after:
                    break
            self.assertGreater(m["seq"], hist["last_seq"])
            # A connected dashboard gets the protocol message stream live,
            # but the history does not keep it (it would push events out).
            deadline = time.monotonic() + 10
            while True:
                _t, m = w.next(timeout=5)
                if m.get("type") == "messages":
                    break
                self.assertLess(time.monotonic(), deadline, "no message stream while connected")
            later = self.co.get("/api/history", timeout=10).json
            self.assertFalse([e for e in later["entries"] if e.get("type") == "messages"],
                             "the history recorded the message stream")
        finally:
            w.close()


class FailoverKeptTests(unittest.TestCase):
    """A small ring: a flood of requests pushes old entries out (bounded),
    but the last failover, with its measured time, is kept apart."""

    @classmethod
    def setUpClass(cls):
        cls.co = Coordinator(extra=["--history-events", "40"], name="history-small").start()

    @classmethod
    def tearDownClass(cls):
        cls.co.stop(check=False)
        cls.co.cleanup()

    def test_bounded_and_last_failover_kept(self):
        co = self.co
        old = co.cluster()["primary"]
        r = co.post("/api/primary/fail")
        self.assertEqual(r.status, 202, r)
        co.wait_primary(timeout=15, not_id=old)
        deadline = time.monotonic() + 5
        while co.get("/api/history").json["last_failover"] is None:
            self.assertLess(time.monotonic(), deadline, "no failover recorded")
            time.sleep(0.05)
        for i in range(60):
            self.assertEqual(co.post("/api/requests", {"data": f"flood-{i}"}).status, 201)
        h = co.get("/api/history").json
        self.assertEqual(h["capacity"], 40)
        self.assertEqual(h["recorded"], 40)
        self.assertEqual(len(h["entries"]), 40)
        self.assertGreater(h["dropped"], 0)
        self.assertEqual(h["first_seq"], h["last_seq"] - 39)
        self.assertFalse(entries_of(h, "event", "elected"), "the flood should have pushed it out")
        fo = h["last_failover"]["event"]
        self.assertEqual(fo["type"], "elected")
        self.assertNotEqual(fo["replica"], old)
        self.assertEqual(fo["previous_primary"], old)
        self.assertGreater(fo["failover_ms"], 0)


class HistoryOffTests(unittest.TestCase):
    def test_zero_turns_it_off(self):
        co = Coordinator(extra=["--history-events", "0"], name="history-off").start()
        try:
            r = co.get("/api/history")
            self.assertEqual(r.status, 404, r)
            self.assertEqual(r.json["error"]["code"], "not_found")
        finally:
            co.stop(check=False)
            co.cleanup()


if __name__ == "__main__":
    unittest.main()
