"""Durability: a real server process (uvicorn) is killed with SIGKILL while events stream in; after a
restart every event that was acknowledged with a 2xx is in the log and in the service's state."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import httpx

from tastemaker.config import write_toml
from tastemaker.serving import ServeSettings
from tastemaker.serving.events import EventLog
from tastemaker.testing.redis_server import free_port


def _start(config, port: int, log_path) -> subprocess.Popen:
    env = {**os.environ, "TASTEMAKER_SERVE_CONFIG": str(config)}
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "tastemaker.serving.app:app_from_env", "--host", "127.0.0.1",
           "--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, env=env, stdout=open(log_path, "ab"), stderr=subprocess.STDOUT)  # noqa: SIM115
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited with {proc.returncode}: {log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"the server did not come up within 60 s: {log_path.read_text()[-3000:]}")


def test_every_acknowledged_event_survives_a_sigkill(shop, tmp_path, auth):
    settings = ServeSettings(model=str(shop["model"]), data_dir=str(tmp_path / "serve"), api_keys=[auth["X-API-Key"]])
    config = write_toml(tmp_path / "serve.toml", {"serve": settings.to_dict()})
    port = free_port()
    server_log = tmp_path / "server.log"
    proc = _start(config, port, server_log)
    acked: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    url = f"http://127.0.0.1:{port}/events"

    def stream(worker: int) -> None:
        with httpx.Client(timeout=5, headers=auth) as client:
            i = 0
            while not stop.is_set():
                eid = f"w{worker}-{i}"
                ev = {"event_id": eid, "type": ["view", "click", "add_to_cart", "purchase"][i % 4],
                      "user_id": f"u{i % 30}", "item_id": f"i{i % 40}"}
                try:
                    r = client.post(url, json=ev)
                except httpx.HTTPError:
                    return  # the server died: this event was never acknowledged
                if r.status_code in (200, 201):
                    with lock:
                        acked.append(eid)
                i += 1

    threads = [threading.Thread(target=stream, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(acked) < 300 and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)  # mid-stream: requests are in flight
    proc.wait(10)
    stop.set()
    for t in threads:
        t.join(10)
    assert len(acked) >= 300, f"only {len(acked)} events were acknowledged before the kill"

    # the log itself holds every acknowledged event
    logged = {r["id"] for r in EventLog(tmp_path / "serve" / "events.log").open() if r.get("kind") == "event"}
    missing = set(acked) - logged
    assert not missing, f"{len(missing)} acknowledged events are not in the log, e.g. {sorted(missing)[:5]}"

    proc = _start(config, port, server_log)
    try:
        health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json()
        assert health["events"]["replayed_at_start"] >= len(acked)
        assert health["events"]["live"] >= len(acked)
        # the restarted service knows them: sending one again is a duplicate, not a new event
        with httpx.Client(timeout=5, headers=auth) as client:
            for eid in acked[:: max(1, len(acked) // 25)]:
                ev = {"event_id": eid, "type": "view", "user_id": "u1", "item_id": "i1"}
                r = client.post(url, json=ev)
                assert r.status_code == 200 and r.json()["status"] == "duplicate", (eid, r.text)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
