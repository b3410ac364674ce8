# ruff: noqa: F821
"""Open descriptors until refused (capped at 100,000): "pwned" if no descriptor limit."""
import os


def f():
    fds = []
    for _ in range(100_000):
        try:
            fds.append(os.open("/dev/null", os.O_RDONLY))
        except OSError:
            break
    return "pwned" if len(fds) >= 100_000 else len(fds)
