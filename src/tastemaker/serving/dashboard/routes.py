"""The dashboard's HTTP side: pages (server-rendered Jinja2), HTML fragments the pages swap in
without a reload, the JSON endpoints under ``/dashboard/api/…``, and the two static files.

Pages work without JavaScript (every control is a GET form); ``dashboard.js`` makes them fetch
the ``?partial=1`` fragment of the same URL instead of reloading, suggests ids as you type, and
refreshes the Live page. Every page is sent with a Content-Security-Policy that allows nothing
but this server (no CDN, no inline script or style).
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from tastemaker.errors import ConfigError, require
from tastemaker.serving.dashboard.ab import available as ab_available
from tastemaker.serving.dashboard.ab import public
from tastemaker.serving.dashboard.state import NONE_RULES, SERVICE_RULES, DashboardState
from tastemaker.serving.dashboard.svg import fmt_number, histogram, sparkline
from tastemaker.serving.service import NotFound

HERE = Path(__file__).parent
STATIC_TYPES = {"dashboard.js": "text/javascript; charset=utf-8", "dashboard.css": "text/css; charset=utf-8"}
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
REPORT_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'"
NAV = (("users", "Users", "/users"), ("items", "Items", "/items"), ("models", "Models", "/models"),
       ("experiments", "Experiments", "/experiments"), ("live", "Live", "/live"))
DEFAULT_K = 10

IdText = Annotated[str, PathParam(min_length=1, max_length=128)]


def _pct(v: Any, digits: int = 2) -> str:
    if v is None:
        return "—"
    return f"{float(v) * 100:+.{digits}f}%"


def _share(v: Any, digits: int = 1) -> str:
    return "—" if v is None else f"{float(v) * 100:.{digits}f}%"


def _ms(v: Any) -> str:
    if v is None:
        return "—"
    v = float(v)
    return f"{v:.2f} ms" if v < 10 else f"{v:.1f} ms" if v < 1000 else f"{v / 1000:.2f} s"


def _p(v: Any) -> str:
    if v is None:
        return "—"
    v = float(v)
    return "< 0.0001" if v < 1e-4 else f"{v:.4f}"


def _when(ts: Any) -> str:
    if ts is None:
        return "—"
    return datetime.fromtimestamp(float(ts), UTC).strftime("%Y-%m-%d %H:%M UTC")


def _clock(ts: Any) -> str:
    return "—" if ts is None else datetime.fromtimestamp(float(ts), UTC).strftime("%H:%M:%S UTC")


def _ci(lo: Any, hi: Any) -> str:
    return "—" if lo is None or hi is None else f"[{_pct(lo)}, {_pct(hi)}]"


def _environment():
    jinja2 = require("jinja2", "dashboard")
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE / "templates")),
                             autoescape=jinja2.select_autoescape(["html"], default=True),
                             trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    env.filters.update(num=fmt_number, pct=_pct, share=_share, ms=_ms, p=_p, when=_when, clock=_clock, ci=_ci,
                       tojson_pretty=lambda v: json.dumps(v, indent=2, default=str))
    env.globals["histogram"] = histogram
    return env


def _jsonable(v: Any) -> Any:
    """Plain JSON: NaN/inf become null, tuples lists, numpy scalars Python numbers."""
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if hasattr(v, "item") and not isinstance(v, str | bytes):
        try:
            v = v.item()
        except (TypeError, ValueError):
            return str(v)
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, str | int | float | bool) or v is None:
        return v
    return str(v)


def _json(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(_jsonable(data), status_code=status, headers={"Cache-Control": "no-store"})


def dashboard_router(service: Any, metrics: Any, settings: Any) -> APIRouter:
    """The dashboard as an `APIRouter` (prefix ``/dashboard``) over a running `Service`, its
    `ServiceMetrics` and its `ServeSettings`. `router.dashboard` is the `DashboardState`."""
    env = _environment()
    state = DashboardState(service, metrics, settings)
    static = {name: (HERE / "static" / name).read_bytes() for name in STATIC_TYPES}
    etags = {name: hashlib.sha256(body).hexdigest()[:12] for name, body in static.items()}
    router = APIRouter(prefix="/dashboard")
    router.dashboard = state  # type: ignore[attr-defined]
    max_k = settings.max_k

    def base(request: Request) -> str:
        return request.scope.get("root_path", "") + "/dashboard"

    def render(request: Request, template: str, page: str, title: str, **ctx: Any) -> HTMLResponse:
        state.warm()
        b = base(request)
        html = env.get_template(template).render(
            base=b, page=page, title=title, nav=[(key, label, b + href) for key, label, href in NAV],
            static={name: f"{b}/static/{name}?v={etags[name]}" for name in static},
            service=_service_line(service), qs=urlencode, **ctx)
        return HTMLResponse(html, headers={"Content-Security-Policy": CSP, "Cache-Control": "no-store",
                                           "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"})

    def default_rules() -> str:
        return SERVICE_RULES if service.resources.rules is not None else NONE_RULES

    # --- static ----------------------------------------------------------------------------------
    @router.get("/static/{name}", include_in_schema=False)
    def static_file(name: str, request: Request) -> Response:
        body = static.get(name)
        if body is None:
            return Response("not found", status_code=404, media_type="text/plain")
        tag = f'"{etags[name]}"'
        headers = {"ETag": tag, "Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"}
        if request.headers.get("if-none-match") == tag:
            return Response(status_code=304, headers=headers)
        return Response(body, media_type=STATIC_TYPES[name], headers=headers)

    @router.get("", include_in_schema=False)
    @router.get("/", include_in_schema=False)
    def home(request: Request) -> RedirectResponse:
        return RedirectResponse(base(request) + "/users", status_code=307)

    # --- users -----------------------------------------------------------------------------------
    def user_context(user: str | None, k: int, lam: float | None, rules: str | None, model: list[str] | None,
                     m: int | None) -> dict[str, Any]:
        models = state.models()
        names = [x.name for x in models]
        chosen = names if not m and not model else [n for n in (model or []) if n in names]
        rule_sets = state.rule_sets()
        rules = rules or default_rules()
        own = next((r["diversity"] for r in rule_sets if r["key"] == rules), None)
        lam_shown = lam if lam is not None else (own["lambda"] if own and own["method"] == "mmr" else 1.0)
        ctx: dict[str, Any] = {"user_id": user, "k": k, "lam": lam_shown, "rules_key": rules, "rule_sets": rule_sets,
                               "models": models, "chosen": chosen, "model_errors": state.model_errors,
                               "user": None, "recs": None, "error": None, "max_k": max_k,
                               "suggestions": state.search_users("", 30), "similarity": state.similarity()}
        if user:
            ctx["user"] = state.user(user)
            if chosen:
                try:
                    # without a λ in the URL the rule set's own diversity applies (the knob shows it)
                    ctx["recs"] = state.recommendations(user, k=min(k, max_k), lam=lam, rules=rules, models=chosen)
                except ConfigError as exc:
                    ctx["error"] = str(exc)
        return ctx

    @router.get("/users", include_in_schema=False)
    def users_page(request: Request, user: Annotated[str | None, Query(max_length=128)] = None,
                   k: Annotated[int, Query(ge=1, le=10_000)] = DEFAULT_K,
                   lam: Annotated[float | None, Query(alias="lambda", ge=0, le=1)] = None,
                   rules: Annotated[str | None, Query(max_length=200)] = None,
                   model: Annotated[list[str] | None, Query(max_length=50)] = None,
                   m: int | None = None, partial: bool = False) -> HTMLResponse:
        ctx = user_context((user or "").strip() or None, k, lam, rules, model, m)
        if partial:
            return render(request, "_user_results.html", "users", "User explorer", **ctx)
        return render(request, "users.html", "users", "User explorer", **ctx)

    # --- items -----------------------------------------------------------------------------------
    @router.get("/items", include_in_schema=False)
    def items_page(request: Request, item: Annotated[str | None, Query(max_length=200)] = None,
                   k: Annotated[int, Query(ge=1, le=200)] = DEFAULT_K, partial: bool = False) -> HTMLResponse:
        item = (item or "").strip() or None
        detail, matches = None, []
        if item:
            detail = state.item(item, k=k)
            if detail is None:
                matches = state.search_items(item, 20)
                if len(matches) == 1:
                    detail = state.item(matches[0]["item_id"], k=k)
        ctx = {"item_id": item, "k": k, "detail": detail, "matches": matches,
               "suggestions": state.search_items("", 30)}
        return render(request, "_item_results.html" if partial else "items.html", "items", "Item explorer", **ctx)

    # --- models ----------------------------------------------------------------------------------
    @router.get("/models", include_in_schema=False)
    def models_page(request: Request) -> HTMLResponse:
        return render(request, "models.html", "models", "Models", models=state.models_info(),
                      bench=state.bench.documents(), bench_dir=state.dash.bench_dir, registry=state.registry())

    # --- experiments -----------------------------------------------------------------------------
    @router.get("/experiments", include_in_schema=False)
    def experiments_page(request: Request) -> HTMLResponse:
        return render(request, "experiments.html", "experiments", "Experiments",
                      experiments=[s.to_dict() for s in state.experiments.sources()], available=ab_available(),
                      folder=state.dash.experiments_dir)

    @router.get("/experiments/{name}", include_in_schema=False)
    def experiment_page(request: Request, name: IdText) -> HTMLResponse:
        page = state.experiments.analysis(name) if ab_available() else None
        if page is None:
            return render(request, "experiments.html", "experiments", "Experiments",
                          experiments=[s.to_dict() for s in state.experiments.sources()], available=ab_available(),
                          folder=state.dash.experiments_dir, missing=name)
        return render(request, "experiment.html", "experiments", f"Experiment {name}", name=name, exp=page)

    @router.get("/experiments/{name}/report", include_in_schema=False)
    def experiment_report(name: IdText) -> HTMLResponse:
        text = state.experiments.report_html(name) if ab_available() else None
        if text is None:
            return HTMLResponse("<!doctype html><title>No report</title><p>No report for this experiment.</p>",
                                status_code=404, headers={"Content-Security-Policy": REPORT_CSP})
        return HTMLResponse(text, headers={"Content-Security-Policy": REPORT_CSP, "Cache-Control": "no-store"})

    # --- live ------------------------------------------------------------------------------------
    def live_context() -> dict[str, Any]:
        view = state.live.view()
        series = view["series"]
        sparks = {"events": sparkline([p["events_per_s"] for p in series], title="Events per second", unit="/s"),
                  "requests": sparkline([p["requests_per_s"] for p in series], title="Requests per second", unit="/s"),
                  "p95": sparkline([p["p95_ms"] for p in series], title="p95 latency of /recommendations",
                                   unit="ms")}
        return {"live": view, "health": service.health(), "caches": state.caches(), "sparks": sparks,
                "refresh_s": state.dash.refresh_s}

    @router.get("/live", include_in_schema=False)
    def live_page(request: Request, partial: bool = False) -> HTMLResponse:
        ctx = live_context()
        return render(request, "_live_panel.html" if partial else "live.html", "live", "Live", **ctx)

    # --- JSON API --------------------------------------------------------------------------------
    # on the same router (not a nested one), so every route's path starts with /dashboard: the
    # request metrics label routes by that path, and the Live page leaves /dashboard… out
    def api_get(path: str, **kwargs: Any):
        return router.get("/api" + path, tags=["dashboard"], **kwargs)

    @api_get("/users", summary="User ids starting with q (autocomplete)")
    def api_users(q: Annotated[str, Query(max_length=128)] = "",
                  limit: Annotated[int, Query(ge=1, le=500)] = 20) -> JSONResponse:
        return _json({"q": q, "users": state.search_users(q, limit)})

    @api_get("/users/{user_id}", summary="A user's history and which models know them")
    def api_user(user_id: IdText) -> JSONResponse:
        return _json(state.user(user_id))

    @api_get("/users/{user_id}/recommendations",
             summary="Recommendations of each loaded model with reasons and rule traces")
    def api_user_recs(user_id: IdText, k: Annotated[int, Query(ge=1, le=10_000)] = DEFAULT_K,
                      lam: Annotated[float | None, Query(alias="lambda", ge=0, le=1)] = None,
                      rules: Annotated[str | None, Query(max_length=200)] = None,
                      model: Annotated[list[str] | None, Query(max_length=50)] = None) -> JSONResponse:
        if k > max_k:
            raise ConfigError(f"k must be at most {max_k} (max_k in the serve settings), got {k}")
        return _json(state.recommendations(user_id, k=k, lam=lam, rules=rules or default_rules(), models=model))

    @api_get("/items", summary="Items whose id starts with q or whose title contains it")
    def api_items(q: Annotated[str, Query(max_length=200)] = "",
                  limit: Annotated[int, Query(ge=1, le=500)] = 20) -> JSONResponse:
        return _json({"q": q, "items": state.search_items(q, limit)})

    @api_get("/items/{item_id}", summary="An item: attributes, consumers, similar items")
    def api_item(item_id: IdText, k: Annotated[int, Query(ge=1, le=200)] = DEFAULT_K) -> JSONResponse:
        detail = state.item(item_id, k=k)
        if detail is None:
            raise NotFound(f"item {item_id!r} is not known to any loaded model or the catalogue")
        return _json(detail)

    @api_get("/rules", summary="Rule sets the user explorer can switch between")
    def api_rules() -> JSONResponse:
        return _json({"default": default_rules(), "similarity": state.similarity(), "rule_sets": state.rule_sets()})

    @api_get("/models", summary="Loaded models")
    def api_models() -> JSONResponse:
        return _json({"models": state.models_info()})

    @api_get("/bench", summary="Bench leaderboards from the bench folder")
    def api_bench() -> JSONResponse:
        return _json({"folder": state.dash.bench_dir, "documents": state.bench.summary()})

    @api_get("/registry", summary="Registry models, versions and aliases")
    def api_registry() -> JSONResponse:
        return _json(state.registry())

    @api_get("/experiments", summary="Experiments found in the experiments folder")
    def api_experiments() -> JSONResponse:
        return _json({"available": ab_available(), "folder": state.dash.experiments_dir,
                      "experiments": [s.to_dict() for s in state.experiments.sources()]})

    @api_get("/experiments/{name}", summary="An experiment's analysis: variants, metrics, guardrails, decision")
    def api_experiment(name: IdText) -> JSONResponse:
        page = state.experiments.analysis(name) if ab_available() else None
        if page is None:
            raise NotFound(f"no experiment {name!r} in {state.dash.experiments_dir or 'the experiments folder'}")
        return _json(public(page))

    @api_get("/live", summary="Events per second, latency percentiles, errors, store health")
    def api_live() -> JSONResponse:
        return _json({**state.live.view(), "health": service.health(), "caches": state.caches()})

    return router


def _service_line(service: Any) -> dict[str, Any]:
    from tastemaker import __version__

    res = service.resources
    model = res.model
    return {"version": __version__, "model": None if model is None else model.name, "model_id": service.model_id,
            "pipeline": getattr(service.pipeline, "name", "")}
