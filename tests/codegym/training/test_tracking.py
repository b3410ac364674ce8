"""TensorBoard mirroring of metric rows (same names as the JSONL) and model cards."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

from codegym.training.tracking import Tracker, check_report_to, read_tensorboard_scalars, scalars

needs_tensorboard = pytest.mark.skipif(
    importlib.util.find_spec("tensorboard") is None, reason="TensorBoard is the optional extra codegym[tensorboard]: pip install 'codegym[tensorboard]'"
)


def test_scalars_flatten_and_skip_what_is_not_a_number() -> None:
    row = {"step": 3, "losses/x": 0.5, "ok": True, "name": "a", "nan": math.nan,
           "val/buckets": {"1-3": {"pass@1": 0.25, "n": 4}}}  # fmt: skip
    assert dict(scalars(row)) == {"step": 3.0, "losses/x": 0.5, "ok": 1.0,
                                  "val/buckets/1-3/pass@1": 0.25, "val/buckets/1-3/n": 4.0}  # fmt: skip


def test_report_to_is_validated() -> None:
    with pytest.raises(ValueError, match="report_to must be one of"):
        check_report_to("wandb")
    assert check_report_to("none") == "none"


@needs_tensorboard
def test_tracker_writes_rows_under_their_names_and_purges_on_resume(tmp_path: Path) -> None:
    t = Tracker(tmp_path, "tensorboard", "iteration")
    for i in (1, 2, 3):
        t.log({"iteration": i, "time": 1e9, "charts/pass_rate": i / 10, "losses/policy": -i})
    t.close()
    got = read_tensorboard_scalars(tmp_path)
    assert set(got) == {"charts/pass_rate", "losses/policy"}  # no step or wall-clock tags
    assert [s for s, _ in got["charts/pass_rate"]] == [1, 2, 3]
    assert got["charts/pass_rate"][2][1] == pytest.approx(0.3)
    # resumed from a checkpoint at iteration 2: the crashed run's iteration 3 is dropped
    t = Tracker(tmp_path, "tensorboard", "iteration", resume_step=2)
    t.log({"iteration": 3, "charts/pass_rate": 0.9, "losses/policy": 0.0})
    t.close()
    got = read_tensorboard_scalars(tmp_path)
    assert [(s, round(v, 3)) for s, v in got["charts/pass_rate"]] == [(1, 0.1), (2, 0.2), (3, 0.9)]
    # "none" writes nothing
    Tracker(tmp_path / "quiet", "none").log({"step": 1, "x": 1.0})
    assert not (tmp_path / "quiet").exists()


@needs_tensorboard
def test_train_prm_reports_to_tensorboard_and_writes_a_model_card(tmp_path: Path) -> None:
    from codegym.lm import TinyLMConfig, build_tiny_lm_dir
    from codegym.prm.data import StepwiseExample, write_stepwise_jsonl
    from codegym.prm.train import PRMTrainConfig, train_prm

    rows = [StepwiseExample("def f(xs):\n", ["    xs = xs[::-1]", "    return sum(xs)"], [1, -1 if i % 2 else 1],
                            f"t/{i}", 1 if i % 2 else None) for i in range(24)]  # fmt: skip
    write_stepwise_jsonl(tmp_path / "labels.jsonl", rows)
    base = build_tiny_lm_dir(tmp_path / "base", ["def f(xs):\n    xs = xs[::-1]\n    return sum(xs)\n"] * 20,
                             vocab_size=300, config=TinyLMConfig(n_layer=1, n_embd=32, n_head=2, n_positions=128))  # fmt: skip
    out = tmp_path / "prm"
    result = train_prm(PRMTrainConfig(data=str(tmp_path / "labels.jsonl"), base=str(base), out=str(out), steps=6,
                                      batch_size=4, eval_every=3, log_every=2, val_fraction=0.3, progress=False,
                                      report_to="tensorboard"))  # fmt: skip
    jsonl = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in jsonl] == [2, 3, 4, 6]
    names = {k for r in jsonl for k, _ in scalars(r)} - {"step"}
    assert {"losses/prm", "charts/learning_rate", "val/auc"} <= names
    tb = read_tensorboard_scalars(out)
    assert set(tb) == names
    assert [s for s, _ in tb["losses/prm"]] == [2, 3, 4, 6]
    assert tb["losses/prm"][-1][1] == pytest.approx(jsonl[-1]["losses/prm"], rel=1e-6)
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: transformers\npipeline_tag: token-classification")
    assert "AutoModelForTokenClassification.from_pretrained" in card and "val/auc" in card
    assert f"| val/auc | {result['val/auc']:.4g} |" in card
    assert "train_prm(PRMTrainConfig(" in card and "steps=6" in card
