"""The dashboard over HTTP (FastAPI's test client): the JSON endpoints, the pages' HTML, the
settings that wire it, and the pieces behind them (SVG charts, histogram percentiles, bench
leaderboards)."""

from __future__ import annotations

import json
import re
import uuid
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

API_KEY = "demo-key"


@pytest.fixture(scope="module")
def client(demo_settings, tmp_path_factory):
    from tastemaker.serving import create_app

    with TestClient(create_app(demo_settings(tmp_path_factory.mktemp("api-serve")))) as c:
        yield c


@pytest.fixture(scope="module")
def catalog(demo) -> pd.DataFrame:
    return pd.read_csv(demo.parent / "catalog.csv", dtype={"item_id": str}).set_index("item_id")


# --- users ---------------------------------------------------------------------------------------

def test_user_search_is_by_prefix_shortest_first(client):
    got = client.get("/dashboard/api/users", params={"q": "9", "limit": 15}).json()["users"]
    assert got[0] == "9" and len(got) == 15
    assert all(u.startswith("9") for u in got)
    assert [len(u) for u in got] == sorted(len(u) for u in got)
    assert client.get("/dashboard/api/users", params={"q": "zz"}).json()["users"] == []


def test_user_history_has_titles_and_values_best_first(client):
    u = client.get("/dashboard/api/users/1").json()
    assert u["known_by"] == ["ease", "item_cf"] and u["history_from"] == "ease"
    assert u["interactions"] == len(u["history"]) > 100
    values = [h["value"] for h in u["history"]]
    assert values == sorted(values, reverse=True) and set(values) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    titles = {h["item_id"]: h["title"] for h in u["history"]}
    assert titles.get("1") == "Toy Story (1995)"


def test_recommendations_side_by_side_with_reasons_and_traces(client, demo):
    r = client.get("/dashboard/api/users/1/recommendations", params={"k": 7}).json()
    assert [m["model"] for m in r["models"]] == ["ease", "item_cf"]
    assert r["rules"]["key"] == "none" and r["rules"]["lambda"] is None
    for m in r["models"]:
        assert m["known_user"] and m["fallback"] is None and len(m["items"]) == 7
        assert [it["position"] for it in m["items"]] == list(range(1, 8))
        assert all(it["reason"] for it in m["items"])
        assert all(it["trace"] == [] for it in m["items"])  # no rules: nothing moved
        assert [it["input_position"] for it in m["items"]] == list(range(1, 8))
    history = {h["item_id"] for h in client.get("/dashboard/api/users/1").json()["history"]}
    shown = {it["item_id"] for m in r["models"] for it in m["items"]}
    assert not shown & history  # seen items are not recommended
    ease, knn = (set(it["item_id"] for it in m["items"]) for m in r["models"])
    assert r["models"][0]["overlap"]["item_cf"] == len(ease & knn)
    for it in r["models"][0]["items"]:
        assert ("item_cf" in it["also_in"]) == (it["item_id"] in knn)


def test_the_diversity_knob_reranks_by_tags(client, catalog):
    def ids(lam):
        r = client.get("/dashboard/api/users/1/recommendations", params={"lambda": lam, "model": "ease"}).json()
        return r, [it["item_id"] for it in r["models"][0]["items"]]

    r1, relevance = ids(1.0)
    r0, diverse = ids(0.0)
    assert r1["rules"]["similarity"] == "vectors" and relevance != diverse
    # λ = 1 is the relevance order (the model's order); λ = 0 spreads the genres
    assert [it["input_position"] for it in r1["models"][0]["items"]] == list(range(1, 11))

    def genre_overlap(items):
        tags = [set(str(catalog.loc[i, "tags"]).split(",")) for i in items]
        return np.mean([len(a & b) / len(a | b) for j, a in enumerate(tags) for b in tags[j + 1:]])

    assert genre_overlap(diverse) < genre_overlap(relevance)
    texts = [t["text"] for it in r0["models"][0]["items"] for t in it["trace"]]
    assert any("diversified (MMR λ=0" in t for t in texts)


def test_rule_sets_apply_and_trace(client, catalog):
    rules = client.get("/dashboard/api/rules").json()
    assert [r["key"] for r in rules["rule_sets"]] == ["none", "family-friendly.toml", "genre-caps.toml"]
    capped = client.get("/dashboard/api/users/1/recommendations",
                        params={"rules": "genre-caps.toml", "model": "ease"}).json()["models"][0]["items"]
    cats = [catalog.loc[it["item_id"], "category"] for it in capped]
    assert len(capped) == 10 and max(cats.count(c) for c in set(cats)) <= 2
    family = client.get("/dashboard/api/users/1/recommendations",
                        params={"rules": "family-friendly.toml", "k": 20}).json()
    moved = [t for m in family["models"] for it in m["items"] for t in it["trace"]]
    assert any(t["rule"] == "family-up" and t["action"] == "boosted" for t in moved)
    bad = client.get("/dashboard/api/users/1/recommendations", params={"rules": "nope.toml"})
    assert bad.status_code == 400 and "no rule set 'nope.toml'" in bad.json()["detail"]
    assert client.get("/dashboard/api/users/1/recommendations", params={"k": 100_000}).status_code == 422
    assert client.get("/dashboard/api/users/1/recommendations", params={"k": 500}).status_code == 400


def test_unknown_user_gets_the_fallback(client):
    r = client.get("/dashboard/api/users/nobody/recommendations").json()
    for m in r["models"]:
        assert not m["known_user"] and m["fallback"] == "unknown_user" and len(m["items"]) == 10
        assert all(it["reason"] == "we don't know you yet: popular with everyone" for it in m["items"])
    assert client.get("/dashboard/api/users/nobody").json()["known"] is False


# --- items ---------------------------------------------------------------------------------------

def test_item_detail(client):
    d = client.get("/dashboard/api/items/50").json()
    assert d["title"] == "Star Wars (1977)" and d["known_by"] == ["ease", "item_cf"]
    assert d["attributes"]["category"] == "Action" and "Sci-Fi" in d["attributes"]["tags"]
    [stats] = d["stats"]  # both models share their training data: one entry
    assert stats["models"] == ["ease", "item_cf"] and stats["interactions"] == d["consumers_total"]
    assert sum(v for _, v in stats["histogram"]) == stats["interactions"]
    values = [u["value"] for u in d["consumers"]]
    assert len(values) == 50 and values == sorted(values, reverse=True)
    [co] = d["similar"]
    scores = [s["score"] for s in co["items"]]
    assert len(scores) == 10 and scores == sorted(scores, reverse=True) and all(0 < s <= 1 for s in scores)
    assert all(0 < s["together"] <= stats["interactions"] for s in co["items"])
    assert "50" not in {s["item_id"] for s in co["items"]}
    assert d["service_similar"]["items"] and "50" not in {s["item_id"] for s in d["service_similar"]["items"]}


def test_item_search_by_title_and_unknown_item(client):
    got = client.get("/dashboard/api/items", params={"q": "star wars"}).json()["items"]
    assert {"item_id": "50", "title": "Star Wars (1977)"} in got
    assert client.get("/dashboard/api/items/no-such-item").status_code == 404
    page = client.get("/dashboard/items", params={"item": "no-such-item"})
    assert page.status_code == 200 and "No item “no-such-item”" in page.text


# --- models, bench, registry, experiments ----------------------------------------------------------

def test_models_and_bench(client):
    models = client.get("/dashboard/api/models").json()["models"]
    assert [(m["name"], m["serving"], m["users"], m["items"]) for m in models] == [
        ("ease", True, 943, 1682), ("item_cf", False, 943, 1682)]
    [doc] = client.get("/dashboard/api/bench").json()["documents"]
    assert doc["error"] is None and doc["suite"] == "ml100k-topn"
    [board] = doc["leaderboards"]
    assert board["protocol"] == "topn-u1" and board["rank_by"] == "ndcg@10"
    ndcg = [r["values"]["ndcg@10"] for r in board["rows"]]
    assert ndcg == sorted(ndcg, reverse=True) and all(0 < v < 1 for v in ndcg)
    assert [r["label"] for r in board["rows"]] == ["ease", "item_cf", "popularity"]  # measured on u1.test


def test_registry_versions_and_aliases(client):
    reg = client.get("/dashboard/api/registry").json()
    assert reg["available"], reg["reason"]
    [movies] = reg["models"]
    assert movies["name"] == "movies" and movies["aliases"] == {"champion": 1, "challenger": 2}
    assert [v["version"] for v in movies["versions"]] == [2, 1]
    assert movies["versions"][1]["tags"]["tastemaker.model"] == "ease"


def test_experiment_analysis(client):
    listed = client.get("/dashboard/api/experiments").json()
    assert [e["name"] for e in listed["experiments"]] == ["reco-v2"]
    exp = client.get("/dashboard/api/experiments/reco-v2").json()
    assert exp["error"] is None and [v["name"] for v in exp["variants"]] == ["control", "treatment"]
    [t] = exp["treatments"]
    d = t["decision"]
    assert d["verdict"] == "don't ship" and d["failing_guardrails"] == ["aov"]
    assert d["drivers"][0]["segment"] == "electronics"
    ctr = next(m for m in t["metrics"] if m["metric"] == "ctr")
    assert ctr["role"] == "primary" and ctr["low"] < ctr["lift"] < ctr["high"]
    aov = next(m for m in t["metrics"] if m["metric"] == "aov")
    assert aov["guardrail"]["status"] == "fail" and aov["high"] < 0
    assert client.get("/dashboard/api/experiments/nope").status_code == 404
    report = client.get("/dashboard/experiments/reco-v2/report")
    assert report.status_code == 200 and "A/B report: reco-v2" in report.text
    page = client.get("/dashboard/experiments/reco-v2")
    assert "DON&#39;T SHIP" in page.text or "DON'T SHIP" in page.text


def test_a_broken_experiment_shows_why(tmp_path, demo_settings):
    from tastemaker.serving import create_app

    bad = tmp_path / "exps" / "broken"
    bad.mkdir(parents=True)
    (bad / "exposures.jsonl").write_text('{"kind": "exposure"}\n')
    (bad / "events.jsonl").write_text("")
    (tmp_path / "exps" / "incomplete").mkdir()  # no logs: not listed
    settings = demo_settings(tmp_path / "serve", dashboard={"experiments_dir": str(tmp_path / "exps")})
    with TestClient(create_app(settings)) as c:
        assert [e["name"] for e in c.get("/dashboard/api/experiments").json()["experiments"]] == ["broken"]
        page = c.get("/dashboard/experiments/broken")
        assert page.status_code == 200 and "could not be analysed" in page.text
        assert c.get("/dashboard/api/experiments/broken").json()["error"]


# --- live ----------------------------------------------------------------------------------------

def test_live_counts_events_requests_and_latency(client):
    before = client.get("/dashboard/api/live").json()
    for u in ("1", "2", "x"):
        client.get("/recommendations", params={"user_id": u})
    events = [{"event_id": uuid.uuid4().hex, "type": "view", "user_id": "7", "item_id": "50"} for _ in range(4)]
    assert client.post("/events/batch", json={"events": events}, headers={"X-API-Key": API_KEY}).status_code == 200
    live = client.get("/dashboard/api/live").json()
    assert live["events"]["total"] - (before["events"]["total"] if before["since_start"] == live["since_start"]
                                      else 0) >= 4
    assert live["events"]["by_type"]["view"] >= 4
    rec = next(r for r in live["routes"] if r["route"] == "/recommendations")
    assert rec["requests"] >= 3 and rec["p50_ms"] > 0 and rec["p50_ms"] <= rec["p99_ms"]
    assert all(not r["route"].startswith("/dashboard") for r in live["routes"])
    assert live["fallbacks"].get("unknown_user", 0) >= 1
    assert live["health"]["store"]["reachable"] and live["store_up"] is True
    assert live["latency_ms"]["recommendations"]["p95"] is not None


def test_quantiles_match_the_histogram():
    from tastemaker.serving.dashboard.live import quantile

    bounds = [0.001, 0.002, 0.005, 0.01, float("inf")]
    rng = np.random.default_rng(0)
    x = rng.uniform(0.002, 0.005, 10_000)
    counts = np.histogram(x, bins=[0, *bounds[:-1], np.inf])[0]
    q = quantile(list(zip(bounds, counts.astype(float))), 0.5)
    assert abs(q - np.quantile(x, 0.5)) < 1e-4
    assert quantile([(0.1, 0.0), (float("inf"), 0.0)], 0.5) is None
    assert quantile([(0.1, 0.0), (float("inf"), 3.0)], 0.99) == 0.1  # the +Inf bucket: its lower bound


def test_live_window_since_start_then_sliding():
    from tastemaker.serving.dashboard.live import LiveSampler
    from tastemaker.serving.metrics import ServiceMetrics

    m = ServiceMetrics()
    sampler = LiveSampler(m, started=0.0, window_s=1e9, min_interval_s=0.0)
    m.events.labels("click", "stored").inc(3)
    m.requests.labels("GET", "/recommendations", "200").inc(2)
    m.requests.labels("GET", "/recommendations", "500").inc(1)
    m.requests.labels("GET", "/dashboard/users", "200").inc(50)
    v = sampler.view()
    assert v["since_start"] and v["events"]["total"] == 3 and v["requests"]["total"] == 3
    assert v["requests"]["errors_5xx"] == 1 and abs(v["requests"]["error_rate"] - 1 / 3) < 1e-9
    young = LiveSampler(m, window_s=0.0, min_interval_s=0.0)
    young.view()
    m.events.labels("click", "stored").inc(2)
    w = young.view()
    assert not w["since_start"] and w["events"]["total"] == 2


# --- pages ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/dashboard/users?user=1", "/dashboard/users", "/dashboard/items?item=50",
                                  "/dashboard/models", "/dashboard/experiments", "/dashboard/experiments/reco-v2",
                                  "/dashboard/live"])
def test_pages_are_self_contained_html(client, path):
    r = client.get(path)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert not re.search(r'(src|href)="(https?:)?//', r.text), "a page links an external resource"
    assert "<main id=\"main\"" in r.text and 'aria-current="page"' in r.text
    assert "style=" not in r.text  # the CSP forbids inline styles


def test_partials_and_redirect(client):
    r = client.get("/dashboard", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"].endswith("/dashboard/users")
    part = client.get("/dashboard/users", params={"user": "1", "lambda": 0.5, "partial": 1})
    assert "<html" not in part.text and part.text.count('class="rec"') == 20
    none = client.get("/dashboard/users", params={"user": "1", "m": 1})
    assert "Choose at least one model" in none.text


def test_static_files_are_cached_by_etag(client):
    r = client.get("/dashboard/static/dashboard.js")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    again = client.get("/dashboard/static/dashboard.js", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304
    assert client.get("/dashboard/static/../app.py").status_code == 404
    assert client.get("/dashboard/static/nope.js").status_code == 404


# --- settings ------------------------------------------------------------------------------------

def test_settings_from_toml(tmp_path):
    from tastemaker.errors import ConfigError
    from tastemaker.serving import ServeSettings

    p = tmp_path / "serve.toml"
    p.write_text('[serve]\nmodel = "m"\n[serve.models]\nknn = "k"\n[serve.dashboard]\nbench_dir = "b"\nrefresh_s = 5\n')
    s = ServeSettings.from_file(p)
    assert s.models == {"knn": "k"} and s.dashboard.bench_dir == "b" and s.dashboard.refresh_s == 5
    assert s.dashboard.enabled and ServeSettings().dashboard.rules_dir is None
    p.write_text('[serve.dashboard]\nbench_folder = "b"\n')
    with pytest.raises(ConfigError, match="bench_folder"):
        ServeSettings.from_file(p)


def test_disabled_dashboard_and_a_model_that_does_not_load(demo_settings, tmp_path):
    from tastemaker.serving import create_app

    off = demo_settings(tmp_path / "a", dashboard={"enabled": False})
    with TestClient(create_app(off)) as c:
        assert c.get("/dashboard/users").status_code == 404
        assert c.get("/health").status_code == 200
    broken = demo_settings(tmp_path / "b", models={"ghost": str(tmp_path / "missing")})
    with TestClient(create_app(broken)) as c:
        models = c.get("/dashboard/api/models").json()["models"]
        assert [m["name"] for m in models if "error" not in m] == ["ease"]
        assert "ghost" in c.get("/dashboard/users").text


def test_service_rules_are_the_default_rule_set(demo, demo_settings, tmp_path):
    from tastemaker.serving import create_app

    settings = demo_settings(tmp_path / "r", rules=str(demo.parent / "rules" / "genre-caps.toml"))
    with TestClient(create_app(settings)) as c:
        rules = c.get("/dashboard/api/rules").json()
        assert rules["default"] == "service" and rules["rule_sets"][1]["key"] == "service"
        r = c.get("/dashboard/api/users/1/recommendations", params={"model": "ease"}).json()
        assert r["rules"]["key"] == "service"


# --- charts --------------------------------------------------------------------------------------

def test_svg_charts_are_accessible_xml():
    from tastemaker.serving.dashboard.svg import Bar, Interval, bar_chart, forest_plot, histogram, sparkline

    charts = [bar_chart([Bar("ease", 0.48, 0.46, 0.50, "ours"), Bar("a <b>", 0.44, group="peer")], title="ndcg",
                        metric="ndcg@10"),
              forest_plot([Interval("CTR", 0.05, 0.02, 0.08, "good"), Interval("AOV", -0.04, -0.06, -0.02, "fail")],
                          title="lifts", limits={"guardrail": -0.01}),
              histogram([("1", 3), ("2", 5)], title="ratings", what="count"), sparkline([1, 2, None, 3], title="s"),
              bar_chart([], title="empty", metric="m")]
    for svg in charts:
        root = ET.fromstring(str(svg))
        ns = "{http://www.w3.org/2000/svg}"
        assert root.get("role") == "img" and root.find(f"{ns}title") is not None and root.find(f"{ns}desc") is not None
        labelled = root.get("aria-labelledby").split()
        assert [el.get("id") for el in (root.find(f"{ns}title"), root.find(f"{ns}desc"))] == labelled
    assert "a &lt;b&gt;" in str(charts[0])
    desc = ET.fromstring(str(charts[0])).find("{http://www.w3.org/2000/svg}desc").text
    assert "ease 0.4800 (95% CI 0.4600 to 0.5000)" in desc and "a <b> 0.4400" in desc


def test_bench_leaderboards_rank_by_the_suite_metric(tmp_path):
    from tastemaker.serving.dashboard.bench import BenchLibrary, leaderboards

    doc = {"suite": "ml100k-rating", "rows": [
        {"protocol": "rating-folds", "system": "tastemaker", "model": "a", "metrics": {"rmse": 0.95, "mae": 0.75}},
        {"protocol": "rating-folds", "system": "surprise", "model": "SVD", "metrics": {"rmse": 0.93, "mae": 0.74}}]}
    [board] = leaderboards(doc)
    assert board["rank_by"] == "rmse" and board["lower_is_better"]
    assert [r["label"] for r in board["rows"]] == ["surprise/SVD", "a"]
    (tmp_path / "good.json").write_text(json.dumps(doc))
    (tmp_path / "other.json").write_text('{"hello": 1}')
    (tmp_path / "bad.json").write_text("{not json")
    docs = {d["file"]: d for d in BenchLibrary(tmp_path).documents()}
    assert docs["good.json"]["error"] is None
    assert "no 'rows'" in docs["other.json"]["error"] and docs["bad.json"]["error"]


def test_a_bare_service_shows_empty_states(tmp_path, monkeypatch):
    """No model, no folders, no registry: every page renders and says what to configure."""
    from tastemaker.serving import ServeSettings, create_app

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "broken.json").write_text("{not json")
    settings = ServeSettings(data_dir=str(tmp_path / "serve"), dashboard={"bench_dir": str(bench)})
    with TestClient(create_app(settings)) as c:
        users = c.get("/dashboard/users", params={"user": "1"})
        assert users.status_code == 200 and "No model is loaded" in users.text
        assert c.get("/dashboard/api/users/1/recommendations").json()["models"] == []
        models = c.get("/dashboard/models").text
        assert "Skipped:" in models and "no registry configured" in models
        assert "No experiments yet" in c.get("/dashboard/experiments").text
        assert c.get("/dashboard/experiments/nope").status_code == 200
        assert "Choose an item" in c.get("/dashboard/items").text
        assert "No API requests yet" in c.get("/dashboard/live").text


def test_without_jinja2_the_api_serves_on(tmp_path, monkeypatch, caplog):
    import tastemaker.serving.dashboard.routes as routes
    from tastemaker.errors import DependencyError
    from tastemaker.serving import ServeSettings, create_app

    def missing(module, extra):
        raise DependencyError(f"{module!r} is not installed; install it with: pip install 'tastemaker[{extra}]'")

    monkeypatch.setattr(routes, "require", missing)
    with TestClient(create_app(ServeSettings(data_dir=str(tmp_path)))) as c:
        assert c.get("/dashboard/users").status_code == 404
        assert c.get("/health").status_code == 200
    assert "tastemaker[dashboard]" in caplog.text
