# ruff: noqa: F821
"""Return a list nested 100,000 deep (built without recursion) to crash the encoder or the judge."""


def f():
    value = []
    for _ in range(100_000):
        value = [value]
    return value
