"""Thompson-sampling exploration of fresh articles, with every choice logged with its propensity.

- Choice logs are `tastemaker.exploration`'s: anything with ``log(record: dict)`` (`ChoiceLog`), e.g.
  `tastemaker.exploration.ListLog` (keeps dicts) or `JsonlLog`; here `CallbackChoiceLog` calls a
  function and `ArrayChoiceLog` keeps columns (for replays of millions of requests).
  A record: ``{"policy", "timestamp", "session", "item", "slot", "propensity", "n_candidates"}``.
- `BetaThompsonSampler`: arms with Beta(alpha, beta) posteriors; ``select`` returns the chosen arm
  and its propensity, ``update(arm, reward)`` adds a Bernoulli outcome. It is the Python face of the
  numba kernel (`_kernels.thompson_choose`) that `FreshExplorer` runs inside its compiled
  recommend loop, which cannot call a Python policy: counter-based random numbers seeded per
  request (the same request gives the same choice) and a propensity estimated by re-draws,
  (wins + 1) / (draws + 1). `tastemaker.exploration.BetaThompson` — the engine-wide policy — draws
  its choice from cached Monte-Carlo shares instead, a different (exact-propensity) scheme.
- `FreshExplorer`: wraps a session model; in each list it puts one article first seen less than
  `fresh_hours` ago, chosen by Thompson sampling, at position `slot`. The candidates are the fresh
  articles the base model ranks just below that slot (relevant to the session), then the newest.

Without impression logs, an article's posterior uses the click stream: successes = its clicks,
trials = `exposure_rate` × the clicks on all articles since it was first seen (the readers who
could have seen it). New articles have wide posteriors and get explored; articles that do not
take off stop being chosen.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from pydantic import Field

from tastemaker.exploration.base import ChoiceLog, ListLog
from tastemaker.models.session import _kernels as K
from tastemaker.models.session.base import SessionModel, SessionModelConfig, build_state, create_session_model
from tastemaker.models.session.popularity import init_pop

POLICY = "thompson-beta-fresh"


class CallbackChoiceLog:
    """Hands each record to `callback` (e.g. an event-log writer)."""

    def __init__(self, callback: Callable[[dict[str, Any]], None]) -> None:
        self.callback = callback

    def log(self, record: dict[str, Any]) -> None:
        self.callback(record)


class ArrayChoiceLog:
    """Columnar records for replays: `log` appends one, `log_columns` appends many at once."""

    COLUMNS = ("timestamp", "session", "item", "slot", "propensity", "n_candidates")

    def __init__(self) -> None:
        self._chunks: list[dict[str, np.ndarray]] = []

    def log(self, record: dict[str, Any]) -> None:
        self.log_columns({c: np.asarray([record.get(c, -1) if record.get(c) is not None else -1])
                          for c in self.COLUMNS})

    def log_columns(self, columns: dict[str, np.ndarray]) -> None:
        self._chunks.append({c: np.asarray(columns[c]) for c in self.COLUMNS})

    def columns(self) -> dict[str, np.ndarray]:
        if not self._chunks:
            return {c: np.empty(0) for c in self.COLUMNS}
        return {c: np.concatenate([ch[c] for ch in self._chunks]) for c in self.COLUMNS}

    def __len__(self) -> int:
        return sum(len(ch["item"]) for ch in self._chunks)


class BetaThompsonSampler:
    """Beta-Bernoulli Thompson sampling over a growing set of arms.

    ``select(arms=None, seed=...)`` draws one sample per arm and returns (arm, propensity), the
    propensity estimated by `draws` independent re-draws ((wins + 1) / (draws + 1), never 0).
    """

    def __init__(self, prior_alpha: float = 1.0, prior_beta: float = 1.0, draws: int = 100) -> None:
        self.prior = (float(prior_alpha), float(prior_beta))
        self.draws = int(draws)
        self.alpha = np.empty(0)
        self.beta = np.empty(0)

    def add_arms(self, n: int) -> None:
        self.alpha = np.concatenate([self.alpha, np.full(n, self.prior[0])])
        self.beta = np.concatenate([self.beta, np.full(n, self.prior[1])])

    def update(self, arm: int, reward: float) -> None:
        """Add one Bernoulli outcome (reward in [0, 1]) to an arm's posterior."""
        self.alpha[arm] += reward
        self.beta[arm] += 1.0 - reward

    def select(self, arms: np.ndarray | None = None, *, seed: int = 0) -> tuple[int, float]:
        idx = np.arange(len(self.alpha)) if arms is None else np.asarray(arms, dtype=np.int64)
        if len(idx) == 0:
            raise ValueError("no arms to choose from")
        a = np.ascontiguousarray(self.alpha[idx])
        b = np.ascontiguousarray(self.beta[idx])
        choice, prop = K.thompson_choose(a, b, len(idx), np.int64(seed), self.draws)
        return int(idx[choice]), float(prop)


class FreshExplorerConfig(SessionModelConfig):
    base: str = "news_hybrid"
    """The session model whose lists are explored (a registered session model name)."""
    base_params: dict[str, Any] = Field(default_factory=dict)
    slot: int = Field(default=19, ge=0)
    """0-based list position the explored article takes (clipped to k - 1)."""
    fresh_hours: float = Field(default=1.0, gt=0.0)
    """Articles first seen less than this long before the request are candidates."""
    prior_alpha: float = Field(default=1.0, gt=0.0)
    prior_beta: float = Field(default=1.0, gt=0.0)
    exposure_rate: float = Field(default=0.1, gt=0.0)
    """Share of all clicks since an article appeared that count as its trials."""
    draws: int = Field(default=20, ge=0)
    """Re-draws that estimate each choice's propensity."""
    max_candidates: int = Field(default=8, ge=1)
    """Candidates: the base model's fresh articles ranked just below the slot, then the newest fresh ones."""
    extended_list: int = Field(default=30, ge=0)
    """How far below the top k the base model's ranking is searched for fresh candidates."""
    explore_share: float = Field(default=1.0, gt=0.0, le=1.0)
    """Probability that a request with fresh candidates gets the exploration slot (drawn per request,
    reproducibly); the logged propensity is explore_share × P(Thompson picks the article)."""
    seed: int = 0


class FreshExplorer(SessionModel):
    """A base session model plus one Thompson-sampled fresh article per list, logged with its propensity."""

    name = "fresh_explorer"
    Config = FreshExplorerConfig
    State = K.ExploreModel

    def __init__(self, config: Any = None, *, logger: ChoiceLog | None = None, **params: Any) -> None:
        self.logger: ChoiceLog = logger if logger is not None else ListLog()
        super().__init__(config, **params)

    def _base_model(self) -> SessionModel:
        if not hasattr(self, "_base"):
            self._base = create_session_model(self.config.base, self.config.base_params)
        return self._base

    @property
    def uses_sessions(self) -> bool:  # type: ignore[override]
        return self._base_model().uses_sessions

    @property
    def uses_context(self) -> bool:  # type: ignore[override]
        return self._base_model().uses_context

    def _initial_caps(self) -> dict[str, int]:
        return {**self._base_model()._initial_caps(), "XC": self.config.max_candidates}

    def _types(self) -> dict[str, type]:
        return {"base": type(self._base_model()._state)}

    def _mask_context(self, ctx: np.ndarray) -> np.ndarray:
        return self._base_model()._mask_context(ctx)

    def _init_state(self, caps: dict[str, int]) -> Any:
        base = self._base_model()
        base_state = base._init_state(caps)
        cfg = self.config
        st = build_state(K.ExploreModel, caps, types={"base": type(base_state)})
        st = st._replace(base=base_state)
        init_pop(st.pop, 0.0)
        xp = st.xp
        xp[K.X_SLOT] = cfg.slot
        xp[K.X_FRESH] = cfg.fresh_hours * 3600.0
        xp[K.X_A0] = cfg.prior_alpha
        xp[K.X_B0] = cfg.prior_beta
        xp[K.X_RHO] = cfg.exposure_rate
        xp[K.X_DRAWS] = cfg.draws
        xp[K.X_MAXC] = cfg.max_candidates
        xp[K.X_SEED] = cfg.seed
        xp[K.X_EXT] = cfg.extended_list
        xp[K.X_SHARE] = cfg.explore_share
        return st

    def _on_choice(self, record: dict[str, Any]) -> None:
        self.logger.log({"policy": POLICY, **record})

    def log_choices(self, columns: dict[str, np.ndarray]) -> None:
        """Log many choices (a replay's): columnar when the logger takes columns, else record by record."""
        if hasattr(self.logger, "log_columns"):
            self.logger.log_columns(columns)
            return
        n = len(columns["item"])
        for r in range(n):
            self.logger.log({"policy": POLICY, **{c: (v[r].item() if hasattr(v[r], "item") else v[r])
                                                  for c, v in columns.items()}})
