# ruff: noqa: F821
"""os.system: a shell that writes into the host /tmp and leaves a background sleep running."""
import os


def f():
    os.system(f"echo pwned > {CTX['targets']['tmp_sh']}")
    os.system(f"sleep {CTX['sleep_arg']} &")
    return "ran"
