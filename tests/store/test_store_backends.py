"""The store contract, run against both backends (memory and the real Redis at 127.0.0.1:6379)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from tastemaker.errors import ConfigError, DataError
from tastemaker.store import MemoryStore, StoreError, open_store
from tastemaker.store.redis import RedisStore
from tastemaker.testing.redis_server import SHARED_URL, require_redis, unique_namespace


@pytest.fixture(params=["memory", "redis"])
def store(request):
    if request.param == "memory":
        yield MemoryStore(namespace=unique_namespace())
        return
    require_redis()
    s = RedisStore(SHARED_URL, namespace=unique_namespace(), pointer_ttl=0.0)
    try:
        yield s
    finally:
        s.destroy_namespace()
        s.close()


def _vectors(n, d, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def _loaded(store, ids, vecs, **meta):
    v = store.create_version(meta)
    store.bulk_load("item_vectors", ids, vecs, version=v)
    store.activate(v)
    return v


def test_vectors_round_trip_exactly_in_the_order_asked(store):
    ids = [f"sku{i}" for i in range(50)]
    vecs = _vectors(50, 8)
    _loaded(store, ids, vecs)
    rows = store.get_item_vectors(["sku7", "sku3", "sku49"])
    np.testing.assert_array_equal(rows.values, vecs[[7, 3, 49]])
    assert rows.values.dtype == np.float32
    assert rows.found.tolist() == [True, True, True]
    assert rows.columns is None


def test_unknown_ids_come_back_as_zero_rows_not_found(store):
    _loaded(store, ["a", "b"], _vectors(2, 4))
    rows = store.get_item_vectors(["zz", "a", "nope"])
    assert rows.found.tolist() == [False, True, False]
    assert not rows.values[[0, 2]].any()
    assert rows.values[1].any()


def test_ids_compare_as_strings(store):
    _loaded(store, [1, 2, 3], _vectors(3, 4))
    assert store.get_item_vectors(["2", 3]).found.tolist() == [True, True]


def test_feature_rows_keep_their_column_names(store):
    v = store.create_version()
    store.put_item_features(["a", "b"], [[1.5, 2.0, 0.0], [3.0, 4.0, 1.0]], ["price", "margin", "promo"], version=v)
    store.activate(v)
    rows = store.get_item_features(["b", "a"])
    assert rows.columns == ("price", "margin", "promo")
    np.testing.assert_array_equal(rows.values, [[3.0, 4.0, 1.0], [1.5, 2.0, 0.0]])
    assert store.schema("item_features").width == 3


def test_user_tables_are_separate_from_item_tables(store):
    v = store.create_version()
    store.put_user_vectors(["u1"], [[1.0, 0.0]], version=v)
    store.put_item_vectors(["u1"], [[0.0, 0.0, 5.0]], version=v)
    store.put_user_features(["u1"], [[7.0]], ["orders"], version=v)
    store.activate(v)
    np.testing.assert_array_equal(store.get_user_vectors(["u1"]).values, [[1.0, 0.0]])
    np.testing.assert_array_equal(store.get_item_vectors(["u1"]).values, [[0.0, 0.0, 5.0]])
    assert store.get_user_features(["u1"]).columns == ("orders",)


def test_bad_rows_are_rejected_with_the_reason(store):
    v = store.create_version()
    store.put_item_vectors(["a"], [[1.0, 2.0]], version=v)
    with pytest.raises(DataError, match="width 2"):
        store.put_item_vectors(["b"], [[1.0, 2.0, 3.0]], version=v)
    with pytest.raises(DataError, match="NaN"):
        store.put_item_vectors(["c"], [[np.nan, 1.0]], version=v)
    with pytest.raises(DataError, match="column names"):
        store.bulk_load("item_features", ["a"], [[1.0]], version=v)
    with pytest.raises(DataError, match="2 column names for rows of width 1"):
        store.put_item_features(["a"], [[1.0]], ["x", "y"], version=v)
    store.put_item_features(["a"], [[1.0]], ["x"], version=v)
    with pytest.raises(DataError, match="columns"):
        store.put_item_features(["a"], [[1.0]], ["y"], version=v)
    with pytest.raises(DataError, match="duplicate ids"):
        store.bulk_load("item_vectors", ["a", "a"], [[1.0, 2.0], [3.0, 4.0]], version=v)
    with pytest.raises(DataError, match="one row per id"):
        store.bulk_load("item_vectors", ["a", "b"], [[1.0, 2.0]], version=v)
    with pytest.raises(ConfigError, match="unknown store table"):
        store.get_rows("items", ["a"], version=v)


def test_reads_before_any_activation_say_what_to_do(store):
    assert store.current_version() is None
    with pytest.raises(StoreError, match=r"no current version.*activate"):
        store.get_item_vectors(["a"])


def test_bulk_load_in_many_batches_equals_one_put(store):
    ids = [f"i{i}" for i in range(1234)]
    vecs = _vectors(1234, 16, seed=3)
    v = store.create_version()
    assert store.bulk_load("item_vectors", ids, vecs, version=v, batch_size=100) == 1234
    store.activate(v)
    assert store.count("item_vectors") == 1234
    np.testing.assert_array_equal(store.get_item_vectors(ids).values, vecs)


def test_put_replaces_and_delete_removes(store):
    _loaded(store, ["a", "b"], [[1.0, 1.0], [2.0, 2.0]])
    store.put_item_vectors(["a", "c"], [[9.0, 9.0], [3.0, 3.0]])
    np.testing.assert_array_equal(store.get_item_vectors(["a", "b", "c"]).values, [[9, 9], [2, 2], [3, 3]])
    assert store.count("item_vectors") == 3
    assert store.delete_rows("item_vectors", ["a", "zz"]) == 1
    assert store.get_item_vectors(["a", "b"]).found.tolist() == [False, True]
    assert store.count("item_vectors") == 2


def test_new_version_loads_while_the_old_one_serves_then_switches(store):
    v1 = _loaded(store, ["a", "b"], [[1.0, 0.0], [0.0, 1.0]], model="old")
    v2 = store.create_version({"model": "new"})
    store.bulk_load("item_vectors", ["a", "b", "c"], [[5.0, 5.0], [6.0, 6.0], [7.0, 7.0]], version=v2)
    # still serving v1 while v2 is loaded
    assert store.current_version() == v1
    np.testing.assert_array_equal(store.get_item_vectors(["a"]).values, [[1.0, 0.0]])
    assert not store.get_item_vectors(["c"]).found[0]
    store.activate(v2)
    assert store.current_version() == v2
    rows = store.get_item_vectors(["a", "c"])
    np.testing.assert_array_equal(rows.values, [[5.0, 5.0], [7.0, 7.0]])
    assert rows.version == v2
    states = {i.version: i.state for i in store.versions()}
    assert states == {v1: "retired", v2: "current"}
    assert store.version_info(v2).meta == {"model": "new"}
    # the retired version is still readable by explicit number (requests in flight)
    np.testing.assert_array_equal(store.get_item_vectors(["a"], version=v1).values, [[1.0, 0.0]])


def test_version_numbers_increase_and_are_never_reused(store):
    v1 = store.create_version()
    v2 = store.create_version()
    store.activate(v2)
    store.drop_version(v1)
    v3 = store.create_version()
    assert v1 < v2 < v3


def test_the_current_version_cannot_be_dropped(store):
    v1 = _loaded(store, ["a"], [[1.0]])
    with pytest.raises(StoreError, match="is current"):
        store.drop_version(v1)
    assert store.get_item_vectors(["a"]).found[0]


def test_garbage_collection_waits_for_the_grace_period(store):
    store.grace_seconds = 3600.0
    v1 = _loaded(store, ["a"], [[1.0]])
    v2 = _loaded(store, ["a"], [[2.0]])
    assert store.collect_garbage() == []
    with pytest.raises(StoreError, match="grace period"):
        store.drop_version(v1)
    assert store.get_item_vectors(["a"], version=v1).found[0]
    # grace over: the retired version goes, the current one stays
    assert store.collect_garbage(grace_seconds=0) == [v1]
    assert [i.version for i in store.versions()] == [v2]
    with pytest.raises(StoreError, match=f"no version {v1}"):
        store.get_item_vectors(["a"], version=v1)
    with pytest.raises(StoreError, match=f"no version {v1}"):
        store.activate(v1)
    np.testing.assert_array_equal(store.get_item_vectors(["a"]).values, [[2.0]])


def test_garbage_collection_keeps_rollback_versions_and_loading_ones(store):
    v1 = _loaded(store, ["a"], [[1.0]])
    v2 = _loaded(store, ["a"], [[2.0]])
    v3 = _loaded(store, ["a"], [[3.0]])
    loading = store.create_version()
    assert store.collect_garbage(keep=1, grace_seconds=0) == [v1]
    assert {i.version: i.state for i in store.versions()} == {v2: "retired", v3: "current", loading: "loading"}
    store.activate(v2)  # rollback
    np.testing.assert_array_equal(store.get_item_vectors(["a"]).values, [[2.0]])


def test_unknown_versions_are_named(store):
    with pytest.raises(StoreError, match="no version 99"):
        store.activate(99)
    with pytest.raises(StoreError, match="no version 99"):
        store.put_item_vectors(["a"], [[1.0]], version=99)


def test_readers_never_see_a_half_loaded_version(store):
    ids = [f"i{i}" for i in range(400)]
    _loaded(store, ids, np.ones((400, 4), np.float32))
    v2 = store.create_version()
    bad = []

    def read():
        for _ in range(30):
            rows = store.get_item_vectors(ids)
            full = rows.found.all() and (np.all(rows.values == 1.0) or np.all(rows.values == 2.0))
            if not full:
                bad.append(rows.version)

    reader = threading.Thread(target=read)
    reader.start()
    store.bulk_load("item_vectors", ids, np.full((400, 4), 2.0, np.float32), version=v2, batch_size=50)
    store.activate(v2)
    reader.join()
    assert bad == []
    assert np.all(store.get_item_vectors(ids).values == 2.0)


def test_describe_reports_versions_and_sizes(store):
    v = _loaded(store, ["a", "b"], [[1.0], [2.0]])
    d = store.describe()
    assert d["current"] == v
    assert d["versions"][0]["rows"]["item_vectors"] == 2
    assert d["backend"] == store.backend


def test_open_store_picks_the_backend_from_the_url():
    assert isinstance(open_store(), MemoryStore)
    assert isinstance(open_store("memory://"), MemoryStore)
    s = open_store("redis://127.0.0.1:6379/0", namespace="x")
    assert isinstance(s, RedisStore)
    s.close()
    with pytest.raises(ConfigError, match="unknown store URL"):
        open_store("postgres://x")
    with pytest.raises(ConfigError, match="namespace"):
        MemoryStore(namespace="a:b")


def test_get_many_reads_several_tables_under_one_version(store):
    v = store.create_version()
    store.put_user_vectors(["u"], [[1.0, 2.0]], version=v)
    store.put_item_features(["a", "b"], [[1.0], [2.0]], ["pop"], version=v)
    store.activate(v)
    user, feats, empty = store.get_many([("user_vectors", ["u"]), ("item_features", ["b", "zz", "a"]),
                                         ("item_vectors", ["a"])])
    np.testing.assert_array_equal(user.values, [[1.0, 2.0]])
    np.testing.assert_array_equal(feats.values, [[2.0], [0.0], [1.0]])
    assert feats.found.tolist() == [True, False, True] and feats.columns == ("pop",)
    assert empty.found.tolist() == [False] and user.version == feats.version == v
