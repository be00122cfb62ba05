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


class ServeSettings(StrictConfig):
    """Settings of the recommendation service.

    host / port: where `serve` listens.
    model: a model bundle folder (`Recommender.save`) for the collaborative (MovieLens-style) path.
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
    """

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    model: str | None = None
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
