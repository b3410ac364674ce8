"""The outcome of one sandboxed execution (stdlib only: also shipped to the sandbox workers)."""

import enum

__all__ = ["Status"]


class Status(str, enum.Enum):
    """Outcome of one execution."""

    PASSED = "passed"  #: every test ran and every test passed
    FAILED = "failed"  #: the program ran, at least one test failed
    ERROR = "error"  #: the program or a test raised (syntax error, exception, bad output)
    TIMEOUT = "timeout"  #: wall-clock or CPU limit hit; the whole process group was killed
    MEMORY = "memory"  #: the memory limit was hit
    KILLED = "killed"  #: killed by a signal / sandbox fault (worker died, output flood, ...)
    INVALID_ACTION = "invalid_action"  #: never run: the caller refused the program's last line (e.g. an RL env's invalid action); no test ran
