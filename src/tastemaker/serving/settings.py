"""`ServeSettings`: everything `tastemaker serve` can be told, documented once, validated strictly.

Settings come from a TOML file (``[serve]`` table or top level), CLI options, or the environment:
``TASTEMAKER_API_KEYS`` (comma-separated) adds API keys; ``TASTEMAKER_STORE`` overrides `store`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field

from tastemaker.config import StrictConfig, read_toml
from tastemaker.pipeline import PipelineConfig


class DashboardSettings(StrictConfig):
    """The dashboard (``/dashboard``): pages over the service's models, benchmarks and experiments.

    enabled: mount the dashboard (it needs jinja2: ``pip install 'tastemaker[dashboard]'``).
    rules_dir: a folder of rule files (TOML/JSON) the user explorer can switch between (besides
        the service's own `rules`).
    bench_dir: a folder of bench JSON documents (``tastemaker bench … --output``) for the Models page.
    experiments_dir: a folder with one subfolder per experiment holding its logs (``exposures.jsonl``
        or ``exposures.log``, ``events.jsonl`` or ``events.log``, optional ``pre.csv``,
        ``experiment.toml``, ``catalog.csv`` — what ``tastemaker ab simulate`` writes).
    refresh_s: how often the Live page refreshes.
    pool: candidates each model retrieves for the user explorer (the diversity re-ranker chooses
        among them).
    """

    enabled: bool = True
    rules_dir: str | None = None
    bench_dir: str | None = None
    experiments_dir: str | None = None
    refresh_s: float = Field(3.0, ge=0.5, le=600)
    pool: int = Field(200, ge=10, le=5000)


class ServeSettings(StrictConfig):
    """Settings of the recommendation service.

    host / port: where `serve` listens.
    model: a model bundle folder (`Recommender.save`) for the collaborative (MovieLens-style) path,
        or a registry URI: ``models:/NAME@ALIAS`` (e.g. ``@champion``) is followed — when the alias
        moves, the new version is fetched and loaded in the background and swapped in atomically
        (requests in flight finish on the old model) — and ``models:/NAME/VERSION`` is pinned.
    model_poll_s: how often a ``models:/NAME@ALIAS`` model checks its alias (0: never).
    registry_uri: the MLflow registry a ``models:/`` model comes from (default
        ``$MLFLOW_TRACKING_URI``, else the embedded ``sqlite:///mlflow.db`` in the working folder).
    catalog: a CSV or Parquet file of items: an ``item_id`` column plus any of price, margin, stock,
        category, brand, launch, tags, regions, promo, sponsored, campaign, consumable, and text
        columns (`text_fields`) that give new and old items their content vectors.
    content_index: a saved `ContentIndex` folder (instead of building one from the catalog's text).
    text_fields: catalog columns joined into an item's text (for the content index and upserts).
    pipeline: the pipeline (sources, scorer, rules); default: the model's candidates when a model is
        given, plus content candidates when items have text, then the rules or the constraints.
    rules: a business-rules file (TOML/JSON), reloaded when it changes.
    store: ``memory://`` (embedded) or ``redis://host:port/db``; with a Redis store, reads degrade to
        an embedded copy when Redis is unreachable (`store_fallback`).
    store_namespace: the store's key namespace (``tm:{namespace}:…`` on Redis).
    store_timeout_s: Redis socket timeout; store_retry_s: after a failed read, how long reads go
        straight to the fallback before Redis is tried again.
    data_dir: where the event log (``events.log``) lives; accepted events and item upserts are
        fsynced there before the response, and replayed at start.
    fsync: turn off only for throwaway benchmarks (acknowledged events could then be lost).
    api_keys: keys accepted in the ``X-API-Key`` header of write endpoints (POST /events,
        PUT /items); more come from ``TASTEMAKER_API_KEYS``. With no key at all, writes are refused.
    max_body_bytes: larger request bodies get 413.
    max_k: the largest k a request may ask for; default_k: k when a request gives none.
    max_batch_events: most events in one POST /events/batch.
    history_size: recent events kept in memory per user (they feed content candidates and exclusions).
    exclude_seen: by default, leave out items the user already interacted with (requests can override).
    experiments: an experiments TOML (`tastemaker.experiments.ExperimentsConfig`): each recommendation
        request is assigned to its variants (by user id, else by the request's session_id), runs the
        variant's pipeline, and an exposure record per experiment (shown items with positions and
        propensities) is fsynced to ``exposures.log`` in data_dir before the response.
    models: more models by name (bundle folder or ``models:/`` URI), shown side by side with `model`
        in the dashboard's user explorer; they answer no API request.
    dashboard: the dashboard at /dashboard (`DashboardSettings`).
    """

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    model: str | None = None
    model_poll_s: float = Field(10.0, ge=0)
    registry_uri: str | None = None
    catalog: str | None = None
    content_index: str | None = None
    text_fields: list[str] = Field(default_factory=lambda: ["title", "text"])
    pipeline: PipelineConfig | None = None
    rules: str | None = None
    store: str = "memory://"
    store_namespace: str = "default"
    store_fallback: bool = True
    store_timeout_s: float = Field(0.25, gt=0)
    store_retry_s: float = Field(2.0, ge=0)
    data_dir: str = "tastemaker-serve"
    fsync: bool = True
    api_keys: list[str] = Field(default_factory=list)
    max_body_bytes: int = Field(1_048_576, ge=1024)
    max_k: int = Field(200, ge=1, le=10_000)
    default_k: int = Field(20, ge=1)
    max_batch_events: int = Field(1000, ge=1)
    history_size: int = Field(200, ge=1)
    exclude_seen: bool = True
    experiments: str | None = None
    models: dict[str, str] = Field(default_factory=dict)
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)
    log_level: str = "info"

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> ServeSettings:
        """Read a TOML file (its ``[serve]`` table when it has one), then apply `overrides`."""
        data = read_toml(path)
        data = data.get("serve", data)
        return cls.parse(data, source=str(path), **{k: v for k, v in overrides.items() if v is not None})

    def all_api_keys(self) -> set[str]:
        """Keys from the settings and from ``TASTEMAKER_API_KEYS``."""
        env = os.environ.get("TASTEMAKER_API_KEYS", "")
        return {k.strip() for k in [*self.api_keys, *env.split(",")] if k.strip()}

    def store_url(self) -> str:
        return os.environ.get("TASTEMAKER_STORE") or self.store
