"""Client sessions are bounded, and a retry after expiry is never applied twice.

One `coordinator --spawn 3` whose replicas remember only the client ids of
the newest 5 entries (REPLICA_SESSION_MAX, inherited by the replicas it
spawns). Within that window a retry answers with the original index; once
enough newer writes pushed the id out, a retry that says which log index
its client had seen before the first attempt (`seen_index`) is refused with
409 session_expired, and the log still holds the request exactly once. A
new id with a recent seen_index is accepted as usual.
"""
import os
import unittest

from harness import CoordinatorTestCase

WINDOW = 5


class SessionTests(CoordinatorTestCase):
    coordinator_name = "sessions"

    @classmethod
    def setUpClass(cls):
        saved = os.environ.get("REPLICA_SESSION_MAX")
        os.environ["REPLICA_SESSION_MAX"] = str(WINDOW)
        try:
            super().setUpClass()
        finally:
            if saved is None:
                del os.environ["REPLICA_SESSION_MAX"]
            else:
                os.environ["REPLICA_SESSION_MAX"] = saved

    def write(self, rid, data, seen=None):
        body = {"id": rid, "data": data}
        if seen is not None:
            body["seen_index"] = seen
        return self.co.post("/api/requests", body, timeout=20)

    def count_in_log(self, rid):
        return sum(1 for e in self.co.all_entries() if e.get("id") == rid)

    def test_retry_within_window_then_expired(self):
        first = self.write("s-first", "once", seen=0)
        self.assertEqual(first.status, 201, first)
        again = self.write("s-first", "once", seen=0)
        self.assertEqual(again.status, 201, again)
        self.assertEqual(again.json["index"], first.json["index"], "a retry in the window")

        for i in range(2 * WINDOW):
            r = self.write(f"s-filler-{i}", f"filler {i}")
            self.assertEqual(r.status, 201, r)
            seen_last = r.json["index"]

        late = self.write("s-first", "once", seen=0)
        self.assertError(late, 409, "session_expired")
        self.assertGreater(late.json["error"]["horizon"], first.json["index"])
        self.assertEqual(self.count_in_log("s-first"), 1, "the request must be in the log once")

        fresh = self.write("s-new", "new", seen=seen_last)
        self.assertEqual(fresh.status, 201, fresh)

    def test_seen_index_is_checked(self):
        for bad in (-1, 1.5, "3", 2 ** 60):
            r = self.write("s-bad", "x", seen=bad)
            self.assertError(r, 400, "bad_request", f"seen_index {bad!r}")


if __name__ == "__main__":
    unittest.main()
