"""Pair-based session models: co-occurrence with the last click(s), item-kNN, sequential rules."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from tastemaker.models.session import _kernels as K
from tastemaker.models.session.base import SessionModel, SessionModelConfig, build_state
from tastemaker.models.session.popularity import tau_seconds

_GAP = {"same": 0, "div": 1, "linear": 2, "quadratic": 3}


class PairConfig(SessionModelConfig):
    steps: int = Field(default=20, ge=1)
    """Pairs are formed with the session's previous `steps` clicks."""
    half_life_hours: float = Field(default=0.0, ge=0.0)
    """Decay of pair weights by the time of the click that formed them (0: no decay)."""
    prefix_decay: float = Field(default=0.0, ge=0.0, le=1.0)
    """Weight of earlier prefix clicks, per step back (0: only the last click counts)."""
    max_session_length: int = Field(default=200, ge=2)


def init_pairs(st: Any, kind: int, steps: int, gap: int, half_life_hours: float) -> None:
    st.pairs.f[0] = float("nan")
    st.pairs.f[1] = tau_seconds(half_life_hours)
    st.pairs.p[0] = kind
    st.pairs.p[1] = steps
    st.pairs.p[2] = gap


class CoOccurrence(SessionModel):
    """Articles read in the same sessions as the last click: score(j) = sessions with both."""

    name = "cooccurrence"
    Config = PairConfig
    State = K.PairModel
    _cosine = 0.0

    def _init_state(self, caps: dict[str, int]) -> Any:
        st = build_state(K.PairModel, caps)
        st.ss.lim[0] = self.config.max_session_length
        init_pairs(st, 0, self.config.steps, 0, self.config.half_life_hours)
        st.p[0] = self._cosine
        st.p[1] = self.config.prefix_decay
        return st


class ItemKNN(CoOccurrence):
    """Session item-kNN: cosine of session co-occurrence, sessions(i, j) / sqrt(sessions(i) sessions(j))."""

    name = "iknn"
    _cosine = 1.0


class SequentialRulesConfig(PairConfig):
    steps: int = Field(default=10, ge=1)
    weighting: Literal["same", "div", "linear", "quadratic"] = "div"
    """Weight of a rule i -> j by the distance d between them in a session: 1, 1/d, 1 - 0.1 d, 1/d²."""


class SequentialRules(SessionModel):
    """Sequential rules (Ludewig & Jannach): score(j) = Σ over sessions of w(d) for i …d steps… j,
    i the last click."""

    name = "sr"
    Config = SequentialRulesConfig
    State = K.PairModel

    def _init_state(self, caps: dict[str, int]) -> Any:
        st = build_state(K.PairModel, caps)
        st.ss.lim[0] = self.config.max_session_length
        init_pairs(st, 1, self.config.steps, _GAP[self.config.weighting], self.config.half_life_hours)
        st.p[0] = 0.0
        st.p[1] = self.config.prefix_decay
        return st
