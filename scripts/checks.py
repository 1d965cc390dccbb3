"""The one place for the real-process tests' checks: a line per check, counts, and a bounded wait.

    from checks import attempt, check, results, wait_until
    check("name", condition, "detail")      # prints "ok   name" or "FAIL name detail"
    attempt("name", fn)                      # runs fn; an exception fails that check only
    results.passed, results.failed, results.failures
"""
import time


class Results:
    def __init__(self):
        self.passed = 0
        self.failures = []

    @property
    def failed(self):
        return len(self.failures)


results = Results()


def check(name, condition, detail=""):
    if condition:
        results.passed += 1
        print(f"ok   {name} {detail}".rstrip())
    else:
        results.failures.append(name)
        print(f"FAIL {name} {detail}")
    return bool(condition)


def attempt(name, fn):
    """Runs a check that may raise; an exception is a failure of that check only."""
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - report and go on
        check(name, False, f"{type(e).__name__}: {e}")


def wait_until(predicate, timeout=30.0, interval=0.05):
    """Polls `predicate` until it is true (exceptions count as false) or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except Exception:
            pass
        time.sleep(interval)
    return False


def quiet(fn):
    """`fn()`, or False when it raises (a node still starting or re-electing: the caller
    tries again)."""
    try:
        return fn()
    except Exception:  # noqa: BLE001
        return False
