"""Unit tests of linearizability.py, the history checker of test_history:
hand-made legal and illegal histories of appends and reads (acknowledged,
definitely failed and unknown outcomes), and a cross-check against an
exhaustive search over every linearization on thousands of small random
histories. No cluster: it runs in well under a second of CPU."""
import itertools
import random
import time
import unittest

import linearizability as lz
from linearizability import (append_fail, append_ok, append_unknown, check, read_ok,
                             read_unknown)


def E(index, name):
    """A log entry whose data is derived from its id."""
    return (index, name, "d-" + name)


def A(name, index, t0, t1):
    return append_ok(name, "d-" + name, index, t0, t1, client="c")


def U(name, t0, t1):
    return append_unknown(name, "d-" + name, t0, t1, client="c", note="504")


def F_(name, t0, t1):
    return append_fail(name, "d-" + name, t0, t1, client="c", note="409")


def R(names_or_entries, t0, t1, commit_index=None):
    """A read of the given entries; plain names get indexes 1, 2, 3..."""
    entries = [e if isinstance(e, tuple) else E(i + 1, e) for i, e in enumerate(names_or_entries)]
    return read_ok(entries, t0, t1, commit_index=commit_index, client="r")


def log(*names):
    return [E(i + 1, n) for i, n in enumerate(names)]


class Legal(unittest.TestCase):
    def assertLegal(self, history, final):
        res = check(history, final)
        self.assertTrue(res.ok, "\n" + res.report())
        return res

    def test_empty(self):
        res = self.assertLegal([], [])
        self.assertEqual(res.counts["operations"], 0)
        self.assertLegal([read_ok([], 0, 1)], [])

    def test_sequential(self):
        self.assertLegal([A("a", 1, 0, 1), R(["a"], 2, 3), A("b", 2, 4, 5), R(["a", "b"], 6, 7)],
                         log("a", "b"))

    def test_concurrent_appends_in_either_order(self):
        # overlapping intervals: either may come first in the log
        for order in (("a", "b"), ("b", "a")):
            ix = {n: i + 1 for i, n in enumerate(order)}
            self.assertLegal([A("a", ix["a"], 0, 3), A("b", ix["b"], 1, 2)], log(*order))

    def test_read_concurrent_with_append_sees_it_or_not(self):
        h = [A("a", 1, 0, 1), A("b", 2, 2, 6),
             R(["a"], 3, 4),          # concurrent with b: does not see it
             R(["a", "b"], 3, 5),     # concurrent with b: sees it
             R(["a"], 5.5, 7)]        # still concurrent with b, began after a read that saw b?
        # the last read began (5.5) after the read that saw b completed (5): it must see b
        res = check(h, log("a", "b"))
        self.assertEqual(res.kinds(), {lz.NONMONOTONIC_READ: 1}, res.report())
        h[-1] = R(["a", "b"], 5.5, 7)
        self.assertLegal(h, log("a", "b"))

    def test_concurrent_reads_return_any_lengths(self):
        # r1 longer than r2 while they overlap: fine in either order
        h = [A("a", 1, 0, 10), R(["a"], 1, 3), R([], 2, 4)]
        self.assertLegal(h, log("a"))

    def test_unknown_append_present_took_effect_late(self):
        # u timed out at 1; b was acknowledged later at index 1; u then
        # took effect at index 2; a read after both saw only b.
        h = [U("u", 0, 1), A("b", 1, 2, 3), R(["b"], 4, 5), R(["b", "u"], 6, 7)]
        res = self.assertLegal(h, log("b", "u"))
        self.assertEqual((res.counts["unknown_present"], res.counts["unknown_absent"]), (1, 0))

    def test_unknown_append_seen_before_its_client_gave_up(self):
        h = [U("u", 0, 10), R(["u"], 1, 2), A("b", 2, 3, 4)]
        self.assertLegal(h, log("u", "b"))

    def test_unknown_append_absent(self):
        h = [U("u", 0, 1), A("b", 1, 2, 3), R(["b"], 4, 5)]
        res = self.assertLegal(h, log("b"))
        self.assertEqual((res.counts["unknown_present"], res.counts["unknown_absent"]), (0, 1))

    def test_definite_failure_absent(self):
        self.assertLegal([F_("f", 0, 1), A("a", 1, 2, 3), R(["a"], 4, 5)], log("a"))

    def test_read_without_result_constrains_nothing(self):
        h = [A("a", 1, 0, 1), read_unknown(2, 3, note="504"), A("b", 2, 4, 5)]
        res = self.assertLegal(h, log("a", "b"))
        self.assertEqual(res.counts["reads_unknown"], 1)

    def test_index_gaps_and_commit_index(self):
        # no-op / configuration entries at 1, 3, 4: client entries at 2 and 5
        final = [E(2, "a"), E(5, "b")]
        h = [A("a", 2, 0, 1), R([E(2, "a")], 2, 3, commit_index=4), A("b", 5, 4, 5),
             R([E(2, "a"), E(5, "b")], 6, 7, commit_index=9)]
        self.assertLegal(h, final)

    def test_equal_times_are_concurrent(self):
        # b invoked exactly when a completed: not "after" it
        self.assertLegal([A("a", 2, 0, 1), A("b", 1, 1, 2)], log("b", "a"))

    def test_dict_entries_as_the_api_returns_them(self):
        final = [{"index": 3, "epoch": 1, "id": "a", "data": "d-a", "primary": "r1"}]
        self.assertLegal([A("a", 3, 0, 1), read_ok(final, 2, 3, commit_index=3)], final)


class Illegal(unittest.TestCase):
    def assertKinds(self, history, final, kinds):
        res = check(history, final)
        self.assertFalse(res.ok, "expected anomalies")
        self.assertEqual(res.kinds(), kinds, "\n" + res.report())
        return res

    def test_stale_read_after_acked_append(self):
        res = self.assertKinds([A("a", 1, 0, 1), A("b", 2, 1, 2), R(["a"], 3, 4)], log("a", "b"),
                               {lz.STALE_READ: 1})
        an = res.anomalies[0]
        self.assertEqual([op.id for op in an.ops], ["b", None])
        self.assertEqual(an.positions, [2, 1])

    def test_stale_read_missing_entry_behind_an_unknown(self):
        # u (unknown) took effect at position 1, b was acknowledged at 2
        # before the read began: a read of length 1 (just u) is stale.
        self.assertKinds([U("u", 0, 1), A("b", 2, 0.5, 2), R(["u"], 3, 4)], log("u", "b"),
                         {lz.STALE_READ: 1})

    def test_later_read_shorter_than_earlier(self):
        # a concurrent with both reads (no stale read), but the reads invert
        self.assertKinds([A("a", 1, 0, 10), R(["a"], 1, 2), R([], 3, 4)], log("a"),
                         {lz.NONMONOTONIC_READ: 1})

    def test_acked_append_at_wrong_index(self):
        self.assertKinds([A("a", 1, 0, 1), A("b", 3, 2, 3)], log("a", "b"), {lz.WRONG_INDEX: 1})

    def test_read_not_a_prefix(self):
        final = log("a", "b")
        base = [A("a", 1, 0, 1), A("b", 2, 0, 1)]
        # wrong order
        self.assertKinds(base + [R([E(1, "b"), E(2, "a")], 2, 3)], final, {lz.NOT_PREFIX: 1})
        # a hole: b without a
        self.assertKinds(base + [R([E(2, "b")], 2, 3)], final, {lz.NOT_PREFIX: 1})
        # other data at the right place
        self.assertKinds(base + [R([(1, "a", "other")], 2, 3)], final, {lz.NOT_PREFIX: 1})
        # longer than the final log
        self.assertKinds(base + [R(["a", "b", "a"], 2, 3)], final, {lz.NOT_PREFIX: 1})

    def test_absent_unknown_append_seen_by_a_read(self):
        res = self.assertKinds([A("a", 1, 0, 1), U("u", 1, 2), R(["a", "u"], 2, 3)], log("a"),
                               {lz.READ_SAW_ABSENT: 1})
        self.assertIn("never took effect", res.anomalies[0].message)
        self.assertEqual(res.anomalies[0].ops[1].id, "u")

    def test_failed_append_seen_by_a_read(self):
        self.assertKinds([F_("f", 0, 1), R(["f"], 0.5, 2)], [], {lz.READ_SAW_ABSENT: 1})

    def test_append_order_inverted_in_real_time(self):
        res = self.assertKinds([A("a", 2, 0, 1), A("b", 1, 2, 3)], log("b", "a"),
                               {lz.APPEND_ORDER: 1})
        self.assertEqual([op.id for op in res.anomalies[0].ops], ["a", "b"])

    def test_unknown_append_placed_before_an_earlier_ack(self):
        # u was invoked after a was acknowledged, so it cannot precede a
        self.assertKinds([A("a", 2, 0, 1), U("u", 2, 3)], log("u", "a"), {lz.APPEND_ORDER: 1})

    def test_definite_failure_in_the_log(self):
        self.assertKinds([A("a", 1, 0, 1), F_("f", 2, 3)], log("a", "f"), {lz.FAILED_APPLIED: 1})

    def test_lost_acked_append(self):
        self.assertKinds([A("a", 1, 0, 1), A("b", 2, 2, 3)], log("a"), {lz.LOST: 1})

    def test_read_saw_an_append_not_yet_invoked(self):
        self.assertKinds([R(["a"], 0, 1), A("a", 1, 2, 3)], log("a"), {lz.READ_SAW_FUTURE: 1})
        # an unknown one too: it cannot take effect before it is invoked
        self.assertKinds([R(["u"], 0, 1), U("u", 2, 3)], log("u"), {lz.READ_SAW_FUTURE: 1})

    def test_duplicate_and_phantom_entries(self):
        self.assertKinds([A("a", 1, 0, 1)], [E(1, "a"), E(2, "a")], {lz.DUPLICATE: 1})
        self.assertKinds([A("a", 1, 0, 1)], [E(1, "a"), E(2, "x")], {lz.PHANTOM: 1})
        self.assertKinds([A("a", 1, 0, 1)], [(1, "a", "changed")], {lz.DATA_MISMATCH: 1})
        self.assertKinds([A("a", 1, 0, 1), U("b", 0, 1)], [E(2, "b"), E(1, "a")],
                         {lz.BAD_FINAL_LOG: 1})

    def test_read_incomplete_for_its_commit_index(self):
        final = [E(2, "a"), E(5, "b")]
        h = [A("a", 2, 0, 1), A("b", 5, 0, 1)]
        # claims commit index 5 but lacks b
        self.assertKinds(h + [R([E(2, "a")], 0.5, 3, commit_index=5)], final,
                         {lz.INCOMPLETE_READ: 1})
        # returns b above the commit index it names
        self.assertKinds(h + [R([E(2, "a"), E(5, "b")], 0.5, 3, commit_index=4)], final,
                         {lz.INCOMPLETE_READ: 1})

    def test_each_real_time_rule_alone(self):
        """C1..C4 are independent: each has a history where it alone fails
        while every value check passes."""
        self.assertKinds([A("a", 2, 0, 1), A("b", 1, 2, 3)], log("b", "a"), {lz.APPEND_ORDER: 1})
        self.assertKinds([A("a", 1, 0, 1), R([], 2, 3)], log("a"), {lz.STALE_READ: 1})
        self.assertKinds([R(["a"], 0, 1), A("a", 1, 2, 3)], log("a"), {lz.READ_SAW_FUTURE: 1})
        self.assertKinds([A("a", 1, 0, 10), R(["a"], 1, 2), R([], 3, 4)], log("a"),
                         {lz.NONMONOTONIC_READ: 1})

    def test_report_names_the_operations(self):
        h = [A("a", 1, 100.0, 100.5), R([], 101.0, 101.25)]
        res = check(h, log("a"))
        text = res.report()
        self.assertIn("stale_read", text)
        self.assertIn("id='a'", text)
        self.assertIn("[0.000000, 0.500000]", text)   # times relative to the first invocation
        self.assertIn("[1.000000, 1.250000]", text)
        self.assertIn("position 1", text)
        self.assertIn("position 0", text)
        self.assertIn("1 anomalies (stale_read 1)", res.summary())

    def test_malformed_history(self):
        with self.assertRaises(ValueError):
            check([A("a", 1, 0, 1), U("a", 2, 3)], log("a"))
        with self.assertRaises(ValueError):
            A("a", 1, 2, 1)


class Scale(unittest.TestCase):
    def test_large_history_is_fast(self):
        """20 000 operations (about half reads of growing prefixes, some
        unknown appends present late or absent): legal, and checked in
        O(n log n) time (well under a few seconds even on a slow machine)."""
        rng = random.Random(7)
        h, final, t = [], [], 0.0
        pending = []
        for i in range(10000):
            t += 1.0
            if rng.random() < 0.1:
                name = f"u{i}"
                h.append(U(name, t, t + 0.5))
                if rng.random() < 0.5:
                    pending.append(name)
            else:
                if pending and rng.random() < 0.3:
                    final.append(E(len(final) + 1, pending.pop()))
                name = f"a{i}"
                final.append(E(len(final) + 1, name))
                h.append(A(name, len(final), t, t + 0.5))
            if i % 20 == 0:
                h.append(R([e for e in final], t + 0.6, t + 0.7, commit_index=len(final)))
            else:
                h.append(read_unknown(t + 0.6, t + 0.7))
        t0 = time.monotonic()
        res = check(h, final)
        took = time.monotonic() - t0
        self.assertTrue(res.ok, res.report())
        self.assertLess(took, 10.0)


# ---------------------------------------------------------------------------
# Cross-check against an exhaustive search
# ---------------------------------------------------------------------------

def brute_force(history, final):
    """Is there a linearization? Search every order of the operations that
    extends real-time precedence (unknown appends may be left out or come
    anywhere after their invocation; failed appends never take effect;
    reads without a result are dropped), running the sequential log and
    comparing results; the run must end in `final`. Indexes have no gaps."""
    final = [lz.entry(e) for e in final]
    must = [op for op in history if op.outcome == lz.OK]
    may = [op for op in history if op.kind == lz.APPEND and op.outcome == lz.UNKNOWN]
    cand = must + may
    n_must = len(must)
    seen = set()

    def ok_next(op, done):
        # every mandatory operation that completed before op was invoked is done
        return all(j in done for j in range(n_must) if must[j].complete < op.invoke)

    def go(done, state):
        key = (done, state)
        if key in seen:
            return False
        seen.add(key)
        if all(j in done for j in range(n_must)) and list(state) == final:
            return True
        for j, op in enumerate(cand):
            if j in done or not ok_next(op, done):
                continue
            if op.kind == lz.APPEND:
                e = (len(state) + 1, op.id, op.data)
                if op.outcome == lz.OK and op.index != e[0]:
                    continue
                if go(done | {j}, state + (e,)):
                    return True
            else:
                if op.entries != list(state):
                    continue
                if go(done | {j}, state):
                    return True
        return False

    return go(frozenset(), ())


def random_history(rng):
    """A random execution of the log (linearization points inside the
    intervals, unknown appends taking effect late or never), and then,
    most of the time, one random corruption of it (which may or may not
    make it illegal)."""
    n = rng.randint(1, 6)
    ops = []
    for i in range(n):
        t0 = rng.randint(0, 8)
        t1 = t0 + rng.randint(0, 4)
        if rng.random() < 0.55:
            r = rng.random()
            outcome = lz.OK if r < 0.6 else lz.UNKNOWN if r < 0.9 else lz.FAIL
            if outcome == lz.FAIL:
                point = None
            elif outcome == lz.UNKNOWN:
                point = None if rng.random() < 0.4 else rng.uniform(t0, t1 + 6)
            else:
                point = rng.uniform(t0, t1)
            ops.append(["append", f"x{i}", outcome, t0, t1, point])
        else:
            outcome = lz.OK if rng.random() < 0.85 else lz.UNKNOWN
            ops.append(["read", None, outcome, t0, t1, rng.uniform(t0, t1)])
    state = []
    result = {}
    for k in sorted((k for k in range(n) if ops[k][5] is not None), key=lambda k: ops[k][5]):
        kind, name = ops[k][0], ops[k][1]
        if kind == "append":
            state.append(E(len(state) + 1, name))
            result[k] = len(state)
        else:
            result[k] = list(state)
    final = list(state)
    if rng.random() < 0.8:
        c = rng.randrange(6)
        reads = [k for k in range(n) if ops[k][0] == "read" and ops[k][2] == lz.OK]
        oks = [k for k in range(n) if ops[k][0] == "append" and ops[k][2] == lz.OK]
        if c == 0 and reads:                       # a read of another prefix length
            k = rng.choice(reads)
            result[k] = final[:rng.randint(0, len(final))]
        elif c == 1 and oks:                       # an ack with another index
            k = rng.choice(oks)
            result[k] = result[k] + rng.choice((-1, 1))
        elif c == 2 and len(final) >= 2:           # two final entries swapped
            i, j = rng.sample(range(len(final)), 2)
            ids = [e[1] for e in final]
            ids[i], ids[j] = ids[j], ids[i]
            final = [E(x + 1, name) for x, name in enumerate(ids)]
        elif c == 3:                               # some operation moved in time
            k = rng.randrange(n)
            d = rng.randint(-4, 4)
            ops[k][3] = max(0, ops[k][3] + d)
            ops[k][4] = max(ops[k][3], ops[k][4] + d)
        elif c == 4 and reads:                     # a read that saw an extra entry
            k = rng.choice(reads)
            names = [o[1] for o in ops if o[0] == "append"]
            if names:
                result[k] = result[k] + [E(len(result[k]) + 1, rng.choice(names))]
        elif c == 5:                               # an outcome changed
            k = rng.randrange(n)
            if ops[k][0] == "append":
                ops[k][2] = rng.choice((lz.OK, lz.FAIL, lz.UNKNOWN))
                if ops[k][2] == lz.OK and k not in result:
                    result[k] = rng.randint(1, max(1, len(final)))
    history = []
    for k, (kind, name, outcome, t0, t1, _) in enumerate(ops):
        if kind == "append":
            if outcome == lz.OK:
                history.append(A(name, result.get(k, 1), t0, t1))
            elif outcome == lz.UNKNOWN:
                history.append(U(name, t0, t1))
            else:
                history.append(F_(name, t0, t1))
        else:
            if outcome == lz.OK:
                history.append(R(result.get(k, []), t0, t1))
            else:
                history.append(read_unknown(t0, t1))
    return history, final


class AgainstBruteForce(unittest.TestCase):
    def test_random_small_histories(self):
        rng = random.Random(20240601)
        verdicts = {True: 0, False: 0}
        for trial in range(4000):
            history, final = random_history(rng)
            want = brute_force(history, final)
            res = check(history, final)
            if res.ok != want:
                lines = "\n".join("  " + op.describe() for op in history)
                self.fail(f"trial {trial}: checker says {res.ok}, exhaustive search says {want}\n"
                          f"history:\n{lines}\nfinal: {final}\n{res.report()}")
            verdicts[want] += 1
        # both kinds well represented, or the cross-check proves little
        self.assertGreater(verdicts[True], 1000, verdicts)
        self.assertGreater(verdicts[False], 1000, verdicts)
        print(f"\n  brute-force cross-check: {verdicts[True]} linearizable, "
              f"{verdicts[False]} not, all agreed", flush=True)


if __name__ == "__main__":
    unittest.main()
