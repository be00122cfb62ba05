"""The learned ranker (`tastemaker.ranking.ranker`) on synthetic logged data where one feature decides
the label: it learns it, early stopping, calibration, expected-value scoring, the plain-data round
trip, mismatched features, and `RankingData` / `collect` keeping requests whole."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import scipy.sparse as sp

from tastemaker.data.interactions import Interactions
from tastemaker.data.vocabulary import Vocabulary
from tastemaker.errors import ArtifactError, DataError, NotFittedError
from tastemaker.evaluation.metrics import ndcg_at_k
from tastemaker.ranking.features import FeatureBuilder, feature_names
from tastemaker.ranking.ranker import (
    Calibration,
    Ranker,
    RankingData,
    calibration_report,
    collect,
    expected_value_scores,
)
from tastemaker.retrieval import Histories, Repurchase, Trending, UnionRetriever

NAMES = ["signal", "noise.a", "noise b", "price"]  # characters LightGBM rejects stay ours
SIZE = 20  # candidates per request
SMALL = {"n_estimators": 40, "learning_rate": 0.1, "num_leaves": 7, "min_child_samples": 10,
         "calibration_folds": 2, "n_jobs": 2, "early_stopping_rounds": 0}


def synthetic(n_groups: int, seed: int, *, sharp: float = 12.0, shuffle_signal: bool = False) -> RankingData:
    """Requests of SIZE rows; P(bought) = σ(sharp · (signal − 0.75)); the other columns are noise."""
    rng = np.random.default_rng(seed)
    n = n_groups * SIZE
    signal = rng.random(n)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-sharp * (signal - 0.75)))).astype(np.float32)
    if shuffle_signal:  # the control: the same column, no longer tied to the label
        signal = rng.permutation(signal)
    price = rng.lognormal(1.0, 0.7, n)
    x = np.column_stack([signal, rng.normal(size=n), rng.normal(size=n), price])
    return RankingData(x, y, np.full(n_groups, SIZE), list(NAMES), value=price, item=np.tile(np.arange(SIZE), n_groups),
                       user=np.arange(n_groups))


def ndcg10(scores: np.ndarray, data: RankingData) -> float:
    """Mean NDCG@10 over requests (all of size SIZE), with the project's metric."""
    s = scores.reshape(-1, SIZE)
    rec = np.argsort(-s, axis=1, kind="stable")[:, :10]
    rel = sp.csr_matrix(data.y.reshape(-1, SIZE))
    return float(np.nanmean(ndcg_at_k(rec, rel, 10)))


@pytest.fixture(scope="module")
def train() -> RankingData:
    return synthetic(300, seed=1)


@pytest.fixture(scope="module")
def held_out() -> RankingData:
    return synthetic(200, seed=2)


@pytest.fixture(scope="module")
def ranker(train) -> Ranker:
    return Ranker(SMALL).fit(train)


# --- learning -------------------------------------------------------------------------------------
def test_the_ranker_learns_the_deciding_feature(ranker, held_out):
    learned = ndcg10(ranker.score(held_out.x), held_out)
    control = Ranker(SMALL).fit(synthetic(300, seed=1, shuffle_signal=True))
    shuffled = ndcg10(control.score(held_out.x), held_out)
    random = ndcg10(np.random.default_rng(0).random(len(held_out)), held_out)
    oracle = ndcg10(held_out.x[:, 0], held_out)  # the signal itself
    assert learned >= 0.95 * oracle and learned > shuffled + 0.25 and learned > random + 0.4
    imp = ranker.feature_importance()
    assert next(iter(imp)) == "signal" and imp["signal"] > 0.8 and sum(imp.values()) == pytest.approx(1.0, abs=1e-4)
    assert ranker.info["train_groups"] == 300 and ranker.n_trees == 40 and "40 trees" in repr(ranker)


def test_early_stopping_picks_fewer_trees_than_the_cap(train):
    # a label the signal decides exactly: NDCG@10 on validation tops out after a few trees
    def exact(n, seed):
        d = synthetic(n, seed)
        return RankingData(d.x, (d.x[:, 0] > 0.8).astype(np.float32), d.group, d.names)

    cfg = {**SMALL, "n_estimators": 300, "early_stopping_rounds": 10, "calibration": "none"}
    stopped = Ranker(cfg).fit(exact(150, 3), exact(100, 4))
    assert stopped.best_iteration is not None and stopped.n_trees == stopped.best_iteration < 300 - 10
    assert stopped.info["best_iteration"] == stopped.best_iteration
    assert Ranker({**cfg, "n_estimators": 60}).fit(exact(150, 3)).n_trees == 60  # no validation: the cap
    # noisy labels keep improving for a while: early stopping is not a fixed small number
    slow = Ranker({**cfg, "learning_rate": 0.02, "n_estimators": 150}).fit(train, synthetic(100, 5))
    assert slow.n_trees > stopped.n_trees


# --- calibration ----------------------------------------------------------------------------------
def test_platt_and_isotonic_recover_the_base_rate():
    rng = np.random.default_rng(0)
    s = rng.normal(size=20_000)
    t = (rng.random(20_000) < 1.0 / (1.0 + np.exp(-(2.0 * s - 1.0)))).astype(float)
    platt = Calibration.fit(s, t, "platt")
    assert platt.a == pytest.approx(2.0, abs=0.1) and platt.b == pytest.approx(-1.0, abs=0.1)
    assert platt(s).mean() == pytest.approx(t.mean(), abs=1e-6)  # the intercept's score equation
    iso = Calibration.fit(s, t, "isotonic")
    assert iso(s).mean() == pytest.approx(t.mean(), abs=1e-9)
    assert (np.diff(iso(np.sort(s))) >= 0).all() and (np.diff(platt(np.sort(s))) > 0).all()
    for cal in (platt, iso, Calibration("none")):
        back = Calibration.from_dict(json.loads(json.dumps(cal.to_dict())))
        np.testing.assert_array_equal(back(s), cal(s))
    # perfectly separated scores: P goes to 0/1, without NaN or overflow warnings
    with np.errstate(over="raise"):
        sep = Calibration.fit(np.r_[np.zeros(50), np.ones(50)], np.r_[np.zeros(50), np.ones(50)], "platt")
        p = sep(np.array([0.0, 1.0]))
    assert p[0] < 0.01 and p[1] > 0.99
    with pytest.raises(DataError, match="both bought and not-bought"):
        Calibration.fit(s, np.zeros_like(s), "platt")
    with pytest.raises(DataError, match="3 scores for 2 labels"):
        Calibration.fit(np.zeros(3), np.array([0, 1]), "platt")


def test_the_rankers_probabilities_match_the_base_rate(ranker, train, held_out):
    p = ranker.probability(held_out.x)
    assert ranker.calibration.kind == "platt" and ranker.info["calibration_rows"] == len(train)  # every row out of fold
    assert p.mean() == pytest.approx(held_out.y.mean(), abs=0.03)
    rep = ranker.calibration_report(held_out)
    assert rep["ece"] < 0.05 and rep["brier"] < rep["brier_base_rate"]
    assert rep["base_rate"] == pytest.approx(held_out.y.mean(), abs=1e-5)
    iso = Ranker({**SMALL, "calibration": "isotonic"}).fit(synthetic(300, seed=1))
    assert iso.probability(held_out.x).mean() == pytest.approx(held_out.y.mean(), abs=0.03)
    raw = Ranker({**SMALL, "calibration": "none"}).fit(synthetic(300, seed=1))
    assert raw.calibration.kind == "none" and "calibration_rows" not in raw.info


def test_calibration_uses_only_out_of_fold_scores(held_out):
    # one request holds every purchase: the model that scores its fold learned from no purchase at all,
    # and the rows the other models scored hold none, so there is nothing honest to calibrate on
    y = np.zeros(len(held_out), dtype=np.float32)
    y[:3] = 1.0
    one = RankingData(held_out.x, y, held_out.group, NAMES)
    with pytest.raises(DataError, match="calibration needs both bought and not-bought rows"):
        Ranker(SMALL).fit(one)
    assert Ranker({**SMALL, "calibration": "none"}).fit(one).fitted


def test_calibration_report_by_hand():
    p = np.array([0.05, 0.15, 0.15, 0.85, 0.95, 0.95])
    t = np.array([0, 0, 1, 1, 1, 0])
    rep = calibration_report(p, t)
    # bins 0.0-0.1: 1 row, 0.05 vs 0; 0.1-0.2: 2 rows, 0.15 vs 0.5;
    #      0.8-0.9: 1 row, 0.85 vs 1; 0.9-1.0: 2 rows, 0.95 vs 0.5
    assert [(r["bin"], r["rows"], r["mean_predicted"], r["observed"]) for r in rep["reliability"]] == [
        ("0.0-0.1", 1, 0.05, 0.0), ("0.1-0.2", 2, 0.15, 0.5), ("0.8-0.9", 1, 0.85, 1.0), ("0.9-1.0", 2, 0.95, 0.5)]
    assert rep["ece"] == pytest.approx((0.05 + 2 * 0.35 + 0.15 + 2 * 0.45) / 6, abs=1e-5)
    assert rep["brier"] == pytest.approx(np.mean((p - t) ** 2), abs=1e-5)
    assert rep["brier"] == pytest.approx(1.675 / 6, abs=1e-5)
    assert rep["base_rate"] == 0.5 and rep["brier_base_rate"] == 0.25 and rep["rows"] == 6
    assert rep["log_loss"] == pytest.approx(-np.mean(np.log([0.95, 0.85, 0.15, 0.85, 0.95, 0.05])), abs=1e-5)
    perfect = calibration_report(np.array([0.0, 1.0, 1.0]), np.array([0, 1, 1]))
    assert perfect["ece"] == 0 and perfect["brier"] == 0 and [r["bin"] for r in perfect["reliability"]] == [
        "0.0-0.1", "0.9-1.0"]
    with pytest.raises(DataError, match="3 probabilities for 2 labels"):
        calibration_report(np.zeros(3), np.zeros(2))


# --- expected value -------------------------------------------------------------------------------
def order(s: np.ndarray) -> list[int]:
    return np.argsort(-s, kind="stable").tolist()


def test_value_weight_zero_keeps_the_order_of_p():
    rng = np.random.default_rng(3)
    s = rng.normal(size=50)
    v = rng.lognormal(size=50)
    for cal in (Calibration("platt", a=1.5, b=-2.0), Calibration("none"),
                Calibration.fit(s, (s + rng.normal(size=50) > 0.5).astype(float), "isotonic")):
        p = cal(s)
        got = expected_value_scores(s, cal, v, 0.0)
        # the order of P, ties in P (isotonic steps) broken by the raw score
        assert order(got) == np.lexsort((-s, -p)).tolist()
        np.testing.assert_array_equal(expected_value_scores(s, cal, None, 0.7), got)
    # P that rounds to 1.0 still keeps the ranker's order
    huge = np.array([40.0, 42.0, 41.0, 45.0])
    assert (Calibration("platt", a=1.0, b=0.0)(huge) == 1.0).all()
    assert order(expected_value_scores(huge, Calibration("platt", a=1.0, b=0.0), np.ones(4), 0.0)) == [3, 1, 2, 0]


def test_larger_value_weight_moves_valuable_items_up_monotonically():
    rng = np.random.default_rng(4)
    s = rng.normal(size=40)
    v = rng.lognormal(1.0, 1.0, size=40)
    cal = Calibration("platt", a=1.0, b=-1.0)
    ws = (0.0, 0.1, 0.3, 0.5, 1.0, 2.0, 5.0)
    ranks = [np.argsort(np.argsort(-expected_value_scores(s, cal, v, w))) for w in ws]
    top_value = [float(np.log(v[order(expected_value_scores(s, cal, v, w))[:10]]).sum()) for w in ws]
    assert all(b >= a - 1e-12 for a, b in itertools.pairwise(top_value)) and top_value[-1] > top_value[0]
    hi, lo = np.argmax(v), np.argmin(v)
    assert all(r2[hi] <= r1[hi] and r2[lo] >= r1[lo] for r1, r2 in itertools.pairwise(ranks))
    # every pair: once the dearer item is above the cheaper one, a larger w keeps it there
    dearer = v[:, None] > v[None, :]
    for r1, r2 in itertools.pairwise(ranks):
        above1, above2 = r1[:, None] < r1[None, :], r2[:, None] < r2[None, :]
        assert not (dearer & above1 & ~above2).any()
    # scale-free: prices in cents rank the same; unknown values count as the geometric mean
    np.testing.assert_allclose(expected_value_scores(s, cal, 100 * v, 0.5) - expected_value_scores(s, cal, v, 0.5),
                               0.5 * np.log(100))
    vals = np.array([1.0, 4.0, np.nan, 0.0, -3.0])
    got = expected_value_scores(np.zeros(5), cal, vals, 1.0) - expected_value_scores(np.zeros(5), cal, None, 1.0)
    np.testing.assert_allclose(got, np.log([1.0, 4.0, 2.0, 2.0, 2.0]))
    with pytest.raises(DataError, match="3 values for 40 scores"):
        expected_value_scores(s, cal, v[:3], 0.5)


def test_rank_uses_the_configured_weight(ranker, held_out):
    x, v = held_out.x[:SIZE], held_out.value[:SIZE]
    assert order(ranker.rank(x, v, w=0.0)) == order(ranker.score(x))
    np.testing.assert_allclose(ranker.rank(x, v, w=1.0), np.log(ranker.probability(x)) + np.log(v), rtol=1e-9)
    weighted = Ranker({**SMALL, "value_weight": 1.0})
    weighted.booster, weighted.names, weighted.calibration = ranker.booster, ranker.names, ranker.calibration
    np.testing.assert_array_equal(weighted.rank(x, v), ranker.rank(x, v, w=1.0))
    np.testing.assert_array_equal(ranker.rank(x, v), ranker.rank(x, v, w=0.0))  # the default w is 0


# --- persistence and mismatched features ---------------------------------------------------------
def test_save_load_round_trip_without_pickle(ranker, held_out, tmp_path):
    path = ranker.save(tmp_path / "ranker")
    assert sorted(p.name for p in path.iterdir()) == ["arrays.npz", "manifest.json", "model.txt"]
    for f in (path / "model.txt", path / "manifest.json"):
        assert f.read_bytes()[:1] != b"\x80" and f.read_text()  # plain text, no pickle protocol header
    manifest = json.loads((path / "manifest.json").read_text())
    meta = manifest["state"]
    assert manifest["model"] == "ranker" and manifest["arrays"] == {}
    assert meta["features"] == NAMES and meta["calibration"]["kind"] == "platt"
    back = Ranker.load(path)
    np.testing.assert_array_equal(back.score(held_out.x), ranker.score(held_out.x))
    np.testing.assert_array_equal(back.probability(held_out.x), ranker.probability(held_out.x))
    np.testing.assert_array_equal(back.rank(held_out.x, held_out.value, w=0.5),
                                  ranker.rank(held_out.x, held_out.value, w=0.5))
    assert back.names == ranker.names and back.n_trees == ranker.n_trees
    assert back.config == ranker.config and back.feature_importance() == ranker.feature_importance()
    with pytest.raises(NotFittedError, match="nothing to save"):
        Ranker(SMALL).save(tmp_path / "empty")


def test_mismatched_features_raise_clear_errors(ranker, held_out, tmp_path):
    with pytest.raises(DataError, match=r"features have shape \(4000, 3\); the ranker reads 4 columns"):
        ranker.score(held_out.x[:, :3])
    swapped = [NAMES[1], NAMES[0], *NAMES[2:]]
    with pytest.raises(DataError, match=r"feature column 0 is 'noise\.a' but the ranker was trained with 'signal'"):
        ranker.score(held_out.x, names=swapped)
    with pytest.raises(DataError, match="name 5 columns; the ranker reads 4"):
        ranker.rank(held_out.x, names=[*NAMES, "extra"])
    other = RankingData(held_out.x, held_out.y, held_out.group, swapped)
    with pytest.raises(DataError, match="feature column 0"):
        ranker.calibration_report(other)
    with pytest.raises(DataError, match="validation data has other feature columns"):
        Ranker(SMALL).fit(held_out, other)
    with pytest.raises(DataError, match="no relevant rows"):
        Ranker(SMALL).fit(RankingData(held_out.x, np.zeros(len(held_out)), held_out.group, NAMES))
    with pytest.raises(NotFittedError, match="not fitted"):
        Ranker(SMALL).score(held_out.x)
    # a saved ranker whose manifest and model disagree
    path = ranker.save(tmp_path / "r")
    manifest = json.loads((path / "manifest.json").read_text())

    def write(**changes):
        (path / "manifest.json").write_text(json.dumps({**manifest, "state": {**manifest["state"], **changes}}))

    write(features=NAMES[:3])
    with pytest.raises(ArtifactError, match=r"reads 4 features but .* names 3"):
        Ranker.load(path)
    write(features=swapped)
    with pytest.raises(ArtifactError, match=r"disagree on the features: the model has 'signal' where the "
                                            r"manifest names 'noise\.a'"):
        Ranker.load(path)
    (path / "manifest.json").write_text(json.dumps({**manifest, "model": "catalog"}))
    with pytest.raises(ArtifactError, match="holds a 'catalog', not a ranker"):
        Ranker.load(path)
    (path / "manifest.json").write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(ArtifactError, match="upgrade tastemaker"):
        Ranker.load(path)
    (path / "manifest.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        Ranker.load(path)
    (path / "manifest.json").write_text(json.dumps(manifest))
    (path / "model.txt").unlink()
    with pytest.raises(ArtifactError, match=r"model\.txt is missing"):
        Ranker.load(path)


# --- logged data ------------------------------------------------------------------------------------
def small_data() -> RankingData:
    group = np.array([2, 3, 1, 4])
    gid = np.repeat(np.arange(4), group)
    pos = np.concatenate([np.arange(g) for g in group])
    x = np.column_stack([gid, pos]).astype(np.float32)
    return RankingData(x, (pos == 0).astype(np.float32), group, ["gid", "pos"], value=10.0 * gid + pos,
                       item=100 * gid + pos, user=np.array([7, 8, 9, 6]))


def test_select_groups_and_concat_keep_requests_whole():
    d = small_data()
    assert d.offsets.tolist() == [0, 2, 5, 6, 10] and d.group_ids().tolist() == [0, 0, 1, 1, 1, 2, 3, 3, 3, 3]
    sel = d.select_groups([3, 0])
    assert sel.group.tolist() == [4, 2] and sel.user.tolist() == [6, 7]
    assert sel.x.tolist() == [[3, 0], [3, 1], [3, 2], [3, 3], [0, 0], [0, 1]]
    assert sel.item.tolist() == [300, 301, 302, 303, 0, 1] and sel.value.tolist() == [30, 31, 32, 33, 0, 1]
    assert sel.y.tolist() == [1, 0, 0, 0, 1, 0]
    mask = d.select_groups(np.array([False, True, False, True]))
    assert mask.group.tolist() == [3, 4] and mask.user.tolist() == [8, 6] and mask.x[:, 0].tolist() == [1] * 3 + [3] * 4
    assert len(d.select_groups([])) == 0 and d.select_groups([]).n_groups == 0
    back = RankingData.concat([d.select_groups([0, 1]), d.select_groups([2, 3])])
    for name in ("x", "y", "group", "value", "item", "user"):
        np.testing.assert_array_equal(getattr(back, name), getattr(d, name), err_msg=name)
    no_value = RankingData(d.x, d.y, d.group, d.names)
    assert RankingData.concat([d, no_value]).value is None and RankingData.concat([d, d]).n_groups == 8
    with pytest.raises(DataError, match="different feature columns"):
        RankingData.concat([d, RankingData(d.x, d.y, d.group, ["a", "b"])])
    with pytest.raises(DataError, match="nothing to concatenate"):
        RankingData.concat([])
    with pytest.raises(DataError, match="a group mask needs 4 entries, got 3"):
        d.select_groups(np.array([True, False, True]))
    with pytest.raises(DataError, match="group index 4 is outside the 4 groups"):
        d.select_groups([1, 4])
    with pytest.raises(DataError, match="groups summing to 9"):
        RankingData(d.x, d.y, np.array([2, 3, 4]), d.names)
    with pytest.raises(DataError, match=r"features have shape \(10, 2\) but 3 names"):
        RankingData(d.x, d.y, d.group, ["a", "b", "c"])
    with pytest.raises(DataError, match="user has 2 entries for 4 groups"):
        RankingData(d.x, d.y, d.group, d.names, user=np.array([1, 2]))


DAY = 86_400


def test_collect_logs_candidates_features_and_labels():
    # users 0-2 bought before day 100; user 3 never bought; labels: what each bought afterwards
    rows = [(0, 0, 10), (0, 0, 40), (0, 1, 90), (1, 2, 50), (1, 0, 95), (2, 3, 20)]
    u, i, d = (np.array(c) for c in zip(*rows, strict=True))
    x = Interactions.from_arrays(u, i, timestamps=d * DAY, explicit=False, duplicates="keep",
                                 item_vocab=Vocabulary(np.arange(5)), user_vocab=Vocabulary(np.arange(4)))
    now = 100.0 * DAY
    builder = FeatureBuilder.fit(x, price=np.array([1.0, 2.0, 3.0, 4.0, 5.0]), now=now)
    retriever = UnionRetriever([Repurchase.fit(x, now=now), Trending.fit(x, now=now, half_life_days=None)], {}, k=3)
    labels = sp.csr_matrix((np.ones(3), ([0, 1, 3], [0, 4, 2])), shape=(4, 5))
    seen = []
    data = collect(retriever, builder, Histories.from_interactions(x), [0, 1, 2, 3], labels=labels, now=now, k=3,
                   progress=lambda j, n: seen.append((j, n)))
    assert data.names == feature_names(("repurchase", "trending"))
    assert data.n_groups == 4 and data.group.tolist() == [3, 3, 3, 3] and data.user.tolist() == [0, 1, 2, 3]
    assert seen[-1] == (4, 4)
    off = data.offsets
    for g, user in enumerate(data.user):
        items = data.item[off[g]:off[g + 1]]
        bought = set(labels[user].indices)
        assert data.y[off[g]:off[g + 1]].tolist() == [float(it in bought) for it in items]
        np.testing.assert_array_equal(data.value[off[g]:off[g + 1]], items + 1.0)
    first = data.item[:3]
    assert set(first[:2]) == {0, 1}  # user 0's own purchases come first (repurchase), then trending
    np.testing.assert_array_equal(data.x[:3, 5:], builder.transform(Histories.from_interactions(x).query(0, now=now),
                                                                    first))
    # a constraint that allows nothing leaves nothing to learn from
    with pytest.raises(DataError, match="no user had any candidates"):
        collect(retriever, builder, Histories.from_interactions(x), [0, 1], now=now,
                allowed=np.zeros(5, dtype=bool))
