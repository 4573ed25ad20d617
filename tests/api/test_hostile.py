"""Hostile and odd input through the coordinator's HTTP API: numeric query
parameters over their whole range and beyond, deeply nested and badly
encoded JSON bodies, control characters and sizes at the limits, retried
ids with different data, and replica ids in paths that are not ids.

Every answer must be a clear error (or success) in the API's shape, and
nothing may crash, hang or restart: each test checks the coordinator and
the replica processes are the ones it started with, and each class ends
(test_zz_nothing_restarted) checking the cluster is whole, a normal write
still commits and the WebSocket saw no process exit.

Every response body of the module is decoded strictly as UTF-8 and parsed
with json.loads (the WebSocket stream too): a stored byte that is not
UTF-8 would break every client that reads it back.
"""
import json
import re
import socket
import time
import unittest
import uuid
from urllib.parse import quote

from harness import HOST, Config, CoordinatorTestCase, Response, WebSocket, figure, http_request, ms

MAX_BODY = 1 << 20  # --max-body-bytes of the body tests (100,000 nested objects fit)
U53, U63, U64 = 1 << 53, 1 << 63, 1 << 64

# Events that mean a replica process went away or was failed.
BAD_EVENTS = {"exited", "failed", "down"}


def uid(prefix="h"):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def strict_json(raw, what):
    """bytes -> JSON value; AssertionError unless strict UTF-8 and JSON."""
    try:
        text = raw.decode("utf-8", "strict")
    except UnicodeDecodeError as e:
        raise AssertionError(f"{what}: response body is not valid UTF-8 ({e}): {raw[:200]!r}") from None
    try:
        return json.loads(text)
    except ValueError as e:
        raise AssertionError(f"{what}: response body is not JSON ({e}): {raw[:200]!r}") from None


class StrictWebSocket(WebSocket):
    """The harness client, plus a strict UTF-8 check of every text message
    (the harness decodes with errors='replace', which would hide bad bytes)."""

    def __init__(self, *a, **kw):
        self.encoding_errors = []
        self._parts = []
        super().__init__(*a, **kw)

    def _read_frame(self):
        fin, opcode, payload = super()._read_frame()
        if opcode == 0x1:
            self._parts = [payload]
        elif opcode == 0x0:
            self._parts.append(payload)
        if opcode in (0x0, 0x1) and fin:
            raw = b"".join(self._parts)
            self._parts = []
            try:
                raw.decode("utf-8", "strict")
            except UnicodeDecodeError as e:
                self.encoding_errors.append(f"{e}: {raw[:120]!r}")
        return fin, opcode, payload


class HostileCase(CoordinatorTestCase):
    """A CoordinatorTestCase that watches its processes: the coordinator and
    replica pids and the WebSocket stream at the start of the class must be
    the same, alive and quiet after every test and at the end."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.co.wait_converged(timeout=20)
            cls.co_pid = cls.co.proc.pid
            cls.start_pids = cls.co.replica_pids()
            if len(cls.start_pids) != 3:
                raise AssertionError(f"expected 3 replica processes, found {cls.start_pids}")
            cls.ws = StrictWebSocket(cls.port)
            _t, first = cls.ws.next(timeout=10)
            if not (isinstance(first, dict) and first.get("type") == "cluster"):
                raise AssertionError(f"first WebSocket message is not the snapshot: {str(first)[:200]}")
            cls.ws_log = []
            cls.ws_seen_upto = 0
            cls.pids_now = dict(cls.start_pids)
        except BaseException:
            if getattr(cls, "ws", None) is not None:
                cls.ws.close()
            super().tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.ws.close()
        super().tearDownClass()

    # -- watching the processes ----------------------------------------------
    def drain_ws(self):
        for _t, msg in self.ws.drain():
            self.ws_log.append(msg)

    def bad_events(self, new_only=True):
        """Process exits/failures seen on the WebSocket: those since the
        last call (new_only), or all since the class started."""
        self.drain_ws()
        cls = type(self)
        start = cls.ws_seen_upto if new_only else 0
        cls.ws_seen_upto = len(self.ws_log)
        return [f'{m["event"]["type"]} {m["event"].get("replica")}: {m["event"].get("detail")}'
                for m in self.ws_log[start:]
                if isinstance(m, dict) and m.get("type") == "event"
                and m.get("event", {}).get("type") in BAD_EVENTS]

    def assertAlive(self, what):
        """The coordinator and every replica are the processes of before.
        On a difference: wait for the cluster to recover (so the next case
        is judged on its own), then fail."""
        self.assertTrue(self.co.alive(), f"coordinator died (status {self.co.proc.returncode}) "
                                         f"after {what}\n{self.co.log_tail(15)}")
        pids = self.co.replica_pids()
        if pids == self.pids_now:
            return
        before = self.pids_now
        try:
            self.co.wait_for(lambda c: len(self.co.replica_pids()) == 3 and c.get("primary") is not None
                             and all(r["status"] == "up" for r in c["replicas"]), 20,
                             "the cluster to recover")
        finally:
            self.pids_now = type(self).pids_now = self.co.replica_pids()
        self.fail(f"replica processes changed after {what} (crash, fail or restart): "
                  f"{before} -> {pids}\n{self.co.log_tail(8)}")

    def setUp(self):
        # A process lost in an earlier test is reported there, not again here.
        if not self.co.alive():
            self.fail(f"the coordinator died in an earlier test (status {self.co.proc.returncode})")
        self.pids_now = type(self).pids_now = self.co.replica_pids()
        self.bad_events()

    def tearDown(self):
        self.assertAlive(self.id().rsplit(".", 1)[-1])

    # -- requests: every body checked strictly --------------------------------
    def call(self, method, path, body=None, headers=None, timeout=30):
        r = http_request(self.port, method, path, body=body, headers=headers, timeout=timeout)
        what = f"{method} {path[:120]}" + (f" body {body[:80]!r}" if body is not None else "")
        if method == "HEAD":
            self.assertEqual(r.body, b"", f"{what}: HEAD answered with a body")
        else:
            r._json = strict_json(r.body, f"{what} -> {r.status}")
        if r.status >= 500:
            self.fail(f"{what} -> {r.status} {r.body[:300]!r}")
        return r

    def get(self, path, **kw):
        return self.call("GET", path, **kw)

    def post(self, path, body=None, **kw):
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode("utf-8")
        return self.call("POST", path, body=body, **kw)

    def assertHeadError(self, r, status, msg):
        self.assertEqual(r.status, status, f"{msg} -> {r}")
        self.assertTrue(r.headers.get("content-type", "").startswith("application/json"),
                        f"{msg}: content type {r.headers.get('content-type')}")

    # -- the end of every class --------------------------------------------------
    def test_zz_nothing_restarted(self):
        """Last in its class: same processes, cluster whole, writes commit.

        Same coordinator and replica pids as at the start of the class, 3
        replicas up with one primary, a normal write commits, and the
        WebSocket saw no process exit or failure (and only UTF-8 text)."""
        co = self.co
        self.assertTrue(co.alive(), f"coordinator died (status {co.proc.returncode})\n{co.log_tail()}")
        self.assertEqual(co.proc.pid, self.co_pid)
        with open(f"/proc/{self.co_pid}/cmdline", "rb") as f:
            self.assertIn(co.data_dir.encode(), f.read(), "the coordinator's pid is another process")
        self.assertEqual(co.replica_pids(), self.start_pids,
                         f"replica processes changed during the class\n{co.log_tail(15)}")
        c = co.wait_for(lambda c: len(c.get("replicas", [])) == 3 and c.get("primary") is not None
                        and all(r["status"] == "up" for r in c["replicas"]),
                        15, "3 replicas up with a primary")
        primaries = [r["id"] for r in c["replicas"] if r["role"] == "primary"]
        self.assertEqual(primaries, [c["primary"]], c)
        rid = uid("end")
        r = self.post("/api/requests", {"data": "still serving", "id": rid})
        self.assertEqual(r.status, 201, r)
        index = r.json["index"]
        page = self.get(f"/api/requests?after={index - 1}&limit=1").json["entries"]
        self.assertEqual([(e["id"], e["data"]) for e in page], [(rid, "still serving")])
        # The commit event is a barrier: any exit before it has arrived too.
        deadline = time.monotonic() + 10
        seen = False
        while not seen:
            left = deadline - time.monotonic()
            self.assertGreater(left, 0, "no request_committed event on the WebSocket within 10 s")
            try:
                _t, msg = self.ws.next(timeout=left)
            except AssertionError:
                continue
            self.ws_log.append(msg)
            ev = msg.get("event", {}) if isinstance(msg, dict) else {}
            seen = ev.get("type") == "request_committed" and ev.get("request", {}).get("id") == rid
        self.assertEqual(self.bad_events(new_only=False), [],
                         "process exits/failures seen on the WebSocket during the class")
        self.assertFalse(self.ws.closed.is_set(), "the WebSocket was closed")
        self.assertEqual(self.ws.encoding_errors, [], "WebSocket text that is not UTF-8")
        self.assertEqual(self.ws.protocol_errors, [], "WebSocket protocol errors")
        # Everything stored reads back as strict UTF-8 JSON, on every replica too.
        after = 0
        while True:
            entries = self.get(f"/api/requests?after={after}&limit=1000").json["entries"]
            if not entries:
                break
            after = entries[-1]["index"]
        for rep in c["replicas"]:
            d = self.get(f"/api/replicas/{rep['id']}?after=0&limit=1000")
            self.assertEqual(d.status, 200, d)
        self.assertEqual(co.replica_pids(), self.start_pids)


# ===========================================================================
# 1. Numeric query parameters
# ===========================================================================

GOOD_AFTER = [0, 1, U53, U63 - 1, U63, U64 - 1]
# Already URL-encoded as they go on the wire.
BAD_AFTER = {
    "2^64": str(U64),
    "10^30": str(10 ** 30),
    "-1": "-1",
    "empty": "",
    "abc": "abc",
    "1e3": "1e3",
    "' 1'": "%201",
    "'+1' (raw +, a space in form encoding)": "+1",
    "'+1' (%2B)": "%2B1",
    "0x10": "0x10",
    "1.5": "1.5",
    "fullwidth 1": quote("\uff11"),
    "10 KB of digits": "1" * 10240,
    "'1 ' (trailing space)": "1%20",
    "1 then NUL": "1%00",
    "%00": "%00",
    "%ff": "%ff",
    "%": "%",
    "1%": "1%",
    "%zz": "%zz",
}
GOOD_LIMIT = [1, 1000]
BAD_LIMIT = {
    "0": "0", "1001": "1001", "2^32": str(1 << 32), "2^64-1": str(U64 - 1), "2^64": str(U64),
    "-1": "-1", "x": "x", "empty": "", "1 then NUL": "1%00", "%ff": "%ff",
}
REPEATED = ["after=1&after=2", "after=1&after=1", "limit=1&limit=2", "limit=5&limit=5",
            "after=0&limit=5&after=0"]


class QueryTests(HostileCase):
    coordinator_name = "hostile-query"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # A few entries, so after=0 has something to list. No test of the
        # class writes, so the last index stays this one until the end.
        try:
            for i in range(3):
                r = http_request(cls.port, "POST", "/api/requests", {"data": f"q{i}", "id": uid("q")})
                if r.status != 201:
                    raise AssertionError(f"setup write: {r}")
                cls.last_index = r.json["index"]
            cls.rid = cls.co.wait_converged(timeout=15, min_index=cls.last_index)["primary"]
        except BaseException:
            cls.tearDownClass()
            raise

    def paths(self):
        return ["/api/requests", f"/api/replicas/{self.rid}"]

    def check_page(self, r, path, after, limit, what):
        self.assertEqual(r.status, 200, f"{what} -> {r}")
        b = r.json
        self.assertIsInstance(b, dict, what)
        self.assertIsInstance(b.get("commit_index"), int, f"{what}: {str(b)[:300]}")
        if path == "/api/requests":
            self.assertEqual(set(b), {"commit_index", "entries", "consistency", "served_by"}, what)
            self.assertEqual(b["consistency"], "linearizable", what)
            lists = [b["entries"]]
        else:
            self.assertEqual(b.get("id"), self.rid, what)
            lists = [b["processed_data"]["entries"], b["synced_data"]["entries"]]
        # (commit_index comes from polled statuses; the entries are read
        # live, so "past the end" is judged against the last write.)
        end = max(b["commit_index"], self.last_index)
        for entries in lists:
            self.assertIsInstance(entries, list, what)
            idx = [e["index"] for e in entries]
            self.assertEqual(idx, sorted(idx), what)
            self.assertTrue(all(i > after for i in idx), f"{what}: indices {idx} not after {after}")
            if limit is not None:
                self.assertLessEqual(len(entries), limit, what)
            if after >= end:
                self.assertEqual(entries, [], f"{what}: entries past the end")
        return lists

    def test_after_whole_range(self):
        for path in self.paths():
            for after in GOOD_AFTER:
                q = f"{path}?after={after}"
                with self.subTest(q=q):
                    lists = self.check_page(self.get(q), path, after, None, f"GET {q}")
                    if after == 0:
                        self.assertTrue(any(lists), f"GET {q}: nothing listed after 0")

    def test_after_out_of_range_and_garbage(self):
        for path in self.paths():
            for name, raw in BAD_AFTER.items():
                with self.subTest(q=f"{path}?after=<{name}>"):
                    self.assertError(self.get(f"{path}?after={raw}"), 400, "bad_query",
                                     f"GET {path}?after=<{name}>")

    def test_limit_whole_range(self):
        for path in self.paths():
            for limit in GOOD_LIMIT:
                q = f"{path}?after=0&limit={limit}"
                with self.subTest(q=q):
                    lists = self.check_page(self.get(q), path, 0, limit, f"GET {q}")
                    if limit == 1 and path == "/api/requests":
                        self.assertEqual(len(lists[0]), 1, q)
            for name, raw in BAD_LIMIT.items():
                with self.subTest(q=f"{path}?limit=<{name}>"):
                    self.assertError(self.get(f"{path}?limit={raw}"), 400, "bad_query",
                                     f"GET {path}?limit=<{name}>")

    def test_repeated_parameters(self):
        for path in self.paths():
            for q in REPEATED:
                with self.subTest(q=f"{path}?{q}"):
                    self.assertError(self.get(f"{path}?{q}"), 400, "bad_query", f"GET {path}?{q}")

    def test_head_answers_as_get(self):
        """HEAD of every query above: GET's status, JSON, no body."""
        queries = [(f"after={a}", 200) for a in GOOD_AFTER]
        queries += [(f"after=0&limit={n}", 200) for n in GOOD_LIMIT]
        queries += [(f"after={raw}", 400) for raw in BAD_AFTER.values()]
        queries += [(f"limit={raw}", 400) for raw in BAD_LIMIT.values()]
        queries += [(q, 400) for q in REPEATED]
        for path in self.paths():
            for q, status in queries:
                with self.subTest(q=f"HEAD {path}?{q[:40]}"):
                    self.assertHeadError(self.call("HEAD", f"{path}?{q}"), status, f"HEAD {path}?{q[:60]}")

    def test_head_error_has_no_body_on_keep_alive(self):
        # HEAD with a bad query, then GET pipelined: the bytes after the
        # HEAD's header must be the next response, not an error body.
        s = socket.create_connection((HOST, self.port), timeout=10)
        try:
            s.sendall(b"HEAD /api/requests?after=abc HTTP/1.1\r\nHost: x\r\n\r\n"
                      b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            out = b""
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    chunk = s.recv(65536)
                except socket.timeout:
                    break
                if not chunk:
                    break
                out += chunk
        finally:
            s.close()
        self.assertTrue(out.startswith(b"HTTP/1.1 400"), out[:200])
        rest = out.split(b"\r\n\r\n", 1)[1]
        self.assertTrue(rest.startswith(b"HTTP/1.1 200"), f"HEAD 400 sent a body: {rest[:80]!r}")


# ===========================================================================
# 2. and 3. POST /api/requests bodies, retried ids
# ===========================================================================

def nested_arrays(n, closed=True):
    return b'{"data":"x","a":' + b"[" * n + ((b"]" * n + b"}") if closed else b"")


def nested_objects(n, closed=True):
    return b'{"a":' * n + ((b"1" + b"}" * n) if closed else b"")


class BodyTests(HostileCase):
    coordinator_args = ("--max-body-bytes", str(MAX_BODY))
    coordinator_name = "hostile-body"

    def post_ok(self, body, what=None):
        r = self.post("/api/requests", body)
        self.assertEqual(r.status, 201, f"{what or body!r:.200} -> {r}")
        return r.json

    def read_back(self, index):
        r = self.get(f"/api/requests?after={index - 1}&limit=1")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(len(r.json["entries"]), 1, r)
        e = r.json["entries"][0]
        self.assertEqual(e["index"], index)
        return e

    def assertRejected(self, body, status, code, what):
        r = self.post("/api/requests", body)
        self.assertError(r, status, code, what)
        self.assertAlive(what)
        return r

    # -- nesting -------------------------------------------------------------
    def test_deep_nesting(self):
        cases = [("17 levels (16 arrays in the object)", nested_arrays(16))]
        for n in (100, 10000, 100000):
            cases.append((f"{n} nested arrays", nested_arrays(n)))
            cases.append((f"{n} nested arrays, unclosed", nested_arrays(n, closed=False)))
        cases.append(("100000 nested objects", nested_objects(100000)))
        cases.append(("100000 nested objects, unclosed", nested_objects(100000, closed=False)))
        cases.append(("100000 objects in data's place",
                      b'{"data":' + b'{"a":' * 100000 + b'"x"' + b"}" * 100000 + b"}"))
        cases.append(("100000 arrays before the object", b"[" * 100000 + b"]" * 100000))
        for what, body in cases:
            self.assertLessEqual(len(body), MAX_BODY, what)
            with self.subTest(what):
                t0 = time.monotonic()
                self.assertRejected(body, 400, "bad_json", what)
                took = time.monotonic() - t0
                self.assertLess(took, 5.0, f"{what}: answered after {took:.1f} s")
                if what.startswith("100000 nested objects") and not what.endswith("unclosed"):
                    figure("hostile", "100,000 nested objects rejected in", ms(took))

    def test_nesting_at_the_limit_and_brackets_in_strings(self):
        # 16 levels (the object and 15 arrays): LIMIT_JSON_DEPTH, accepted;
        # the unknown field is ignored.
        self.post_ok(nested_arrays(15), "16 levels of nesting")
        # Brackets inside strings are text, not nesting.
        data = "[" * 200 + "{" * 200 + '\\"[[' + "]" * 50
        b = self.post_ok(json.dumps({"data": data, "id": uid("br")}))
        self.assertEqual(self.read_back(b["index"])["data"], data)

    # -- encoding --------------------------------------------------------------
    def test_invalid_utf8_in_data(self):
        cases = {
            "raw 0xff": b'{"data":"a\xffb"}',
            "overlong NUL 0xc0 0x80": b'{"data":"a\xc0\x80b"}',
            "truncated multibyte at the end": b'{"data":"ab\xe2\x82"}',
            "surrogate encoded in UTF-8 (CESU)": b'{"data":"\xed\xa0\x80"}',
            "above U+10FFFF": b'{"data":"\xf4\x90\x80\x80"}',
            "overlong 3-byte slash": b'{"data":"\xe0\x80\xaf"}',
            "lone continuation byte": b'{"data":"\x80"}',
            "5-byte sequence": b'{"data":"\xf8\x88\x80\x80\x80"}',
        }
        for what, body in cases.items():
            with self.subTest(what):
                self.assertRejected(body, 400, "bad_encoding", what)
        # A lone surrogate escape is valid JSON syntax that no UTF-8 string
        # can hold: refused while parsing (bad_json) or after (bad_encoding).
        escapes = {
            "lone high surrogate escape": b'{"data":"a\\ud800b"}',
            "lone low surrogate escape": b'{"data":"\\udc00"}',
            "high surrogate then not a low one": b'{"data":"\\ud800\\u0041"}',
            "high surrogate at the very end": b'{"data":"x\\ud83d"}',
        }
        for what, body in escapes.items():
            with self.subTest(what):
                err = self.assertRejected(body, 400, None, what).json["error"]
                self.assertIn(err["code"], ("bad_json", "bad_encoding"), what)

    def test_invalid_utf8_elsewhere(self):
        # In the id: refused (as bad encoding or a bad id; a lone surrogate
        # escape may already be refused as JSON).
        for what, body in {"0xff in id": b'{"data":"x","id":"a\xffb"}',
                           "lone surrogate in id": b'{"data":"x","id":"\\ud800"}',
                           "truncated multibyte in id": b'{"data":"x","id":"ab\xc3"}'}.items():
            with self.subTest(what):
                r = self.post("/api/requests", body)
                err = self.assertError(r, 400, msg=what)
                codes = ("bad_encoding", "bad_request") + (("bad_json",) if b"\\ud" in body else ())
                self.assertIn(err["code"], codes, what)
        # A body that is not UTF-8 is not JSON (RFC 8259), even where the
        # bad byte sits in a key that would be ignored.
        for what, body in {"0xff in an unknown key": b'{"data":"x","\xff":1}',
                           "0xff in an unknown value": b'{"data":"x","z":"\xff"}'}.items():
            with self.subTest(what):
                err = self.assertError(self.post("/api/requests", body), 400, msg=what)
                self.assertIn(err["code"], ("bad_encoding", "bad_json"), what)

    def test_valid_unicode_round_trips(self):
        samples = {
            "newline": "line\nbreak", "tab": "a\tb", "emoji": "emoji \U0001F680",
            "mixed": "h\u00e9llo \u2713 \u65e5\u672c \U0001F600\r\n",
            "U+2028/U+2029": "\u2028\u2029", "U+FFFF": "\uffff", "U+10FFFF": "\U0010ffff",
        }
        acked = []
        for what, data in samples.items():
            acked.append((self.post_ok({"data": data, "id": uid("u")}, what), data))
            acked.append((self.post_ok(json.dumps({"data": data, "id": uid("u")}, ensure_ascii=False)
                                       .encode("utf-8"), what + " (raw UTF-8)"), data))
        # An emoji sent as an escaped surrogate pair.
        acked.append((self.post_ok(b'{"data":"\\ud83d\\ude80"}'), "\U0001F680"))
        # A literal backslash followed by "u0000" is text, not a NUL.
        acked.append((self.post_ok(b'{"data":"a\\\\u0000b"}'), "a\\u0000b"))
        for b, data in acked:
            self.assertEqual(b["data"], data)
            self.assertEqual(self.read_back(b["index"])["data"], data, repr(data))

    def test_nul_in_data_or_id(self):
        for body in [b'{"data":"a\\u0000b"}', b'{"data":"\\u0000"}', b'{"data":"x","id":"a\\u0000b"}',
                     b'{"data":"x","id":"\\u0000"}', b'{"data":"a\\\\\\u0000"}']:
            with self.subTest(body=body):
                self.assertRejected(body, 400, None, repr(body))

    # -- ids ---------------------------------------------------------------------
    def test_id_control_characters(self):
        for bad in ["a\nb", "\t", "\u0001", "\u007f", "\u0085", "ab\r", "\u001f", "\u009f"]:
            for raw in (False, True):
                if raw and ord(min(bad)) < 0x20:
                    continue  # a raw C0 control in a JSON string is not JSON at all
                body = json.dumps({"data": "x", "id": bad}, ensure_ascii=not raw).encode("utf-8")
                how = "raw" if raw else "escaped"
                with self.subTest(id=bad, raw=raw):
                    self.assertRejected(body, 400, "bad_request", f"id {bad!r} ({how})")

    def test_id_lengths(self):
        b = self.post_ok({"data": "x", "id": "i" * 127}, "127-byte id")
        self.assertEqual(b["id"], "i" * 127)
        self.assertRejected({"data": "x", "id": "i" * 128}, 400, None, "128-byte id")
        for what, rid in {"e-acute x63 (126 bytes)": "\u00e9" * 63,
                          "rocket x31 (124 bytes)": "\U0001F680" * 31,
                          "123 ASCII + one 4-byte char (127 bytes)": "i" * 123 + "\U0001F680"}.items():
            with self.subTest(what):
                self.assertLessEqual(len(rid.encode()), 127)
                b = self.post_ok({"data": what, "id": rid}, what)
                self.assertEqual(b["id"], rid, what)
                self.assertEqual(self.read_back(b["index"])["id"], rid, what)
        for what, rid in {"e-acute x64 (128 bytes)": "\u00e9" * 64,
                          "124 ASCII + one 4-byte char (128 bytes)": "i" * 124 + "\U0001F680"}.items():
            with self.subTest(what):
                self.assertRejected({"data": "x", "id": rid}, 400, None, what)

    # -- types and numbers -----------------------------------------------------------
    def test_data_of_other_types(self):
        for data in [5, -0.0, [1], ["x"], {"a": 1}, None, True, False]:
            with self.subTest(data=data):
                self.assertRejected({"data": data}, 400, "missing_data", f"data {data!r}")

    def test_fault_of_other_types(self):
        for fault in ["yes", 1, 0, "true", [], {}]:
            with self.subTest(fault=fault):
                self.assertRejected({"data": "x", "fault": fault}, 400, None, f"fault {fault!r}")

    def test_numbers_at_their_limits(self):
        for num in ["1e309", "-1e309", "-0", "1e-400", "18446744073709551616", "18446744073709551615",
                    "-9223372036854775809", "1" * 400, "0." + "0" * 400 + "1"]:
            with self.subTest(where="unknown field", num=num[:30]):
                self.post_ok(('{"data":"x","n":%s}' % num).encode(), f"n = {num[:30]}")
                self.assertAlive(f"n = {num[:30]}")
            with self.subTest(where="fault", num=num[:30]):
                self.assertRejected(('{"data":"x","fault":%s}' % num).encode(), 400, None,
                                    f"fault = {num[:30]}")

    def test_not_an_object(self):
        for what, body in {"empty body": b"", "null": b"null", "[]": b"[]", '"str"': b'"str"',
                           "trailing garbage": b'{"data":"x"} garbage',
                           "a second object": b'{"data":"x"}{"data":"y"}',
                           "a trailing NUL byte": b'{"data":"x"}\x00',
                           "only whitespace": b" \r\n\t "}.items():
            with self.subTest(what):
                self.assertRejected(body, 400, "bad_json", what)
        # A UTF-8 BOM first: RFC 8259 lets a parser ignore it. Either
        # refused as JSON, or accepted with exactly the data of the object.
        with self.subTest("UTF-8 BOM first"):
            rid = uid("bom")
            body = b"\xef\xbb\xbf" + json.dumps({"data": "after a BOM", "id": rid}).encode()
            r = self.post("/api/requests", body)
            if r.status == 201:
                self.assertEqual((r.json["id"], r.json["data"]), (rid, "after a BOM"), r)
                e = self.read_back(r.json["index"])
                self.assertEqual((e["id"], e["data"]), (rid, "after a BOM"), e)
            else:
                self.assertError(r, 400, "bad_json", "UTF-8 BOM first")
                self.assertEqual([e for e in self.co.all_entries() if e["id"] == rid], [])
            self.assertAlive("UTF-8 BOM first")
        # UTF-16 (a BOM, then NULs): not JSON, and not UTF-8 either.
        err = self.assertRejected(b'\xff\xfe{\x00}\x00', 400, None, "UTF-16 body").json["error"]
        self.assertIn(err["code"], ("bad_json", "bad_encoding"))

    # -- sizes and lengths ----------------------------------------------------------
    def test_body_over_max_body_bytes(self):
        base = b'{"data":"x","pad":"'
        for size in (MAX_BODY + 1, 3 * MAX_BODY):
            body = base + b"p" * (size - len(base) - 2) + b'"}'
            self.assertEqual(len(body), size)
            with self.subTest(size=size):
                self.assertRejected(body, 413, "too_large", f"body of {size} bytes")

    def test_body_over_limit_sent_whole_keeps_the_connection(self):
        """A body over --max-body-bytes that is sent whole: 413, and the
        connection goes on (the rest of the body is read and dropped, so
        a client still sending reads the 413 rather than a reset)."""
        body = b'{"data":"' + b"p" * (2 * MAX_BODY) + b'"}'
        req = (b"POST /api/requests HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n" % len(body) + body +
               b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        out, _answered, _closed = self.raw_until_close(req, timeout=10)
        status, head, rest = self.parse_raw(out)
        self.assertEqual(status, 413, out[:300])
        n = int(re.search(rb"content-length: *(\d+)", head).group(1))
        self.assertError(self.raw_response(status, head, rest[:n]), 413, "too_large")
        self.assertTrue(rest[n:].startswith(b"HTTP/1.1 200"),
                        f"no answer to the request after the 413: {rest[n:][:200]!r}")

    @staticmethod
    def whole_response(out):
        """True once out holds a response head and its Content-Length of body."""
        head, sep, body = out.partition(b"\r\n\r\n")
        if not sep:
            return False
        cl = [ln.split(b":", 1)[1].strip() for ln in head.split(b"\r\n")
              if ln.lower().startswith(b"content-length:")]
        return bool(cl and cl[0].isdigit() and len(body) >= int(cl[0]))

    def raw_exchange(self, payload, timeout=10):
        """Send raw bytes; read until the server closes, a whole response
        has arrived, or timeout. (bytes read, seconds taken)."""
        t0 = time.monotonic()
        s = socket.create_connection((HOST, self.port), timeout=timeout)
        out = b""
        try:
            try:
                s.sendall(payload)
            except OSError:
                pass
            deadline = t0 + timeout
            while time.monotonic() < deadline:
                s.settimeout(max(0.05, deadline - time.monotonic()))
                try:
                    chunk = s.recv(65536)
                except socket.timeout:
                    break
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
                if self.whole_response(out):
                    break
        finally:
            s.close()
        return out, time.monotonic() - t0

    def raw_until_close(self, payload, timeout=10):
        """Send raw bytes; read until the server closes or timeout.
        (bytes read, seconds until a whole response had arrived, seconds
        until the server closed); either time None when it did not happen."""
        t0 = time.monotonic()
        s = socket.create_connection((HOST, self.port), timeout=timeout)
        out, answered, closed = b"", None, None
        try:
            try:
                s.sendall(payload)
            except OSError:
                pass
            deadline = t0 + timeout
            while time.monotonic() < deadline:
                s.settimeout(max(0.05, deadline - time.monotonic()))
                try:
                    chunk = s.recv(65536)
                except socket.timeout:
                    break
                except OSError:  # a reset is a close too
                    closed = time.monotonic() - t0
                    break
                if not chunk:
                    closed = time.monotonic() - t0
                    break
                out += chunk
                if answered is None and self.whole_response(out):
                    answered = time.monotonic() - t0
        finally:
            s.close()
        return out, answered, closed

    @staticmethod
    def parse_raw(out):
        """(status, lower-case head, body) of a raw HTTP response."""
        head, _, body = out.partition(b"\r\n\r\n")
        parts = head.split(b"\r\n", 1)[0].split(b" ")
        status = int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None
        return status, head.lower(), body

    @staticmethod
    def raw_response(status, head, body):
        """A harness Response from a parsed raw response, for assertError."""
        headers = {}
        for ln in head.split(b"\r\n")[1:]:
            k, _, v = ln.partition(b":")
            headers[k.strip().decode("latin-1")] = v.strip().decode("latin-1")
        r = Response(status, headers, body)
        r._json = strict_json(body, f"{status} response")
        return r

    def assertRawError(self, out, statuses, codes, what, closes=None):
        """out is one error response in the API's shape: a status in
        statuses, application/json, {"error":{"code","message"}} with a code
        in codes (None: any). closes: (answered, closed) of raw_until_close,
        to check the reply says Connection: close and the server did close.
        Returns the error object."""
        self.assertTrue(out, f"{what}: no answer")
        status, head, body = self.parse_raw(out)
        self.assertIn(status, statuses, f"{what}: {out[:300]!r}")
        n = re.search(rb"content-length: *(\d+)", head)
        self.assertIsNotNone(n, f"{what}: no Content-Length: {out[:300]!r}")
        self.assertEqual(len(body), int(n.group(1)), f"{what}: {out[:300]!r}")
        err = self.assertError(self.raw_response(status, head, body), status, None, what)
        if codes is not None:
            self.assertIn(err["code"], codes, f"{what}: {err}")
        if closes is not None:
            answered, closed = closes
            self.assertIn(b"\r\nconnection: close", head, f"{what}: {out[:300]!r}")
            self.assertIsNotNone(closed, f"{what}: the connection was still open after the answer")
            self.assertLess(closed - (answered or 0), 2.0,
                            f"{what}: closed {closed - (answered or 0):.1f} s after the answer")
        return err

    def test_hostile_content_length(self):
        small = b'{"data":"x"}'
        for cl in ["18446744073709551615", "-1", "18446744073709551616", "9223372036854775807",
                   "9223372036854775808", "99999999999999999999999999", "abc", ""]:
            with self.subTest(content_length=cl):
                req = (b"POST /api/requests HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       b"Content-Length: " + cl.encode() + b"\r\nConnection: close\r\n\r\n" + small)
                out, took = self.raw_exchange(req, timeout=10)
                self.assertTrue(out, f"Content-Length {cl}: no answer within {took:.1f} s (hang)")
                self.assertLess(took, 5.0, f"Content-Length {cl}: answered after {took:.1f} s")
                # Every body of the module is JSON, civetweb's own error pages
                # included: a number beyond the limit is too large, anything
                # that is no length at all (civetweb's 400/411) a bad request.
                self.assertRawError(out, (400, 411, 413),
                                    ("too_large", "length_required", "bad_request"),
                                    f"Content-Length {cl}")
                status = self.parse_raw(out)[0]
                if cl.isdigit():
                    self.assertEqual(status, 413, f"Content-Length {cl}: {out[:300]!r}")
                self.assertAlive(f"Content-Length {cl}")

    def test_absurd_content_length_closes_the_connection(self):
        """After the 413 for a Content-Length that will never arrive, the
        connection is closed at once (it said Connection: close), whether
        or not the client asked for keep-alive: no worker waits for the
        rest of a body of 2^64 - 1 bytes."""
        for cl in ("18446744073709551615", "9223372036854775807"):
            for connection in (b"Connection: close\r\n", b"", b"Connection: keep-alive\r\n"):
                what = f"Content-Length {cl}, {connection.strip().decode() or 'no Connection header'}"
                with self.subTest(what):
                    req = (b"POST /api/requests HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                           b"Content-Length: " + cl.encode() + b"\r\n" + connection + b"\r\n"
                           b'{"data":"x"}')
                    out, answered, closed = self.raw_until_close(req, timeout=8)
                    self.assertIsNotNone(answered, f"{what}: no whole answer: {out[:300]!r}")
                    self.assertLess(answered, 2.0, what)
                    self.assertRawError(out, (413,), ("too_large",), what, closes=(answered, closed))
                    self.assertAlive(what)

    def test_server_errors_in_api_shape(self):
        """The errors civetweb produces itself (a request it cannot parse)
        are JSON in the API's error shape too, say Connection: close and
        close the connection."""
        cases = [
            ("a path without its slash", b"GET api/cluster HTTP/1.1\r\nHost: x\r\n\r\n",
             (400,), ("bad_request",)),
            ("not a request line", b"GARBAGE\r\n\r\n", (400,), ("bad_request",)),
            ("an unknown method", b"FROB /api/cluster HTTP/1.1\r\nHost: x\r\n\r\n",
             (400, 405, 501), ("bad_request", "method_not_allowed", "not_implemented")),
            ("HTTP/9.9", b"GET /api/cluster HTTP/9.9\r\nHost: x\r\n\r\n",
             (400, 505), ("bad_request", "http_version_not_supported")),
            ("a version that is not UTF-8", b"GET /api/cluster HTTP/\xff\xfe\r\nHost: x\r\n\r\n",
             (400, 505), ("bad_request", "http_version_not_supported")),
            ("a 100 KB header", b"GET /api/cluster HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100000 +
             b"\r\n\r\n", (400, 413, 431), ("bad_request", "too_large", "headers_too_large")),
            ("Content-Length: -1", b"POST /api/requests HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"
             b'{"data":"x"}', (411,), ("length_required",)),
        ]
        for what, req, statuses, codes in cases:
            with self.subTest(what):
                out, answered, closed = self.raw_until_close(req, timeout=8)
                self.assertRawError(out, statuses, codes, what, closes=(answered, closed))
                self.assertAlive(what)
        # civetweb answers a header it will not read and closes with the
        # rest unread; the answer must still reach the client every time
        # (through the front door's pipe it was lost about one time in four).
        big = b"GET /api/cluster HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100000 + b"\r\n\r\n"
        for attempt in range(20):
            with self.subTest("a 100 KB header, again", attempt=attempt):
                out, answered, closed = self.raw_until_close(big, timeout=8)
                self.assertRawError(out, (400, 413, 431),
                                    ("bad_request", "too_large", "headers_too_large"),
                                    f"a 100 KB header, attempt {attempt}", closes=(answered, closed))
        with self.subTest("HEAD with a path without its slash"):
            out, answered, closed = self.raw_until_close(b"HEAD api/cluster HTTP/1.1\r\nHost: x\r\n\r\n",
                                                         timeout=8)
            status, head, body = self.parse_raw(out)
            self.assertEqual(status, 400, out[:300])
            self.assertIn(b"content-type: application/json", head, out[:300])
            self.assertEqual(body, b"", f"HEAD answered with a body: {out[:300]!r}")
            self.assertIsNotNone(closed, "the connection was still open after the answer")

    def test_body_shorter_than_content_length_not_committed(self):
        """A body shorter than its Content-Length is never committed.

        Content-Length: 2000, a complete-looking 40-byte JSON object, then
        silence: 400 bad_request once the server's request timeout has
        passed, the connection closed, and no entry. The same for a chunked
        body whose last chunk never comes, and a body with neither length
        nor chunks (411: there is no telling where it ends)."""
        rid = uid("trunc")
        body = json.dumps({"data": "truncated", "id": rid}).encode()
        req = (b"POST /api/requests HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: 2000\r\nConnection: close\r\n\r\n" + body)
        out, answered, closed = self.raw_until_close(req, timeout=40)
        answer = out.split(b"\r\n", 1)[0].decode("latin-1") if out else "closed, no answer"
        figure("hostile", "body 1960 bytes short of its Content-Length: answered after",
               f"{ms(answered) if answered is not None else '-'} ({answer})")
        self.assertIsNotNone(answered, f"a truncated body got no whole answer in 40 s: {out[:300]!r}")
        self.assertLess(answered, 39, "a truncated body held its connection for 40 s")
        err = self.assertRawError(out, (400,), ("bad_request",), "a body short of its Content-Length",
                                  closes=(answered, closed))
        self.assertIn("Content-Length", err["message"])

        rid2 = uid("chunk")
        part = json.dumps({"data": "chunked, never ended", "id": rid2}).encode()
        req = (b"POST /api/requests HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % len(part) + part + b"\r\n")
        out, answered, closed = self.raw_until_close(req, timeout=40)
        self.assertIsNotNone(answered, f"a chunked body without its last chunk: {out[:300]!r}")
        self.assertRawError(out, (400,), ("bad_request",), "a chunked body without its last chunk",
                            closes=(answered, closed))

        rid3 = uid("nolen")
        req = (b"POST /api/requests HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\r\n" +
               json.dumps({"data": "no length", "id": rid3}).encode())
        out, answered, closed = self.raw_until_close(req, timeout=10)
        self.assertIsNotNone(answered, f"a body without a length: {out[:300]!r}")
        self.assertLess(answered, 2.0, "a body without a length")
        self.assertRawError(out, (411,), ("length_required",), "a body without a length",
                            closes=(answered, closed))

        stored = [e for e in self.co.all_entries() if e["id"] in (rid, rid2, rid3)]
        self.assertEqual(stored, [], "a body that ended early (or never said where) was committed")

    # -- 3. retried ids ------------------------------------------------------------
    def test_retried_id_with_other_data(self):
        rid = uid("X")
        first = self.post_ok({"data": "a", "id": rid}, "first write")
        i = first["index"]
        r = self.post("/api/requests", {"data": "b", "id": rid})
        err = self.assertError(r, 409, "id_conflict", "same id, other data")
        self.assertEqual(err.get("index"), i, f"409 names the original index: {err}")
        self.assertIsInstance(err.get("index"), int)
        self.assertIn(str(i), err["message"], f"the message names index {i}: {err}")
        again = self.post_ok({"data": "a", "id": rid}, "the same request again")
        self.assertEqual(again["index"], i, "a true retry is answered with the original index")
        entries = [e for e in self.co.all_entries() if e["id"] == rid]
        self.assertEqual([(e["index"], e["data"]) for e in entries], [(i, "a")])

    def test_retried_id_other_case_or_trailing_byte(self):
        rid = uid("Y")
        i = self.post_ok({"data": "a", "id": rid})["index"]
        # Ids are compared byte for byte: another case is another id.
        other = self.post_ok({"data": "b", "id": rid.upper()})
        self.assertNotEqual(other["index"], i)
        # Data differing only in a trailing byte is other data.
        err = self.assertError(self.post("/api/requests", {"data": "a ", "id": rid}), 409, "id_conflict")
        self.assertEqual(err.get("index"), i)


# ===========================================================================
# 4. Replica ids in paths
# ===========================================================================

# As they go on the wire (already URL-encoded).
BAD_REPLICA_IDS = {
    "newline": "%0A", "r1 + newline": "r1%0A", "NUL": "%00", "r1 + NUL": "r1%00", "NUL + r1": "%00r1",
    "space": "%20", "r1 + space": "r1%20", "slash": "%2F", "r1 + slash": "r1%2F",
    "r1/fail encoded": "r1%2Ffail", "..": "..", "encoded ..": "%2E%2E", "../..": "..%2F..",
    "64 bytes": "r" * 64, "10000 bytes": "r" * 10000, "non-ASCII": "%C3%A9", "r1 + non-ASCII": "r1%C3%A9",
    "0xff": "%FF", "r1 + tab": "r1%09", "r1 + CR LF": "r1%0D%0A", "backslash": "r1%5C",
    "percent": "r1%25", "quote": "r1%22", "fullwidth r1": quote("\uff52\uff11"),
}
UNKNOWN_IDS = ["r9", "r4", "r0", "R1", "r01", "r1.", "x" * 63]


class ReplicaPathTests(HostileCase):
    coordinator_name = "hostile-paths"

    def check_404(self, path, method):
        r = self.call(method, path)
        if r.status == 202:
            # A replica was failed: let its exit show, then report it here
            # (assertAlive waits for the cluster to recover first).
            deadline = time.monotonic() + 5
            while self.co.replica_pids() == self.pids_now and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertAlive(f"{method} {path[:100]} -> 202 {r.body[:100]!r}")
        self.assertError(r, 404, "not_found", f"{method} {path[:100]}")

    def test_bad_ids_get(self):
        for what, rid in BAD_REPLICA_IDS.items():
            with self.subTest(what):
                self.check_404(f"/api/replicas/{rid}", "GET")
        with self.subTest("empty"):
            self.check_404("/api/replicas/", "GET")

    def test_bad_ids_fail(self):
        for what, rid in BAD_REPLICA_IDS.items():
            with self.subTest(what):
                self.check_404(f"/api/replicas/{rid}/fail", "POST")
                self.assertAlive(f"POST /api/replicas/<{what}>/fail")
        with self.subTest("empty"):
            self.check_404("/api/replicas//fail", "POST")
        self.assertEqual(self.bad_events(), [], "a replica failed or exited")

    def test_encoded_slash_does_not_reach_fail(self):
        # "/api/replicas/r1%2Ffail" names the replica "r1/fail" (404), not
        # r1's fail action.
        for path in ("/api/replicas/r1%2Ffail", "/api/replicas/r1%2ffail", "/api/replicas/r1%2Ffail%00"):
            for method in ("POST", "GET"):
                with self.subTest(f"{method} {path}"):
                    self.check_404(path, method)
                    self.assertAlive(f"{method} {path}")
        self.assertEqual(self.bad_events(), [], "a replica failed or exited")

    def test_unknown_ids(self):
        for rid in UNKNOWN_IDS:
            for method, path in (("GET", f"/api/replicas/{rid}"), ("POST", f"/api/replicas/{rid}/fail")):
                with self.subTest(f"{method} {path}"):
                    self.check_404(path, method)
                    self.assertAlive(f"{method} {path}")
        self.assertEqual(self.bad_events(), [], "a replica failed or exited")

    def test_real_ids_still_answer(self):
        c = self.co.cluster()
        for rep in c["replicas"]:
            r = self.get(f"/api/replicas/{rep['id']}")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json["id"], rep["id"])

    def test_head_replica_answers_as_get(self):
        """HEAD /api/replicas/{id}: GET's status and headers, no body; the
        same for an unknown id (404) and a bad query (400)."""
        rid = self.co.cluster()["replicas"][0]["id"]
        for path, status in ((f"/api/replicas/{rid}", 200), (f"/api/replicas/{rid}?after=0&limit=1", 200),
                             ("/api/replicas/r9", 404), ("/api/replicas/r1%2F", 404),
                             (f"/api/replicas/{rid}?limit=0", 400)):
            with self.subTest(path):
                h = self.call("HEAD", path)
                self.assertHeadError(h, status, f"HEAD {path}")
                g = self.get(path)
                self.assertEqual(g.status, status, g)
                if status != 200:  # (a 200's length changes as the replica moves on)
                    self.assertEqual(h.headers.get("content-length"), str(len(g.body)), path)
        with self.subTest("HEAD .../fail"):
            self.assertHeadError(self.call("HEAD", f"/api/replicas/{rid}/fail"), 405, "HEAD .../fail")
        self.assertEqual(self.bad_events(), [], "a replica failed or exited")

    def test_api_paths_are_taken_as_sent(self):
        """Only /api/replicas/{id} and /api/replicas/{id}/fail, spelt
        exactly so: dot segments, doubled or trailing slashes and percent
        escapes never reach an endpoint (a client that means r1 sends r1)."""
        cases = [("GET", "/api/./cluster"), ("GET", "/api/x/../cluster"), ("GET", "/api/%63luster"),
                 ("GET", "/api//cluster"), ("GET", "/api/cluster/"), ("GET", "/api/cluster%00"),
                 ("GET", "/api/replicas/%72%31"), ("GET", "/api/replicas/r1/."),
                 ("GET", "/api/replicas/./r1"), ("GET", "/api/replicas/r1/"), ("GET", "/api/replicas/r1/x/.."),
                 ("POST", "/api/replicas/x/../r1/fail"), ("POST", "/api/replicas/r1/./fail"),
                 ("POST", "/api/replicas/r1//fail"), ("POST", "/api/replicas/r1/fail/"),
                 ("POST", "/api/replicas/r1/fail/.."), ("POST", "/api/replicas/r1/fail/."),
                 ("POST", "/api/replicas/r1/%66ail"), ("POST", "/api/replicas/./r1/fail"),
                 ("POST", "/api/replicas/r1%2F%2E/fail"), ("POST", "/api/replicas/r1%2E/fail"),
                 ("POST", "/api/primary/./fail"), ("POST", "/api/x/../primary/fail"),
                 ("POST", "/api/primary%2Ffail"), ("POST", "/api/primary/fail/")]
        for method, path in cases:
            with self.subTest(f"{method} {path}"):
                self.check_404(path, method)
                self.assertAlive(f"{method} {path}")
        self.assertEqual(self.bad_events(), [], "a replica failed or exited")

    def test_static_files_never_through_dot_segments_or_encoded_slashes(self):
        """The dashboard's files: served by their plain path (percent
        escapes of ordinary characters decoded), never through a dot
        segment, an encoded slash or backslash, or a NUL: those are 404
        in the API's error shape."""
        for path in ["/./index.html", "/x/../index.html", "/%2e/index.html", "/%2E%2E/index.html",
                     "/x/%2e%2e/index.html", "/x/.%2e/index.html", "/%2findex.html", "/.%2Findex.html",
                     "/x%2F..%2Findex.html", "/index.html%00", "/%5cindex.html", "/x%5C..%5Cindex.html",
                     "/..%2F..%2Fetc%2Fpasswd", "/../../etc/passwd", "/api/replicas/..%2F..%2Findex.html",
                     "/api/replicas/../../index.html", "/index.html/.", "/style.css/.."]:
            with self.subTest(path):
                self.assertError(self.get(path), 404, "not_found", f"GET {path}")
        if Config.dashboard_dir:
            for path in ["/", "/index.html", "/%69ndex.html", "/style.css"]:
                with self.subTest(path):
                    r = http_request(self.port, "GET", path)
                    self.assertEqual(r.status, 200, f"GET {path} -> {r.status} {r.body[:200]!r}")


def load_tests(loader, tests, pattern):
    """Only the concrete classes (HostileCase would start a coordinator of
    its own and run its end check alone)."""
    suite = unittest.TestSuite()
    for cls in (QueryTests, BodyTests, ReplicaPathTests):
        suite.addTests(loader.loadTestsFromTestCase(cls))
    return suite


if __name__ == "__main__":
    unittest.main()
