"""The API token (--api-token-file, --api-read-token-file, --metrics-open):
every call under /api/ and /metrics needs it, the dashboard's files and the
health checks do not; a wrong or malformed token is 401, the read-only token
may read but not change anything (403); the WebSocket takes it as ?token=."""
import os
import shutil
import subprocess
import tempfile
import unittest
import uuid

from harness import Config, Coordinator, CoordinatorTestCase, WebSocket

TOKEN = "t0k-" + uuid.uuid4().hex
READ_TOKEN = "r3ad-" + uuid.uuid4().hex

WS_HEADERS = {"Upgrade": "websocket", "Connection": "Upgrade",
              "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13"}

# Every route of coordinator/http.c (docs/api.md, "Endpoints"), with a body
# where it takes one: without a good token none may act.
CALLS = [
    ("GET", "/api/cluster", None),
    ("HEAD", "/api/cluster", None),
    ("GET", "/api/history", None),
    ("GET", "/api/requests?after=0&limit=5", None),
    ("POST", "/api/requests", {"data": "must-not-commit"}),
    ("GET", "/api/replicas/r1", None),
    ("POST", "/api/replicas", None),
    ("DELETE", "/api/replicas/r3", None),
    ("POST", "/api/replicas/r1/fail", None),
    ("POST", "/api/primary/fail", None),
    ("GET", "/api/faults", None),
    ("POST", "/api/faults", {"kind": "isolate", "replica": "r1"}),
    ("DELETE", "/api/faults", None),
    ("DELETE", "/api/faults/1", None),
    ("PUT", "/api/timing", {"slow_motion": 10}),
    ("GET", "/api/no-such-endpoint", None),
    ("OPTIONS", "/api/cluster", None),
    ("GET", "/metrics", None),
]

WRITES = [c for c in CALLS if c[0] not in ("GET", "HEAD") and c[1] != "/api/cluster"]


def token_dir():
    d = tempfile.mkdtemp(prefix="replicacao-auth-")
    paths = {}
    for name, value in (("token", TOKEN), ("read", READ_TOKEN)):
        paths[name] = os.path.join(d, name)
        with open(paths[name], "w", encoding="ascii") as f:
            f.write(value + "\n\n")  # trailing white space is not part of it
        os.chmod(paths[name], 0o600)
    return d, paths


class AuthTests(CoordinatorTestCase):
    coordinator_name = "auth"

    @classmethod
    def make_coordinator(cls):
        cls.tokens, paths = token_dir()
        return Coordinator(name=cls.coordinator_name, token=TOKEN,
                           extra=["--api-token-file", paths["token"],
                                  "--api-read-token-file", paths["read"]])

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tokens, ignore_errors=True)
        super().tearDownClass()

    def call(self, method, path, body=None, **kw):
        kw.setdefault("token", None)
        return self.co.request(method, path, body, **kw)

    def assert401(self, r, what, invalid):
        self.assertEqual(r.status, 401, f"{what} -> {r}")
        want = 'Bearer realm="replicacao"' + (', error="invalid_token"' if invalid else "")
        self.assertEqual(r.headers.get("www-authenticate"), want, what)
        if r.body:  # HEAD has none
            self.assertError(r, 401, "unauthorized", what)

    def assertUnchanged(self, before):
        """Nothing the refused calls asked for happened."""
        after = self.co.cluster()
        self.assertEqual(after["epoch"], before["epoch"], "a refused call failed a primary")
        self.assertEqual(sorted(r["id"] for r in after["replicas"]), ["r1", "r2", "r3"])
        self.assertTrue(all(r["status"] == "up" for r in after["replicas"]), after)
        self.assertEqual(after.get("faults"), [], "a refused call started a fault")
        entries = self.co.all_entries()
        self.assertFalse([e for e in entries if e["data"] == "must-not-commit"], entries)

    # ---------------------------------------------------------------------
    def test_no_token_is_401_everywhere(self):
        before = self.co.wait_primary(all_up=True)
        for method, path, body in CALLS:
            self.assert401(self.call(method, path, body), f"{method} {path} without a token", False)
        r = self.call("GET", "/api/ws", headers=WS_HEADERS)
        self.assert401(r, "WebSocket upgrade without a token", False)
        self.assertUnchanged(before)

    def test_wrong_token_is_401_everywhere(self):
        before = self.co.wait_primary(all_up=True)
        for token in ("wrong", TOKEN + "x", TOKEN[:-1], " ", READ_TOKEN + READ_TOKEN):
            for method, path, body in CALLS:
                r = self.call(method, path, body, token=token)
                if token.strip():
                    self.assert401(r, f"{method} {path} with token {token!r}", True)
                else:  # "Bearer  ": no token at all
                    self.assert401(r, f"{method} {path} with an empty token", False)
        for q in ("token=wrong", f"token={TOKEN}x", "token=", f"tok={TOKEN}"):
            r = self.call("GET", f"/api/ws?{q}", headers=WS_HEADERS)
            self.assertEqual(r.status, 401, f"WebSocket ?{q} -> {r}")
        self.assertUnchanged(before)

    def test_malformed_authorization(self):
        cases = {
            "Basic " + TOKEN: False,          # another scheme: no token
            TOKEN: False,                     # no scheme
            "Bearer": False,
            "Bearer    ": False,
            "Bearer" + TOKEN: False,
            "Bearer " + "x" * 5000: True,     # longer than any token
            "Bearer " + TOKEN + " " + TOKEN: True,
        }
        for value, invalid in cases.items():
            for method, path, body in (("GET", "/api/cluster", None),
                                       ("POST", "/api/requests", {"data": "must-not-commit"})):
                r = self.call(method, path, body, headers={"Authorization": value})
                self.assert401(r, f"{method} {path} Authorization {value[:40]!r}", invalid)
        # Larger than civetweb takes a head: refused, whatever it says, and
        # the coordinator lives on.
        for method in ("GET", "POST"):
            try:
                r = self.call(method, "/api/cluster" if method == "GET" else "/api/requests",
                              {"data": "must-not-commit"} if method == "POST" else None,
                              headers={"Authorization": "Bearer " + "y" * 100000})
                self.assertGreaterEqual(r.status, 400, r)
                self.assertLess(r.status, 500, r)
            except OSError:
                pass  # closed on it
        # The token is only taken from the query on the WebSocket.
        r = self.call("GET", f"/api/cluster?token={TOKEN}")
        self.assert401(r, "?token= outside /api/ws", False)
        r = self.call("POST", f"/api/requests?token={TOKEN}", {"data": "must-not-commit"})
        self.assert401(r, "?token= on a write", False)
        self.assertTrue(self.co.alive())
        self.assertEqual(self.co.get("/api/cluster").status, 200)
        self.assertFalse([e for e in self.co.all_entries() if e["data"] == "must-not-commit"])

    def test_right_token_works(self):
        self.co.wait_primary(all_up=True)
        data = "auth-" + uuid.uuid4().hex
        r = self.co.post("/api/requests", {"data": data, "id": data})
        self.assertEqual(r.status, 201, r)
        r = self.call("POST", "/api/requests", {"data": data, "id": data},
                      headers={"Authorization": f"bEaReR   {TOKEN}  "})
        self.assertEqual(r.status, 201, f"scheme in any case, spaces around: {r}")
        entries = self.co.all_entries()
        self.assertEqual([e["data"] for e in entries if e["id"] == data], [data])
        for method, path in (("HEAD", "/api/cluster"), ("GET", "/api/history"),
                             ("GET", "/api/faults"), ("GET", "/api/replicas/r2"),
                             ("GET", "/metrics")):
            self.assertEqual(self.co.request(method, path).status, 200, f"{method} {path}")
        self.assertEqual(self.co.get("/api/no-such-endpoint").status, 404)
        # The WebSocket: the token as ?token= (what a browser can send), or
        # as the header.
        for kw in ({"path": f"/api/ws?token={TOKEN}"},
                   {"headers": {"Authorization": f"Bearer {TOKEN}"}}):
            ws = WebSocket(self.port, **kw)
            try:
                _t, msg = ws.next(timeout=5)
                self.assertEqual(msg.get("type"), "cluster", str(msg)[:200])
            finally:
                ws.close()

    def test_read_token(self):
        self.co.wait_primary(all_up=True)
        before = self.co.cluster()
        for method, path in (("GET", "/api/cluster"), ("HEAD", "/api/cluster"),
                             ("GET", "/api/requests?limit=3"), ("GET", "/api/history"),
                             ("GET", "/api/faults"), ("GET", "/api/replicas/r1"),
                             ("GET", "/metrics")):
            r = self.call(method, path, token=READ_TOKEN)
            self.assertEqual(r.status, 200, f"{method} {path} with the read token: {r}")
        for method, path, body in WRITES:
            r = self.call(method, path, body, token=READ_TOKEN)
            self.assertEqual(r.status, 403, f"{method} {path} with the read token: {r}")
            self.assertError(r, 403, "forbidden", f"{method} {path}")
        ws = WebSocket(self.port, path=f"/api/ws?token={READ_TOKEN}")
        try:
            self.assertEqual(ws.next(timeout=5)[1].get("type"), "cluster")
        finally:
            ws.close()
        self.assertUnchanged(before)

    def test_open_paths(self):
        for path, kind in (("/", "text/html"), ("/index.html", "text/html"),
                           ("/app.js", "javascript"), ("/style.css", "text/css"),
                           ("/vendor/d3.min.js", "javascript"), ("/livez", "text/plain"),
                           ("/healthz", "text/plain"), ("/readyz", "application/json")):
            r = self.call("GET", path)
            self.assertEqual(r.status, 200, f"GET {path} without a token: {r}")
            self.assertIn(kind, r.headers.get("content-type", ""), path)
        self.assertEqual(self.call("GET", "/no-such-file").status, 404)
        self.assertEqual(self.call("GET", "/api").status, 404, "/api itself is a (missing) file")


class MetricsOpenTests(unittest.TestCase):
    """--metrics-open: /metrics for a scraper without the token; the API
    stays closed."""

    def test_metrics_open(self):
        d, paths = token_dir()
        co = Coordinator(name="auth-metrics", token=TOKEN,
                         extra=["--api-token-file", paths["token"], "--metrics-open"])
        try:
            co.start()
            r = co.get("/metrics", token=None)
            self.assertEqual(r.status, 200, r)
            self.assertIn(b"replicacao_cluster_has_primary", r.body)
            self.assertEqual(co.get("/api/cluster", token=None).status, 401)
            self.assertEqual(co.get("/api/cluster").status, 200)
        finally:
            problems = co.stop(check=False)
            co.cleanup(keep=bool(problems))
            shutil.rmtree(d, ignore_errors=True)
        self.assertEqual(problems, [])


class RefusedStartTests(unittest.TestCase):
    """A coordinator told to require a token it cannot read never starts."""

    def test_refused(self):
        if not Config.coordinator:
            raise unittest.SkipTest("coordinator binary not given")
        d, paths = token_dir()
        try:
            empty = os.path.join(d, "empty")
            with open(empty, "w") as f:
                f.write(" \n\n")
            cases = [(["--api-token-file", os.path.join(d, "missing")], "cannot read"),
                     (["--api-token-file", empty], "is empty"),
                     (["--api-read-token-file", paths["read"]], "needs --api-token-file"),
                     (["--tls-cert", paths["token"]], "go together"),
                     (["--tls-cert", paths["token"], "--tls-key", paths["token"]],
                      "certificate")]
            for args, says in cases:
                p = subprocess.run([Config.coordinator, "--spawn", "3", "--data-dir",
                                    os.path.join(d, "data"), "--listen", "127.0.0.1:1"] + args,
                                   capture_output=True, text=True, timeout=10)
                self.assertEqual(p.returncode, 2, f"{args}: {p.stderr}")
                self.assertIn(says, p.stderr, args)
                self.assertFalse(os.path.exists(os.path.join(d, "data")), "it started something")
        finally:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
