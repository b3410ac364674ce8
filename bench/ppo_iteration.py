"""What a PPO iteration costs against the raw work in it: sampling + training the same model.

For one policy and batch size, measured side by side in one process (rounds interleaved):

* ``ppo``: ``PPOTrainer.train_iteration`` (rollout through the env + sandbox, scoring with
  policy / reference / critic, minibatch epochs of policy and critic updates), with prompts
  encoded once per group (``shared_prompt=True``, the default) and without;
* ``raw``: Hugging Face ``generate`` of the same number of programs from the same prompts
  (sampling, KV cache, stopping at EOS or the same token budget), plus ``update_epochs``
  forward + backward passes of the policy and of a critic of the same size over the same
  sequences — what any PPO implementation must spend at least.

Prints a table (seconds per iteration and per component, tokens/s) and the ratio
``ppo / raw``; writes ``--out`` JSON.

    python bench/ppo_iteration.py --policy runs/repro/sft --rounds 3
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--policy", required=True, help="policy checkpoint dir (e.g. a reproduce run's sft/)")
    p.add_argument("--rounds", type=int, default=3, help="measured rounds per row (after one warm-up)")
    p.add_argument("--min-steps", type=int, default=2)
    p.add_argument("--max-steps", type=int, default=8)
    p.add_argument("--num-prompts", type=int, default=16)
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=160)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="runs/bench-ppo-iteration.json")
    return p.parse_args(argv)


def _trainer(args: argparse.Namespace, shared: bool, work: Path) -> Any:
    from agents.ppo.config import PPOConfig
    from agents.ppo.trainer import PPOTrainer
    from codegym.tasks import SuiteConfig

    cfg = PPOConfig(
        iterations=10_000, critic_warmup_iterations=0,
        suite=SuiteConfig(split="train", min_lines=args.min_steps, max_lines=args.max_steps, seed=0),
        num_prompts=args.num_prompts, samples_per_prompt=args.samples, max_new_tokens=args.max_new_tokens,
        max_lines=args.max_steps + 4, shared_prompt=shared, checkpoint_every=10_000, torch_threads=args.threads,
    )  # fmt: skip
    out = work / ("shared" if shared else "whole")
    shutil.rmtree(out, ignore_errors=True)
    return PPOTrainer(cfg, args.policy, out, progress=False)


def raw_round(trainer: Any, episodes: list[Any]) -> dict[str, float]:
    """``generate`` the same number of programs from the same prompts, then train policy and
    critic copies on the resulting sequences for ``update_epochs`` epochs."""
    import copy

    from agents.ppo.batch import PPOBatch
    from codegym.tokenization import encode_context

    cfg = trainer.config
    tok = trainer.tokenizer
    model = trainer.policy
    prompts = [encode_context(tok, ep.context) for ep in episodes]
    width = max(len(p) for p in prompts)
    pad = int(tok.pad_token_id)
    ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for b, p in enumerate(prompts):  # left padding for generate
        ids[b, width - len(p) :] = torch.tensor(p)
        mask[b, width - len(p) :] = 1
    start = time.perf_counter()
    with torch.no_grad():
        out = model.generate(
            input_ids=ids, attention_mask=mask, do_sample=True, max_new_tokens=cfg.max_new_tokens,
            eos_token_id=int(tok.eos_token_id), pad_token_id=pad, top_k=0,
        )  # fmt: skip
    t_generate = time.perf_counter() - start
    new_tokens = int((out[:, width:] != pad).sum())
    batch = PPOBatch.from_episodes(episodes, tok)
    policy = copy.deepcopy(model).train(False)
    critic = copy.deepcopy(trainer.critic)
    opt_p = torch.optim.AdamW(policy.parameters(), lr=1e-6)
    opt_c = torch.optim.AdamW(critic.parameters(), lr=1e-6)
    n = batch.input_ids.shape[0]
    mb = n // cfg.num_minibatches
    start = time.perf_counter()
    for _ in range(cfg.update_epochs):
        for lo in range(0, n, mb):
            sl = slice(lo, lo + mb)
            width = int(batch.attention_mask[sl].sum(dim=1).max())  # trimmed, as PPO's minibatches
            ids, att = batch.input_ids[sl, :width], batch.attention_mask[sl, :width]
            logits = policy(input_ids=ids, attention_mask=att).logits
            loss = torch.log_softmax(logits[:, :-1].float(), -1).gather(-1, ids[:, 1:, None]).mean()
            opt_p.zero_grad()
            loss.backward()
            opt_p.step()
            values = critic(ids, att)
            opt_c.zero_grad()
            values.pow(2).mean().backward()
            opt_c.step()
    t_train = time.perf_counter() - start
    return {"generate": t_generate, "train": t_train, "total": t_generate + t_train, "new_tokens": float(new_tokens)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from rich.console import Console
    from rich.table import Table
    from transformers.utils import logging as hf_logging

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    console = Console()
    work = Path(tempfile.mkdtemp(prefix="codegym-ppo-bench-"))
    rows: dict[str, list[dict[str, float]]] = {"ppo (shared prompts)": [], "ppo (whole sequences)": [], "raw": []}
    trainers = {True: _trainer(args, True, work), False: _trainer(args, False, work)}
    try:
        for t in trainers.values():
            t.train_iteration()  # warm-up
        for r in range(args.rounds):
            for shared in (True, False) if r % 2 == 0 else (False, True):
                t = trainers[shared]
                start = time.perf_counter()
                row = t.train_iteration()
                total = time.perf_counter() - start
                name = "ppo (shared prompts)" if shared else "ppo (whole sequences)"
                rows[name].append({"total": total, "rollout": row["time/rollout"], "score": row["time/score"],
                                   "update": row["time/update"], "tokens": row["charts/tokens"] * t.config.batch_size})  # fmt: skip
            episodes = trainers[True].rollout(10_000 + r)
            rows["raw"].append(raw_round(trainers[True], episodes))
            console.print(f"round {r + 1}/{args.rounds}: " + ", ".join(
                f"{k} {v[-1]['total']:.2f} s" for k, v in rows.items()), highlight=False)  # fmt: skip
    finally:
        for t in trainers.values():
            t.close()
        shutil.rmtree(work, ignore_errors=True)
    mean = {k: {m: float(np.mean([x[m] for x in v])) for m in v[0]} for k, v in rows.items()}
    raw = mean["raw"]["total"]
    table = Table(title=f"PPO iteration vs raw sampling + training ({args.num_prompts} x {args.samples} programs, "
                        f"{args.min_steps}-{args.max_steps} steps, {args.threads} thread(s), {args.rounds} rounds)")  # fmt: skip
    for col in ("row", "s / iteration", "rollout | generate", "score", "update | train", "× raw"):
        table.add_column(col, justify="left" if col == "row" else "right")
    for name, m in mean.items():
        if name == "raw":
            table.add_row(name, f"{m['total']:.2f}", f"{m['generate']:.2f}", "", f"{m['train']:.2f}", "1.00")
        else:
            table.add_row(name, f"{m['total']:.2f}", f"{m['rollout']:.2f}", f"{m['score']:.2f}",
                          f"{m['update']:.2f}", f"{m['total'] / raw:.2f}")  # fmt: skip
    console.print(table)
    result = {"args": vars(args), "mean": mean, "rounds": rows,
              "ratio_shared_to_raw": mean["ppo (shared prompts)"]["total"] / raw,
              "ratio_whole_to_raw": mean["ppo (whole sequences)"]["total"] / raw}  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
