# ruff: noqa: F821
"""Try to raise every finite *hard* resource limit to infinity: "pwned" if any raise is allowed."""
import resource


def f():
    names = ("RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_NPROC", "RLIMIT_FSIZE", "RLIMIT_NOFILE", "RLIMIT_DATA")
    for name in names:
        which = getattr(resource, name)
        soft, hard = resource.getrlimit(which)
        if hard == resource.RLIM_INFINITY:
            continue
        try:
            resource.setrlimit(which, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
            return "pwned"
        except (ValueError, OSError):
            pass
    return "denied"
