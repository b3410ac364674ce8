"""README's "Train from Python" and Stable-Baselines3 blocks, run as written."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_block(heading: str) -> str:
    """The first ```python block under the ``## heading`` section of README.md."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    section = text[start : end if end >= 0 else len(text)]
    match = re.search(r"```python\n(.*?)```", section, flags=re.S)
    assert match, f"no python block under '## {heading}'"
    return match.group(1)


def run_block(code: str, cwd: Path, timeout: float) -> str:
    res = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, res.stderr[-4000:]
    return res.stdout


@pytest.mark.slow
def test_train_from_python_block_runs(tmp_path: Path) -> None:
    out = run_block(python_block("Train from Python"), tmp_path, timeout=900)
    for text in ("SFT greedy pass@1:", "labels +1/-1/0:", "PRM trained for 10 steps", "rollout pass rate:"):
        assert text in out, out
    runs = tmp_path / "runs" / "py"
    rows = [json.loads(x) for x in (runs / "labels.jsonl").read_text().splitlines()]
    assert len(rows) == 16 and all(type(v) is bool for r in rows for v in r["labels"])
    for d in ("sft", "prm", "ppo"):
        assert (runs / d / "README.md").is_file(), d
    assert (runs / "ppo" / "tensorboard").is_dir()
    assert len((runs / "ppo" / "metrics.jsonl").read_text().splitlines()) == 2


def test_stable_baselines3_block_runs(tmp_path: Path) -> None:
    run_block(python_block("Stable-Baselines3"), tmp_path, timeout=600)
