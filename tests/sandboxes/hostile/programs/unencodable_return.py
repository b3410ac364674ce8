# ruff: noqa: F821
"""Return live objects that are not data (a generator, a function, a module, a class with a
custom __reduce__): nothing of them may be executed or unpickled by the judge."""
import os


class Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned > " + CTX["targets"]["tmp_reduce"],))


def f():
    return [(x for x in range(3)), f, os, Payload()]
