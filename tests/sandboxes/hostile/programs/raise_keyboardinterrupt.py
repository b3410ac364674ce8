# ruff: noqa: F821
"""Raise KeyboardInterrupt from the entry point."""


def f():
    raise KeyboardInterrupt
