"""ContentKNN: conformance, profile semantics on hand-made catalogues, items added after fitting,
and MovieLens-100K cold items (held-out items are ranked from their text alone)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tastemaker.data import cold_item_split
from tastemaker.data.features import SideFeatures
from tastemaker.data.interactions import Interactions
from tastemaker.data.vocabulary import Vocabulary
from tastemaker.errors import ConfigError, DataError
from tastemaker.evaluation.metrics import auc, ndcg_at_k
from tastemaker.evaluation.protocols import relevance_matrix, topn_scores
from tastemaker.models.base import Recommender, top_k
from tastemaker.models.content import ContentKNN
from tastemaker.models.registry import BUILTIN, register
from tastemaker.testing import CHECKS, synthetic_ratings

if "content_knn" not in BUILTIN:  # until the lead lists it in registry.BUILTIN (Recommender.load needs the name)
    register(ContentKNN)

FACTORIES = {
    "tfidf": lambda: ContentKNN(),
    "tfidf-liked-decayed-2grams": lambda: ContentKNN(like_threshold=4.0, half_life_days=0.05, tfidf_ngrams=2,
                                                     fields=["title", "genres", "year"]),
    "tfidf-centered": lambda: ContentKNN(weighting="centered", tfidf_stop_words="english"),
    "minilm": lambda: ContentKNN(encoder="minilm"),
}
# MiniLM re-encodes the catalogue on every fit: run the checks where its dense vectors take another path
MINILM_CHECKS = ("check_save_load_roundtrip", "check_scores_match_ranking", "check_empty_history")
CASES = [(f, c) for f in FACTORIES for c in CHECKS if f != "minilm" or c in MINILM_CHECKS]


@pytest.mark.parametrize(("factory", "check"), CASES, ids=[f"{f}-{c}" for f, c in CASES])
def test_conformance(factory, check):
    CHECKS[check](FACTORIES[factory])


# --- hand-made catalogue --------------------------------------------------------------------------

TITLES = {
    "sw": ("Star Wars", "Sci-Fi Space Adventure"),
    "st": ("Star Trek", "Sci-Fi Space Adventure"),
    "al": ("Alien", "Sci-Fi Space Horror"),
    "nt": ("Nightmare on Elm Street", "Horror Slasher"),
    "ss": ("Sleepless in Seattle", "Romance Comedy"),
    "nh": ("Notting Hill", "Romance Comedy"),
    "cb": ("Casablanca", "Romance War Drama"),
    "new-scifi": ("Interstellar Space Voyage", "Sci-Fi Space Adventure"),  # no interactions at all
    "new-romance": ("Paris Love Story", "Romance Comedy"),  # no interactions at all
}


def _catalogue(rows, timestamps=None) -> Interactions:
    ids = list(TITLES)
    frame = pd.DataFrame({"title": [TITLES[i][0] for i in ids], "genres_text": [TITLES[i][1] for i in ids]},
                         index=pd.Index(ids, name="item"))
    users, items, ratings = zip(*rows, strict=True)
    return Interactions.from_arrays(users, items, ratings, timestamps=timestamps, item_vocab=Vocabulary(ids),
                                    explicit=True, rating_scale=(1.0, 5.0), item_features=SideFeatures(frame))


RATINGS = [("fan", "sw", 5), ("fan", "al", 5), ("fan", "ss", 1),
           ("romantic", "ss", 5), ("romantic", "cb", 4), ("romantic", "sw", 2),
           ("x", "nt", 3), ("x", "nh", 4), ("x", "st", 3)]
FIELDS = ["title", "genres_text"]


def test_cold_items_are_ranked_from_their_text():
    data = _catalogue(RATINGS)
    model = ContentKNN(fields=FIELDS).fit(data)
    assert model.item_counts[model.item_vocab.index("new-scifi")] == 0
    fan, romantic = model.recommend(["fan", "romantic"], k=2)
    # Star Trek shares "Star" with Star Wars; the never-rated space adventure comes right with it
    assert set(fan.items.tolist()) == {"st", "new-scifi"} and fan.fallback is None
    assert romantic.items[0] in {"new-romance", "nh"} and "new-romance" in romantic.items.tolist()
    pred = model.score(["fan", "fan"], ["new-scifi", "new-romance"])
    assert not pred.fallback.any() and pred.values[0] > pred.values[1]
    reason = model.explain("fan", ["new-scifi"])[0]
    assert reason.kind == "similar_to_history" and reason.anchor in {"sw", "al"}


def test_profile_weighting_options_change_the_profile_as_documented():
    data = _catalogue(RATINGS)
    value = ContentKNN(fields=FIELDS, weighting="value").fit(data)
    centered = ContentKNN(fields=FIELDS, weighting="centered").fit(data)
    liked = ContentKNN(fields=FIELDS, weighting="uniform", like_threshold=4.0).fit(data)
    # the fan rated Sleepless in Seattle 1: with value weights it still pulls a little towards romance,
    # centred on the fan's mean it pushes away, and with a like threshold it is left out
    def romance(model):
        return model.score(["fan"], ["new-romance"]).values[0]

    assert centered.score(["fan"], ["new-romance"]).values[0] < 0 < romance(value)
    assert romance(liked) == pytest.approx(0.0, abs=1e-6)
    w = liked.profile_weights[liked.user_vocab.index("fan")]
    assert sorted(liked.item_vocab.lookup(w.indices).tolist()) == ["al", "sw"]
    np.testing.assert_allclose(np.linalg.norm(value.user_profiles(np.arange(3)), axis=1), 1.0, rtol=1e-5)


def test_half_life_makes_recent_history_dominate():
    day = 86_400
    rows = [("u", "sw", 5), ("u", "ss", 5), ("v", "nt", 3)]
    data = _catalogue(rows, timestamps=[0, 30 * day, 0])
    plain = ContentKNN(fields=FIELDS).fit(data)
    decayed = ContentKNN(fields=FIELDS, half_life_days=3.0).fit(data)
    w = decayed.profile_weights[decayed.user_vocab.index("u")].toarray().ravel()
    sw, ss = decayed.item_vocab.index("sw"), decayed.item_vocab.index("ss")
    assert w[sw] == pytest.approx(5 * 0.5 ** 10) and w[ss] == pytest.approx(5.0)
    gap = lambda m: np.subtract(*m.score(["u", "u"], ["new-romance", "new-scifi"]).values)  # noqa: E731
    assert gap(decayed) > gap(plain) + 0.1
    with pytest.raises(ConfigError, match="timestamps"):
        ContentKNN(fields=FIELDS, half_life_days=3.0).fit(_catalogue(rows))


def test_content_index_takes_items_published_after_fitting(tmp_path):
    data = _catalogue(RATINGS)
    model = ContentKNN(fields=FIELDS).fit(data)
    index = model.content_index()
    index.add(["brand-new"], texts=["Galactic Space Adventure. Sci-Fi"])
    assert len(model.index) == len(TITLES), "the model's own index is not changed by adding to the copy"
    hist, values = model.history("fan")
    hits = index.recommend(hist, 3, weights=values)
    assert "brand-new" in hits.ids.tolist()[:2]
    np.testing.assert_allclose(index.vectors(["brand-new"])[0], model.encode_texts(
        ["Galactic Space Adventure. Sci-Fi"]).toarray()[0], rtol=1e-6)
    loaded = Recommender.load(model.save(tmp_path / "m"))
    a = loaded.content_index().similar_to_text("space adventure", 3)
    b = model.content_index().similar_to_text("space adventure", 3)
    assert a.ids.tolist() == b.ids.tolist()
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-6)


def test_errors_name_the_fix():
    data = synthetic_ratings()
    with pytest.raises(DataError, match="choose among"):
        ContentKNN(fields=["description"]).fit(data)
    bare = Interactions.from_arrays([1, 2], [3, 4], [5.0, 4.0])
    with pytest.raises(DataError, match="no item features"):
        ContentKNN().fit(bare)
    with pytest.raises(ConfigError, match="encoder"):
        ContentKNN(encoder="word2vec")


# --- MovieLens 100K cold items --------------------------------------------------------------------

def _random_ndcg(model, train, test, seed=0) -> float:
    """NDCG@10 of random rankings of the same candidates: the chance level."""
    test = test.reindex(model.user_vocab, model.item_vocab)
    users, relevant = relevance_matrix(test, 4.0)
    cand = np.zeros(model.n_items, dtype=bool)
    cand[test.item_idx] = True
    scores = np.random.default_rng(seed).random((len(users), model.n_items))
    scores[:, ~cand] = -np.inf
    scores[model.train_matrix[users].toarray() != 0] = -np.inf
    items, _ = top_k(scores, 10)
    assert np.nanmean(auc(scores, relevant, np.isfinite(scores))) == pytest.approx(0.5, abs=0.02)
    return float(np.nanmean(ndcg_at_k(items, relevant, 10)))


def _cold_items(model, data):
    train, test = cold_item_split(data, fraction=0.2, seed=0)
    model.fit(train)
    means, *_ = topn_scores(model, train, test, 10, 4.0, cold_items=True)
    return means, _random_ndcg(model, train, test)


def test_ml100k_cold_items_tfidf_ranks_held_out_movies_above_chance(ml100k):
    means, chance = _cold_items(ContentKNN(), ml100k.interactions)
    # measured: AUC 0.753, NDCG@10 0.204 (LightFM WARP+genres on the same split: 0.693 / 0.160)
    assert means["auc"] > 0.70
    assert means["ndcg@10"] > 0.15 and means["ndcg@10"] > 3 * chance


@pytest.fixture(scope="module")
def ml_top300(ml100k) -> Interactions:
    """MovieLens 100K restricted to its 300 most-rated movies: few enough texts for MiniLM in a test."""
    ml = ml100k.interactions
    top = np.sort(np.argsort(-ml.item_counts, kind="stable")[:300])
    return ml.reindex(ml.user_vocab, Vocabulary(ml.item_vocab.ids[top]))


def test_ml100k_top300_cold_items_minilm_ranks_above_chance(ml_top300):
    means, chance = _cold_items(ContentKNN(encoder="minilm"), ml_top300)
    assert means["auc"] > 0.62  # measured 0.666 (TF-IDF: 0.601)
    assert means["ndcg@10"] > 1.3 * chance


@pytest.mark.slow
def test_ml100k_cold_items_minilm_full_catalogue(ml100k):
    means, chance = _cold_items(ContentKNN(encoder="minilm"), ml100k.interactions)
    assert means["auc"] > 0.58  # measured 0.618, NDCG@10 0.085: TF-IDF's exact title/year words do better here
    assert means["ndcg@10"] > 1.5 * chance
