"""The pipeline seam: stages, sources, fusion, features from the store, scoring, rules, config."""

from __future__ import annotations

import numpy as np
import pytest

from tastemaker.errors import ConfigError, DataError
from tastemaker.pipeline import (
    AttributeTable,
    CandidateSet,
    CatalogAttributes,
    Constraints,
    LinearScorer,
    Pipeline,
    PipelineConfig,
    PipelineRequest,
    PopularSource,
    Resources,
    RetrievalSource,
    Retrieve,
    Rules,
    Score,
    ScorerConfig,
    SourceConfig,
    StoreFeatures,
    TopK,
    build_pipeline,
    register_scorer,
    register_source,
)
from tastemaker.ranking import RuleSet
from tastemaker.store import MemoryStore, ResilientStore
from tastemaker.store.redis import RedisStore
from tastemaker.testing.redis_server import free_port


class FixedSource:
    def __init__(self, name, ids, scores):
        self.name, self.ids, self.scores = name, ids, scores

    def retrieve(self, request, n):
        return CandidateSet.of(self.ids[:n], self.scores[:n], self.name)


def test_union_fuses_ranks_keeps_each_sources_score_and_tags():
    a = FixedSource("a", ["x", "y", "z"], [0.9, 0.5, 0.1])
    b = FixedSource("b", ["y", "w"], [100.0, 50.0])
    out = Retrieve([a, b], n=10).run(PipelineRequest(), CandidateSet.empty())
    assert out.ids[0] == "y"  # found by both
    assert set(out.ids) == {"x", "y", "z", "w"}
    j = out.ids.tolist().index("y")
    assert out.sources[j] == "a+b"
    assert out.features["score_a"][j] == 0.5 and out.features["score_b"][j] == 100.0
    assert out.features["score_b"][out.ids.tolist().index("x")] == 0.0


def test_union_respects_quotas_and_n():
    a = FixedSource("a", [f"a{i}" for i in range(10)], list(range(10, 0, -1)))
    b = FixedSource("b", [f"b{i}" for i in range(10)], list(range(10, 0, -1)))
    out = Retrieve([a, b], n=6, quotas={"a": 2}).run(PipelineRequest(), CandidateSet.empty())
    assert len(out) == 6
    assert sum(i.startswith("a") for i in out.ids) == 2


def test_fallback_answers_when_no_source_has_anything():
    empty = FixedSource("a", [], [])
    pop = PopularSource((["p1", "p2", "p3"], [1.0, 3.0, 2.0]))
    req = PipelineRequest(user_id="u")
    out = Retrieve([empty], fallback=pop).run(req, CandidateSet.empty())
    assert out.ids.tolist() == ["p2", "p3", "p1"]
    assert "popular" in req.fallback


def test_popular_source_skips_exclusions_and_seen_items():
    pop = PopularSource((["p1", "p2", "p3"], [3.0, 2.0, 1.0]))
    req = PipelineRequest(seen={"p1"}, constraints=Constraints(exclude_items=["p3"]))
    assert pop.retrieve(req, 5).ids.tolist() == ["p2"]


def test_score_stage_reorders_by_the_scorer_and_keeps_the_retrieval_score():
    cands = CandidateSet(np.array(["a", "b", "c"]), np.array([3.0, 2.0, 1.0]), np.array(["s"] * 3),
                         {"f": np.array([0.0, 1.0, 5.0]), "g": np.array([1.0, np.nan, 0.0])})
    out = Score(LinearScorer({"f": 1.0, "g": 2.0})).run(PipelineRequest(), cands)
    assert out.ids.tolist() == ["c", "a", "b"]
    np.testing.assert_array_equal(out.scores, [5.0, 2.0, 1.0])
    np.testing.assert_array_equal(out.features["retrieval_score"], [1.0, 3.0, 2.0])


def test_a_scorer_returning_the_wrong_shape_is_an_error():
    class Bad:
        def score(self, request, candidates):
            return np.zeros(1)

    with pytest.raises(DataError, match="1,"):
        Score(Bad()).run(PipelineRequest(), CandidateSet.of(["a", "b"], [1, 2], "s"))


def _store():
    s = MemoryStore()
    v = s.create_version()
    s.put_item_features(["a", "b"], [[1.0, 10.0], [2.0, 20.0]], ["pop", "price"], version=v)
    s.put_item_vectors(["a", "b"], [[1.0, 0.0], [0.0, 1.0]], version=v)
    s.put_user_vectors(["u"], [[0.5, 2.0]], version=v)
    s.activate(v)
    return s


def test_store_features_adds_item_columns_and_the_user_item_dot():
    cands = CandidateSet.of(["b", "a", "zz"], [1, 1, 1], "s")
    req = PipelineRequest(user_id="u")
    out = StoreFeatures(_store()).run(req, cands)
    np.testing.assert_array_equal(out.features["item.pop"][:2], [2.0, 1.0])
    assert np.isnan(out.features["item.pop"][2])
    np.testing.assert_allclose(out.features["user_item_dot"][:2], [2.0, 0.5])
    assert req.degraded is None


def test_store_features_degrade_to_the_fallback_when_the_primary_is_down():
    dead = RedisStore(f"redis://127.0.0.1:{free_port()}/0", namespace="x")
    store = ResilientStore(dead, _store())
    req = PipelineRequest(user_id="u")
    out = StoreFeatures(store).run(req, CandidateSet.of(["a"], [1], "s"))
    assert req.degraded and "unreachable" in req.degraded
    assert out.features["item.pop"][0] == 1.0


def test_store_features_without_a_fallback_leave_features_out_and_say_why():
    dead = RedisStore(f"redis://127.0.0.1:{free_port()}/0", namespace="x")
    req = PipelineRequest(user_id="u")
    out = StoreFeatures(dead).run(req, CandidateSet.of(["a"], [1], "s"))
    assert req.degraded and "item.pop" not in out.features
    assert any("store unavailable" in n for n in req.notes)


def test_attribute_table_bulk_build_upsert_and_lookup():
    t = AttributeTable.from_columns(["a", "b"], price=[1.0, 2.0], category=["x/y", "z"], tags=[["t1"], []])
    assert t.upsert("c", price=3.0, brand="B") is True
    assert t.upsert("a", stock=4) is False
    cols, known = t.attributes(["c", "a", "nope"])
    assert known.tolist() == [True, True, False]
    np.testing.assert_array_equal(cols["price"][:2], [3.0, 1.0])
    assert np.isnan(cols["price"][2])
    assert cols["brand"].tolist() == ["B", "", ""]
    assert t.get("a") == {"price": 1.0, "category": "x/y", "tags": ["t1"], "stock": 4.0, "brand": None}
    with pytest.raises(ConfigError, match="colour"):
        t.upsert("a", colour="red")


def test_topk_applies_constraints_with_attributes_and_notes_without():
    t = AttributeTable.from_columns(["a", "b", "c"], price=[5.0, 50.0, 500.0], category=["h/k", "h/g", "s"])
    cands = CandidateSet.of(["a", "b", "c"], [3, 2, 1], "s")
    req = PipelineRequest(k=5, constraints=Constraints(price_max=100, categories=["h"], exclude_items=["a"]))
    assert TopK(t).run(req, cands).ids.tolist() == ["b"]
    req = PipelineRequest(k=2, constraints=Constraints(price_max=100))
    assert TopK().run(req, cands).ids.tolist() == ["a", "b"]
    assert "not applied" in req.notes[0]


def test_rules_stage_traces_what_moved_each_item():
    rules = RuleSet.from_dict({"boosts": [{"name": "promo", "kind": "promotion", "factor": 10.0}]})
    t = AttributeTable.from_columns(["a", "b"], promo=[False, True])
    req = PipelineRequest(k=2, trace=True)
    out = Rules(rules, t).run(req, CandidateSet.of(["a", "b"], [2.0, 1.0], "s"))
    assert out.ids.tolist() == ["b", "a"]
    assert out.extras[0]["trace"][0]["rule"] == "promo"
    assert req.rules_version == rules.version


def test_pipeline_times_every_stage_and_cuts_at_k():
    src = FixedSource("a", ["x", "y", "z"], [3.0, 2.0, 1.0])
    p = Pipeline([Retrieve([src]), TopK()], name="t")
    res = p.run(PipelineRequest(k=2, trace=True))
    assert res.item_ids == ["x", "y"]
    assert [s.stage for s in res.stages] == ["retrieve", "topk"]
    assert all(s.ms >= 0 for s in res.stages)
    assert res.stages[0].n_out == 3 and res.stages[1].n_out == 2
    assert res.items[0].sources == ["a"]


def test_a_pipeline_refuses_things_that_are_not_stages():
    with pytest.raises(ConfigError, match="not a pipeline stage"):
        Pipeline([object()])
    with pytest.raises(ConfigError, match="unique"):
        Pipeline([TopK(), TopK()])


def test_build_pipeline_from_config_with_plugged_in_source_and_scorer():
    register_source("fixed-test", lambda c, r: FixedSource(c.name or "fixed", ["a", "b", "c"], [1.0, 2.0, 3.0]))
    register_scorer("reverse-test", lambda c, r: type("S", (), {"score": lambda self, q, cs: -cs.scores})())
    cfg = PipelineConfig(sources=[SourceConfig(kind="fixed-test")], scorer=ScorerConfig(kind="reverse-test"), k=3)
    p = build_pipeline(cfg, Resources())
    assert [s.name for s in p.stages] == ["retrieve", "score", "topk"]
    assert p.run(PipelineRequest(k=3)).item_ids == ["a", "b", "c"]


def test_build_pipeline_names_what_is_missing():
    with pytest.raises(ConfigError, match="unknown candidate source kind 'ann-x'"):
        build_pipeline(PipelineConfig(sources=[SourceConfig(kind="ann-x")]), Resources())
    with pytest.raises(ConfigError, match="needs a model"):
        build_pipeline(PipelineConfig(sources=[SourceConfig(kind="model")]), Resources())
    with pytest.raises(ConfigError, match="unknown key"):
        PipelineConfig.parse({"stages": []})


def _small_catalog():
    from tastemaker.data.catalog import synthetic_catalog

    return synthetic_catalog(300, seed=3)


def test_catalog_attributes_feed_the_rules_and_take_upserts_on_top():
    cat = _small_catalog()
    attrs = CatalogAttributes(cat)
    ids = [str(i) for i in cat.ids[:3].tolist()]
    cols, known = attrs.attributes([*ids, "new-sku"])
    assert known.tolist() == [True, True, True, False]
    np.testing.assert_allclose(cols["price"][:3], cat.price[:3])
    assert np.isnan(cols["price"][3])
    assert cols["category"][0] == cat.category_paths([0])[0]
    assert attrs.upsert("new-sku", price=7.5, category="x/y") is True
    assert attrs.upsert(ids[0], price=1.25) is False
    cols, known = attrs.attributes([*ids, "new-sku"])
    assert known.all()
    assert cols["price"][3] == 7.5 and cols["category"][3] == "x/y"
    assert cols["price"][0] == 1.25 and cols["category"][0] == cat.category_paths([0])[0]  # rest kept
    out = Rules(RuleSet.from_dict({"filters": {"price_max": 2.0}}), attrs).run(
        PipelineRequest(k=5), CandidateSet.of([ids[0], "new-sku"], [1.0, 2.0], "s"))
    assert out.ids.tolist() == [ids[0]]


def test_a_retrieval_package_source_plugs_in_through_the_adapter():
    from tastemaker.retrieval.ann import AnnSource, ExactIndex

    cat = _small_catalog()
    vecs = np.random.default_rng(0).normal(size=(len(cat), 8)).astype(np.float32)
    source = AnnSource(ExactIndex().build(vecs), name="ann")
    adapter = RetrievalSource(source, cat)
    some = [str(i) for i in cat.ids[:2].tolist()]
    req = PipelineRequest(history=some, constraints=Constraints(exclude_items=[str(cat.ids[5])]))
    got = adapter.retrieve(req, 10)
    assert len(got) == 10 and set(got.sources) == {"ann"}
    assert str(cat.ids[5]) not in got.ids.tolist()
    similar = adapter.retrieve(PipelineRequest(item_id=some[0]), 5)
    assert some[0] not in similar.ids.tolist()
    res = Resources(extra={"sources": {"ann": source}, "catalog": cat})
    p = build_pipeline(PipelineConfig(sources=[SourceConfig(kind="retrieval", name="ann")]), res)
    assert len(p.run(PipelineRequest(history=some, k=4)).items) == 4
