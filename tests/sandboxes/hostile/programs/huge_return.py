# ruff: noqa: F821
"""Return a 64 MiB string: the harness must cap what it reads, not choke on it."""


def f():
    return "x" * (64 << 20)
