# ruff: noqa: F821
"""Plant a symlink in the work dir pointing at a host path, then write through it."""
import os


def f():
    os.symlink(CTX["targets"]["tmp_link"], "escape")
    with open("escape", "w") as fh:
        fh.write("pwned")
    return "wrote"
