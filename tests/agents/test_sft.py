"""SFT warm start: loss on solution tokens, save_pretrained output, resume, default policy."""

from __future__ import annotations

import json

import pytest
import torch

from agents.sft import (
    SFTConfig,
    bucket_of,
    collate_sft,
    default_policy,
    encode_sft_rows,
    parse_buckets,
    train_sft,
)
from codegym.lm import train_bpe_tokenizer
from codegym.tasks import SuiteConfig

TINY = dict(train_tasks=24, suite=SuiteConfig(min_lines=1, max_lines=3, seed=0), n_layer=1, n_embd=32, n_head=2, n_positions=512,
            batch_size=4, eval_tasks=4, eval_batch_size=4, buckets="1-1,2-3", sandbox_workers=1,
            threads=1, progress=False, warmup_steps=2)  # fmt: skip


def test_loss_only_on_solution_tokens_and_eos() -> None:
    rows = [{"context": "def solve(xs):\n", "lines": ["    return sum(xs)"]}]
    tok = train_bpe_tokenizer([rows[0]["context"] + rows[0]["lines"][0] + "\n"] * 10, vocab_size=300)
    (ids, plen), = encode_sft_rows(tok, rows, 512)
    batch = collate_sft([(ids, plen), (ids[:-2], plen)], tok.pad_token_id)
    assert batch.input_ids.shape == (2, len(ids))
    assert (batch.labels[0, :plen] == -100).all()
    assert batch.labels[0, -1] == tok.eos_token_id
    assert tok.decode(batch.labels[0, plen:-1].tolist()) == "    return sum(xs)\n"
    assert (batch.labels[1, len(ids) - 2 :] == -100).all() and batch.attention_mask[1, -1] == 0


def test_buckets() -> None:
    b = parse_buckets("1-3,4-6")
    assert b == [(1, 3), (4, 6)] and bucket_of(5, b) == "4-6" and bucket_of(9, b) is None
    with pytest.raises(ValueError, match="bucket"):
        parse_buckets("3-1")


def test_train_save_resume_and_evaluate(tmp_path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "sft"
    first = train_sft(SFTConfig(out=str(out), steps=4, checkpoint_every=2, **TINY))
    assert first["steps"] == 4 and set(first["buckets"]) == {"1-1", "2-3"}
    model = AutoModelForCausalLM.from_pretrained(str(out))
    tok = AutoTokenizer.from_pretrained(str(out))
    assert model.config.n_layer == 1 and tok.eos_token_id is not None
    state = torch.load(out / "checkpoint" / "sft_state.pt", weights_only=False)
    assert state["step"] == 4
    # a longer run with the same --out resumes at step 4
    again = train_sft(SFTConfig(out=str(out), steps=6, checkpoint_every=2, **TINY))
    assert again["steps"] == 6
    log = [json.loads(x) for x in (out / "sft_log.jsonl").read_text().splitlines()]
    assert log[-1]["eval"] == "test"
    assert json.loads((out / "eval.json").read_text())["n"] == first["n"]


def test_default_policy_is_the_shipped_one_and_trains_nothing(tmp_path, monkeypatch) -> None:
    from codegym import defaults

    monkeypatch.setenv("HOME", str(tmp_path))  # an empty cache: nothing may be written there
    path = default_policy()
    assert path == defaults.policy_dir() and (path / "model.safetensors").is_file()
    assert not any(tmp_path.iterdir())
    assert not (path / "sft_state.pt").exists() and not (path / "checkpoint").exists()


def test_step_based_schedule() -> None:
    from agents.sft import _lr_at

    cfg = SFTConfig(out="x", steps=1000, lr=1e-3, warmup_steps=100, decay_steps=200)
    assert _lr_at(0, cfg) == pytest.approx(1e-5)
    assert _lr_at(500, cfg) == 1e-3  # constant between warm-up and decay
    assert _lr_at(999, cfg) == pytest.approx(1e-4)  # decays to 10 % at the stop step
    assert _lr_at(900, cfg) < 1e-3
    short = SFTConfig(out="x", steps=10, lr=1e-3, warmup_steps=0, decay_steps=250)
    assert _lr_at(9, short) == pytest.approx(1e-4)  # decay capped at the run's length
    with pytest.raises(ValueError, match="decay_steps"):
        SFTConfig(out="x", decay_steps=-1).validate()


def test_kill_9_mid_run_resumes_from_the_last_complete_checkpoint(tmp_path) -> None:
    """A real SFT process killed between checkpoints: the rerun resumes from the newest complete
    checkpoint, its model equals a run that never stopped, and the log has each step once."""
    import signal
    import subprocess
    import sys
    import time

    from codegym.training.checkpoint import Checkpointer

    settings = dict(TINY, steps=2000, decay_steps=0, checkpoint_every=3, log_every=1, eval_tasks=2)
    out = tmp_path / "sft"
    code = ("from agents.sft import SFTConfig, train_sft; from codegym.tasks import SuiteConfig; "
            f"train_sft(SFTConfig(out={str(out)!r}, **{settings!r}))")
    proc = subprocess.Popen([sys.executable, "-c", code])
    ckpt = Checkpointer(out, "checkpoint", "sft_state.pt")
    deadline = time.monotonic() + 240
    while (ckpt.step_of(ckpt.path) or 0) < 6 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    killed_at = ckpt.step_of(ckpt.latest())
    assert killed_at is not None and killed_at >= 6 and killed_at % 3 == 0
    logged = [json.loads(x)["step"] for x in (out / "sft_log.jsonl").read_text().splitlines()]
    stop = killed_at + 3  # resume and stop at the next checkpoint: the same model as one run
    resumed = train_sft(SFTConfig(out=str(out), **dict(settings, steps=stop)))
    assert resumed["steps"] == stop
    steps = [r["step"] for r in map(json.loads, (out / "sft_log.jsonl").read_text().splitlines()) if "eval" not in r]
    assert steps == list(range(1, stop + 1)), (logged[-3:], killed_at)
    straight = train_sft(SFTConfig(out=str(tmp_path / "straight"), **dict(settings, steps=stop)))
    from transformers import AutoModelForCausalLM

    a = AutoModelForCausalLM.from_pretrained(str(out)).state_dict()
    b = AutoModelForCausalLM.from_pretrained(str(tmp_path / "straight")).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert straight["pass@1"] == resumed["pass@1"]


def test_results_table_shows_an_empty_bucket_as_a_dash_not_nan() -> None:
    from rich.console import Console

    from agents.sft import results_table

    result = {"steps": 800, "n": 3, "pass@1": 2 / 3,
              "buckets": {"1-3": {"n": 3, "pass@1": 2 / 3}, "10-12": {"n": 0, "pass@1": float("nan")}}}
    console = Console(width=80, record=True)
    console.print(results_table(result))
    text = console.export_text()
    assert "nan" not in text
    assert "0.667" in text and "—" in text.split("10-12")[1].splitlines()[0]


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_a_mixed_precision_step_at_lr_1e_6_moves_the_fp32_master_weights(tmp_path, dtype) -> None:
    from agents.sft import SFTTrainer

    def first_step(precision: str) -> tuple[float, float, set[torch.dtype]]:
        cfg = SFTConfig(out=str(tmp_path / precision), steps=1, lr=1e-6, decay_steps=0, dtype=precision,
                        **{**TINY, "warmup_steps": 1})  # fmt: skip
        with SFTTrainer(cfg) as trainer:
            assert {p.dtype for p in trainer.model.parameters()} == {torch.float32}  # master weights
            mats = dict(trainer.model.named_parameters())
            before = {n: p.detach().clone() for n, p in mats.items()}
            seen: set[torch.dtype] = set()
            hook = trainer.model.get_output_embeddings().register_forward_hook(lambda m, a, out: seen.add(out.dtype))
            row = trainer.train_step()
            hook.remove()
            changed = _moved(mats, before)
        return changed, row["losses/lm"], seen

    changed, loss, seen = first_step(dtype)
    assert changed > 0.9, changed  # a plain bf16 model would keep ~98 % of them (updates round away)
    assert seen == {getattr(torch, {"bf16": "bfloat16", "fp16": "float16"}[dtype])}  # computed in bf16/fp16
    _, loss32, seen32 = first_step("fp32")
    assert seen32 == {torch.float32} and loss == pytest.approx(loss32, rel=0.02)


def _moved(params: dict[str, torch.Tensor], before: dict[str, torch.Tensor]) -> float:
    """Fraction of the weights with a nonzero gradient that the step changed."""
    hit = sum(int(((p != before[n]) & (p.grad != 0)).sum()) for n, p in params.items() if p.grad is not None)
    return hit / max(1, sum(int((p.grad != 0).sum()) for p in params.values() if p.grad is not None))
