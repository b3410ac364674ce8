# ruff: noqa: F821
"""Create a file in the host's /tmp (the test checks the host path afterwards)."""


def f():
    with open(CTX["targets"]["tmp"], "w") as fh:
        fh.write("pwned")
    return "wrote"
