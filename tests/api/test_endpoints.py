"""Every endpoint of the coordinator's HTTP API and its error cases
(docs/api.md, "Endpoints")."""
import os
import re
import signal
import socket
import threading
import time
import unittest
import uuid

from harness import CoordinatorTestCase, figure, ms

MAX_BODY = 1024
MAX_DATA = 256

REPLICA_FIELDS = {
    "id": str, "name": str, "address": str, "role": str, "status": str, "epoch": int,
    "last_index": int, "commit_index": int, "lag": int, "heartbeat_age_ms": (int, float),
    "processed": int, "synced": int, "voter": bool,
}
ROLES = {"primary", "backup", "candidate", "learner"}
STATUSES = {"up", "down", "failed"}


def uid(prefix="t"):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class EndpointTests(CoordinatorTestCase):
    coordinator_args = ("--max-body-bytes", str(MAX_BODY), "--max-data-bytes", str(MAX_DATA))
    coordinator_name = "endpoints"

    # -- helpers -------------------------------------------------------------
    def post_ok(self, data, id=None, **extra):
        body = {"data": data}
        if id is not None:
            body["id"] = id
        body.update(extra)
        r = self.co.post("/api/requests", body)
        self.assertEqual(r.status, 201, r)
        return r.json

    def raw(self, payload, read_for=2.0):
        """Send raw bytes on a fresh connection; everything read back."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        try:
            s.sendall(payload)
            out = b""
            deadline = time.monotonic() + read_for
            s.settimeout(0.3)
            while time.monotonic() < deadline:
                try:
                    chunk = s.recv(65536)
                except socket.timeout:
                    if out:
                        break
                    continue
                if not chunk:
                    break
                out += chunk
            return out
        finally:
            s.close()

    def check_replica_fields(self, rep, where):
        for k, t in REPLICA_FIELDS.items():
            self.assertIn(k, rep, f"{where}: replica lacks {k!r}: {rep}")
            self.assertIsInstance(rep[k], t, f"{where}: {k} = {rep[k]!r}")
            if t is int:
                self.assertNotIsInstance(rep[k], bool, f"{where}: {k}")
        self.assertIn(rep["role"], ROLES, where)
        self.assertIn(rep["status"], STATUSES, where)
        self.assertGreaterEqual(rep["lag"], 0, where)
        self.assertGreaterEqual(rep["last_index"], 0, where)

    # -- GET /api/cluster -------------------------------------------------------
    def test_cluster_shape(self):
        c = self.co.wait_converged()
        for k in ("epoch", "primary", "commit_index", "replicas"):
            self.assertIn(k, c)
        self.assertIsInstance(c["epoch"], int)
        self.assertGreaterEqual(c["epoch"], 1)
        self.assertIsInstance(c["primary"], str)
        self.assertIsInstance(c["commit_index"], int)
        self.assertIsInstance(c["replicas"], list)
        ids = [r["id"] for r in c["replicas"]]
        self.assertEqual(ids, ["r1", "r2", "r3"])
        ports = {f"127.0.0.1:{self.co.base_port + i}" for i in range(3)}
        self.assertEqual({r["address"] for r in c["replicas"]}, ports)
        for rep in c["replicas"]:
            self.check_replica_fields(rep, "/api/cluster")
            self.assertEqual(rep["status"], "up")
            self.assertTrue(rep["voter"])
            self.assertLessEqual(rep["epoch"], c["epoch"])
        primaries = [r["id"] for r in c["replicas"] if r["role"] == "primary"]
        self.assertEqual(primaries, [c["primary"]])
        r = self.co.get("/api/cluster")
        self.assertTrue(r.headers["content-type"].startswith("application/json"))

    # -- POST /api/requests --------------------------------------------------------
    def test_post_request_fields(self):
        primary = self.co.wait_primary()["primary"]
        rid = uid()
        r = self.co.post("/api/requests", {"data": "hello", "id": rid})
        self.assertEqual(r.status, 201, r)
        b = r.json
        self.assertEqual(set(b), {"index", "epoch", "primary", "id", "data"}, b)
        self.assertIsInstance(b["index"], int)
        self.assertGreater(b["index"], 0)
        self.assertIsInstance(b["epoch"], int)
        self.assertGreaterEqual(b["epoch"], 1)
        self.assertEqual(b["primary"], primary)
        self.assertEqual(b["id"], rid)
        self.assertEqual(b["data"], "hello")
        # "fault": false and "id": null are the defaults, spelled out.
        b2 = self.post_ok("explicit defaults", id=None, fault=False)
        b3 = self.co.post("/api/requests", {"data": "null id", "id": None, "fault": None})
        self.assertEqual(b3.status, 201, b3)
        self.assertGreater(b2["index"], b["index"])
        self.assertGreater(b3.json["index"], b2["index"])

    def test_post_without_id_gets_one(self):
        b = self.post_ok("no id given")
        self.assertIsInstance(b["id"], str)
        self.assertTrue(b["id"])
        b2 = self.post_ok("no id given")
        self.assertNotEqual(b["id"], b2["id"], "generated ids must differ")
        self.assertNotEqual(b["index"], b2["index"], "two requests without id are two entries")
        entries = self.co.get(f"/api/requests?after={b['index'] - 1}&limit=2").json["entries"]
        self.assertEqual([(e["index"], e["id"]) for e in entries],
                         [(b["index"], b["id"]), (b2["index"], b2["id"])])

    def test_data_round_trips(self):
        samples = ["", "plain", "quotes \" and \\ backslash", "line\nbreak\ttab",
                   "unicode: héllo ✓ 日本", "emoji 🚀", "<script>alert(1)</script>", "x" * MAX_DATA]
        acked = [(self.post_ok(d, id=uid("rt")), d) for d in samples]
        first = acked[0][0]["index"]
        entries = {e["id"]: e for e in self.co.all_entries() if e["index"] >= first}
        for b, d in acked:
            self.assertEqual(b["data"], d)
            self.assertIn(b["id"], entries)
            self.assertEqual(entries[b["id"]]["data"], d)
            self.assertEqual(entries[b["id"]]["index"], b["index"])

    def test_data_with_nul_is_not_silently_truncated(self):
        # "\u0000" is valid JSON. Either keep the data whole or refuse it
        # with 400; storing a shorter string than the client sent is data
        # corruption acknowledged as success.
        rid = uid("nul")
        r = self.co.post("/api/requests", '{"data":"a\\u0000b","id":"%s"}' % rid)
        if r.status == 400:
            self.assertError(r, 400)
            return
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["data"], "a\u0000b",
                         "201 for data \"a\\u0000b\" but the committed data differs")

    def test_retry_same_id_applied_once(self):
        rid = uid("retry")
        first = self.post_ok("once", id=rid)
        self.post_ok("something else in between")
        again = self.post_ok("once", id=rid)
        self.assertEqual(again["index"], first["index"])
        self.assertEqual(again["epoch"], first["epoch"])
        self.assertEqual(again["id"], rid)
        # Concurrent retries of one id: one entry, one index for all.
        rid2 = uid("conc")
        results = []

        def go():
            results.append(self.co.post("/api/requests", {"data": "concurrent", "id": rid2}))
        threads = [threading.Thread(target=go) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertTrue(all(r.status == 201 for r in results), results)
        self.assertEqual(len({r.json["index"] for r in results}), 1, results)
        entries = self.co.all_entries()
        self.assertEqual([e["index"] for e in entries if e["id"] == rid], [first["index"]])
        self.assertEqual(len([e for e in entries if e["id"] == rid2]), 1)

    def test_post_bad_json(self):
        for body in [b"{", b"not json", b"", b'{"data":"x",}', b'{"data":"x"} trailing',
                     b"\xff\xfe\x00", b'{"data":"x"']:
            self.assertError(self.co.post("/api/requests", body), 400, "bad_json", f"body {body!r}")

    def test_post_non_object(self):
        for body in [b"[1,2]", b'"data"', b"42", b"null", b"true", b'[{"data":"x"}]']:
            self.assertError(self.co.post("/api/requests", body), 400, "bad_json", f"body {body!r}")

    def test_post_missing_or_bad_data(self):
        for body in [{}, {"id": "x"}, {"data": None}, {"data": 5}, {"data": True},
                     {"data": ["x"]}, {"data": {"a": 1}}, {"Data": "x"}]:
            self.assertError(self.co.post("/api/requests", body), 400, "missing_data", f"body {body!r}")

    def test_post_bad_id(self):
        for bad in [5, 0, True, False, "", ["a"], {"a": 1}, "i" * 128, "i" * 1000]:
            self.assertError(self.co.post("/api/requests", {"data": "x", "id": bad}), 400,
                             msg=f"id {bad!r}")
        self.assertEqual(self.post_ok("longest id", id="i" * 126 + "-")["id"], "i" * 126 + "-")

    def test_post_bad_fault(self):
        for bad in ["yes", "true", 1, 0, [], {}]:
            self.assertError(self.co.post("/api/requests", {"data": "x", "fault": bad}), 400,
                             msg=f"fault {bad!r}")

    def test_post_data_too_large(self):
        r = self.co.post("/api/requests", {"data": "x" * (MAX_DATA + 1)})
        self.assertError(r, 400, "too_large", "data over --max-data-bytes")
        # Bytes, not characters: 'é' is two bytes in UTF-8.
        r = self.co.post("/api/requests", {"data": "é" * (MAX_DATA // 2 + 1)})
        self.assertError(r, 400, "too_large", "multibyte data over --max-data-bytes")
        self.assertEqual(self.post_ok("y" * MAX_DATA)["data"], "y" * MAX_DATA)

    def test_post_body_too_large(self):
        def body_of(size):
            base = '{"data":"x","pad":"'
            return (base + "p" * (size - len(base) - 2) + '"}').encode()
        exact = body_of(MAX_BODY)
        self.assertEqual(len(exact), MAX_BODY)
        self.assertEqual(self.co.post("/api/requests", exact).status, 201, "body of exactly the limit")
        self.assertError(self.co.post("/api/requests", body_of(MAX_BODY + 1)), 413,
                         msg="body one byte over --max-body-bytes")
        self.assertError(self.co.post("/api/requests", body_of(50 * MAX_BODY)), 413,
                         msg="body far over --max-body-bytes")

    def _chunked(self, body):
        chunks = b""
        for i in range(0, len(body), 100):
            part = body[i:i + 100]
            chunks += b"%x\r\n" % len(part) + part + b"\r\n"
        chunks += b"0\r\n\r\n"
        head = (b"POST /api/requests HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        return self.raw(head + chunks, read_for=5)

    def test_post_chunked_body(self):
        rid = uid("chunk")
        out = self._chunked(('{"data":"chunked","id":"%s"}' % rid).encode())
        self.assertTrue(out.startswith(b"HTTP/1.1 201"), out[:300])
        big = ('{"data":"x","pad":"' + "p" * (2 * MAX_BODY) + '"}').encode()
        out = self._chunked(big)
        self.assertTrue(out.startswith(b"HTTP/1.1 413"), f"chunked body over the limit: {out[:300]!r}")

    # -- GET /api/requests -------------------------------------------------------------
    def test_get_requests_paging(self):
        acked = [self.post_ok(f"page {i}", id=uid("page")) for i in range(12)]
        start = acked[0]["index"] - 1
        r = self.co.get(f"/api/requests?after={start}&limit=5")
        self.assertEqual(r.status, 200, r)
        b = r.json
        self.assertEqual(set(b), {"commit_index", "entries"})
        self.assertGreaterEqual(b["commit_index"], acked[-1]["index"])
        self.assertEqual(len(b["entries"]), 5)
        for e in b["entries"]:
            self.assertTrue({"index", "epoch", "id", "data", "primary"} <= set(e), e)
        got, after = [], start
        while True:
            page = self.co.get(f"/api/requests?after={after}&limit=5").json["entries"]
            if not page:
                break
            self.assertLessEqual(len(page), 5)
            idx = [e["index"] for e in page]
            self.assertEqual(idx, sorted(idx))
            self.assertGreater(idx[0], after)
            got.extend(page)
            after = idx[-1]
        mine = {a["id"] for a in acked}
        self.assertEqual([(e["index"], e["id"], e["data"]) for e in got if e["id"] in mine],
                         [(a["index"], a["id"], a["data"]) for a in acked])
        # Past the end: empty. Defaults (no query): at most 100 entries.
        end = self.co.get(f"/api/requests?after={b['commit_index'] + 10}").json
        self.assertEqual(end["entries"], [])
        self.assertLessEqual(len(self.co.get("/api/requests").json["entries"]), 100)
        one = self.co.get(f"/api/requests?after={start}&limit=1").json["entries"]
        self.assertEqual([e["id"] for e in one], [acked[0]["id"]])
        big = self.co.get("/api/requests?after=0&limit=1000")
        self.assertEqual(big.status, 200, big)

    def test_get_requests_bad_numbers(self):
        for q in ["after=-1", "after=abc", "after=1.5", "after=", "after=1e3",
                  "after=99999999999999999999999", "limit=abc", "limit=-5", "limit=1001",
                  "limit=99999999999", "limit=2.0", "limit="]:
            self.assertError(self.co.get(f"/api/requests?{q}"), 400, "bad_query", q)

    def test_get_requests_limit_zero(self):
        # The error message itself says limit is 1..1000.
        self.assertError(self.co.get("/api/requests?limit=0"), 400, "bad_query", "limit=0")

    # -- GET /api/replicas/{id} -----------------------------------------------------
    def test_replica_detail_processed_vs_synced(self):
        c = self.co.wait_converged()
        primary = c["primary"]
        backups = [r["id"] for r in c["replicas"] if r["id"] != primary]
        acked = [self.post_ok(f"detail {i}", id=uid("det")) for i in range(5)]
        self.assertTrue(all(a["primary"] == primary for a in acked), acked)
        ids = [a["id"] for a in acked]
        after = acked[0]["index"] - 1
        self.co.wait_converged(min_index=acked[-1]["index"])

        def detail(rid, q=f"after={after}&limit=1000"):
            r = self.co.get(f"/api/replicas/{rid}?{q}")
            self.assertEqual(r.status, 200, r)
            return r.json
        p = detail(primary)
        self.check_replica_fields(p, f"/api/replicas/{primary}")
        self.assertEqual(p["id"], primary)
        for key in ("processed_data", "synced_data"):
            self.assertIn(key, p)
            self.assertIsInstance(p[key].get("total"), int, p[key])
            self.assertIsInstance(p[key].get("entries"), list, p[key])
        proc_ids = [e["id"] for e in p["processed_data"]["entries"]]
        self.assertEqual([i for i in proc_ids if i in ids], ids,
                         "the primary's processed_data lists what it committed, in order")
        self.assertFalse(set(ids) & {e["id"] for e in p["synced_data"]["entries"]},
                         "the primary did not receive its own entries by sync")
        self.assertGreaterEqual(p["processed_data"]["total"], len(ids))
        for b in backups:
            d = detail(b)
            self.assertEqual(d["role"], "backup")
            self.assertEqual([e["id"] for e in d["synced_data"]["entries"] if e["id"] in ids], ids,
                             f"backup {b} lists the entries it received by sync")
            self.assertFalse(set(ids) & {e["id"] for e in d["processed_data"]["entries"]})
            self.assertGreaterEqual(d["synced_data"]["total"], len(ids))
            for e in d["synced_data"]["entries"]:
                self.assertGreater(e["index"], after)
        # Paging of the detail lists.
        two = detail(primary, f"after={after}&limit=2")["processed_data"]["entries"]
        self.assertEqual([e["id"] for e in two], ids[:2])
        self.assertError(self.co.get(f"/api/replicas/{primary}?limit=x"), 400, "bad_query")
        self.assertError(self.co.get(f"/api/replicas/{primary}?after=-3"), 400, "bad_query")

    def test_replica_unknown(self):
        for path in ["/api/replicas/r9", "/api/replicas/nope", "/api/replicas/", "/api/replicas/bad%20id",
                     "/api/replicas/" + "r" * 200, "/api/replicas/r1/nope", "/api/replicas/r1/fail/x"]:
            self.assertError(self.co.get(path), 404, "not_found", path)
        self.assertError(self.co.post("/api/replicas/r9/fail"), 404, "not_found", "fail r9")

    # -- failure injection ----------------------------------------------------------------
    def test_fail_backup_then_it_returns_and_catches_up(self):
        c = self.co.wait_converged()
        primary = c["primary"]
        victim = next(r["id"] for r in c["replicas"] if r["id"] != primary)
        t0 = time.monotonic()
        r = self.co.post(f"/api/replicas/{victim}/fail")
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.json, {"failed": victim})
        seen = []

        def victim_status(c):
            st = next(x["status"] for x in c["replicas"] if x["id"] == victim)
            seen.append(st)
            return st
        self.co.wait_for(lambda c: victim_status(c) != "up", 5, f"{victim} to leave 'up'", interval=0.01)
        self.assertEqual(seen[-1], "failed", f"a replica failed through the API shows 'failed' (saw {seen})")
        # Writes go on while it is away (two of three are a majority).
        missed = [self.post_ok(f"while {victim} is away", id=uid("away")) for _ in range(5)]
        again = self.co.post(f"/api/replicas/{victim}/fail")
        if again.status != 202:
            self.assertError(again, 409, msg="failing a replica that is not up")
        self.co.wait_for(lambda c: next(x for x in c["replicas"] if x["id"] == victim)["status"] == "up",
                         15, f"{victim} to come back up")
        back = time.monotonic() - t0
        conv = self.co.wait_converged(timeout=15, min_index=missed[-1]["index"])
        self.assertEqual(conv["primary"], primary, "failing a backup does not move the primary")
        d = self.co.get(f"/api/replicas/{victim}?after={missed[0]['index'] - 1}&limit=1000").json
        self.assertLess(d.get("uptime_ms", 0), (time.monotonic() - t0) * 1000 + 1000)
        synced = [e["id"] for e in d["synced_data"]["entries"]]
        self.assertEqual([i for i in synced if i in {m["id"] for m in missed}], [m["id"] for m in missed],
                         f"{victim} caught up on what it missed")
        figure("endpoints", f"backup fail -> back up ({victim})", ms(back))

    def test_fail_primary(self):
        c = self.co.wait_converged()
        old, epoch = c["primary"], c["epoch"]
        t0 = time.monotonic()
        r = self.co.post("/api/primary/fail")
        self.assertEqual(r.status, 202, r)
        self.assertEqual(set(r.json), {"failed"})
        self.assertEqual(r.json["failed"], old)
        c2 = self.co.wait_primary(timeout=10, not_id=old, min_epoch=epoch + 1)
        elected = time.monotonic() - t0
        self.assertNotEqual(c2["primary"], old)
        self.assertGreater(c2["epoch"], epoch)
        b = self.post_ok("after primary fail", id=uid("pf"))
        self.assertEqual(b["primary"], c2["primary"])
        self.assertGreater(b["epoch"], epoch)
        conv = self.co.wait_converged(timeout=15, min_index=b["index"])
        oldr = next(x for x in conv["replicas"] if x["id"] == old)
        self.assertEqual(oldr["role"], "backup", "the old primary returns as a backup")
        figure("endpoints", "POST /api/primary/fail -> new primary in /api/cluster", ms(elected))

    # -- methods and paths -------------------------------------------------------------
    def test_method_not_allowed(self):
        cases = [("PUT", "/api/cluster", {"GET"}), ("POST", "/api/cluster", {"GET"}),
                 ("DELETE", "/api/cluster", {"GET"}), ("DELETE", "/api/requests", {"GET", "POST"}),
                 ("PUT", "/api/requests", {"GET", "POST"}), ("GET", "/api/primary/fail", {"POST"}),
                 ("DELETE", "/api/primary/fail", {"POST"}), ("GET", "/api/replicas/r1/fail", {"POST"}),
                 ("POST", "/api/replicas/r1", {"GET", "DELETE"}),
                 ("PUT", "/api/replicas/r1", {"GET", "DELETE"}), ("GET", "/api/replicas", {"POST"}),
                 ("DELETE", "/api/replicas", {"POST"}), ("POST", "/", {"GET"})]
        for method, path, allow in cases:
            r = self.co.request(method, path)
            self.assertError(r, 405, "method_not_allowed", f"{method} {path}")
            self.assertIn("allow", r.headers, f"{method} {path}: no Allow header")
            got = {m.strip() for m in r.headers["allow"].split(",")}
            self.assertTrue(allow <= got, f"{method} {path}: Allow {r.headers['allow']!r}, want {allow}")

    def test_method_not_allowed_healthz_metrics(self):
        for method in ("POST", "PUT", "DELETE"):
            for path in ("/healthz", "/metrics", "/livez", "/readyz"):
                r = self.co.request(method, path)
                self.assertError(r, 405, "method_not_allowed", f"{method} {path}")
                self.assertIn("allow", r.headers)

    def test_unknown_paths(self):
        for path in ["/api/nope", "/api/", "/api", "/api/cluster/extra", "/api/requests/1",
                     "/api/primary", "/api/ws/x", "/nope.html", "/%2e%2e/CMakeLists.txt",
                     "/node_modules/d3/package.json"]:
            r = self.co.get(path)
            self.assertEqual(r.status, 404, f"{path}: {r}")
            if path.startswith("/api/"):
                self.assertError(r, 404, "not_found", path)
        self.assertError(self.co.post("/api/nope", {"data": "x"}), 404, "not_found")

    def test_head_has_no_body(self):
        # HEAD then GET pipelined on one keep-alive connection: the bytes
        # after the HEAD response's header must be the GET's status line.
        for path in ("/api/cluster", "/healthz", "/api/requests?limit=1"):
            out = self.raw(f"HEAD {path} HTTP/1.1\r\nHost: x\r\n\r\n"
                           "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode(),
                           read_for=3)
            self.assertTrue(out.startswith(b"HTTP/1.1 200"), out[:200])
            rest = out.split(b"\r\n\r\n", 1)[1]
            self.assertTrue(rest.startswith(b"HTTP/1.1 200"),
                            f"HEAD {path} sent a body: next bytes are {rest[:80]!r}")

    def test_dashboard_root(self):
        r = self.co.get("/")
        self.assertEqual(r.status, 200, r)
        self.assertIn("text/html", r.headers.get("content-type", ""))

    # -- /healthz and /metrics ---------------------------------------------------------
    def test_healthz(self):
        r = self.co.get("/healthz")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body.strip(), b"ok")

    def test_metrics(self):
        self.post_ok("for metrics")
        r = self.co.get("/metrics")
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.headers.get("content-type", "").startswith("text/plain"), r.headers)
        text = r.body.decode()
        sample = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"]*"'
                            r'(,[a-zA-Z_][a-zA-Z0-9_]*="[^"]*")*\})? [-+0-9.eEInfa]+$')
        names = set()
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            self.assertRegex(line, sample)
            names.add(re.split(r"[{ ]", line, 1)[0])
        for n in ("replicacao_replica_role", "replicacao_requests_total",
                  "replicacao_failover_duration_seconds_count",
                  "replicacao_failover_duration_seconds_bucket"):
            self.assertIn(n, names, f"/metrics lacks {n}")
        self.assertIn("# TYPE replicacao_failover_duration_seconds histogram", text)
        self.assertRegex(text, r'replicacao_requests_total\{code="201"\} [1-9]')
        primary = self.co.cluster()["primary"]
        self.assertIn(f'replicacao_replica_role{{replica="{primary}",role="primary"}} 1', text)


class UnavailableTests(CoordinatorTestCase):
    """503 (+ Retry-After) and 504 when no majority: two backups are
    SIGSTOPped, so the primary cannot commit and steps down."""
    coordinator_args = ("--request-timeout-ms", "1500")
    coordinator_name = "unavailable"

    def test_503_504_and_retry_after_recovery(self):
        c = self.co.wait_converged()
        primary = c["primary"]
        pids = self.co.replica_pids()
        self.assertEqual(set(pids), {"r1", "r2", "r3"}, pids)
        frozen = [pids[r] for r in pids if r != primary]
        ids = [uid("u1"), uid("u2")]
        try:
            for pid in frozen:
                os.kill(pid, signal.SIGSTOP)
            t0 = time.monotonic()
            r1 = self.co.post("/api/requests", {"data": "no majority", "id": ids[0]})
            took = time.monotonic() - t0
            self.assertIn(r1.status, (503, 504), r1)
            self.assertError(r1, r1.status, "outcome_unknown" if r1.status == 504 else "no_primary")
            self.assertGreater(took, 1.2, "answered before --request-timeout-ms")
            self.assertLess(took, 4.0, "answered long after --request-timeout-ms")
            # The primary cut off from its majority steps down (check-quorum).
            self.co.wait_for(lambda c: c["primary"] is None, 5, "no primary")
            r2 = self.co.post("/api/requests", {"data": "no primary", "id": ids[1]})
            self.assertError(r2, 503, "no_primary")
            self.assertIn("retry-after", r2.headers, "503 without Retry-After")
            self.assertRegex(r2.headers["retry-after"], r"^[1-9][0-9]*$")
        finally:
            for pid in frozen:
                os.kill(pid, signal.SIGCONT)
        self.co.wait_primary(timeout=15)
        # Retrying the same ids: each applied exactly once.
        acked = {}
        for rid, data in zip(ids, ("no majority", "no primary")):
            r = self.co.post("/api/requests", {"data": data, "id": rid})
            self.assertEqual(r.status, 201, r)
            acked[rid] = r.json["index"]
        entries = self.co.all_entries()
        for rid, index in acked.items():
            self.assertEqual([e["index"] for e in entries if e["id"] == rid], [index], rid)
        figure("endpoints", "request with no majority answered after (--request-timeout-ms 1500)",
               f"{ms(took)} ({r1.status})")


if __name__ == "__main__":
    unittest.main()
