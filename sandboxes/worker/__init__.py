"""The sandbox worker: the code that runs in a worker process (or container), not in the host.

The host never imports these modules to run them: :mod:`sandboxes.local` and
:mod:`sandboxes.docker` start ``python -I -S -c BOOT`` (the system Python where present, so a
non-root uid can read it) and send it the source of :data:`MODULES` over its stdin, so a
container image never goes stale and the worker runs exactly this tree's code. All of it is
standard-library only. Three process roles:

* **judge** (``J``, :mod:`~sandboxes.worker.judge`, set up by :mod:`~sandboxes.worker.main`):
  trusted; talks to the host, holds the tests, scores each job after its candidate is dead;
* **fork server** (``F``, :mod:`~sandboxes.worker.forkserver`, two per judge): makes one
  isolated child per job;
* **candidate** (``C``, :mod:`~sandboxes.worker.runner`): untrusted; runs the program and
  answers calls by value.

:mod:`~sandboxes.worker.protocol` holds every wire format and the one verdict constructor;
:mod:`~sandboxes.worker.syscalls` the Linux calls and the candidates' seccomp filter;
:mod:`~sandboxes.worker.cgroups` the per-job memory limits, :mod:`~sandboxes.worker.sysroot`
the in-memory copy of the system files that jobs see.
"""

#: modules sent to a worker, in load order: (name, is a package)
MODULES = (
    ("sandboxes", True),
    ("sandboxes.status", False),
    ("sandboxes.encoding", False),
    ("sandboxes.worker", True),
    ("sandboxes.worker.syscalls", False),
    ("sandboxes.worker.protocol", False),
    ("sandboxes.worker.cgroups", False),
    ("sandboxes.worker.runner", False),
    ("sandboxes.worker.sysroot", False),
    ("sandboxes.worker.forkserver", False),
    ("sandboxes.worker.calls", False),
    ("sandboxes.worker.judge", False),
    ("sandboxes.worker.main", False),
)
