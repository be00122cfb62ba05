"""The content path: TF-IDF and MiniLM encoders, item texts, and the growing ContentIndex.

MiniLM encodes a few hundred texts at most here; its model loads once per process (cached).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from tastemaker.artifacts import read_bundle, write_bundle
from tastemaker.content import (
    ContentIndex,
    MiniLMEncoder,
    TfidfEncoder,
    decay_weights,
    encoder_from_state,
    item_texts,
    make_encoder,
)
from tastemaker.data.features import SideFeatures
from tastemaker.data.vocabulary import Vocabulary
from tastemaker.errors import ArtifactError, ConfigError, DataError, NotFittedError

CORPUS = [
    "Star Wars (1977). Action, Adventure, Sci-Fi",
    "Alien (1979). Horror, Sci-Fi",
    "Sleepless in Seattle (1993). Comedy, Romance",
    "Toy Story (1995). Animation, Children's, Comedy",
    "Star Trek: First Contact (1996). Action, Adventure, Sci-Fi",
    "Casablanca (1942). Drama, Romance, War",
]


def _norms(rows) -> np.ndarray:
    dense = rows.toarray() if sp.issparse(rows) else rows
    return np.linalg.norm(dense, axis=1)


@pytest.fixture(scope="module")
def minilm() -> MiniLMEncoder:
    """One MiniLM encoder for the module; the model itself is cached per process."""
    enc = MiniLMEncoder(batch_size=32)
    enc.encode(["warm up"])
    return enc


# --- TF-IDF ---------------------------------------------------------------------------------------

def test_tfidf_rows_are_unit_or_zero_and_match_sklearn():
    from sklearn.feature_extraction.text import TfidfVectorizer

    enc = TfidfEncoder().fit(CORPUS)
    rows = enc.encode([*CORPUS, "", "zzzz qqqq"])
    assert sp.issparse(rows) and rows.dtype == np.float32
    np.testing.assert_allclose(_norms(rows[:6]), 1.0, rtol=1e-5)
    assert rows[6:].nnz == 0, "empty texts and texts of unseen words must encode to zero rows"
    ref = TfidfVectorizer(sublinear_tf=True, strip_accents="unicode").fit(CORPUS)
    assert enc.terms.tolist() == ref.get_feature_names_out().tolist()
    np.testing.assert_allclose(rows[:6].toarray(), ref.transform(CORPUS).toarray(), rtol=1e-5, atol=1e-7)


def test_tfidf_state_round_trips_through_a_bundle_and_encodes_new_texts_identically(tmp_path):
    enc = TfidfEncoder(ngrams=2, min_df=1, stop_words="english", sublinear_tf=False).fit(CORPUS)
    arrays, meta = enc.get_state()
    assert all(a.dtype.kind != "O" for a in arrays.values())
    write_bundle(tmp_path / "enc", {"state": meta}, arrays)  # real npz + JSON, loaded without pickle
    manifest, loaded_arrays = read_bundle(tmp_path / "enc")
    back = encoder_from_state(loaded_arrays, manifest["state"])
    assert isinstance(back, TfidfEncoder) and back.settings == enc.settings and back.dim == enc.dim
    new_texts = ["Star Wars: Return of the Jedi (1983). Sci-Fi, War", "a romance in Seattle", "", "Café Amélie"]
    a, b = enc.encode(new_texts), back.encode(new_texts)
    assert (a != b).nnz == 0, "a loaded TF-IDF encoder must encode new texts exactly as the original"
    assert "star wars" in set(back.terms.tolist()), "2-grams must survive the round trip"
    assert "in" not in set(back.terms.tolist()), "stop words must stay dropped"


def test_tfidf_errors_say_what_to_do():
    with pytest.raises(NotFittedError):
        TfidfEncoder().encode(["x"])
    with pytest.raises(ConfigError, match="empty"):
        TfidfEncoder().fit(["", "  "])
    with pytest.raises(ConfigError, match="min_df"):
        TfidfEncoder(min_df=5).fit(["one text", "another text"])
    with pytest.raises(TypeError, match="wrap it in a list"):
        TfidfEncoder().fit("one string")
    with pytest.raises(ConfigError, match="unknown text encoder"):
        make_encoder("word2vec")
    with pytest.raises(ArtifactError, match="kind"):
        encoder_from_state({}, {"kind": "bert"})


# --- MiniLM ---------------------------------------------------------------------------------------

def test_minilm_gives_384d_unit_vectors_deterministically(minilm):
    a = minilm.encode([*CORPUS, ""])
    b = minilm.encode([*CORPUS, ""])
    assert a.shape == (7, 384) and a.dtype == np.float32
    np.testing.assert_allclose(_norms(a[:6]), 1.0, rtol=1e-5)
    assert not a[6].any(), "an empty text must encode to a zero row"
    np.testing.assert_array_equal(a, b)
    back = encoder_from_state(*minilm.get_state())
    np.testing.assert_allclose(back.encode(CORPUS[:2]), a[:2], atol=1e-6)


def test_minilm_puts_semantically_close_texts_closer(minilm):
    # two sci-fi titles against a romance, in MovieLens form
    v = minilm.encode(["Star Wars (1977). Sci-Fi, Adventure", "Alien (1979). Sci-Fi, Horror",
                       "Sleepless in Seattle (1993). Romance, Comedy"])
    assert v[0] @ v[1] > v[0] @ v[2] + 0.05
    assert v[1] @ v[0] > v[1] @ v[2] + 0.05
    # no words in common: TF-IDF sees nothing, the embedding still does
    texts = ["astronauts explore a distant galaxy", "a spaceship crew fights aliens",
             "two strangers fall in love in Paris"]
    e = minilm.encode(texts)
    assert e[0] @ e[1] > e[0] @ e[2] + 0.1
    t = TfidfEncoder().fit(texts).encode(texts)
    assert (t[0] @ t[1].T).toarray()[0, 0] == 0.0


# --- item texts -----------------------------------------------------------------------------------

def _features() -> SideFeatures:
    frame = pd.DataFrame({"title": ["Toy Story (1995)", "GoldenEye (1995)", None],
                          "year": pd.array([1995, 1995, pd.NA], dtype="Int64"),
                          "price": [1.0, 2.5, np.nan]}, index=pd.Index([1, 2, 3], name="item"))
    genres = ("Animation", "Action", "Comedy")
    return SideFeatures(frame, {"genres": (genres, np.array([[1, 0, 1], [0, 1, 0], [0, 0, 0]], dtype=bool))})


def test_item_texts_join_fields_and_skip_what_is_missing():
    vocab = Vocabulary([2, 1, 3, 99])
    texts = item_texts(_features(), vocab, ["title", "genres", "year", "price", "not-a-field"])
    assert texts == ["GoldenEye (1995). Action. 1995. 2.5", "Toy Story (1995). Animation, Comedy. 1995. 1", "", ""]
    with pytest.raises(DataError, match="choose among"):
        item_texts(_features(), vocab, ["description"])
    with pytest.raises(DataError, match="no item features"):
        item_texts(None, vocab, ["title"])


# --- ContentIndex ---------------------------------------------------------------------------------

def test_a_just_added_item_is_found_before_any_interaction():
    enc = TfidfEncoder().fit(CORPUS)
    index = ContentIndex(enc)
    index.add([str(i) for i in range(len(CORPUS))], texts=CORPUS)
    # published now: no interaction exists, nothing is refitted
    pos = index.add(["new"], texts=["Star Wars: The Empire Strikes Back (1980). Action, Adventure, Sci-Fi"])
    assert pos.tolist() == [len(CORPUS)] and "new" in index and len(index) == len(CORPUS) + 1
    assert index.similar_items("0", 1).ids.tolist() == ["new"]
    # a user who liked Star Wars and Alien gets the new sci-fi item first (history left out)
    rec = index.recommend(["0", "1"], k=3)
    assert rec.ids.tolist()[0] == "new" and not {"0", "1"} & set(rec.ids.tolist())
    assert index.similar_to_text("space adventure star", 1).ids.tolist() == ["new"]


def test_index_ids_are_normalised_like_a_vocabulary():
    index = ContentIndex()
    index.add([10, 11], np.eye(2))
    assert "10" in index and 10 in index and np.int64(11) in index and "x" not in index
    assert index.ids.dtype == np.int64
    with pytest.raises(DataError, match="integer"):
        index.add(["abc"], np.eye(2)[:1])
    with pytest.raises(DataError, match="duplicate"):
        index.add([12, 12], np.eye(2))
    with pytest.raises(DataError, match="dimensions"):
        index.add([13], np.ones((1, 3)))
    with pytest.raises(ConfigError, match="no encoder"):
        index.add([14], texts=["text"])
    with pytest.raises(DataError, match="not in the content index"):
        index.vectors([99])


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_exact_search_matches_brute_force_with_filters(sparse):
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(300, 16)).astype(np.float32)
    vecs[rng.random(vecs.shape) < (0.6 if sparse else 0.0)] = 0.0
    rows = sp.csr_matrix(vecs) if sparse else vecs
    index = ContentIndex()
    for start in range(0, 300, 7):  # growing in small steps exercises buffer growth / pending chunks
        index.add([f"i{j}" for j in range(start, min(start + 7, 300))], rows[start:start + 7])
    unit = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
    np.testing.assert_allclose(index.vectors(["i5", "i299"]), unit[[5, 299]], rtol=1e-5, atol=1e-6)
    queries = rng.normal(size=(4, 16)).astype(np.float32)
    cands = [f"i{j}" for j in range(0, 300, 2)] + ["unknown"]
    exclude = ["i0", "i2", "nope"]
    hits = index.search(queries, 12, candidates=cands, exclude=exclude)
    allowed = np.zeros(300, dtype=bool)
    allowed[::2] = True
    allowed[[0, 2]] = False
    for q, h in zip(queries, hits, strict=True):
        s = np.where(allowed, unit @ q, -np.inf)
        top = np.argsort(-s, kind="stable")[:12]
        assert h.ids.tolist() == [f"i{j}" for j in top]
        np.testing.assert_allclose(h.scores, s[top], rtol=1e-5, atol=1e-6)
    mask = np.zeros(300, dtype=bool)
    mask[[3, 4]] = True
    assert sorted(index.search(queries[:1], 5, candidates=mask)[0].ids.tolist()) == ["i3", "i4"]


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_replacing_a_vector_updates_search(sparse):
    base = np.eye(4, dtype=np.float32)
    index = ContentIndex()
    index.add(["a", "b", "c", "d"], sp.csr_matrix(base) if sparse else base)
    assert index.similar_to_vector(np.array([0, 0, 1, 0.0]), 1).ids.tolist() == ["c"]
    new = np.array([[0, 0, 3.0, 0]], dtype=np.float32)
    index.add(["a"], sp.csr_matrix(new) if sparse else new)  # the article's text was edited
    assert len(index) == 4
    assert index.similar_to_vector(np.array([0, 0, 1, 0.0]), 2).ids.tolist() == ["a", "c"]
    np.testing.assert_allclose(index.vectors(["a", "b"]), [[0, 0, 1, 0], [0, 1, 0, 0]])


def test_profile_is_the_weighted_time_decayed_mean():
    rng = np.random.default_rng(1)
    vecs = rng.normal(size=(5, 8))
    unit = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    index = ContentIndex()
    index.add(list("abcde"), vecs)
    day = 86_400
    times = [10 * day, 8 * day, 10 * day]
    prof = index.profile(["a", "c", "ghost", "e"], [1.0, 2.0, 5.0, -1.0], timestamps=[*times[:2], 0, times[2]],
                         half_life=2 * day)
    w = np.array([1.0, 2.0 * 0.5, -1.0])  # c is one half-life older than the latest event; ghost is unknown
    expected = w @ unit[[0, 2, 4]]
    np.testing.assert_allclose(prof, expected / np.linalg.norm(expected), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(decay_weights(np.array([0.0, 5.0, 12.0]), 10.0, 5.0), [0.25, 0.5, 1.0])
    assert not index.profile(["ghost"]).any()
    assert len(index.recommend(["ghost"], 3)) == 0, "no known history: nothing to recommend from"
    with pytest.raises(ConfigError, match="timestamps"):
        index.profile(["a"], half_life=1.0)


@pytest.mark.parametrize("kind", ["tfidf-sparse", "dense-int-ids"])
def test_index_save_load_round_trip(tmp_path, kind):
    if kind == "tfidf-sparse":
        index = ContentIndex(TfidfEncoder().fit(CORPUS))
        index.add([f"m{i}" for i in range(len(CORPUS))], texts=CORPUS)
    else:
        index = ContentIndex()
        index.add([5, 7, 9], np.random.default_rng(2).normal(size=(3, 6)))
    index.save(tmp_path / "ix")
    back = ContentIndex.load(tmp_path / "ix")
    assert back.ids.tolist() == index.ids.tolist() and back.ids.dtype == index.ids.dtype
    first = index.ids[0]
    a, b = index.similar_items(first, 3), back.similar_items(first, 3)
    assert a.ids.tolist() == b.ids.tolist()
    np.testing.assert_allclose(a.scores, b.scores)
    if kind == "tfidf-sparse":  # the loaded encoder adds new items the same way
        index.add(["x"], texts=["Alien Resurrection (1997). Sci-Fi"])
        back.add(["x"], texts=["Alien Resurrection (1997). Sci-Fi"])
        np.testing.assert_array_equal(index.vectors(["x"]), back.vectors(["x"]))
    with pytest.raises(ArtifactError):
        ContentIndex.load(tmp_path / "nothing-here")


# --- Online Retail product descriptions -----------------------------------------------------------

FAMILIES = {"lunch bag": "LUNCH BAG", "jumbo bag": "JUMBO BAG", "mug": r"\bMUG\b", "candle": r"\bCANDLE\b",
            "cakestand": "CAKESTAND|CAKE STAND", "doormat": "DOORMAT", "clock": r"\bCLOCK\b",
            "cushion": "CUSHION COVER", "necklace": "NECKLACE", "umbrella": "UMBRELLA"}


@pytest.fixture(scope="module")
def retail_products() -> pd.Series:
    """StockCode → its most frequent description, for product codes (starting with a digit) of the
    UCI Online Retail copy; the columns are read directly (no retail loader yet)."""
    from tastemaker.data.download import data_dir

    files = sorted((data_dir() / "online-retail" / "by-day").glob("*.csv.gz"))
    if len(files) != 305:
        pytest.fail(f"Online Retail: expected 305 daily files under {data_dir() / 'online-retail'}, found {len(files)}")
    df = pd.concat([pd.read_csv(f, usecols=["StockCode", "Description"], dtype=str) for f in files]).dropna()
    df = df[df["StockCode"].str.match(r"\d")]
    df["Description"] = df["Description"].str.strip()
    return df.groupby("StockCode")["Description"].agg(lambda s: s.value_counts().index[0])


def _family(products: pd.Series) -> pd.Series:
    labels = pd.Series(None, index=products.index, dtype=object)
    for name, pattern in FAMILIES.items():
        labels[products.str.contains(pattern) & labels.isna()] = name
    return labels


def _family_precision(index: ContentIndex, products: pd.Series, labels: pd.Series, k: int = 5) -> float:
    hits = [labels[index.similar_items(code, k).ids].to_numpy() == labels[code] for code in products.index]
    return float(np.mean(hits))


def test_retail_lunch_bags_find_lunch_bags_by_tfidf(retail_products):
    assert len(retail_products) > 3500
    index = ContentIndex(TfidfEncoder().fit(retail_products.tolist()))
    index.add(retail_products.index.tolist(), texts=retail_products.tolist())
    bags = retail_products[retail_products.str.contains("LUNCH BAG")]
    assert len(bags) >= 10
    share_bag, share_lunch = [], []
    for code in bags.index:
        words = set(re.findall(r"\w\w+", bags[code]))
        found = retail_products[index.similar_items(code, 5).ids]
        assert all(words & set(re.findall(r"\w\w+", d)) for d in found), f"{bags[code]} → {found.tolist()}"
        share_bag.append(found.str.contains("BAG").mean())
        share_lunch.append(found.str.contains("LUNCH").mean())
    # a random neighbour is a lunch item about 1% of the time; some bags find their design series
    # instead ("LUNCH BAG PAISLEY PARK" → "JUMBO BAG PAISLEY PARK", "PAISLEY PARK CARD", …)
    assert np.mean(share_bag) > 0.7 and np.mean(share_lunch) > 0.5, (np.mean(share_bag), np.mean(share_lunch))
    labels = _family(retail_products)
    family = retail_products[labels.notna()]
    sub = ContentIndex(index.encoder)
    sub.add(family.index.tolist(), texts=family.tolist())
    assert _family_precision(sub, family, labels) > 0.85  # measured 0.93 (10 families, 483 products)


def test_retail_neighbours_by_minilm_share_the_product_family(retail_products, minilm):
    labels = _family(retail_products)
    family = retail_products[labels.notna()]
    # at most 15 per family: ~150 descriptions keep the MiniLM encoding short
    family = family.groupby(labels[family.index], group_keys=False).apply(lambda s: s.iloc[:15])
    index = ContentIndex(minilm)
    index.add(family.index.tolist(), texts=family.tolist())
    assert index.dim == 384
    assert _family_precision(index, family, labels) > 0.85
    lunch = family[family.str.contains("LUNCH BAG")].index[0]
    assert retail_products[index.similar_items(lunch, 3).ids].str.contains("BAG").all()
