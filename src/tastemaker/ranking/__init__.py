"""The ranking stage: business rules, diversity re-rankers and the trace of why each item moved.

    from tastemaker.ranking import RuleSet, Candidates, RequestContext
    rules = RuleSet.load("rules.toml")            # or RuleSet.watch(path) for hot reload
    result = rules.rank(Candidates(ids, scores, price=..., brand=...), RequestContext(user_id="u1"))
    result.items[0].trace                          # which rules moved it, and why

In serving, prepare the catalogue's attributes once (`AttributeTable`) and take each request's
candidates from it by row: `table.candidates(rows, scores)`. The rule file format is documented in
docs/examples/rules.toml.
"""

from tastemaker.ranking.diversity import calibrated_rerank, mmr_rerank
from tastemaker.ranking.rules import (
    AttributeTable,
    Candidates,
    RequestContext,
    RuleFile,
    RuleProblem,
    RulesError,
    RuleSet,
    RuleSetHolder,
)
from tastemaker.ranking.trace import ExplorationChoice, RankedItem, RankResult, TraceEntry

__all__ = [
    "AttributeTable",
    "Candidates",
    "ExplorationChoice",
    "RankResult",
    "RankedItem",
    "RequestContext",
    "RuleFile",
    "RuleProblem",
    "RuleSet",
    "RuleSetHolder",
    "RulesError",
    "TraceEntry",
    "calibrated_rerank",
    "mmr_rerank",
]
