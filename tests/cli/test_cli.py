"""The command line, driven through click's runner against the real MovieLens 100K."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from tastemaker.cli.main import cli


@pytest.fixture
def run(data_root, monkeypatch):
    monkeypatch.setenv("TASTEMAKER_DATA_DIR", str(data_root))
    runner = CliRunner()

    def invoke(*args: str, code: int = 0) -> str:
        result = runner.invoke(cli, ["--quiet", *args], catch_exceptions=False)
        output = result.output + (result.stderr if result.stderr_bytes else "")
        assert result.exit_code == code, output
        return output

    return invoke


def test_data_info_table_and_json(run):
    out = run("data", "info", "--dataset", "ml-100k")
    assert "100,000" in out and "943" in out and "1,682" in out and "█" in out
    info = json.loads(run("data", "info", "--dataset", "ml-100k", "--json"))
    assert info["rating_histogram"] == {"1": 6110, "2": 11370, "3": 27145, "4": 34174, "5": 21201}


def test_models_lists_settings(run):
    out = run("models")
    assert "ease" in out and "l2=" in out and "biased_mf" in out


def test_train_then_recommend_with_titles_scores_and_reasons(run, tmp_path):
    out = run("train", "--dataset", "ml-100k", "--model", "item_knn", "--split", "u1", "--out", str(tmp_path / "m"))
    assert "trained item_knn" in out
    assert (tmp_path / "m" / "manifest.json").is_file()
    out = run("recommend", "--model-dir", str(tmp_path / "m"), "--user", "196", "-k", "10")
    assert "top-10 for user 196" in out and "because you rated" in out
    recs = json.loads(run("recommend", "--model-dir", str(tmp_path / "m"), "--user", "196", "--user", "99999",
                          "-k", "5", "--json"))
    assert [len(r["items"]) for r in recs] == [5, 5]
    assert recs[0]["fallback"] is None and recs[1]["fallback"] == "unknown_user"
    assert all(item["title"] and item["reason"] for item in recs[0]["items"])


def test_train_reads_a_toml_config_and_rejects_bad_keys(run, tmp_path):
    good = tmp_path / "ease.toml"
    good.write_text('[model]\nname = "ease"\n\n[model.params]\nl2 = 123.0\n')
    run("train", "--dataset", "ml-100k", "--config", str(good), "--out", str(tmp_path / "e"))
    manifest = json.loads((tmp_path / "e" / "manifest.json").read_text())
    assert manifest["model"] == "ease" and manifest["config"]["l2"] == 123.0
    bad = tmp_path / "bad.toml"
    bad.write_text('[model]\nname = "ease"\n\n[model.params]\nlambda = 5\n')
    out = run("train", "--dataset", "ml-100k", "--config", str(bad), "--out", str(tmp_path / "x"), code=2)
    assert "unknown key 'lambda'" in out and "l2" in out


def test_user_errors_are_one_line_messages(run, tmp_path):
    out = run("train", "--dataset", "ml-100k", "--model", "nope", "--out", str(tmp_path / "n"), code=2)
    assert "unknown model 'nope'" in out and "Traceback" not in out
    out = run("recommend", "--model-dir", str(tmp_path / "missing"), "--user", "1", code=2)
    assert "manifest.json is missing" in out
    out = run("evaluate", "--dataset", "ml-100k", "--protocol", "rating-folds", "--models", "ease", code=2)
    assert "does not predict ratings" in out


def test_evaluate_topn_writes_json_with_cis_and_a_paired_test(run, tmp_path):
    path = tmp_path / "eval.json"
    out = run("evaluate", "--dataset", "ml-100k", "--protocol", "topn-u1", "--models", "ease,popularity",
              "--output", str(path))
    assert "95% bootstrap CI" in out and "paired over users, ease − popularity" in out
    doc = json.loads(path.read_text())
    rows = {r["model"]: r for r in doc["rows"]}
    assert rows["ease"]["metrics"]["ndcg@10"] > rows["popularity"]["metrics"]["ndcg@10"] + 0.1
    low, high = rows["ease"]["ci95"]["ndcg@10"]
    assert low < rows["ease"]["metrics"]["ndcg@10"] < high


def test_evaluate_any_csv_through_the_generic_loader(run, tmp_path, ml100k):
    frame = ml100k.interactions.to_frame().rename(columns={"user": "uid", "item": "iid", "value": "stars"})
    path = tmp_path / "ratings.csv"
    frame.iloc[:20000].to_csv(path, index=False)
    out_json = tmp_path / "r.json"
    run("evaluate", "--data", str(path), "--user-col", "uid", "--item-col", "iid", "--value-col", "stars",
        "--time-col", "timestamp", "--protocol", "rating-holdout", "--models", "baseline,biased_mf",
        "--output", str(out_json))
    rows = json.loads(out_json.read_text())["rows"]
    assert [r["model"] for r in rows] == ["baseline", "biased_mf"]
    assert all(0.7 < r["metrics"]["rmse"] < 1.2 for r in rows)


def test_bench_topn_with_peers_json_schema(run, tmp_path):
    path = tmp_path / "bench.json"
    out = run("bench", "ml100k-topn", "--peers", "--models", "popularity,ease", "--output", str(path))
    assert "ours vs peer" in out
    doc = json.loads(path.read_text())
    assert doc["suite"] == "ml100k-topn" and doc["protocol"] == "topn-u1" and doc["machine"]["cores"]
    systems = {(r["system"], r["model"]) for r in doc["rows"]}
    assert {("tastemaker", "ease"), ("implicit", "ALS"), ("implicit", "BPR")} <= systems
    for row in doc["rows"]:
        assert set(row) >= {"system", "model", "params", "metrics", "fit_seconds", "predict_seconds"}
        assert {"ndcg@10", "precision@10", "recall@10", "map@10", "hr@10", "coverage@10"} <= set(row["metrics"])
        assert all(k == k.lower() for k in row["metrics"])


def test_track_logs_params_and_metrics_to_mlflow(run, tmp_path, monkeypatch):
    import mlflow
    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    run("evaluate", "--dataset", "ml-100k", "--protocol", "topn-u1", "--models", "ease", "--track")
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["tastemaker"], output_format="list")
    assert len(runs) == 1
    data = runs[0].data
    assert data.params["model"] == "ease" and data.params["protocol"] == "topn-u1"
    assert data.metrics["ndcg_at_10"] > 0.4
    assert data.tags["command"] == "evaluate" and len(data.tags["data_fingerprint"]) == 64


def test_demo_is_the_main_job(run):
    out = run("demo")
    assert "MovieLens 100K" in out and "ndcg@10" in out
    assert "top-10 for user 196" in out and "because you rated" in out


def test_bench_serve_latency_small_run_prints_percentiles(run, tmp_path):
    path = tmp_path / "serve.json"
    out = run("bench", "serve-latency", "--skus", "5000", "--users", "500", "--requests", "300", "--output", str(path))
    assert "p99_ms" in out
    doc = json.loads(path.read_text())
    row = doc["rows"][0]
    assert row["protocol"] == "in-process" and row["metrics"]["errors"] == 0
    assert 0 < row["metrics"]["p50_ms"] <= row["metrics"]["p95_ms"] <= row["metrics"]["p99_ms"]


def test_serve_rejects_bad_settings_with_a_message(run, tmp_path):
    bad = tmp_path / "serve.toml"
    bad.write_text("[serve]\nprot = 8000\n")
    out = run("serve", "--config", str(bad), code=2)
    assert "prot" in out
