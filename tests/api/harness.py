"""Shared pieces of the coordinator API tests (standard library only).

- Config: binary paths and the figures file, set by run.py from ctest's
  command line (or API_* environment variables when a module is run alone).
- Coordinator: one `coordinator --spawn 3` on free loopback ports with a
  fresh data dir; stopped by pid (SIGTERM, then SIGKILL after a timeout),
  and afterwards no replica whose command line names that data dir may
  survive.
- http_request(): one request on a fresh connection, parsed; optionally
  with an API token (Authorization: Bearer) and over TLS (an ssl context).
- WebSocket: a small RFC 6455 client on a socket (masked frames out,
  unmasked frames in, pings answered with masked pongs), with a reader
  thread that timestamps every message with time.monotonic().
- figure(): a measured number, printed and appended to the figures file
  that the api_summary test prints at the end of the run.
"""
import base64
import ctypes
import hashlib
import http.client as httpclient
import json
import os
import queue
import random
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import unittest

HOST = "127.0.0.1"


class Config:
    coordinator = os.environ.get("API_COORDINATOR_BIN", "")
    replica = os.environ.get("API_REPLICA_BIN", "")
    dashboard_dir = os.environ.get("API_DASHBOARD_DIR", "")
    figures = os.environ.get("API_FIGURES", "")


# ---------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------

def figure(test, name, value):
    """Print a measured figure and keep it for the end-of-run summary."""
    line = f"[figure] {test}: {name} = {value}"
    print(line, flush=True)
    if Config.figures:
        with open(Config.figures, "a", encoding="utf-8") as f:
            f.write(json.dumps({"test": test, "name": name, "value": str(value)}) + "\n")


def percentile(values, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def ms(seconds):
    return f"{seconds * 1000.0:.2f} ms"


# ---------------------------------------------------------------------------
# Ports
# ---------------------------------------------------------------------------

def _bindable(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((HOST, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_port():
    """A free loopback port, chosen by the kernel (bind to port 0)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def free_port_range(n, avoid=()):
    """n consecutive free loopback ports, below the ephemeral range so an
    outgoing connection cannot take one between the probe and the spawn."""
    rng = random.Random(os.getpid() ^ int(time.time() * 1000))
    for _ in range(200):
        base = rng.randrange(20000, 32000 - n)
        ports = range(base, base + n)
        if any(p in avoid for p in ports):
            continue
        if all(_bindable(p) for p in ports):
            return base
    raise RuntimeError("no free port range found")


# ---------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------

class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # dict, lower-case names
        self.body = body
        self.received = time.monotonic()
        self._json = None

    @property
    def json(self):
        if self._json is None:
            self._json = json.loads(self.body.decode("utf-8"))
        return self._json

    def __repr__(self):
        return f"<{self.status} {self.body[:300]!r}>"


def http_request(port, method, path, body=None, headers=None, timeout=30, token=None,
                 ssl_context=None):
    """One request on its own connection. body: bytes, str or a JSON value.
    token: sent as Authorization: Bearer (headers given win); ssl_context:
    HTTPS, verified with that context."""
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode("utf-8")
    h = {"Connection": "close"}
    if body is not None:
        h["Content-Type"] = "application/json"
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    h.update(headers or {})
    if ssl_context is not None:
        conn = httpclient.HTTPSConnection(HOST, port, timeout=timeout, context=ssl_context)
    else:
        conn = httpclient.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        data = r.read()
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
    finally:
        conn.close()


# ---------------------------------------------------------------------------
# The coordinator under test
# ---------------------------------------------------------------------------

def processes_with(needle):
    """(pid, cmdline) of live processes whose command line contains needle."""
    found = []
    me = os.getpid()
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == me:
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")
            with open(f"/proc/{d}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        state = stat[stat.rfind(b")") + 2:][:1]
        if state == b"Z":
            continue
        args = [a.decode("utf-8", "replace") for a in cmd if a]
        if any(needle in a for a in args):
            found.append((int(d), " ".join(args)))
    return found


def _die_with_parent():
    """In the child before exec: SIGTERM when the test process dies (a
    ctest timeout, ^C), so the coordinator still stops its replicas."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Coordinator:
    """`coordinator --spawn 3` on loopback with a fresh temp data dir.
    token: the API token its own calls send (for a coordinator started with
    --api-token-file); ssl_context: it serves HTTPS (--tls-cert)."""

    def __init__(self, n=3, extra=(), name="api", token=None, ssl_context=None):
        if not Config.coordinator or not Config.replica:
            raise unittest.SkipTest("coordinator/replica binaries not given")
        self.n = n
        self.extra = list(extra)
        self.token = token
        self.ssl_context = ssl_context
        self.tmp = tempfile.mkdtemp(prefix=f"replicacao-{name}-")
        self.data_dir = os.path.join(self.tmp, "data")
        # --spawn makes the cluster's secret here (what replctl must prove).
        self.secret_file = os.path.join(self.data_dir, "cluster-secret")
        self.log_path = os.path.join(self.tmp, "coordinator.log")
        self.proc = None
        self.port = None
        self.base_port = None
        self.needed_sigkill = False

    # -- life cycle -------------------------------------------------------
    def start(self, timeout=20):
        last = None
        for _attempt in range(3):
            self.port = free_port()
            self.base_port = free_port_range(self.n, avoid=(self.port,))
            args = [Config.coordinator,
                    "--listen", f"{HOST}:{self.port}",
                    "--spawn", str(self.n),
                    "--spawn-base-port", str(self.base_port),
                    "--data-dir", self.data_dir,
                    "--replica-bin", Config.replica]
            if Config.dashboard_dir:
                args += ["--dashboard-dir", Config.dashboard_dir]
            args += self.extra
            self.log = open(self.log_path, "ab")
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self.log,
                                         stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
            try:
                self.wait_primary(timeout=timeout, all_up=True)
                return self
            except Exception as e:  # port race or slow start: retry on new ports
                last = e
                self.stop(check=False)
                shutil.rmtree(self.data_dir, ignore_errors=True)
        raise AssertionError(f"coordinator did not come up: {last}\n{self.log_tail()}")

    def stop(self, check=True):
        """SIGTERM, wait, SIGKILL after a timeout; then no replica of ours
        may survive. Returns a list of problems (empty when clean)."""
        problems = []
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.needed_sigkill = True
                problems.append(f"coordinator pid {self.proc.pid} ignored SIGTERM for 15 s: SIGKILL")
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc is not None:
            rc = self.proc.returncode
            if rc not in (0, -signal.SIGTERM) and not self.needed_sigkill:
                problems.append(f"coordinator exited with status {rc}")
        # Spawned replicas: children of the coordinator, found by data dir.
        deadline = time.monotonic() + 3
        left = processes_with(self.data_dir)
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = processes_with(self.data_dir)
        for pid, cmd in left:
            problems.append(f"replica survived the coordinator: pid {pid}: {cmd}")
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if getattr(self, "log", None):
            self.log.close()
        if check and problems:
            raise AssertionError("; ".join(problems) + "\n" + self.log_tail())
        return problems

    def cleanup(self, keep=False):
        if keep:
            print(f"(kept {self.tmp} for inspection)")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def log_tail(self, n=40):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
            return "--- coordinator log (tail) ---\n" + "\n".join(lines[-n:])
        except OSError:
            return ""

    def replica_pids(self):
        """{replica id: pid} of the spawned replicas running now."""
        out = {}
        for pid, cmd in processes_with(self.data_dir):
            args = cmd.split()
            if "--id" in args and pid != self.proc.pid:
                out[args[args.index("--id") + 1]] = pid
        return out

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    # -- HTTP helpers ------------------------------------------------------
    def _kw(self, kw):
        kw.setdefault("token", self.token)
        kw.setdefault("ssl_context", self.ssl_context)
        return kw

    def get(self, path, **kw):
        return http_request(self.port, "GET", path, **self._kw(kw))

    def post(self, path, body=None, **kw):
        return http_request(self.port, "POST", path, body=body, **self._kw(kw))

    def request(self, method, path, body=None, **kw):
        return http_request(self.port, method, path, body=body, **self._kw(kw))

    def cluster(self):
        r = self.get("/api/cluster", timeout=10)
        assert r.status == 200, r
        return r.json

    def wait_for(self, pred, timeout, what, interval=0.02):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"coordinator exited ({self.proc.returncode}) while waiting for {what}")
            try:
                last = self.cluster()
                if pred(last):
                    return last
            except (OSError, httpclient.HTTPException, AssertionError, ValueError):
                pass
            time.sleep(interval)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}; last view: {json.dumps(last)[:2000]}")

    def wait_primary(self, timeout=15, all_up=False, not_id=None, min_epoch=0):
        def ok(c):
            if c.get("primary") is None or c.get("primary") == not_id:
                return False
            if c.get("epoch", 0) < min_epoch:
                return False
            if all_up:
                reps = c.get("replicas", [])
                return len(reps) == self.n and all(r["status"] == "up" for r in reps)
            return True
        return self.wait_for(ok, timeout, "a primary" + (" with every replica up" if all_up else ""))

    def wait_converged(self, timeout=15, min_index=0):
        """Every replica up and at the cluster's commit index (and at least
        at min_index: the statuses are polled, so the cluster's own commit
        index may be a poll behind the last acknowledged write)."""
        def ok(c):
            reps = c.get("replicas", [])
            return (c.get("primary") is not None and len(reps) == self.n
                    and all(r["status"] == "up" and r["commit_index"] == c["commit_index"]
                            and r["commit_index"] >= min_index
                            and r["last_index"] >= c["commit_index"] for r in reps))
        return self.wait_for(ok, timeout, "all replicas up and caught up")

    def all_entries(self, page=1000):
        """Every committed entry, paged with after/limit."""
        out = []
        after = 0
        while True:
            r = self.get(f"/api/requests?after={after}&limit={page}", timeout=20)
            assert r.status == 200, r
            entries = r.json["entries"]
            if not entries:
                return out
            out.extend(entries)
            after = entries[-1]["index"]


class CoordinatorTestCase(unittest.TestCase):
    """One coordinator per test class."""

    coordinator_args = ()
    coordinator_name = "api"

    @classmethod
    def make_coordinator(cls):
        """The coordinator the class's tests share (a subclass may give it
        files, a token, TLS)."""
        return Coordinator(extra=cls.coordinator_args, name=cls.coordinator_name)

    @classmethod
    def setUpClass(cls):
        cls.co = cls.make_coordinator()
        try:
            cls.co.start()
        except BaseException:
            cls.co.stop(check=False)
            cls.co.cleanup(keep=True)
            raise
        cls.port = cls.co.port

    @classmethod
    def tearDownClass(cls):
        alive = cls.co.alive()
        problems = cls.co.stop(check=False)
        if not alive:
            problems.insert(0, f"coordinator had died during the tests (status {cls.co.proc.returncode})")
        cls.co.cleanup(keep=bool(problems))
        if problems:
            raise AssertionError("; ".join(problems) + "\n" + cls.co.log_tail())

    # -- assertions ---------------------------------------------------------
    def assertError(self, r, status, code=None, msg=""):
        self.assertEqual(r.status, status, f"{msg} -> {r}")
        self.assertTrue(r.headers.get("content-type", "").startswith("application/json"),
                        f"{msg}: error content type {r.headers.get('content-type')}")
        try:
            body = r.json
        except ValueError:
            self.fail(f"{msg}: error body is not JSON: {r.body[:200]!r}")
        self.assertIsInstance(body, dict, msg)
        self.assertEqual(set(body.keys()), {"error"}, f"{msg}: {body}")
        err = body["error"]
        self.assertIsInstance(err, dict, msg)
        self.assertIsInstance(err.get("code"), str, f"{msg}: {body}")
        self.assertIsInstance(err.get("message"), str, f"{msg}: {body}")
        self.assertTrue(err["code"] and err["message"], f"{msg}: {body}")
        if code is not None:
            self.assertEqual(err["code"], code, f"{msg}: {body}")
        return err


# ---------------------------------------------------------------------------
# WebSocket client
# ---------------------------------------------------------------------------

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class WebSocket:
    """A minimal RFC 6455 client. Messages (text) are queued as
    (monotonic receive time, parsed JSON or raw text) by a reader thread
    unless read=False, in which case nothing is ever read (a stalled
    client)."""

    def __init__(self, port, path="/api/ws", read=True, rcvbuf=None, timeout=10, headers=None,
                 ssl_context=None):
        """headers: extra handshake headers (e.g. Authorization); ssl_context:
        wss, verified with that context (then read=False: one thread at a
        time may use a TLS socket; read with next_frame())."""
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((HOST, port))
        if ssl_context is not None:
            self.sock = ssl_context.wrap_socket(self.sock, server_hostname=HOST)
            read = False
        key = base64.b64encode(os.urandom(16)).decode()
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        scheme = "https" if ssl_context is not None else "http"
        req = (f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               f"Sec-WebSocket-Version: 13\r\nOrigin: {scheme}://{HOST}:{port}\r\n{extra}\r\n")
        self.sock.sendall(req.encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError(f"closed during the WebSocket handshake: {self.buf!r}")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        if not lines[0].startswith("HTTP/1.1 101"):
            raise ConnectionError(f"WebSocket handshake refused: {head!r}")
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        want = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        if headers.get("sec-websocket-accept") != want:
            raise ConnectionError(f"bad Sec-WebSocket-Accept: {headers}")
        self.messages = queue.Queue()
        self.closed = threading.Event()
        self.close_frame = None
        self.pings = 0
        self.protocol_errors = []
        self.send_lock = threading.Lock()
        self.reader = None
        if read:
            self.sock.settimeout(None)
            self.reader = threading.Thread(target=self._read_loop, daemon=True)
            self.reader.start()

    # -- frames ----------------------------------------------------------------
    def _recv_exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buf)))
            if not chunk:
                raise ConnectionError("connection closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _read_frame(self):
        b0, b1 = self._recv_exact(2)
        fin, opcode = b0 & 0x80, b0 & 0x0F
        if b0 & 0x70:
            self.protocol_errors.append(f"reserved bits set: {b0:#x}")
        masked, n = b1 & 0x80, b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._recv_exact(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._recv_exact(8))[0]
        if masked:
            self.protocol_errors.append("server frame is masked")
            mask = self._recv_exact(4)
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(self._recv_exact(n)))
        else:
            payload = self._recv_exact(n)
        return bool(fin), opcode, payload

    def send_frame(self, opcode, payload=b"", fin=True):
        mask = os.urandom(4)
        n = len(payload)
        head = bytes([(0x80 if fin else 0) | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        with self.send_lock:
            self.sock.sendall(head + mask + masked)

    def send_text(self, text):
        self.send_frame(0x1, text.encode("utf-8"))

    def _read_loop(self):
        parts = []
        try:
            while True:
                fin, opcode, payload = self._read_frame()
                if opcode == 0x9:  # ping: answer at once, masked
                    self.pings += 1
                    self.send_frame(0xA, payload)
                    continue
                if opcode == 0xA:
                    continue
                if opcode == 0x8:
                    self.close_frame = payload
                    try:
                        self.send_frame(0x8, payload[:2])
                    except OSError:
                        pass
                    break
                if opcode in (0x1, 0x2):
                    parts = [payload]
                elif opcode == 0x0:
                    parts.append(payload)
                else:
                    self.protocol_errors.append(f"unknown opcode {opcode}")
                    continue
                if fin:
                    now = time.monotonic()
                    text = b"".join(parts).decode("utf-8", "replace")
                    parts = []
                    try:
                        msg = json.loads(text)
                    except ValueError:
                        msg = text
                        self.protocol_errors.append(f"message is not JSON: {text[:100]!r}")
                    self.messages.put((now, msg))
        except (OSError, ConnectionError, ValueError):
            pass
        finally:
            self.closed.set()

    # -- reading -----------------------------------------------------------------
    def next_frame(self, timeout=10):
        """Without the reader thread (read=False): the next text message,
        parsed, answering pings on the way."""
        self.sock.settimeout(timeout)
        while True:
            _fin, opcode, payload = self._read_frame()
            if opcode == 0x9:
                self.send_frame(0xA, payload)
            elif opcode == 0x8:
                raise ConnectionError("closed by the server")
            elif opcode == 0x1:
                return json.loads(payload.decode("utf-8"))

    def next(self, timeout=10):
        """(time, message) or raise AssertionError on timeout."""
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no WebSocket message within {timeout} s") from None

    def wait_event(self, pred, timeout=10, what="event"):
        """First event (time, event) matching pred; others are dropped."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no WebSocket {what} within {timeout} s")
            try:
                t, msg = self.messages.get(timeout=left)
            except queue.Empty:
                continue
            if isinstance(msg, dict) and msg.get("type") == "event" and pred(msg["event"]):
                return t, msg["event"]

    def drain(self):
        out = []
        while True:
            try:
                out.append(self.messages.get_nowait())
            except queue.Empty:
                return out

    def close(self):
        try:
            if not self.closed.is_set():
                self.send_frame(0x8, struct.pack("!H", 1000))
        except OSError:
            pass
        if self.reader is not None:
            self.closed.wait(3)
        try:
            self.sock.close()
        except OSError:
            pass
