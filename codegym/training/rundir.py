"""Run directories that resume: same settings resume, other settings are refused.

Every long job (``codegym sft``, ``train-prm``, ``train``, ``reproduce``, ``label``, ``eval``)
writes its settings into its output; running it again with the same settings continues where
it stopped. With other settings (or other input data) it refuses, listing the differences,
instead of silently mixing two runs; ``--overwrite`` (``overwrite=True`` in Python) deletes the
old run and starts anew. The trainers get this from :class:`codegym.training.trainer.Trainer`,
which calls :func:`prepare_run_dir`.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def diff_settings(old: dict[str, Any], new: dict[str, Any], ignore: Iterable[str] = ()) -> list[str]:
    """``"key: was X, now Y"`` for every key whose value differs (keys in ``ignore`` skipped)."""
    skip = set(ignore)
    keys = sorted((set(old) | set(new)) - skip)
    return [f"{k}: was {old.get(k)!r}, now {new.get(k)!r}" for k in keys if _canon(old.get(k)) != _canon(new.get(k))]


def read_record(path: str | Path) -> dict[str, Any] | None:
    """The settings saved in ``path`` (``None`` if absent); ``ValueError`` if corrupt."""
    p = Path(path)
    if not p.is_file():
        return None
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{p}: corrupt JSON ({exc}); use --overwrite to start over") from None
    if not isinstance(data, dict):
        raise ValueError(f"{p}: not a settings record; use --overwrite to start over")
    return data


def check_resume(
    record: str | Path,
    settings: dict[str, Any],
    *,
    ignore: Iterable[str] = (),
    what: str = "run",
    upgrade: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> bool:
    """Refuse to resume a run recorded in ``record`` with other ``settings``.

    Args:
        record: The run's settings file.
        settings: This run's settings.
        ignore: Keys that may differ (how a run is executed, not what it computes).
        what: What the run is called in the message.
        upgrade: Reads a record written by an older version in today's form (renamed fields).

    Returns:
        True when a run with the same settings is recorded (it will be resumed).

    Raises:
        ValueError: The settings differ; the message lists every difference and the way out.
    """
    old = read_record(record)
    if old is None:
        return False
    diff = diff_settings(upgrade(old) if upgrade is not None else old, settings, ignore)
    if diff:
        where = Path(record).parent
        raise ValueError(
            f"{where} holds a {what} with other settings ({'; '.join(diff)}): run the same "
            "command to resume it, add --overwrite (overwrite=True) to start over, or choose "
            "another --out"
        )
    return True


def prepare_run_dir(
    out: str | Path,
    record_name: str,
    settings: dict[str, Any],
    *,
    overwrite: bool,
    what: str,
    ignore: Iterable[str] = (),
    upgrade: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    markers: Iterable[str] = (),
    clear: bool = True,
) -> bool:
    """The one resume convention: with ``overwrite`` delete the run in ``out`` (when ``clear``;
    only a codegym run directory, see :func:`clear_run_dir`), else refuse a run recorded in
    ``out/record_name`` with other ``settings`` (:func:`check_resume`).

    Returns:
        True when ``out`` holds a run with the same settings (it will be resumed).
    """
    out = Path(out)
    if overwrite:
        if clear:
            clear_run_dir(out, markers=(record_name, *markers))
        return False
    return check_resume(out / record_name, settings, ignore=ignore, what=what, upgrade=upgrade)


def clear_run_dir(out: str | Path, markers: Iterable[str]) -> None:
    """Delete the run directory ``out`` for ``--overwrite``.

    Only a directory that holds one of ``markers`` (files a codegym run writes) or is empty
    is deleted, so a mistyped ``--out`` never wipes unrelated files.

    Raises:
        ValueError: ``out`` exists but does not look like a codegym run directory.
    """
    p = Path(out)
    if not p.exists():
        return
    if p.is_file():
        raise ValueError(f"--out {p} is a file, not a run directory; choose another --out")
    if any(p.iterdir()) and not any((p / m).exists() for m in markers):
        raise ValueError(
            f"--overwrite: {p} does not look like a codegym run directory (none of "
            f"{sorted(markers)}); delete it yourself or choose another --out"
        )
    shutil.rmtree(p)


def file_digest(path: str | Path) -> str:
    """Short SHA-256 of a file or of a checkpoint directory's files (input identity)."""
    from codegym.defaults import sha256_file, tree_hash

    p = Path(path)
    if p.is_dir():
        return tree_hash(p)
    return sha256_file(p)[:16] if p.is_file() else "missing"


__all__ = ["check_resume", "clear_run_dir", "diff_settings", "file_digest", "prepare_run_dir", "read_record"]
