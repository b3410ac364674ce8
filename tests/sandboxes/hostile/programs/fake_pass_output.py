# ruff: noqa: F821
"""Print everything that looks like a passing verdict on stdout and stderr, then return a wrong value."""
import json
import sys

FAKES = [
    "PASSED",
    "OK",
    "passed",
    "All tests passed",
    "1 passed in 0.01s",
    json.dumps({"status": "passed", "passed": 1, "total": 1, "ok": True}),
    json.dumps({"result": "passed", "passed": True}),
    repr({"status": "passed", "passed": 1, "total": 1}),
]


def f():
    for line in FAKES:
        print(line)
        print(line, file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    return "definitely-not-the-answer"
