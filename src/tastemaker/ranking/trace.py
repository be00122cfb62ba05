"""What the business-rules engine returns: ranked items, each with a trace of the rules that moved it.

A `TraceEntry` says which rule touched an item, what kind of rule it is, the effect in words
("boosted ×1.20", "pinned at 1", "sponsored slot 2", "explored with propensity 0.31", ...), and
the item's score and position (1-based) before and after that rule. Positions are counted in the
list as it stood at that step: for filters and boosts, among the candidates still in play, sorted
by score; for placements (pins, sponsored and exploration slots), caps and diversity, "before" is
the item's rank in the score order and "after" its position in the response.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

# the `action` of a TraceEntry: what happened, without the numbers
ACTIONS = ("filtered", "boosted", "buried", "capped", "pinned", "sponsored", "explored", "diversified", "skipped")


class TraceEntry(NamedTuple):
    """One rule's effect on one item."""

    rule: str
    kind: str
    action: str
    effect: str
    score_before: float | None = None
    score_after: float | None = None
    position_before: int | None = None
    position_after: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return self._asdict()

    def text(self) -> str:
        """One line: ``rule (kind): effect, score a → b, position p → q``."""
        out = f"{self.rule} ({self.kind}): {self.effect}"
        if self.score_before is not None and self.score_after is not None and self.score_before != self.score_after:
            out += f", score {self.score_before:.4g} → {self.score_after:.4g}"
        if self.position_before is not None or self.position_after is not None:
            a = "-" if self.position_before is None else self.position_before
            b = "-" if self.position_after is None else self.position_after
            out += f", position {a} → {b}"
        return out


@dataclass(frozen=True, slots=True)
class ExplorationChoice:
    """An exploration slot's choice, for the exposure log: the propensity is P(this item | pool)."""

    position: int
    item_id: str
    propensity: float
    pool: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"position": self.position, "item_id": self.item_id, "propensity": self.propensity,
                "pool": list(self.pool)}


@dataclass(slots=True)
class RankedItem:
    """One item of the final list (treat as read-only).

    `relevance` is the score the engine was given, `score` the score after boosts and buries;
    `input_position` the item's rank by relevance among all candidates (1-based). `trace` is built
    on first access (ranking itself only keeps the raw facts).
    """

    item_id: str
    position: int
    score: float
    relevance: float
    input_position: int
    sponsored: bool = False
    campaign: str | None = None
    pinned: bool = False
    explored: bool = False
    propensity: float | None = None
    _trace: tuple[TraceEntry, ...] | None = field(default=None, repr=False, compare=False)
    _tracer: Callable[[], Sequence[TraceEntry]] | None = field(default=None, repr=False, compare=False)

    @property
    def trace(self) -> tuple[TraceEntry, ...]:
        """Which rules moved this item and why, in the order they acted."""
        if self._trace is None:
            self._trace = tuple(self._tracer()) if self._tracer is not None else ()
        return self._trace

    def to_dict(self, *, trace: bool = True) -> dict[str, Any]:
        out = {"item_id": self.item_id, "position": self.position, "score": self.score,
               "relevance": self.relevance, "input_position": self.input_position,
               "sponsored": self.sponsored, "campaign": self.campaign, "pinned": self.pinned,
               "explored": self.explored, "propensity": self.propensity}
        if trace:
            out["trace"] = [e.to_dict() for e in self.trace]
        return out


@dataclass
class RankResult:
    """The final top-k of one request, with what the rules did.

    - `items`: the list, position 1 first;
    - `removed`: how many candidates each filter (and each cap) kept out of the list;
    - `notes`: rules that could not apply and why (a pin on an item that is out of stock, a
      sponsored slot with no eligible candidate, a filter whose attribute the candidates lack);
    - `exploration`: the exploration slots' choices with their propensities (log these);
    - `rules_version`: the content hash of the rule file that produced the list.

    `explain(item_id)` gives the trace of any candidate, also one that did not make the list.
    """

    items: list[RankedItem]
    removed: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    exploration: list[ExplorationChoice] = field(default_factory=list)
    rules_version: str = ""
    _explain: Any = field(default=None, repr=False, compare=False)

    @property
    def item_ids(self) -> list[str]:
        return [it.item_id for it in self.items]

    def explain(self, item_id: Any) -> list[TraceEntry]:
        """Every trace entry of a candidate (empty when no rule touched it or it was not a candidate)."""
        for it in self.items:
            if it.item_id == str(item_id):
                return list(it.trace)
        return list(self._explain(str(item_id))) if self._explain is not None else []

    def to_dict(self, *, trace: bool = True) -> dict[str, Any]:
        return {"items": [it.to_dict(trace=trace) for it in self.items], "removed": dict(self.removed),
                "notes": list(self.notes), "exploration": [c.to_dict() for c in self.exploration],
                "rules_version": self.rules_version}
