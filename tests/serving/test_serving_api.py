"""Every endpoint over HTTP (FastAPI TestClient): answers, fallbacks, constraints, auth, limits, errors."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from tastemaker.serving import ServeSettings, create_app


def _ids(resp):
    return [it["item_id"] for it in resp.json()["items"]]


def _catalog(shop):
    return pd.read_csv(shop["catalog"]).set_index("item_id")


# --- recommendations -------------------------------------------------------------------------------


def test_a_known_user_gets_personal_recommendations_that_obey_the_rules(client, shop):
    r = client.get("/recommendations", params={"user_id": "u1", "k": 8})
    assert r.status_code == 200
    body = r.json()
    assert body["fallback"] is None and body["degraded"] is False
    assert 0 < len(body["items"]) <= 8
    assert [it["position"] for it in body["items"]] == list(range(1, len(body["items"]) + 1))
    assert "model" in body["items"][0]["sources"]
    cat = _catalog(shop)
    ids = _ids(r)
    assert all(cat.loc[i, "stock"] > 0 for i in ids)  # in_stock filter (i3 has none)
    assert pd.Series([cat.loc[i, "brand"] for i in ids]).value_counts().max() <= 3  # brand cap
    assert body["rules_version"]
    assert body["trace"] is None and all("trace" not in it or it["trace"] is None for it in body["items"])


def test_unknown_user_gets_a_fallback_with_a_reason_not_an_error(client):
    r = client.get("/recommendations", params={"user_id": "never-seen"})
    assert r.status_code == 200
    assert r.json()["fallback"] == "unknown_user"
    assert len(r.json()["items"]) > 0


def test_no_user_at_all_is_an_anonymous_fallback(client):
    r = client.get("/recommendations")
    assert r.status_code == 200
    assert r.json()["fallback"] == "anonymous"
    assert len(r.json()["items"]) > 0


def test_anonymous_context_gets_content_candidates_from_its_history(client, shop):
    cat = _catalog(shop)
    r = client.post("/recommendations", json={"context": {"history": ["i2", "i6"]}, "k": 5})
    assert r.status_code == 200
    ids = _ids(r)
    assert ids and not {"i2", "i6"} & set(ids)
    # the history is running items: content similarity brings running items
    assert cat.loc["i2", "category"] == cat.loc["i6", "category"] == "sports/running"
    assert all(cat.loc[i, "category"] == "sports/running" for i in ids)
    assert any("content" in it["sources"] for it in r.json()["items"])


def test_request_constraints_are_hard(client, shop):
    cat = _catalog(shop)
    r = client.post("/recommendations", json={
        "user_id": "u2", "k": 10,
        "constraints": {"price_min": 20, "price_max": 80, "categories": ["home"], "exclude_ids": ["i6"]}})
    assert r.status_code == 200
    ids = _ids(r)
    assert ids
    assert all(20 <= cat.loc[i, "price"] <= 80 for i in ids)
    assert all(cat.loc[i, "category"].startswith("home/") for i in ids)
    assert "i6" not in ids
    g = client.get("/recommendations", params=[("user_id", "u2"), ("category", "books"), ("exclude", "i7")])
    assert g.status_code == 200
    assert all(cat.loc[i, "category"] == "books/fiction" for i in _ids(g)) and "i7" not in _ids(g)


def test_trace_shows_each_stage_and_what_the_rules_did(client, shop):
    r = client.get("/recommendations", params={"user_id": "u0", "trace": "true", "k": 10})
    body = r.json()
    assert [s["stage"] for s in body["trace"]] == ["retrieve", "rules"]
    assert body["trace"][0]["n_out"] >= body["trace"][1]["n_out"]
    cat = _catalog(shop)
    boosted = [it for it in body["items"] if cat.loc[it["item_id"], "brand"] == "brand0"]
    assert boosted, "expected a brand0 item in the list"
    assert any(e["rule"] == "push-brand0" and e["action"] == "boosted" for e in boosted[0]["trace"])


def test_k_out_of_range_is_a_clear_422(client):
    r = client.get("/recommendations", params={"user_id": "u1", "k": 0})
    assert r.status_code == 422 and r.json()["error"] == "invalid_request"
    r = client.get("/recommendations", params={"user_id": "u1", "k": 5000})
    assert r.status_code == 422
    assert "max_k" in r.json()["detail"]


@pytest.mark.parametrize("body, needle", [
    ({"user_id": "u1", "constraints": {"price_min": 50, "price_max": 10}}, "price_min"),
    ({"user_id": "u1", "colour": "red"}, "colour"),
    ({"user_id": "u1", "k": "many"}, "k"),
    ({"user_id": "has space"}, "user_id"),
    ({"context": {"history": "i1"}}, "history"),
])
def test_malformed_recommendation_bodies_are_rejected_with_the_field(client, body, needle):
    r = client.post("/recommendations", json=body)
    assert r.status_code == 422
    assert needle in json.dumps(r.json()["detail"])


def test_a_body_that_is_not_json_is_a_clear_client_error(client, auth):
    r = client.post("/events", content=b"{not json", headers={**auth, "Content-Type": "application/json"})
    assert r.status_code in (400, 422)
    assert r.json()["error"] in ("bad_request", "invalid_request")


# --- similar items and item reads ---------------------------------------------------------------------


def test_similar_items_of_a_known_item(client, shop):
    cat = _catalog(shop)
    r = client.get("/items/i1/similar", params={"k": 5})
    assert r.status_code == 200
    ids = _ids(r)
    assert ids and "i1" not in ids
    assert cat.loc[ids[0], "category"] == cat.loc["i1", "category"]
    assert r.json()["item_id"] == "i1"


def test_unknown_items_are_404_with_a_message(client):
    r = client.get("/items/nope/similar")
    assert r.status_code == 404
    assert r.json()["error"] == "not_found" and "nope" in r.json()["detail"]
    assert client.get("/items/nope").status_code == 404


def test_an_items_attributes_can_be_read(client):
    r = client.get("/items/i5")
    assert r.status_code == 200
    assert r.json()["item_id"] == "i5" and r.json()["category"] == "home/garden" and r.json()["stock"] == 10


# --- item upserts -----------------------------------------------------------------------------------


def test_a_new_sku_is_recommendable_at_once(client, auth):
    item = {"title": "paperback thriller", "text": "mystery novel story", "price": 12.0, "stock": 5,
            "category": "books/fiction", "brand": "indie"}
    r = client.put("/items/sku-new", json=item, headers=auth)
    assert r.status_code == 201
    assert r.json() == {"item_id": "sku-new", "created": True, "content_indexed": True, "warnings": []}
    assert "sku-new" in _ids(client.get("/items/i3/similar", params={"k": 5}))
    anon = client.post("/recommendations", json={"context": {"history": ["i7", "i11"]}, "k": 10})
    assert "sku-new" in _ids(anon)
    assert client.get("/items/sku-new").json()["brand"] == "indie"
    again = client.put("/items/sku-new", json={"price": 9.0}, headers=auth)
    assert again.status_code == 200 and again.json()["created"] is False
    assert client.get("/items/sku-new").json()["price"] == 9.0


def test_an_item_without_text_or_vector_is_stored_with_a_warning(client, auth):
    r = client.put("/items/bare", json={"price": 3.0}, headers=auth)
    assert r.status_code == 201
    assert r.json()["content_indexed"] is False
    assert "content similarity" in r.json()["warnings"][0]


@pytest.mark.parametrize("body, needle", [
    ({"price": -1}, "price"),
    ({"price": 1, "colour": "red"}, "colour"),
    ({"vector": [1.0, 2.0]}, "dimensions"),
    ({"launch": "not a date"}, "launch"),
])
def test_malformed_item_bodies_are_rejected(client, auth, body, needle):
    r = client.put("/items/x1", json=body, headers=auth)
    assert r.status_code == 422
    assert needle in json.dumps(r.json()["detail"])
    assert client.get("/items/x1").status_code == 404


# --- events -----------------------------------------------------------------------------------------


def _event(eid, **kw):
    return {"event_id": eid, "type": "view", "user_id": "u1", "item_id": "i5", **kw}


def test_an_event_is_stored_once_by_its_id(client, auth, settings):
    r = client.post("/events", json=_event("ev-1"), headers=auth)
    assert r.status_code == 201 and r.json()["status"] == "stored"
    r = client.post("/events", json=_event("ev-1", type="click"), headers=auth)
    assert r.status_code == 200 and r.json()["status"] == "duplicate"
    lines = client.app.state.service.events.path.read_bytes().decode().splitlines()
    assert sum('"id":"ev-1"' in line for line in lines) == 1


def test_event_types_are_validated(client, auth):
    r = client.post("/events", json=_event("ev-2", type="like"), headers=auth)
    assert r.status_code == 422
    assert "type" in json.dumps(r.json()["detail"])
    assert client.post("/events", json=_event("ev-3", type="add-to-cart"), headers=auth).status_code == 201


@pytest.mark.parametrize("change", [{"event_id": None}, {"user_id": ""}, {"quantity": 0}, {"price": -5},
                                   {"timestamp": "yesterday"}, {"extra": 1}])
def test_malformed_events_are_rejected(client, auth, change):
    ev = _event("ev-bad")
    ev.update(change)
    ev = {k: v for k, v in ev.items() if v is not None}
    r = client.post("/events", json=ev, headers=auth)
    assert r.status_code == 422
    assert r.json()["error"] == "invalid_request"


def test_a_purchase_changes_the_next_recommendations(client, auth):
    before = _ids(client.get("/recommendations", params={"user_id": "u1", "k": 5}))
    top = before[0]
    r = client.post("/events", json=_event("buy-1", type="purchase", item_id=top, price=10.0), headers=auth)
    assert r.status_code == 201
    after = _ids(client.get("/recommendations", params={"user_id": "u1", "k": 5}))
    assert top not in after


def test_an_event_for_an_unknown_item_is_stored_with_a_warning(client, auth):
    r = client.post("/events", json=_event("ev-u", item_id="ghost"), headers=auth)
    assert r.status_code == 201
    assert "not in the catalogue" in r.json()["warnings"][0]


def test_a_batch_is_stored_with_duplicates_inside_it_counted_once(client, auth):
    body = {"events": [_event("b1"), _event("b2", type="click"), _event("b1")]}
    r = client.post("/events/batch", json=body, headers=auth)
    assert r.status_code == 200
    assert r.json()["stored"] == 2 and r.json()["duplicates"] == 1
    assert [x["status"] for x in r.json()["results"]] == ["stored", "stored", "duplicate"]


def test_a_batch_over_the_limit_is_413(shop, tmp_path, auth):
    s = ServeSettings(model=str(shop["model"]), data_dir=str(tmp_path), api_keys=[auth["X-API-Key"]],
                      max_batch_events=2)
    with TestClient(create_app(s)) as c:
        r = c.post("/events/batch", json={"events": [_event(f"x{i}") for i in range(3)]}, headers=auth)
    assert r.status_code == 413 and "max_batch_events" in r.json()["detail"]


# --- auth and limits ----------------------------------------------------------------------------------


@pytest.mark.parametrize("method, path, body", [
    ("post", "/events", _event("auth-1")),
    ("post", "/events/batch", {"events": [_event("auth-2")]}),
    ("put", "/items/auth-item", {"price": 1.0}),
])
def test_writes_need_a_valid_api_key(client, method, path, body):
    r = getattr(client, method)(path, json=body)
    assert r.status_code == 401 and "X-API-Key" in r.json()["detail"]
    assert r.headers["www-authenticate"].startswith("ApiKey")
    r = getattr(client, method)(path, json=body, headers={"X-API-Key": "wrong"})
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    assert client.get("/items/auth-item").status_code == 404


def test_reads_need_no_key(client):
    assert client.get("/recommendations", params={"user_id": "u1"}).status_code == 200
    assert client.post("/recommendations", json={"user_id": "u1"}).status_code == 200


def test_keys_come_from_the_environment_and_no_key_means_no_writes(shop, tmp_path, monkeypatch):
    s = ServeSettings(model=str(shop["model"]), data_dir=str(tmp_path / "a"))
    monkeypatch.delenv("TASTEMAKER_API_KEYS", raising=False)
    with TestClient(create_app(s)) as c:
        r = c.post("/events", json=_event("k1"), headers={"X-API-Key": "anything"})
        assert r.status_code == 403 and "no API key configured" in r.json()["detail"]
    monkeypatch.setenv("TASTEMAKER_API_KEYS", "env-key-1, env-key-2")
    s = ServeSettings(model=str(shop["model"]), data_dir=str(tmp_path / "b"))
    with TestClient(create_app(s)) as c:
        assert c.post("/events", json=_event("k1"), headers={"X-API-Key": "env-key-2"}).status_code == 201


def test_a_huge_payload_is_413_with_the_limit_named(client, auth):
    huge = {"events": [_event(f"h{i}", session_id="s" * 100) for i in range(2000)]}
    r = client.post("/events/batch", json=huge, headers=auth)
    assert r.status_code == 413
    assert r.json()["error"] == "payload_too_large" and "65,536 bytes" in r.json()["detail"]
    assert "h0" not in client.app.state.service.events


def test_a_huge_chunked_payload_without_length_is_413(client, auth):
    chunk = b" " * 8192

    def body():
        yield b'{"event_id": "chunked", "type": "view", "user_id": "u1", "item_id": "i1", "session_id": "'
        for _ in range(20):
            yield chunk
        yield b'"}'

    r = client.post("/events", content=body(), headers={**auth, "Content-Type": "application/json"})
    assert r.status_code == 413
    assert "chunked" not in client.app.state.service.events


# --- operations ---------------------------------------------------------------------------------------


def test_health_reports_the_parts(client):
    r = client.get("/health")
    assert r.status_code == 200
    h = r.json()
    assert h["status"] == "ok"
    assert h["model"]["name"] == "ease" and h["items"] == 40
    assert h["rules"]["version"]
    assert h["store"]["backend"] == "memory"


def test_metrics_count_requests_by_route_and_events_by_type(client, auth):
    client.get("/recommendations", params={"user_id": "u1"})
    client.get("/recommendations", params={"user_id": "stranger"})
    client.post("/events", json=_event("m1", type="click"), headers=auth)
    text = client.get("/metrics").text
    assert 'tastemaker_http_requests_total{method="GET",route="/recommendations",status="200"} 2.0' in text
    assert 'tastemaker_events_total{status="stored",type="click"} 1.0' in text
    assert 'tastemaker_fallback_responses_total{reason="unknown_user"} 1.0' in text
    assert 'tastemaker_pipeline_stage_seconds_count{stage="rules"}' in text


def test_openapi_documents_every_endpoint_and_the_key(client):
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path, method in [("/recommendations", "get"), ("/recommendations", "post"), ("/items/{item_id}/similar", "get"),
                         ("/items/{item_id}", "put"), ("/events", "post"), ("/events/batch", "post"),
                         ("/health", "get"), ("/metrics", "get")]:
        assert method in paths[path], (path, method)
    assert paths["/events"]["post"]["security"] == [{"APIKeyHeader": []}]
    assert "security" not in paths["/recommendations"]["get"]
    assert "EventIn" in spec["components"]["schemas"]


def test_restart_replays_events_and_items_from_the_log(settings, auth):
    with TestClient(create_app(settings)) as c:
        assert c.post("/events", json=_event("r1", type="purchase", item_id="i9"), headers=auth).status_code == 201
        assert c.put("/items/r-item", json={"text": "novel", "price": 4.0, "stock": 1}, headers=auth).status_code == 201
    with TestClient(create_app(settings)) as c:
        h = c.get("/health").json()
        assert h["events"]["replayed_at_start"] == 2
        assert c.post("/events", json=_event("r1"), headers=auth).json()["status"] == "duplicate"
        assert c.get("/items/r-item").json()["price"] == 4.0
        assert c.app.state.service.live.purchased("u1") == {"i9"}


def test_a_changed_rule_file_is_picked_up_without_a_restart(shop, tmp_path):
    rules = tmp_path / "rules.toml"
    rules.write_text(shop["rules"].read_text())
    s = ServeSettings(model=str(shop["model"]), catalog=str(shop["catalog"]), rules=str(rules),
                      data_dir=str(tmp_path / "serve"))
    cat = _catalog(shop)
    with TestClient(create_app(s)) as c:
        before = c.get("/recommendations", params={"user_id": "u3", "k": 10}).json()
        rules.write_text(rules.read_text() + '\n[[caps]]\nname = "one-per-category"\nby = "category"\nmax = 1\n')
        c.app.state.service.resources.rules.check()  # what the watcher thread does every second
        after = c.get("/recommendations", params={"user_id": "u3", "k": 10}).json()
        assert after["rules_version"] != before["rules_version"]
        cats = [cat.loc[it["item_id"], "category"] for it in after["items"]]
        assert len(cats) == len(set(cats)) and len(before["items"]) > len(after["items"])
        rules.write_text("k = [broken")
        c.app.state.service.resources.rules.check()
        still = c.get("/recommendations", params={"user_id": "u3", "k": 10})
        assert still.status_code == 200 and still.json()["rules_version"] == after["rules_version"]
        assert "last_reload_error" in c.get("/health").json()["rules"]
