"""The model registry on MLflow's embedded SQLite store: register, aliases, fetch, A/B variants, CLI."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from tastemaker.errors import ArtifactError, ConfigError
from tastemaker.models import Recommender
from tastemaker.registry import ModelRef, RegistryError, is_model_uri


@pytest.mark.parametrize("uri, name, version, alias", [
    ("models:/movies@champion", "movies", None, "champion"),
    ("models:/movies/3", "movies", 3, None),
    ("models:/movies/latest", "movies", None, None),
    ("models:/shop.v2-a@challenger", "shop.v2-a", None, "challenger"),
])
def test_model_uris_parse(uri, name, version, alias):
    ref = ModelRef.parse(uri)
    assert (ref.name, ref.version, ref.alias) == (name, version, alias)
    assert ref.uri == uri
    assert ref.pinned == (version is not None)


@pytest.mark.parametrize("uri", ["models:/movies", "models:/movies/0", "models:/movies/x1", "runs:/abc/model",
                                 "models:/@champion", "models:/movies@latest", "models:/movies@v3"])
def test_bad_model_uris_say_what_to_write(uri):
    with pytest.raises(ConfigError, match=r"models:/|version|alias|name"):
        ModelRef.parse(uri)


def test_is_model_uri_tells_folders_from_registry_uris(tmp_path):
    assert is_model_uri("models:/a@champion")
    assert not is_model_uri(str(tmp_path))
    assert not is_model_uri(tmp_path)


def test_register_logs_params_metrics_fingerprint_and_bundle(registry, bundles):
    import mlflow

    mv = registry.register(bundles["mf"], "movies", metrics={"ndcg@10": 0.25}, tags={"owner": "team-a"})
    assert (mv.name, mv.version, mv.uri) == ("movies", 1, "models:/movies/1")
    manifest = json.loads((bundles["mf"] / "manifest.json").read_text())
    assert mv.tags["data_fingerprint"] == manifest["data"]["fingerprint"]
    assert mv.tags["tastemaker.model"] == "biased_mf" and mv.tags["owner"] == "team-a"
    assert mv.tags["git_commit"]
    run = mlflow.MlflowClient(registry.uri).get_run(mv.run_id)
    assert run.data.params["n_factors"] == "8" and run.data.params["model"] == "biased_mf"
    assert run.data.metrics["ndcg_at_10"] == pytest.approx(0.25)
    assert run.data.tags["data_fingerprint"] == manifest["data"]["fingerprint"]
    assert run.info.status == "FINISHED"
    # a second registration is version 2 of the same model
    assert registry.register(bundles["mf2"], "movies").version == 2
    assert [v.version for v in registry.versions("movies")] == [1, 2]
    assert registry.models() == ["movies"]


def test_register_attaches_to_a_tracked_training_run(registry, bundles):
    import mlflow

    from tastemaker.tracking import Tracker

    tracker = Tracker(True, uri=registry.uri)
    with tracker.run("train biased_mf", params={"model": "biased_mf"}, tags={"data_fingerprint": "abc"}):
        tracker.log_metrics({"fit_seconds": 0.1})
    mv = registry.register(bundles["mf"], "movies", run_id=tracker.run_id, metrics={"rmse": 0.9})
    assert mv.run_id == tracker.run_id
    client = mlflow.MlflowClient(registry.uri)
    assert {f.path for f in client.list_artifacts(tracker.run_id, "model")} >= {"model/manifest.json",
                                                                                 "model/arrays.npz"}
    assert client.get_run(tracker.run_id).data.metrics["rmse"] == pytest.approx(0.9)
    with pytest.raises(RegistryError, match="run"):
        registry.register(bundles["mf"], "movies", run_id="0" * 32)


def test_tracker_defaults_to_the_embedded_sqlite_store(_template_db, tmp_path, monkeypatch):
    from tastemaker.tracking import Tracker, default_tracking_uri

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    shutil.copy(_template_db, tmp_path / "mlflow.db")  # an empty store (saves the schema migration)
    assert default_tracking_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(True)
    with tracker.run("evaluate x", params={"k": 10}) as t:
        t.log_metrics({"ndcg@10": 0.5})
        t.log_dict({"a": 1}, "result.json")
    assert (tmp_path / "mlflow.db").is_file()
    # artifacts live beside the database, under mlruns/
    assert list((tmp_path / "mlruns").rglob("result.json"))


def test_aliases_champion_and_challenger(registry, bundles):
    v1 = registry.register(bundles["mf"], "movies")
    registry.promote("movies", v1.version, "champion")
    v2 = registry.register(bundles["mf2"], "movies", alias="challenger")
    assert v2.aliases == ("challenger",)
    assert registry.aliases("movies") == {"champion": 1, "challenger": 2}
    assert registry.resolve("models:/movies@champion").version == 1
    assert registry.resolve("models:/movies/latest").version == 2
    # the challenger takes over: champion moves, the challenger alias goes, the move is recorded
    now = registry.promote("movies", "challenger", "champion")
    assert now.version == 2 and now.aliases == ("champion",)
    assert registry.aliases("movies") == {"champion": 2}
    assert json.loads(now.tags["promoted.champion"]) == {"previous": 1}
    assert registry.alias_version("movies", "challenger") is None
    registry.promote("movies", 1, "champion")  # a rollback is a promotion of the old version
    assert registry.alias_version("movies", "champion") == 1
    registry.demote("movies", "champion")
    assert registry.aliases("movies") == {}


def test_unknown_model_version_or_alias_is_a_registry_error(registry, bundles):
    with pytest.raises(RegistryError, match="nomodel"):
        registry.resolve("models:/nomodel@champion")
    registry.register(bundles["mf"], "movies")
    with pytest.raises(RegistryError, match="7"):
        registry.get("movies", 7)
    with pytest.raises(RegistryError, match="champion"):
        registry.resolve("models:/movies@champion")
    with pytest.raises(ArtifactError, match=r"manifest\.json"):
        registry.register(bundles["mf"].parent, "movies")


def test_fetch_downloads_once_and_loads_the_same_model(registry, bundles):
    mv = registry.register(bundles["mf"], "movies", alias="champion")
    folder = registry.fetch("models:/movies@champion")
    assert folder.parent.parent == registry.cache_dir
    original, fetched = Recommender.load(bundles["mf"]), Recommender.load(folder)
    users = original.user_vocab.ids[:7].tolist()
    items = original.item_vocab.ids[3:10].tolist()
    np.testing.assert_array_equal(original.score(users, items).values, fetched.score(users, items).values)
    # cached: a second fetch does not download again, even when the store's artifacts are gone
    shutil.rmtree(registry.uri[len("sqlite:///"):].rsplit("/", 1)[0] + "/mlruns")
    assert registry.fetch(mv) == folder


def test_fetch_refuses_a_version_that_is_not_a_bundle(registry, tmp_path):
    import mlflow

    client = mlflow.MlflowClient(registry.uri)
    exp = client.create_experiment("other")
    run = client.create_run(exp)
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "weights.bin").write_bytes(b"\0" * 8)
    client.log_artifacts(run.info.run_id, str(junk), "model")
    client.create_registered_model("junk")
    client.create_model_version("junk", f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    with pytest.raises(ArtifactError, match="no tastemaker bundle"):
        registry.fetch("models:/junk/1")
    assert not list((registry.cache_dir / "junk").glob("1-*"))


def test_ab_variants_map_to_registry_versions_and_can_be_pinned(registry, bundles):
    registry.register(bundles["mf"], "movies", alias="champion")
    registry.register(bundles["mf2"], "movies", alias="challenger")
    assert registry.variant_uris("movies") == {"control": "models:/movies/1", "treatment": "models:/movies/2"}
    assert registry.variant_uri("movies", "B", mapping={"A": 1, "B": "challenger"}) == "models:/movies/2"
    assert registry.variant_uri("movies", "champion") == "models:/movies/1"  # a variant named like an alias
    pinned = registry.pin_variants("movies", "exp-7")
    assert pinned == {"control": "models:/movies/1", "treatment": "models:/movies/2"}
    registry.promote("movies", "challenger", "champion")
    # the running experiment keeps its versions; an unpinned lookup follows the alias
    assert registry.variant_uri("movies", "control", experiment="exp-7") == "models:/movies/1"
    assert registry.variant_uri("movies", "control") == "models:/movies/2"
    with pytest.raises(RegistryError, match="challenger"):
        registry.variant_uri("movies", "treatment")


def test_cli_register_promote_list_resolve_variants(registry_uri, bundles):
    from tastemaker.cli.registry import registry as group

    runner = CliRunner()

    def run(*args, code=0):
        result = runner.invoke(group, list(args), catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result.output

    out = json.loads(run("register", "--model-dir", str(bundles["mf"]), "--name", "movies", "--metric", "rmse=0.91",
                         "--json"))
    assert out["uri"] == "models:/movies/1" and out["tags"]["tastemaker.model"] == "biased_mf"
    assert "models:/movies/2" in run("register", "--model-dir", str(bundles["ease"]), "--name", "movies",
                                     "--alias", "challenger")
    assert "version (none) → 1" in run("promote", "movies", "1")
    assert "version 1 → 2" in run("promote", "movies", "challenger", "--alias", "champion")
    listed = json.loads(run("list", "movies", "--json"))
    assert [(v["version"], v["aliases"]) for v in listed] == [(1, []), (2, ["champion"])]
    assert "@champion → 2" in run("list")
    resolved = json.loads(run("resolve", "models:/movies@champion", "--json"))
    assert resolved["version"] == 2 and Recommender.load(resolved["path"]).name == "ease"
    assert json.loads(run("variants", "movies", "--variant", "A=1", "--variant", "B=champion")) == {
        "A": "models:/movies/1", "B": "models:/movies/2"}
    bad = runner.invoke(group, ["register", "--model-dir", str(bundles["mf"]), "--name", "x", "--metric", "rmse"])
    assert bad.exit_code == 2 and "KEY=VALUE" in bad.output
