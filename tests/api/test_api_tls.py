"""HTTPS (--tls-cert, --tls-key) with the API token: a self-signed pair made
at test time; every essential call over TLS, verified against that
certificate, the WebSocket over TLS (wss) receiving an event; plain HTTP on
the same port gets no answer."""
import http.client as httpclient
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import unittest
import uuid

from harness import HOST, Coordinator, CoordinatorTestCase, WebSocket, http_request

TOKEN = "tls-" + uuid.uuid4().hex


def make_pair(d):
    """A self-signed certificate for 127.0.0.1 and its key, in d."""
    if shutil.which("openssl") is None:
        raise unittest.SkipTest("openssl (the command) is not installed")
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", cert],
                   check=True, capture_output=True, timeout=60)
    return cert, key


class TlsTests(CoordinatorTestCase):
    coordinator_name = "tls"

    @classmethod
    def make_coordinator(cls):
        cls.dir = tempfile.mkdtemp(prefix="replicacao-tls-")
        cls.cert, key = make_pair(cls.dir)
        token = os.path.join(cls.dir, "token")
        with open(token, "w", encoding="ascii") as f:
            f.write(TOKEN + "\n")
        cls.ctx = ssl.create_default_context(cafile=cls.cert)
        return Coordinator(name=cls.coordinator_name, token=TOKEN, ssl_context=cls.ctx,
                           extra=["--api-token-file", token, "--tls-cert", cls.cert,
                                  "--tls-key", key])

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)
        super().tearDownClass()

    def test_api_over_tls(self):
        c = self.co.wait_primary(all_up=True)
        self.assertEqual(len(c["replicas"]), 3)
        data = "tls-" + uuid.uuid4().hex
        r = self.co.post("/api/requests", {"data": data, "id": data})
        self.assertEqual(r.status, 201, r)
        index = r.json["index"]
        r = self.co.get(f"/api/requests?after={index - 1}&limit=1")
        self.assertEqual(r.status, 200, r)
        self.assertEqual([e["data"] for e in r.json["entries"]], [data])
        self.assertEqual(self.co.get("/api/cluster", token=None).status, 401)
        self.assertEqual(self.co.get("/livez", token=None).status, 200)
        self.assertEqual(self.co.get("/", token=None).status, 200)

    def test_websocket_over_tls(self):
        self.co.wait_primary(all_up=True)
        ws = WebSocket(self.port, path=f"/api/ws?token={TOKEN}", ssl_context=self.ctx)
        try:
            self.assertEqual(ws.next_frame(timeout=5).get("type"), "cluster")
            data = "wss-" + uuid.uuid4().hex
            self.assertEqual(self.co.post("/api/requests", {"data": data, "id": data}).status, 201)
            for _ in range(200):
                m = ws.next_frame(timeout=5)
                ev = m.get("event") if m.get("type") == "event" else None
                if ev and ev["type"] == "request_committed" and \
                        ev.get("request", {}).get("id") == data:
                    self.assertEqual(ev["request"]["data"], data)
                    break
            else:
                self.fail("no request_committed event for the write over wss")
        finally:
            ws.close()
        with self.assertRaises(ConnectionError, msg="wss without the token"):
            WebSocket(self.port, ssl_context=self.ctx).close()

    def test_certificate_is_checked(self):
        """Python's default trust store does not know our self-signed
        certificate: the handshake really is TLS with it."""
        with self.assertRaises(ssl.SSLCertVerificationError):
            http_request(self.port, "GET", "/livez", ssl_context=ssl.create_default_context())

    def test_plain_http_gets_nothing(self):
        try:
            r = http_request(self.port, "GET", "/api/cluster", token=TOKEN, timeout=5)
        except (OSError, httpclient.HTTPException):
            r = None
        self.assertIsNone(r, "plain HTTP answered on the TLS port")
        # And a raw request line: no HTTP status line comes back.
        with socket.create_connection((HOST, self.port), timeout=5) as s:
            s.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                got = s.recv(100)
            except OSError:
                got = b""
        self.assertFalse(got.startswith(b"HTTP/"), got)


if __name__ == "__main__":
    unittest.main()
