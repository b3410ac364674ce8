"""The search table: plain sampling, PRM best-of-N, beam search and the oracle's pass@N, per
horizon bucket, at a counted budget of sampled lines, with 95 % intervals over tasks.

:func:`search_table` runs, for one policy, one PRM and one task set:

* ``n`` sampled programs per task (:func:`codegym.search.best_of_n`, the sampler plain
  sampling uses). Every sample runs through the env, so each task has ``c`` of ``n`` passes:

  - ``sample``: pass@1 of one sample, ``c / n`` -- also what a random pick among the ``n``
    passes, so it is the PRM-free twin of best-of-N at the same budget;
  - ``bestofn-AGG``: whether the sample the PRM ranks first by aggregation ``AGG`` passes
    (:mod:`codegym.search.aggregate`; all aggregations rank the same samples);
  - ``oracle``: whether any of the ``n`` passes (pass@N: a perfect verifier's best-of-N);

* ``beam``: a line-level beam search with the PRM (:func:`codegym.search.beam_search`,
  ``beams · k = n`` candidate lines per step, from its own generator with the same seed),
  its answer run through the env; optionally ``beam-oracle``, the same search guided by the
  exact prefix oracle (``oracle_beam=True``; costs sandbox runs).

Per bucket and overall, each method's pass rate gets a 95 % interval over tasks
(:func:`codegym.reporting.stats.pass_rate`) and its paired difference from ``sample`` a 95 %
bootstrap interval over tasks (:func:`codegym.reporting.stats.paired_difference`). Each
method's budget per task (sampled lines and tokens, scored lines, executions) is the one
actually spent (:class:`~codegym.search.aggregate.SearchBudget`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from codegym.evaluation import DEFAULT_BUCKETS, bucket_name, bucket_of, parse_buckets, task_horizon
from codegym.rollout import SamplerAgent, run_episodes
from codegym.search.agent import ReplayAgent
from codegym.search.aggregate import AGGREGATIONS, SearchBudget, aggregate, check_aggregation
from codegym.search.beam import beam_search
from codegym.search.scorers import OracleScorer, PRMScorer
from codegym.search.strategies import SearchResult, best_of_n
from codegym.tasks.base import Task

Log = Callable[[str], None]


@dataclass
class SearchTable:
    """What :func:`search_table` measured.

    Attributes:
        methods: Column order (``sample``, ``bestofn-AGG``..., ``beam``, [``beam-oracle``],
            ``oracle``).
        tasks: Per task: ``task_id``, ``steps``, ``bucket``, ``outcomes`` (method -> pass
            rate, 0/1 except ``sample``), ``passes`` (the ``n`` samples' verdicts) and
            ``aggregates`` (aggregation -> each sample's aggregate score, ``-inf`` for a
            sample without a scored line).
        budgets: Per method: the mean budget per task (:meth:`SearchBudget.to_dict` keys).
        rows: Per group (``all`` then each bucket) and method: ``rate``, ``lo``, ``hi``,
            ``tasks`` and, except for ``sample``, ``diff`` (``mean``, ``low``, ``high``) from
            ``sample`` in the same group.
        settings: The arguments and the seconds each stage took.
    """

    methods: list[str]
    tasks: list[dict[str, Any]]
    budgets: dict[str, dict[str, float]]
    rows: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"methods": self.methods, "rows": self.rows, "budgets": self.budgets, "ranking": self.ranking(),
                "settings": self.settings, "tasks": self.tasks}  # fmt: skip

    def ranking(self) -> dict[str, dict[str, float]]:
        """How well each aggregation ranks a task's samples: over every (passing, failing)
        pair of samples of the same task, the fraction where the passing one scores higher
        (ties count half) -- a within-task AUC; 0.5 is a random pick. ``pairs`` and
        ``tasks`` (those with both outcomes) say how much it rests on."""
        out = {}
        for agg in self.settings.get("aggregations", []):
            wins, pairs, tasks = 0.0, 0, 0
            for info in self.tasks:
                scores = [-math.inf if v is None else float(v) for v in info["aggregates"][agg]]
                good = [x for x, ok in zip(scores, info["passes"]) if ok]
                bad = [x for x, ok in zip(scores, info["passes"]) if not ok]
                tasks += bool(good and bad)
                for g in good:
                    for b in bad:
                        pairs += 1
                        wins += 1.0 if g > b else 0.5 if g == b else 0.0
            out[agg] = {"auc": wins / pairs if pairs else math.nan, "pairs": pairs, "tasks": tasks}
        return out

    def markdown(self) -> str:
        """Two Markdown tables: pass rates (%) with 95 % intervals and budgets, and the paired
        differences from ``sample`` (points)."""
        groups = [r["group"] for r in self.rows]
        head = "| method | " + " | ".join(groups) + " | sampled lines / task |"
        rule = "|---" * (len(groups) + 2) + "|"
        rates = [head, rule]
        diffs = [head.replace(" sampled lines / task |", ""), "|---" * (len(groups) + 1) + "|"]
        for m in self.methods:
            cells = [_pct(r["methods"][m]) for r in self.rows]
            rates.append(f"| {m} | " + " | ".join(cells) + f" | {self.budgets[m]['sampled_lines']:.1f} |")
            if m != "sample":
                diffs.append(f"| {m} | " + " | ".join(_diff(r["methods"][m]["diff"]) for r in self.rows) + " |")
        auc = ", ".join(f"{a} {r['auc']:.2f}" for a, r in self.ranking().items())
        pairs = max((r["pairs"] for r in self.ranking().values()), default=0)
        return "\n".join(["pass rate (%), 95 % interval over tasks", "", *rates, "",
                          "paired difference from `sample` (points), 95 % bootstrap interval", "", *diffs, "",
                          f"within-task ranking AUC of the samples ({pairs} passing/failing pairs): {auc}"])  # fmt: skip


def _pct(cell: dict[str, Any]) -> str:
    return f"{100 * cell['rate']:.1f} [{100 * cell['lo']:.1f}, {100 * cell['hi']:.1f}]"


def _diff(d: dict[str, float]) -> str:
    return f"{100 * d['mean']:+.1f} [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}]"


def _load_policy(policy: Any, device: str) -> tuple[Any, Any]:
    if isinstance(policy, (str, Path)):
        from codegym.lm import load_causal_lm

        return load_causal_lm(policy, device=device)
    model, tokenizer = policy
    return model, tokenizer


def _engine(model: Any, tokenizer: Any, seed: int, temperature: float, top_p: float, max_line_tokens: int) -> SamplerAgent:
    """A sampler agent as the ``hf`` agent builds it (a fresh generator seeded ``seed``)."""
    from codegym.sampling import LineSampler

    gen = torch.Generator(device=next(model.parameters()).device).manual_seed(int(seed))
    sampler = LineSampler(model.eval(), tokenizer, temperature=temperature, top_p=top_p,
                          max_line_tokens=max_line_tokens, generator=gen)  # fmt: skip
    return SamplerAgent(sampler)


def _verdicts(programs: list[tuple[Task, list[str]]], sandbox: Any, *, max_lines: int, timeout: float,
              workers: int) -> list[bool]:  # fmt: skip
    """Each program's verdict, written into the env by a :class:`ReplayAgent`."""
    agent = ReplayAgent([(t.task_id, lines) for t, lines in programs])
    records = run_episodes(agent, [t for t, _ in programs], num_envs=64, workers=workers, sandbox=sandbox,
                           env_kwargs={"prm": None, "reward_mode": "none", "max_lines": max_lines,
                                       "timeout": timeout})  # fmt: skip
    return [r.passed for r in records]


def _mean_budget(budgets: Sequence[SearchBudget], per: int = 1) -> dict[str, float]:
    total = SearchBudget.total(list(budgets)).to_dict()
    return {k: v / max(1, len(budgets) * per) for k, v in total.items()}


def _group_rows(methods: list[str], infos: list[dict[str, Any]], buckets: Sequence[tuple[int, int]]) -> list[dict[str, Any]]:
    """Per group (``all``, then each non-empty bucket): each method's rate and interval, and
    its paired difference from ``sample``."""
    from codegym.reporting.stats import paired_difference, pass_rate

    groups = {"all": infos}
    for lo, hi in buckets:
        name = bucket_name(lo, hi)
        members = [i for i in infos if i["bucket"] == name]
        if members:
            groups[name] = members
    rows = []
    for name, members in groups.items():
        base = np.array([[i["outcomes"]["sample"] for i in members]])  # (1, T)
        cells: dict[str, Any] = {}
        for m in methods:
            per_task = {i["task_id"]: (i["passes"] if m == "sample" else [bool(i["outcomes"][m])]) for i in members}
            rate = pass_rate(name, per_task)
            cells[m] = {"rate": rate.rate, "lo": rate.lo, "hi": rate.hi, "tasks": rate.tasks}
            if m != "sample":
                values = np.array([[i["outcomes"][m] for i in members]])  # (1, T)
                cells[m]["diff"] = paired_difference(values, base).to_dict()
        rows.append({"group": name, "tasks": len(members), "methods": cells})
    return rows


def _outcomes(bon: list[SearchResult], beams: dict[str, list[SearchResult]], verdicts: list[bool],
              aggregations: Sequence[str], buckets: Sequence[tuple[int, int]]) -> list[dict[str, Any]]:  # fmt: skip
    """Per task: its samples' verdicts and every method's outcome (``verdicts``: every
    best-of-N candidate task by task, then each beam search's answers in ``beams`` order)."""
    n = len(bon[0].candidates) if bon else 0
    at = len(bon) * n
    infos = []
    for t, result in enumerate(bon):
        passes = verdicts[t * n : (t + 1) * n]
        outcomes = {"sample": sum(passes) / n}
        outcomes.update({f"bestofn-{a}": float(passes[result.pick(a)]) for a in aggregations})
        for j, name in enumerate(beams):
            outcomes[name] = float(verdicts[at + j * len(bon) + t])
        outcomes["oracle"] = float(any(passes))
        ranks = {a: [aggregate(c.scores, a) for c in result.candidates] for a in aggregations}
        infos.append({"task_id": result.task.task_id, "steps": task_horizon(result.task),
                      "bucket": bucket_of(task_horizon(result.task), buckets), "outcomes": outcomes,
                      "passes": list(passes), "aggregates": ranks})  # fmt: skip
    return infos


def _budgets(bon: list[SearchResult], beams: dict[str, list[SearchResult]], aggregations: Sequence[str],
             n: int) -> dict[str, dict[str, float]]:  # fmt: skip
    """Each method's mean budget per task."""
    spent = _mean_budget([r.budget for r in bon])
    out = {"sample": {**_mean_budget([r.budget for r in bon], per=n), "programs": 1.0, "scored_lines": 0.0,
                      "executions": 0.0}}  # fmt: skip
    out.update({f"bestofn-{a}": dict(spent) for a in aggregations})
    out.update({name: _mean_budget([r.budget for r in results]) for name, results in beams.items()})
    out["oracle"] = {**spent, "scored_lines": float(n), "executions": float(n)}
    return out


@dataclass
class SearchSettings:
    """What :func:`search_table` runs (every field can also be passed to it by name)."""

    n: int = 8
    """Samples per task (best-of-N's N)."""
    beams: int = 2
    """Beam search's beams (B)."""
    k: int | None = None
    """Candidate lines per beam and step (default ``n // beams``: best-of-N's budget)."""
    aggregations: tuple[str, ...] = AGGREGATIONS
    """Best-of-N's rankings, one column each."""
    beam_aggregation: str = "last"
    """Beam search's ranking."""
    oracle_beam: bool = False
    """Add ``beam-oracle``: beam search guided by the exact prefix oracle (sandbox runs)."""
    temperature: float = 1.0
    """Sampling temperature (> 0)."""
    top_p: float = 1.0
    """Nucleus mass in (0, 1]."""
    seed: int = 0
    """Seed of the sampling generators (one per search)."""
    max_lines: int = 16
    """A program ends after this many lines (the env's ``max_lines`` too)."""
    max_line_tokens: int = 48
    """A line is cut after this many tokens."""
    batch_size: int = 16
    """Tasks searched side by side (``batch_size * n`` sampler slots)."""
    workers: int = 2
    """Parallel executions."""
    timeout: float = 5.0
    """Seconds per execution (a task's calibrated limit when larger)."""
    buckets: str = DEFAULT_BUCKETS
    """Horizon buckets."""

    def validate(self) -> SearchSettings:
        """Raise ``ValueError`` naming a bad setting; fills ``k``; returns self."""
        for name in ("n", "beams", "max_lines", "max_line_tokens", "batch_size", "workers"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        self.k = max(1, self.n // self.beams) if self.k is None else self.k
        for a in [*self.aggregations, self.beam_aggregation]:
            check_aggregation(a)
        if not self.aggregations:
            raise ValueError("aggregations must name at least one aggregation")
        parse_buckets(self.buckets)
        return self


def search_table(policy: Any, prm: Any, tasks: Sequence[Task], sandbox: Any, settings: SearchSettings | None = None, *,
                 device: str = "cpu", log: Log | None = None, **overrides: Any) -> SearchTable:  # fmt: skip
    """Sampling vs PRM best-of-N vs beam search vs the oracle's pass@N (module docstring).

    Args:
        policy: A causal-LM directory, or ``(model, tokenizer)``.
        prm: A PRM directory, a :class:`~codegym.prm.ProcessRewardModel` or a
            :class:`~codegym.search.PRMScorer`.
        tasks: The tasks (e.g. :func:`codegym.evaluation.tasks_by_bucket`).
        sandbox: Runs every program (shared; not closed here).
        settings: What to run (:class:`SearchSettings`); ``overrides`` replace its fields.
        device: Torch device for a policy or PRM given as a directory.
        log: Called with a line of progress now and then.
    """
    cfg = replace(settings or SearchSettings(), **overrides).validate()
    if not tasks:
        raise ValueError("search_table needs at least one task")
    log = log or (lambda _msg: None)
    model, tokenizer = _load_policy(policy, device)
    scorer = prm if isinstance(prm, PRMScorer) else PRMScorer(prm, device=device)
    run = _Runner(model, tokenizer, tasks, cfg, log)
    bon = run("bestofn", best_of_n, scorer, n=cfg.n, aggregation=cfg.aggregations[0])
    found = {"beam": run("beam", beam_search, scorer, beams=cfg.beams, k=cfg.k, aggregation=cfg.beam_aggregation)}
    if cfg.oracle_beam:
        oracle = OracleScorer(sandbox, timeout=cfg.timeout, workers=cfg.workers)
        try:
            found["beam-oracle"] = run("beam-oracle", beam_search, oracle, beams=cfg.beams, k=cfg.k, aggregation="last")
        finally:
            oracle.close()
    start = time.perf_counter()
    programs = [(r.task, c.lines) for r in bon for c in r.candidates]
    programs += [(r.task, r.lines) for results in found.values() for r in results]
    verdicts = _verdicts(programs, sandbox, max_lines=cfg.max_lines, timeout=cfg.timeout, workers=cfg.workers)
    run.seconds["execute"] = round(time.perf_counter() - start, 2)
    log(f"executed {len(programs)} programs")
    spans = parse_buckets(cfg.buckets)
    methods = ["sample", *[f"bestofn-{a}" for a in cfg.aggregations], *found, "oracle"]
    infos = _outcomes(bon, found, verdicts, cfg.aggregations, spans)
    settings_out = {**asdict(cfg), "aggregations": list(cfg.aggregations), "tasks": len(tasks), "seconds": run.seconds}
    return SearchTable(methods, infos, _budgets(bon, found, cfg.aggregations, cfg.n), _group_rows(methods, infos, spans),
                       settings_out)  # fmt: skip


class _Runner:
    """Runs one search over all tasks in chunks, each search from a fresh sampler agent
    seeded ``seed`` (so every search draws as a run of its own would), timing it."""

    def __init__(self, model: Any, tokenizer: Any, tasks: Sequence[Task], cfg: SearchSettings, log: Log) -> None:
        self.engine = (model, tokenizer, cfg.seed, cfg.temperature, cfg.top_p, cfg.max_line_tokens)
        self.tasks, self.max_lines, self.batch_size, self.log = list(tasks), cfg.max_lines, cfg.batch_size, log
        self.seconds: dict[str, float] = {}

    def __call__(self, name: str, search: Callable[..., list[SearchResult]], scorer: Any, **kwargs: Any) -> list[SearchResult]:
        agent = _engine(*self.engine)
        start = time.perf_counter()
        out: list[SearchResult] = []
        for lo in range(0, len(self.tasks), self.batch_size):
            with torch.no_grad():
                out += search(agent, scorer, self.tasks[lo : lo + self.batch_size], max_lines=self.max_lines, **kwargs)
            self.log(f"{name}: {len(out)}/{len(self.tasks)} tasks")
        self.seconds[name] = round(time.perf_counter() - start, 2)
        return out


__all__ = ["SearchSettings", "SearchTable", "search_table"]
