"""NewsHybrid: a weighted sum of normalised session-kNN, rule, popularity, context and article-age scores."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from tastemaker.models.session import _kernels as K
from tastemaker.models.session.base import CONTEXT_FIELDS, SessionModel, SessionModelConfig, build_state
from tastemaker.models.session.cooccurrence import _GAP, init_pairs
from tastemaker.models.session.knn import STANConfig, VSKNNConfig, VSTANConfig, knn_params
from tastemaker.models.session.popularity import init_ctx, init_pop, tau_seconds

_KNN_CONFIGS = {"vstan": VSTANConfig, "stan": STANConfig, "vsknn": VSKNNConfig}


class NewsHybridConfig(SessionModelConfig):
    knn: Literal["vstan", "stan", "vsknn"] = "vstan"
    """Which session-kNN member."""
    knn_params: dict[str, Any] = Field(default_factory=dict)
    """Settings of the kNN member (those of its own model, e.g. k, sample_size, lambda_spw)."""
    pairs: Literal["sr", "cooccurrence"] = "sr"
    """Pair member: sequential rules (directed, by distance) or co-occurrence (undirected)."""
    pair_steps: int = Field(default=10, ge=1)
    pair_weighting: Literal["same", "div", "linear", "quadratic"] = "div"
    pair_prefix_decay: float = Field(default=0.0, ge=0.0, le=1.0)
    pair_half_life_hours: float = Field(default=0.0, ge=0.0)
    """Decay of the pair weights by the time they were formed (0: none)."""
    w_knn: float = Field(default=1.0, ge=0.0)
    w_pairs: float = Field(default=0.3, ge=0.0)
    w_pop: float = Field(default=0.3, ge=0.0)
    """Weight of the decayed popularity (relative to the most popular article)."""
    w_context: float = Field(default=0.0, ge=0.0)
    w_age: float = Field(default=0.1, ge=0.0)
    """Weight of the article-age prior exp(-age / tau)."""
    pop_half_life_hours: float = Field(default=1.0, ge=0.0)
    age_half_life_hours: float = Field(default=2.0, gt=0.0)
    context_smoothing: float = Field(default=20.0, ge=0.0)
    context_fields: list[str] = Field(default_factory=lambda: list(CONTEXT_FIELDS))
    pop_candidates: int = Field(default=50, ge=0)
    """Candidates added from the top of the popularity list."""
    age_candidates: int = Field(default=50, ge=0)
    """Candidates added from the most recently first-seen articles."""
    max_session_length: int = Field(default=200, ge=2)


class NewsHybrid(SessionModel):
    """Σ_m w_m × s_m(i) / max_j s_m(j) over kNN, rules, decayed popularity, context and article age.

    Each member is the incremental model of its own module; a member with weight 0 is neither
    updated nor scored. Weights are tuned on early windows only (see `tastemaker.bench.news`).
    """

    name = "news_hybrid"
    Config = NewsHybridConfig
    State = K.HybridModel

    @property
    def uses_context(self) -> bool:  # type: ignore[override]
        return self.config.w_context > 0

    def _initial_caps(self) -> dict[str, int]:
        caps = super()._initial_caps()
        caps["TOP"] = max(200, self.config.pop_candidates)
        if self.config.w_context <= 0:
            caps["NS"] = 1
            caps["CTOP"] = 1
        if self.config.w_pairs <= 0:
            caps["PE"] = 16
            caps["PH"] = 32
        return caps

    def _init_state(self, caps: dict[str, int]) -> Any:
        cfg = self.config
        knn_cfg = _KNN_CONFIGS[cfg.knn].parse(cfg.knn_params, source=f"{self.name}.knn_params")
        st = build_state(K.HybridModel, caps)
        st.ss.lim[0] = cfg.max_session_length
        knn_params(st.knn_p, knn_cfg)
        init_pairs(st, 1 if cfg.pairs == "sr" else 0, cfg.pair_steps,
                   _GAP[cfg.pair_weighting] if cfg.pairs == "sr" else 0, cfg.pair_half_life_hours)
        st.pair_p[0] = 0.0
        st.pair_p[1] = cfg.pair_prefix_decay
        init_pop(st.pop, cfg.pop_half_life_hours)
        init_ctx(st.ctx, cfg.pop_half_life_hours, cfg.context_smoothing)
        hp = st.hp
        hp[K.H_KNN] = cfg.w_knn
        hp[K.H_PAIR] = cfg.w_pairs
        hp[K.H_POP] = cfg.w_pop
        hp[K.H_CTX] = cfg.w_context
        hp[K.H_AGE] = cfg.w_age
        hp[K.H_TAU_AGE] = tau_seconds(cfg.age_half_life_hours)
        hp[K.H_POP_CAND] = cfg.pop_candidates
        hp[K.H_AGE_CAND] = cfg.age_candidates
        return st
