"""The bandit-policy contract: ``select(context, actions) -> Decision`` and ``update(context, action, reward)``.

Every policy computes, for the given context and candidate actions, the probability it picks each
action; `select` then draws from exactly that distribution, so the logged propensity (the chosen
action's probability) is the true probability of the choice — what off-policy evaluation
(`tastemaker.evaluation.ope`) needs. Deterministic policies (UCB1, LinUCB) log 1 (or 1/ties).

Every decision goes to the policy's choice log when one is given: anything with
``log(record: dict)`` — the news models (`tastemaker.models.session.FreshExplorer`) log to the same
interface, so one log can collect both. `ListLog` keeps records in
memory, `JsonlLog` appends them to a JSON-lines file, `read_jsonl` reads such a file back.
A record: ``{"policy", "step", "action", "propensity", "n_actions"}`` plus whatever the caller passes
as ``select(..., record={...})`` (a request id, a user, a timestamp).

Actions are any ids; policies key their per-action state by ``str(action)`` (so ``1`` and ``"1"`` are
the same action), which keeps the state plain JSON (`to_dict` / `from_dict`).
"""

from __future__ import annotations

import json
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from tastemaker.errors import ConfigError, DataError


@dataclass(frozen=True, eq=False)
class Decision:
    """One choice: the action, the probability it had, and the policy's view of every candidate.

    `scores[j]` is the policy's score of ``actions[j]`` (mean estimate, upper confidence bound or
    posterior mean, per policy); `probabilities[j]` the probability of picking ``actions[j]``;
    `index` the chosen position, so ``propensity == probabilities[index]``.
    """

    action: Any
    propensity: float
    scores: np.ndarray
    probabilities: np.ndarray
    index: int

    def to_dict(self) -> dict[str, Any]:
        return {"action": _plain(self.action), "propensity": self.propensity, "index": self.index,
                "scores": self.scores.tolist(), "probabilities": self.probabilities.tolist()}


class ChoiceLog(Protocol):
    """Where decisions go: anything with ``log(record)``."""

    def log(self, record: dict[str, Any]) -> None: ...


class ListLog:
    """Keeps every record (a dict) in `records`."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def log(self, record: dict[str, Any]) -> None:
        self.records.append(record)

    def __len__(self) -> int:
        return len(self.records)


def _plain(value: Any) -> Any:
    """numpy scalars/arrays as Python values (for JSON)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


class JsonlLog:
    """Appends each record as one JSON line to `path` (created with its folder; flushed per record).

    Thread-safe; use as a context manager or call `close()`.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def log(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, default=_plain, separators=(",", ":"))
        with self._lock:
            self._fh.write(line + "\n")
            self._fh.flush()

    def close(self) -> None:
        with self._lock:
            self._fh.close()

    def __enter__(self) -> JsonlLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines choice log (blank lines skipped)."""
    out = []
    p = Path(path)
    with p.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DataError(f"not a JSON record: {exc.msg}", path=p, line=n,
                                hint="each line of a choice log is one JSON object") from exc
    return out


def draw_index(probabilities: np.ndarray, rng: np.random.Generator) -> int:
    """An index drawn with the given probabilities (never one of probability 0)."""
    p = probabilities
    c = np.cumsum(p)
    i = min(int(np.searchsorted(c, rng.random() * c[-1], side="right")), len(p) - 1)
    while p[i] == 0.0:  # only reachable through float rounding at the upper edge
        i -= 1
    return i


def argmax_ties(scores: np.ndarray) -> np.ndarray:
    """Uniform distribution over the maximal scores (inf counts as maximal)."""
    best = scores == scores.max()
    return best / best.sum()


class Policy(ABC):
    """A bandit policy. Subclasses implement `_distribution`, `update`, `_state` and `_load_state`.

    Args:
        seed: seeds the policy's own generator (used when `select` is given no `rng`) and any
            Monte-Carlo propensities.
        logger: a choice log that receives every decision (see the module docstring).
    """

    name: ClassVar[str] = "policy"
    contextual: ClassVar[bool] = False

    def __init__(self, *, seed: int = 0, logger: ChoiceLog | None = None) -> None:
        self.seed = int(seed)
        self.logger = logger
        self.rng = np.random.default_rng(self.seed)
        self.steps = 0  # decisions made
        self.t = 0  # rewards absorbed

    # --- contract -------------------------------------------------------------------------------

    @abstractmethod
    def _distribution(self, context: Any, actions: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        """(scores, probabilities) over `actions` for `context`; a pure function of the state."""

    @abstractmethod
    def update(self, context: Any, action: Any, reward: float) -> None:
        """Absorb the reward observed after showing `action` in `context`."""

    @abstractmethod
    def _state(self) -> dict[str, Any]:
        """The learned state as plain JSON data."""

    @abstractmethod
    def _load_state(self, state: Mapping[str, Any]) -> None: ...

    def _settings(self) -> dict[str, Any]:
        """Constructor arguments (besides seed) as plain data."""
        return {}

    # --- shared ---------------------------------------------------------------------------------

    def select(self, context: Any, actions: Sequence[Any], *, rng: np.random.Generator | None = None,
               record: Mapping[str, Any] | None = None) -> Decision:
        """Choose one of `actions` for `context`; log and return the decision with its propensity.

        `rng` draws the choice (default: the policy's own seeded generator); `record` adds fields
        to the logged record (e.g. a request id).
        """
        acts = self._actions(actions)
        scores, probs = self._distribution(context, acts)
        i = draw_index(probs, self.rng if rng is None else rng)
        decision = Decision(acts[i], float(probs[i]), scores, probs, i)
        self.steps += 1
        if self.logger is not None:
            self.logger.log({"policy": self.name, "step": self.steps, "action": _plain(acts[i]),
                             "propensity": float(probs[i]), "n_actions": len(acts), **dict(record or {})})
        return decision

    def probabilities(self, context: Any, actions: Sequence[Any]) -> np.ndarray:
        """Probability of choosing each of `actions` for `context` in the current state (sums to 1)."""
        return self._distribution(context, self._actions(actions))[1]

    def scores(self, context: Any, actions: Sequence[Any]) -> np.ndarray:
        """The policy's score of each action (what it ranks by)."""
        return self._distribution(context, self._actions(actions))[0]

    @staticmethod
    def _actions(actions: Sequence[Any]) -> list[Any]:
        acts = actions.tolist() if isinstance(actions, np.ndarray) else list(actions)
        if not acts:
            raise ValueError("select needs at least one action")
        if len({str(a) for a in acts}) != len(acts):
            raise ValueError("actions must be distinct (compared as strings)")
        return acts

    @staticmethod
    def _reward(reward: float, lo: float | None = None, hi: float | None = None) -> float:
        r = float(reward)
        if not np.isfinite(r) or (lo is not None and r < lo) or (hi is not None and r > hi):
            rng = f" in [{lo}, {hi}]" if lo is not None else ""
            raise ValueError(f"reward must be a finite number{rng}, got {reward!r}")
        return r

    def to_dict(self) -> dict[str, Any]:
        """The policy as plain JSON-able data: name, settings, seed, counters and learned state."""
        return {"policy": self.name, "settings": self._settings(), "seed": self.seed, "steps": self.steps,
                "t": self.t, "state": self._state()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Policy:
        """Rebuild a policy saved with `to_dict` (call it on `Policy` or on the saved class)."""
        from tastemaker.exploration import POLICIES

        name = data.get("policy")
        target = POLICIES.get(str(name)) if cls is Policy else cls
        if target is None or (cls is not Policy and name != cls.name):
            raise ConfigError(f"cannot load a {name!r} policy with {cls.__name__}; known policies: "
                              f"{', '.join(POLICIES)}")
        out = target(**dict(data.get("settings", {})), seed=int(data.get("seed", 0)))
        out.steps = int(data.get("steps", 0))
        out.t = int(data.get("t", 0))
        out._load_state(dict(data.get("state", {})))
        return out

    def __repr__(self) -> str:
        bits = ", ".join(f"{k}={v!r}" for k, v in self._settings().items())
        return f"{type(self).__name__}({bits})"


class ArmStats:
    """Pull counts and reward sums per action key (the state of the non-contextual policies)."""

    def __init__(self) -> None:
        self.count: dict[str, float] = {}
        self.total: dict[str, float] = {}

    def add(self, key: str, reward: float) -> None:
        self.count[key] = self.count.get(key, 0.0) + 1.0
        self.total[key] = self.total.get(key, 0.0) + reward

    def arrays(self, keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
        n = np.array([self.count.get(k, 0.0) for k in keys])
        s = np.array([self.total.get(k, 0.0) for k in keys])
        return n, s

    def to_dict(self) -> dict[str, list[float]]:
        return {k: [self.count[k], self.total[k]] for k in self.count}

    def load(self, data: Mapping[str, Sequence[float]]) -> None:
        for k, (n, s) in data.items():
            self.count[str(k)] = float(n)
            self.total[str(k)] = float(s)
