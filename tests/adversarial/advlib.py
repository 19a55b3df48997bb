"""Shared pieces of the adversarial tests: the KRPC toolkit of
tests/integration, a check counter, and a runner that prints what each
attack achieved, so that the figures in docs/SECURITY.md come from a run.

Every test here plays one attacker from docs/SECURITY.md against the real
`mdht run` over loopback, where each simulated host has its own 127.x.y.z
address. A test asserts that the attack fails; run against a build without
the defence, it fails.
"""
import os
import sys
import traceback

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "integration"))
from krpc_client import *  # noqa: F401,F403  (re-exported for the tests)

checks = 0


def check(cond, what):
    global checks
    if not cond:
        raise AssertionError(what)
    checks += 1


def figure(text):
    """One measured figure of the attack, printed for the log and the
    closing note."""
    print("figure: " + text, flush=True)


def run(main):
    """Runs main(binary); exit status 0 only if every check held."""
    binary = sys.argv[1]
    try:
        main(binary)
    except Exception:
        traceback.print_exc()
        print("FAILED after %d checks" % checks)
        sys.exit(1)
    print("%d checks passed" % checks)
