"""Acceptance: bring your own pretrained code LLM through the whole CLI pipeline.

For a tiny stand-in of each real family — ``Qwen2ForCausalLM`` with a Qwen2-regex tokenizer
(instruct: chat template, two EOS ids), ``LlamaForCausalLM`` with a Llama-3-regex tokenizer
(a BOS on every text) and ``GPTNeoXForCausalLM`` with a StarCoder-style tokenizer that merges
``"\\n"`` with the next line's indentation — briefly pretrained on code in seconds, the
commands run exactly as a user types them (in-process, ``CODEGYM_SMOKE=1`` budgets):

``sft --base`` (bf16 + LoRA) -> ``eval`` of the SFT adapter -> ``label`` (bf16) ->
``train-prm --base`` (bf16) -> ``train --agent ppo`` (dense PRM reward, PRM value init, bf16,
LoRA) -> ``eval`` of the PPO policy with the PRM.

Every stage must write non-empty programs, the LoRA results must be peft adapter
directories that the next command loads, and in a rollout of the PPO policy as PPO samples
it (ids kept as drawn) every line's reward must sit on the last token of its piece (the ids
that wrote the line; for Qwen2/Llama-3 a token holding the newline that ended it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from codegym.cli import main

#: (style, architecture, instruct) of the stand-ins.
STANDINS = [("qwen2", "qwen2", True), ("llama3", "llama", False), ("starcoder", "gpt_neox", False)]
#: Tasks of every stage: ``pipelines`` with 1-3 lines.
#: Tokens after which the line sampler cuts a line (no newline drawn).
CUT = 24
TASKS = ["--suite", "pipelines", "--min-task-lines", "1", "--max-task-lines", "3"]


@pytest.fixture(autouse=True)
def _smoke_and_one_thread(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Smoke budgets on; one torch thread (restored afterwards)."""
    monkeypatch.setenv("CODEGYM_SMOKE", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _run(*argv: str) -> None:
    """``codegym ARGV`` in this process; a non-zero exit fails the test."""
    code = main([str(a) for a in argv])
    assert code == 0, f"codegym {' '.join(map(str, argv))} exited {code}"


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _check_eval(path: Path) -> list[dict[str, Any]]:
    """Rows of an ``eval --out`` file: some program has a line, each row one reward per line
    (and the end's)."""
    rows = _rows(path)
    assert rows and any(r["num_lines"] > 0 for r in rows), rows
    for r in rows:
        assert len(r["rewards"]) in (r["num_lines"], r["num_lines"] + 1), r
    return rows


def _check_line_rewards(policy: Path, prm: Path) -> int:
    """Roll out ``policy`` as PPO does (ids kept as drawn) with dense PRM rewards; each line's
    reward sits on the last token of its piece (the piece holds the line's text; with
    ``"\n"``-last pieces, a line the model ended has the newline in that token). Returns the number of lines checked."""
    from agents.ppo.batch import PPOBatch, episodes_from_records
    from agents.ppo.gae import place_rewards
    from codegym.lm import load_causal_lm
    from codegym.rollout import SamplerAgent, run_episodes
    from codegym.sampling import LineSampler
    from codegym.tasks import load_suite
    from codegym.tokenization import line_rules

    model, tok = load_causal_lm(policy)
    tasks = load_suite("pipelines", min_steps=1, max_steps=3, seed=0).take(3, "train")
    sampler = LineSampler(model, tok, temperature=1.0, max_line_tokens=CUT, reencode=False,
                          generator=torch.Generator().manual_seed(0))  # fmt: skip
    agent = SamplerAgent(sampler, max_new_tokens=64, sanitize=False)
    episodes: list[Any] = []
    records = run_episodes(agent, tasks, num_envs=len(tasks), workers=1,
                           env_kwargs={"prm": str(prm), "reward_mode": "delta", "max_lines": 6,
                                       "invalid_action": "end"},
                           on_wave=lambda wave: episodes.extend(episodes_from_records(wave, agent)))  # fmt: skip
    batch = PPOBatch.from_episodes(episodes, tok)
    placed = place_rewards(batch.action_mask, batch.line_end, batch.line_rewards, torch.zeros(batch.size))  # (B, T)
    # "\n" + indent tokens (StarCoder): a piece is the newline, then the line's text
    newline_last = line_rules(tok).layout == "newline_last"
    checked = 0
    for b, (ep, rec) in enumerate(zip(episodes, records)):
        assert ep.lines == rec.lines and ep.line_rewards == pytest.approx(rec.line_rewards)
        ends = batch.line_end[b, : len(rec.lines)].tolist()
        for m, piece in enumerate(ep.line_ids or []):
            if not piece:  # a blank line whose newline sat in the line before: its end
                continue
            assert int(batch.targets[b, ends[m]]) == piece[-1]
            assert rec.lines[m].strip() in tok.decode(piece, skip_special_tokens=False)
            ended = m < len(rec.lines) - 1 and len(piece) < CUT  # the model drew the line's end
            if ended and newline_last:  # the token that ended the line holds its newline
                assert "\n" in tok.decode([piece[-1]], skip_special_tokens=False), (piece, rec.lines[m])
            checked += 1
        for pos in set(ends):
            want = sum(r for r, e in zip(rec.line_rewards, ends) if e == pos)
            assert float(placed[b, pos]) == pytest.approx(want, abs=1e-5)
    return checked


@pytest.mark.slow
@pytest.mark.parametrize(("style", "arch", "instruct"), STANDINS, ids=[s for s, _, _ in STANDINS])
def test_own_model_runs_the_whole_pipeline(style: str, arch: str, instruct: bool, tmp_path: Path) -> None:
    from codegym.adapters import is_adapter_dir
    from codegym.standins import build_standin

    base = build_standin(tmp_path / "base", arch=arch, tokenizer=style, instruct=instruct, num_layers=1,
                         pretrain_steps=60, pretrain_tasks=60)  # fmt: skip
    sft, prm, ppo = tmp_path / "sft", tmp_path / "prm", tmp_path / "ppo"
    labels = tmp_path / "labels.jsonl"

    _run("sft", "--base", base, "--out", sft, "--dtype", "bf16", "--lora-rank", "8", "--lr", "3e-3",
         "--warmup-steps", "2", "--decay-steps", "0", "--batch-size", "8", "--sandbox-workers", "1",
         "--no-progress", *TASKS)  # fmt: skip
    assert is_adapter_dir(sft) and not (sft / "config.json").exists()
    log = [r for r in _rows(sft / "sft_log.jsonl") if "losses/lm" in r]
    assert log and all(r["losses/lm"] > 0 for r in log)
    _run("eval", "--agent", "hf", "--model", sft, "--dtype", "bf16", "--episodes", "3", "--prm", "none",
         "--workers", "1", "--out", tmp_path / "sft_eval.jsonl", *TASKS)  # fmt: skip
    _check_eval(tmp_path / "sft_eval.jsonl")

    _run("label", "--policy", sft, "--dtype", "bf16", "--out", labels, "--workers", "1",
         "--max-new-tokens", "48", *TASKS)  # fmt: skip
    rows = _rows(labels)
    assert any(r["code_lines"] > 0 for r in rows), rows
    assert all(len(r["labels"]) >= r["code_lines"] for r in rows)

    _run("train-prm", "--data", labels, "--base", sft, "--out", prm, "--dtype", "bf16", "--no-progress")
    assert (prm / "config.json").is_file()

    _run("train", "--agent", "ppo", "--policy", sft, "--prm", prm, "--out", ppo, "--dense-reward", "delta",
         "--value-init", "prm", "--dtype", "bf16", "--lora-rank", "8", "--max-new-tokens", "48",
         "--sandbox-workers", "1", "--no-progress", *TASKS)  # fmt: skip
    assert is_adapter_dir(ppo / "policy")
    programs = [p for r in _rows(ppo / "samples.jsonl") for p in r["programs"]]
    assert any(p["lines"] for p in programs), programs
    assert all(len(p["line_rewards"]) == len(p["lines"]) for p in programs)

    _run("eval", "--agent", "ppo", "--model", ppo, "--prm", prm, "--dtype", "bf16", "--episodes", "3",
         "--workers", "1", "--out", tmp_path / "ppo_eval.jsonl", *TASKS)  # fmt: skip
    rows = _check_eval(tmp_path / "ppo_eval.jsonl")
    assert any(s is not None for r in rows for s in r["prm_scores"])  # the PRM scored lines

    assert _check_line_rewards(ppo / "policy", prm) > 0
