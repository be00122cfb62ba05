"""Publishing models into the store: versioned bulk load, atomic switch, safe garbage collection.

Runs against the embedded store and the real Redis at 127.0.0.1:6379 (a namespace of its own per
test, deleted afterwards)."""

from __future__ import annotations

import json
import threading

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from tastemaker.errors import DataError
from tastemaker.models import Recommender
from tastemaker.publish import model_tables, publish
from tastemaker.store import MemoryStore
from tastemaker.store.redis import RedisStore
from tastemaker.testing.redis_server import SHARED_URL, require_redis, unique_namespace


@pytest.fixture
def redis_store():
    require_redis()
    s = RedisStore(SHARED_URL, namespace=unique_namespace("mlops"), pointer_ttl=0.0)
    try:
        yield s
    finally:
        s.destroy_namespace()
        s.close()


def test_model_tables_hold_the_models_factors_and_features(bundles):
    model = Recommender.load(bundles["mf"])
    tables = model_tables(model)
    assert set(tables) == {"user_vectors", "item_vectors", "item_features", "user_features"}
    np.testing.assert_array_equal(tables["user_vectors"].values, model.user_factors.astype(np.float32))
    np.testing.assert_array_equal(tables["item_vectors"].values, model.item_factors.astype(np.float32))
    assert tables["item_vectors"].ids == model.item_vocab.ids.astype(str).tolist()
    feats = tables["item_features"]
    assert feats.columns == ("popularity", "bias")
    np.testing.assert_allclose(feats.values[:, 0], model.item_counts)
    np.testing.assert_allclose(feats.values[:, 1], model.item_bias, rtol=1e-6)
    assert tables["user_features"].columns == ("history", "bias")
    np.testing.assert_allclose(tables["user_features"].values[:, 0], np.diff(model.train_matrix.indptr))


def test_caller_features_are_joined_by_id(bundles):
    model = Recommender.load(bundles["mf"])
    first = str(model.item_vocab.ids[0])
    extra = pd.DataFrame({"price": [9.5, 3.0], "in_stock": [True, False]}, index=[first, "brand-new"])
    t = model_tables(model, item_features=extra)["item_features"]
    assert t.columns == ("popularity", "bias", "price", "in_stock")
    rows = dict(zip(t.ids, t.values.tolist()))
    assert rows[first][2:] == [9.5, 1.0]
    assert rows["brand-new"] == [0.0, 0.0, 3.0, 0.0]  # an item the model has not seen: features only
    assert len(t.ids) == model.n_items + 1
    with pytest.raises(DataError, match="clash"):
        model_tables(model, item_features=pd.DataFrame({"bias": [1.0]}, index=[first]))
    with pytest.raises(DataError, match="not numeric"):
        model_tables(model, item_features=pd.DataFrame({"brand": ["acme"]}, index=[first]))


def test_publish_to_the_embedded_store(bundles):
    store = MemoryStore(namespace="t")
    report = publish(bundles["mf"], store)
    model = Recommender.load(bundles["mf"])
    assert (report.version, report.previous, store.current_version()) == (1, None, 1)
    assert report.vectors == model.n_users + model.n_items and report.vectors_per_s > 0
    assert report.rows == {"user_vectors": model.n_users, "item_vectors": model.n_items,
                           "item_features": model.n_items, "user_features": model.n_users}
    u = model.user_vocab.ids[3]
    np.testing.assert_array_equal(store.get_user_vectors([u]).values[0], model.user_factors[3].astype(np.float32))
    meta = store.version_info(1).meta
    assert meta["model"] == str(bundles["mf"]) and meta["fingerprint"] == model.data_info["fingerprint"]
    assert "published" in report.summary() and "vectors/s" in report.summary()


def test_a_model_without_factors_publishes_its_features_and_says_so(bundles):
    store = MemoryStore()
    report = publish(bundles["ease"], store)
    assert report.vectors == 0 and report.rows["item_features"] > 0
    assert "user_vectors" not in report.rows
    assert any("no user/item vectors" in n for n in report.notes)
    assert store.schema("item_vectors") is None


def test_publish_to_redis_switches_atomically_and_collects_old_versions(bundles, redis_store):
    first, second = Recommender.load(bundles["mf"]), Recommender.load(bundles["mf2"])
    r1 = publish(bundles["mf"], redis_store)
    users = first.user_vocab.ids.tolist()
    v1_vec = {str(u): first.user_factors[i].astype(np.float32) for i, u in enumerate(users)}
    v2_vec = {str(u): second.user_factors[i].astype(np.float32) for i, u in enumerate(users)}
    reader = RedisStore(SHARED_URL, namespace=redis_store.namespace, pointer_ttl=0.0)
    seen, bad, stop = set(), [], threading.Event()

    def read():
        while not stop.is_set():
            rows = reader.get_user_vectors([str(u) for u in users[:20]])
            if not rows.found.all():
                bad.append(f"missing rows in version {rows.version}")
                continue
            table = v1_vec if rows.version == r1.version else v2_vec
            for j, u in enumerate(users[:20]):
                if not np.array_equal(rows.values[j], table[str(u)]):
                    bad.append(f"user {u} in version {rows.version} holds another version's vector")
            seen.add(rows.version)

    thread = threading.Thread(target=read)
    thread.start()
    try:
        for _ in range(500):  # the reader has read the first version before the switch
            if r1.version in seen or bad:
                break
            stop.wait(0.01)
        r2 = publish(bundles["mf2"], redis_store.url, redis_store.namespace)
        deadline = threading.Event()
        for _ in range(200):  # until the reader has seen the new version
            if r2.version in seen:
                break
            deadline.wait(0.01)
    finally:
        stop.set()
        thread.join()
        reader.close()
    assert not bad, bad[:3]
    assert seen == {r1.version, r2.version}
    assert (r2.previous, r2.version, redis_store.current_version()) == (1, 2, 2)
    # the replaced version is inside its grace period: kept, not deleted
    assert r2.collected == [] and r2.retained == [1]
    r3 = publish(bundles["mf"], redis_store, keep=0, grace_seconds=0)
    assert sorted(r3.collected) == [1, 2] and r3.retained == []
    left = {k.decode() for k in redis_store.client.scan_iter(match=redis_store.prefix + "v[0-9]*")}
    assert left and all(k.startswith(f"{redis_store.prefix}v3:") for k in left)
    assert [v.version for v in redis_store.versions()] == [3]


def test_a_failed_publish_leaves_the_current_version_serving(bundles, redis_store):
    publish(bundles["mf"], redis_store)
    model = Recommender.load(bundles["mf2"])
    broken = pd.DataFrame({"price": [np.inf]}, index=[str(model.item_vocab.ids[0])])
    with pytest.raises(DataError, match="infinite"):
        publish(model, redis_store, item_features=broken)
    assert redis_store.current_version() == 1
    assert [(v.version, v.state) for v in redis_store.versions()] == [(1, "current")]  # no half-written version


def test_versions_abandoned_while_loading_are_removed(bundles, redis_store):
    abandoned = redis_store.create_version({"model": "crashed publish"})
    fresh = publish(bundles["mf"], redis_store)
    assert fresh.abandoned == []  # younger than an hour: it may still be loading
    report = publish(bundles["mf2"], redis_store, stale_loading_s=0)
    assert report.abandoned == [abandoned]
    assert abandoned not in [v.version for v in redis_store.versions()]


def test_publish_a_registry_alias(registry, bundles):
    registry.register(bundles["mf"], "movies", alias="champion")
    store = MemoryStore()
    report = publish("models:/movies@champion", store, registry_uri=registry.uri, cache_dir=registry.cache_dir)
    assert report.model == "models:/movies/1"  # the alias is pinned to the version it named
    assert store.version_info(report.version).meta["registry_version"] == 1


def test_cli_publish_to_redis_with_item_features(bundles, redis_store, tmp_path):
    from tastemaker.cli.registry import publish as command

    model = Recommender.load(bundles["mf"])
    feats = tmp_path / "items.csv"
    feats.write_text("item_id,price\n" + "".join(f"{i},{k}.5\n" for k, i in enumerate(model.item_vocab.ids[:3])))
    result = CliRunner().invoke(command, ["--model", str(bundles["mf"]), "--store", SHARED_URL, "--namespace",
                                          redis_store.namespace, "--item-features", str(feats), "--json"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["version"] == 1 and report["vectors"] == model.n_users + model.n_items
    rows = redis_store.get_item_features([str(model.item_vocab.ids[2])])
    assert rows.columns == ("popularity", "bias", "price") and rows.values[0, 2] == pytest.approx(2.5)
    text = CliRunner().invoke(command, ["--model", str(bundles["mf"]), "--store", SHARED_URL, "--namespace",
                                        redis_store.namespace]).output
    assert "as v2 (was v1)" in text and "vectors/s" in text
