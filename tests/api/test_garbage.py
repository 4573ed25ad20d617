"""Garbage on the coordinator's port: junk bytes, huge headers, half
requests held open (slowloris), broken WebSocket frames. The coordinator
must keep serving normal requests meanwhile and never crash."""
import os
import re
import socket
import struct
import threading
import time
import unittest
import uuid

from harness import CoordinatorTestCase, WebSocket, figure, ms, percentile


class GarbageTests(CoordinatorTestCase):
    coordinator_name = "garbage"

    def connect(self, timeout=5):
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def exchange(self, payload, read_for=3.0):
        """Send payload (errors ignored: the server may hang up first), then
        read until the server closes or read_for passes."""
        s = self.connect()
        out = b""
        try:
            try:
                s.sendall(payload)
            except OSError:
                pass
            deadline = time.monotonic() + read_for
            s.settimeout(0.2)
            while time.monotonic() < deadline:
                try:
                    chunk = s.recv(65536)
                except socket.timeout:
                    continue
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
        finally:
            s.close()
        return out

    def assertServing(self, what, max_s=1.0):
        """The coordinator is alive and answers a health check and a write."""
        self.assertTrue(self.co.alive(), f"coordinator died after {what}\n{self.co.log_tail()}")
        t0 = time.monotonic()
        self.assertEqual(self.co.get("/healthz", timeout=10).status, 200, what)
        r = self.co.post("/api/requests", {"data": f"after {what}", "id": f"g-{uuid.uuid4().hex[:10]}"},
                         timeout=10)
        took = time.monotonic() - t0
        self.assertEqual(r.status, 201, f"after {what}: {r}")
        self.assertLess(took, max_s, f"after {what}: healthz + POST took {took:.3f} s")
        return took

    # ---------------------------------------------------------------------
    def test_junk_bytes(self):
        payloads = [os.urandom(4096), b"\x00" * 1024, b"\r\n" * 500,
                    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(200),  # a TLS hello
                    b"GARBAGE / NOTHTTP/9.9\r\n\r\n", b"GET\r\n\r\n", b"GET / HTTP/1.1\r\n\r\n\x00\xff",
                    b"POST /api/requests HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
                    b"POST /api/requests HTTP/1.1\r\nContent-Length: abc\r\n\r\n{}",
                    b"POST /api/requests HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n{}",
                    b"POST /api/requests HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                    b"GET /api/cluster HTTP/1.1\r\nHost: x\r\nHost: y\r\n" + b"X: \xff\xfe\r\n\r\n",
                    b"GET /api/replicas/%00%ff HTTP/1.1\r\nHost: x\r\n\r\n",
                    b"GET /api/requests?after=%zz&limit=%00 HTTP/1.1\r\nHost: x\r\n\r\n"]
        for p in payloads:
            out = self.exchange(p, read_for=1.0)
            if out:
                # (civetweb echoes the client's version: "HTTP/NOTHTTP/9.9 400")
                m = re.match(rb"HTTP/\S+ (\d{3}) ", out)
                self.assertIsNotNone(m, f"{p[:40]!r} -> {out[:100]!r}")
                status = int(m.group(1))
                self.assertNotEqual(status // 100, 5, f"{p[:40]!r} -> {out[:200]!r}")
            self.assertTrue(self.co.alive(), f"died on {p[:60]!r}")
        self.assertServing("junk bytes")

    def test_truncated_body(self):
        # Claims 1000 bytes, sends 12, hangs up.
        s = self.connect()
        s.sendall(b"POST /api/requests HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"data\":\"ab")
        s.close()
        self.assertServing("a truncated body")

    def test_huge_header(self):
        t0 = time.monotonic()
        big = b"GET /api/cluster HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (4 << 20) + b"\r\n\r\n"
        out = self.exchange(big, read_for=5)
        if out:
            status = int(out.split(b" ", 2)[1])
            self.assertIn(status, (400, 413, 414, 431), out[:200])
        many = b"GET /api/cluster HTTP/1.1\r\nHost: x\r\n" + b"".join(
            b"X-H%d: v\r\n" % i for i in range(20000)) + b"\r\n"
        out = self.exchange(many, read_for=5)
        if out:
            self.assertNotEqual(int(out.split(b" ", 2)[1]) // 100, 2, out[:200])
        uri = b"GET /api/requests?" + b"x" * (1 << 20) + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        self.exchange(uri, read_for=5)
        figure("garbage", "4 MiB header + 20000 headers + 1 MiB URI handled in", ms(time.monotonic() - t0))
        self.assertServing("huge headers")

    def test_slowloris(self):
        """Half requests trickling in slowly; normal traffic goes on."""
        stop = threading.Event()
        socks = []
        starts = [b"GET /api/cluster HTTP/1.1\r\nHost: x\r\n",
                  b"POST /api/requests HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n{\"data\":\"",
                  b"GET /api/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n",
                  b"G"]
        for i in range(16):
            s = self.connect()
            s.sendall(starts[i % len(starts)])
            socks.append(s)

        def trickle():
            n = 0
            while not stop.wait(0.25):
                for s in socks:
                    try:
                        s.sendall(b"X-%d: y\r\n" % n if n % 2 else b"a")
                    except OSError:
                        pass
                n += 1
        th = threading.Thread(target=trickle, daemon=True)
        th.start()
        lat = []
        try:
            t_end = time.monotonic() + 4
            while time.monotonic() < t_end:
                t0 = time.monotonic()
                r = self.co.post("/api/requests", {"data": "during slowloris"}, timeout=10)
                lat.append(time.monotonic() - t0)
                self.assertEqual(r.status, 201, r)
                self.assertEqual(self.co.get("/api/cluster", timeout=10).status, 200)
                time.sleep(0.05)
        finally:
            stop.set()
            th.join()
            for s in socks:
                s.close()
        figure("garbage", f"POST latency during 16 slowloris connections ({len(lat)} requests) p50/p99",
               f"{ms(percentile(lat, 50))} / {ms(percentile(lat, 99))}")
        self.assertLess(percentile(lat, 99), 1.0)
        self.assertServing("slowloris")

    def test_idle_connections_beyond_worker_threads(self):
        """Informational: civetweb gives each connection a worker thread (64
        here); idle connections beyond that delay everyone. Measured, and
        only asserted to recover once they are gone."""
        socks = []
        try:
            for _ in range(70):
                socks.append(self.connect())
            time.sleep(0.3)
            t0 = time.monotonic()
            try:
                status = self.co.get("/healthz", timeout=30).status
            except OSError as e:
                status = f"error {e}"
            took = time.monotonic() - t0
            figure("garbage", "GET /healthz with 70 idle connections open (64 worker threads)",
                   f"{ms(took)} (status {status})")
        finally:
            for s in socks:
                s.close()
        self.assertServing("70 idle connections", max_s=20)

    def test_websocket_garbage(self):
        good = WebSocket(self.port)
        good.next(timeout=5)
        # Valid frames with junk content: ignored, the connection stays.
        junk = WebSocket(self.port)
        junk.next(timeout=5)
        junk.send_text("not json {{{")
        junk.send_frame(0x2, os.urandom(1000))
        junk.send_frame(0x9, b"ping from client")
        # An unmasked client frame: RFC 6455 says the server MUST close;
        # civetweb 1.15 accepts it. Reported, not asserted (library behaviour).
        unmasked = WebSocket(self.port)
        unmasked.sock.sendall(b"\x81\x05hello")
        # Protocol violations: each must end only that connection.
        bad = []
        huge = WebSocket(self.port)
        huge.sock.sendall(b"\x82\xff" + struct.pack("!Q", 1 << 62) + os.urandom(4) + b"x" * 100)
        bad.append(huge)
        # Deterministic garbage: random bytes may happen to declare a small
        # valid-looking frame and leave the server (rightly) waiting for the
        # rest. 0xFF... sets the reserved bits, a reserved opcode and an
        # impossible 64-bit length: a violation however it is read.
        raw = WebSocket(self.port)
        raw.sock.sendall(b"\xff" * 5000)
        bad.append(raw)
        rid = f"wsg-{uuid.uuid4().hex[:10]}"
        r = self.co.post("/api/requests", {"data": "after ws garbage", "id": rid})
        self.assertEqual(r.status, 201, r)
        for w in (good, junk):
            w.wait_event(lambda e: e["type"] == "request_committed" and e.get("request", {}).get("id") == rid,
                         timeout=5, what="event after WebSocket garbage")
        self.assertFalse(junk.closed.is_set())
        for w in bad:
            self.assertTrue(w.closed.wait(10), "a WebSocket protocol violation did not end its connection")
        figure("garbage", "unmasked client WebSocket frame (RFC 6455: server MUST close)",
               "connection closed" if unmasked.closed.wait(1) else "accepted, connection left open (civetweb)")
        for w in bad + [good, junk, unmasked]:
            w.close()
        self.assertServing("WebSocket garbage")


if __name__ == "__main__":
    unittest.main()
