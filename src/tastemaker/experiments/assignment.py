"""Deterministic assignment of units to variants, and the exposure records the service logs.

A unit (a user id, or an anonymous session id) is placed twice, each time by a salted SHA-256 hash
mapped to [0, 1):

1. its position in the experiment's *layer*: ``h("layer:" + layer salt, unit)``; the experiment
   takes the units whose position falls in its ``range`` (experiments of one layer have disjoint
   ranges, so a unit is in at most one of them);
2. its variant within the experiment: ``h("experiment:" + experiment salt, unit)`` against the
   cumulative variant shares.

Different layers use different salts, so their hashes are independent: a unit's variant in one
layer says nothing about its variant in another (experiments overlap without interference). The
second hash is independent of the first, so the variant split is the same in every slice of the
layer. Nothing is stored: the same unit always gets the same variant while the salts are unchanged.

An exposure record (`exposure_record`) is one JSON object per (request, experiment)::

    {"kind": "exposure", "id": "<request_id>:<experiment>", "at": 1709251200.5,
     "experiment": "reco-v2", "layer": "ranking", "variant": "treatment", "share": 0.5,
     "unit": "user", "unit_id": "u17", "user_id": "u17", "session_id": null, "returning": true,
     "request_id": "…", "pipeline": "with-rules",
     "items": [{"item_id": "i3", "position": 1, "propensity": 1.0, "explored": false, "category": "home"}, …]}

``share`` is the probability of the assignment (the variant's share); each item's ``propensity`` is
the probability that this item was shown at this position given the request: 1 for the ranked
items, the Thompson probability for an exploration slot.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tastemaker.experiments.config import ExperimentConfig, ExperimentsConfig

_SCALE = float(2**64)


def unit_hash(salt: str, unit_id: Any) -> float:
    """The unit's position in [0, 1) under `salt` (SHA-256, first 8 bytes, big-endian)."""
    digest = hashlib.sha256(f"{salt}\x1f{unit_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def unit_hashes(salt: str, unit_ids: Iterable[Any]) -> np.ndarray:
    """`unit_hash` of many units (float64 array)."""
    prefix = f"{salt}\x1f".encode()
    sha = hashlib.sha256
    raw = b"".join(sha(prefix + str(u).encode()).digest()[:8] for u in unit_ids)
    return np.frombuffer(raw, dtype=">u8").astype(np.float64) / _SCALE


@dataclass(frozen=True)
class Assignment:
    """A unit's variant in one experiment. `share` is the probability of this assignment."""

    experiment: str
    layer: str
    variant: str
    share: float
    unit: str
    unit_id: str
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"experiment": self.experiment, "layer": self.layer, "variant": self.variant,
                **({"params": self.params} if self.params else {})}


class Assigner:
    """Assigns units to the variants of every declared experiment (see the module docstring)."""

    def __init__(self, config: ExperimentsConfig) -> None:
        self.config = config
        self._layers = {e.name: "layer:" + config.layer(e.layer).hash_salt for e in config.experiments}
        self._cum = {e.name: np.cumsum([v.share for v in e.variants]) for e in config.experiments}

    @staticmethod
    def unit_of(experiment: ExperimentConfig, user_id: str | None, session_id: str | None) -> tuple[str, str] | None:
        """(unit kind, unit id) the experiment randomises on for this request, or None when it has none."""
        if experiment.unit in ("user", "auto") and user_id is not None:
            return "user", str(user_id)
        if experiment.unit in ("session", "auto") and session_id is not None:
            return "session", str(session_id)
        return None

    def variant_of(self, experiment: ExperimentConfig, unit_id: str) -> str | None:
        """The unit's variant, or None when the unit falls outside the experiment's range of its layer."""
        lo, hi = experiment.range
        if (lo, hi) != (0.0, 1.0):
            pos = unit_hash(self._layers[experiment.name], unit_id)
            if not lo <= pos < hi:
                return None
        v = unit_hash("experiment:" + experiment.hash_salt, unit_id)
        i = int(np.searchsorted(self._cum[experiment.name], v, side="right"))
        return experiment.variants[min(i, len(experiment.variants) - 1)].name

    def assign(self, *, user_id: str | None = None, session_id: str | None = None) -> list[Assignment]:
        """The request's variant in every experiment it takes part in (file order)."""
        out = []
        for e in self.config.experiments:
            unit = self.unit_of(e, user_id, session_id)
            if unit is None:
                continue
            name = self.variant_of(e, unit[1])
            if name is None:
                continue
            v = e.variant(name)
            out.append(Assignment(e.name, e.layer, name, v.share, unit[0], unit[1], dict(v.params)))
        return out

    def assign_many(self, experiment: str, unit_ids: Sequence[Any]) -> np.ndarray:
        """Variant names of many units in one experiment (object array; None outside its range)."""
        e = self.config.experiment(experiment)
        ids = [str(u) for u in unit_ids]
        out = np.full(len(ids), None, dtype=object)
        inside = np.ones(len(ids), dtype=bool)
        lo, hi = e.range
        if (lo, hi) != (0.0, 1.0):
            pos = unit_hashes(self._layers[e.name], ids)
            inside = (pos >= lo) & (pos < hi)
        v = unit_hashes("experiment:" + e.hash_salt, ids)
        idx = np.minimum(np.searchsorted(self._cum[e.name], v, side="right"), len(e.variants) - 1)
        names = np.asarray(e.variant_names, dtype=object)
        out[inside] = names[idx[inside]]
        return out


def exposure_record(assignment: Assignment, *, request_id: str, items: Sequence[dict[str, Any]],
                    user_id: str | None = None, session_id: str | None = None, returning: bool | None = None,
                    pipeline: str | None = None, at: float | None = None) -> dict[str, Any]:
    """The exposure log record of one request in one experiment (format in the module docstring).

    `items` are dicts with item_id and position, and optionally propensity (default 1: a
    deterministic slot), explored and category.
    """
    shown = []
    for it in items:
        d = {"item_id": str(it["item_id"]), "position": int(it["position"]),
             "propensity": float(it.get("propensity") if it.get("propensity") is not None else 1.0)}
        if it.get("explored"):
            d["explored"] = True
        if it.get("category") is not None:
            d["category"] = str(it["category"])
        shown.append(d)
    return {"kind": "exposure", "id": f"{request_id}:{assignment.experiment}",
            "at": time.time() if at is None else float(at), "experiment": assignment.experiment,
            "layer": assignment.layer, "variant": assignment.variant, "share": assignment.share,
            "unit": assignment.unit, "unit_id": assignment.unit_id, "user_id": user_id, "session_id": session_id,
            "returning": returning, "request_id": request_id, "pipeline": pipeline, "items": shown}
