"""The live stream at /api/ws: snapshot first, events as they happen,
failover timing, event-to-WebSocket latency, and a stalled client that
must not slow anybody else down."""
import fcntl
import struct
import termios
import time
import unittest
import uuid

from harness import Coordinator, CoordinatorTestCase, WebSocket, figure, ms, percentile

EVENT_FIELDS = {"type": str, "replica": str, "replica_name": str, "subject": str,
                "subject_name": str, "epoch": (int, float),
                "index": (int, float), "time_ms": (int, float), "detail": str}


def ws_clients_metric(co):
    for line in co.get("/metrics").body.decode().splitlines():
        if line.startswith("replicacao_websocket_clients "):
            return int(float(line.split()[1]))
    return None


def server_tx_queue(server_port, client_port):
    """Bytes the server has queued towards a client (/proc/net/tcp)."""
    want_local, want_remote = f"{server_port:04X}", f"{client_port:04X}"
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            p = line.split()
            if p[1].endswith(":" + want_local) and p[2].endswith(":" + want_remote):
                tx, _rx = p[4].split(":")
                return int(tx, 16)
    return None


def rx_pending(sock):
    buf = fcntl.ioctl(sock.fileno(), termios.FIONREAD, struct.pack("i", 0))
    return struct.unpack("i", buf)[0]


class WebSocketTests(CoordinatorTestCase):
    coordinator_name = "ws"

    def setUp(self):
        self.sockets = []

    def tearDown(self):
        for ws in self.sockets:
            ws.close()

    def ws(self, **kw):
        w = WebSocket(self.port, **kw)
        self.sockets.append(w)
        return w

    def post(self, data, rid=None):
        rid = rid or f"ws-{uuid.uuid4().hex[:12]}"
        r = self.co.post("/api/requests", {"data": data, "id": rid})
        self.assertEqual(r.status, 201, r)
        return r

    def check_event(self, ev):
        for k, t in EVENT_FIELDS.items():
            self.assertIn(k, ev, f"event lacks {k!r}: {ev}")
            self.assertIsInstance(ev[k], t, f"event {k}: {ev}")

    # ---------------------------------------------------------------------
    def test_snapshot_first(self):
        self.co.wait_converged()
        ws = self.ws()
        _t, msg = ws.next(timeout=5)
        self.assertIsInstance(msg, dict, msg)
        self.assertEqual(msg.get("type"), "cluster", f"first message: {str(msg)[:300]}")
        c = msg["cluster"]
        for k in ("epoch", "primary", "commit_index", "replicas"):
            self.assertIn(k, c)
        self.assertEqual([r["id"] for r in c["replicas"]], ["r1", "r2", "r3"])
        for r in c["replicas"]:
            for k in ("id", "name", "address", "role", "status", "epoch", "last_index",
                      "commit_index", "lag", "heartbeat_age_ms", "processed", "synced", "voter"):
                self.assertIn(k, r)
        self.assertEqual(c["primary"], self.co.cluster()["primary"])
        self.assertEqual(ws.protocol_errors, [])

    def test_every_client_gets_every_event(self):
        a, b = self.ws(), self.ws()
        a.next(timeout=5)
        b.next(timeout=5)
        r = self.post("to both")
        rid = r.json["id"]
        for w in (a, b):
            _t, ev = w.wait_event(lambda e: e["type"] == "request_committed"
                                  and e.get("request", {}).get("id") == rid, timeout=5,
                                  what=f"request_committed for {rid}")
            self.check_event(ev)
            self.assertEqual(ev["index"], r.json["index"])
            self.assertEqual(ev["request"]["index"], r.json["index"])
            self.assertEqual(ev["request"]["data"], "to both")
            self.assertEqual(ev["replica"], r.json["primary"])

    def test_close_handshake(self):
        base = ws_clients_metric(self.co)
        w = WebSocket(self.port)
        w.next(timeout=5)
        self.co.wait_for(lambda c: ws_clients_metric(self.co) == base + 1, 5, "websocket_clients + 1")
        w.send_frame(0x8, struct.pack("!H", 1000))
        self.assertTrue(w.closed.wait(5), "server did not end the connection after a close frame")
        self.assertIsNotNone(w.close_frame, "server did not answer the close frame with one")
        w.close()
        self.co.wait_for(lambda c: ws_clients_metric(self.co) == base, 5, "websocket_clients back")

    def test_failover_elected_event(self):
        ws = self.ws()
        ws.next(timeout=5)
        results = []
        for round_ in range(3):
            c = self.co.wait_converged(timeout=15)
            old = c["primary"]
            ws.drain()
            t0 = time.monotonic()
            r = self.co.post("/api/primary/fail")
            self.assertEqual(r.status, 202, r)
            self.assertEqual(r.json["failed"], old)
            seen_failed = []

            def elected(e):
                if e["type"] in ("failed", "down") and e["replica"] == old:
                    seen_failed.append(e)
                return e["type"] == "elected" and e["replica"] != old
            t, ev = ws.wait_event(elected, timeout=10, what="elected event for a new primary")
            self.check_event(ev)
            self.assertTrue(seen_failed, f"no failed/down event for {old} before the election")
            self.assertEqual(seen_failed[0]["type"], "failed", seen_failed[0])
            self.assertGreater(ev["epoch"], c["epoch"])
            self.assertIn("failover_ms", ev, f"elected after a failure carries failover_ms: {ev}")
            self.assertIsInstance(ev["failover_ms"], (int, float))
            self.assertGreaterEqual(ev["failover_ms"], 0)
            self.assertLess(ev["failover_ms"], 5000)
            results.append((t - t0, ev["failover_ms"], old, ev["replica"]))
        for i, (dt, fo, old, new) in enumerate(results):
            figure("websocket", f"failover {i + 1} ({old} -> {new}): POST fail -> elected on WS",
                   f"{ms(dt)} (failover_ms {fo})")
        dts = [r[0] for r in results]
        figure("websocket", "failover (fail call -> elected event) median", ms(percentile(dts, 50)))

    def test_event_latency(self):
        ws = self.ws()
        ws.next(timeout=5)
        self.co.wait_converged(timeout=15)
        ws.drain()
        sent = []  # (id, http receive time, index)
        for i in range(50):
            r = self.post(f"latency {i}")
            sent.append((r.json["id"], r.received, r.json["index"]))
        time.sleep(0.5)
        msgs = ws.drain()
        rc, committed = {}, []
        for t, m in msgs:
            if not isinstance(m, dict) or m.get("type") != "event":
                continue
            e = m["event"]
            if e["type"] == "request_committed":
                rc.setdefault(e["request"]["id"], (t, e))
            elif e["type"] == "committed":
                committed.append((t, e["index"]))
        missing = [s[0] for s in sent if s[0] not in rc]
        self.assertEqual(missing, [], "request_committed events missing on the WebSocket")
        d_rc = []
        d_c = []
        for rid, t_http, index in sent:
            t_ws, e = rc[rid]
            self.assertEqual(e["index"], index)
            d_rc.append(t_ws - t_http)
            firsts = [t for t, idx in committed if idx >= index]
            if firsts:
                d_c.append(min(firsts) - t_http)
        figure("websocket", "request_committed: ws_receive - http_201 (50 sequential) median",
               ms(percentile(d_rc, 50)))
        figure("websocket", "request_committed: ws_receive - http_201 p99", ms(percentile(d_rc, 99)))
        figure("websocket", "request_committed: ws_receive - http_201 min/max",
               f"{ms(min(d_rc))} / {ms(max(d_rc))}")
        if d_c:
            figure("websocket", f"committed (coalesced, {len(committed)} events for 50 requests): "
                   "ws_receive - http_201 median / p99",
                   f"{ms(percentile(d_c, 50))} / {ms(percentile(d_c, 99))}")
        self.assertLess(percentile(d_rc, 99), 0.5, "events reach the WebSocket within 500 ms")

    # ---------------------------------------------------------------------
    def _measure(self, live, n, tag):
        """n sequential small POSTs: their latencies and the live client's
        event delay (ws receive - http receive) for each."""
        live.drain()
        post_lat, ids = [], []
        for i in range(n):
            t0 = time.monotonic()
            r = self.post(f"{tag} {i}")
            post_lat.append(r.received - t0)
            ids.append((r.json["id"], r.received))
        want = {i for i, _ in ids}
        got = {}
        deadline = time.monotonic() + 10
        while want - set(got) and time.monotonic() < deadline:
            try:
                t, m = live.messages.get(timeout=0.2)
            except Exception:
                continue
            if isinstance(m, dict) and m.get("type") == "event" and m["event"]["type"] == "request_committed":
                got.setdefault(m["event"]["request"]["id"], t)
        self.assertEqual(want - set(got), set(), f"{tag}: live client missed events")
        delay = [got[i] - t for i, t in ids]
        return post_lat, delay

    def test_stalled_client_does_not_slow_others(self):
        live = self.ws()
        live.next(timeout=5)
        self.co.wait_converged(timeout=15)
        base_post, base_delay = self._measure(live, 30, "baseline")

        stalled = self.ws(read=False, rcvbuf=4096)
        client_port = stalled.sock.getsockname()[1]
        # Big events fill every buffer between the server and the stalled
        # client: each request's data is echoed in request_sent and
        # request_committed.
        big = "B" * (512 * 1024)
        t0 = time.monotonic()
        last = None
        for i in range(12):
            last = self.post(big + str(i))
        big_time = time.monotonic() - t0
        live.wait_event(lambda e: e["type"] == "request_committed"
                        and e.get("request", {}).get("id") == last.json["id"], timeout=30,
                        what="the last big event on the live client")
        time.sleep(0.3)
        tx = server_tx_queue(self.port, client_port)
        rx = rx_pending(stalled.sock)
        figure("websocket", "stalled client: bytes stuck (server send queue / client receive queue)",
               f"{tx} / {rx} after {12 * 2 * len(big) // 1024} KiB of events")
        self.assertIsNotNone(tx, "no server socket towards the stalled client in /proc/net/tcp")
        self.assertGreater(tx + rx, 64 * 1024, "the stalled client did not fill its buffers")

        stall_post, stall_delay = self._measure(live, 30, "stalled")
        self.assertFalse(live.closed.is_set(), "the live client was disconnected")
        figure("websocket", "POST latency p50/p99, baseline vs with a stalled client",
               f"{ms(percentile(base_post, 50))}/{ms(percentile(base_post, 99))} vs "
               f"{ms(percentile(stall_post, 50))}/{ms(percentile(stall_post, 99))}")
        figure("websocket", "live client event delay p50/p99, baseline vs with a stalled client",
               f"{ms(percentile(base_delay, 50))}/{ms(percentile(base_delay, 99))} vs "
               f"{ms(percentile(stall_delay, 50))}/{ms(percentile(stall_delay, 99))}")
        figure("websocket", "12 x 512 KiB POSTs with a stalled client", ms(big_time))
        self.assertLess(percentile(stall_post, 99), 0.5, "POSTs slowed down by a stalled client")
        self.assertLess(percentile(stall_delay, 99), 0.5, "live events delayed by a stalled client")
        self.assertTrue(self.co.get("/healthz").status == 200)

        # Dropping the stalled client frees its slot.
        before = ws_clients_metric(self.co)
        stalled.sock.close()
        self.sockets.remove(stalled)
        self.co.wait_for(lambda c: ws_clients_metric(self.co) == before - 1, 10,
                         "the stalled client's slot to be freed after it disconnected")


class StalledShutdownTests(unittest.TestCase):
    """A client that stalls must not keep the coordinator from stopping."""

    def test_sigterm_with_stalled_client(self):
        co = Coordinator(name="wsstop")
        co.start()
        stalled = None
        try:
            stalled = WebSocket(co.port, read=False, rcvbuf=4096)
            for i in range(8):
                r = co.post("/api/requests", {"data": "S" * (512 * 1024)})
                self.assertEqual(r.status, 201, r)
            time.sleep(0.5)
            t0 = time.monotonic()
            problems = co.stop(check=False)
            took = time.monotonic() - t0
            figure("websocket", "SIGTERM -> exit with a stalled WebSocket client", ms(took))
            self.assertEqual(problems, [], co.log_tail())
        finally:
            if stalled:
                stalled.sock.close()
            co.stop(check=False)
            co.cleanup()


if __name__ == "__main__":
    unittest.main()
