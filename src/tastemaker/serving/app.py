"""The FastAPI app: `create_app(settings)` and `serve(settings)`.

Endpoints (OpenAPI at /openapi.json, docs at /docs):

- ``GET  /recommendations``            for a user (query parameters), or anonymous without user_id
- ``POST /recommendations``            a user or an anonymous context, with constraints
- ``GET  /items/{item_id}/similar``    items similar to one item
- ``GET  /items/{item_id}``            an item's attributes
- ``PUT  /items/{item_id}``            upsert an item (API key); recommendable at once by content
- ``POST /events``, ``/events/batch``  view / click / add_to_cart / purchase (API key); durable
  (fsynced to the event log) before the 2xx, idempotent by event_id
- ``GET  /health``, ``GET /metrics``   status, and Prometheus metrics
- ``/dashboard``                       the dashboard (pages and ``/dashboard/api/…``), see
  `tastemaker.serving.dashboard`

Every recommendation response says when a fallback answered (``fallback``: ``unknown_user``,
``anonymous``, …) and when the feature store was unreachable (``degraded``: true, with the
reason); ``?trace=true`` adds each pipeline stage's trace and each item's rule trace.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Query, Response
from fastapi.responses import JSONResponse

from tastemaker.pipeline import Constraints, PipelineRequest, PipelineResult
from tastemaker.serving.auth import api_key_dependency
from tastemaker.serving.errors import PayloadTooLarge, install_error_handlers, too_large_detail
from tastemaker.serving.metrics import ServiceMetrics
from tastemaker.serving.schemas import (
    EventAck,
    EventBatchAck,
    EventBatchIn,
    EventIn,
    ItemAck,
    ItemIn,
    RecommendationsIn,
    RecommendationsOut,
)
from tastemaker.serving.service import Service, Unavailable
from tastemaker.serving.settings import ServeSettings

log = logging.getLogger(__name__)

ItemPath = Annotated[str, Path(min_length=1, max_length=128, description="the item's id")]


class _BodyLimitAndMetrics:
    """Pure ASGI middleware: 413 for bodies over the limit (by Content-Length, or while a chunked
    body streams in), and request count/latency per route template for Prometheus."""

    def __init__(self, app, *, max_body: int, metrics: ServiceMetrics) -> None:
        self.app = app
        self.max_body = max_body
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = {"code": 500}
        length = None
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = None
                break
        if length is not None and length > self.max_body:
            body = json.dumps({"error": "payload_too_large", "detail": too_large_detail(self.max_body, length)})
            await send({"type": "http.response.start", "status": 413,
                        "headers": [(b"content-type", b"application/json"), (b"connection", b"close")]})
            await send({"type": "http.response.body", "body": body.encode()})
            self._observe(scope, 413, t0)
            return
        seen = 0
        limit = self.max_body

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise PayloadTooLarge(limit)
            return message

        async def send_status(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, limited_receive, send_status)
        finally:
            self._observe(scope, status["code"], t0)

    def _observe(self, scope, status: int, t0: float) -> None:
        route = scope.get("route")
        path = getattr(route, "path", None) or "unmatched"
        method = scope.get("method", "")
        self.metrics.requests.labels(method, path, str(status)).inc()
        self.metrics.latency.labels(method, path).observe(time.perf_counter() - t0)


def _result_response(req: PipelineRequest, result: PipelineResult, metrics: ServiceMetrics) -> JSONResponse:
    """The response, built from plain data (it is `RecommendationsOut` by construction, so FastAPI's
    re-validation of the return value is skipped — it would cost more than the rules stage)."""
    return JSONResponse(_result_body(req, result, metrics))


def _result_body(req: PipelineRequest, result: PipelineResult, metrics: ServiceMetrics) -> dict[str, Any]:
    for st in result.stages:
        metrics.stage.labels(st.stage).observe(st.ms / 1000.0)
    if result.fallback:
        metrics.fallbacks.labels(result.fallback.split(":")[0][:40]).inc()
    if result.degraded:
        metrics.degraded.inc()
        metrics.store_up.set(0)
    else:
        metrics.store_up.set(1)
    return {
        "request_id": req.request_id,
        "user_id": req.user_id,
        "item_id": req.item_id,
        "items": [it.to_dict(trace=req.trace) for it in result.items],
        "fallback": result.fallback,
        "degraded": result.degraded is not None,
        "degraded_reason": result.degraded,
        "pipeline": result.pipeline,
        "model": req.cache.get("model"),
        "rules_version": result.rules_version,
        "notes": result.notes,
        "exploration": result.exploration,
        "experiments": req.cache.get("assignments", []),
        "trace": [s.to_dict() for s in result.stages] if req.trace else None,
    }


async def _wait(futures, timeout: float = 30.0) -> None:
    try:
        await asyncio.wait_for(asyncio.gather(*(asyncio.wrap_future(f) for f in futures)), timeout)
    except TimeoutError:
        raise Unavailable(f"the event log did not confirm the write within {timeout:g} s; it may or may not be "
                          "stored: retry with the same event_id (retries are idempotent)") from None
    except OSError as exc:
        raise Unavailable(str(exc)) from None


async def _exposed(req: PipelineRequest) -> None:
    """Wait until the request's exposure records (when experiments run) are durable."""
    subs = req.cache.get("exposures")
    if subs:
        await _wait([s.future for s in subs])


def create_app(settings: ServeSettings | None = None, *, service: Service | None = None) -> FastAPI:
    """The FastAPI app for `settings` (or around a prebuilt `service`, e.g. a retail pipeline).

    The service starts (event log replayed) when the app starts and closes when it stops.
    """
    settings = settings or (service.settings if service is not None else ServeSettings())
    svc = service or Service.from_settings(settings)
    metrics = ServiceMetrics()
    svc.events.commit_hook = metrics.on_commit
    write_auth = Depends(api_key_dependency(settings.all_api_keys()))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        svc.start()
        try:
            yield
        finally:
            svc.close()

    app = FastAPI(title="tastemaker", version=_version(), lifespan=lifespan,
                  description="Recommendations, similar items, events and item upserts. Write endpoints need an "
                              "X-API-Key header.")
    app.state.service = svc
    app.state.metrics = metrics
    install_error_handlers(app)
    app.add_middleware(_BodyLimitAndMetrics, max_body=settings.max_body_bytes, metrics=metrics)

    # --- recommendations -------------------------------------------------------------------------
    @app.get("/recommendations", response_model=RecommendationsOut, tags=["recommendations"],
             summary="Recommendations for a user (anonymous without user_id)")
    async def get_recommendations(
        user_id: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
        k: Annotated[int | None, Query(ge=1, le=10_000)] = None,
        trace: bool = False,
        price_min: Annotated[float | None, Query(ge=0)] = None,
        price_max: Annotated[float | None, Query(gt=0)] = None,
        category: Annotated[list[str] | None, Query(max_length=100)] = None,
        exclude_category: Annotated[list[str] | None, Query(max_length=100)] = None,
        brand: Annotated[list[str] | None, Query(max_length=100)] = None,
        exclude: Annotated[list[str] | None, Query(max_length=1000)] = None,
        exclude_seen: bool | None = None,
        region: Annotated[str | None, Query(max_length=64)] = None,
        session_id: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
    ) -> JSONResponse:
        # async on purpose: the pipeline is CPU-bound and short, so it runs on the event loop
        # without a thread-pool hop (a thread would not run it any sooner under the GIL)
        constraints = Constraints(price_min=price_min, price_max=price_max, categories=category,
                                  exclude_categories=exclude_category or (), brands=brand, exclude_items=exclude or ())
        req, result = svc.recommend(user_id=user_id, k=k, trace=trace, constraints=constraints,
                                    exclude_seen=exclude_seen, region=region, session_id=session_id)
        await _exposed(req)
        return _result_response(req, result, metrics)

    @app.post("/recommendations", response_model=RecommendationsOut, tags=["recommendations"],
              summary="Recommendations for a user or an anonymous context, with constraints")
    async def post_recommendations(body: RecommendationsIn) -> JSONResponse:
        c = body.constraints
        constraints = Constraints(price_min=c.price_min, price_max=c.price_max, categories=c.categories,
                                  exclude_categories=c.exclude_categories, brands=c.brands, exclude_items=c.exclude_ids)
        req, result = svc.recommend(user_id=body.user_id, k=body.k, history=body.context.history, trace=body.trace,
                                    constraints=constraints, exclude_seen=body.exclude_seen,
                                    region=body.context.region, session_id=body.session_id)
        await _exposed(req)
        return _result_response(req, result, metrics)

    # --- items -------------------------------------------------------------------------------------
    @app.get("/items/{item_id}/similar", response_model=RecommendationsOut, tags=["items"],
             summary="Items similar to one item")
    async def similar_items(
        item_id: ItemPath,
        k: Annotated[int | None, Query(ge=1, le=10_000)] = None,
        trace: bool = False,
        price_min: Annotated[float | None, Query(ge=0)] = None,
        price_max: Annotated[float | None, Query(gt=0)] = None,
        category: Annotated[list[str] | None, Query(max_length=100)] = None,
    ) -> JSONResponse:
        constraints = Constraints(price_min=price_min, price_max=price_max, categories=category)
        req, result = svc.similar(item_id, k=k, trace=trace, constraints=constraints)
        return _result_response(req, result, metrics)

    @app.get("/items/{item_id}", tags=["items"], summary="An item's attributes")
    def get_item(item_id: ItemPath) -> dict[str, Any]:
        return {"item_id": item_id, **svc.item(item_id)}

    @app.put("/items/{item_id}", response_model=ItemAck, tags=["items"], dependencies=[write_auth],
             summary="Insert or update an item (recommendable at once by its content)",
             responses={201: {"model": ItemAck, "description": "created"}})
    async def put_item(item_id: ItemPath, body: ItemIn, response: Response) -> dict[str, Any]:
        item = body.model_dump(mode="json", exclude_none=True)
        sub, new, warnings = svc.submit_item(item_id, item)
        await _wait([sub.future])
        metrics.items.labels(str(new).lower()).inc()
        response.status_code = 201 if new else 200
        index = svc.resources.content_index
        indexed = index is not None and item_id in index
        return {"item_id": item_id, "created": new, "content_indexed": indexed, "warnings": warnings}

    # --- events ------------------------------------------------------------------------------------
    def _event_dicts(events: list[EventIn]) -> list[dict[str, Any]]:
        now = time.time()
        out = []
        for ev in events:
            d = ev.model_dump(mode="json", exclude_none=True)
            d["received_at"] = now
            out.append(d)
        return out

    @app.post("/events", response_model=EventAck, tags=["events"], dependencies=[write_auth],
              summary="Record one event (durable before the response; idempotent by event_id)",
              responses={201: {"model": EventAck, "description": "stored"}})
    async def post_event(body: EventIn, response: Response) -> dict[str, Any]:
        [(sub, warnings)] = svc.submit_events(_event_dicts([body]))
        await _wait([sub.future])
        metrics.events.labels(body.type, "duplicate" if sub.duplicate else "stored").inc()
        response.status_code = 200 if sub.duplicate else 201
        return {"event_id": body.event_id, "status": "duplicate" if sub.duplicate else "stored",
                "warnings": warnings}

    @app.post("/events/batch", response_model=EventBatchAck, tags=["events"], dependencies=[write_auth],
              summary="Record many events in one durable commit")
    async def post_events(body: EventBatchIn) -> dict[str, Any] | JSONResponse:
        if len(body.events) > settings.max_batch_events:
            return JSONResponse({"error": "payload_too_large",
                                 "detail": f"{len(body.events)} events in one batch; the limit is "
                                           f"{settings.max_batch_events} (max_batch_events): split the batch"},
                                status_code=413)
        subs = svc.submit_events(_event_dicts(body.events))
        await _wait([s.future for s, _ in subs])
        results = []
        for ev, (sub, warnings) in zip(body.events, subs):
            metrics.events.labels(ev.type, "duplicate" if sub.duplicate else "stored").inc()
            results.append({"event_id": ev.event_id, "status": "duplicate" if sub.duplicate else "stored",
                            "warnings": warnings})
        dup = sum(1 for s, _ in subs if s.duplicate)
        return {"stored": len(subs) - dup, "duplicates": dup, "results": results}

    # --- operations --------------------------------------------------------------------------------
    @app.get("/health", tags=["operations"], summary="Status of the model, store, rules and event log")
    def health() -> dict[str, Any]:
        return svc.health()

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics", response_class=Response)
    def prometheus() -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    if settings.dashboard.enabled:
        _mount_dashboard(app, svc, metrics, settings)
    return app


def _mount_dashboard(app: FastAPI, svc: Service, metrics: ServiceMetrics, settings: ServeSettings) -> None:
    """Mount the dashboard at /dashboard (`tastemaker.serving.dashboard`); without jinja2 the API
    serves on and a warning says how to install it."""
    from tastemaker.errors import DependencyError

    try:
        from tastemaker.serving.dashboard import dashboard_router

        app.include_router(dashboard_router(svc, metrics, settings))
    except DependencyError as exc:
        log.warning("dashboard not mounted: %s", exc)


def _version() -> str:
    from tastemaker import __version__

    return __version__


def app_from_env() -> FastAPI:
    """App factory for ``uvicorn --factory tastemaker.serving.app:app_from_env``: settings from the
    TOML file in ``TASTEMAKER_SERVE_CONFIG`` (defaults otherwise)."""
    import os

    path = os.environ.get("TASTEMAKER_SERVE_CONFIG")
    return create_app(ServeSettings.from_file(path) if path else ServeSettings())


def serve(settings: ServeSettings) -> None:
    """Run the service with uvicorn (uvloop and httptools when installed) until interrupted."""
    import uvicorn

    app = create_app(settings)
    loop = "uvloop" if _has("uvloop") else "asyncio"
    http = "httptools" if _has("httptools") else "h11"
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level, loop=loop, http=http,
                access_log=False)


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None
