"""What only the Redis backend has: its key layout, binary rows, the shared pointer, outages."""

from __future__ import annotations

import time

import numpy as np
import pytest

from tastemaker.store import MemoryStore, ResilientStore, StoreUnavailable
from tastemaker.store.redis import RedisStore
from tastemaker.testing.redis_server import SHARED_URL, PrivateRedis, free_port, require_redis, unique_namespace


@pytest.fixture
def ns():
    require_redis()
    name = unique_namespace()
    yield name
    cleanup = RedisStore(SHARED_URL, namespace=name)
    cleanup.destroy_namespace()
    cleanup.close()


def test_keys_are_versioned_and_rows_are_float32_bytes(ns):
    store = RedisStore(SHARED_URL, namespace=ns)
    v = store.create_version()
    vec = np.array([[0.5, -1.25, 3.0]], dtype=np.float32)
    store.put_item_vectors(["sku-1"], vec, version=v)
    store.activate(v)
    client = store.client
    raw = client.hget(f"tm:{ns}:v{v}:item_vectors", "sku-1")
    assert raw == vec.astype("<f4").tobytes()
    assert client.get(f"tm:{ns}:current") == str(v).encode()
    store.close()


def test_a_second_client_follows_the_switch(ns):
    writer = RedisStore(SHARED_URL, namespace=ns)
    reader = RedisStore(SHARED_URL, namespace=ns, pointer_ttl=0.0)
    v1 = writer.create_version()
    writer.put_item_vectors(["a"], [[1.0]], version=v1)
    writer.activate(v1)
    assert reader.get_item_vectors(["a"]).values[0, 0] == 1.0
    v2 = writer.create_version()
    writer.put_item_vectors(["a"], [[2.0]], version=v2)
    assert reader.get_item_vectors(["a"]).values[0, 0] == 1.0
    writer.activate(v2)
    assert reader.current_version() == v2
    assert reader.get_item_vectors(["a"]).values[0, 0] == 2.0
    writer.close()
    reader.close()


def test_a_cached_pointer_is_refreshed_after_its_ttl(ns):
    writer = RedisStore(SHARED_URL, namespace=ns)
    reader = RedisStore(SHARED_URL, namespace=ns, pointer_ttl=0.2)
    v1 = writer.create_version()
    writer.activate(v1)
    assert reader.current_version() == v1
    v2 = writer.create_version()
    writer.activate(v2)
    assert reader.current_version() == v1  # cached
    time.sleep(0.25)
    assert reader.current_version() == v2


def test_dropping_a_version_deletes_all_of_its_keys(ns):
    store = RedisStore(SHARED_URL, namespace=ns, grace_seconds=0)
    v1 = store.create_version()
    store.put_item_vectors(["a", "b"], [[1.0], [2.0]], version=v1)
    store.put_item_features(["a"], [[3.0]], ["price"], version=v1)
    store.activate(v1)
    v2 = store.create_version()
    store.put_item_vectors(["a"], [[9.0]], version=v2)
    store.activate(v2)
    assert store.drop_version(v1) == 3
    assert list(store.client.scan_iter(match=f"tm:{ns}:v{v1}:*")) == []
    assert store.client.exists(f"tm:{ns}:v{v2}:item_vectors") == 1
    store.close()


def test_an_unreachable_server_raises_store_unavailable_quickly():
    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0", namespace="x")
    t0 = time.monotonic()
    with pytest.raises(StoreUnavailable, match="unreachable"):
        store.get_item_vectors(["a"], version=1)
    with pytest.raises(StoreUnavailable):
        store.ping()
    assert time.monotonic() - t0 < 5  # one retry, no exponential back-off (not a timing benchmark)


def test_resilient_store_degrades_to_the_fallback_and_recovers():
    with PrivateRedis() as server:
        primary = RedisStore(server.url, namespace="shop", pointer_ttl=0.0)
        fallback = MemoryStore(namespace="shop")
        store = ResilientStore(primary, fallback, retry_interval=0.2)
        for s in (primary, fallback):
            v = s.create_version()
            s.put_item_vectors(["a"], [[1.0, 2.0]], version=v)
            s.activate(v)
        assert store.get_item_vectors(["a"]).degraded is None
        server.stop()
        rows = store.get_item_vectors(["a"])
        assert rows.degraded is not None and "unreachable" in rows.degraded and "fallback" in rows.degraded
        np.testing.assert_array_equal(rows.values, [[1.0, 2.0]])
        assert store.failures == 1
        # the circuit is open: the next read does not try the dead server again
        assert store.get_item_vectors(["a"]).degraded is not None
        assert store.failures == 1
        server.start()  # a fresh, empty server on the same port
        v = primary.create_version()
        primary.put_item_vectors(["a"], [[5.0, 5.0]], version=v)
        primary.activate(v)
        time.sleep(0.25)
        rows = store.get_item_vectors(["a"])
        assert rows.degraded is None
        np.testing.assert_array_equal(rows.values, [[5.0, 5.0]])
        primary.close()


def test_resilient_store_mirrors_writes_into_the_fallback():
    require_redis()
    ns = unique_namespace()
    primary = RedisStore(SHARED_URL, namespace=ns)
    try:
        fallback = MemoryStore(namespace=ns)
        for s in (primary, fallback):
            s.activate(s.create_version())
        store = ResilientStore(primary, fallback)
        store.put_item_vectors(["new"], [[4.0]])
        assert fallback.get_item_vectors(["new"]).values[0, 0] == 4.0
        assert primary.get_item_vectors(["new"]).values[0, 0] == 4.0
    finally:
        primary.destroy_namespace()
        primary.close()
