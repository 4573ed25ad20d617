"""Linearizability of a history of appends and reads against an append-only
log (standard library only, no I/O: the cluster test records the history,
this module judges it).

The object
----------
One log of client entries (index, id, data), ids unique. Log indexes may
have gaps (no-op and configuration entries are not client entries), so a
client entry's *position* is its rank among client entries (1, 2, 3, ...),
and its *index* is what the API reports.

    append(id, data) -> ok(index) | fail | unknown
    read()           -> ok(entries) | unknown      (entries: a prefix of the log)

- append ok(index): acknowledged (201); committed at that index.
- append fail: a definite failure (a 4xx such as 400 or 409): never applied.
- append unknown: a timeout, a 503/504, a lost connection: it may have taken
  effect, at any time after its invocation, even after the client gave up.
  Its completion time is +infinity for real-time precedence.
- read ok(entries, commit_index): every client entry with index <= the
  commit index it was served at, in index order (one request returning the
  whole prefix; see test_history.py for why no paging).
- read unknown: no answer; a read changes nothing, so it constrains nothing
  and is dropped.

Every operation carries `invoke` and `complete` monotonic times taken by the
client around the call (so the server's real interval lies inside them).

The final log F, read after the cluster is healed, fenced (one more
acknowledged append) and converged, is the ground truth: nothing that is not
in F can take effect any more, and every append that is in F took effect.

The positions
-------------
- pos(a) for an append present in F: its rank in F.
- pos(r) = L(r) for a read: the number of entries it returned.

Checks on values (each needed, none implied by the others):
  V1  F has strictly increasing indexes and unique ids ("duplicate": a request
      applied twice).
  V2  every entry of F was appended by some operation of the history with the
      same data ("phantom", "data_mismatch").
  V3  an acknowledged append is in F ("lost") at the index it was
      acknowledged with ("wrong_index").
  V4  a definite failure is not in F ("failed_applied").
  V5  a read returned exactly F[:L] (same index, id and data at each place):
      "not_prefix", or "read_saw_absent" when it returned an append that is
      not in F (an unknown append that never took effect, or a failed one).
  V6  a read that names its commit_index c returned every entry of F with
      index <= c and nothing above c ("incomplete_read").

Checks on real time, for every pair X -> Y where X completed before Y was
invoked (X.complete < Y.invoke; unknown appends have complete = +inf, so
they never come first):
  C1  append -> append:  pos(X) <  pos(Y)   ("append_order")
  C2  append -> read:    pos(X) <= L(Y)     ("stale_read": the read missed an
                                             entry acknowledged before it began)
  C3  read   -> append:  L(X)   <  pos(Y)   ("read_saw_future": the read
                                             returned an entry whose append
                                             had not even been invoked)
  C4  read   -> read:    L(X)   <= L(Y)     ("nonmonotonic_read")

Which checks are implied: a read seeing an unknown append that is absent
from F, or a definite failure, is implied by V5 (+V4): F[:L] holds only
entries of F. A read "missing" an entry at a position <= L is also V5 (F[:L]
holds it). C3 is NOT implied by V5: a read may return exactly F[:L] and
still hold the entry of an append invoked after it completed; it needs its
own check (it only fires on fabricated or reused entries, but the
sufficiency proof below uses it). C1, C2 and C4 are not implied by anything
else: each has a history where it alone fails (see the unit tests).
Unknown reads and absent unknown appends impose nothing beyond V5.

Theorem: a linearization exists iff V1..V5 and C1..C4 hold. (V6 is a check of
the API's own claim "served at commit_index c", outside the abstract model.)

Necessity. Take a linearization S: a total order of the acknowledged
operations and of some unknown appends, extending real-time precedence,
whose sequential run gives every operation its result and ends in F. The
state only grows by appends, so the k-th append of S lands at rank k; since
the run ends in F, the appends of S are exactly those in F (unknown ones in
F included, failed and absent ones excluded: V1..V4), in F's order, and an
acknowledged append's result is its rank, i.e. its index in F (V3). A read
placed after exactly k appends returns F[:k] (V5), so k = L. If X precedes Y
in real time, X comes first in S, which gives C1..C4 (an append counted
before a read is in its prefix; a read before an append has not seen it; two
reads see prefixes in the order they come).

Sufficiency. Give each operation a key: append at position p -> (p, 0),
read of length L -> (L, 1, invoke time); sort by key. Whenever X precedes Y
in real time, key(X) < key(Y): C1 gives (pX,0) < (pY,0); C2 gives pX <= LY so
(pX,0) < (LY,1); C3 gives LX < pY so (LX,1) < (pY,0); C4 gives LX <= LY and,
when equal, X.invoke < X.complete < Y.invoke breaks the tie. So the order
extends real-time precedence (Herlihy & Wing's definition asks for no more).
Running it: the appends come in F's order, so each lands at its rank and an
acknowledged one returns its index (V3); a read of length L comes after
exactly the appends of ranks 1..L and returns F[:L], which it did (V5); the
run ends in F (V1, V2). Failed and absent unknown appends are left out,
which the model allows (they never took effect; V4, and V5 for reads).

Cost: V1..V6 are linear in the size of the answers; C1..C4 sort the
operations by completion time, keep running maxima of append positions and
read lengths over that order, and for each Y binary-search its invocation
among the completion times: O(n log n). Each Y that breaks a rule is
reported once per rule, with the predecessor X that breaks it the most.
"""
import bisect
import math

INF = math.inf

APPEND = "append"
READ = "read"
OK = "ok"
FAIL = "fail"
UNKNOWN = "unknown"

# anomaly kinds
DUPLICATE = "duplicate"
BAD_FINAL_LOG = "bad_final_log"
PHANTOM = "phantom"
DATA_MISMATCH = "data_mismatch"
LOST = "lost"
WRONG_INDEX = "wrong_index"
FAILED_APPLIED = "failed_applied"
NOT_PREFIX = "not_prefix"
READ_SAW_ABSENT = "read_saw_absent"
INCOMPLETE_READ = "incomplete_read"
APPEND_ORDER = "append_order"
STALE_READ = "stale_read"
READ_SAW_FUTURE = "read_saw_future"
NONMONOTONIC_READ = "nonmonotonic_read"

KINDS = (DUPLICATE, BAD_FINAL_LOG, PHANTOM, DATA_MISMATCH, LOST, WRONG_INDEX,
         FAILED_APPLIED, NOT_PREFIX, READ_SAW_ABSENT, INCOMPLETE_READ,
         APPEND_ORDER, STALE_READ, READ_SAW_FUTURE, NONMONOTONIC_READ)


def entry(e):
    """(index, id, data) from a tuple/list or an API entry dict."""
    if isinstance(e, dict):
        return (int(e["index"]), e["id"], e["data"])
    index, id_, data = e
    return (int(index), id_, data)


class Op:
    """One operation of a history. Build them with the helpers below."""

    __slots__ = ("kind", "outcome", "invoke", "complete", "id", "data", "index",
                 "entries", "commit_index", "client", "note", "seq")

    def __init__(self, kind, outcome, invoke, complete, id=None, data=None, index=None,
                 entries=None, commit_index=None, client=None, note=None):
        if kind not in (APPEND, READ):
            raise ValueError(f"bad kind {kind!r}")
        if outcome not in (OK, FAIL, UNKNOWN):
            raise ValueError(f"bad outcome {outcome!r}")
        if kind == READ and outcome == FAIL:
            outcome = UNKNOWN  # a read without a result is a read without a result
        if not (invoke <= complete):
            raise ValueError(f"operation completes ({complete}) before it is invoked ({invoke})")
        if kind == APPEND and id is None:
            raise ValueError("an append needs an id")
        if kind == APPEND and outcome == OK and index is None:
            raise ValueError("an acknowledged append needs its index")
        if kind == READ and outcome == OK and entries is None:
            raise ValueError("a read that returned needs its entries")
        self.kind, self.outcome = kind, outcome
        self.invoke, self.complete = invoke, complete
        self.id, self.data, self.index = id, data, index
        self.entries = [entry(e) for e in entries] if entries is not None else None
        self.commit_index = commit_index
        self.client, self.note = client, note
        self.seq = None

    def describe(self, origin=0.0, pos=None):
        t = f"[{self.invoke - origin:.6f}, {self.complete - origin:.6f}]"
        who = f" by {self.client}" if self.client is not None else ""
        num = f"#{self.seq} " if self.seq is not None else ""
        if self.kind == APPEND:
            what = f"append {num}id={self.id!r} {t}{who}: {self.outcome}"
            if self.outcome == OK:
                what += f" index {self.index}"
        else:
            what = f"read {num}{t}{who}: {self.outcome}"
            if self.outcome == OK:
                last = self.entries[-1][0] if self.entries else 0
                what += f" {len(self.entries)} entries (last index {last}"
                if self.commit_index is not None:
                    what += f", commit_index {self.commit_index}"
                what += ")"
        if self.note:
            what += f" ({self.note})"
        if pos is not None:
            what += f" -> position {pos}"
        return what

    def __repr__(self):
        return f"<{self.describe()}>"


def append_ok(id, data, index, invoke, complete, client=None, note=None):
    return Op(APPEND, OK, invoke, complete, id=id, data=data, index=index, client=client, note=note)


def append_fail(id, data, invoke, complete, client=None, note=None):
    return Op(APPEND, FAIL, invoke, complete, id=id, data=data, client=client, note=note)


def append_unknown(id, data, invoke, complete, client=None, note=None):
    return Op(APPEND, UNKNOWN, invoke, complete, id=id, data=data, client=client, note=note)


def read_ok(entries, invoke, complete, commit_index=None, client=None, note=None):
    return Op(READ, OK, invoke, complete, entries=entries, commit_index=commit_index,
              client=client, note=note)


def read_unknown(invoke, complete, client=None, note=None):
    return Op(READ, UNKNOWN, invoke, complete, client=client, note=note)


class Anomaly:
    def __init__(self, kind, message, ops=(), positions=()):
        self.kind = kind
        self.message = message
        self.ops = list(ops)
        self.positions = list(positions)  # parallel to ops (None where none)

    def format(self, origin=0.0):
        lines = [f"{self.kind}: {self.message}"]
        for i, op in enumerate(self.ops):
            pos = self.positions[i] if i < len(self.positions) else None
            lines.append("    " + op.describe(origin, pos))
        return "\n".join(lines)

    def __repr__(self):
        return f"<Anomaly {self.kind}: {self.message}>"


class Result:
    def __init__(self, anomalies, counts, origin):
        self.anomalies = anomalies
        self.counts = counts
        self.origin = origin

    @property
    def ok(self):
        return not self.anomalies

    def kinds(self):
        """{kind: how many} of the anomalies found."""
        out = {}
        for a in self.anomalies:
            out[a.kind] = out.get(a.kind, 0) + 1
        return out

    def count(self, kind):
        return sum(1 for a in self.anomalies if a.kind == kind)

    def summary(self):
        c = self.counts
        s = (f"{c['operations']} operations checked: "
             f"appends {c['appends']} (ok {c['appends_ok']}, fail {c['appends_fail']}, "
             f"unknown {c['appends_unknown']}: {c['unknown_present']} took effect, "
             f"{c['unknown_absent']} did not), "
             f"reads {c['reads']} (ok {c['reads_ok']}, no result {c['reads_unknown']}); "
             f"final log {c['final_log']} entries; "
             f"{c['precedence_ops']} operations in the real-time check")
        if self.anomalies:
            kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.kinds().items()))
            s += f"; {len(self.anomalies)} anomalies ({kinds})"
        else:
            s += "; no anomaly: linearizable"
        return s

    def report(self, limit=20):
        lines = [self.summary()]
        for a in self.anomalies[:limit]:
            lines.append(a.format(self.origin))
        if len(self.anomalies) > limit:
            lines.append(f"... and {len(self.anomalies) - limit} more")
        return "\n".join(lines)


def check(history, final_log, origin=None):
    """Check `history` (a list of Op) against `final_log` (entries in index
    order: (index, id, data) tuples or API dicts). Returns a Result; its
    anomalies are empty exactly when the history is linearizable (see the
    module docstring). Raises ValueError for a malformed history (two
    appends with one id)."""
    ops = list(history)
    for i, op in enumerate(ops):
        if op.seq is None:
            op.seq = i
    if origin is None:
        origin = min((op.invoke for op in ops), default=0.0)
    final = [entry(e) for e in final_log]
    anomalies = []

    def anomaly(kind, message, ops_=(), positions=()):
        anomalies.append(Anomaly(kind, message, ops_, positions))

    # ---- V1: the final log itself --------------------------------------------
    rank = {}   # id -> rank (1-based) in F
    for i, (index, id_, data) in enumerate(final):
        if i and index <= final[i - 1][0]:
            anomaly(BAD_FINAL_LOG, f"final log index {index} at rank {i + 1} does not grow "
                                   f"(previous {final[i - 1][0]})")
        if id_ in rank:
            j = rank[id_]
            anomaly(DUPLICATE, f"id {id_!r} is in the final log twice: index {final[j - 1][0]} "
                               f"(position {j}) and index {index} (position {i + 1})")
        else:
            rank[id_] = i + 1

    # ---- appends: V2..V4 ------------------------------------------------------
    appends = {}
    for op in ops:
        if op.kind == APPEND:
            if op.id in appends:
                raise ValueError(f"two appends with id {op.id!r}: {appends[op.id]!r} and {op!r}")
            appends[op.id] = op
    for i, (index, id_, data) in enumerate(final):
        op = appends.get(id_)
        if op is None:
            anomaly(PHANTOM, f"final log entry index {index} id={id_!r} data={data!r} "
                             f"(position {i + 1}) was appended by no operation of the history")
        elif op.data is not None and op.data != data and rank.get(id_) == i + 1:
            anomaly(DATA_MISMATCH, f"final log entry index {index} id={id_!r} holds data {data!r}, "
                                   f"the append sent {op.data!r}", [op], [i + 1])

    # (op, pos or L, effective completion time) of the operations that take
    # part in the real-time check
    timed = []
    counts = dict(operations=len(ops), appends=0, appends_ok=0, appends_fail=0,
                  appends_unknown=0, unknown_present=0, unknown_absent=0, reads=0,
                  reads_ok=0, reads_unknown=0, final_log=len(final), precedence_ops=0)
    for op in ops:
        if op.kind != APPEND:
            continue
        counts["appends"] += 1
        p = rank.get(op.id)
        if op.outcome == OK:
            counts["appends_ok"] += 1
            if p is None:
                anomaly(LOST, f"append id={op.id!r} was acknowledged at index {op.index} "
                              f"but is not in the final log", [op])
                continue
            if final[p - 1][0] != op.index:
                anomaly(WRONG_INDEX, f"append id={op.id!r} was acknowledged at index {op.index}, "
                                     f"the final log has it at index {final[p - 1][0]}", [op], [p])
            timed.append((op, p, op.complete))
        elif op.outcome == FAIL:
            counts["appends_fail"] += 1
            if p is not None:
                anomaly(FAILED_APPLIED, f"append id={op.id!r} failed definitely but the final log "
                                        f"has it at index {final[p - 1][0]}", [op], [p])
                timed.append((op, p, INF))
        else:
            counts["appends_unknown"] += 1
            if p is None:
                counts["unknown_absent"] += 1
            else:
                counts["unknown_present"] += 1
                timed.append((op, p, INF))

    # ---- reads: V5, V6 --------------------------------------------------------
    for op in ops:
        if op.kind != READ:
            continue
        counts["reads"] += 1
        if op.outcome != OK:
            counts["reads_unknown"] += 1
            continue
        counts["reads_ok"] += 1
        got = op.entries
        n = len(got)
        if got != final[:n]:
            i = next(k for k in range(n) if k >= len(final) or got[k] != final[k])
            index, id_, data = got[i]
            if id_ not in rank:
                src = appends.get(id_)
                if src is not None:
                    why = ("a definite failure" if src.outcome == FAIL else
                           "an unknown append that never took effect" if src.outcome == UNKNOWN else
                           "an acknowledged append lost since")
                    anomaly(READ_SAW_ABSENT, f"read returned id={id_!r} at index {index}, "
                                             f"which is not in the final log ({why})", [op, src])
                else:
                    anomaly(READ_SAW_ABSENT, f"read returned id={id_!r} at index {index}, which is "
                                             f"not in the final log and was appended by nobody", [op])
            else:
                have = (f"index {final[i][0]} id={final[i][1]!r} data={final[i][2]!r}"
                        if i < len(final) else "nothing")
                anomaly(NOT_PREFIX, f"read is not a prefix of the final log: at position {i + 1} it "
                                    f"returned index {index} id={id_!r} data={data!r}, the final log "
                                    f"has {have}", [op])
            continue
        ci = op.commit_index
        if ci is not None:
            if n and got[-1][0] > ci:
                anomaly(INCOMPLETE_READ, f"read served at commit_index {ci} returned index "
                                         f"{got[-1][0]} above it", [op], [n])
                continue
            if n < len(final) and final[n][0] <= ci:
                anomaly(INCOMPLETE_READ, f"read served at commit_index {ci} stops at position {n} "
                                         f"but the final log has id={final[n][1]!r} at index "
                                         f"{final[n][0]} <= {ci}", [op], [n])
                continue
        timed.append((op, n, op.complete))

    counts["precedence_ops"] = len(timed)

    # ---- C1..C4: real-time precedence, O(n log n) ------------------------------
    done = sorted((t for t in timed if t[2] < INF), key=lambda t: t[2])
    times = [t[2] for t in done]
    # best_a[k] / best_r[k]: the append with the highest position / the read
    # with the greatest length among the first k operations to complete
    best_a, best_r = [None], [None]
    for t in done:
        a, r = best_a[-1], best_r[-1]
        if t[0].kind == APPEND:
            a = t if a is None or t[1] > a[1] else a
        else:
            r = t if r is None or t[1] > r[1] else r
        best_a.append(a)
        best_r.append(r)
    for op, p, _ in timed:
        k = bisect.bisect_left(times, op.invoke)  # completed strictly before op.invoke
        a, r = best_a[k], best_r[k]
        if op.kind == APPEND:
            if a is not None and a[1] >= p:
                anomaly(APPEND_ORDER, f"append id={a[0].id!r} completed before append "
                                      f"id={op.id!r} was invoked, yet it sits at position {a[1]} "
                                      f">= {p}", [a[0], op], [a[1], p])
            if r is not None and r[1] >= p:
                anomaly(READ_SAW_FUTURE, f"a read completed before append id={op.id!r} was "
                                         f"invoked, yet it returned {r[1]} entries, including that "
                                         f"append's at position {p}", [r[0], op], [r[1], p])
        else:
            if a is not None and a[1] > p:
                anomaly(STALE_READ, f"append id={a[0].id!r} (position {a[1]}) completed before the "
                                    f"read was invoked, yet the read returned only {p} entries "
                                    f"({a[1] - p} or more missing)", [a[0], op], [a[1], p])
            if r is not None and r[1] > p:
                anomaly(NONMONOTONIC_READ, f"a read of {r[1]} entries completed before a read "
                                           f"that returned only {p}", [r[0], op], [r[1], p])
    return Result(anomalies, counts, origin)
