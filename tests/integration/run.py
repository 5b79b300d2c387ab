#!/usr/bin/env python3
"""Run the integration tests: python3 tests/integration/run.py [SUBSTRING ...]

Each test_* function in test_*.py (in file, then definition order) gets a
fresh harness.Env and is run with a time limit; its processes are stopped
afterwards.  Prints "ok - name" / "not ok - name: why" per test and, last,
"N passed, M failed".  Exit status 1 if anything failed.
"""
import importlib
import os
import shutil
import signal
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402

TEST_TIME_LIMIT = 60


class TimeLimit(Exception):
    pass


def _alarm(signum, frame):
    raise TimeLimit("test exceeded %d s" % TEST_TIME_LIMIT)


def collect(filters):
    tests = []
    for fn in sorted(os.listdir(HERE)):
        if not (fn.startswith("test_") and fn.endswith(".py")):
            continue
        mod = importlib.import_module(fn[:-3])
        for name, obj in mod.__dict__.items():
            if name.startswith("test_") and callable(obj):
                full = "%s.%s" % (fn[:-3], name)
                if not filters or any(f in full for f in filters):
                    tests.append((full, obj))
    return tests


def main():
    filters = sys.argv[1:]
    for path in (harness.SLUICE, harness.ECHO):
        if not os.access(path, os.X_OK):
            print("not ok - setup: %s is missing (build it first)" % path)
            print("0 passed, 1 failed")
            return 1
    signal.signal(signal.SIGALRM, _alarm)
    passed = failed = 0
    t_all = time.monotonic()
    for name, fn in collect(filters):
        env = harness.Env()
        why = None
        t0 = time.monotonic()
        signal.alarm(TEST_TIME_LIMIT)
        try:
            fn(env)
        except (harness.TestFailure, harness.Closed, TimeLimit) as e:
            why = str(e)
        except Exception as e:  # an unexpected exception is a failure, with where
            tb = traceback.extract_tb(e.__traceback__)
            where = "%s:%d" % (os.path.basename(tb[-1].filename), tb[-1].lineno) if tb else "?"
            why = "%s: %s (at %s)" % (type(e).__name__, e, where)
        finally:
            signal.alarm(0)
        try:
            problems = env.cleanup()
        except Exception as e:
            problems = ["cleanup failed: %s" % e]
        if why is None and problems:
            why = "; ".join(problems)
        dt = time.monotonic() - t0
        if why is None:
            shutil.rmtree(env.tmp, ignore_errors=True)
            passed += 1
            print("ok - %s (%.2fs)" % (name, dt), flush=True)
        else:
            failed += 1
            why = " ".join(why.split())
            print("not ok - %s: %s [files: %s]" % (name, why[:600], env.tmp), flush=True)
    print("# integration suite took %.1fs" % (time.monotonic() - t_all))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
