"""``codegym train --report-to tensorboard``: every numeric metrics.jsonl field in TensorBoard
under its own name; the run's model card; ``codegym plot`` of the run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codegym.cli import main
from codegym.training.tracking import read_tensorboard_scalars, scalars

pytest.importorskip("tensorboard", reason="TensorBoard is the optional extra codegym[tensorboard]: pip install 'codegym[tensorboard]'")


@pytest.fixture(scope="module")
def ppo_run(tiny_policy_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ppo_tb") / "run"
    argv = ["train", "--agent", "ppo", "--policy", str(tiny_policy_dir), "--iterations", "2",
            "--out", str(out), "--min-steps", "1", "--max-steps", "2", "--quiet",
            "--report-to", "tensorboard"]  # fmt: skip
    for kv in ("num_prompts=2", "samples_per_prompt=2", "max_new_tokens=24", "max_line_tokens=12",
               "max_lines=4", "critic_warmup_iterations=1", "sandbox_workers=1", "torch_threads=1"):
        argv += ["--set", kv]
    assert main(argv) == 0
    return out


def test_tensorboard_has_the_jsonl_names(ppo_run: Path) -> None:
    rows = [json.loads(x) for x in (ppo_run / "metrics.jsonl").read_text().splitlines()]
    names = {k for r in rows for k, _ in scalars(r)} - {"iteration", "time"}
    tb = read_tensorboard_scalars(ppo_run)
    assert set(tb) == names
    for key in ("losses/policy", "losses/value", "charts/pass_rate", "charts/kl", "charts/entropy"):
        # an undefined value (e.g. the policy loss in a critic warm-up iteration: NaN, written
        # as null in the JSONL) is not a point in TensorBoard
        assert [s for s, _ in tb[key]] == [r["iteration"] for r in rows if r[key] is not None and r[key] == r[key]]
    assert tb["charts/return"][-1][1] == pytest.approx(rows[-1]["charts/return"], rel=1e-5, abs=1e-6)


def test_run_dir_has_a_model_card(ppo_run: Path) -> None:
    card = (ppo_run / "README.md").read_text()
    assert "pipeline_tag: text-generation" in card and "charts/pass_rate" in card
    assert "dense reward | none (sparse" in card
    assert (ppo_run / "policy" / "README.md").read_text() == card


def test_plot_command_on_a_real_run(ppo_run: Path, tmp_path: Path) -> None:
    from codegym.reporting.plotting import learning_curves, read_run

    out = tmp_path / "curves.png"
    assert main(["plot", str(ppo_run), str(ppo_run), "--labels", "a,b", "--out", str(out)]) == 0
    assert out.stat().st_size > 10_000
    fig = learning_curves([read_run(ppo_run, "a"), read_run(ppo_run, "b")])
    for ax in fig.get_axes():
        if ax.get_title().startswith("explained"):
            continue  # NaN in both iterations of this tiny run: no points
        assert [line.get_label() for line in ax.get_lines()] == ["a", "b"]
