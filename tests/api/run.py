#!/usr/bin/env python3
"""Runner for the coordinator API tests, as ctest calls it:

  run.py --coordinator BIN --replica BIN [--dashboard-dir DIR] [--figures FILE] MODULE...
  run.py --figures FILE --reset      (start of the run: forget old figures)
  run.py --figures FILE --summary    (end of the run: print every figure)

MODULE is a test module of this directory (test_endpoints, ...), optionally
narrowed as unittest names them (test_load.LoadTests.test_load_under_failover).
"""
import argparse
import json
import os
import sys
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402


def summary(path):
    print("=" * 72)
    print("replicacao coordinator API tests: measured figures")
    print("=" * 72)
    try:
        with open(path, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        rows = []
    if not rows:
        print("(no figures recorded: did the api tests run?)")
    last = None
    for r in rows:
        if r["test"] != last:
            print(f"\n[{r['test']}]")
            last = r["test"]
        print(f"  {r['name']}: {r['value']}")
    print("=" * 72)
    return 0


def summary_to_file(path):
    """Print the summary and keep a copy next to the figures (ctest shows a
    passing test's output only with -V)."""
    import contextlib
    import io
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        summary(path)
    text = buf.getvalue()
    print(text, end="")
    if path:
        out = os.path.splitext(path)[0] + ".txt"
        with open(out, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"(also written to {out})")
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--coordinator")
    ap.add_argument("--replica")
    ap.add_argument("--dashboard-dir")
    ap.add_argument("--figures")
    ap.add_argument("--reset", action="store_true")
    ap.add_argument("--summary", action="store_true")
    ap.add_argument("modules", nargs="*")
    a = ap.parse_args()
    if a.reset:
        if a.figures and os.path.exists(a.figures):
            os.remove(a.figures)
        return 0
    if a.summary:
        return summary_to_file(a.figures)
    for path, name in ((a.coordinator, "--coordinator"), (a.replica, "--replica")):
        if not path or not os.access(path, os.X_OK):
            print(f"run.py: {name} {path!r} is not an executable", file=sys.stderr)
            return 2
    harness.Config.coordinator = a.coordinator
    harness.Config.replica = a.replica
    harness.Config.dashboard_dir = a.dashboard_dir or ""
    harness.Config.figures = a.figures or ""
    suite = unittest.defaultTestLoader.loadTestsFromNames(a.modules or ["test_endpoints"])
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
