"""The fault lab takes a replica's display name where an id is expected
(docs/api.md, "The fault lab"): compose and Swarm users see names such as
replicacao_replica_2, not ids. --spawn gives every replica its id as its
name, so this module starts its own three replicas (names alpha, dup, dup)
and a coordinator with --replicas, all on loopback, and stops them by pid."""
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from harness import Config, HOST, _die_with_parent, free_port, free_port_range, http_request

NAMES = {"n1": "alpha", "n2": "dup", "n3": "dup"}


class FaultNameTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not Config.coordinator or not Config.replica:
            raise unittest.SkipTest("coordinator/replica binaries not given")
        cls.tmp = tempfile.mkdtemp(prefix="replicacao-fault-names-")
        cls.procs = []
        cls.port = free_port()
        base = free_port_range(3, avoid=(cls.port,))
        addrs = [f"{HOST}:{base + i}" for i in range(3)]
        peers = ",".join(addrs)
        try:
            for (rid, name), addr in zip(sorted(NAMES.items()), addrs):
                cls.spawn(rid, [Config.replica, "--id", rid, "--name", name, "--listen", addr,
                                "--advertise", addr, "--peers", peers,
                                "--data-dir", os.path.join(cls.tmp, rid)])
            cls.spawn("coordinator", [Config.coordinator, "--listen", f"{HOST}:{cls.port}",
                                      "--replicas", peers])
            cls.wait_for(lambda c: c.get("primary") and
                         sorted((r["id"], r["name"]) for r in c["replicas"]) ==
                         sorted(NAMES.items()), "a primary and every replica's name")
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def spawn(cls, what, args):
        log = open(os.path.join(cls.tmp, what + ".log"), "ab")
        cls.procs.append(subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT,
                                          preexec_fn=_die_with_parent))
        log.close()

    @classmethod
    def tearDownClass(cls):
        for p in cls.procs:
            p.send_signal(signal.SIGTERM)
        for p in cls.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def cluster(cls):
        try:
            r = http_request(cls.port, "GET", "/api/cluster")
        except OSError:
            return {}  # not listening yet
        return r.json if r.status == 200 else {}

    @classmethod
    def wait_for(cls, pred, what, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            c = cls.cluster()
            if c and pred(c):
                return c
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}: {cls.cluster()}")

    def post(self, body):
        return http_request(self.port, "POST", "/api/faults", body)

    def tearDown(self):
        http_request(self.port, "DELETE", "/api/faults")

    def test_a_unique_name_stands_for_its_id(self):
        r = self.post({"kind": "isolate", "replica": "alpha"})
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["replica"], "n1", "the fault lists the id")
        listed = http_request(self.port, "GET", "/api/faults").json["faults"]
        self.assertEqual([f["replica"] for f in listed], ["n1"])
        # Carried out by that replica: a rule per peer.
        self.wait_for(lambda c: next(x for x in c["replicas"] if x["id"] == "n1")
                      ["fault_rules"] == 2, "n1 to carry out the isolation")
        r = self.post({"kind": "partition", "groups": [["alpha"], ["n2", "n3"]]})
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["groups"], [["n1"], ["n2", "n3"]])

    def test_a_shared_name_is_refused(self):
        r = self.post({"kind": "pause", "replica": "dup", "ms": 1000})
        self.assertEqual(r.status, 400, r)
        self.assertEqual(r.json["error"]["code"], "bad_request")
        self.assertIn("several replicas are named dup", r.json["error"]["message"])

    def test_one_replica_named_twice_is_refused(self):
        r = self.post({"kind": "link", "between": ["alpha", "n1"], "loss": 0.5})
        self.assertEqual(r.status, 400, r)
        self.assertIn("n1 is named twice", r.json["error"]["message"])

    def test_an_unknown_name_is_404(self):
        r = self.post({"kind": "isolate", "replica": "nobody"})
        self.assertEqual(r.status, 404, r)
        self.assertEqual(r.json["error"]["code"], "unknown_replica")
        self.assertIn("no replica with id or name nobody", r.json["error"]["message"])
        self.assertEqual(http_request(self.port, "GET", "/api/faults").json["faults"], [])


if __name__ == "__main__":
    unittest.main()
