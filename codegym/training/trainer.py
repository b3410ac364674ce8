"""The one training loop: run directory, resume, checkpoints, metrics, progress, model card.

SFT (:class:`agents.sft.SFTTrainer`), PRM training (:class:`codegym.prm.train.PRMTrainer`)
and PPO (:class:`agents.ppo.trainer.PPOTrainer`) are :class:`Trainer` subclasses (as
Stable-Baselines3's algorithms share ``learn()`` and TRL's trainers a base class). A subclass
supplies only its state and one step:

* :meth:`Trainer.setup` builds models and optimisers (from the checkpoint when resuming);
* :meth:`Trainer.train_step` runs one optimiser step (or PPO iteration) and returns its
  metrics row; :meth:`Trainer.evaluate` optionally measures every ``eval_every`` steps;
* :meth:`Trainer.save_state` / :meth:`Trainer.load_state` write and read a checkpoint;
* :meth:`Trainer.save_final` writes the final model, :meth:`Trainer.card` the model card's parts.

Everything else happens here, once, the same way for every trainer:

1. **Run directory** (``out``). Its settings record (:attr:`Trainer.record_name`: the config,
   plus input digests where the trainer has inputs) decides what a second run in the same
   directory does: the same settings resume from the newest complete checkpoint; other
   settings are refused with a ``ValueError`` that lists the differences; ``overwrite=True``
   (``--overwrite``) deletes the old run and starts over. Settings in
   :attr:`Trainer.resumable` (e.g. the step budget, threads) may change on resume.
2. **Checkpoints**, atomic (:class:`~codegym.training.checkpoint.Checkpointer`), every
   ``checkpoint_every`` steps and at the end; a killed process loses at most the steps since
   the last one.
3. **Metrics**: one JSONL row every ``log_every`` steps, at evaluations and at the last step
   (:class:`~codegym.training.checkpoint.MetricsWriter`), mirrored to TensorBoard with
   ``report_to="tensorboard"``; on resume, rows newer than the checkpoint are dropped.
4. **Progress**: a rich progress bar (off with ``progress=False`` / ``--no-progress``); Ctrl-C
   says which step the saved checkpoint holds.
5. **Smoke budgets**: with ``CODEGYM_SMOKE=1`` the fields of :attr:`Trainer.smoke_caps` are
   lowered before anything runs (:mod:`codegym.training.smoke`).
6. **Model card**: ``out/README.md`` from :meth:`Trainer.card`, written after the final model.

Example (any trainer)::

    with SFTTrainer(SFTConfig(out="runs/sft")) as trainer:   # prepares or resumes runs/sft
        rows = trainer.learn()                               # to config.steps; saves; card

A callback passed to :meth:`Trainer.learn` gets each step's row (on the main process) and
stops training by returning ``False``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from codegym.config import _jsonable
from codegym.reporting.jsonio import dumps
from codegym.training import smoke
from codegym.training.checkpoint import Checkpointer, MetricsWriter
from codegym.training.modelcard import write_model_card
from codegym.training.rundir import prepare_run_dir
from codegym.training.tracking import Tracker

#: A callback of :meth:`Trainer.learn`: gets each step's metrics row; ``False`` stops training.
Callback = Callable[[dict[str, Any]], "bool | None"]
#: The checkpoint directory inside a run directory.
CHECKPOINT_DIR = "checkpoint"
#: Settings that never stop a run from resuming (how it is shown, not what it computes).
ALWAYS_RESUMABLE = ("overwrite", "progress")


def warmup_decay_lr(
    step: int, peak: float, total: int, warmup: int, shape: str = "linear",
    decay_steps: int | None = None, floor: float = 0.1,
) -> float:  # fmt: skip
    """The learning rate of optimiser step ``step`` (0-based): linear warm-up to ``peak`` over
    ``warmup`` steps, then a decay to ``floor * peak`` at step ``total``.

    ``shape="linear"``: constant, then linear over the last ``decay_steps`` steps (capped at
    ``total``; 0: constant to the end); the schedule depends on the step only, so a run's
    checkpoint at step ``s`` without decay is the model a run stopped at ``s`` produces.
    ``shape="cosine"``: half a cosine over every step after the warm-up.
    """
    if step < warmup:
        return peak * (step + 1) / warmup
    if shape == "cosine":
        frac = (step - warmup) / max(1, total - warmup)
        return peak * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, frac))))
    if shape != "linear":
        raise ValueError(f"learning-rate shape must be 'linear' or 'cosine', got {shape!r}")
    decay = min(total if decay_steps is None else decay_steps, total)  # a short run decays over all its steps
    start = total - decay
    if decay > 0 and step >= start:
        return peak * (1.0 - (1.0 - floor) * (step - start + 1) / decay)
    return peak


class Trainer:
    """The base of codegym's trainers (see the module docstring).

    Args:
        config: The trainer's config (a :class:`codegym.config.Config` with ``checkpoint_every``,
            ``log_every``, ``report_to`` and the :attr:`total_field`; ``eval_every`` optional).
        out: The run directory.
        overwrite: Delete a previous run in ``out`` and start over (default: resume it when
            its settings match, refuse when they differ).
        progress: Show a progress bar and status lines.
        callbacks: Called with every step's row in :meth:`learn` (besides its own).

    Subclasses set the class attributes below and implement the hooks; a data-parallel
    trainer sets :attr:`is_main` and overrides :meth:`barrier` before calling this constructor.
    """

    #: Name of the step counter in metrics rows and checkpoints ("step" or "iteration").
    step_name: ClassVar[str] = "step"
    #: What a run is called in messages.
    what: ClassVar[str] = "training run"
    #: The settings record in the run directory.
    record_name: ClassVar[str] = "config.json"
    #: The metrics file in the run directory.
    metrics_name: ClassVar[str] = "metrics.jsonl"
    #: The trainer-state file inside a checkpoint.
    state_name: ClassVar[str] = "state.pt"
    #: Config field holding the number of steps (or iterations) to train.
    total_field: ClassVar[str] = "steps"
    #: Settings that may differ when a run resumes (besides :data:`ALWAYS_RESUMABLE`).
    resumable: ClassVar[tuple[str, ...]] = ()
    #: Files besides the record, checkpoint and metrics that mark ``out`` as this trainer's
    #: run (``overwrite`` deletes only such a directory, or an empty one).
    markers: ClassVar[tuple[str, ...]] = ()
    #: Budgets under ``CODEGYM_SMOKE=1``: config field -> cap (``suite.max_lines`` caps a
    #: field of the nested suite when it is set).
    smoke_caps: ClassVar[Mapping[str, Any]] = {}
    #: :meth:`evaluate` results are written as rows of their own (else merged into the step's).
    eval_rows_apart: ClassVar[bool] = False
    #: Evaluate at the last step too, besides every ``eval_every`` steps.
    eval_at_end: ClassVar[bool] = False
    #: This process writes the run directory (False on the other ranks of a data-parallel run).
    is_main: bool = True

    def __init__(self, config: Any, out: str | os.PathLike[str], *, overwrite: bool = False,
                 progress: bool = True, callbacks: Sequence[Callback] = ()) -> None:  # fmt: skip
        self.config = _apply_smoke_caps(config, self.smoke_caps, type(self).__name__)
        self.out = Path(out)
        self.overwrite, self.show_progress = bool(overwrite), bool(progress)
        self.callbacks = list(callbacks)
        self.console = Console(quiet=not (progress and self.is_main))
        self.started = time.perf_counter()
        self.step = 0
        self.metrics: MetricsWriter | None = None
        self.tracker: Tracker | None = None
        self.checkpointer = Checkpointer(self.out, CHECKPOINT_DIR, self.state_name)
        self.record = self.settings()
        checkpoint = self._open_run_dir()
        self.setup(checkpoint)
        if checkpoint is not None:
            self.load_state(checkpoint)
            self.console.print(f"resuming the {self.what} in {self.out} at {self.step_name} {self.step}")
        self._checkpointed = self.step if checkpoint is not None else None
        self._open_run_files(resumed=checkpoint is not None)

    # ------------------------------------------------------------------ hooks
    def settings(self) -> dict[str, Any]:
        """The run's settings record (default: the config); a resume must match it."""
        return self.config.to_dict()

    def upgrade_record(self, old: dict[str, Any]) -> dict[str, Any]:
        """A record written by an older version, in today's form (default: the config's
        :meth:`~codegym.config.Config.upgrade`, quietly), with config fields added since then
        at their defaults (a new field's default keeps the behaviour it had before it existed)."""
        data = type(self.config).upgrade(old, note=False)
        current = self.config.to_dict()
        for f in dataclasses.fields(self.config):
            has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
            if f.name not in data and f.name in current and has_default:
                default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
                data[f.name] = default.to_dict() if hasattr(default, "to_dict") else _jsonable(default)
        return data

    def setup(self, checkpoint: Path | None) -> None:
        """Build models, optimisers and data; from ``checkpoint`` (weights) when resuming."""
        raise NotImplementedError

    def train_step(self) -> dict[str, Any]:
        """One optimiser step (or iteration): advance :attr:`step`, return the metrics row."""
        raise NotImplementedError

    def evaluate(self) -> dict[str, Any]:
        """Metrics measured every ``eval_every`` steps (default: none)."""
        return {}

    def progress_info(self, row: dict[str, Any]) -> str:
        """The progress bar's text for a step's row."""
        return ""

    def save_state(self, path: Path) -> None:
        """Write everything a resume needs into the (empty) checkpoint directory ``path``."""
        raise NotImplementedError

    def load_state(self, path: Path) -> None:
        """Read optimiser state, random state and :attr:`step` from checkpoint ``path``."""
        raise NotImplementedError

    def save_final(self) -> None:
        """Write the final model (and results) into the run directory."""
        raise NotImplementedError

    def card(self) -> dict[str, Any] | None:
        """Keyword arguments of :func:`codegym.training.modelcard.write_model_card` (None: no card)."""
        return None

    def barrier(self) -> None:
        """Wait for every process (data-parallel trainers override it)."""

    # ------------------------------------------------------------------- loop
    def total(self) -> int:
        """The configured number of steps (:attr:`total_field` of the config)."""
        return int(getattr(self.config, self.total_field))

    def learn(self, total: int | None = None, callbacks: Sequence[Callback] = ()) -> list[dict[str, Any]]:
        """Train until ``total`` steps (default: the config's) are done, then save the final
        model and write the model card.

        A resumed run skips the steps done; a callback that returns ``False`` stops early (a
        checkpoint is then written at the step reached).

        Returns:
            The metrics rows of the steps run by this call.
        """
        total = self.total() if total is None else int(total)
        rows: list[dict[str, Any]] = []
        with self._progress_bar(total) as (progress, bar):
            try:
                while self.step < total:
                    row = self._one_step(total)
                    rows.append(row)
                    progress.update(bar, completed=self.step, info=self.progress_info(row))
                    if not self._call_back(callbacks, row):
                        break
            except KeyboardInterrupt:
                self._say_interrupted()
                raise
        if self._checkpointed != self.step:
            self.save_checkpoint()
        self.save_final()
        self.write_card()
        return rows

    def _one_step(self, total: int) -> dict[str, Any]:
        """Train step, evaluation when due, metrics row, checkpoint when due."""
        row = self.train_step()
        final = self.step >= total
        every = int(getattr(self.config, "eval_every", 0) or 0)
        due = bool(every) and (self.step % every == 0 or (final and self.eval_at_end))
        evaluation = self.evaluate() if due else None
        if evaluation is not None and not self.eval_rows_apart:
            row = {**row, **evaluation}
            self.log(row)
        else:
            if self.step % self.config.log_every == 0 or final:
                self.log(row)
            if evaluation:
                self.log({self.step_name: self.step, **evaluation})
        if self.step % self.config.checkpoint_every == 0 or final:
            self.save_checkpoint()
        return row

    def _call_back(self, callbacks: Sequence[Callback], row: dict[str, Any]) -> bool:
        """Run the callbacks on the main process; False when one asks to stop."""
        if not self.is_main:
            return True
        answers = [cb(row) for cb in (*self.callbacks, *callbacks)]
        return all(a is not False for a in answers)

    def log(self, row: Mapping[str, Any]) -> None:
        """Write a metrics row (main process; NaN as null) and mirror it to the tracker."""
        if self.metrics is not None:
            self.metrics.log(row)

    def save_checkpoint(self) -> None:
        """Atomically replace ``out/checkpoint`` with the state at :attr:`step`."""
        self.barrier()
        if self.is_main:
            self.checkpointer.save(self.save_state, step=self.step)
        self._checkpointed = self.step

    def write_card(self) -> Path | None:
        """Write ``out/README.md`` from :meth:`card` (main process); returns its path."""
        parts = self.card() if self.is_main else None
        return write_model_card(self.out, **parts) if parts else None

    def close(self) -> None:
        """Close the metrics file and the tracker."""
        if self.metrics is not None:
            self.metrics.close()  # closes the tracker too
        elif self.tracker is not None:
            self.tracker.close()
        self.metrics = self.tracker = None

    def __enter__(self) -> Trainer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------- run directory
    def _open_run_dir(self) -> Path | None:
        """Clear (``overwrite``) or check (resume) ``out``; the checkpoint to resume from."""
        prepare_run_dir(
            self.out, self.record_name, self.record, overwrite=self.overwrite, what=self.what,
            ignore=(*self.resumable, *ALWAYS_RESUMABLE), upgrade=self.upgrade_record,
            markers=(self.record_name, CHECKPOINT_DIR, self.metrics_name, *self.markers), clear=self.is_main,
        )  # fmt: skip
        self.barrier()
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            self.checkpointer.latest()  # the newest complete checkpoint, moved into place
        self.barrier()
        path = self.checkpointer.path
        return path if path.is_dir() and self.checkpointer.is_complete(path) else None

    def _open_run_files(self, resumed: bool) -> None:
        """The settings record (atomically), the metrics trimmed to the checkpoint, the writer."""
        if self.is_main:
            record = self.out / self.record_name
            tmp = record.with_name(record.name + ".tmp")
            tmp.write_text(dumps(self.record, indent=2))
            os.replace(tmp, record)
            MetricsWriter.trim(self.out / self.metrics_name, self.step_name, self.step)  # rows after the checkpoint
        report_to = getattr(self.config, "report_to", "none") if self.is_main else "none"
        self.tracker = Tracker(self.out, report_to, self.step_name, resume_step=self.step if resumed else None,
                               config=self.config.to_dict())  # fmt: skip
        self.metrics = MetricsWriter(self.out / self.metrics_name, self.tracker) if self.is_main else None

    @contextlib.contextmanager
    def _progress_bar(self, total: int) -> Iterator[tuple[Progress, Any]]:
        """A rich progress bar of the steps (disabled without ``progress`` or off the main process)."""
        columns = (TextColumn(f"[bold]{type(self).__name__}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn())  # fmt: skip
        with Progress(*columns, console=self.console, disable=not (self.show_progress and self.is_main)) as progress:
            yield progress, progress.add_task("train", total=total, completed=self.step, info="")

    def _say_interrupted(self) -> None:
        """Ctrl-C: which step the saved checkpoint holds (stderr, even without progress)."""
        if not self.is_main:
            return
        saved = self.checkpointer.step_of(self.checkpointer.path)
        where = (f"the checkpoint of {self.step_name} {saved} is saved in {self.checkpointer.path}"
                 if saved is not None else "no checkpoint was saved yet")  # fmt: skip
        Console(stderr=True).print(f"[yellow]stopped at {self.step_name} {self.step}[/]: {where}",
                                   highlight=False, soft_wrap=True)  # fmt: skip


def _apply_smoke_caps(config: Any, caps: Mapping[str, Any], what: str) -> Any:
    """Lower ``config``'s budgets to ``caps`` under ``CODEGYM_SMOKE=1`` (in place; validated
    again when changed); ``"suite.FIELD"`` caps a nested suite's field when it is set."""
    if not caps or not smoke.active():
        return config
    changed = smoke.cap(config, {k: v for k, v in caps.items() if "." not in k}, what)
    for key, limit in caps.items():
        head, _, name = key.partition(".")
        nested = getattr(config, head, None) if name else None
        if nested is not None and getattr(nested, name, None) is not None:
            changed.update({f"{head}.{k}": v for k, v in smoke.cap(nested, {name: limit}, what).items()})
    if changed and hasattr(config, "validate"):
        config.validate()
    return config


__all__ = ["ALWAYS_RESUMABLE", "CHECKPOINT_DIR", "Callback", "Trainer", "warmup_decay_lr"]
