"""Redis for tests: the shared server (fail loudly when it is down) and private throwaway servers.

Tests never skip because Redis is missing: `require_redis` fails with what to do. A
`PrivateRedis` is a `redis-server` on its own port with persistence off, started and stopped by the
test (an outage is `stop()`; recovery is `start()` again on the same port).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
import uuid

SHARED_URL = "redis://127.0.0.1:6379/0"


def require_redis(url: str = SHARED_URL):
    """A redis-py client for `url`, or an AssertionError saying how to start the server."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5, retry=Retry(NoBackoff(), 0))
    try:
        client.ping()
    except redis.exceptions.ConnectionError as exc:
        raise AssertionError(
            f"the Redis tests need a server at {url} but it is not reachable ({exc}); start one with "
            "`redis-server --daemonize yes --port 6379 --save ''` (.ci/run does this)") from None
    return client


def unique_namespace(prefix: str = "test") -> str:
    """A key namespace no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def free_port() -> int:
    """A TCP port nothing listens on right now (on 127.0.0.1)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _client(port: int):
    """A client that does not retry (redis-py's default retries ten times with back-off)."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis(port=port, socket_connect_timeout=0.5, socket_timeout=2, retry=Retry(NoBackoff(), 0))


class PrivateRedis:
    """A redis-server of this test's own on 127.0.0.1:`port`, persistence off."""

    def __init__(self, port: int | None = None) -> None:
        if shutil.which("redis-server") is None:
            raise AssertionError("redis-server is not installed: `apt-get install -y redis-server`")
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        subprocess.run(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                        "--appendonly", "no", "--daemonize", "yes", "--logfile", ""], check=True,
                       stdout=subprocess.DEVNULL)
        import redis

        client = _client(self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                client.close()
                return self
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"private redis-server on port {self.port} did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        import redis

        client = _client(self.port)
        with contextlib.suppress(redis.exceptions.ConnectionError):
            client.shutdown(nosave=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                client.ping()
                time.sleep(0.05)
            except redis.exceptions.ConnectionError:
                return

    def __enter__(self) -> PrivateRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
