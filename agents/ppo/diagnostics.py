"""Per-iteration diagnostics of the advantage estimator (``diag/*`` in ``metrics.jsonl``).

What a shaped reward does to PPO is decided token by token: which tokens get which
advantage, how far the critic is from the returns it is fitted to, and how episodes end.
These figures are cheap (one pass over the batch that the trainer already holds) and are
written with every metrics row:

* ``diag/eos_at_start``: share of programs that are an immediate EOS (0 lines);
* ``diag/end_<kind>`` / ``diag/final_reward_<kind>`` / ``diag/return_<kind>``: share, mean
  final-token reward (unit test + closing term) and mean undiscounted return of the episodes
  that ended by ``eos`` (the policy submitted), ``budget`` (the token budget ran out and the
  program was submitted for the policy), ``max_lines`` (env truncation) or ``invalid``;
* ``diag/adv_<class>`` and ``diag/wadv_<class>``: mean raw and batch-whitened advantage of
  the tokens of each position class: ``start_eos`` (an EOS as the first token), ``start``
  (the first token of a first line), ``mid`` (inside a line), ``line_end`` (a line's last
  token, where its dense reward lands), ``eos`` (an EOS after at least one line);
* ``diag/adv_mean`` / ``diag/adv_std``: the raw advantages' mean and spread over the batch's
  tokens (whitening subtracts this mean from every token);
* ``diag/verr_<state>``: mean value error V − G (G the Monte-Carlo return-to-go, γ = 1) at the
  first token (``start``), and at tokens whose written prefix the line scorer calls correct
  (``ok``) or wrong (``bad``; score < 0: for the exact oracle, prefixes the reference cannot
  complete);
* ``diag/adv_ok`` / ``diag/adv_bad`` / ``diag/eos_adv_ok`` / ``diag/eos_adv_bad``: mean raw
  advantage of every token, and of EOS tokens, in correct / wrong-prefix states;
* ``diag/kl_<class>``: mean per-token KL to the reference of each position class;
* ``diag/one_line`` / ``diag/return_first``: share of one-line programs, and of programs whose
  first line is a ``return``;
* ``diag/len_wadv_corr``: correlation over episodes of the program's token count with the sum
  of its whitened advantages (negative: the update pushes towards shorter programs).

Undefined figures (no token of a class in the batch) are NaN (``null`` in the JSONL).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from agents.ppo.gae import masked_whiten

#: Position classes of :func:`position_classes` (index = code).
CLASSES = ("pad", "start_eos", "start", "mid", "line_end", "eos")
#: How an episode ended, in :func:`ending_kind`'s words.
ENDINGS = ("eos", "budget", "max_lines", "invalid")


def ending_kind(ep: Any, max_lines: int) -> str:
    """``eos``, ``budget`` (token budget spent, submitted for the policy), ``max_lines`` or
    ``invalid``: how episode ``ep`` (an :class:`agents.ppo.rollout.Episode`) ended."""
    if ep.invalid:
        return "invalid"
    if ep.eos:
        return "eos"
    return "max_lines" if ep.num_lines >= max_lines else "budget"


def position_classes(batch: Any, episodes: Sequence[Any]) -> torch.Tensor:
    """[B, S-1] long codes of :data:`CLASSES` for every action token of ``batch``."""
    mask = batch.action_mask
    codes = torch.where(mask, torch.full_like(mask, 3, dtype=torch.long), torch.zeros_like(mask, dtype=torch.long))
    rows = torch.arange(mask.shape[0])
    ends = batch.line_end  # [B, L]
    has = ends >= 0
    codes[rows.unsqueeze(1).expand_as(ends)[has], ends[has]] = 4
    last = (mask.long() * torch.arange(mask.shape[1])).max(dim=1).values  # [B]
    first = batch.prompt_len - 1  # [B]
    for b, ep in enumerate(episodes):
        if ep.eos:
            codes[b, last[b]] = 1 if ep.num_lines == 0 else 5
        if ep.num_lines > 0:
            codes[b, first[b]] = 2 if codes[b, first[b]] == 3 else codes[b, first[b]]
    return codes


def prefix_ok(batch: Any, episodes: Sequence[Any], phi_empty_ok: bool = True) -> torch.Tensor:
    """[B, S-1] int: 1 where the state's written prefix is correct by the line scorer
    (last non-neutral score >= 0), 0 where wrong, −1 unknown (no scorer, or padding)."""
    mask = batch.action_mask
    out = torch.full(mask.shape, -1, dtype=torch.long)
    first = batch.prompt_len - 1
    for b, ep in enumerate(episodes):
        if not ep.prm_scores or all(s is None for s in ep.prm_scores):
            continue
        state = 1 if phi_empty_ok else 0
        start = int(first[b])
        for m, end in enumerate(batch.line_end[b].tolist()):
            if end < 0:
                break
            out[b, start : end + 1] = state  # the tokens of line m see the prefix lines[:m]
            score = ep.prm_scores[m] if m < len(ep.prm_scores) else None
            if score is not None:
                state = 1 if score >= 0 else 0
            start = end + 1
        valid = torch.nonzero(mask[b]).squeeze(1)
        if len(valid) and int(valid[-1]) >= start:
            out[b, start : int(valid[-1]) + 1] = state  # EOS after the last line
    return torch.where(mask, out, torch.full_like(out, -1))


def _mean(x: torch.Tensor, sel: torch.Tensor) -> float:
    return float(x[sel].float().mean()) if bool(sel.any()) else float("nan")


def return_to_go(rewards: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[B, T] undiscounted sum of the rewards from each valid token to the row's end."""
    r = torch.where(mask, rewards, torch.zeros_like(rewards))
    return torch.where(mask, r.flip(1).cumsum(1).flip(1), torch.zeros_like(r))


def shaping_diagnostics(episodes: Sequence[Any], batch: Any, max_lines: int) -> dict[str, float]:
    """The ``diag/*`` figures of one iteration (see the module docstring) from its episodes and
    its scored :class:`agents.ppo.batch.PPOBatch`."""
    batch = batch.to("cpu")
    mask = batch.action_mask
    adv = batch.advantages.cpu()  # (B, S-1)
    wadv = masked_whiten(adv, mask)  # (B, S-1)
    values, rewards = batch.values.cpu(), batch.rewards.cpu()
    codes = position_classes(batch, episodes).cpu()  # [B, S-1]
    ok = prefix_ok(batch, episodes).cpu()
    out: dict[str, float] = {
        "eos_at_start": float(np.mean([e.eos and e.num_lines == 0 for e in episodes])),
        "adv_mean": float(adv[mask].mean()),
        "adv_std": float(adv[mask].std(unbiased=False)),
    }
    kl = batch.kl.cpu()
    for code, name in enumerate(CLASSES[1:], start=1):
        out[f"adv_{name}"] = _mean(adv, codes == code)
        out[f"wadv_{name}"] = _mean(wadv, codes == code)
        out[f"kl_{name}"] = _mean(kl, codes == code)
    out["one_line"] = float(np.mean([e.num_lines == 1 for e in episodes]))
    out["return_first"] = float(np.mean([bool(e.lines) and e.lines[0].strip().startswith("return") for e in episodes]))
    err = values - return_to_go(rewards, mask)
    out["verr_start"] = _mean(err, (codes == 1) | (codes == 2))
    out["verr_ok"] = _mean(err, ok == 1)
    out["verr_bad"] = _mean(err, ok == 0)
    out["adv_ok"] = _mean(adv, ok == 1)
    out["adv_bad"] = _mean(adv, ok == 0)
    eos = (codes == 1) | (codes == 5)
    out["eos_adv_ok"] = _mean(adv, eos & (ok == 1))
    out["eos_adv_bad"] = _mean(adv, eos & (ok == 0))
    out.update(_ending_stats(episodes, batch, rewards, mask, max_lines))
    lengths = mask.sum(1).float().numpy()
    pushes = wadv.sum(1).numpy()
    corr = np.corrcoef(lengths, pushes)[0, 1] if lengths.std() > 0 and pushes.std() > 0 else float("nan")
    out["len_wadv_corr"] = float(corr)
    return {f"diag/{k}": v for k, v in out.items()}


def _ending_stats(
    episodes: Sequence[Any], batch: Any, rewards: torch.Tensor, mask: torch.Tensor, max_lines: int
) -> dict[str, float]:
    """Share, final-token reward and return of the episodes by how they ended."""
    kinds = [ending_kind(e, max_lines) for e in episodes]
    returns = (rewards * mask).sum(1).numpy()
    final = batch.final_reward.cpu().numpy()
    out: dict[str, float] = {}
    for kind in ENDINGS:
        sel = np.array([k == kind for k in kinds])
        out[f"end_{kind}"] = float(sel.mean())
        out[f"final_reward_{kind}"] = float(final[sel].mean()) if sel.any() else float("nan")
        out[f"return_{kind}"] = float(returns[sel].mean()) if sel.any() else float("nan")
    return out


def sample_programs(episodes: Sequence[Any], n: int = 4) -> list[dict[str, Any]]:
    """The first ``n`` episodes as JSON-ready dicts (lines, line rewards, final reward, ending)."""
    return [
        {"task_id": e.task.task_id, "lines": list(e.lines), "line_rewards": [round(float(r), 3) for r in e.line_rewards],
         "final_dense": e.final_dense, "test_reward": e.test_reward, "eos": e.eos, "invalid": e.invalid}
        for e in episodes[:n]
    ]  # fmt: skip
