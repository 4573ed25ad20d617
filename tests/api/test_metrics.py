"""GET /metrics as operators' tools take it.

One `coordinator --spawn 3` takes writes, reads of both consistency levels
and one failure of its primary; then its live /metrics must pass Prometheus's
own linter (`promtool check metrics`: an empty report, exit 0) and hold the
series operators of etcd look for, with sane values: has_primary, primary
changes, requests committed/failed/pending, each replica's WAL fsync
histogram, Append round trips per peer and reads by consistency.

promtool comes with Debian's `prometheus` package, which
`scripts/install-deps test` installs (tests/run runs it as root). Without
it this test fails, saying so: a lint that silently skips would let a bad
metric name through CI.
"""
import math
import re
import shutil
import subprocess
import time
import unittest
import uuid

from harness import CoordinatorTestCase, figure, ms

WRITES_BEFORE, WRITES_AFTER = 20, 10
READS_PER_LEVEL = 5
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text):
    """{(name, ((label, value), ...)): float} of every sample, labels sorted;
    and {family: type}."""
    samples, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, fam, typ = line.split(" ", 3)
            types[fam] = typ
            continue
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        labels = tuple(sorted(LABEL.findall(m.group(2) or "")))
        samples[(m.group(1), labels)] = float(m.group(3))
    return samples, types


def series(samples, name, **want):
    """{labels dict as a tuple: value} of `name` whose labels include `want`."""
    out = {}
    for (n, labels), v in samples.items():
        d = dict(labels)
        if n == name and all(d.get(k) == w for k, w in want.items()):
            out[labels] = v
    return out


def one(samples, name, **labels):
    found = series(samples, name, **labels)
    assert len(found) == 1, f"{name}{labels}: {len(found)} series: {found}"
    return next(iter(found.values()))


class MetricsTests(CoordinatorTestCase):
    coordinator_name = "metrics"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        co = cls.co
        cls.writes = 0
        cls.reads = {"linearizable": 0, "serializable": 0}

        def write(tag):
            r = co.post("/api/requests", {"data": f"{tag} {cls.writes}",
                                          "id": f"m-{uuid.uuid4().hex[:12]}"}, timeout=20)
            assert r.status == 201, r
            cls.writes += 1
            return r.json

        def read(level):
            r = co.get(f"/api/requests?after=0&limit=5&consistency={level}", timeout=20)
            assert r.status == 200, r
            cls.reads[level] += 1

        for _ in range(WRITES_BEFORE):
            write("before")
        for _ in range(READS_PER_LEVEL):
            read("linearizable")
            read("serializable")
        before = co.wait_primary(timeout=10)
        cls.failed = before["primary"]
        r = co.post("/api/primary/fail", timeout=20)
        assert r.status == 202, r
        co.wait_primary(timeout=15, not_id=cls.failed, min_epoch=before["epoch"] + 1)
        # The failed one is restarted by the supervisor: wait for it, so
        # that every replica measures fsyncs (and the new primary round
        # trips to both peers) in its present life.
        co.wait_primary(timeout=15, all_up=True)
        for _ in range(WRITES_AFTER):
            last = write("after")
        co.wait_converged(timeout=15, min_index=last["index"])
        time.sleep(0.5)  # a status poll (200 ms) past the last fsync
        r = co.get("/metrics")
        assert r.status == 200, r
        cls.text = r.body.decode()
        cls.samples, cls.types = parse(cls.text)
        cls.primary = co.cluster()["primary"]

    # -- Prometheus's own linter -------------------------------------------------
    def test_promtool_reports_nothing(self):
        promtool = shutil.which("promtool")
        if promtool is None:
            self.fail("promtool not found: install Debian's `prometheus` package "
                      "(scripts/install-deps test, as root; tests/run does it)")
        for what, text in (("after the workload", self.text),
                           ("now", self.co.get("/metrics").body.decode())):
            p = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                               text=True, timeout=30)
            report = (p.stdout + p.stderr).strip()
            self.assertEqual(report, "", f"promtool check metrics ({what}) reports:\n{report}")
            self.assertEqual(p.returncode, 0, f"promtool exit status ({what})")

    def test_units_in_names(self):
        self.assertNotIn("heartbeat_age_ms", self.text, "renamed: heartbeat_age_seconds")
        self.assertEqual(self.types.get("replicacao_replica_heartbeat_age_seconds"), "gauge")
        ages = series(self.samples, "replicacao_replica_heartbeat_age_seconds")
        self.assertEqual(len(ages), 3, ages)
        for labels, v in ages.items():
            self.assertTrue(0 <= v < 5, f"heartbeat age {labels}: {v} s")
        for fam, typ in self.types.items():
            if typ == "counter":
                self.assertTrue(fam.endswith("_total"), f"counter {fam} without _total")

    # -- primary -------------------------------------------------------------------
    def test_has_primary_and_primary_changes(self):
        self.assertEqual(self.types.get("replicacao_cluster_has_primary"), "gauge")
        self.assertEqual(one(self.samples, "replicacao_cluster_has_primary"), 1)
        self.assertEqual(self.types.get("replicacao_cluster_primary_changes_total"), "counter")
        changes = one(self.samples, "replicacao_cluster_primary_changes_total")
        self.assertGreaterEqual(changes, 1, "the primary was failed once")
        self.assertLessEqual(changes, 3, "one failure, a handful of changes at most")
        self.assertGreaterEqual(one(self.samples, "replicacao_failovers_total"), 1)

    # -- proposals -------------------------------------------------------------------
    def test_requests_committed_failed_pending(self):
        committed = one(self.samples, "replicacao_requests_committed_total")
        self.assertEqual(committed, self.writes)
        self.assertEqual(one(self.samples, "replicacao_requests_failed_total"), 0)
        self.assertEqual(one(self.samples, "replicacao_requests_pending"), 0)
        self.assertEqual(one(self.samples, "replicacao_requests_total", code="201"), committed)
        pending = series(self.samples, "replicacao_replica_requests_pending")
        self.assertEqual(sorted(dict(k)["replica"] for k in pending), ["r1", "r2", "r3"])
        self.assertEqual(set(pending.values()), {0}, pending)
        self.assertEqual(self.types.get("replicacao_replica_requests_pending"), "gauge")

    # -- reads -------------------------------------------------------------------------
    def test_reads_by_consistency(self):
        self.assertEqual(self.types.get("replicacao_reads_total"), "counter")
        for level, n in self.reads.items():
            got = one(self.samples, "replicacao_reads_total", consistency=level, code="200")
            # Only the setup reads these before the /metrics it parses.
            self.assertEqual(got, n, f"{level} reads")

    # -- histograms reported by the replicas ---------------------------------------------
    def check_histogram(self, name, **labels):
        """Buckets cumulative in increasing le, +Inf == count; returns
        (count, sum)."""
        buckets = series(self.samples, name + "_bucket", **labels)
        self.assertTrue(buckets, f"no {name}{labels}")
        by_le = sorted(((float(dict(k)["le"]), v) for k, v in buckets.items()))
        self.assertEqual(by_le[-1][0], math.inf, f"{name}{labels}: no +Inf bucket")
        counts = [v for _, v in by_le]
        self.assertEqual(counts, sorted(counts), f"{name}{labels}: buckets not cumulative")
        count = one(self.samples, name + "_count", **labels)
        total = one(self.samples, name + "_sum", **labels)
        self.assertEqual(by_le[-1][1], count, f"{name}{labels}: +Inf bucket != count")
        return count, total

    def test_wal_fsync_histogram(self):
        name = "replicacao_replica_wal_fsync_duration_seconds"
        self.assertEqual(self.types.get(name), "histogram")
        for rid in ("r1", "r2", "r3"):
            count, total = self.check_histogram(name, replica=rid)
            self.assertGreater(count, 0, f"{rid} fsynced its log")
            self.assertGreater(total, 0, f"{rid}: fsyncs take time")
            self.assertLess(total / count, 1.0, f"{rid}: mean fsync under a second")
            figure("metrics", f"WAL fsync mean ({rid})", ms(total / count))

    def test_peer_round_trip(self):
        name = "replicacao_replica_peer_round_trip_time_seconds"
        self.assertEqual(self.types.get(name), "histogram")
        peers = {dict(k)["peer"] for k in
                 series(self.samples, name + "_count", replica=self.primary)}
        self.assertEqual(peers, {"r1", "r2", "r3"} - {self.primary},
                         f"the primary {self.primary} timed Appends to both backups")
        for peer in sorted(peers):
            count, total = self.check_histogram(name, replica=self.primary, peer=peer)
            self.assertGreater(count, 0)
            self.assertGreater(total, 0, "round trips take time")
            self.assertLess(total / count, 1.0, "loopback round trips under a second")
            figure("metrics", f"Append round trip mean {self.primary}->{peer}", ms(total / count))


if __name__ == "__main__":
    unittest.main()
