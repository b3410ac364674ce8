# ruff: noqa: F821
"""Create a file in the project's own directory (and append to nothing there)."""


def f():
    with open(CTX["targets"]["project"], "w") as fh:
        fh.write("pwned")
    return "wrote"
