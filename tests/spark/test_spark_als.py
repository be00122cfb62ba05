"""SparkALS: what Spark is given (values, confidences, regParam), what comes back (factors that solve
Spark's normal equations), and that the exported model is an ordinary tastemaker model."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from tastemaker.data import load_interactions
from tastemaker.errors import ConfigError, DataError, DataWarning
from tastemaker.evaluation.protocols import topn_scores
from tastemaker.models import Recommender
from tastemaker.models.implicit_mf import ALS
from tastemaker.models.nmf import NMF
from tastemaker.models.weighting import interaction_matrix
from tastemaker.spark.als import (
    DataSource,
    SparkALS,
    SparkALSConfig,
    _frame_of,
    _spark_values,
    _training_values,
    read_interactions,
    spark_reg_param,
)
from tastemaker.testing.synthetic import synthetic_ratings

IMPLICIT = {"factors": 5, "iterations": 4, "alpha": 2.0, "weighting": "log", "threshold": 2.0, "blocks": 2}
EXPLICIT = {"feedback": "explicit", "factors": 5, "iterations": 4, "reg_param": 0.05, "blocks": 2}


@pytest.fixture(scope="module")
def ratings():
    return synthetic_ratings(n_users=40, n_items=30, per_user=10, extra_users=2, extra_items=2)


@pytest.fixture(scope="module")
def implicit_fit(spark, ratings):
    trainer = SparkALS(IMPLICIT)
    return trainer.fit(ratings, spark=spark), trainer.report


@pytest.fixture(scope="module")
def explicit_fit(spark, ratings):
    trainer = SparkALS(EXPLICIT)
    return trainer.fit(ratings, spark=spark), trainer.report


def solve_users(values, item_factors, reg_param, *, alpha=None):
    """Each user's least-squares solution given the item factors, as Spark's ALS computes it: λ scaled
    by the user's count; implicit (alpha given): c = 1 + alpha·r over all items (Hu et al.)."""
    y = item_factors.astype(np.float64)
    k = y.shape[1]
    out = np.zeros((values.shape[0], k))
    for u in range(values.shape[0]):
        row = values[u]
        idx, r = row.indices, row.data.astype(np.float64)
        if len(idx) == 0:
            continue
        yi = y[idx]
        if alpha is None:
            a = yi.T @ yi + reg_param * len(idx) * np.eye(k)
            b = yi.T @ r
        else:
            c1 = alpha * r
            a = y.T @ y + (yi.T * c1) @ yi + reg_param * len(idx) * np.eye(k)
            b = ((1.0 + c1)[:, None] * yi).sum(axis=0)
        out[u] = np.linalg.solve(a, b)
    return out


def test_implicit_user_factors_solve_sparks_normal_equations_on_our_confidences(implicit_fit, ratings):
    model, report = implicit_fit
    x = interaction_matrix(ratings.csr(), threshold=2.0, weighting="log")
    assert report["reg_param"] == pytest.approx(model.config.regularization / rms_activity(x))
    expected = solve_users(x, model.item_factors, report["reg_param"], alpha=2.0)
    np.testing.assert_allclose(model.user_factors, expected, rtol=2e-3, atol=2e-4)


def test_explicit_user_factors_solve_sparks_normal_equations_on_the_ratings(explicit_fit, ratings):
    model, report = explicit_fit
    assert report["reg_param"] == 0.05
    expected = solve_users(ratings.csr(), model.item_factors, 0.05)
    np.testing.assert_allclose(model.user_factors, expected, rtol=2e-3, atol=2e-4)


def test_implicit_export_is_an_als_model_that_round_trips(implicit_fit, ratings, tmp_path):
    model, report = implicit_fit
    assert type(model) is ALS
    assert (model.config.factors, model.config.alpha, model.config.weighting, model.config.threshold,
            model.config.iterations) == (5, 2.0, "log", 2.0, 4)
    assert model.data_info["fingerprint"] == ratings.fingerprint()
    assert report["interactions"] == len(ratings) and report["master"].startswith("local")
    model.save(tmp_path / "m")
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert manifest["model"] == "als" and manifest["class"] == "tastemaker.models.implicit_mf.ALS"
    loaded = Recommender.load(tmp_path / "m")
    users = ratings.user_vocab.ids[:8]
    for a, b in zip(model.recommend(users, k=5), loaded.recommend(users, k=5), strict=True):
        assert a.items.tolist() == b.items.tolist()
        np.testing.assert_allclose(a.scores, b.scores)
    assert loaded.recommend(["nobody"], k=3)[0].fallback == "unknown_user"
    cold_user = ratings.user_vocab.ids[-1]  # an extra user without interactions
    assert loaded.recommend([cold_user], k=3)[0].fallback == "no_history"
    means, *_ = topn_scores(loaded, ratings, ratings.select(np.arange(0, len(ratings), 7)), 5, None)
    assert 0.0 <= means["ndcg@5"] <= 1.0


def test_explicit_export_predicts_dot_products_with_rating_fallbacks(explicit_fit, ratings):
    model, _ = explicit_fit
    assert type(model) is NMF and model.predicts_ratings and not model.config.biased
    u, i = ratings.user_idx[:20], ratings.item_idx[:20]
    raw = np.einsum("ij,ij->i", model.user_factors[u], model.item_factors[i])
    np.testing.assert_allclose(model.predict_indices(u, i), np.clip(raw, 1.0, 5.0))
    item = ratings.item_vocab.ids[0]
    pred = model.predict(["nobody"], [item])
    assert pred.fallback[0]
    assert pred.values[0] == pytest.approx(np.clip(ratings.values.mean() + model.item_bias[0], 1, 5))


def test_explicit_feedback_needs_ratings(spark, ratings):
    with pytest.raises(DataError, match="needs ratings"):
        SparkALS(EXPLICIT).fit(ratings.binarize(), spark=spark)


@pytest.mark.parametrize(("threshold", "weighting"), [(None, "binary"), (4.0, "binary"), (None, "value"),
                                                      (3.0, "log")])
def test_spark_gets_exactly_the_single_node_training_matrix(spark, ratings, threshold, weighting):
    cfg = SparkALSConfig(threshold=threshold, weighting=weighting)
    _, mean = _training_values(ratings, cfg)

    frame = _frame_of(spark, ratings)
    got = _spark_values(frame, cfg, mean).toArrow()
    frame.unpersist()
    expected = interaction_matrix(ratings.csr(), threshold=threshold, weighting=weighting).tocoo()
    order = np.lexsort((got.column("i").to_numpy(), got.column("u").to_numpy()))
    np.testing.assert_array_equal(got.column("u").to_numpy()[order], expected.row)
    np.testing.assert_array_equal(got.column("i").to_numpy()[order], expected.col)
    np.testing.assert_allclose(got.column("r").to_numpy()[order], expected.data, rtol=1e-6)


def rms_activity(x) -> float:
    counts = np.diff(x.indptr)
    return float(np.sqrt(np.mean(counts[counts > 0].astype(float) ** 2)))


def test_reg_param_divides_lambda_by_the_rms_count_per_user(ratings):
    x = ratings.csr()
    assert spark_reg_param(30.0, ratings) == pytest.approx(30.0 / rms_activity(x))
    kept = interaction_matrix(x, threshold=4.0)
    assert rms_activity(kept) < rms_activity(x)
    assert spark_reg_param(30.0, ratings, SparkALSConfig(threshold=4.0)) == pytest.approx(30.0 / rms_activity(kept))


def test_config_errors_name_the_problem():
    with pytest.raises(ConfigError, match="implicit feedback only"):
        SparkALSConfig.parse({"feedback": "explicit", "alpha": 2.0})
    with pytest.raises(ConfigError, match="not both"):
        SparkALSConfig.parse({"regularization": 1.0, "reg_param": 0.1})
    with pytest.raises(ConfigError, match="unknown key 'rank'"):
        SparkALS({"rank": 10})


# --- reading files --------------------------------------------------------------------------------

def write_csv(frame: pd.DataFrame, path) -> str:
    frame.to_csv(path, index=False)
    return str(path)


def test_csv_gives_the_same_interactions_as_load_interactions(spark, ratings, tmp_path):
    frame = ratings.to_frame().rename(columns={"value": "stars"})
    frame["user"] = "u" + frame["user"].astype(str)
    path = write_csv(frame.sample(frac=1.0, random_state=1), tmp_path / "r.csv")
    data, indexed = read_interactions(spark, DataSource(path=path, value_col="stars"))
    indexed.unpersist()
    ref = load_interactions(path, value="stars")
    assert data.explicit and data.rating_scale == (1.0, 5.0)
    assert data.user_vocab == ref.user_vocab and data.item_vocab == ref.item_vocab
    assert not data.user_vocab.is_integer and data.item_vocab.is_integer
    assert (data.csr() != ref.csr()).nnz == 0
    again, frame2 = read_interactions(spark, DataSource(path=path, value_col="stars"))
    frame2.unpersist()
    assert again.fingerprint() == data.fingerprint()  # rows come back sorted, whatever Spark's order


def test_integer_ids_become_ints_but_zero_padded_ids_stay_text(spark, tmp_path):
    ints = write_csv(pd.DataFrame({"user": ["1", "2", "10"], "item": ["5", "5", "6"]}), tmp_path / "a.csv")
    data, frame = read_interactions(spark, DataSource(path=ints))
    frame.unpersist()
    assert data.user_vocab.ids.tolist() == [1, 2, 10] and not data.explicit
    padded = write_csv(pd.DataFrame({"user": ["007", "7"], "item": ["5", "5"]}), tmp_path / "b.csv")
    data, frame = read_interactions(spark, DataSource(path=padded))
    frame.unpersist()
    assert data.user_vocab.ids.tolist() == ["007", "7"]


def test_parquet_folder_and_dataframe_sources_train(spark, ratings, tmp_path):
    folder = tmp_path / "events"
    folder.mkdir()
    frame = ratings.to_frame()[["user", "item", "value"]]
    frame.iloc[:300].to_parquet(folder / "part-0.parquet")
    frame.iloc[300:].to_parquet(folder / "part-1.parquet")
    model = SparkALS(IMPLICIT).fit(DataSource(path=str(folder), value_col="value"), spark=spark)
    assert model.data_info["interactions"] == len(ratings) and model.data_info["name"] == "events"
    assert set(model.item_vocab.ids.tolist()) == set(np.unique(frame["item"]).tolist())
    df = spark.read.parquet(str(folder))
    data, indexed = read_interactions(spark, df)
    indexed.unpersist()
    assert (data.csr() != model.train_matrix).nnz == 0


EVENTS = pd.DataFrame({"user": ["a", "a", "a", "b"], "item": ["x", "x", "y", "x"], "rating": [3.0, 5.0, 4.0, 2.0],
                       "ts": [1, 2, 1, 1]})


@pytest.mark.parametrize(("policy", "value"), [("last", 5.0), ("first", 3.0), ("mean", 4.0), ("sum", 8.0)])
def test_duplicate_policies(spark, tmp_path, policy, value):
    path = write_csv(EVENTS, tmp_path / "e.csv")
    with pytest.warns(DataWarning, match="1 duplicate"):
        data, frame = read_interactions(spark, DataSource(path=path, value_col="rating", time_col="ts",
                                                          duplicates=policy))
    frame.unpersist()
    assert len(data) == 3
    assert data.csr()[data.user_vocab.index("a"), data.item_vocab.index("x")] == value


def test_duplicates_default_and_keep(spark, tmp_path):
    path = write_csv(EVENTS, tmp_path / "e.csv")
    assert DataSource(path=path, value_col="rating").resolved_duplicates() == "mean"
    assert DataSource(path=path).resolved_duplicates() == "sum"
    assert DataSource(path=path, time_col="ts").resolved_duplicates() == "last"
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        data, frame = read_interactions(spark, DataSource(path=path, value_col="rating", duplicates="keep"))
    train = frame.toArrow()
    frame.unpersist()
    assert len(data) == 4 and train.num_rows == 3  # Spark trains on one entry per pair, summed like csr()
    assert sorted(train.column("v").to_pylist()) == [2.0, 4.0, 8.0]


def test_duplicate_errors(spark, tmp_path):
    path = write_csv(EVENTS, tmp_path / "e.csv")
    with pytest.raises(DataError, match="user 'a', item 'x' occurs 2 times"):
        read_interactions(spark, DataSource(path=path, value_col="rating", duplicates="error"))
    with pytest.raises(ConfigError, match="needs a time column"):
        read_interactions(spark, DataSource(path=path, value_col="rating", duplicates="last"))


def test_bad_input_names_the_column_and_the_value(spark, tmp_path):
    path = write_csv(EVENTS, tmp_path / "e.csv")
    with pytest.raises(DataError, match=r"missing column\(s\) \['uid'\].*'user', 'item', 'rating', 'ts'"):
        read_interactions(spark, DataSource(path=path, user_col="uid"))
    bad = EVENTS.astype({"rating": str})
    bad.loc[2, "rating"] = "four"
    path = write_csv(bad, tmp_path / "bad.csv")
    with pytest.raises(DataError, match=r"column 'rating'.*1 rows have .*non-numeric.*'four' for user 'a', item 'y'"):
        read_interactions(spark, DataSource(path=path, value_col="rating"))
    empty_id = write_csv(pd.DataFrame({"user": ["a", None], "item": ["x", "y"]}), tmp_path / "n.csv")
    with pytest.raises(DataError, match="1 rows have no user id"):
        read_interactions(spark, DataSource(path=empty_id))
    with pytest.raises(DataError, match="Spark cannot read it as parquet"):
        read_interactions(spark, DataSource(path=str(tmp_path / "missing.parquet")))
