"""Serving by registry alias: load ``models:/NAME@champion``, follow the alias, swap without a failed request.

The acceptance test runs the real thing end to end: `tastemaker train --track` on MovieLens 100K,
`tastemaker registry register/promote`, `tastemaker serve` in its own process, a client thread
firing requests the whole time while a challenger is trained, registered and promoted.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time

import pytest
from click.testing import CliRunner

from tastemaker.errors import ConfigError
from tastemaker.models import Recommender
from tastemaker.testing.redis_server import free_port


def _client(settings):
    from fastapi.testclient import TestClient

    from tastemaker.serving import create_app

    return TestClient(create_app(settings))


def _recommend(client, user) -> dict:
    r = client.get("/recommendations", params={"user_id": str(user), "k": 5})
    assert r.status_code == 200, r.text
    return r.json()


def test_serve_a_registry_alias_and_follow_it(registry, bundles, tmp_path):
    from tastemaker.serving import ServeSettings

    registry.register(bundles["mf"], "movies", alias="champion")
    settings = ServeSettings(model="models:/movies@champion", registry_uri=registry.uri, model_poll_s=3600,
                             data_dir=str(tmp_path / "serve"), fsync=False)
    first, second = Recommender.load(bundles["mf"]), Recommender.load(bundles["mf2"])
    user = first.user_vocab.ids[0]
    with _client(settings) as client:
        svc = client.app.state.service
        body = _recommend(client, user)
        assert body["model"] == "models:/movies/1"
        assert [it["item_id"] for it in body["items"]] == [str(i) for i in first.recommend([user], 5)[0].items]
        assert svc.watcher is not None and svc.watcher.check() is False  # the alias has not moved
        registry.register(bundles["mf2"], "movies", alias="challenger")
        registry.promote("movies", "challenger", "champion")
        assert svc.watcher.check() is True
        body = _recommend(client, user)
        assert body["model"] == "models:/movies/2"
        assert [it["item_id"] for it in body["items"]] == [str(i) for i in second.recommend([user], 5)[0].items]
        health = client.get("/health").json()["model"]
        assert health["uri"] == "models:/movies/2" and health["follows"] == "models:/movies@champion"
        assert health["watcher"]["swaps"] == 1 and health["watcher"]["last_error"] is None
        # the fetched versions live in the service's data folder
        assert sorted(p.name.split("-")[0] for p in (tmp_path / "serve" / "models" / "movies").iterdir()) == ["1", "2"]


def test_a_broken_champion_never_replaces_the_serving_model(registry, bundles, tmp_path):
    from tastemaker.serving import ServeSettings

    registry.register(bundles["mf"], "movies", alias="champion")
    broken = tmp_path / "broken"
    shutil.copytree(bundles["mf2"], broken)
    (broken / "arrays.npz").write_bytes(b"not a zip")
    registry.register(broken, "movies")
    settings = ServeSettings(model="models:/movies@champion", registry_uri=registry.uri, model_poll_s=3600,
                             data_dir=str(tmp_path / "serve"), fsync=False)
    with _client(settings) as client:
        svc = client.app.state.service
        registry.promote("movies", 2, "champion")
        assert svc.watcher.check() is False
        assert _recommend(client, Recommender.load(bundles["mf"]).user_vocab.ids[0])["model"] == "models:/movies/1"
        watcher = client.get("/health").json()["model"]["watcher"]
        assert "models:/movies/2" in watcher["last_error"] and "still serving models:/movies/1" in watcher["last_error"]
        assert watcher["version"] == 1
        # a failed version is not retried on every poll …
        assert svc.watcher.check() is False and svc.watcher.swaps == 0
        # … and a good version promoted after it is picked up
        registry.register(bundles["mf2"], "movies", alias="champion")
        assert svc.watcher.check() is True and svc.model_id == "models:/movies/3"


def test_a_pinned_version_is_not_followed(registry, bundles, tmp_path):
    from tastemaker.serving import ServeSettings

    registry.register(bundles["mf"], "movies", alias="champion")
    settings = ServeSettings(model="models:/movies/1", registry_uri=registry.uri, model_poll_s=0.05,
                             data_dir=str(tmp_path / "serve"), fsync=False)
    with _client(settings) as client:
        assert client.app.state.service.watcher is None
        assert client.get("/health").json()["model"]["uri"] == "models:/movies/1"


def test_a_bundle_folder_serves_under_its_path_and_a_prebuilt_pipeline_cannot_swap(bundles, tmp_path):
    from tastemaker.pipeline import Pipeline, Resources, TopK
    from tastemaker.serving import ServeSettings
    from tastemaker.serving.service import Service

    settings = ServeSettings(model=str(bundles["mf"]), data_dir=str(tmp_path / "serve"), fsync=False)
    with _client(settings) as client:
        user = Recommender.load(bundles["mf"]).user_vocab.ids[0]
        assert _recommend(client, user)["model"] == str(bundles["mf"])
    svc = Service(ServeSettings(data_dir=str(tmp_path / "s2")), Resources(), pipeline=Pipeline([TopK()]))
    with pytest.raises(ConfigError, match="prebuilt pipeline"):
        svc.swap_model(Recommender.load(bundles["mf"]), "x")


def _wait_healthy(proc, url: str, log, timeout: float = 90.0):
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited with {proc.returncode}: {log.read_text()[-3000:]}")
        try:
            r = httpx.get(url + "/health", timeout=2.0)
            if r.status_code == 200:
                return r.json()
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("the server did not become healthy in time")


def test_acceptance_train_register_champion_serve_promote_challenger_without_a_failed_request(
        registry_uri, data_root, tmp_path, monkeypatch):
    import httpx

    from tastemaker.cli.main import cli
    from tastemaker.cli.registry import registry as registry_cli

    monkeypatch.setenv("TASTEMAKER_DATA_DIR", str(data_root))
    runner = CliRunner()

    def run(group, *args):
        result = runner.invoke(group, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    # train (tracked) and register the first model, promote it to champion
    v1_dir, v2_dir = tmp_path / "popularity", tmp_path / "ease"
    run(cli, "--quiet", "train", "--dataset", "ml-100k", "--model", "popularity", "--out", str(v1_dir), "--track")
    assert "models:/movies/1" in run(registry_cli, "register", "--model-dir", str(v1_dir), "--name", "movies")
    run(registry_cli, "promote", "movies", "1", "--alias", "champion")

    # serve by alias, in its own process
    port = free_port()
    config = tmp_path / "serve.toml"
    config.write_text(f'[serve]\nmodel = "models:/movies@champion"\nmodel_poll_s = 0.2\n'
                      f'registry_uri = "{registry_uri}"\nport = {port}\ndata_dir = "{tmp_path / "serve"}"\n'
                      'fsync = false\nlog_level = "warning"\n')
    log = tmp_path / "serve.log"
    proc = subprocess.Popen([sys.executable, "-m", "tastemaker.cli.main", "serve", "--config", str(config)],
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    responses: list[tuple[int, str | None, list[str]]] = []  # (status, model, items), all clients
    per_client: list[list[str | None]] = [[], [], []]  # the models each client saw, in its order
    failures: list[str] = []
    stop = threading.Event()

    def fire(seen: list[str | None]):
        with httpx.Client(base_url=url, timeout=30.0) as client:
            while not stop.is_set():
                try:
                    r = client.get("/recommendations", params={"user_id": "196", "k": 10})
                except httpx.HTTPError as exc:
                    failures.append(f"{type(exc).__name__}: {exc}")
                    continue
                body = r.json() if r.status_code == 200 else {}
                responses.append((r.status_code, body.get("model"), [it["item_id"] for it in body.get("items", [])]))
                seen.append(body.get("model"))

    try:
        health = _wait_healthy(proc, url, log)
        assert health["model"]["uri"] == "models:/movies/1"
        threads = [threading.Thread(target=fire, args=(seen,)) for seen in per_client]  # requests overlap
        for thread in threads:
            thread.start()
        try:
            # while requests flow: train a challenger, register it, then promote it
            run(cli, "--quiet", "train", "--dataset", "ml-100k", "--model", "ease", "--out", str(v2_dir), "--track")
            run(registry_cli, "register", "--model-dir", str(v2_dir), "--name", "movies", "--alias", "challenger")
            assert responses and {m for _, m, _ in responses} == {"models:/movies/1"}, log.read_text()[-3000:]
            run(registry_cli, "promote", "movies", "challenger", "--alias", "champion")
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not any(m == "models:/movies/2" for _, m, _ in responses):
                time.sleep(0.05)
            switched = len(responses)
            while time.monotonic() < deadline and len(responses) < switched + 20:
                time.sleep(0.05)
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        health = httpx.get(url + "/health", timeout=5).json()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    assert not failures, failures[:3]
    assert [s for s, _, _ in responses if s != 200] == [], log.read_text()[-3000:]
    for models in per_client:  # each client saw the champion, then the new champion, and never went back
        first_new = models.index("models:/movies/2")
        assert first_new > 0 and set(models[:first_new]) == {"models:/movies/1"}
        assert set(models[first_new:]) == {"models:/movies/2"}
    assert sum(m == "models:/movies/2" for _, m, _ in responses) >= 20
    # the answers really come from each version's model
    for directory, model_id in ((v1_dir, "models:/movies/1"), (v2_dir, "models:/movies/2")):
        expected = [str(i) for i in Recommender.load(directory).recommend([196], 10)[0].items]
        assert {tuple(items) for _, m, items in responses if m == model_id} == {tuple(expected)}
    assert health["model"]["uri"] == "models:/movies/2" and health["model"]["watcher"]["swaps"] == 1
    # the training runs were tracked in the same store as the registry
    import mlflow

    runs = mlflow.MlflowClient(registry_uri).search_runs(
        [mlflow.MlflowClient(registry_uri).get_experiment_by_name("tastemaker").experiment_id])
    commands = sorted(r.data.tags.get("command", "") for r in runs)
    assert commands == ["register", "register", "train", "train"]
    assert all(r.data.tags.get("data_fingerprint") for r in runs)
