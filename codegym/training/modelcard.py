"""Model cards: a ``README.md`` in every run directory (how it was trained, data, metrics).

The trainers (``codegym sft``, ``train-prm``, ``train``) call :func:`write_model_card` when
they finish. The card starts with the Hugging Face metadata block (``library_name``,
``pipeline_tag``, ``tags``), so the directory reads like any model on the Hub, then says how
to load the model, the exact settings that trained it (as the Python call that reproduces
it), the data and the final metrics.
"""

from __future__ import annotations

import dataclasses
import json
import math
import platform
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

CARD_NAME = "README.md"


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, (dict, list, tuple)):
        return "`" + json.dumps(value, default=str) + "`"
    return str(value).replace("|", "\\|")


def config_call(config: Any, function: str) -> str:
    """``function(ConfigClass(field=value, ...))`` with the fields that differ from defaults
    (nested configs, such as a ``SuiteConfig``, imported too)."""
    cls = type(config)
    args = []
    imports = [f"from {cls.__module__} import {cls.__name__}"]
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        else:
            default = dataclasses.MISSING
        if value != default:
            args.append(f"{f.name}={value!r}")
            if dataclasses.is_dataclass(value):
                kind = type(value)
                imports.append(f"from {kind.__module__} import {kind.__name__}")
    inner = ", ".join(args)
    return "\n".join(imports) + f"\n{function}({cls.__name__}({inner}))"


def write_model_card(
    out: str | Path,
    *,
    title: str,
    summary: str,
    pipeline_tag: str,
    usage: str,
    training: Mapping[str, Any],
    reproduce: str | None = None,
    data: str = "",
    metrics: Mapping[str, Any] | None = None,
    tags: Sequence[str] = (),
    extra: str = "",
) -> Path:
    """Write ``out/README.md``.

    Args:
        out: Run (model) directory.
        title: Heading.
        summary: What the model is, one paragraph.
        pipeline_tag: Hugging Face task (``text-generation``, ``token-classification``).
        usage: Python code that loads and uses the model.
        training: Settings, shown as a table.
        reproduce: Code that trains the same model again.
        data: Where the training data came from.
        metrics: Final metrics, shown as a table.
        tags: Hub tags (``codegym`` is always added).
        extra: Markdown appended at the end.

    Returns:
        The card's path.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lines = [
        *_front_matter(pipeline_tag, tags),
        f"# {title}",
        "",
        summary.strip(),
        "",
        *_code_section("## Use", usage),
        *_table_section("## Training", ("setting", "value"), training),
    ]
    if reproduce:
        lines += ["Reproduce:", "", "```python", reproduce.strip(), "```", ""]
    if data:
        lines += ["## Data", "", data.strip(), ""]
    if metrics:
        lines += _table_section("## Metrics", ("metric", "value"), metrics)
    if extra:
        lines += [extra.strip(), ""]
    lines.append(_stamp())
    path = out / CARD_NAME
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _front_matter(pipeline_tag: str, tags: Sequence[str]) -> list[str]:
    """The card's YAML header (``codegym`` is always the first tag)."""
    all_tags = ["codegym", *[t for t in tags if t != "codegym"]]
    return [
        "---",
        "library_name: transformers",
        f"pipeline_tag: {pipeline_tag}",
        "tags:",
        *[f"- {t}" for t in all_tags],
        "---",
        "",
    ]


def _code_section(heading: str, code: str) -> list[str]:
    return [heading, "", "```python", code.strip(), "```", ""]


def _table_section(heading: str, columns: tuple[str, str], rows: Mapping[str, Any]) -> list[str]:
    return [
        heading,
        "",
        f"| {columns[0]} | {columns[1]} |",
        "|---|---|",
        *[f"| {k} | {_fmt(v)} |" for k, v in rows.items()],
        "",
    ]


def _stamp() -> str:
    """The card's last line: codegym's version, the time and Python's version."""
    from codegym import __version__

    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"Written by codegym {__version__} on {stamp} (Python {platform.python_version()})."


def flat_metrics(result: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested metric dicts flattened with ``/`` (for the metrics table)."""
    out: dict[str, Any] = {}
    for k, v in result.items():
        if isinstance(v, Mapping):
            out.update(flat_metrics(v, f"{prefix}{k}/"))
        else:
            out[f"{prefix}{k}"] = v
    return out
