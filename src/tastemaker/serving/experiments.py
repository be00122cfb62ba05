"""The service's experiments hook: per recommendation request, assign the unit (user id, else the
anonymous session id) to the running experiments, pick the variant's pipeline, and append one
exposure record per experiment — every shown item with its position and propensity — durably to
``exposures.log`` beside ``events.log`` (same checksummed, fsynced, idempotent log format).

`Service` builds it when `ServeSettings.experiments` names an experiments TOML; without one the
service behaves exactly as before.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tastemaker.experiments import Assigner, Assignment, ExperimentsConfig, exposure_record
from tastemaker.pipeline import Pipeline, PipelineConfig, PipelineRequest, PipelineResult, Resources, Rules
from tastemaker.serving.events import EventLog, Submitted

log = logging.getLogger(__name__)

PipelineMaker = Callable[[PipelineConfig | None, Resources], Pipeline]


class ExperimentHook:
    """Assignment, per-variant pipelines and the exposure log (see the module docstring).

    Args:
        config: the experiments.
        resources: the service's resources (variants that name a model or rule file get a copy);
            variants without a pipeline or model run the service's own pipeline.
        make_pipeline: builds a pipeline from a config (None: the service's default config) and resources.
        path: the exposure log file; fsync: as the event log.
    """

    def __init__(self, config: ExperimentsConfig, resources: Resources, *, make_pipeline: PipelineMaker,
                 path: str | Path, fsync: bool = True) -> None:
        self.config = config
        self.assigner = Assigner(config)
        self.resources = resources
        self.log = EventLog(path, fsync=fsync)
        self.pipelines: dict[tuple[str, str], Pipeline] = {}
        self._own_rules: list[Any] = []
        for e in config.experiments:
            for v in e.variants:
                if v.pipeline is None and v.model is None:
                    continue
                res = resources
                if v.model is not None or (v.pipeline is not None and v.pipeline.rules is not None):
                    res = copy.copy(resources)
                    if v.model is not None:
                        from tastemaker.models.base import Recommender

                        res.model = Recommender.load(v.model)
                    if v.pipeline is not None and v.pipeline.rules is not None:
                        res.rules = None  # the variant's own rule file, not the service's
                pipe = make_pipeline(v.pipeline, res)
                if v.pipeline is not None and v.pipeline.name == "default":
                    pipe.name = f"{e.name}:{v.name}"
                for stage in pipe.stages:
                    if isinstance(stage, Rules) and stage.rules is not resources.rules:
                        self._own_rules.append(stage.rules)
                self.pipelines[(e.name, v.name)] = pipe

    @classmethod
    def from_settings(cls, settings: Any, resources: Resources) -> ExperimentHook | None:
        """The hook for `ServeSettings.experiments` (None when no experiments file is set)."""
        if not settings.experiments:
            return None
        from tastemaker.pipeline import build_pipeline
        from tastemaker.serving.service import default_pipeline_config

        return cls(ExperimentsConfig.load(settings.experiments), resources,
                   make_pipeline=lambda cfg, res: build_pipeline(cfg or default_pipeline_config(settings, res), res),
                   path=Path(settings.data_dir) / "exposures.log", fsync=settings.fsync)

    def start(self) -> None:
        """Open the exposure log (nothing is replayed into state: exposures are for analysis)."""
        self.log.open()

    def close(self) -> None:
        self.log.close()
        for rules in self._own_rules:
            if hasattr(rules, "stop"):
                rules.stop()

    def status(self) -> dict[str, Any]:
        """For /health: the running experiments and the exposure log."""
        return {"running": [e.name for e in self.config.experiments], "exposures_logged": self.log.records,
                "log": str(self.log.path)}

    def choose(self, user_id: str | None, session_id: str | None) -> tuple[Pipeline | None, list[Assignment]]:
        """The request's assignments and the pipeline to run: the first assigned variant's that names
        one, else None (the service's current pipeline)."""
        arms = self.assigner.assign(user_id=user_id, session_id=session_id)
        for a in arms:
            pipe = self.pipelines.get((a.experiment, a.variant))
            if pipe is not None:
                return pipe, arms
        return None, arms

    def expose(self, request: PipelineRequest, result: PipelineResult, arms: list[Assignment], *,
               session_id: str | None, returning: bool | None) -> list[Submitted]:
        """Queue one exposure record per assignment; each submission's future resolves once durable."""
        if not arms:
            return []
        ids = [it.item_id for it in result.items]
        cats: list[Any] = [None] * len(ids)
        attrs = self.resources.attributes
        if attrs is not None and ids:
            cols, known = attrs.attributes(ids)
            col = cols.get("category")
            if col is not None:
                cats = [str(c) if k and c else None for c, k in zip(col, known)]
        items = [{"item_id": it.item_id, "position": it.position, "propensity": it.extras.get("propensity"),
                  "explored": it.extras.get("explored", False), "category": c}
                 for it, c in zip(result.items, cats)]
        records = [exposure_record(a, request_id=str(request.request_id), items=items, user_id=request.user_id,
                                   session_id=session_id, returning=returning, pipeline=result.pipeline)
                   for a in arms]
        return self.log.submit(records)
