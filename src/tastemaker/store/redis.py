"""`RedisStore`: the feature/vector store on Redis (redis-py), versioned by model version.

Key layout (namespace ``ns``; ``{n}`` a version number)::

    tm:ns:current              string   the version reads go to (switched by one MULTI/EXEC)
    tm:ns:next                 counter  INCR gives the next version number (never reused)
    tm:ns:versions             hash     version -> JSON VersionInfo (state, times, meta)
    tm:ns:v{n}:schema          hash     table -> JSON {width, columns}
    tm:ns:v{n}:item_vectors    hash     item id -> float32 little-endian bytes (width × 4 bytes)
    tm:ns:v{n}:user_vectors    hash     user id -> float32 bytes
    tm:ns:v{n}:item_features   hash     item id -> float32 bytes (columns in the schema)
    tm:ns:v{n}:user_features   hash     user id -> float32 bytes

One hash per table and version keeps a batch read to one HMGET and dropping a version to a few
UNLINKs (freed in the background by Redis). Bulk loads send HSETs with many fields through a
non-transactional pipeline. `activate` and `drop_version` run under WATCH on the versions hash
and the current pointer, so a switch and a drop of the same version cannot interleave.

Readers cache the current pointer for `pointer_ttl` seconds (default 0.5 s) to save a round trip
per request; retired versions stay readable for `grace_seconds` (default 60 s, which must exceed
`pointer_ttl` plus the longest request), so `collect_garbage` never pulls data from under a reader.

Connection errors and timeouts become `StoreUnavailable`; redis-py retries once (not its default
ten times with back-off) so an outage is noticed within `socket_timeout`.

Batch reads (`get_rows`, `get_many`) bypass redis-py's per-argument command packing when hiredis is
installed: the HMGETs of one call are packed by hiredis in C and sent on one pooled connection
(retried once on a connection error, like the client), which saves most of the client's CPU per
request (about a microsecond per id otherwise).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from tastemaker.errors import require
from tastemaker.store.base import (
    DEFAULT_GRACE_SECONDS,
    TABLES,
    FeatureStore,
    Rows,
    StoreError,
    StoreUnavailable,
    TableSchema,
    VersionInfo,
    as_ids,
    as_rows,
    check_namespace,
    check_schema,
    check_table,
    schema_for,
)


class RedisStore(FeatureStore):
    """Store on a Redis server: ``RedisStore("redis://127.0.0.1:6379/0", namespace="shop")``."""

    backend = "redis"

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", *, namespace: str = "default",
                 grace_seconds: float = DEFAULT_GRACE_SECONDS, pointer_ttl: float = 0.5,
                 socket_timeout: float = 0.25, connect_timeout: float = 0.25, max_connections: int = 64,
                 pipeline_rows: int = 50_000) -> None:
        redis = require("redis", "serve")
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.url = url
        self.namespace = check_namespace(namespace)
        self.grace_seconds = float(grace_seconds)
        self.pointer_ttl = float(pointer_ttl)
        self.pipeline_rows = int(pipeline_rows)
        self.prefix = f"tm:{self.namespace}:"
        self._exc = redis.exceptions
        self._redis = redis.Redis.from_url(
            url, socket_timeout=socket_timeout, socket_connect_timeout=connect_timeout,
            retry=Retry(NoBackoff(), 1), max_connections=max_connections, decode_responses=False)
        self._pointer: tuple[float, int | None] = (-1.0, None)
        self._schemas: dict[tuple[int, str], TableSchema] = {}
        try:
            import hiredis

            self._pack = hiredis.pack_command
        except ImportError:  # redis-py's own packing
            self._pack = None

    def __repr__(self) -> str:
        return f"RedisStore({self.url!r}, namespace={self.namespace!r})"

    # --- keys and errors -------------------------------------------------------------------------
    @property
    def _k_current(self) -> str:
        return self.prefix + "current"

    @property
    def _k_versions(self) -> str:
        return self.prefix + "versions"

    def _k_table(self, version: int, table: str) -> str:
        return f"{self.prefix}v{int(version)}:{table}"

    def _k_schema(self, version: int) -> str:
        return f"{self.prefix}v{int(version)}:schema"

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (self._exc.ConnectionError, self._exc.TimeoutError) as exc:
            raise StoreUnavailable(f"redis at {self.url} is unreachable ({type(exc).__name__}: {exc})") from exc
        except self._exc.ResponseError as exc:
            raise StoreError(f"redis at {self.url} refused a command: {exc}") from exc

    @property
    def client(self):
        """The redis-py client (for tests and tools)."""
        return self._redis

    def close(self) -> None:
        self._redis.close()

    def ping(self) -> None:
        self._call(self._redis.ping)

    # --- versions -----------------------------------------------------------------------------
    def create_version(self, meta: dict[str, Any] | None = None) -> int:
        v = int(self._call(self._redis.incr, self.prefix + "next"))
        info = VersionInfo(v, meta=dict(meta or {}))
        self._call(self._redis.hset, self._k_versions, str(v), json.dumps(info.to_dict()))
        return v

    def versions(self) -> list[VersionInfo]:
        raw = self._call(self._redis.hgetall, self._k_versions)
        infos = [VersionInfo.from_dict(json.loads(v)) for v in raw.values()]
        return sorted(infos, key=lambda i: i.version)

    def current_version(self) -> int | None:
        at, v = self._pointer
        now = time.monotonic()
        if now - at < self.pointer_ttl:
            return v
        raw = self._call(self._redis.get, self._k_current)
        v = None if raw is None else int(raw)
        self._pointer = (now, v)
        return v

    def _transaction(self, body) -> Any:
        """Run `body(pipe)` under WATCH of the current pointer and the versions hash; retried on conflict."""
        def run():
            with self._redis.pipeline() as pipe:
                for _ in range(50):
                    try:
                        pipe.watch(self._k_current, self._k_versions)
                        out = body(pipe)
                        return out
                    except self._exc.WatchError:
                        continue
                raise StoreError("the store's version table kept changing during a switch; try again")
        return self._call(run)

    def activate(self, version: int) -> None:
        version = int(version)

        def body(pipe):
            raw = pipe.hget(self._k_versions, str(version))
            if raw is None:
                raise StoreError(f"store redis:{self.namespace} has no version {version} (dropped or never created)")
            info = VersionInfo.from_dict(json.loads(raw))
            cur = pipe.get(self._k_current)
            old = None if cur is None else int(cur)
            if old == version:
                pipe.unwatch()
                return
            now = time.time()
            info.state, info.activated, info.retired = "current", now, None
            old_raw = pipe.hget(self._k_versions, str(old)) if old is not None else None
            pipe.multi()
            pipe.set(self._k_current, str(version))
            pipe.hset(self._k_versions, str(version), json.dumps(info.to_dict()))
            if old_raw is not None:
                old_info = VersionInfo.from_dict(json.loads(old_raw))
                old_info.state, old_info.retired = "retired", now
                pipe.hset(self._k_versions, str(old), json.dumps(old_info.to_dict()))
            pipe.execute()

        self._transaction(body)
        self._pointer = (time.monotonic(), version)

    def drop_version(self, version: int, *, force: bool = False) -> int:
        version = int(version)

        def body(pipe):
            raw = pipe.hget(self._k_versions, str(version))
            if raw is None:
                raise StoreError(f"store redis:{self.namespace} has no version {version}")
            info = VersionInfo.from_dict(json.loads(raw))
            cur = pipe.get(self._k_current)
            if cur is not None and int(cur) == version:
                raise StoreError(f"version {version} is current: activate another version before dropping it")
            if self._retired_too_recently(info, force):
                raise StoreError(f"version {version} was retired {time.time() - (info.retired or 0):.1f} s ago, "
                                 f"inside the {self.grace_seconds:g} s grace period; wait, or pass force=True")
            pipe.multi()
            pipe.hdel(self._k_versions, str(version))
            pipe.execute()

        self._transaction(body)
        # the version is gone from the table (no switch can pick it now); free its data
        keys = [self._k_table(version, t) for t in TABLES]
        rows = sum(self._call(self._redis.hlen, k) for k in keys)
        pattern = f"{self.prefix}v{version}:*"
        found = self._call(lambda: list(self._redis.scan_iter(match=pattern, count=1000)))
        self._call(self._redis.unlink, *{*keys, self._k_schema(version), *found})
        for t in TABLES:
            self._schemas.pop((version, t), None)
        return int(rows)

    # --- rows ---------------------------------------------------------------------------------
    def schema(self, table: str, *, version: int | None = None) -> TableSchema | None:
        check_table(table)
        v = self.resolve(version)
        cached = self._schemas.get((v, table))
        if cached is not None:
            return cached
        with self._redis.pipeline(transaction=False) as pipe:
            pipe.hexists(self._k_versions, str(v))
            pipe.hget(self._k_schema(v), table)
            exists, raw = self._call(pipe.execute)
        if not exists:
            raise StoreError(f"store redis:{self.namespace} has no version {v}")
        if raw is None:
            return None
        schema = TableSchema.from_dict(json.loads(raw))
        if schema.columns is not None or table.endswith("_vectors"):
            self._schemas[(v, table)] = schema
        return schema

    def _fix_schema(self, table: str, v: int, new: TableSchema) -> TableSchema:
        with self._redis.pipeline(transaction=False) as pipe:
            pipe.hexists(self._k_versions, str(v))
            pipe.hsetnx(self._k_schema(v), table, json.dumps(new.to_dict()))
            pipe.hget(self._k_schema(v), table)
            exists, _, raw = self._call(pipe.execute)
        if not exists:
            raise StoreError(f"store redis:{self.namespace} has no version {v}: create it with create_version()")
        old = TableSchema.from_dict(json.loads(raw))
        schema = check_schema(table, old, new, v)
        if old.columns is None and new.columns is not None:
            self._call(self._redis.hset, self._k_schema(v), table, json.dumps(new.to_dict()))
            schema = new
        self._schemas[(v, table)] = schema
        return schema

    @staticmethod
    def _encode(arr: np.ndarray) -> list[memoryview]:
        buf = memoryview(arr.astype("<f4", copy=False).tobytes())
        w = arr.shape[1] * 4
        return [buf[i * w:(i + 1) * w] for i in range(arr.shape[0])]

    def put_rows(self, table: str, ids: Sequence[Any], values: Any, *, columns: Sequence[str] | None = None,
                 version: int | None = None) -> int:
        check_table(table)
        ids_l = as_ids(ids)
        arr = as_rows(values, len(ids_l), table)
        v = self.resolve(version)
        self._fix_schema(table, v, schema_for(table, arr, columns))
        if ids_l:
            self._call(self._redis.hset, self._k_table(v, table), mapping=dict(zip(ids_l, self._encode(arr))))
        return len(ids_l)

    def bulk_load(self, table: str, ids: Sequence[Any], values: Any, *, columns: Sequence[str] | None = None,
                  version: int | None = None, batch_size: int = 10_000) -> int:
        """Load many rows: the schema is checked once, then HSETs of `batch_size` fields are sent
        through a pipeline that is flushed every `pipeline_rows` rows."""
        check_table(table)
        ids_l = as_ids(ids)
        arr = as_rows(values, len(ids_l), table)
        if len(set(ids_l)) != len(ids_l):
            from tastemaker.errors import DataError

            raise DataError(f"{table}: duplicate ids in one bulk load")
        v = self.resolve(version)
        self._fix_schema(table, v, schema_for(table, arr, columns))
        key = self._k_table(v, table)
        batch = max(1, int(batch_size))
        pipe = self._redis.pipeline(transaction=False)
        queued = 0
        try:
            for start in range(0, len(ids_l), batch):
                chunk = arr[start:start + batch]
                pipe.hset(key, mapping=dict(zip(ids_l[start:start + batch], self._encode(chunk))))
                queued += len(chunk)
                if queued >= self.pipeline_rows:
                    self._call(pipe.execute)
                    queued = 0
            if queued:
                self._call(pipe.execute)
        finally:
            pipe.reset()
        return len(ids_l)

    def get_rows(self, table: str, ids: Sequence[Any], *, version: int | None = None) -> Rows:
        v = self.resolve(version)
        ids_l = as_ids(ids)
        schema = self.schema(table, version=v)
        if schema is None or not ids_l:
            width = 0 if schema is None else schema.width
            return Rows(np.zeros((len(ids_l), width), np.float32), np.zeros(len(ids_l), bool),
                        None if schema is None else schema.columns, v)
        raw = self._hmgets([(self._k_table(v, table), ids_l)])[0]
        return self._decode(table, v, schema, raw)

    def get_many(self, queries: Sequence[tuple[str, Sequence[Any]]], *, version: int | None = None) -> list[Rows]:
        """Several HMGETs in one pipelined round trip, under one version."""
        v = self.resolve(version)
        prepared = []
        for table, ids in queries:
            ids_l = as_ids(ids)
            prepared.append((table, ids_l, self.schema(table, version=v)))
        replies = iter(self._hmgets([(self._k_table(v, table), ids_l) for table, ids_l, schema in prepared
                                     if schema is not None and ids_l]))
        out = []
        for table, ids_l, schema in prepared:
            if schema is None or not ids_l:
                width = 0 if schema is None else schema.width
                out.append(Rows(np.zeros((len(ids_l), width), np.float32), np.zeros(len(ids_l), bool),
                                None if schema is None else schema.columns, v))
            else:
                out.append(self._decode(table, v, schema, next(replies)))
        return out

    def _hmgets(self, commands: list[tuple[str, list[str]]]) -> list[list]:
        """Replies of several HMGETs (key, fields), pipelined in one round trip."""
        if not commands:
            return []
        if self._pack is None:
            def run():
                with self._redis.pipeline(transaction=False) as pipe:
                    for key, fields in commands:
                        pipe.hmget(key, fields)
                    return pipe.execute()
            return self._call(run)
        packed = b"".join([self._pack(("HMGET", key, *fields)) for key, fields in commands])
        return self._call(self._send_packed, packed, len(commands))

    def _send_packed(self, packed: bytes, n_replies: int) -> list:
        pool = self._redis.connection_pool
        for attempt in (0, 1):  # one retry on a connection error, like the client's Retry(NoBackoff(), 1)
            conn = pool.get_connection()
            try:
                conn.send_packed_command([packed])
                replies = [conn.read_response() for _ in range(n_replies)]
            except (self._exc.ConnectionError, self._exc.TimeoutError):
                conn.disconnect()
                if attempt:
                    raise
                continue
            except BaseException:
                conn.disconnect()  # a half-read reply must not reach the next user of the connection
                raise
            finally:
                pool.release(conn)
            for r in replies:
                if isinstance(r, self._exc.ResponseError):
                    raise r
            return replies
        raise AssertionError("unreachable")

    def _decode(self, table: str, v: int, schema: TableSchema, raw: list) -> Rows:
        width = schema.width
        nbytes = 4 * width
        if None not in raw:  # the usual case: every id found (a C-level scan, then one join)
            found = np.ones(len(raw), dtype=bool)
            blob = b"".join(raw)
        else:
            found = np.fromiter((r is not None for r in raw), dtype=bool, count=len(raw))
            zero = bytes(nbytes)
            blob = b"".join(r if r is not None else zero for r in raw)
        if len(blob) != nbytes * len(raw):
            raise StoreError(f"{table} of version {v} holds a row whose size is not {width} float32 values; "
                             "the data is corrupt or was written by another tool: reload the version")
        values = np.frombuffer(blob, dtype="<f4").reshape(len(raw), width).astype(np.float32, copy=True)
        return Rows(values, found, schema.columns, v)

    def delete_rows(self, table: str, ids: Sequence[Any], *, version: int | None = None) -> int:
        check_table(table)
        v = self.resolve(version)
        ids_l = as_ids(ids)
        return int(self._call(self._redis.hdel, self._k_table(v, table), *ids_l)) if ids_l else 0

    def count(self, table: str, *, version: int | None = None) -> int:
        check_table(table)
        return int(self._call(self._redis.hlen, self._k_table(self.resolve(version), table)))

    def iter_rows(self, table: str, *, version: int | None = None, chunk: int = 10_000):
        """Every row of a table as (ids, values) chunks (HSCAN; for mirroring and exports)."""
        check_table(table)
        v = self.resolve(version)
        schema = self.schema(table, version=v)
        if schema is None:
            return
        ids: list[str] = []
        blobs: list[bytes] = []
        for field_, value in self._call(lambda: list(self._redis.hscan_iter(self._k_table(v, table), count=chunk))):
            ids.append(field_.decode())
            blobs.append(value)
            if len(ids) >= chunk:
                yield ids, np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(ids), schema.width).copy()
                ids, blobs = [], []
        if ids:
            yield ids, np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(ids), schema.width).copy()

    def destroy_namespace(self) -> int:
        """Delete every key of this namespace (tests and tools); returns how many keys went."""
        keys = self._call(lambda: list(self._redis.scan_iter(match=self.prefix + "*", count=1000)))
        if keys:
            self._call(self._redis.unlink, *keys)
        self._pointer = (-1.0, None)
        self._schemas.clear()
        return len(keys)
