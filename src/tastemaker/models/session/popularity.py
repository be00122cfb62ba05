"""Popularity-type session models: recently popular (decayed or windowed), per context, by article age."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pydantic import Field

from tastemaker.models.session import _kernels as K
from tastemaker.models.session.base import CONTEXT_FIELDS, SessionModel, SessionModelConfig, build_state

HOUR = 3600.0


def tau_seconds(half_life_hours: float) -> float:
    """Decay time constant (seconds) of a half-life in hours; 0 means no decay."""
    return half_life_hours * HOUR / math.log(2.0) if half_life_hours > 0 else 0.0


def init_pop(pop: K.PopState, half_life_hours: float) -> None:
    pop.f[0] = np.nan
    pop.f[1] = tau_seconds(half_life_hours)
    pop.f[2] = 0.0


class RecentPopularityConfig(SessionModelConfig):
    half_life_hours: float = Field(default=1.0, ge=0.0)
    """A click's weight halves every this many hours (0: plain counts, no decay)."""
    top_n: int = Field(default=200, ge=1)
    """Length of the exactly maintained top list (recommendations beyond it scan every article)."""


class RecentPopularity(SessionModel):
    """Most clicked articles, each click weighted exp(-age / tau): the same list for every session.

    The top list is maintained exactly on every click (scores only rise between rescalings, and a
    common epoch makes the ranking independent of the request time).
    """

    name = "recent_popularity"
    Config = RecentPopularityConfig
    State = K.PopModel
    uses_sessions = False

    def _initial_caps(self) -> dict[str, int]:
        return {**super()._initial_caps(), "TOP": self.config.top_n}

    def _init_state(self, caps: dict[str, int]) -> Any:
        st = build_state(K.PopModel, caps)
        init_pop(st.pop, self.config.half_life_hours)
        return st


class WindowPopularityConfig(SessionModelConfig):
    window_hours: float = Field(default=1.0, gt=0.0)
    """Clicks of the last this many hours of the stream count (in whole buckets, up to the newest click)."""
    bucket_minutes: float = Field(default=10.0, gt=0.0)
    """Time resolution of the window."""


class WindowPopularity(SessionModel):
    """Most clicked articles over the last `window_hours` of the stream (up to the newest absorbed click)."""

    name = "window_popularity"
    Config = WindowPopularityConfig
    State = K.WinModel
    uses_sessions = False

    def _init_state(self, caps: dict[str, int]) -> Any:
        st = build_state(K.WinModel, caps)
        st.win.f[0] = self.config.bucket_minutes * 60.0
        st.win.f[1] = self.config.window_hours * HOUR
        return st


class ContextPopularityConfig(SessionModelConfig):
    half_life_hours: float = Field(default=1.0, ge=0.0)
    smoothing: float = Field(default=20.0, ge=0.0)
    """Pseudo-clicks pulling a context value's popularity towards the global one."""
    context_fields: list[str] = Field(default_factory=lambda: list(CONTEXT_FIELDS))
    """Which request context fields to condition on."""
    top_n: int = Field(default=200, ge=1)
    context_top_n: int = Field(default=100, ge=1)


class ContextPopularity(SessionModel):
    """Recently popular articles given the request's context (device, OS, region, referrer, …).

    Score: P(i) × Π_f P~(i | f = v_f) / P(i) (naive Bayes over the context fields), with each
    P~(i | f = v) smoothed towards the global decayed popularity P(i): a rare or unknown context
    value backs off to the global list, so new users get the best list their context allows.
    """

    name = "context_popularity"
    Config = ContextPopularityConfig
    State = K.CtxModel
    uses_sessions = False
    uses_context = True

    def _initial_caps(self) -> dict[str, int]:
        return {**super()._initial_caps(), "TOP": self.config.top_n, "CTOP": self.config.context_top_n}

    def _init_state(self, caps: dict[str, int]) -> Any:
        unknown = set(self.config.context_fields) - set(CONTEXT_FIELDS)
        if unknown:
            from tastemaker.errors import ConfigError

            raise ConfigError(f"context_fields has unknown field(s) {sorted(unknown)}; use some of "
                              f"{', '.join(CONTEXT_FIELDS)}")
        st = build_state(K.CtxModel, caps)
        init_pop(st.pop, self.config.half_life_hours)
        init_ctx(st.ctx, self.config.half_life_hours, self.config.smoothing)
        return st


def init_ctx(ctx: K.CtxState, half_life_hours: float, smoothing: float) -> None:
    ctx.f[0] = np.nan
    ctx.f[1] = tau_seconds(half_life_hours)
    ctx.f[2] = smoothing


class ArticleRecencyConfig(SessionModelConfig):
    half_life_hours: float = Field(default=2.0, gt=0.0)
    """Half-life of the age prior exp(-age / tau), age = time since the article's first click."""
    candidates: int = Field(default=200, ge=1)
    """How many of the most recently first-seen articles are scored."""


class ArticleRecency(SessionModel):
    """The article-age prior on its own: the newest articles (by first click seen) first.

    Without article metadata, an article's publication time is approximated by its first click.
    """

    name = "article_recency"
    Config = ArticleRecencyConfig
    State = K.AgeModel
    uses_sessions = False

    def _init_state(self, caps: dict[str, int]) -> Any:
        st = build_state(K.AgeModel, caps)
        init_pop(st.pop, 0.0)
        st.p[0] = tau_seconds(self.config.half_life_hours)
        st.p[1] = self.config.candidates
        return st
