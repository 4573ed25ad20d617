"""The seed's "fault request": POST /api/requests {"data":..,"fault":true}
fails the current primary first, a backup takes over and the new primary
processes the request; nothing acknowledged before is lost."""
import time
import unittest
import uuid

from harness import CoordinatorTestCase, figure, ms


class FaultRequestTests(CoordinatorTestCase):
    coordinator_name = "fault"

    def post_ok(self, body):
        r = self.co.post("/api/requests", body)
        self.assertEqual(r.status, 201, r)
        return r

    def test_fault_requests_fail_over_and_lose_nothing(self):
        acked = []  # (index, id, data) in acknowledgement order
        timings = []
        for round_ in range(3):
            for i in range(15):
                rid = f"f{round_}-{i}-{uuid.uuid4().hex[:8]}"
                b = self.post_ok({"data": f"before fault {round_}.{i}", "id": rid}).json
                acked.append((b["index"], rid, b["data"]))
            before = self.co.wait_primary(timeout=10)
            old, epoch = before["primary"], before["epoch"]
            rid = f"fault{round_}-{uuid.uuid4().hex[:8]}"
            t0 = time.monotonic()
            r = self.post_ok({"data": f"fault request {round_}", "id": rid, "fault": True})
            took = time.monotonic() - t0
            timings.append(took)
            b = r.json
            self.assertEqual(set(b), {"index", "epoch", "primary", "id", "data", "failed"}, b)
            self.assertEqual(b["failed"], old, "\"failed\" names the primary of before")
            self.assertNotEqual(b["primary"], old, "a different replica processed the fault request")
            self.assertIn(b["primary"], {"r1", "r2", "r3"})
            self.assertGreater(b["epoch"], epoch, "the fault request commits in a later epoch")
            self.assertEqual(b["id"], rid)
            self.assertEqual(b["data"], f"fault request {round_}")
            self.assertGreater(b["index"], acked[-1][0])
            acked.append((b["index"], rid, b["data"]))
            # The new primary processed it; the old one (once back) synced it.
            conv = self.co.wait_converged(timeout=15, min_index=b["index"])
            new = b["primary"]
            self.assertEqual(conv["primary"], new)
            q = f"after={b['index'] - 1}&limit=5"
            d = self.co.get(f"/api/replicas/{new}?{q}").json
            self.assertIn(rid, [e["id"] for e in d["processed_data"]["entries"]],
                          f"{new} lists the fault request as processed")
            d = self.co.get(f"/api/replicas/{old}?{q}").json
            self.assertEqual(d["role"], "backup")
            self.assertIn(rid, [e["id"] for e in d["synced_data"]["entries"]],
                          f"the old primary {old} caught up by sync")
            self.assertNotIn(rid, [e["id"] for e in d["processed_data"]["entries"]])
        for i in range(10):
            rid = f"after-{i}-{uuid.uuid4().hex[:8]}"
            b = self.post_ok({"data": f"after {i}", "id": rid}).json
            acked.append((b["index"], rid, b["data"]))

        entries = self.co.all_entries(page=7)  # small pages: paging is part of it
        by_id = {}
        for e in entries:
            by_id.setdefault(e["id"], []).append(e)
        for index, rid, data in acked:
            got = by_id.get(rid, [])
            self.assertEqual(len(got), 1, f"acknowledged {rid} appears {len(got)} times")
            self.assertEqual((got[0]["index"], got[0]["data"]), (index, data), rid)
        order = [e["index"] for e in entries]
        self.assertEqual(order, sorted(set(order)), "entries ascend without duplicates")
        self.assertEqual([a[0] for a in acked], sorted(a[0] for a in acked), "acknowledged in order")
        figure("fault", "fault request round trip (fail primary + elect + commit)",
               ", ".join(ms(t) for t in timings))

    def test_fault_request_bad_then_good(self):
        # A 400 fault request must not fail anybody.
        before = self.co.wait_converged()
        r = self.co.post("/api/requests", {"fault": True})
        self.assertError(r, 400, "missing_data")
        time.sleep(0.3)
        after = self.co.cluster()
        self.assertEqual(after["primary"], before["primary"])
        self.assertEqual(after["epoch"], before["epoch"])
        self.assertTrue(all(x["status"] == "up" for x in after["replicas"]))


if __name__ == "__main__":
    unittest.main()
