"""End to end through the service: two variants, exposures with propensities logged durably,
synthetic feedback replayed through POST /events, and the A/B report built from the logs."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from tastemaker.experiments import Assigner, ExperimentsConfig, analyze_logs
from tastemaker.experiments.logs import load_exposures
from tastemaker.experiments.report import render_html, render_text
from tastemaker.serving import ServeSettings, create_app

KEY = {"X-API-Key": "k-123"}
CATEGORIES = ["books", "home", "toys", "garden"]
PRICE = {"books": 12.0, "home": 40.0, "toys": 25.0, "garden": 30.0}


@pytest.fixture
def shop(tmp_path):
    n = 40
    cats = [CATEGORIES[j % 4] for j in range(n)]
    today = date.today()
    pd.DataFrame({
        "item_id": [f"i{j}" for j in range(n)],
        "title": [f"{c} thing {j}" for j, c in enumerate(cats)],
        "text": [f"{c} {c} item" for c in cats],
        "price": [PRICE[c] + j % 5 for j, c in enumerate(cats)],
        "category": cats,
        "stock": 10,
        # a few fresh items: the treatment's exploration slot chooses among them
        "launch": [(today - timedelta(days=2 if j % 7 == 0 else 400)).isoformat() for j in range(n)],
    }).to_csv(tmp_path / "catalog.csv", index=False)
    (tmp_path / "treatment-rules.toml").write_text(
        'k = 6\n[[boosts]]\nname = "books-up"\nkind = "category"\ncategories = ["books"]\nfactor = 3.0\n'
        "[exploration]\npositions = [2]\nnew_days = 30\npool = 4\n")
    (tmp_path / "experiments.toml").write_text("""
[[experiments]]
name = "reco-test"
primary = ["ctr"]
guardrails = [{metric = "aov"}]
bootstrap = 100
looks = 3

[[experiments.variants]]
name = "control"
share = 0.5

[[experiments.variants]]
name = "treatment"
share = 0.5
[experiments.variants.pipeline]
name = "books-up"
k = 6
sources = [{kind = "content"}]
rules = "treatment-rules.toml"
""")
    return tmp_path


def _settings(shop, **extra) -> ServeSettings:
    return ServeSettings(catalog=str(shop / "catalog.csv"), data_dir=str(shop / "serve"), api_keys=[KEY["X-API-Key"]],
                         default_k=6, **extra)


def test_two_variants_through_the_service_to_a_report(shop):
    settings = _settings(shop, experiments=str(shop / "experiments.toml"))
    config = ExperimentsConfig.load(shop / "experiments.toml")
    assigner = Assigner(config)
    rng = np.random.default_rng(0)
    catalog = pd.read_csv(shop / "catalog.csv").set_index("item_id")
    shown: dict[str, dict] = {}
    events: list[dict] = []
    n_ev = 0
    with TestClient(create_app(settings)) as client:
        for i in range(240):
            user = f"u{i}"
            r = client.get("/recommendations", params={"user_id": user, "k": 6})
            assert r.status_code == 200, r.text
            body = r.json()
            want = assigner.assign(user_id=user)[0].variant
            assert body["experiments"] == [{"experiment": "reco-test", "layer": "default", "variant": want}]
            assert body["pipeline"] == ("books-up" if want == "treatment" else "catalog")
            shown[body["request_id"]] = body
            # synthetic feedback: the treatment's lists get clicked twice as often, purchases are alike
            p_click = 0.30 if want == "treatment" else 0.15
            for it in body["items"]:
                if rng.random() < p_click:
                    n_ev += 1
                    events.append({"event_id": f"e{n_ev}", "type": "click", "user_id": user, "item_id": it["item_id"],
                                   "request_id": body["request_id"], "position": it["position"]})
                    if rng.random() < 0.5:
                        n_ev += 1
                        events.append({"event_id": f"e{n_ev}", "type": "purchase", "user_id": user,
                                       "item_id": it["item_id"], "price": float(catalog.loc[it["item_id"], "price"]),
                                       "quantity": 1, "session_id": f"sess-{user}"})
        # anonymous visitors are assigned by their session id
        for j in range(10):
            r = client.post("/recommendations", json={"session_id": f"s{j}", "k": 6})
            assert r.status_code == 200
            want = assigner.assign(session_id=f"s{j}")[0].variant
            assert r.json()["experiments"][0]["variant"] == want
            shown[r.json()["request_id"]] = r.json()
        first = events.pop(0)
        assert client.post("/events", json=first, headers=KEY).status_code == 201
        for start in range(0, len(events), 500):
            r = client.post("/events/batch", json={"events": events[start:start + 500]}, headers=KEY)
            assert r.status_code == 200 and r.json()["stored"] == len(events[start:start + 500])
        # a returning user: her next request is logged as returning
        again = client.get("/recommendations", params={"user_id": first["user_id"], "k": 6}).json()
        health = client.get("/health").json()
        assert health["experiments"]["exposures_logged"] == len(shown) + 1

    # every response is in the exposure log with its items, positions and propensities
    log = load_exposures(shop / "serve" / "exposures.log")
    frame, items = log.frame, log.items
    assert len(frame) == len(shown) + 1
    assert set(frame["request_id"]) == set(shown) | {again["request_id"]}
    explored = 0
    for row, rec in frame.iterrows():
        body = shown.get(rec["request_id"], again)
        its = items[items["row"] == row].sort_values("position")
        assert its["item_id"].tolist() == [it["item_id"] for it in body["items"]]
        assert its["position"].tolist() == list(range(1, len(body["items"]) + 1))
        for (_, it), resp in zip(its.iterrows(), body["items"]):
            assert it["propensity"] == pytest.approx(resp.get("propensity") or 1.0)
            assert it["category"] == catalog.loc[it["item_id"], "category"]
            if resp.get("explored"):
                explored += 1
                assert 0 < it["propensity"] < 1 and it["explored"]
        assert rec["variant"] == body["experiments"][0]["variant"]
        assert rec["unit"] == ("session" if pd.isna(rec["user_id"]) else "user")
    assert explored > 20  # the treatment's exploration slot, with its Thompson propensity
    assert frame.loc[frame["request_id"] == again["request_id"], "returning"].item() is True
    assert not frame.loc[frame["request_id"] != again["request_id"], "returning"].fillna(False).any()

    # the report from the service's own logs
    result = analyze_logs(shop / "serve" / "exposures.log", shop / "serve" / "events.log",
                          config=shop / "experiments.toml", catalog=shop / "catalog.csv")
    assert sum(result.counts.values()) == 250 and not result.srm["flagged"]
    ctr = result.metric("ctr")
    assert ctr.significant and ctr.lift > 0.4  # clicks doubled in the simulation: about +100 %
    assert result.data["events_unmatched"] == 0
    assert result.decision()["verdict"] in ("ship", "don't ship", "investigate")
    assert "CTR" in render_text(result)
    html = render_html(result, shop / "report.html")
    assert (shop / "report.html").is_file() and "data:image/png;base64," in html


def test_without_experiments_nothing_is_assigned_or_logged(shop):
    with TestClient(create_app(_settings(shop))) as client:
        body = client.get("/recommendations", params={"user_id": "u1"}).json()
        assert body["experiments"] == [] and body["items"]
        assert client.get("/health").json()["experiments"] is None
    assert not (shop / "serve" / "exposures.log").exists()
