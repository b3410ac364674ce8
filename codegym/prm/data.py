"""PRM training data: the stepwise JSONL format, its TRL export, encoding and batching.

One JSON object per line, TRL's stepwise layout (``prompt``/``completions``/``labels``) with
codegym's three-valued labels::

    {"prompt": "def solve(xs):\\n    ...", "completions": ["    xs = ...", "    return sum(xs)"],
     "labels": [1, -1], "task_id": "pipelines/train/3", "first_error": 1}

* ``prompt`` — the context the lines follow (:func:`codegym.tokenization.task_context`; for
  tasks whose code prefix is in the prompt, the prompt itself).
* ``completions`` — the program's lines (no newlines), one label each.
* ``labels`` — ``+1`` (the prefix up to this line is correct), ``-1`` (wrong), ``0`` (neutral:
  comment or blank line).
* ``task_id`` — used to split train/validation by task (no task in both).
* ``first_error`` — index of the first ``-1`` line, or ``null`` when there is none.

Other fields (e.g. ``n_completions``) are ignored.

**TRL format** (:func:`trl_row`, ``codegym label --format trl``): what TRL's ``PRMTrainer``
reads as it is — ``labels`` are booleans, one per *step*. TRL has no neutral label, so a
comment or blank line is joined (with ``"\\n"``) to the code line after it into one step
(trailing ones to the last step); a step's label is its code line's. With TRL's default
``step_separator="\\n"`` TRL's tokenisation is then codegym's rule (``tok(prompt)`` +
``tok(step) + tok("\\n")`` per step, the label on the separator = the code line's last
token) for tokenizers that keep ``"\\n"`` a token of its own, as codegym's do. The row keeps
codegym's view in two more fields, ``lines`` and ``line_labels`` (and ``first_error`` indexes
``lines``); TRL ignores extra columns.

Reading (:func:`parse_row`, hence ``codegym train-prm``) takes both formats: rows with
``lines``/``line_labels`` are read from those; other rows with boolean labels are TRL data
from anywhere (true = +1, false = −1), and a step holding several lines is split into lines
with the step's label on its last line and 0 (neutral) on the others — the inverse of the
export.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch

from codegym.tokenization import encode_program, join_context


class StepwiseExample(NamedTuple):
    """One labelled program."""

    prompt: str
    completions: list[str]
    labels: list[int]
    task_id: str
    first_error: int | None


class EncodedExample(NamedTuple):
    """A :class:`StepwiseExample` tokenised by the rule."""

    input_ids: list[int]
    line_ends: list[int]
    labels: list[int]
    first_error: int | None


class PRMBatch(NamedTuple):
    """A right-padded training batch.

    Attributes:
        input_ids: [B, T] token ids (padding = pad id).
        attention_mask: [B, T] 1 for real tokens.
        line_pos: [B, L] index of each line's last token (0 for padding lines).
        labels: [B, L] float labels in {-1, 0, 1}.
        line_mask: [B, L] True for real lines.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    line_pos: torch.Tensor
    labels: torch.Tensor
    line_mask: torch.Tensor


def _label(value: Any, where: str) -> int:
    if isinstance(value, bool):
        return 1 if value else -1
    if isinstance(value, (int, float)) and value in (1, -1, 0):
        return int(value)
    raise ValueError(f"{where}: labels must be +1, -1, 0 (or true/false), got {value!r}")


def _split_steps(steps: list[str], labels: list[Any], where: str) -> tuple[list[str], list[Any]]:
    """TRL steps with boolean labels -> lines: a step's label on its last line, 0 before it."""
    lines: list[str] = []
    out: list[Any] = []
    for i, (step, lab) in enumerate(zip(steps, labels)):
        parts = step.replace("\r\n", "\n").split("\n")
        if len(parts) > 1 and not isinstance(lab, bool):
            raise ValueError(
                f"{where}: completions[{i}] contains a newline; one line per item (a multi-line "
                "step is accepted only in TRL format, with true/false labels)"
            )
        lines.extend(parts)
        out.extend([0] * (len(parts) - 1) + [lab])
    return lines, out


def parse_row(row: Any, where: str) -> StepwiseExample:
    """Validate one decoded JSON row; ``where`` (``"file:line"``) prefixes error messages.

    Reads codegym rows, TRL exports (from ``lines``/``line_labels``) and TRL data from
    elsewhere (boolean labels, multi-line steps split into lines; see the module docstring).
    """
    if not isinstance(row, dict):
        raise ValueError(f"{where}: each line must be a JSON object, got {type(row).__name__}")
    for key in ("prompt", "completions", "labels"):
        if key not in row:
            raise ValueError(f"{where}: missing field {key!r} (need prompt, completions, labels)")
    lines_key, labels_key = "completions", "labels"
    if "lines" in row or "line_labels" in row:
        lines_key, labels_key = "lines", "line_labels"  # a TRL export: codegym's own view
        for key in (lines_key, labels_key):
            if key not in row:
                raise ValueError(f"{where}: field 'lines' needs 'line_labels' and vice versa")
    prompt, lines, labels = row["prompt"], row[lines_key], row[labels_key]
    if not isinstance(prompt, str):
        raise ValueError(f"{where}: field 'prompt' must be a string")
    if not isinstance(lines, list) or not all(isinstance(x, str) for x in lines):
        raise ValueError(f"{where}: field {lines_key!r} must be a list of strings (lines)")
    if not isinstance(labels, list) or len(labels) != len(lines):
        n = len(labels) if isinstance(labels, list) else type(labels).__name__
        raise ValueError(f"{where}: field {labels_key!r} must be a list with one label per line ({len(lines)}), got {n}")
    if lines_key == "completions":
        lines, labels = _split_steps(lines, labels, where)
    for i, line in enumerate(lines):
        if "\n" in line:
            raise ValueError(f"{where}: {lines_key}[{i}] contains a newline; one line per item")
    labs = [_label(v, f"{where}: {labels_key}[{i}]") for i, v in enumerate(labels)]
    task_id = row.get("task_id", "")
    if not isinstance(task_id, str):
        task_id = str(task_id)
    first = row.get("first_error")
    if first is not None:
        if isinstance(first, bool) or not isinstance(first, int) or not 0 <= first < max(len(lines), 1):
            raise ValueError(f"{where}: field 'first_error' must be null or a line index, got {first!r}")
    else:
        first = next((i for i, v in enumerate(labs) if v < 0), None)
    return StepwiseExample(prompt, list(lines), labs, task_id, first)


def read_stepwise_jsonl(path: str | Path) -> list[StepwiseExample]:
    """Read and validate a stepwise JSONL file.

    Raises:
        ValueError: Missing file, bad JSON or a bad field, naming the file, line and field.
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"label file {str(p)!r} does not exist; write one with `codegym label`")
    out: list[StepwiseExample] = []
    with p.open(encoding="utf-8") as f:
        for n, text in enumerate(f, start=1):
            if not text.strip():
                continue
            where = f"{p}:{n}"
            try:
                row = json.loads(text)
            except json.JSONDecodeError as e:
                raise ValueError(f"{where}: invalid JSON ({e.msg}); fix or delete this line") from e
            out.append(parse_row(row, where))
    if not out:
        raise ValueError(f"label file {str(p)!r} holds no rows")
    return out


def write_stepwise_jsonl(path: str | Path, examples: Iterable[StepwiseExample]) -> None:
    """Write examples in the stepwise format."""
    with Path(path).open("w", encoding="utf-8") as f:
        for e in examples:
            f.write(json.dumps(e._asdict()) + "\n")


def trl_steps(lines: Sequence[str], labels: Sequence[int], passed: bool = False) -> tuple[list[str], list[bool]]:
    """codegym lines and labels -> TRL steps and boolean labels (see the module docstring).

    Neutral (label 0) lines join the next code line's step; trailing ones join the last step.
    A response without a code line becomes one step labelled ``passed``.
    """
    if len(lines) != len(labels):
        raise ValueError(f"{len(lines)} lines but {len(labels)} labels")
    steps: list[str] = []
    out: list[bool] = []
    pending: list[str] = []
    for line, lab in zip(lines, labels):
        if lab == 0:
            pending.append(line)
            continue
        steps.append("\n".join([*pending, line]))
        out.append(lab > 0)
        pending = []
    if pending:
        if steps:
            steps[-1] = "\n".join([steps[-1], *pending])
        else:
            steps, out = ["\n".join(pending)], [bool(passed)]
    if not steps:
        steps, out = [""], [bool(passed)]
    return steps, out


def trl_row(row: dict[str, Any]) -> dict[str, Any]:
    """A stepwise row (e.g. from ``codegym label``) in TRL's format, its other fields kept.

    ``completions``/``labels`` become TRL steps with boolean labels (:func:`trl_steps`); the
    original lines and labels move to ``lines``/``line_labels``. A row already in TRL format
    is returned unchanged.
    """
    if "line_labels" in row:
        return dict(row)
    ex = parse_row(row, "row")
    steps, labels = trl_steps(ex.completions, ex.labels, bool(row.get("passed", False)))
    out = dict(row)
    out.update(
        prompt=join_context(ex.prompt), completions=steps, labels=labels,
        lines=list(ex.completions), line_labels=list(ex.labels), first_error=ex.first_error,
    )  # fmt: skip
    return out


def export_trl_jsonl(src: str | Path, dst: str | Path) -> int:
    """Convert a stepwise JSONL file (e.g. ``codegym label`` output) to TRL format.

    Returns:
        Rows written.

    Raises:
        ValueError: As :func:`read_stepwise_jsonl` for a bad input row.
    """
    src, dst = Path(src), Path(dst)
    if src.resolve() == dst.resolve():
        raise ValueError(f"export to {str(dst)!r} would overwrite its source; choose another path")
    read_stepwise_jsonl(src)  # validate every row first (file, line and field of a bad one)
    n = 0
    tmp = dst.with_name(dst.name + ".tmp")
    with src.open(encoding="utf-8") as f, tmp.open("w", encoding="utf-8") as g:
        for text in f:
            if text.strip():
                g.write(json.dumps(trl_row(json.loads(text)), ensure_ascii=False) + "\n")
                n += 1
    tmp.replace(dst)
    return n


def split_by_task(
    examples: Sequence[StepwiseExample], val_fraction: float, seed: int = 0
) -> tuple[list[StepwiseExample], list[StepwiseExample]]:
    """Split into (train, validation) by a hash of ``task_id`` (no task lands in both).

    Examples without a task id are split by their index.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    train, val = [], []
    for i, e in enumerate(examples):
        key = e.task_id or f"#{i}"
        h = int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "big")
        (val if h / 2**64 < val_fraction else train).append(e)
    return train, val


def encode_examples(
    tokenizer: Any, examples: Sequence[StepwiseExample], max_length: int
) -> tuple[list[EncodedExample], int]:
    """Tokenise examples by the rule; returns (encoded, number dropped: too long or no lines)."""
    out, dropped = [], 0
    for e in examples:
        enc = encode_program(tokenizer, join_context(e.prompt), e.completions)
        if len(enc.input_ids) > max_length or not e.completions:
            dropped += 1
            continue
        out.append(EncodedExample(enc.input_ids, enc.line_ends, list(e.labels), e.first_error))
    return out, dropped


def collate(items: Sequence[EncodedExample], pad_id: int) -> PRMBatch:
    """Right-pad encoded examples into a :class:`PRMBatch`."""
    B = len(items)
    T = max(len(x.input_ids) for x in items)
    L = max(len(x.line_ends) for x in items)
    ids = torch.full((B, T), pad_id, dtype=torch.long)
    mask = torch.zeros(B, T, dtype=torch.long)
    pos = torch.zeros(B, L, dtype=torch.long)
    labels = torch.zeros(B, L, dtype=torch.float32)
    lmask = torch.zeros(B, L, dtype=torch.bool)
    for b, x in enumerate(items):
        ids[b, : len(x.input_ids)] = torch.tensor(x.input_ids)
        mask[b, : len(x.input_ids)] = 1
        n = len(x.line_ends)
        pos[b, :n] = torch.tensor(x.line_ends)
        labels[b, :n] = torch.tensor(x.labels, dtype=torch.float32)
        lmask[b, :n] = True
    return PRMBatch(ids, mask, pos, labels, lmask)
