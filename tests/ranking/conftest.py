"""Small builders shared by the ranking tests, handed out as the `rk` fixture (a namespace)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from tastemaker.ranking import Candidates, RequestContext, RuleSet

TODAY = "2024-06-01"


def cands(n: int = 10, **cols: Any) -> Candidates:
    """n candidates "i0".."i{n-1}" scored n, n-1, ..., 1 (so input order = id order), in stock."""
    ids = [f"i{j}" for j in range(n)]
    scores = cols.pop("scores", np.arange(n, 0, -1, dtype=float))
    cols.setdefault("stock", np.full(n, 5.0))
    return Candidates(ids, scores, **cols)


def rules(**spec: Any) -> RuleSet:
    return RuleSet.from_dict(spec)


def ctx(**kw: Any) -> RequestContext:
    kw.setdefault("now", TODAY)
    return RequestContext(**kw)


def ids(result) -> list[str]:
    return [it.item_id for it in result.items]


def random_catalogue(rng: np.random.Generator, n: int) -> Candidates:
    """A candidate set with every attribute, for property-style tests."""
    return Candidates(
        [f"s{j}" for j in range(n)], rng.random(n),
        price=rng.uniform(1, 100, n), margin=rng.uniform(-0.1, 0.5, n), stock=rng.integers(0, 4, n),
        category=[f"d{rng.integers(3)}/c{rng.integers(3)}/l{rng.integers(3)}" for _ in range(n)],
        brand=[f"b{rng.integers(6)}" for _ in range(n)],
        launch=np.datetime64(TODAY) - rng.integers(-5, 90, n).astype("timedelta64[D]"),
        tags=[["eco"] if rng.random() < 0.2 else [] for _ in range(n)],
        regions=["" if rng.random() < 0.7 else "FR,DE" for _ in range(n)],
        promo=rng.random(n) < 0.2, sponsored=rng.random(n) < 0.15,
        campaign=[f"c{j % 4}" for j in range(n)], consumable=rng.random(n) < 0.3)


@pytest.fixture
def rk() -> SimpleNamespace:
    return SimpleNamespace(cands=cands, rules=rules, ctx=ctx, ids=ids, random_catalogue=random_catalogue, TODAY=TODAY)


@pytest.fixture
def example_rules() -> RuleSet:
    from pathlib import Path

    return RuleSet.load(Path(__file__).resolve().parents[2] / "docs" / "examples" / "rules.toml")
