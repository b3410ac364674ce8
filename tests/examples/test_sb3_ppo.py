"""``examples/sb3_ppo.py`` end to end with the smoke budget (plumbing, not the science)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_sb3_example_smoke_budget(tmp_path: Path) -> None:
    out = tmp_path / "sb3"
    env = {**os.environ, "CODEGYM_SMOKE": "1"}
    res = subprocess.run([sys.executable, str(ROOT / "examples" / "sb3_ppo.py"), "--out", str(out)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)  # fmt: skip
    assert res.returncode == 0, res.stderr[-4000:]
    assert "dense − sparse (paired)" in res.stdout and "random" in res.stdout
    data = json.loads((out / "results.json").read_text())
    assert data["meta"]["budget"] == "smoke" and data["meta"]["timesteps"] == 512
    assert set(data["rates"]) == {"random", "sparse", "dense", "oracle"}
    for arm, rates in data["rates"].items():
        overall = next(r for r in rates if r["group"] == "all")
        assert overall["tasks"] == 16 and 0.0 <= overall["lo"] <= overall["rate"] <= overall["hi"] <= 1.0, arm
    assert {"dense - sparse", "sparse - random"} <= set(data["paired_differences"])
    assert (out / "pass_by_horizon.png").stat().st_size > 5_000
    rows = [json.loads(x) for x in (out / "arms" / "dense-s0" / "metrics.jsonl").read_text().splitlines()]
    assert rows and "charts/pass_rate" in rows[-1] and rows[-1]["timesteps"] == 512
    # the PRM stage produced a standard checkpoint with a model card
    assert (out / "prm" / "README.md").is_file() and (out / "prm" / "config.json").is_file()
    # re-running resumes: every stage is cached, only evaluation runs again
    again = subprocess.run([sys.executable, str(ROOT / "examples" / "sb3_ppo.py"), "--out", str(out)],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert again.returncode == 0, again.stderr[-4000:]
    assert json.loads((out / "results.json").read_text())["rates"] == data["rates"]
