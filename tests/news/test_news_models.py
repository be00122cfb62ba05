"""Session models: incremental == batch, save -> load, and the kernels against slow pure-Python references."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pytest

from tastemaker.errors import ArtifactError, ConfigError, DataError
from tastemaker.exploration import ListLog
from tastemaker.models.session import (
    SESSION_MODELS,
    ArrayChoiceLog,
    BetaThompsonSampler,
    CallbackChoiceLog,
    FreshExplorer,
    GrowableIndex,
    SessionModel,
    create_session_model,
)
from tastemaker.models.session import base as session_base

T0 = 1_507_000_000.0
HOUR = 3600.0

# small settings so that sampling and top lists do not cut anything in the references
PARAMS: dict[str, dict] = {
    "recent_popularity": {"half_life_hours": 0.5},
    "window_popularity": {"window_hours": 0.5, "bucket_minutes": 5},
    "context_popularity": {"half_life_hours": 0.5, "smoothing": 3.0},
    "article_recency": {"half_life_hours": 0.5},
    "cooccurrence": {"steps": 3},
    "iknn": {},
    "sr": {"steps": 3, "weighting": "div"},
    "vsknn": {"k": 1000, "sample_size": 1000, "idf_weighting": 0.5},
    "stan": {"k": 1000, "sample_size": 1000, "lambda_snh_hours": 0.5},
    "vstan": {"k": 1000, "sample_size": 1000, "lambda_snh_hours": 0.5},
    "news_hybrid": {"knn": "vstan", "knn_params": {"k": 1000, "sample_size": 1000}, "w_pairs": 0.4,
                    "w_pop": 0.3, "w_context": 0.2, "w_age": 0.2, "age_half_life_hours": 0.5},
    "fresh_explorer": {"base": "sr", "base_params": {"steps": 3}, "fresh_hours": 0.3, "slot": 2, "draws": 20},
}


def make_clicks(n_sessions: int = 90, n_items: int = 60, seed: int = 0):
    """Interleaved sessions (2-6 distinct articles each) over ~3 hours, articles appearing over time."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_sessions):
        start = T0 + rng.uniform(0, 3 * HOUR)
        length = int(rng.integers(2, 7))
        hi = max(8, int(n_items * (start - T0) / (3 * HOUR)))  # newer sessions see newer articles
        items = rng.choice(hi, size=length, replace=False) + 1000
        ctx = [int(rng.integers(1, 3)), int(rng.integers(1, 4)), int(rng.integers(1, 5)), 1,
               int(rng.integers(1, 6)), int(rng.integers(1, 4))]
        for p, it in enumerate(items):
            rows.append((start + 40.0 * p + rng.uniform(0, 20), 5000 + s, int(it), ctx))
    rows.sort(key=lambda r: r[0])
    times = np.array([r[0] for r in rows])
    sess = np.array([r[1] for r in rows], np.int64)
    items = np.array([r[2] for r in rows], np.int64)
    ctx = np.array([r[3] for r in rows], np.int64)
    return sess, items, times, ctx


@pytest.fixture(scope="module")
def clicks():
    return make_clicks()


@pytest.fixture
def tiny_caps(monkeypatch):
    """Start every array tiny, so that growth (items, sessions, clicks, pairs, buckets) is exercised."""
    monkeypatch.setattr(session_base, "INITIAL_CAPS", {"I": 4, "S": 4, "C": 8, "NS": 2, "PE": 8, "PH": 16, "WE": 4,
                                                       "WB": 2, "TOP": 200, "CTOP": 100, "XC": 64})


def new(name: str) -> SessionModel:
    return create_session_model(name, PARAMS[name])


def assert_same_state(a: SessionModel, b: SessionModel) -> None:
    sa, sb = a.state_arrays(), b.state_arrays()
    assert sa.keys() == sb.keys()
    for key in sa:
        np.testing.assert_array_equal(sa[key], sb[key], err_msg=key)
    assert a.n_clicks == b.n_clicks


def probes(sess, items, times, ctx):
    """(prefix, timestamp, context, session) requests covering long, short, unknown and empty prefixes."""
    t_end = float(times[-1]) + 60
    return [
        (list(items[-4:-1]), t_end, ctx[-1], None),
        ([int(items[0])], t_end, ctx[0], int(sess[0])),
        ([int(items[5]), 999_999], t_end, None, None),
        ([], t_end, ctx[3], None),
        ([999_999], t_end, None, None),
    ]


def assert_same_answers(a: SessionModel, b: SessionModel, reqs, k: int = 10) -> None:
    for prefix, t, ctx, s in reqs:
        ia, sa = a.recommend(prefix, k, timestamp=t, context=ctx, session=s)
        ib, sb = b.recommend(prefix, k, timestamp=t, context=ctx, session=s)
        np.testing.assert_array_equal(ia, ib)
        np.testing.assert_array_equal(sa, sb)


# --- incremental == batch -------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(SESSION_MODELS))
def test_click_by_click_equals_batch(name, clicks, tiny_caps):
    sess, items, times, ctx = clicks
    one = new(name)
    for s, i, t, c in zip(sess, items, times, ctx):
        one.update(int(s), int(i), float(t), {f: int(v) for f, v in zip(session_base.CONTEXT_FIELDS, c)})
    batch = new(name)
    batch.update_many(sess, items, times, ctx)
    chunks = new(name)
    for lo, hi in ((0, 1), (1, 40), (40, 41), (41, len(items))):
        chunks.update_many(sess[lo:hi], items[lo:hi], times[lo:hi], ctx[lo:hi])
    assert one.n_clicks == len(items) and one.n_items == len(np.unique(items))
    assert_same_state(one, batch)
    assert_same_state(one, chunks)
    assert_same_answers(one, batch, probes(*clicks))
    ids, _ = batch.recommend(list(items[-3:-1]), 10, timestamp=float(times[-1]))
    assert len(ids) > 0 and not set(ids.tolist()) & set(items[-3:-1].tolist())


@pytest.mark.parametrize("name", sorted(SESSION_MODELS))
def test_save_load_round_trip_then_keeps_learning(name, clicks, tmp_path, tiny_caps):
    sess, items, times, ctx = clicks
    half = len(items) // 2
    model = new(name)
    model.update_many(sess[:half], items[:half], times[:half], ctx[:half])
    model.save(tmp_path / name)
    loaded = SessionModel.load(tmp_path / name)
    assert type(loaded) is type(model) and loaded.params() == model.params()
    assert_same_state(model, loaded)
    assert_same_answers(model, loaded, probes(sess[:half], items[:half], times[:half], ctx[:half]))
    for m in (model, loaded):
        m.update_many(sess[half:], items[half:], times[half:], ctx[half:])
    assert_same_state(model, loaded)
    assert_same_answers(model, loaded, probes(*clicks))
    manifest = (tmp_path / name / "manifest.json").read_text()
    assert '"kind": "session-model"' in manifest


def test_load_rejects_other_bundles(tmp_path, clicks):
    model = new("sr")
    model.update_many(*clicks[:3])
    model.save(tmp_path / "m")
    with pytest.raises(ArtifactError, match=r"holds a 'sr' model"):
        SessionModel._registry["vsknn"].load(tmp_path / "m")
    text = (tmp_path / "m" / "manifest.json").read_text().replace('"model": "sr"', '"model": "nope"')
    (tmp_path / "m" / "manifest.json").write_text(text)
    with pytest.raises(ArtifactError, match="unknown session model 'nope'"):
        SessionModel.load(tmp_path / "m")


# --- unknown ids are outcomes ------------------------------------------------------------------------

def test_unknown_articles_sessions_and_empty_models_are_outcomes(clicks):
    for name in SESSION_MODELS:
        model = new(name)
        ids, scores = model.recommend([1, 2, 3], 5, timestamp=T0)
        assert len(ids) == 0 and len(scores) == 0, name
        model.update_many(*clicks[:3], clicks[3])
        ids, _ = model.recommend([123_456_789], 5, timestamp=T0 + 4 * HOUR, session=42)
        assert len(ids) <= 5


def test_bad_input_is_named():
    model = new("sr")
    with pytest.raises(DataError, match="must be integers"):
        model.update("a", "b", T0)
    with pytest.raises(DataError, match="not finite"):
        model.update(1, 2, float("nan"))
    with pytest.raises(DataError, match="one session id, item and timestamp per click"):
        model.update_many([1, 2], [3], [T0])
    with pytest.raises(ConfigError, match="positive integer"):
        model.recommend([1], 0, timestamp=T0)
    with pytest.raises(ConfigError, match="unknown key"):
        create_session_model("sr", {"stepz": 3})
    with pytest.raises(ConfigError, match="unknown session model"):
        create_session_model("nope")
    ctx_model = new("context_popularity")
    with pytest.raises(DataError, match="unknown context field"):
        ctx_model.update(1, 2, T0, {"browser": 3})
    with pytest.raises(DataError, match="shaped"):
        ctx_model.update_many([1], [2], [T0], np.zeros((1, 3)))


def test_growable_index_is_amortised_and_ordered():
    index = GrowableIndex(capacity=2)
    assert index.add([7, 3, 7, 9]).tolist() == [0, 1, 0, 2]
    for start in range(0, 5000, 100):
        index.add(np.arange(start, start + 100) + 10_000)
    assert len(index) == 5003 and index.lookup([9, 10_000, 14_999, 5]).tolist() == [2, 3, 5002, -1]
    assert index.ids[:3].tolist() == [7, 3, 9]
    again = GrowableIndex.from_array(index.to_array())
    assert np.array_equal(again.lookup(index.ids), np.arange(len(index)))


# --- kernels against pure-Python references -------------------------------------------------------------

def sessions_of(sess, items, times, upto=None):
    seq, last = defaultdict(list), {}
    for s, i, t in list(zip(sess, items, times))[:upto]:
        if i not in seq[s]:
            seq[s].append(int(i))
        last[s] = max(last.get(s, -np.inf), float(t))
    return seq, last


def ref_knn(kind, prefix, t, seq, last, *, lam_spw=1.02, lam_snh=0.0, lam_inh=2.05, lam_ipw=1.02, idf=0.0):
    """session-rec's V-SKNN / STAN / VSTAN with every session a candidate and every candidate a neighbour."""
    L = len(prefix)
    if kind == "vsknn":
        pw = {it: ((p + 1) / L) ** 2 for p, it in enumerate(prefix)}
    else:
        pw = {it: math.exp((p + 1 - L) / lam_spw) for p, it in enumerate(prefix)}
    ppos = {it: p + 1 for p, it in enumerate(prefix)}
    n_sess = len(seq)
    freq = defaultdict(int)
    for items in seq.values():
        for it in items:
            freq[it] += 1
    scores = defaultdict(float)
    for s, items in seq.items():
        shared = set(items) & set(prefix)
        if not shared:
            continue
        dot = sum(pw[i] for i in shared)
        if kind == "vsknn":
            sim = dot / L
        else:
            sim = dot / (math.sqrt(sum(w * w for w in pw.values())) * math.sqrt(len(items)))
            if lam_snh:
                sim *= math.exp(-(t - last[s]) / lam_snh)
        pos_star = max(q + 1 for q, it in enumerate(items) if it in shared)
        last_pos = max(ppos[i] for i in shared)
        if kind == "vsknn":
            decay = 1.0 / (L - last_pos + 1) ** 2
        elif kind == "vstan":
            decay = math.exp((last_pos - L) / lam_ipw)
        else:
            decay = 1.0
        for q, it in enumerate(items):
            v = sim * decay
            if kind != "vsknn":
                v *= math.exp(-abs(q + 1 - pos_star) / lam_inh)
            if idf:
                v *= 1 + math.log(n_sess / freq[it]) * idf
            scores[it] += v
    return {i: v for i, v in scores.items() if i not in prefix and v > 0}


def ref_pairs(kind, prefix, seq, steps, cosine=False):
    rules = defaultdict(float)
    freq = defaultdict(int)
    for items in seq.values():
        for it in items:
            freq[it] += 1
        for q in range(len(items)):
            for p in range(max(0, q - steps), q):
                if kind == "sr":
                    rules[(items[p], items[q])] += 1.0 / (q - p)
                else:
                    rules[(items[p], items[q])] += 1.0
                    rules[(items[q], items[p])] += 1.0
    last = prefix[-1]
    out = {}
    for (a, b), v in rules.items():
        if a == last and b not in prefix:
            out[b] = v / math.sqrt(freq[a] * freq[b]) if cosine else v
    return out


def model_scores(model, prefix, t, **kw):
    ids, scores = model.recommend(prefix, 10_000, timestamp=t, **kw)
    return dict(zip(ids.tolist(), scores.tolist()))


def assert_close_scores(got: dict, want: dict, *, relative: bool = False) -> None:
    assert set(got) == set(want)
    if relative:  # compare up to a common factor
        top, gtop = max(want.values()), max(got.values())
        want = {i: v / top for i, v in want.items()}
        got = {i: v / gtop for i, v in got.items()}
    for i in want:
        assert got[i] == pytest.approx(want[i], rel=1e-9), i


@pytest.mark.parametrize("kind", ["vsknn", "stan", "vstan"])
def test_knn_family_matches_the_session_rec_formulas(kind, clicks):
    sess, items, times, _ = clicks
    upto = 200
    model = new(kind)
    model.update_many(sess[:upto], items[:upto], times[:upto])
    seq, last = sessions_of(sess, items, times, upto)
    t = float(times[upto])
    opts = {"vsknn": {"idf": 0.5}, "stan": {"lam_snh": 0.5 * HOUR}, "vstan": {"lam_snh": 0.5 * HOUR, "idf": 5.0}}[kind]
    for prefix in ([int(items[upto - 1])], [int(x) for x in items[upto - 3:upto]], [1001, 1003, 1007, 1002]):
        assert_close_scores(model_scores(model, prefix, t), ref_knn(kind, prefix, t, seq, last, **opts))


def test_knn_session_is_not_its_own_neighbour(clicks):
    sess, items, times, _ = clicks
    model = new("stan")
    model.update_many(sess, items, times)
    s = int(sess[-1])
    own = [int(i) for i, x in zip(items, sess) if x == s]
    with_self = model_scores(model, own[:1], float(times[-1]), exclude_prefix=False)
    without = model_scores(model, own[:1], float(times[-1]), exclude_prefix=False, session=s)
    assert all(with_self[i] > without.get(i, 0.0) for i in own[1:])


@pytest.mark.parametrize("kind", ["sr", "cooccurrence", "iknn"])
def test_pair_models_match_references(kind, clicks):
    sess, items, times, _ = clicks
    model = new(kind)
    model.update_many(sess, items, times)
    seq, _ = sessions_of(sess, items, times)
    steps = 3 if kind != "iknn" else 20
    for prefix in ([int(items[-1])], [int(items[10]), int(items[20])]):
        want = ref_pairs("sr" if kind == "sr" else "co", prefix, seq, steps, cosine=kind == "iknn")
        assert_close_scores(model_scores(model, prefix, float(times[-1])), want)


def test_decayed_and_windowed_popularity_match_references(clicks):
    sess, items, times, _ = clicks
    pop = new("recent_popularity")
    pop.update_many(sess, items, times)
    tau = 0.5 * HOUR / math.log(2)
    want = defaultdict(float)
    for i, t in zip(items, times):
        want[int(i)] += math.exp((t - times[-1]) / tau)
    got = model_scores(pop, [], float(times[-1]))
    assert_close_scores(got, {i: v for i, v in want.items() if i in got}, relative=True)
    assert list(got)[:5] == sorted(want, key=lambda i: (-want[i], i))[:5]

    win = new("window_popularity")
    win.update_many(sess, items, times)
    b = np.floor(times / 300.0).astype(int)
    recent = b > b.max() - 6
    counts = defaultdict(int)
    for i in items[recent]:
        counts[int(i)] += 1
    assert_close_scores(model_scores(win, [], float(times[-1]) + 5 * HOUR), dict(counts))


def test_context_popularity_and_article_recency_match_references(clicks):
    sess, items, times, ctx = clicks
    model = new("context_popularity")
    model.update_many(sess, items, times, ctx)
    tau = 0.5 * HOUR / math.log(2)
    t = float(times[-1])
    w = np.exp((times - t) / tau)
    total = w.sum()
    request = ctx[-1]
    pop = defaultdict(float)
    for i, x in zip(items, w):
        pop[int(i)] += x
    want = {}
    for i, p_val in pop.items():
        pi = p_val / total
        score = pi
        for f in range(6):
            in_slot = ctx[:, f] == request[f]
            num = w[in_slot & (items == i)].sum() + 3.0 * pi
            score *= (num / (w[in_slot].sum() + 3.0)) / pi
        want[i] = score
    got = model_scores(model, [], t, context=request)
    assert_close_scores(got, want, relative=True)
    assert model_scores(model, [], t, context=None).keys() == got.keys()

    age = new("article_recency")
    age.update_many(sess, items, times)
    first = {}
    for i, ti in zip(items, times):
        first.setdefault(int(i), float(ti))
    want = {i: math.exp(-(t - f) / tau) for i, f in first.items()}
    assert_close_scores(model_scores(age, [], t), want)


def test_hybrid_is_the_weighted_sum_of_its_normalised_members(clicks):
    sess, items, times, _ = clicks
    params = {"knn": "stan", "knn_params": {"k": 1000, "sample_size": 1000, "lambda_snh_hours": 0.5},
              "pairs": "sr", "pair_steps": 3, "w_knn": 1.0, "w_pairs": 0.5, "w_pop": 0.25, "w_age": 0.125,
              "pop_half_life_hours": 0.5, "age_half_life_hours": 0.5, "pop_candidates": 5, "age_candidates": 4}
    hybrid = create_session_model("news_hybrid", params)
    hybrid.update_many(sess, items, times)
    seq, last = sessions_of(sess, items, times)
    t = float(times[-1])
    prefix = [int(x) for x in items[-3:-1]]
    knn = ref_knn("stan", prefix, t, seq, last, lam_snh=0.5 * HOUR)
    sr = ref_pairs("sr", prefix, seq, 3)
    tau = 0.5 * HOUR / math.log(2)
    pop, first = defaultdict(float), {}
    for i, ti in zip(items, times):
        pop[int(i)] += math.exp((ti - t) / tau)
        first.setdefault(int(i), float(ti))
    top_pop = sorted(pop, key=lambda i: (-pop[i], i))[:5]
    newest = list(first)[-4:]
    cands = (set(knn) | set(sr) | set(top_pop) | set(newest)) - set(prefix)
    mk, ms, mp = max(knn.values()), max(sr.values()), max(pop.values())
    want = {i: knn.get(i, 0) / mk + 0.5 * sr.get(i, 0) / ms + 0.25 * pop[i] / mp
            + 0.125 * math.exp(-(t - first[i]) / tau) for i in cands}
    got = model_scores(hybrid, prefix, t)
    assert set(got) == set(want)
    for i in want:
        assert got[i] == pytest.approx(want[i], rel=1e-6, abs=1e-12)


# --- exploration ---------------------------------------------------------------------------------------

def test_thompson_sampler_propensities():
    sampler = BetaThompsonSampler(draws=400)
    sampler.add_arms(3)
    sampler.alpha[:] = [200.0, 1.0, 1.0]
    sampler.beta[:] = [1.0, 200.0, 200.0]
    arm, prop = sampler.select(seed=3)
    assert arm == 0 and prop > 0.99
    even = BetaThompsonSampler(draws=400)
    even.add_arms(2)
    props = [even.select(seed=s)[1] for s in range(20)]
    assert 0.4 < np.mean(props) < 0.6
    assert even.select(seed=7) == even.select(seed=7)
    even.update(1, 1.0)
    assert even.alpha.tolist() == [1.0, 2.0] and even.beta.tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="no arms"):
        BetaThompsonSampler().select()


def test_explorer_places_a_fresh_article_and_logs_its_propensity(clicks):
    sess, items, times, _ = clicks
    log = ListLog()
    model = FreshExplorer(PARAMS["fresh_explorer"], logger=log)
    model.update_many(sess, items, times)
    t = float(times[-1]) + 1
    ids, scores = model.recommend([int(items[-2])], 6, timestamp=t, session=int(sess[-2]))
    assert len(log) == 1
    rec = log.records[0]
    assert rec["policy"] == "thompson-beta-fresh" and 0 < rec["propensity"] <= 1 and rec["n_candidates"] >= 1
    assert ids[rec["slot"]] == rec["item"] and rec["slot"] <= 2
    first_seen = {int(i): float(x) for i, x in reversed(list(zip(items, times)))}
    assert t - first_seen[rec["item"]] < 0.3 * HOUR
    assert np.all(np.diff(scores) <= 0)
    again, _ = model.recommend([int(items[-2])], 6, timestamp=t, session=int(sess[-2]))
    assert np.array_equal(ids, again) and log.records[1]["item"] == rec["item"]
    seen = []
    model.logger = CallbackChoiceLog(seen.append)
    model.recommend([int(items[-2])], 6, timestamp=t)
    assert len(seen) == 1
    columns = ArrayChoiceLog()
    model.logger = columns
    model.log_choices({c: np.array([1, 2]) for c in ArrayChoiceLog.COLUMNS})
    assert len(columns) == 2 and columns.columns()["item"].tolist() == [1, 2]
    late, _ = model.recommend([int(items[-2])], 6, timestamp=t + 10 * HOUR)
    assert len(late) == 6 and len(columns) == 2  # nothing fresh ten hours later: no choice, nothing logged


def test_explorer_share_explores_that_share_of_requests_and_scales_propensities(clicks):
    sess, items, times, _ = clicks
    t0 = float(times[-1]) + 1
    full, half = ListLog(), ListLog()
    a = FreshExplorer(PARAMS["fresh_explorer"], logger=full)
    b = FreshExplorer({**PARAMS["fresh_explorer"], "explore_share": 0.5}, logger=half)
    for m in (a, b):
        m.update_many(sess, items, times)
    n = 400
    lists_a, lists_b = [], []
    for r in range(n):  # distinct request times: distinct per-request draws
        t = t0 + r * 0.01
        lists_a.append(a.recommend([int(items[-2])], 6, timestamp=t)[0].tolist())
        lists_b.append(b.recommend([int(items[-2])], 6, timestamp=t)[0].tolist())
    assert len(full) == n
    assert 0.4 * n < len(half) < 0.6 * n
    by_time = {rec["timestamp"]: rec for rec in full.records}
    for rec in half.records:  # an explored request chooses as share 1 does, at half the propensity
        twin = by_time[rec["timestamp"]]
        assert rec["item"] == twin["item"]
        assert rec["propensity"] == pytest.approx(0.5 * twin["propensity"])
    explored = {rec["timestamp"] for rec in half.records}
    base = FreshExplorer(PARAMS["fresh_explorer"])._base_model()
    base.update_many(sess, items, times)
    for r in range(n):  # a request left out gets the base model's list unchanged
        t = t0 + r * 0.01
        if not any(abs(t - e) < 1e-9 for e in explored):
            assert lists_b[r] == base.recommend([int(items[-2])], 6, timestamp=t)[0].tolist()
    with pytest.raises(Exception, match="explore_share"):
        FreshExplorer({**PARAMS["fresh_explorer"], "explore_share": 0.0})
