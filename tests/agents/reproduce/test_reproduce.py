"""``codegym reproduce``: presets, the job plan, and the smoke preset end to end (real SFT,
PPO, sandbox, labels, PRM) with resume and refusal of changed settings."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest

from agents.reproduce import (
    ARMS,
    GRPO_ARMS,
    PRESETS,
    Layout,
    ReproduceConfig,
    plan,
    preset_config,
    run_pipeline,
)
from agents.reproduce.config import arm_description, split_arm, twin_baseline
from agents.reproduce.pipeline import check_or_write_config, grpo_config, ppo_config
from agents.reproduce.report import baselines, compared_arms
from codegym.cli import main


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_build_and_validate(name: str) -> None:
    cfg = preset_config(name)
    assert cfg.preset == name and cfg.arm_list[0] == "sparse"
    expected = {
        "quick": set(ARMS),  # the six PPO arms keep it within 2 h on 2 cores
        "hard": {"sparse", "dense", "oracle-dense", *GRPO_ARMS},
    }.get(name, set(ARMS) | set(GRPO_ARMS))
    assert set(cfg.arm_list) == expected


def test_grpo_arms_share_the_ppo_budget() -> None:
    """A GRPO arm takes the PPO arms' tasks, programs per iteration, token caps, iterations and
    learning rate (the ``ppo`` overrides included), then the ``grpo`` overrides."""
    cfg = preset_config("quick", ppo={"policy_lr": 3e-5}, grpo={"kl_coef": 0.1, "scale_by_std": False})
    ppo, grpo = ppo_config(cfg, "sparse", 2), grpo_config(cfg, "grpo+oracle-process", 2)
    for name in ("seed", "iterations", "suite", "num_prompts", "samples_per_prompt", "max_new_tokens",
                 "max_line_tokens", "max_lines", "policy_lr", "update_epochs", "num_minibatches", "torch_threads"):
        assert getattr(grpo, name) == getattr(ppo, name), name
    assert (grpo.policy_lr, grpo.kl_coef, grpo.scale_by_std) == (3e-5, 0.1, False)
    assert (grpo.advantage, grpo.process_source, grpo.extra) == (
        "outcome+process", "oracle", {"reproduce_arm": "grpo+oracle-process"})
    assert grpo_config(cfg, "grpo", 0).advantage == "outcome"
    # a run directory recorded before the GRPO arms existed reads as having no grpo overrides
    old = {k: v for k, v in cfg.to_dict().items() if k != "grpo"}
    assert ReproduceConfig.upgrade(old)["grpo"] == {}


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"arms": ("sparse", "nope")}, "unknown arm 'nope'"),
        ({"arms": ("sparse", "dense@gae_lambda")}, "@FIELD=VALUE"),
        ({"arms": ("sparse", "dense@nope=1")}, "not PPOConfig fields"),
        ({"arms": ("sparse", "dense@dense_reward=none")}, "not PPOConfig fields"),
        ({"arms": ("sparse", "grpo@gae_lambda=0.8")}, "not GRPOConfig fields"),
        ({"buckets": "2-3,4-9"}, "outside the task range"),
        ({"label_snapshots": (99,)}, "label_snapshots"),
        ({"seeds": 0}, "seeds"),
        ({"suite": {"min_lines": 5, "max_lines": 4}}, "min_lines=5 > max_lines=4"),
        ({"suite": {"name": "humaneval"}}, "no horizon knob"),
        ({"bogus": 1}, "unknown ReproduceConfig fields"),
        ({"grpo": {"advantage": "process"}}, "unknown grpo overrides"),
        ({"grpo": {"gae_lambda": 0.9}}, "unknown grpo overrides"),
    ],
)
def test_bad_settings_name_the_field(overrides: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        preset_config("smoke", **overrides)
    with pytest.raises(ValueError, match="unknown preset"):
        preset_config("medium")


def test_plan_orders_jobs_after_their_dependencies() -> None:
    cfg = preset_config("quick", seeds=2, arms=(*ARMS, *GRPO_ARMS))
    jobs = plan(cfg)
    names = [j.name for j in jobs]
    assert len(names) == len(set(names))
    for i, job in enumerate(jobs):
        assert all(names.index(d) < i for d in job.deps), job
    deps = {j.name: j.deps for j in jobs}
    assert "prm" in deps["arm:dense+value-init:1"] and "prm" not in deps["arm:oracle-dense:1"]
    # the labels' prefixes are completed by a longer-trained SFT policy (quick preset)
    assert deps["label:it0040"] == ["arm:sparse:0", "sft-labeler"] and deps["label:sft"] == ["sft", "sft-labeler"]
    assert deps["sft-labeler"] == ["sft"] and cfg.label_completer_steps == 2400
    own = {j.name: j.deps for j in plan(preset_config("quick", label_completer_steps=0))}
    assert "sft-labeler" not in own and own["label:sft"] == ["sft"]
    assert "prm" in deps["arm:grpo+process:1"] and deps["arm:grpo:1"] == deps["arm:grpo+oracle-process:0"] == ["sft"]
    assert "arm:sparse:0" in names and names.count("arm:sparse:0") == 1
    sparse_only = [j.name for j in plan(preset_config("quick", arms=("sparse", "oracle-dense")))]
    assert not any(n.startswith(("label", "prm")) for n in sparse_only)


def test_arm_variants_set_config_fields_and_pair_with_their_twin() -> None:
    """``ARM@FIELD=VALUE`` runs an arm with a field set (a λ sweep); each variant is paired
    with its family's baseline under the same settings."""
    arms = ("dense@gae_lambda=0.8", "grpo+process@kl_coef=0.01", "sparse@gae_lambda=0.8", "dense", "grpo",
            "grpo@kl_coef=0.01")  # fmt: skip
    cfg = preset_config("hard", arms=arms)
    assert cfg.arm_list == ["sparse", "sparse@gae_lambda=0.8", "dense", "dense@gae_lambda=0.8", "grpo",
                            "grpo@kl_coef=0.01", "grpo+process@kl_coef=0.01"]  # fmt: skip
    assert split_arm("dense@gae_lambda=0.8@value_bounds=false") == ("dense", {"gae_lambda": 0.8, "value_bounds": False})
    lam = ppo_config(cfg, "dense@gae_lambda=0.8", 1)
    assert (lam.gae_lambda, lam.dense_reward, lam.seed) == (0.8, "delta", 1)
    assert ppo_config(cfg, "dense", 1).gae_lambda == 0.95
    assert grpo_config(cfg, "grpo+process@kl_coef=0.01", 0).kl_coef == 0.01
    assert [twin_baseline(a) for a in cfg.arm_list] == [None, None, "sparse", "sparse@gae_lambda=0.8", None,
                                                        None, "grpo@kl_coef=0.01"]  # fmt: skip
    results = {"arms": dict.fromkeys(cfg.arm_list)}
    assert baselines(cfg.arm_list) == ["sparse", "sparse@gae_lambda=0.8", "grpo@kl_coef=0.01"]
    assert compared_arms(results, "sparse@gae_lambda=0.8") == ["dense@gae_lambda=0.8"]
    assert compared_arms(results, "grpo") == []  # grpo+process itself was not run
    assert "(gae_lambda=0.8)" in arm_description("dense@gae_lambda=0.8")
    # the hard preset: long tasks only, its buckets inside them
    assert (cfg.suite.min_lines, cfg.suite.max_lines, cfg.buckets) == (6, 8, "6-6,7-7,8-8")


#: A λ sweep's pair in the smoke run: dense and sparse at λ = 0.8 beside the default arms.
LAMBDA_ARMS = ("sparse@gae_lambda=0.8", "dense@gae_lambda=0.8")
SMOKE_ARMS = (*ARMS, *GRPO_ARMS, *LAMBDA_ARMS)


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("repro") / "smoke"
    assert main(["reproduce", "--preset", "smoke", "--arms", ",".join(SMOKE_ARMS), "--out", str(out), "--quiet"]) == 0
    return out


@pytest.mark.slow
def test_smoke_preset_runs_end_to_end(smoke_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = json.loads((smoke_run / "results.json").read_text())
    cfg = preset_config("smoke")
    assert set(results["arms"]) == set(ARMS) | set(GRPO_ARMS) | set(LAMBDA_ARMS)
    for arm, entry in results["arms"].items():
        assert entry["seeds_done"] == cfg.seeds, arm
        cells = entry["buckets"]
        assert set(cells) == {"2-3", "4-4", "all"}
        for cell in cells.values():
            assert 0.0 <= cell["greedy"]["low"] <= cell["greedy"]["mean"] <= cell["greedy"]["high"] <= 1.0
            assert "sampled_vs_sft" in cell
            assert ("sampled_vs_sparse" in cell) == (arm != "sparse")
            assert ("greedy_vs_grpo" in cell) == (arm in ("grpo+process", "grpo+oracle-process"))
            assert ("greedy_vs_sparse@gae_lambda=0.8" in cell) == (arm == "dense@gae_lambda=0.8")
        d = entry["diagnostics"]
        assert d["seconds_per_iteration"] > 0 and d["lines_last10"] is not None and d["sampled_tokens"] > 0
        assert (d["flat_groups_last10"] is not None) == (arm in GRPO_ARMS)
        rows = (smoke_run / "arms" / f"{arm}-s0" / "metrics.jsonl").read_text().splitlines()
        assert len(rows) == cfg.iterations
    # the PRM was trained on labels of the SFT policy and of the sparse run's snapshot
    assert (smoke_run / "arms" / "sparse-s0" / "snapshots" / "it0002" / "model.safetensors").is_file()
    prm = results["prm"]
    assert set(prm["heldout"]) == {"sft", "it0002", "all"}
    assert prm["heldout"]["all"]["n"] == 2 * cfg.heldout_responses
    assert set(results["labels"]) == {"sft", "it0002"}
    # responses of each labeled policy, prefixes completed by the sft-labeler policy
    assert (smoke_run / "sft-labeler" / "done.json").is_file()
    row = json.loads((smoke_run / "labels" / "it0002.jsonl").read_text().splitlines()[0])
    assert row["run"]["completer"] == "reproduce:it0002:sft-labeler"
    # the paper arm's critic started as the PRM; the dense arm's as the policy with a zero head
    config = json.loads((smoke_run / "arms" / "paper-s0" / "config.json").read_text())
    assert config["value_init"] == "prm" and config["dense_reward"] == "paper"
    # the GRPO arms: the PRM's process advantages, PPO's budget, no critic
    grpo = json.loads((smoke_run / "arms" / "grpo+process-s0" / "config.json").read_text())
    assert grpo["advantage"] == "outcome+process" and grpo["extra"]["prm_dir"] == str(smoke_run / "prm")
    for key in ("num_prompts", "samples_per_prompt", "max_new_tokens", "iterations"):
        assert grpo[key] == config[key], key
    assert not (smoke_run / "arms" / "grpo-s0" / "critic").exists()
    oracle_rows = (smoke_run / "arms" / "grpo+oracle-process-s0" / "metrics.jsonl").read_text().splitlines()
    assert all(json.loads(r)["charts/scored_lines"] > 0 for r in oracle_rows)
    for name in ("rollout_curves", "pass_at_1_sampled", "pass_at_1_greedy", "prm_calibration"):
        width, height = _png_size(Path(results["plots"][name]))
        assert 300 < width < 4000 and 200 < height < 3000
    text = (smoke_run / "results.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    md = (smoke_run / "results.md").read_text()
    assert "| oracle-dense |" in md and "## PRM on held-out" in md and "| grpo+oracle-process |" in md
    assert "arm − grpo (points, paired)" in md and "arm − sparse@gae_lambda=0.8 (points, paired)" in md
    lam = json.loads((smoke_run / "arms" / "dense@gae_lambda=0.8-s0" / "config.json").read_text())
    assert (lam["gae_lambda"], lam["dense_reward"], config["gae_lambda"]) == (0.8, "delta", 0.95)
    assert "| dense@gae_lambda=0.8 |" in md and "Δ" not in md.split("arm − sparse")[0][:10]


@pytest.mark.slow
def test_rerun_resumes_and_changed_settings_are_refused(smoke_run: Path) -> None:
    cfg = preset_config("smoke", arms=SMOKE_ARMS)
    assert run_pipeline(cfg, smoke_run) == []  # everything is cached
    # a lost arm (its evaluation and done marker) is the only job re-run
    arm_dir = Layout(smoke_run).arm("dense", 0)
    (arm_dir / "done.json").unlink()
    (arm_dir / "eval.json").unlink()
    assert run_pipeline(cfg, smoke_run) == ["arm:dense:0"]
    assert (arm_dir / "eval.json").is_file()
    with pytest.raises(ValueError, match="iterations: was 3, now 4"):
        check_or_write_config(preset_config("smoke", arms=SMOKE_ARMS, iterations=4), Layout(smoke_run), overwrite=False)
    copy = smoke_run.parent / "copy"
    shutil.copytree(smoke_run / "arms" / "dense-s0", copy / "arms" / "x")
    shutil.copyfile(Layout(smoke_run).config, Layout(copy).config)
    check_or_write_config(preset_config("smoke", iterations=4), Layout(copy), overwrite=True)
    assert not (copy / "arms").exists()
    # --overwrite never deletes a directory that holds no reproduce run
    foreign = smoke_run.parent / "foreign"
    shutil.copytree(smoke_run / "arms" / "dense-s0", foreign / "x")
    with pytest.raises(ValueError, match="does not look like a codegym run directory"):
        check_or_write_config(preset_config("smoke"), Layout(foreign), overwrite=True)
    assert (foreign / "x").is_dir()
    assert main(["reproduce", "--preset", "smoke", "--arms", ",".join(SMOKE_ARMS), "--out", str(smoke_run),
                 "--report-only"]) == 0  # fmt: skip


def test_cli_reports_bad_settings_as_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["reproduce", "--preset", "smoke", "--out", str(tmp_path / "r"), "--set", "ppo.nope=1"])
    assert code == 2
    assert "nope" in capsys.readouterr().err
    code = main(["reproduce", "--out", str(tmp_path / "none"), "--report-only"])
    assert code == 2 and "holds no reproduce run" in " ".join(capsys.readouterr().err.split())
