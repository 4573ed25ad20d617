"""The --spawn supervisor and what surrounds it (docs/api.md, "Membership"
and "Metrics and health"):

- a second `coordinator --spawn` on the host, on the first one's replica
  ports or data dir, is refused before it starts anything, saying which flag
  to change, and the first one is left alone;
- a replica that keeps exiting at start is given up: a `start_failed` event,
  status "failed", no more restarts; with two of three voters given up,
  /readyz is 503 no_primary and says why;
- `replctl force-config` then brings the survivor back as the only voter
  (UNSAFE, loud warning), and `replctl members` / `remove` show and change
  the configuration;
- events carry replica_name / subject_name.

Both coordinators of a test use free, non-default ports.
"""
import os
import signal
import subprocess
import time
import unittest

from harness import Config, Coordinator, CoordinatorTestCase, WebSocket, figure, free_port, ms

SETTLE_S = 30


def replctl():
    path = os.path.join(os.path.dirname(Config.replica), "replctl")
    if not os.access(path, os.X_OK):
        raise unittest.SkipTest(f"replctl not found next to the replica binary ({path})")
    return path


class SecondSpawnTests(CoordinatorTestCase):
    coordinator_name = "second"

    def second(self, base_port, data_dir):
        """Run a second coordinator --spawn 3; it must exit by itself."""
        args = [Config.coordinator, "--listen", f"127.0.0.1:{free_port()}", "--spawn", "3",
                "--spawn-base-port", str(base_port), "--data-dir", data_dir,
                "--replica-bin", Config.replica]
        t0 = time.monotonic()
        p = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        return p, time.monotonic() - t0

    def check_first_untouched(self, pids):
        self.assertEqual(self.co.replica_pids(), pids, "the first coordinator's replicas changed")
        r = self.co.post("/api/requests", {"data": "still serving"})
        self.assertEqual(r.status, 201, r)
        c = self.co.wait_primary(all_up=True)
        self.assertEqual(sorted(c["voters"]), ["r1", "r2", "r3"])

    def test_same_ports_refused(self):
        self.co.wait_primary(all_up=True)
        pids = self.co.replica_pids()
        other = os.path.join(self.co.tmp, "other-data")
        p, took = self.second(self.co.base_port, other)
        err = p.stderr.decode()
        self.assertNotEqual(p.returncode, 0, err)
        self.assertIn("--spawn-base-port", err)
        self.assertIn(str(self.co.base_port), err)
        self.assertEqual([], [x for x in os.listdir(other) if x.startswith("r")],
                         "the refused coordinator created replica data")
        figure("spawn", "second --spawn on the same ports: refused after", ms(took))
        self.check_first_untouched(pids)

    def test_same_data_dir_refused(self):
        self.co.wait_primary(all_up=True)
        pids = self.co.replica_pids()
        base = self.co.base_port + 100
        p, _ = self.second(base, self.co.data_dir)
        err = p.stderr.decode()
        self.assertNotEqual(p.returncode, 0, err)
        self.assertIn("--data-dir", err)
        self.assertIn(str(self.co.proc.pid), err, "names the coordinator holding the data dir")
        self.check_first_untouched(pids)


class NamesOnEventsTests(CoordinatorTestCase):
    coordinator_name = "names"

    def test_events_carry_names(self):
        c = self.co.wait_primary(all_up=True)
        ws = WebSocket(self.port)
        try:
            ws.next(timeout=5)  # the snapshot
            backup = [r["id"] for r in c["replicas"] if r["id"] != c["primary"]][0]
            self.assertEqual(self.co.post(f"/api/replicas/{backup}/fail").status, 202)
            _t, ev = ws.wait_event(lambda e: e["type"] == "failed", timeout=10)
            self.assertEqual(ev["replica"], backup)
            # --spawn names each replica after its id.
            self.assertEqual(ev["replica_name"], backup)
            self.assertEqual(ev["subject_name"], backup)
            self.assertEqual(self.co.post("/api/requests", {"data": "named"}).status, 201)
            _t, ev = ws.wait_event(lambda e: e["type"] == "request_committed", timeout=10)
            self.assertEqual(ev["replica_name"], ev["replica"])
            _t, ev = ws.wait_event(lambda e: e["type"] == "committed", timeout=10)
            self.assertEqual(ev["replica_name"], ev["replica"])
            self.assertIsInstance(ev["subject_name"], str)
        finally:
            ws.close()


class GiveUpTests(unittest.TestCase):
    """Two of three replicas made unable to start (their data dir replaced
    by a file) and failed: each is given up after a few quick exits."""

    def setUp(self):
        self.co = Coordinator(n=3, name="giveup")
        try:
            self.co.start()
        except BaseException:
            self.co.stop(check=False)
            self.co.cleanup(keep=True)
            raise

    def tearDown(self):
        problems = self.co.stop(check=False)
        self.co.cleanup(keep=bool(problems))
        if problems:
            raise AssertionError("; ".join(problems) + "\n" + self.co.log_tail())

    def break_and_fail(self, rid):
        d = os.path.join(self.co.data_dir, rid)
        os.rename(d, d + ".moved")  # the running replica keeps its open files
        with open(d, "w") as f:
            f.write("not a directory\n")
        r = self.co.post(f"/api/replicas/{rid}/fail")
        self.assertEqual(r.status, 202, r)

    def test_crash_loop_given_up_then_forced_recovery(self):
        c = self.co.wait_primary(all_up=True)
        ws = WebSocket(self.co.port)
        try:
            ws.next(timeout=5)
            survivor = c["primary"]
            broken = sorted(r["id"] for r in c["replicas"] if r["id"] != survivor)
            t0 = time.monotonic()
            for rid in broken:
                self.break_and_fail(rid)
            given_up = {}
            while len(given_up) < 2:
                t, ev = ws.wait_event(lambda e: e["type"] == "start_failed", timeout=30,
                                      what="start_failed events")
                given_up[ev["subject"]] = (t, ev)
            self.assertEqual(sorted(given_up), broken)
            for rid, (t, ev) in given_up.items():
                self.assertEqual(ev["subject_name"], rid)
                # Status 1 (an ASan build's replica aborts instead: it leaks
                # on that path), with the signal.
                self.assertRegex(ev["detail"], r"\(status \d+, signal \d+\)")
                figure("spawn", f"crash loop of {rid}: fail -> start_failed", ms(t - t0))
        finally:
            ws.close()
        self.assertIn("giving up", open(self.co.log_path, encoding="utf-8",
                                        errors="replace").read())

        def shown_failed(c):
            reps = {r["id"]: r for r in c["replicas"]}
            return all(reps.get(b, {}).get("status") == "failed"
                       and reps[b].get("start_failed") is True for b in broken)
        c = self.co.wait_for(shown_failed, 10, "both given-up replicas shown failed")
        self.assertEqual(c["reachable_voters"], 1)
        self.assertEqual(c["quorum"], 2)
        # No more restarts.
        time.sleep(1.5)
        for rid in broken:
            self.assertNotIn(rid, self.co.replica_pids(), f"{rid} restarted after being given up")

        # No majority: no primary, and /readyz says why.
        self.co.wait_for(lambda c: c["primary"] is None, 15, "the lone primary to step down")
        r = self.co.get("/readyz")
        self.assertEqual(r.status, 503, r)
        self.assertEqual(r.headers.get("retry-after"), "1")
        self.assertEqual(r.json["error"]["code"], "no_primary")
        self.assertIn("1 of 3 voters reachable - a majority needs 2", r.json["error"]["message"])
        self.assertEqual(self.co.get("/livez").status, 200)
        # Removing a voter needs a majority too.
        r = self.co.request("DELETE", f"/api/replicas/{broken[0]}", timeout=20)
        self.assertIn(r.status, (409, 503), r)

        # The way out: force the survivor's configuration (UNSAFE).
        ctl = replctl()
        addr = next(r["address"] for r in c["replicas"] if r["id"] == survivor)
        secret = ["--cluster-secret-file", self.co.secret_file]
        p = subprocess.run([ctl, *secret, "-a", addr, "members"], capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, p)
        out = p.stdout.decode()
        self.assertIn("voters=r1,r2,r3", out)
        p = subprocess.run([ctl, *secret, "-a", addr, "force-config"], capture_output=True,
                           timeout=30)
        self.assertEqual(p.returncode, 0, p)
        self.assertIn("UNSAFE", p.stderr.decode())
        self.assertIn(f"forced: voter={survivor} learners=", p.stdout.decode())
        c = self.co.wait_for(lambda c: c["voters"] == [survivor] and c["primary"] == survivor,
                             SETTLE_S, f"{survivor} primary and the only voter")
        self.assertEqual(c["quorum"], 1)
        r = self.co.post("/api/requests", {"data": "after forced recovery"}, timeout=20)
        self.assertEqual(r.status, 201, r)
        self.assertEqual(self.co.get("/readyz").status, 200)
        # The given-up ones are no members now: DELETE just forgets them.
        for rid in broken:
            r = self.co.request("DELETE", f"/api/replicas/{rid}", timeout=20)
            self.assertEqual(r.status, 202, r)
        self.co.wait_for(lambda c: [r["id"] for r in c["replicas"]] == [survivor], 10,
                         "only the survivor listed")
        # Grow back.
        r = self.co.post("/api/replicas")
        self.assertEqual(r.status, 202, r)
        new = r.json["id"]
        self.co.wait_for(lambda c: sorted(c["voters"]) == sorted([survivor, new]), SETTLE_S,
                         f"{new} a voter")


class ReplctlTests(CoordinatorTestCase):
    coordinator_name = "replctl"

    def run_ctl(self, *args):
        addrs = ",".join(f"127.0.0.1:{self.co.base_port + i}" for i in range(3))
        proof = ["--cluster-secret-file", self.co.secret_file]
        return subprocess.run([replctl(), *proof, "-a", addrs, "-t", "15000", *args],
                              capture_output=True, timeout=60)

    def test_secret_needed(self):
        """--spawn gives its cluster a secret (0600, in its data dir);
        replctl without it is refused and told why, and the dashboard's
        stream says which replica turned it away."""
        self.assertEqual(os.stat(self.co.secret_file).st_mode & 0o777, 0o600)
        # Another test of this class may have removed a replica: ask one that is up.
        c = self.co.wait_primary()
        r = next(r for r in c["replicas"] if r["id"] == c["primary"])
        rid, addr = r["id"], r["address"]
        ws = WebSocket(self.port)
        try:
            p = subprocess.run([replctl(), "-a", addr, "status"], capture_output=True, timeout=60)
            self.assertEqual(p.returncode, 1, p)
            self.assertIn("cluster secret", p.stderr.decode())
            _, ev = ws.wait_event(lambda e: e.get("type") == "handshake_refused", timeout=10,
                                  what="handshake_refused event")
        finally:
            ws.close()
        self.assertEqual(ev["replica"], rid, ev)
        self.assertIn("client replctl", ev["detail"], ev)
        self.assertIn("no proof of the cluster secret", ev["detail"], ev)
        env = dict(os.environ, REPLCTL_CLUSTER_SECRET_FILE=self.co.secret_file)
        p = subprocess.run([replctl(), "-a", addr, "status"], capture_output=True, timeout=60,
                           env=env)
        self.assertEqual(p.returncode, 0, p)
        self.assertIn(f"id={rid} ", p.stdout.decode())

    def test_members_and_remove(self):
        c = self.co.wait_primary(all_up=True)
        p = self.run_ctl("members")
        self.assertEqual(p.returncode, 0, p)
        out = p.stdout.decode()
        self.assertIn("voters=r1,r2,r3 learners= removed=", out)
        self.assertIn(f"cluster_id={c['cluster_id']}", out)
        p = self.run_ctl("status")
        self.assertEqual(p.returncode, 0, p)
        self.assertIn("config_index=", p.stdout.decode())
        # Not a member: exit 3. A bad id: usage, 2.
        p = self.run_ctl("remove", "r9")
        self.assertEqual(p.returncode, 3, p)
        self.assertIn("not a member", p.stderr.decode())
        p = self.run_ctl("remove", "bad/id")
        self.assertEqual(p.returncode, 2, p)
        p = self.run_ctl("force-config", "--keep", "r1,bad id")
        self.assertEqual(p.returncode, 2, p)
        p = self.run_ctl("members", "--keep", "r1")
        self.assertEqual(p.returncode, 2, p)
        # Remove a backup through replctl (the first address need not be the primary).
        backup = [r["id"] for r in c["replicas"] if r["id"] != c["primary"]][0]
        p = self.run_ctl("remove", backup)
        self.assertEqual(p.returncode, 0, p)
        self.assertIn(f"removing={backup} index=", p.stdout.decode())
        c = self.co.wait_for(lambda c: backup not in c["voters"] and len(c["voters"]) == 2,
                             SETTLE_S, f"{backup} out of the configuration")
        p = self.run_ctl("remove", backup)
        self.assertEqual(p.returncode, 3, p)
        # Removed behind the coordinator's back, it is still stopped for good.
        self.co.wait_for(lambda _c: backup not in self.co.replica_pids(), SETTLE_S,
                         f"the supervisor to stop {backup}")


if __name__ == "__main__":
    unittest.main()
