"""Session-kNN models: V-SKNN (Ludewig & Jannach 2018), STAN (Garg et al. 2019), VSTAN (Ludewig et al. 2021).

One kernel (`_kernels.knn_score`) covers the three; they differ in the weights they switch on:

| | prefix weights | similarity | neighbour recency | item position | prefix-distance decay | IDF |
|---|---|---|---|---|---|---|
| V-SKNN | linear/quadratic/... in position | dot / prefix length | — | — | 1/d, 1/d², … | optional |
| STAN | exp((p - L) / λ_spw) | cosine | exp(-Δt / λ_snh) | exp(-|Δpos| / λ_inh) | — | — |
| VSTAN | as STAN | as STAN | as STAN | as STAN | exp((p* - L) / λ_ipw) | 1 + idf × λ_idf |

Neighbour candidates are the `sample_size` most recent sessions (by their latest click) holding
any prefix article, taken from the newest `sample_size` sessions of each prefix article.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from tastemaker.models.session import _kernels as K
from tastemaker.models.session.base import SessionModel, SessionModelConfig, build_state

_PREFIX = {"same": K.PW_SAME, "div": K.PW_DIV, "quadratic": K.PW_QUADRATIC, "linear": K.PW_LINEAR,
           "log": K.PW_LOG}
_SCORE = {"same": K.SD_NONE, "div": K.SD_DIV, "quadratic": K.SD_QUADRATIC, "linear": K.SD_LINEAR,
          "log": K.SD_LOG}
HOUR = 3600.0


class KnnConfig(SessionModelConfig):
    k: int = Field(default=500, ge=1)
    """Neighbour sessions that vote."""
    sample_size: int = Field(default=500, ge=1)
    """Candidate sessions (the most recent ones sharing an article with the prefix)."""
    max_session_length: int = Field(default=200, ge=2)


class VSKNNConfig(KnnConfig):
    weighting: Literal["same", "div", "quadratic", "linear", "log"] = "quadratic"
    """Weight of prefix position p of L in the similarity (div: p/L, quadratic: (p/L)², …)."""
    weighting_score: Literal["same", "div", "quadratic", "linear", "log"] = "quadratic"
    """Decay of a neighbour's vote by the distance d of the most recent shared prefix article (1/d, 1/d², …)."""
    idf_weighting: float = Field(default=0.0, ge=0.0)
    """Votes are multiplied by 1 + idf(item) × this (0: off)."""


class STANConfig(KnnConfig):
    lambda_spw: float = Field(default=1.02, gt=0.0)
    """Prefix position weight exp((p - L) / λ)."""
    lambda_snh_hours: float = Field(default=120.0, ge=0.0)
    """Neighbour recency exp(-(t - t_neighbour) / λ), in hours (0: off)."""
    lambda_inh: float = Field(default=2.05, ge=0.0)
    """Item position in the neighbour: exp(-|pos - pos*| / λ) (0: off)."""


class VSTANConfig(STANConfig):
    lambda_ipw: float = Field(default=1.02, ge=0.0)
    """Vote decay exp((p* - L) / λ), p* the most recent prefix position shared with the neighbour (0: off)."""
    lambda_idf: float = Field(default=5.0, ge=0.0)
    """Votes are multiplied by 1 + idf(item) × λ (0: off)."""


def knn_params(p: Any, config: Any) -> None:
    """Write a kNN config into the kernel's parameter array."""
    p[K.K_K] = config.k
    p[K.K_SAMPLE] = config.sample_size
    if isinstance(config, VSKNNConfig):
        p[K.K_PREFIX] = _PREFIX[config.weighting]
        p[K.K_SIM] = 0.0
        p[K.K_SCORE] = _SCORE[config.weighting_score]
        p[K.K_IDF] = config.idf_weighting
    else:
        p[K.K_PREFIX] = K.PW_EXP
        p[K.K_SPW] = config.lambda_spw
        p[K.K_SIM] = 1.0
        p[K.K_SNH] = config.lambda_snh_hours * HOUR
        p[K.K_INH] = config.lambda_inh
        if isinstance(config, VSTANConfig) and config.lambda_ipw > 0:
            p[K.K_SCORE] = K.SD_EXP
            p[K.K_IPW] = config.lambda_ipw
        if isinstance(config, VSTANConfig):
            p[K.K_IDF] = config.lambda_idf


class _Knn(SessionModel):
    State = K.KnnModel

    def _init_state(self, caps: dict[str, int]) -> Any:
        st = build_state(K.KnnModel, caps)
        st.ss.lim[0] = self.config.max_session_length
        knn_params(st.p, self.config)
        return st


class VSKNN(_Knn):
    """Vector multiplication session-kNN (V-SKNN; Ludewig & Jannach 2018)."""

    name = "vsknn"
    Config = VSKNNConfig


class STAN(_Knn):
    """Sequence and Time Aware Neighbourhood (Garg et al., SIGIR 2019)."""

    name = "stan"
    Config = STANConfig


class VSTAN(_Knn):
    """STAN with V-SKNN's vote decay and IDF weighting (Ludewig et al. 2021)."""

    name = "vstan"
    Config = VSTANConfig
