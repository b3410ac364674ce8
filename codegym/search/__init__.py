"""PRM-guided search at inference: best-of-N reranking and line-level beam search.

A policy samples lines (:class:`codegym.rollout.SamplerAgent`), a line scorer (a PRM, or the
exact prefix oracle of ``pipelines`` as the ceiling) scores them, and the search keeps the
best program by an aggregation of its line scores. :class:`SearchAgent` runs a search inside
the rollout loop (``codegym eval --agent bestofn`` / ``--agent beam``), and
:func:`search_table` compares, per horizon bucket and at a counted budget of sampled lines,
plain sampling, best-of-N under each aggregation, beam search and the oracle's pass@N.

Modules: :mod:`~codegym.search.aggregate` (aggregations, :class:`SearchBudget`),
:mod:`~codegym.search.scorers` (:class:`PRMScorer`, :class:`OracleScorer`),
:mod:`~codegym.search.strategies` (:func:`best_of_n`, the algorithms and budgets),
:mod:`~codegym.search.beam` (:func:`beam_search`), :mod:`~codegym.search.agent`
(:class:`SearchAgent`, :class:`ReplayAgent`), :mod:`~codegym.search.table`
(:func:`search_table`).
"""

from codegym.search.agent import ReplayAgent, SearchAgent
from codegym.search.aggregate import AGGREGATIONS, SearchBudget, aggregate, pick
from codegym.search.beam import beam_search
from codegym.search.scorers import OracleScorer, PRMScorer, Scores
from codegym.search.strategies import Candidate, SearchResult, best_of_n, sample_programs
from codegym.search.table import SearchSettings, SearchTable, search_table

__all__ = [
    "AGGREGATIONS", "Candidate", "OracleScorer", "PRMScorer", "ReplayAgent", "Scores", "SearchAgent",
    "SearchBudget", "SearchResult", "SearchSettings", "SearchTable", "aggregate", "beam_search", "best_of_n", "pick",
    "sample_programs", "search_table",
]  # fmt: skip
