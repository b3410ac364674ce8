# ruff: noqa: F821
"""List the project directory: the sorted listing is the expected value."""
import os


def f():
    return sorted(os.listdir(CTX["project_dir"]))
