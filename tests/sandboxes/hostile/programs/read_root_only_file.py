# ruff: noqa: F821
"""Read /etc/shadow (root-only on the host): its host content is the expected value."""


def f():
    with open("/etc/shadow") as fh:
        return fh.read()
