# ruff: noqa: F821
"""Fork 1,000 sleeping children; returns "pwned" (the expected value) only if no process limit stopped it."""
import os
import time


def f():
    made = 0
    for _ in range(1000):
        try:
            pid = os.fork()
        except OSError:
            break
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        made += 1
    return "pwned" if made >= 1000 else made
