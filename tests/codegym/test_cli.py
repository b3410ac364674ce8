"""codegym.cli: a Ctrl-C that lands inside a finaliser is not lost."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

PROGRAM = textwrap.dedent(
    """
    import signal, sys, time
    from codegym.cli import _keep_interrupts
    # A shell starts background jobs with SIGINT ignored; a terminal's Ctrl-C needs Python's handler.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if sys.argv[1] == "hook":
        sys.unraisablehook = _keep_interrupts(sys.unraisablehook)

    class Finalised:
        def __del__(self):
            raise KeyboardInterrupt  # what a Ctrl-C during a __del__ looks like

    try:
        Finalised()  # dropped at once: __del__ runs, its exception is "ignored"
        for _ in range(300):
            time.sleep(0.01)
        print("lost")
    except KeyboardInterrupt:
        print("kept")
    """
)


@pytest.mark.parametrize(("mode", "expected"), [("hook", "kept"), ("plain", "lost")])
def test_interrupt_raised_in_a_finaliser_reaches_the_main_program(mode: str, expected: str) -> None:
    # "plain" is the control: without the hook Python drops the interrupt, which is the bug.
    proc = subprocess.run([sys.executable, "-c", PROGRAM, mode], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == expected, proc.stderr
