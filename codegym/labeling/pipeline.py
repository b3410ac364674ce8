"""The labeling run: sample responses, label them, append JSONL rows, resume after a crash.

Response ``r`` answers task ``r // samples_per_task`` of the split and is sampled (then
labeled) with its own generator ``np.random.default_rng([seed, r])``, so any response can be
regenerated exactly. Responses are processed in order; each finished row is appended to the
output with ``flush`` + ``fsync``. A re-run with the same settings reads the finished rows
(repairing a truncated last line left by a crash), restores the prefix-verdict cache from
them, and continues with the first missing response: the final file is the same as that of
an uninterrupted run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from codegym.config import Config
from codegym.labeling.core import Completer, LabelConfig, Labeler, SearchCost, max_prefix_checks
from codegym.reporting.jsonio import dumps
from codegym.tasks.base import Task
from codegym.tasks.registry import SuiteConfig, TaskSuite, nest_suite_fields, suite_class
from sandboxes import Sandbox

#: Keys of a row's ``"run"`` dict that must match for a run to resume into a file.
RUN_KEYS = (
    "suite", "split", "suite_kwargs", "seed", "samples_per_task", "k", "chunk", "prefetch", "mode",
    "completer", "first_task", "format", "k_per_line", "k_max",
)
#: Row formats of a label file (see :class:`LabelRunConfig`).
ROW_FORMATS = ("codegym", "trl")
#: Values that rows written before a run key existed are taken to have.
_RUN_KEY_DEFAULTS: dict[str, Any] = {"first_task": 0, "format": "codegym", "k_per_line": False, "k_max": None}


def row_lines(row: dict[str, Any]) -> tuple[list[str], list[int]]:
    """codegym's lines and labels of a label row in either format."""
    if "line_labels" in row:
        return list(row["lines"]), list(row["line_labels"])
    return list(row["completions"]), list(row["labels"])


@dataclass(frozen=True)
class LabelRunConfig(Config):
    """Settings of a labeling run (``codegym label``).

    Attributes:
        suite: The tasks (:class:`codegym.tasks.SuiteConfig`): the suite, the split to draw
            them from (``None``: ``"train"`` when the suite has one, else the suite's default
            split) and its knobs (e.g. ``min_lines``/``max_lines``).
        responses: Number of responses to label (response indices ``0 .. responses - 1``).
        samples_per_task: Responses per task (response ``r`` answers task
            ``first_task + r // samples_per_task``); with more than one, prefix verdicts are
            shared.
        seed: Seed of every response's generator (``default_rng([seed, r])``).
        label: Labeler settings (``k``, ``chunk``, ``mode``, limits).
        completer_id: A description of the completer (recorded in rows; a resume with a
            different one is refused).
        first_task: Index of the first task of the split to answer (label files from
            several policies can cover different tasks).
        format: Row format: ``"codegym"`` (labels +1/-1/0, one per line) or ``"trl"`` (what
            TRL's ``PRMTrainer`` reads as it is: boolean labels per step, codegym's lines and
            labels kept in ``lines``/``line_labels``; see :func:`codegym.prm.data.trl_row`).
    """

    suite: SuiteConfig = field(default_factory=SuiteConfig)
    responses: int = 100
    samples_per_task: int = 1
    seed: int = 0
    label: LabelConfig = field(default_factory=LabelConfig)
    completer_id: str = ""
    first_task: int = 0
    format: str = "codegym"

    @classmethod
    def upgrade(cls, data: Mapping[str, Any], note: bool = True) -> dict[str, Any]:
        """Configs that predate :class:`SuiteConfig` held ``suite`` (a spec), ``split`` and
        ``suite_kwargs`` (the suite's constructor arguments) at the top level: read as
        ``suite`` (with a note)."""
        data = dict(data)
        kwargs = data.pop("suite_kwargs", None) or {}
        renamed = {"min_steps": "min_steps", "max_steps": "max_steps", "seed": "suite_seed"}  # their flat names
        unknown = sorted(set(kwargs) - set(renamed))
        if unknown:
            raise ValueError(f"suite_kwargs {unknown} have no SuiteConfig field; valid: {sorted(renamed)}")
        data.update({renamed[k]: v for k, v in kwargs.items()})
        return nest_suite_fields(cls, data, note=note)

    def validate(self) -> LabelRunConfig:
        """Raise ``ValueError`` naming a bad setting; returns self (runs on construction)."""
        if not isinstance(self.first_task, int) or self.first_task < 0:
            raise ValueError(f"first_task must be an int >= 0, got {self.first_task!r}")
        if self.format not in ROW_FORMATS:
            raise ValueError(f"format must be one of {ROW_FORMATS}, got {self.format!r}")
        if not isinstance(self.responses, int) or self.responses < 0:
            raise ValueError(f"responses must be an int >= 0, got {self.responses!r}")
        if not isinstance(self.samples_per_task, int) or self.samples_per_task < 1:
            raise ValueError(f"samples_per_task must be an int >= 1, got {self.samples_per_task!r}")
        return self


def response_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of response ``index`` (sampling the response, then its completions)."""
    return np.random.default_rng([int(seed), int(index)])


def summary_path(out: str | Path) -> Path:
    """``labels.jsonl`` -> ``labels.summary.json`` (beside the output)."""
    out = Path(out)
    stem = out.name[: -len(".jsonl")] if out.name.endswith(".jsonl") else out.name
    return out.with_name(stem + ".summary.json")


def read_rows(path: str | Path, repair: bool = False) -> list[dict[str, Any]]:
    """Read a label file.

    A last line without its newline is what a crash mid-write leaves: it is dropped (and cut
    from the file when ``repair`` is true). Any other line that is not a JSON object raises.

    Raises:
        ValueError: A complete line is not valid JSON (names the file and line).
    """
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    cut = data.rfind(b"\n") + 1
    if cut < len(data) and repair:
        with open(path, "r+b") as f:
            f.truncate(cut)
            f.flush()
            os.fsync(f.fileno())
    rows: list[dict[str, Any]] = []
    for lineno, raw in enumerate(data[:cut].split(b"\n")[:-1], start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as e:
            raise ValueError(
                f"{path}:{lineno}: corrupt label row ({e.msg}); remove the line or use a new --out"
            ) from e
        if not isinstance(row, dict) or "response_index" not in row:
            raise ValueError(f"{path}:{lineno}: not a codegym label row (no 'response_index')")
        rows.append(row)
    return rows


def append_row(path: Path, row: dict[str, Any]) -> None:
    """Append one JSON row and make it durable (flush + fsync)."""
    data = (json.dumps(row, ensure_ascii=False) + "\n").encode()
    with open(path, "ab") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


class LabelRun:
    """One labeling run into one output file (resumable).

    Args:
        out: Output JSONL path (appended to; created with its parent directory).
        completer: Samples the completions of prefixes (and the responses, unless
            ``responder`` is given).
        sandbox: Executes programs.
        config: See :class:`LabelRunConfig`.
        suite: An already-built suite (default: ``config.suite.load()``).
        responder: Samples the responses to label (default: ``completer``). A stronger
            completer than the policy whose responses are labeled gives far better labels where
            that policy rarely finishes a program (``docs/results.md``); record it in
            ``config.completer_id``.
    """

    def __init__(
        self,
        out: str | Path,
        completer: Completer,
        sandbox: Sandbox,
        config: LabelRunConfig,
        suite: TaskSuite | None = None,
        responder: Completer | None = None,
    ):
        self.out = Path(out)
        self.config = config
        self.suite = suite if suite is not None else config.suite.load()
        self.split = config.suite.pick_split(self.suite, "train")
        size = self.suite.size(self.split)
        needed = config.first_task + -(-config.responses // config.samples_per_task)
        if size is not None and needed > size:
            raise ValueError(
                f"--responses {config.responses} from task {config.first_task} exceeds split "
                f"{self.split!r} of suite {config.suite.name!r} ({size} tasks, "
                f"{config.samples_per_task} per task); lower --responses or raise --samples-per-task"
            )
        self.completer = completer
        self.responder = responder if responder is not None else completer
        self.labeler = Labeler(completer, sandbox, config.label)
        self.run_info: dict[str, Any] = {
            "suite": config.suite.name,
            "split": self.split,
            # the suite's constructor arguments (the row format predates SuiteConfig)
            "suite_kwargs": dict(sorted(suite_class(config.suite.name).config_kwargs(config.suite).items())),
            "seed": config.seed,
            "samples_per_task": config.samples_per_task,
            "k": config.label.k,
            "chunk": config.label.chunk,
            "prefetch": config.label.prefetch,
            "mode": config.label.mode,
            "k_per_line": config.label.k_per_line,
            "k_max": config.label.k_max,
            "completer": config.completer_id or (
                repr(completer) if responder is None else f"responses {responder!r}; completions {completer!r}"
            ),
            "first_task": config.first_task,
            "format": config.format,
        }
        self.rows: list[dict[str, Any]] = []

    def task_for(self, index: int) -> Task:
        """The task answered by response ``index``."""
        return self.suite.get(self.split, self.config.first_task + index // self.config.samples_per_task)

    def _check_run(self, row: dict[str, Any], lineno: int) -> None:
        theirs = {**_RUN_KEY_DEFAULTS, **row.get("run", {})}  # files from before a key existed
        diff = [k for k in RUN_KEYS if json.dumps(theirs.get(k)) != json.dumps(self.run_info[k])]
        if diff:
            details = ", ".join(f"{k}: file has {theirs.get(k)!r}, now {self.run_info[k]!r}" for k in diff)
            raise ValueError(
                f"{self.out}: row {lineno} was written with other settings ({details}); "
                "re-run with the same flags to resume, or choose a new --out"
            )

    def resume(self) -> list[dict[str, Any]]:
        """Load finished rows (repairing a truncated tail) and restore the verdict cache."""
        self.out.parent.mkdir(parents=True, exist_ok=True)
        rows = read_rows(self.out, repair=True)
        self.labeler.search_cost = SearchCost(self.config.label.k, self.config.label.chunk)  # replayed below
        for i, row in enumerate(rows):
            self._check_run(row, i + 1)
            if row["response_index"] != i:
                raise ValueError(
                    f"{self.out}: row {i + 1} has response_index {row['response_index']}, expected "
                    f"{i} (rows are written in order); the file is not from codegym label"
                )
            self.labeler.remember_row(row)
        self.rows = rows
        return rows

    def label_one(self, index: int) -> dict[str, Any]:
        """Sample and label response ``index`` (deterministic given the cache)."""
        task = self.task_for(index)
        rng = response_rng(self.config.seed, index)
        response = self.responder.complete(task, [], 1, rng)[0]
        labeled = self.labeler.label(task, response, rng)
        row = labeled.to_row(
            response_index=index,
            horizon=task.horizon,
            bound_prefix_checks=max_prefix_checks(len(labeled.lines)),
            run=self.run_info,
        )
        if self.config.format == "trl":
            from codegym.prm.data import trl_row

            row = trl_row(row)
        return row

    def iter_run(self) -> Iterator[dict[str, Any]]:
        """Resume, then label the missing responses in order, appending each row; yields rows."""
        self.resume()
        for index in range(len(self.rows), self.config.responses):
            row = self.label_one(index)
            append_row(self.out, row)
            self.rows.append(row)
            yield row

    def run(self, on_row: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Label everything, write the summary beside the output, return it."""
        for row in self.iter_run():
            if on_row is not None:
                on_row(row)
        summary = summarize(self.rows, k=self.config.label.k)
        summary["run"] = self.run_info
        summary["config"] = _jsonable(asdict(self.config))
        write_summary(self.out, summary)
        return summary


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


def write_summary(out: str | Path, summary: dict[str, Any]) -> Path:
    """Write ``summary`` to :func:`summary_path` of ``out`` (atomically)."""
    path = summary_path(out)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(dumps(summary, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def _linear_costs(
    row: dict[str, Any],
    mean_ok: tuple[float, float],
    mean_fail: tuple[float, float],
    exhaustive: bool = False,
) -> tuple[float, float]:
    """(completions, executions) a linear scan would spend on ``row`` (estimated).

    A linear scan checks the whole response, then prefixes of 1, 2, ... code lines until the
    first incorrect one (``exhaustive``: every prefix up to ``C - 1``, no early stop). A
    prefix that this run checked contributes what it actually cost; one it did not check
    contributes the run's mean cost of a correct (or incorrect) check.
    """
    checks = row["checks"]
    if row["mode"] == "linear" and not exhaustive:
        return float(row["n_completions"]), float(row["n_executions"])
    comps, execs = 0.0, float(checks[0]["executions"])
    if row["passed"]:
        return comps, execs
    actual = {c["code_lines"]: c for c in checks[1:] if not c["cached"]}
    j_star, c_lines = row["correct_code_lines"], row["code_lines"]
    last = c_lines - 1 if exhaustive else min(j_star + 1, c_lines - 1)
    for j in range(1, last + 1):
        if j in actual:
            comps += actual[j]["samples"]
            execs += actual[j]["executions"]
        else:
            m = mean_ok if j <= j_star else mean_fail
            comps += m[0]
            execs += m[1]
    return comps, execs


def summarize(rows: list[dict[str, Any]], k: int) -> dict[str, Any]:
    """Statistics of a label file: label balance, revised fraction, cost per response, and
    the cost of a linear scan for the same responses (computed, not run)."""
    execs = [float(r["n_executions"]) for r in rows]
    comps = [float(r["n_completions"]) for r in rows]
    bound = [k * r["bound_prefix_checks"] for r in rows]
    linear, exhaustive = _scan_costs(rows, k)
    lin_exec = linear["executions_per_response"]
    return {
        **_outcome_stats(rows),
        **_label_stats(rows),
        "mean_lines": _avg([float(len(row_lines(r)[0])) for r in rows]),
        "mean_code_lines": _avg([float(r["code_lines"]) for r in rows]),
        "completions_per_response": _avg(comps),
        "executions_per_response": _avg(execs),
        "prefix_checks_per_response": _avg([float(r["prefix_checks"]) for r in rows]),
        "completions_within_bound": sum(c <= b for c, b in zip(comps, bound)),
        "linear": linear,
        "exhaustive": exhaustive,
        "executions_ratio_to_linear": (_avg(execs) / lin_exec) if lin_exec else 0.0,
        "mode": rows[0].get("run", {}).get("mode", rows[0]["mode"]) if rows else None,
        "search_modes": {m: sum(r["mode"] == m for r in rows) for m in ("binary", "linear")},
        "k": k,
    }


def _avg(values: list[float]) -> float:
    return float(np.mean(values)) if values else 0.0


def _outcome_stats(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """How many responses passed, failed, and were revised (a label changed by the search)."""
    n = len(rows)
    failed = [r for r in rows if not r["passed"]]
    return {
        "responses": n,
        "passed": sum(r["passed"] for r in rows),
        "failed": len(failed),
        "revised": sum(r["revised"] for r in rows),
        "fraction_passed": (n - len(failed)) / n if n else 0.0,
        "fraction_revised": sum(r["revised"] for r in rows) / n if n else 0.0,
        "fraction_revised_of_failed": (
            sum(r["revised"] for r in failed) / len(failed) if failed else 0.0
        ),
    }


def _label_stats(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts and fractions of the +1 / -1 / 0 line labels."""
    labels = [lab for r in rows for lab in row_lines(r)[1]]
    counts = {"+1": labels.count(1), "-1": labels.count(-1), "0": labels.count(0)}
    return {
        "lines": len(labels),
        "labels": counts,
        "label_balance": {key: c / len(labels) if labels else 0.0 for key, c in counts.items()},
    }


def _mean_cost(checks: list[dict[str, Any]], default: float) -> tuple[float, float]:
    """Mean completions and executions of ``checks`` (``default`` for both when none)."""
    if not checks:
        return default, default
    return (
        float(np.mean([c["samples"] for c in checks])),
        float(np.mean([c["executions"] for c in checks])),
    )


def _scan_costs(rows: list[dict[str, Any]], k: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """What a linear scan and an exhaustive check of the same responses would cost, from
    this run's verdicts (unchecked prefixes cost the run's mean for correct/incorrect)."""
    checks = [c for r in rows for c in r["checks"][1:] if not c["cached"]]
    mean_ok = _mean_cost([c for c in checks if c["ok"]], 1.0)
    mean_fail = _mean_cost([c for c in checks if not c["ok"]], float(k))
    lin = [_linear_costs(r, mean_ok, mean_fail) for r in rows]
    full = [_linear_costs(r, mean_ok, mean_fail, exhaustive=True) for r in rows]
    linear = {
        "prefix_checks_per_response": _avg([float(r["linear_prefix_checks"]) for r in rows]),
        "completions_per_response": _avg([c for c, _ in lin]),
        "executions_per_response": _avg([e for _, e in lin]),
        "note": "a linear scan of the same responses, computed from this run's verdicts "
        "(prefixes this run did not check cost the run's mean for correct/incorrect checks)",
    }
    exhaustive = {
        "prefix_checks_per_response": _avg(
            [1.0 if r["passed"] else float(max(r["code_lines"], 1)) for r in rows]
        ),
        "completions_per_response": _avg([c for c, _ in full]),
        "executions_per_response": _avg([e for _, e in full]),
        "note": "checking every prefix (no early stop), computed like 'linear'",
    }
    return linear, exhaustive
