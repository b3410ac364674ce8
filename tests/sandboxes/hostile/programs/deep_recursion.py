# ruff: noqa: F821
"""Unbounded Python recursion (RecursionError)."""


def f():
    return f()
