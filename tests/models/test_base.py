"""The shared parts of the scorer contract: top-k selection, reasons, results, registry."""

import numpy as np
import pytest

from tastemaker.errors import ArtifactError, ConfigError, DataError
from tastemaker.models import Reason, Recommender, create_model, get_model_class, model_names
from tastemaker.models.base import top_k
from tastemaker.models.popularity import Popularity
from tastemaker.testing import synthetic_ratings


def test_top_k_orders_and_breaks_ties_by_index():
    scores = np.array([[0.1, 0.9, 0.5, 0.9, -np.inf], [3.0, 3.0, 3.0, 1.0, 2.0]])
    idx, val = top_k(scores, 3)
    assert idx.tolist() == [[1, 3, 2], [0, 1, 2]]
    assert val[0].tolist() == [0.9, 0.9, 0.5]


def test_top_k_pads_when_fewer_finite_scores_than_k():
    idx, val = top_k(np.array([[np.nan, 1.0, -np.inf]]), 3)
    assert idx.tolist() == [[1, -1, -1]]
    assert val[0, 0] == 1.0 and np.isneginf(val[0, 1:]).all()


def test_top_k_matches_full_sort_on_random_data():
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 5, size=(50, 40)).astype(float)  # many ties
    idx, _ = top_k(scores, 7)
    for row, got in zip(scores, idx, strict=True):
        expected = sorted(range(len(row)), key=lambda j: (-row[j], j))[:7]
        assert got.tolist() == expected


def test_reason_texts():
    assert Reason("similar_to_history", anchor=50, anchor_value=5.0).text({50: "Star Wars (1977)"}.get) == \
        "because you rated Star Wars (1977) 5"
    assert Reason("similar_to_history", anchor=50).text(explicit=False) == "because you liked 50"
    assert "popular" in Reason("unknown_user").text()


def test_registry_lists_and_rejects():
    assert {"popularity", "baseline", "biased_mf", "item_knn", "ease"} <= set(model_names())
    assert get_model_class("popularity") is Popularity
    with pytest.raises(ConfigError, match="known models"):
        create_model("nope")


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="unknown key 'dampin'"):
        Popularity(dampin=3)
    with pytest.raises(ConfigError, match="kind"):
        Popularity(kind="median")


def test_fit_rejects_bad_input():
    with pytest.raises(DataError, match="Interactions"):
        Popularity().fit([(1, 2, 3.0)])
    data = synthetic_ratings()
    with pytest.raises(DataError, match="zero interactions"):
        Popularity().fit(data.select(np.zeros(len(data), dtype=bool)))
    with pytest.raises(DataError, match="implicit"):
        create_model("baseline").fit(data.binarize())


def test_load_rejects_missing_and_foreign_bundles(tmp_path):
    with pytest.raises(ArtifactError, match=r"manifest\.json is missing"):
        Recommender.load(tmp_path)
    model = Popularity().fit(synthetic_ratings())
    model.save(tmp_path / "pop")
    with pytest.raises(ArtifactError, match="holds a 'popularity' model"):
        get_model_class("baseline").load(tmp_path / "pop")
    (tmp_path / "pop" / "arrays.npz").unlink()
    with pytest.raises(ArtifactError, match=r"arrays\.npz is missing"):
        Recommender.load(tmp_path / "pop")


def test_titles_and_history_travel_with_the_model(tmp_path):
    data = synthetic_ratings()
    model = Popularity().fit(data)
    item = data.item_vocab.ids[2]
    assert model.title(item) == "Movie 2"
    assert model.title("unknown") == "unknown"
    model.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    assert loaded.title(item) == "Movie 2"
    user = data.user_vocab.ids[0]
    items, values = loaded.history(user)
    assert set(items.tolist()) == set(data.item_vocab.lookup(data.seen[0].indices).tolist())
    assert len(values) == len(items)


def test_recommend_with_per_user_candidates_and_exclusions():
    data = synthetic_ratings()
    model = Popularity().fit(data)
    u0, u1 = data.user_vocab.ids[:2].tolist()
    items = data.item_vocab.ids
    recs = model.recommend([u0, u1], k=3, exclude_seen=False,
                           candidates={u0: items[:4].tolist(), u1: items[4:10].tolist()},
                           exclude={u1: [items[4]]})
    assert set(recs[0].items.tolist()) <= set(items[:4].tolist())
    assert set(recs[1].items.tolist()) <= set(items[5:10].tolist())
