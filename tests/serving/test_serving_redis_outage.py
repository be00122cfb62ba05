"""Redis goes away while the service runs: reads degrade to the embedded copy and say so; writes
stay durable; when Redis is back (and reloaded) responses are whole again."""

from __future__ import annotations

import time

import numpy as np
from fastapi.testclient import TestClient

from tastemaker.pipeline import PipelineConfig, ScorerConfig, SourceConfig
from tastemaker.serving import ServeSettings, create_app
from tastemaker.store.redis import RedisStore
from tastemaker.testing.redis_server import PrivateRedis

ITEMS = [f"i{j}" for j in range(40)]
USERS = [f"u{u}" for u in range(30)]


def _publish(url: str, popularity: float = 1.0) -> None:
    rng = np.random.default_rng(1)
    store = RedisStore(url, namespace="shop")
    v = store.create_version({"model": "test"})
    store.put_item_features(ITEMS, np.c_[rng.uniform(0, 1, 40) * popularity, rng.uniform(5, 50, 40)],
                            ["popularity", "price"], version=v)
    store.put_item_vectors(ITEMS, rng.normal(size=(40, 8)), version=v)
    store.put_user_vectors(USERS, rng.normal(size=(30, 8)), version=v)
    store.activate(v)
    store.close()


def test_redis_outage_degrades_reads_and_keeps_writes(shop, tmp_path, auth):
    with PrivateRedis() as server:
        _publish(server.url)
        settings = ServeSettings(
            model=str(shop["model"]), catalog=str(shop["catalog"]), data_dir=str(tmp_path / "serve"),
            api_keys=[auth["X-API-Key"]], store=server.url, store_namespace="shop", store_retry_s=0.2,
            pipeline=PipelineConfig(sources=[SourceConfig(kind="model"), SourceConfig(kind="content")],
                                    features=True, scorer=ScorerConfig(
                                        kind="linear", weights={"score_model": 1.0, "user_item_dot": 0.05,
                                                                "item.popularity": 0.1})))
        with TestClient(create_app(settings)) as c:
            ok = c.get("/recommendations", params={"user_id": "u1", "k": 5, "trace": "true"})
            assert ok.status_code == 200
            assert ok.json()["degraded"] is False and ok.json()["degraded_reason"] is None
            assert [s["stage"] for s in ok.json()["trace"]] == ["retrieve", "features", "score", "topk"]
            healthy_ids = [it["item_id"] for it in ok.json()["items"]]

            server.stop()
            down = c.get("/recommendations", params={"user_id": "u1", "k": 5})
            assert down.status_code == 200
            body = down.json()
            assert body["degraded"] is True
            assert "unreachable" in body["degraded_reason"] and "fallback" in body["degraded_reason"]
            # the embedded mirror holds the same features: the same list
            assert [it["item_id"] for it in body["items"]] == healthy_ids
            assert c.post("/recommendations", json={"user_id": "nobody"}).status_code == 200

            ev = {"event_id": "during-outage", "type": "purchase", "user_id": "u1", "item_id": "i1"}
            assert c.post("/events", json=ev, headers=auth).status_code == 201
            assert "during-outage" in c.app.state.service.events
            assert c.put("/items/new-in-outage", json={"text": "novel", "vector": None, "price": 3.0},
                         headers=auth).status_code == 201

            health = c.get("/health").json()
            assert health["status"] == "degraded"
            assert health["store"]["reachable"] is False
            assert "tastemaker_store_up 0.0" in c.get("/metrics").text

            server.start()  # back, empty: publish again
            _publish(server.url)
            time.sleep(0.3)
            back = c.get("/recommendations", params={"user_id": "u2", "k": 5})
            assert back.status_code == 200 and back.json()["degraded"] is False
            assert c.get("/health").json()["status"] == "ok"
        log = (tmp_path / "serve" / "events.log").read_text()
        assert '"id":"during-outage"' in log and '"item_id":"new-in-outage"' in log


def test_the_service_starts_when_redis_is_down(shop, tmp_path):
    server = PrivateRedis()  # never started: nothing listens on its port
    settings = ServeSettings(model=str(shop["model"]), data_dir=str(tmp_path), store=server.url,
                             pipeline=PipelineConfig(sources=[SourceConfig(kind="model")], features=True))
    with TestClient(create_app(settings)) as c:
        r = c.get("/recommendations", params={"user_id": "u1", "k": 3})
        assert r.status_code == 200
        assert r.json()["degraded"] is True and len(r.json()["items"]) == 3
