"""PRM training: a tiny PRM learns to localise errors in corrupted reference solutions."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch

from codegym.lm import TinyLMConfig, build_tiny_lm_dir
from codegym.prm import ProcessRewardModel
from codegym.prm.data import StepwiseExample, write_stepwise_jsonl
from codegym.prm.train import PRMTrainConfig, train_prm
from codegym.tasks import load_suite
from codegym.tokenization import task_context


def _corrupt(line: str, rng: np.random.Generator) -> str:
    """A broken version of a reference line: an undefined name, an unbalanced bracket or a
    dangling operator. These errors are visible in the line itself, so a randomly initialised
    2-layer PRM learns them in seconds (errors that need the docstring, such as a wrong
    constant, need a pretrained backbone such as the SFT policy)."""
    body = line.strip()
    indent = line[: len(line) - len(body)]
    options = [body.replace("xs", "ys", 1), body + " +"]
    if "]" in body:
        options.append(body.replace("]", "", 1))
    options = [o for o in options if o != body]
    return indent + str(rng.choice(options))


def make_labels(path, n_tasks: int, seed: int = 0) -> list[StepwiseExample]:
    """Stepwise labels from reference solutions, two per task: with probability 0.3 the
    reference itself (all +1), else one line k corrupted (lines < k: +1, lines >= k: -1)."""
    suite = load_suite("pipelines", min_steps=2, max_steps=4, seed=seed)
    rng = np.random.default_rng(seed)
    rows = []
    for task in suite.take(n_tasks, "train"):
        lines = task.solution_lines
        for _ in range(2):
            if rng.random() < 0.3:
                rows.append(StepwiseExample(task_context(task), lines, [1] * len(lines), task.task_id, None))
                continue
            k = int(rng.integers(0, len(lines)))
            bad = list(lines)
            bad[k] = _corrupt(lines[k], rng)
            labels = [1] * k + [-1] * (len(lines) - k)
            rows.append(StepwiseExample(task_context(task), bad, labels, task.task_id, k))
    write_stepwise_jsonl(path, rows)
    return rows


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("prmtrain")
    rows = make_labels(root / "labels.jsonl", n_tasks=200)
    texts = [r.prompt + "\n".join(r.completions) + "\n" for r in rows]
    base = build_tiny_lm_dir(root / "base", texts, vocab_size=400,
                             config=TinyLMConfig(n_layer=2, n_embd=64, n_head=4, n_positions=512))  # fmt: skip
    return root, base


@pytest.mark.slow
def test_tiny_prm_localises_corrupted_lines(setup) -> None:
    root, base = setup
    start, cpu = time.perf_counter(), time.process_time()
    result = train_prm(PRMTrainConfig(
        data=str(root / "labels.jsonl"), base=str(base), out=str(root / "prm"), steps=200,
        batch_size=16, lr=3e-3, eval_every=100, checkpoint_every=1000, val_fraction=0.2,
        progress=False,
    ))  # fmt: skip
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert result["val_rows"] >= 40
    assert result["val/auc"] >= 0.9, result
    # localisation is well above the chance of guessing one of 2-4 lines or "no error"
    assert result["val/first_error_acc"] >= 0.5, result
    print(f"tiny PRM: val AUC {result['val/auc']:.3f}, first-error acc "
          f"{result['val/first_error_acc']:.3f} in {elapsed:.1f} s wall, {cpu:.1f} s CPU")
    ProcessRewardModel.from_pretrained(root / "prm")  # the output is a loadable PRM


def test_checkpoint_and_resume(setup) -> None:
    root, base = setup
    out = root / "resume"
    cfg = dict(data=str(root / "labels.jsonl"), base=str(base), out=str(out), batch_size=4,
               eval_every=5, checkpoint_every=5, progress=False)  # fmt: skip
    first = train_prm(PRMTrainConfig(steps=5, **cfg))
    assert first["step"] == 5 and (out / "checkpoint" / "trainer_state.pt").is_file()
    second = train_prm(PRMTrainConfig(steps=10, **cfg))
    assert second["step"] == 10
    steps = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [5, 10]  # resumed at 5, did not start over
    with pytest.raises(ValueError, match="objective"):
        train_prm(PRMTrainConfig(steps=12, objective="bce", **cfg))


def test_bce_objective_trains(setup) -> None:
    root, base = setup
    res = train_prm(PRMTrainConfig(data=str(root / "labels.jsonl"), base=str(base), out=str(root / "bce"),
                                   objective="bce", steps=3, batch_size=4, eval_every=3, progress=False))  # fmt: skip
    assert np.isfinite(res["val/mse"]) and 0.0 <= res["val/auc"] <= 1.0


def test_train_prm_command(setup, tmp_path) -> None:
    from codegym.cli import main

    root, base = setup
    rc = main(["train-prm", "--data", str(root / "labels.jsonl"), "--base", str(base),
               "--out", str(tmp_path / "prm"), "--steps", "2", "--batch-size", "4", "--no-progress"])  # fmt: skip
    assert rc == 0
    assert json.loads((tmp_path / "prm" / "final_metrics.json").read_text())["step"] == 2
    # a bad label file is a clear error (exit code 2), not a traceback
    (tmp_path / "bad.jsonl").write_text('{"prompt": "x", "completions": ["a"], "labels": [5]}\n')
    rc = main(["train-prm", "--data", str(tmp_path / "bad.jsonl"), "--base", str(base),
               "--out", str(tmp_path / "prm2"), "--no-progress"])  # fmt: skip
    assert rc == 2


def test_a_bf16_training_step_at_lr_1e_6_moves_the_fp32_master_weights(setup) -> None:
    from codegym.prm.train import PRMTrainer

    root, base = setup
    cfg = PRMTrainConfig(data=str(root / "labels.jsonl"), base=str(base), out=str(root / "prm16"), steps=1, lr=1e-6,
                         warmup_steps=1, batch_size=8, dtype="bf16", progress=False)  # fmt: skip
    with PRMTrainer(cfg) as trainer:
        assert {p.dtype for p in trainer.prm.parameters()} == {torch.float32}  # master weights, head included
        mats = dict(trainer.prm.named_parameters())
        before = {n: p.detach().clone() for n, p in mats.items()}
        row = trainer.train_step()
        changed = _moved(mats, before)
    assert changed > 0.9, changed
    assert row["charts/learning_rate"] == 1e-6 and row["charts/grad_norm"] > 0


def _moved(params: dict[str, torch.Tensor], before: dict[str, torch.Tensor]) -> float:
    """Fraction of the weights with a nonzero gradient that the step changed."""
    hit = sum(int(((p != before[n]) & (p.grad != 0)).sum()) for n, p in params.items() if p.grad is not None)
    return hit / max(1, sum(int((p.grad != 0).sum()) for p in params.values() if p.grad is not None))


def test_a_run_recorded_before_a_field_existed_resumes(setup, tmp_path) -> None:
    from codegym.prm.train import CONFIG_NAME, PRMTrainer

    root, base = setup
    kw = dict(data=str(root / "labels.jsonl"), base=str(base), out=str(tmp_path / "run"), batch_size=4,
              eval_every=1000, checkpoint_every=1, progress=False)  # fmt: skip
    with PRMTrainer(PRMTrainConfig(steps=1, **kw)) as trainer:
        trainer.learn()
    record = tmp_path / "run" / CONFIG_NAME
    old = json.loads(record.read_text())
    del old["dtype"]  # as written before the field existed
    record.write_text(json.dumps(old))
    with PRMTrainer(PRMTrainConfig(steps=2, **kw)) as trainer:  # its default reproduces the old behaviour
        assert trainer.step == 1
    with pytest.raises(ValueError, match="dtype"):  # a real difference is still refused
        PRMTrainer(PRMTrainConfig(steps=2, dtype="bf16", **kw))
