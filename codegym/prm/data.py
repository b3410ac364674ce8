"""PRM training data: the stepwise JSONL format, encoding and batching.

One JSON object per line, the stepwise format TRL's ``PRMTrainer`` reads plus two fields::

    {"prompt": "def solve(xs):\\n    ...", "completions": ["    xs = ...", "    return sum(xs)"],
     "labels": [1, -1], "task_id": "pipelines/train/3", "first_error": 1}

* ``prompt`` — the context the lines follow (:func:`codegym.tokenization.task_context`; for
  tasks whose code prefix is in the prompt, the prompt itself).
* ``completions`` — the program's lines (no newlines), one label each.
* ``labels`` — ``+1`` (the prefix up to this line is correct), ``-1`` (wrong), ``0`` (neutral:
  comment or blank line). Booleans are accepted (TRL style: true = +1, false = -1).
* ``task_id`` — used to split train/validation by task (no task in both).
* ``first_error`` — index of the first ``-1`` line, or ``null`` when there is none.

Other fields (e.g. ``n_completions``) are ignored.
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


def parse_row(row: Any, where: str) -> StepwiseExample:
    """Validate one decoded JSON row; ``where`` (``"file:line"``) prefixes error messages."""
    if not isinstance(row, dict):
        raise ValueError(f"{where}: each line must be a JSON object, got {type(row).__name__}")
    for key in ("prompt", "completions", "labels"):
        if key not in row:
            raise ValueError(f"{where}: missing field {key!r} (need prompt, completions, labels)")
    prompt, lines, labels = row["prompt"], row["completions"], row["labels"]
    if not isinstance(prompt, str):
        raise ValueError(f"{where}: field 'prompt' must be a string")
    if not isinstance(lines, list) or not all(isinstance(x, str) for x in lines):
        raise ValueError(f"{where}: field 'completions' must be a list of strings (lines)")
    for i, line in enumerate(lines):
        if "\n" in line:
            raise ValueError(f"{where}: completions[{i}] contains a newline; one line per item")
    if not isinstance(labels, list) or len(labels) != len(lines):
        n = len(labels) if isinstance(labels, list) else type(labels).__name__
        raise ValueError(f"{where}: field 'labels' must be a list with one label per line ({len(lines)}), got {n}")
    labs = [_label(v, f"{where}: labels[{i}]") for i, v in enumerate(labels)]
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
    """Tokenise examples by the rule; returns (encoded, number dropped as too long)."""
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
