# ruff: noqa: F821
"""Return while a non-daemon thread keeps running (the interpreter would wait on it forever)."""
import threading
import time


def _linger():
    while True:
        time.sleep(0.05)
        try:
            with open("thread-alive.txt", "a") as fh:
                fh.write(".")
        except OSError:
            pass


def f():
    threading.Thread(target=_linger, daemon=False).start()
    return "returned"
