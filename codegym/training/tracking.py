"""Experiment tracking: the trainers' metric rows, mirrored to TensorBoard on request.

Every trainer (``codegym sft``, ``train-prm``, ``train``) writes its metric rows to a JSONL
file in its run directory; with ``report_to="tensorboard"`` (``--report-to tensorboard``) a
:class:`Tracker` also writes each numeric field of each row as a TensorBoard scalar **under
the same name** (``losses/policy``, ``charts/pass_rate``, ...), to ``RUN_DIR/tensorboard``::

    tensorboard --logdir runs/          # every run below runs/, side by side

Nested dicts are flattened with ``/`` (``{"buckets": {"1-3": {"pass@1": 0.9}}}`` ->
``buckets/1-3/pass@1``); booleans become 0/1; strings and NaNs are skipped. TensorBoard is
the optional extra ``codegym[tensorboard]``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

#: Accepted ``report_to`` values.
REPORT_TO = ("none", "tensorboard")
#: Subdirectory of a run directory that holds the TensorBoard event files.
TENSORBOARD_DIR = "tensorboard"


def check_report_to(value: str) -> str:
    """Validate a ``report_to`` setting; returns it.

    Raises:
        ValueError: Not one of :data:`REPORT_TO`, or ``"tensorboard"`` without the package.
    """
    if value not in REPORT_TO:
        raise ValueError(f"report_to must be one of {REPORT_TO}, got {value!r}")
    if value == "tensorboard":
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            raise ValueError(
                "report_to='tensorboard' needs the tensorboard package: "
                "pip install 'codegym[tensorboard]'"
            ) from None
    return value


def scalars(row: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, float]]:
    """The ``(name, value)`` scalars of a metric row (see the module docstring)."""
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from scalars(value, name + "/")
        elif isinstance(value, bool):
            yield name, float(value)
        elif isinstance(value, (int, float)) and math.isfinite(float(value)):
            yield name, float(value)


class Tracker:
    """Mirrors metric rows to the tracking backends of ``report_to`` (a no-op for ``"none"``).

    Args:
        run_dir: The run directory (TensorBoard files go to ``run_dir/tensorboard``).
        report_to: ``"none"`` or ``"tensorboard"``.
        step_key: The row field that holds the global step (``iteration`` or ``step``); it is
            not logged as a scalar itself.
        resume_step: When a run resumes from a checkpoint at this step, TensorBoard events
            after it (written before a crash) are purged.
        config: Run settings, logged once as text.
    """

    def __init__(
        self,
        run_dir: str | Path,
        report_to: str = "none",
        step_key: str = "step",
        resume_step: int | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        self.report_to = check_report_to(report_to)
        self.step_key = step_key
        self._writer: Any = None
        if self.report_to == "tensorboard":
            from torch.utils.tensorboard import SummaryWriter

            log_dir = Path(run_dir) / TENSORBOARD_DIR
            purge = None if not resume_step else int(resume_step) + 1
            self._writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge)
            if config is not None and not resume_step:
                import json

                text = json.dumps(dict(config), indent=2, default=str)
                self._writer.add_text("config", "```\n" + text + "\n```", 0)

    def log(self, row: Mapping[str, Any], step: int | None = None) -> None:
        """Write the scalars of ``row`` at ``step`` (default: ``row[step_key]``)."""
        if self._writer is None:
            return
        if step is None:
            step = int(row[self.step_key])
        for name, value in scalars(row):
            if name in (self.step_key, "time"):
                continue
            self._writer.add_scalar(name, value, global_step=step)
        self._writer.flush()

    def close(self) -> None:
        """Flush and close the backends."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def read_tensorboard_scalars(run_dir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """All scalars in ``run_dir/tensorboard``: ``{tag: [(step, value), ...]}`` (for tests and
    notebooks; needs ``tensorboard``)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(Path(run_dir) / TENSORBOARD_DIR), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
