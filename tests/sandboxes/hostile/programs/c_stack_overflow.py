# ruff: noqa: F821
"""Lift the recursion limit and recurse until the C stack overflows (segfault)."""
import sys

sys.setrecursionlimit(10**8)


def _down(n):
    return _down(n + 1) + 1


def f():
    return _down(0)
