"""Elastic membership through the coordinator (docs/api.md, "Membership"):
the configuration in GET /api/cluster, DELETE /api/replicas/{id} of a
backup and of the primary under --spawn, POST /api/replicas growing 3 -> 5,
POST /api/replicas/{id}/fail?replace=true, their error cases, and a
coordinator without --spawn.

Every test starts its own `coordinator --spawn 3` (membership changes do
not undo themselves). Figures: DELETE -> configuration settled -> process
gone, POST -> voter, fail?replace -> settled.
"""
import os
import signal
import subprocess
import time
import unittest
import uuid

from harness import Config, Coordinator, HOST, figure, free_port, http_request, ms

SETTLE_S = 30  # generous: a change settles in well under a second here


def uid(prefix="m"):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class MembershipCase(unittest.TestCase):
    name = "membership"

    def setUp(self):
        self.co = Coordinator(n=3, name=self.name)
        try:
            self.co.start()
        except BaseException:
            self.co.stop(check=False)
            self.co.cleanup(keep=True)
            raise
        self.stopped = []  # pids SIGSTOPped by the test: continued in tearDown

    def tearDown(self):
        for pid in self.stopped:
            try:
                os.kill(pid, signal.SIGCONT)
            except OSError:
                pass
        problems = self.co.stop(check=False)
        self.co.cleanup(keep=bool(problems))
        if problems:
            raise AssertionError("; ".join(problems) + "\n" + self.co.log_tail())

    # -- helpers ---------------------------------------------------------------
    def write(self, data="x", timeout=20):
        deadline = time.monotonic() + timeout
        rid = uid("w")
        while True:
            r = self.co.post("/api/requests", {"data": data, "id": rid}, timeout=15)
            if r.status == 201:
                return r.json
            self.assertIn(r.status, (503, 504), r)
            self.assertLess(time.monotonic(), deadline, f"no write committed: {r}")
            time.sleep(0.05)

    def settled(self, ids, timeout=SETTLE_S):
        """Wait until the configuration is exactly `ids`, all voters, all
        up, one of them primary, and the list holds nobody else."""
        want = sorted(ids)

        def ok(c):
            reps = c.get("replicas", [])
            return (sorted(c.get("voters", [])) == want and c.get("learners") == []
                    and sorted(r["id"] for r in reps) == want
                    and all(r["status"] == "up" and r["member"] and r["voter"] for r in reps)
                    and c.get("primary") in want
                    and c.get("quorum") == len(want) // 2 + 1
                    and c.get("reachable_voters") == len(want))
        return self.co.wait_for(ok, timeout, f"the configuration to settle on {want}")

    def wait_gone(self, rid, timeout=SETTLE_S):
        self.co.wait_for(lambda _c: rid not in self.co.replica_pids(), timeout,
                         f"the process of {rid} to end")

    def backups(self, c):
        return [r["id"] for r in c["replicas"] if r["id"] != c["primary"]]


class ConfigurationTests(MembershipCase):
    name = "config"

    def test_cluster_shows_the_configuration(self):
        c = self.settled(["r1", "r2", "r3"])
        self.assertIsInstance(c["cluster_id"], str)
        self.assertTrue(c["cluster_id"], c)
        self.assertIsInstance(c["config_index"], int)
        self.assertGreater(c["config_index"], 0)
        self.assertIs(c["spawn"], True)
        self.assertEqual(c["voters"], ["r1", "r2", "r3"])
        self.assertEqual(c["learners"], [])
        self.assertEqual(c["quorum"], 2)
        self.assertEqual(c["reachable_voters"], 3)
        for r in c["replicas"]:
            self.assertIs(r["member"], True, r)
            self.assertIs(r["voter"], True, r)
            for p in r["peers"]:
                self.assertIsInstance(p["member"], bool, p)
                self.assertIsInstance(p["listed"], bool, p)

    def test_metrics_gauges(self):
        self.settled(["r1", "r2", "r3"])
        text = self.co.get("/metrics").body.decode()
        values = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                k, _, v = line.rpartition(" ")
                values[k] = v
        for name, want in (("replicacao_cluster_voters", "3"), ("replicacao_cluster_learners", "0"),
                           ("replicacao_cluster_quorum", "2"),
                           ("replicacao_cluster_reachable_voters", "3")):
            self.assertEqual(values.get(name), want, f"{name} in /metrics")
            self.assertIn(f"# TYPE {name} gauge", text)
        for rid in ("r1", "r2", "r3"):
            self.assertEqual(values.get(f'replicacao_replica_member{{replica="{rid}"}}'), "1")
        self.assertIn('replicacao_replica_role{replica="r1",role="removed"}', text)
        self.lint(text)

    def lint(self, text):
        """What `promtool check metrics` checks of the structure (promtool
        is not installed here): every family has one HELP and one TYPE
        before its samples, and its samples stand together."""
        seen, current, helped, typed = set(), None, set(), set()
        for line in text.splitlines():
            if line.startswith("# HELP ") or line.startswith("# TYPE "):
                fam = line.split()[2]
                which = helped if line.startswith("# HELP") else typed
                self.assertNotIn(fam, which, f"second {line[:6]} for {fam}")
                which.add(fam)
                if fam != current:
                    self.assertNotIn(fam, seen, f"family {fam} split in two")
                    seen.add(fam)
                    current = fam
                continue
            if not line:
                continue
            name = line.split("{")[0].split(" ")[0]
            fam = next((f for f in (name, name.rsplit("_", 1)[0]) if f in typed), None)
            self.assertEqual(fam, current, f"sample {line!r} outside its family ({current})")

    def test_readyz_and_livez(self):
        self.settled(["r1", "r2", "r3"])
        r = self.co.get("/readyz")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["status"], "ready")
        self.assertEqual(r.json["primary"], self.co.cluster()["primary"])
        r = self.co.get("/livez")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.co.request("HEAD", "/readyz").status, 200)
        self.assertEqual(self.co.request("POST", "/readyz").status, 405)


class RemoveTests(MembershipCase):
    name = "remove"

    def remove(self, rid):
        """DELETE until accepted (a change still committing answers 503)."""
        deadline = time.monotonic() + SETTLE_S
        while True:
            r = self.co.request("DELETE", f"/api/replicas/{rid}", timeout=20)
            if r.status == 202:
                return r
            self.assertEqual(r.status, 503, r)
            self.assertLess(time.monotonic(), deadline, f"DELETE {rid}: {r}")
            time.sleep(0.1)

    def check_removal(self, rid, keep, what):
        before = self.write("before")
        pid = self.co.replica_pids()[rid]
        t0 = time.monotonic()
        r = self.remove(rid)
        t_answer = time.monotonic()
        self.assertEqual(set(r.json), {"removing", "index"}, r.json)
        self.assertEqual(r.json["removing"], rid)
        self.assertIsInstance(r.json["index"], int)
        self.assertGreater(r.json["index"], before["index"])
        c = self.settled(keep)
        t_settled = time.monotonic()
        self.assertNotIn(rid, c["voters"] + c["learners"])
        self.assertGreaterEqual(c["config_index"], r.json["index"])
        self.wait_gone(rid)
        t_gone = time.monotonic()
        with self.assertRaises(ProcessLookupError, msg=f"{rid} (pid {pid}) still runs"):
            os.kill(pid, 0)
        after = self.write("after")
        self.assertGreater(after["index"], r.json["index"])
        self.assertIn(after["primary"], keep)
        # For good: not restarted.
        time.sleep(1.0)
        self.assertNotIn(rid, self.co.replica_pids())
        self.assertNotIn(rid, [x["id"] for x in self.co.cluster()["replicas"]])
        figure("membership", f"DELETE {what}: answer", ms(t_answer - t0))
        figure("membership", f"DELETE {what}: configuration settled", ms(t_settled - t0))
        figure("membership", f"DELETE {what}: process gone", ms(t_gone - t0))
        return c

    def test_delete_backup(self):
        c = self.settled(["r1", "r2", "r3"])
        victim = self.backups(c)[0]
        keep = [x for x in ("r1", "r2", "r3") if x != victim]
        c2 = self.check_removal(victim, keep, "a backup")
        self.assertEqual(c2["primary"], c["primary"], "removing a backup keeps the primary")

    def test_delete_primary(self):
        c = self.settled(["r1", "r2", "r3"])
        victim = c["primary"]
        keep = [x for x in ("r1", "r2", "r3") if x != victim]
        c2 = self.check_removal(victim, keep, "the primary")
        self.assertNotEqual(c2["primary"], victim)

    def test_delete_errors(self):
        c = self.settled(["r1", "r2", "r3"])
        for path, why in (("/api/replicas/r9", "never existed"),
                          ("/api/replicas/coordinator", "not a replica"),
                          ("/api/replicas/r1%2F", "encoded slash"),
                          ("/api/replicas/%72%31", "encoded r1"),
                          ("/api/replicas/r1.", "no such id"),
                          ("/api/replicas/" + "r" * 64, "too long")):
            r = self.co.request("DELETE", path)
            self.assertEqual(r.status, 404, f"{why}: {path} -> {r}")
            self.assertEqual(r.json["error"]["code"], "not_found", r)
            self.assertTrue(r.json["error"]["message"], r)
        r = self.co.request("DELETE", "/api/replicas/")
        self.assertEqual(r.status, 404, r)
        r = self.co.request("DELETE", "/api/replicas/r1/fail")
        self.assertEqual(r.status, 405, r)
        # Nothing changed.
        self.settled(["r1", "r2", "r3"])
        # Removed once: a second DELETE is 404, the id is not a member.
        victim = self.backups(c)[0]
        self.remove(victim)
        self.settled([x for x in ("r1", "r2", "r3") if x != victim])
        r = self.co.request("DELETE", f"/api/replicas/{victim}")
        self.assertEqual(r.status, 404, r)
        self.assertEqual(r.json["error"]["code"], "not_found")
        self.assertIn(victim, r.json["error"]["message"])

    def test_delete_without_a_reachable_majority_is_409(self):
        c = self.settled(["r1", "r2", "r3"])
        stopped, other = self.backups(c)
        pid = self.co.replica_pids()[stopped]
        os.kill(pid, signal.SIGSTOP)
        self.stopped.append(pid)

        # The primary counts a voter as reachable while it answered within
        # the minimum election timeout (300 ms): wait well past it, as the
        # primary's own status shows it.
        def primary_lost_it(c):
            p = next((r for r in c["replicas"] if r["id"] == c.get("primary")), None)
            peer = p and next((x for x in p["peers"] if x["id"] == stopped), None)
            return peer is not None and peer["last_seen_ms"] > 1500
        self.co.wait_for(primary_lost_it, 15, f"the primary to lose contact with {stopped}")
        r = self.co.request("DELETE", f"/api/replicas/{other}", timeout=20)
        self.assertEqual(r.status, 409, r)
        self.assertEqual(r.json["error"]["code"], "no_quorum", r)
        self.assertIn(other, r.json["error"]["message"])
        os.kill(pid, signal.SIGCONT)
        self.stopped.remove(pid)
        self.settled(["r1", "r2", "r3"])
        self.assertIn(other, self.co.replica_pids(), "a refused removal stops nothing")


class GrowTests(MembershipCase):
    name = "grow"

    def test_grow_three_to_five(self):
        self.settled(["r1", "r2", "r3"])
        first = self.write("before growing")
        t0 = time.monotonic()
        added = []
        for _ in range(2):
            r = self.co.post("/api/replicas", timeout=20)
            self.assertEqual(r.status, 202, r)
            self.assertEqual(set(r.json), {"id", "address"}, r.json)
            added.append(r.json["id"])
        self.assertEqual(added, ["r4", "r5"], "fresh ids, in order")
        t_voter = {}

        def all_voters(c):
            for rid in added:
                if rid in c.get("voters", []) and rid not in t_voter:
                    t_voter[rid] = time.monotonic()
            return len(t_voter) == 2
        self.co.wait_for(all_voters, SETTLE_S, "r4 and r5 to become voters")
        c = self.settled(["r1", "r2", "r3", "r4", "r5"])
        self.assertEqual(c["quorum"], 3)
        pids = self.co.replica_pids()
        self.assertEqual(sorted(pids), ["r1", "r2", "r3", "r4", "r5"])
        ports = {r["address"] for r in c["replicas"]}
        self.assertEqual(len(ports), 5, f"one port each: {ports}")
        after = self.write("after growing")
        self.assertGreater(after["index"], first["index"])
        # The new ones hold the log from the start: entries they never saw
        # committed before they joined.
        self.co.wait_for(lambda c: all(r["commit_index"] >= after["index"] for r in c["replicas"]),
                         SETTLE_S, "the new replicas to catch up")
        for rid in added:
            figure("membership", f"POST /api/replicas -> {rid} a voter", ms(t_voter[rid] - t0))
        # With 5 voters two may be lost: SIGSTOP two old ones, writes go on.
        c = self.co.cluster()
        for rid in [x for x in self.backups(c) if x not in added][:2]:
            os.kill(pids[rid], signal.SIGSTOP)
            self.stopped.append(pids[rid])
        self.write("two voters stopped")


class ReplaceTests(MembershipCase):
    name = "replace"

    def test_fail_replace_backup(self):
        c = self.settled(["r1", "r2", "r3"])
        victim = self.backups(c)[0]
        pid = self.co.replica_pids()[victim]
        t0 = time.monotonic()
        r = self.co.post(f"/api/replicas/{victim}/fail?replace=true")
        self.assertEqual(r.status, 202, r)
        self.assertEqual(set(r.json), {"failed", "replacement"}, r.json)
        self.assertEqual(r.json["failed"], victim)
        new = r.json["replacement"]
        self.assertEqual(new, "r4")
        keep = sorted([x for x in ("r1", "r2", "r3") if x != victim] + [new])
        self.settled(keep)
        figure("membership", "fail?replace=true (a backup) -> configuration settled",
               ms(time.monotonic() - t0))
        self.wait_gone(victim)
        with self.assertRaises(ProcessLookupError):
            os.kill(pid, 0)
        time.sleep(1.0)
        self.assertNotIn(victim, self.co.replica_pids(), "a replaced replica is not restarted")
        self.write("after the replacement")

    def test_fail_replace_primary(self):
        c = self.settled(["r1", "r2", "r3"])
        victim = c["primary"]
        r = self.co.post(f"/api/replicas/{victim}/fail?replace=true")
        self.assertEqual(r.status, 202, r)
        new = r.json["replacement"]
        keep = sorted([x for x in ("r1", "r2", "r3") if x != victim] + [new])
        c = self.settled(keep)
        self.assertNotEqual(c["primary"], victim)
        self.wait_gone(victim)
        self.write("after replacing the primary")

    def test_fail_query_errors(self):
        self.settled(["r1", "r2", "r3"])
        for q in ("replace=yes", "replace=1", "replace=", "replace", "replace=true&replace=true",
                  "replace=%74rue"):
            r = self.co.post(f"/api/replicas/r2/fail?{q}")
            self.assertEqual(r.status, 400, f"{q}: {r}")
            self.assertEqual(r.json["error"]["code"], "bad_query", r)
        r = self.co.post("/api/replicas/r9/fail?replace=true")
        self.assertEqual(r.status, 404, r)
        # replace=false is a plain fail.
        r = self.co.post("/api/replicas/r2/fail?replace=false")
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.json, {"failed": "r2"})
        self.settled(["r1", "r2", "r3"])


class WithoutSpawnTests(unittest.TestCase):
    """A coordinator given --replicas (another one's spawned replicas):
    nothing to start, so POST /api/replicas and replace=true are 409
    not_spawn; DELETE still changes the configuration. The process is not
    its to stop: the --spawn coordinator that runs it stops it, seeing it
    on the committed removed list."""

    @classmethod
    def setUpClass(cls):
        cls.spawner = Coordinator(n=3, name="nospawn").start()
        cls.port = free_port()
        cls.tmp_log = open(os.path.join(cls.spawner.tmp, "plain.log"), "ab")
        replicas = ",".join(f"{HOST}:{cls.spawner.base_port + i}" for i in range(3))
        args = [Config.coordinator, "--listen", f"{HOST}:{cls.port}", "--replicas", replicas,
                "--cluster-secret-file", cls.spawner.secret_file]
        if Config.dashboard_dir:
            args += ["--dashboard-dir", Config.dashboard_dir]
        cls.plain = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=cls.tmp_log,
                                     stderr=subprocess.STDOUT)

    @classmethod
    def tearDownClass(cls):
        cls.plain.send_signal(signal.SIGTERM)
        try:
            rc = cls.plain.wait(timeout=15)
        except subprocess.TimeoutExpired:
            cls.plain.kill()
            rc = cls.plain.wait()
        cls.tmp_log.close()
        problems = cls.spawner.stop(check=False)
        cls.spawner.cleanup(keep=bool(problems))
        if problems or rc not in (0, -signal.SIGTERM):
            raise AssertionError(f"plain coordinator exited {rc}; " + "; ".join(problems))

    def get(self, path):
        return http_request(self.port, "GET", path)

    def wait_plain(self, pred, what, timeout=SETTLE_S):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                last = self.get("/api/cluster").json
                if pred(last):
                    return last
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}: {last}")

    def test_no_spawn(self):
        c = self.wait_plain(lambda c: c.get("primary") and len(c.get("voters", [])) == 3,
                            "a primary and 3 voters")
        self.assertIs(c["spawn"], False)
        r = http_request(self.port, "POST", "/api/replicas")
        self.assertEqual(r.status, 409, r)
        self.assertEqual(r.json["error"]["code"], "not_spawn")
        self.assertIn("--spawn", r.json["error"]["message"])
        backup = [x["id"] for x in c["replicas"] if x["id"] != c["primary"]][0]
        r = http_request(self.port, "POST", f"/api/replicas/{backup}/fail?replace=true")
        self.assertEqual(r.status, 409, r)
        self.assertEqual(r.json["error"]["code"], "not_spawn")
        r = http_request(self.port, "DELETE", f"/api/replicas/{backup}")
        self.assertEqual(r.status, 202, r)
        c = self.wait_plain(lambda c: backup not in c["voters"] + c["learners"] and
                            len(c["voters"]) == 2, f"{backup} out of the configuration")
        # Its supervisor stops it; then neither coordinator lists it.
        self.spawner.wait_for(lambda _c: backup not in self.spawner.replica_pids(), SETTLE_S,
                              f"the spawning coordinator to stop {backup}")
        self.wait_plain(lambda c: backup not in [x["id"] for x in c["replicas"]],
                        f"{backup} gone from the list")
        self.spawner.wait_for(lambda c: backup not in [x["id"] for x in c["replicas"]], SETTLE_S,
                              f"{backup} gone from the spawning coordinator's list")


if __name__ == "__main__":
    unittest.main()
