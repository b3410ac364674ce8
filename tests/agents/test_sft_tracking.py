"""``codegym sft --report-to tensorboard``: the log rows' names in TensorBoard, and the card."""

from __future__ import annotations

import json

import pytest

from codegym.cli import main
from codegym.training.tracking import read_tensorboard_scalars, scalars

pytest.importorskip("tensorboard", reason="TensorBoard is the optional extra codegym[tensorboard]: pip install 'codegym[tensorboard]'")


def test_sft_reports_to_tensorboard_and_writes_a_model_card(tmp_path) -> None:
    out = tmp_path / "sft"
    argv = ["sft", "--out", str(out), "--min-steps", "1", "--max-steps", "3", "--steps", "4",
            "--train-tasks", "24", "--batch-size", "4", "--n-layer", "1", "--n-embd", "32",
            "--eval-every", "4", "--eval-tasks", "4", "--buckets", "1-1,2-3", "--threads", "1",
            "--log-every", "2", "--report-to", "tensorboard", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    rows = [json.loads(x) for x in (out / "sft_log.jsonl").read_text().splitlines()]
    assert [r.get("eval") for r in rows] == [None, None, "validation", "test"]
    names = {k for r in rows for k, _ in scalars(r)} - {"step"}
    assert {"losses/lm", "charts/learning_rate", "charts/tokens_per_s", "val/pass@1",
            "val/buckets/1-1/pass@1", "test/pass@1"} <= names  # fmt: skip
    tb = read_tensorboard_scalars(out)
    assert set(tb) == names
    assert [s for s, _ in tb["losses/lm"]] == [2, 4]
    card = (out / "README.md").read_text()
    assert "pipeline_tag: text-generation" in card and "AutoModelForCausalLM.from_pretrained" in card
    assert "| pass@1 (2-3 steps) |" in card and "train_sft(SFTConfig(" in card
