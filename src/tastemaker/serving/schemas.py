"""Request and response models of the HTTP API (pydantic); they make the OpenAPI schema.

Unknown fields are rejected (a typo must not be silently ignored); ids are strings of at most
128 characters; lists have bounds so a request cannot ask for unbounded work.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Id = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\s\x00-\x1f]+$")]
EventType = Literal["view", "click", "add_to_cart", "purchase"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- recommendations ----------------------------------------------------------------------------


class ConstraintsIn(_In):
    """Per-request hard constraints (on top of the business rules)."""

    price_min: float | None = Field(None, ge=0)
    price_max: float | None = Field(None, gt=0)
    categories: list[Annotated[str, Field(min_length=1, max_length=256)]] | None = Field(None, max_length=100)
    exclude_categories: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(default_factory=list,
                                                                                          max_length=100)
    brands: list[Annotated[str, Field(min_length=1, max_length=256)]] | None = Field(None, max_length=100)
    exclude_ids: list[Id] = Field(default_factory=list, max_length=1000)

    @model_validator(mode="after")
    def _range(self) -> ConstraintsIn:
        if self.price_min is not None and self.price_max is not None and self.price_min > self.price_max:
            raise ValueError(f"price_min ({self.price_min}) is above price_max ({self.price_max})")
        return self


class ContextIn(_In):
    """An anonymous (or partly known) visitor's context: what they looked at in this session."""

    history: list[Id] = Field(default_factory=list, max_length=500,
                              description="item ids of this session, oldest first")
    region: str | None = Field(None, max_length=64)


class RecommendationsIn(_In):
    """POST /recommendations: a user, or an anonymous context, with optional constraints."""

    user_id: Id | None = None
    session_id: Id | None = Field(None, description="an anonymous visitor's session: the experiment assignment "
                                                    "unit when there is no user_id")
    context: ContextIn = Field(default_factory=ContextIn)
    constraints: ConstraintsIn = Field(default_factory=ConstraintsIn)
    k: int | None = Field(None, ge=1, le=10_000)
    exclude_seen: bool | None = None
    trace: bool = False


class TraceEntryOut(_Out):
    rule: str
    kind: str
    action: str
    effect: str
    score_before: float | None = None
    score_after: float | None = None
    position_before: int | None = None
    position_after: int | None = None


class ItemOut(_Out):
    item_id: str
    position: int
    score: float
    sources: list[str]
    relevance: float | None = None
    sponsored: bool = False
    campaign: str | None = None
    pinned: bool = False
    explored: bool = False
    propensity: float | None = None
    trace: list[TraceEntryOut] | None = None


class StageOut(_Out):
    stage: str
    kind: str
    n_in: int
    n_out: int
    ms: float
    notes: list[str]


class RecommendationsOut(_Out):
    """A ranked list. `fallback` says why a fallback answered (e.g. ``unknown_user``);
    `degraded` that a backend (Redis) was unreachable and the embedded fallback served, with the
    reason. `trace` (with ``?trace=true``) lists each pipeline stage; items then carry the rules'
    trace of what moved them. `model` names the model that answered (``models:/NAME/VERSION`` for a
    registry model, else the bundle folder; None without a model)."""

    request_id: str
    user_id: str | None
    item_id: str | None = None
    items: list[ItemOut]
    fallback: str | None
    degraded: bool
    degraded_reason: str | None
    pipeline: str
    model: str | None = None
    rules_version: str | None
    notes: list[str]
    exploration: list[dict[str, Any]]
    experiments: list[dict[str, Any]] = Field(default_factory=list,
                                              description="the request's experiment variants (experiment, layer, "
                                                          "variant, params)")
    trace: list[StageOut] | None = None


# --- events ----------------------------------------------------------------------------------------


class EventIn(_In):
    """One user event. `event_id` makes it idempotent: sending it again stores nothing new."""

    event_id: Id
    type: EventType
    user_id: Id
    item_id: Id
    timestamp: datetime | None = Field(None, description="when it happened (default: when received)")
    quantity: int = Field(1, ge=1, le=100_000)
    price: float | None = Field(None, ge=0, le=1e9)
    session_id: Id | None = None
    request_id: Id | None = Field(None, description="the recommendation response that showed the item")
    position: int | None = Field(None, ge=1, le=10_000)

    @field_validator("type", mode="before")
    @classmethod
    def _dashes(cls, v: Any) -> Any:
        return v.replace("-", "_") if isinstance(v, str) else v


class EventBatchIn(_In):
    events: list[EventIn] = Field(min_length=1)


class EventAck(_Out):
    event_id: str
    status: Literal["stored", "duplicate"]
    warnings: list[str] = Field(default_factory=list)


class EventBatchAck(_Out):
    stored: int
    duplicates: int
    results: list[EventAck]


# --- items -----------------------------------------------------------------------------------------


class ItemIn(_In):
    """An item upsert: any attribute may be given; `text`/`title` or `vector` make it findable by
    content similarity at once."""

    title: str | None = Field(None, max_length=1000)
    text: str | None = Field(None, max_length=20_000)
    vector: list[Annotated[float, Field(allow_inf_nan=False)]] | None = Field(None, min_length=1, max_length=4096)
    price: float | None = Field(None, ge=0, le=1e9)
    margin: float | None = Field(None, ge=-1e9, le=1e9)
    stock: float | None = Field(None, ge=0)
    category: str | None = Field(None, max_length=256)
    brand: str | None = Field(None, max_length=256)
    launch: date | None = None
    tags: list[Annotated[str, Field(max_length=128)]] | None = Field(None, max_length=100)
    regions: list[Annotated[str, Field(max_length=64)]] | None = Field(None, max_length=300)
    promo: bool | None = None
    sponsored: bool | None = None
    campaign: str | None = Field(None, max_length=128)
    consumable: bool | None = None


class ItemAck(_Out):
    item_id: str
    created: bool
    content_indexed: bool
    warnings: list[str] = Field(default_factory=list)


# --- misc --------------------------------------------------------------------------------------------


class ErrorOut(_Out):
    """Every error response: a machine-readable `error` code and a `detail` that says what to do."""

    error: str
    detail: str | list[dict[str, Any]]
