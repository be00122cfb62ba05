"""Tests of `FeatureEncoder`: side features → sparse feature matrices aligned to a vocabulary."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from tastemaker.data import SideFeatures, Vocabulary
from tastemaker.data.encoders import OTHER, TOKEN_PATTERN, FeatureEncoder, infer_columns
from tastemaker.errors import ArtifactError, ConfigError, NotFittedError

GENRES = ("Action", "Comedy", "Drama")


def items_table(ids=(1, 2, 3, 4, 5, 6), *, titles=None, years=None, kinds=None, genres=None) -> SideFeatures:
    titles = titles or ["Star Wars (1977)", "Star Trek (1979)", "Love Story (1970)", "Toy Story (1995)",
                        "The Love Bug (1968)", None]
    years = years or [1977, 1979, 1970, 1995, 1968, pd.NA]
    kinds = kinds or ["film", "film", "film", "film", "short", None]
    frame = pd.DataFrame({"title": titles, "year": pd.array(years, dtype="Int64"), "kind": kinds},
                         index=pd.Index(list(ids), name="item"))
    g = np.zeros((len(ids), 3), dtype=bool) if genres is None else genres
    if genres is None:
        g[[0, 1, 3], 0] = True
        g[[2, 4], 1] = True
        g[[2], 2] = True
    return SideFeatures(frame, {"genres": (GENRES, g)})


def dense_block(enc: FeatureEncoder, X, name: str) -> np.ndarray:
    (start, stop), = [(a, b) for n, _, a, b in enc.blocks if n == name]
    return X[:, start:stop].toarray()


def test_identity_block_comes_first_and_only_for_identity_ids():
    feats = items_table()
    vocab = Vocabulary([1, 2, 3, 4, 5, 6])
    enc = FeatureEncoder({"genres": "multi_hot"}).fit(feats, vocab, identity_ids=[2, 4, 1])
    assert enc.identity_size == 3 and enc.identity_ids.tolist() == [2, 4, 1]
    X = enc.transform(feats, vocab)
    ident = X[:, :3].toarray()
    assert ident[vocab.index(2)].tolist() == [1, 0, 0] and ident[vocab.index(1)].tolist() == [0, 0, 1]
    assert ident[vocab.index(3)].sum() == 0, "ids without an identity column get none"
    assert dense_block(enc, X, "genres")[vocab.index(3)].tolist() == [0, 1, 1], "…but keep their features"
    assert enc.feature_names[:3] == ["identity=2", "identity=4", "identity=1"]
    no_id = FeatureEncoder({"genres": "multi_hot"}, identity=False).fit(feats, vocab)
    assert no_id.identity_size == 0 and no_id.blocks[0][0] == "genres"


def test_multi_hot_aligned_to_vocabulary_order_and_unknown_ids():
    feats = items_table()
    vocab = Vocabulary([6, 3, 1, 99])  # 99 has no features
    enc = FeatureEncoder({"genres": "multi_hot"}, identity=False).fit(feats, vocab)
    X = enc.transform(feats, vocab)
    assert X.toarray().tolist() == [[0, 0, 0], [0, 1, 1], [1, 0, 0], [0, 0, 0]]
    assert enc.feature_names == ["genres=Action", "genres=Comedy", "genres=Drama"]


def test_multi_hot_matches_labels_by_name_when_a_new_table_orders_them_differently():
    feats = items_table()
    vocab = Vocabulary([1, 3])
    enc = FeatureEncoder({"genres": "multi_hot"}, identity=False).fit(feats, vocab)
    g = np.array([[False, True, False, True]])  # Horror is new, Action is set
    new = SideFeatures(pd.DataFrame({"title": ["x"]}, index=pd.Index([7])), {"genres": (("Horror", "Action",
                                                                                           "Comedy", "Zzz"), g)})
    X = enc.transform(new, Vocabulary([7]))
    assert X.toarray().tolist() == [[1, 0, 0]]


def test_categorical_rare_values_unseen_values_and_missing():
    feats = items_table()
    vocab = Vocabulary([1, 2, 3, 4, 5, 6])
    enc = FeatureEncoder({"kind": "categorical"}, identity=False, min_count=2).fit(feats, vocab)
    assert enc.feature_names == ["kind=film", f"kind={OTHER}"], "'short' is seen once: below min_count"
    X = enc.transform(feats, vocab).toarray()
    assert X.tolist() == [[1, 0], [1, 0], [1, 0], [1, 0], [0, 1], [0, 0]], "missing value → all-zero row"
    new = items_table(ids=(10, 11, 12, 13, 14, 15), kinds=["series", "film", "film", "film", "film", "film"])
    X2 = enc.transform(new, Vocabulary([10, 11])).toarray()
    assert X2.tolist() == [[0, 1], [1, 0]], "a value never seen at fit time goes to <other>"


def test_bucket_by_width_makes_decades():
    feats = items_table()
    vocab = Vocabulary([1, 2, 3, 4, 5, 6])
    enc = FeatureEncoder({"year": "bucket:10"}, identity=False, min_count=1).fit(feats, vocab)
    assert enc.feature_names == ["year=1960+", "year=1970+", "year=1990+", f"year={OTHER}"]
    X = enc.transform(feats, vocab).toarray()
    assert X.argmax(axis=1)[:5].tolist() == [1, 1, 1, 2, 0]
    assert X[5].sum() == 0, "a missing year gives no bucket"
    later = items_table(ids=(20, 21, 22, 23, 24, 25), years=[2005, 1961, 1970, 1970, 1970, 1970])
    X2 = enc.transform(later, Vocabulary([20, 21])).toarray()
    assert X2.tolist() == [[0, 0, 0, 1], [1, 0, 0, 0]], "a decade never seen at fit time is <other>"


def test_bucket_by_edges_and_quantiles():
    frame = pd.DataFrame({"age": [7, 18, 24, 25, 40, 56, 70, 33]}, index=pd.Index(range(8)))
    feats = SideFeatures(frame)
    vocab = Vocabulary(range(8))
    enc = FeatureEncoder({"age": "bucket:18,25,56"}, identity=False, min_count=1).fit(feats, vocab)
    assert enc.feature_names == ["age=<18", "age=18-25", "age=25-56", "age=>=56", f"age={OTHER}"]
    X = enc.transform(feats, vocab).toarray()
    assert X.argmax(axis=1).tolist() == [0, 1, 1, 2, 2, 3, 3, 2]
    q = FeatureEncoder({"age": "quantile:2"}, identity=False, min_count=1).fit(feats, vocab)
    assert q.to_state()["blocks"][0]["edges"] == [float(np.median(frame["age"]))]
    Xq = q.transform(feats, vocab).toarray()
    assert Xq[:, 0].sum() == 4 and Xq[:, 1].sum() == 4, "two equal-count buckets"


def test_zip_prefix():
    frame = pd.DataFrame({"zip": ["94043", "94110", "10001", "T8H1N", None]}, index=pd.Index(list("abcde")))
    feats = SideFeatures(frame)
    vocab = Vocabulary(list("abcde"))
    enc = FeatureEncoder({"zip": "prefix:1"}, identity=False, min_count=2).fit(feats, vocab)
    assert enc.feature_names == ["zip=9", f"zip={OTHER}"]
    assert enc.transform(feats, vocab).toarray().tolist() == [[1, 0], [1, 0], [0, 1], [0, 1], [0, 0]]


def test_cross_of_categorical_and_bucket_blocks():
    frame = pd.DataFrame({"gender": ["F", "F", "M", "M", "M", None], "age": [20, 22, 21, 40, 41, 30]},
                         index=pd.Index(range(6)))
    feats = SideFeatures(frame)
    vocab = Vocabulary(range(6))
    cols = {"gender": "categorical", "age": "bucket:30,60", "gender*age": "cross"}
    enc = FeatureEncoder(cols, identity=False, min_count=2).fit(feats, vocab)
    cross = [n for n in enc.feature_names if n.startswith("gender*age")]
    assert cross == ["gender*age=F&<30", "gender*age=M&30-60", f"gender*age={OTHER}"], "M&<30 is seen once"
    enc = FeatureEncoder(cols, identity=False, min_count=1).fit(feats, vocab)
    X = dense_block(enc, enc.transform(feats, vocab), "gender*age")
    names = [n.split("=", 1)[1] for n in enc.feature_names if n.startswith("gender*age")]
    assert [names[j] for j in X.argmax(axis=1)[:5]] == ["F&<30", "F&<30", "M&<30", "M&30-60", "M&30-60"]
    assert X[5].sum() == 0, "a missing part gives no cross"
    again = FeatureEncoder.from_state(json.loads(json.dumps(enc.to_state())))
    new = SideFeatures(pd.DataFrame({"gender": ["F"], "age": [70]}, index=pd.Index([9])))
    got = dense_block(again, again.transform(new, Vocabulary([9])), "gender*age")
    assert names[got.argmax()] == OTHER, "a combination never seen at fit time goes to <other>"
    with pytest.raises(ConfigError, match="cross feature 'gender\\*zip'"):
        FeatureEncoder({"gender": "categorical", "gender*zip": "cross"}).fit(feats, vocab)


def test_text_is_tfidf_of_words_like_scikit_learn_and_round_trips_through_json():
    feats = items_table()
    vocab = Vocabulary([1, 2, 3, 4, 5, 6])
    enc = FeatureEncoder({"title": "text"}, identity=False, text_min_df=2).fit(feats, vocab)
    titles = [t for t in feats.frame["title"].tolist() if isinstance(t, str)]
    ref = TfidfVectorizer(token_pattern=TOKEN_PATTERN, stop_words="english", min_df=2)
    want = ref.fit_transform(titles).toarray()
    assert enc.feature_names == [f"title:{w}" for w in ref.get_feature_names_out()] == [
        "title:love", "title:star", "title:story"], "words in ≥ 2 titles, no years, no stop words"
    X = enc.transform(feats, vocab).toarray()
    np.testing.assert_allclose(X[:5], want, rtol=1e-12)
    assert X[5].sum() == 0, "a missing title gives an empty row"
    state = json.loads(json.dumps(enc.to_state()))
    assert state["blocks"][0]["idf"] == ref.idf_.tolist()
    new = items_table(ids=(30, 31, 32, 33, 34, 35), titles=["Love Star Love", "Nothing here", "a", "b", "c", "d"])
    rebuilt = FeatureEncoder.from_state(state)
    got = rebuilt.transform(new, Vocabulary([30, 31])).toarray()
    np.testing.assert_allclose(got, ref.transform(["Love Star Love", "Nothing here"]).toarray(), rtol=1e-12)


def test_text_block_is_empty_when_no_word_is_frequent_enough():
    feats = items_table(titles=["Alpha", "Beta", "Gamma", "Delta", "Epsilon", "Zeta"])
    enc = FeatureEncoder({"title": "text"}, identity=False).fit(feats, Vocabulary([1, 2, 3, 4, 5, 6]))
    assert enc.n_features == 0
    assert enc.transform(feats, Vocabulary([1, 2])).shape == (2, 0)


def test_state_round_trip_gives_the_same_matrix_for_known_and_new_ids():
    feats = items_table()
    vocab = Vocabulary([1, 2, 3, 4, 5, 6])
    enc = FeatureEncoder(min_count=1, normalize="l2").fit(feats, vocab, identity_ids=[1, 2, 3])
    text = json.dumps(enc.to_state())
    again = FeatureEncoder.from_state(json.loads(text))
    wider = Vocabulary([6, 5, 4, 3, 2, 1, 77])
    a, b = enc.transform(feats, wider), again.transform(feats, wider)
    assert (a != b).nnz == 0 and a.shape == b.shape
    assert again.feature_names == enc.feature_names and again.blocks == enc.blocks
    assert a[6].nnz == 0, "an id without features or identity column encodes as an empty row"


@pytest.mark.parametrize("norm", ["l1", "l2"])
def test_normalize_rows(norm):
    feats = items_table()
    vocab = Vocabulary([1, 2, 3, 4, 5, 6])
    X = FeatureEncoder(normalize=norm, min_count=1).fit_transform(feats, vocab)
    sums = np.asarray(abs(X).sum(axis=1)).ravel() if norm == "l1" else np.sqrt(
        np.asarray(X.multiply(X).sum(axis=1)).ravel())
    np.testing.assert_allclose(sums, 1.0)


def test_infer_columns_on_a_movielens_like_table():
    n = 200
    items = SideFeatures(pd.DataFrame({
        "title": [f"Movie {i}" for i in range(n)], "year": pd.array([1950 + i % 50 for i in range(n)], dtype="Int64"),
        "release_date": pd.to_datetime(["1995-01-01"] * n), "imdb_url": [f"http://x/{i}" for i in range(n)],
    }, index=pd.Index(range(n))), {"genres": (GENRES, np.zeros((n, 3), dtype=bool))})
    assert infer_columns(items) == {"genres": "multi_hot", "title": "text", "year": "quantile:20"}
    occ = ("artist", "doctor")
    users = SideFeatures(pd.DataFrame({
        "age": [20 + i % 40 for i in range(n)], "gender": ["M", "F"] * (n // 2), "occupation": ["artist"] * n,
        "zip": [f"{10000 + i}" for i in range(n)], "score": np.linspace(0, 1, n)}, index=pd.Index(range(n))),
        {"occupation": (occ, np.zeros((n, 2), dtype=bool))})
    assert infer_columns(users) == {"occupation": "multi_hot", "age": "bucket:18,25,35,45,50,56",
                                    "gender": "categorical", "zip": "prefix:2", "score": "quantile:5"}
    assert infer_columns(None) == {}


def test_movielens_100k_items_and_users(ml100k):
    data = ml100k.interactions
    items = FeatureEncoder()
    X = items.fit_transform(data.item_features, data.item_vocab)
    assert X.shape == (data.n_items, items.n_features) and items.identity_size == data.n_items
    toy = data.item_vocab.index(1)
    names = {items.feature_names[j] for j in X[toy].indices}
    assert {"identity=1", "genres=Animation", "genres=Comedy", "year=1995-1996", "title:story"} <= names
    users = FeatureEncoder(identity=False)
    U = users.fit_transform(data.user_features, data.user_vocab)
    assert U.shape[0] == data.n_users and np.all(np.diff(U.indptr) == 4), "occupation, age, gender, zip"


def test_errors_name_the_problem():
    feats = items_table()
    vocab = Vocabulary([1, 2])
    with pytest.raises(ConfigError, match="unknown spec"):
        FeatureEncoder({"year": "decades"})
    with pytest.raises(ConfigError, match="edges must increase"):
        FeatureEncoder({"year": "bucket:10,5"})
    with pytest.raises(ConfigError, match="no feature column 'rating'"):
        FeatureEncoder({"rating": "categorical"}).fit(feats, vocab)
    with pytest.raises(ConfigError, match="no multi-hot feature 'tags'"):
        FeatureEncoder({"tags": "multi_hot"}).fit(feats, vocab)
    with pytest.raises(ConfigError, match="no side features"):
        FeatureEncoder({"genres": "multi_hot"}).fit(None, vocab)
    with pytest.raises(ConfigError, match="normalize"):
        FeatureEncoder(normalize="max")
    with pytest.raises(NotFittedError):
        FeatureEncoder().transform(feats, vocab)
    with pytest.raises(ArtifactError, match="lacks"):
        FeatureEncoder.from_state({"version": 1, "columns": {}})
    state = FeatureEncoder().fit(feats, vocab).to_state()
    with pytest.raises(ArtifactError, match="version"):
        FeatureEncoder.from_state({**state, "version": 99})


def test_without_side_features_only_identity():
    vocab = Vocabulary(["a", "b", "c"])
    enc = FeatureEncoder().fit(None, vocab, identity_ids=["c", "a"])
    X = enc.transform(None, Vocabulary(["a", "b", "c"]))
    assert X.toarray().tolist() == [[0, 1], [0, 0], [1, 0]]
