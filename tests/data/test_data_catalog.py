"""The columnar catalogue, its category tree, and the seeded synthetic catalogue / users / embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from tastemaker.data.catalog import (
    Catalog,
    CategoryTree,
    TokenText,
    synthetic_catalog,
    synthetic_embeddings,
    synthetic_users,
)
from tastemaker.errors import ArtifactError, DataError


@pytest.fixture(scope="module")
def small() -> Catalog:
    return Catalog.build(
        ["a", "b", "c", "d", "e"],
        price=[1.0, 2.5, np.nan, 10.0, 4.0],
        margin=[0.1, 0.2, 0.3, np.nan, 0.5],
        stock=[0, 5, 1, np.nan, 3],
        category=["home/kitchen/mugs", "home/kitchen", " home / kit ", "garden/pots", None],
        brand=["acme", "zeta", "", "acme", None],
        launch=["2025-01-01", "2025-06-01", "NaT", "2024-12-31", "2025-12-01"],
        tags=[["gift", "eco"], "eco", None, [], "sale"],
        regions=["GB,FR", "", None, "*", "DE"],
        promo=[True, False, False, False, True],
        consumable=[False, False, True, False, False],
        text=["Red mug", "Kettle", "Kit", "Pot", "Thing"],
        name="small",
    )


# --- the category tree --------------------------------------------------------------------------
def test_tree_holds_every_prefix_and_codes_of_given_paths():
    tree, codes = CategoryTree.from_paths(["a/b/c", "a/b", "x", "", None, "a / b / d"])
    assert set(tree.paths.tolist()) == {"a", "a/b", "a/b/c", "a/b/d", "x"}
    assert tree.paths_of(codes).tolist() == ["a/b/c", "a/b", "x", "", "", "a/b/d"]
    assert tree.depth[tree.code("a/b/c")] == 3 and tree.depth[tree.code("x")] == 1
    assert sorted(tree.paths[tree.leaves()].tolist()) == ["a/b/c", "a/b/d", "x"]


def test_under_matches_whole_levels_only():
    tree, codes = CategoryTree.from_paths(["home/kitchen/mugs", "home/kit", "homeware", "garden"])
    assert tree.under(codes, ["home"]).tolist() == [True, True, False, False]
    assert tree.under(codes, ["home/kit"]).tolist() == [False, True, False, False]
    assert tree.under(np.append(codes, -1), ["nowhere", "garden"]).tolist() == [False, False, False, True, False]
    assert tree.level(codes, 1).tolist() == [tree.code("home"), tree.code("home"), tree.code("homeware"),
                                             tree.code("garden")]


# --- building and reading ---------------------------------------------------------------------
def test_build_stores_codes_and_unknowns(small: Catalog):
    assert len(small) == 5 and small.ids.dtype.kind == "U"
    assert small.category_paths().tolist() == ["home/kitchen/mugs", "home/kitchen", "home/kit", "garden/pots", ""]
    assert small.brand_names().tolist() == ["acme", "zeta", "", "acme", ""]
    assert small.stock.tolist() == [0, 5, 1, -1, 3]
    assert np.isnan(small.price[2]) and np.isnat(small.launch[2])
    assert small.tag_lists() == ["eco,gift", "eco", "", "", "sale"]
    assert small.region_lists() == ["FR,GB", "", "", "", "DE"]
    assert small.texts([0, 4]) == ["Red mug", "Thing"]


def test_candidate_columns_feed_the_rules_engine(small: Catalog):
    from tastemaker.ranking import Candidates

    idx = np.array([3, 0])
    cols = small.candidate_columns(idx)
    assert np.isnan(cols["stock"][0]) and cols["stock"][1] == 0  # unknown stock is NaN, not -1
    cands = Candidates(small.ids[idx], [1.0, 0.5], **cols)
    assert cands.category.tolist() == ["garden/pots", "home/kitchen/mugs"]
    assert cands.brand.tolist() == ["acme", "acme"]
    assert cands.promo.tolist() == [False, True]


def test_mask_applies_every_constraint(small: Catalog):
    assert small.mask(in_stock=True).tolist() == [False, True, True, False, True]
    assert small.mask(categories=["home/kitchen"]).tolist() == [True, True, False, False, False]
    assert small.mask(exclude_categories=["home"]).tolist() == [False, False, False, True, True]
    assert small.mask(brands=["acme"]).tolist() == [True, False, False, True, False]
    assert small.mask(price_min=2.0, price_max=5.0).tolist() == [False, True, False, False, True]  # NaN price fails
    assert small.mask(region="FR").tolist() == [True, True, True, True, False]
    assert small.mask(region="XX").tolist() == [False, True, True, True, False]  # only sold-everywhere items
    assert small.mask(tags_any=["gift", "sale"]).tolist() == [True, False, False, False, True]
    assert small.mask(in_stock=True, categories=["home"]).tolist() == [False, True, True, False, False]


def test_indices_by_binary_search(small: Catalog):
    assert small.indices(["c", "a", "zz"]).tolist() == [2, 0, -1]
    assert small.index("e") == 4
    cat = synthetic_catalog(100, seed=1)
    assert cat.indices([5, 99, 100, -3]).tolist() == [5, 99, -1, -1]
    ints = Catalog.build([30, 10, 20])
    assert ints.indices([20, 10, 11]).tolist() == [2, 1, -1]
    assert ints.index("30") == 0


def test_duplicate_ids_and_too_many_tags_are_rejected():
    with pytest.raises(DataError, match="duplicate catalog ids"):
        Catalog.build(["a", "b", "a"])
    with pytest.raises(DataError, match="at most 64"):
        Catalog.build(list(range(65)), tags=[[f"t{i}"] for i in range(65)])


def test_select_and_save_load_round_trip(tmp_path, small: Catalog):
    part = small.select(np.array([4, 0]))
    assert part.ids.tolist() == ["e", "a"] and part.texts() == ["Thing", "Red mug"]
    assert part.category_paths().tolist() == ["", "home/kitchen/mugs"]
    for cat in (small, synthetic_catalog(500, seed=3)):
        back = Catalog.load(cat.save(tmp_path / cat.name))
        for col in ("ids", *Catalog._COLUMNS):
            np.testing.assert_array_equal(getattr(back, col), getattr(cat, col))
        assert back.texts() == cat.texts() and back.category_paths().tolist() == cat.category_paths().tolist()
        assert back.mask(in_stock=True, region="GB").tolist() == cat.mask(in_stock=True, region="GB").tolist()
    (tmp_path / "other").mkdir()
    from tastemaker.artifacts import write_bundle

    write_bundle(tmp_path / "other", {"model": "als"}, {})
    with pytest.raises(ArtifactError, match="not a catalog"):
        Catalog.load(tmp_path / "other")


# --- synthetic ----------------------------------------------------------------------------------
def test_synthetic_catalog_is_seeded_and_plausible():
    a, b, c = synthetic_catalog(20_000, seed=7), synthetic_catalog(20_000, seed=7), synthetic_catalog(20_000, seed=8)
    for col in Catalog._COLUMNS:
        np.testing.assert_array_equal(getattr(a, col), getattr(b, col))
    assert not np.array_equal(a.price, c.price)
    assert a.texts([0, 1]) == b.texts([0, 1])
    np.testing.assert_array_equal(a.ids, np.arange(20_000))
    assert abs(float(a.popularity.sum()) - 1.0) < 1e-4
    top = np.sort(a.popularity)[::-1]
    assert top[:200].sum() > 0.3  # long tail: the top 1 % of items hold a large share of demand
    assert (a.price >= 0.99).all() and np.allclose((a.price * 100).round() % 100, 99)
    assert ((a.margin > 0) & (a.margin < 1)).all()
    assert 0.03 < (a.stock == 0).mean() < 0.12 and (a.stock >= 0).all()
    assert np.isin(a.category, a.categories.leaves()).all()
    assert a.brand.min() >= 0 and a.brand.max() < len(a.brands)
    assert (a.launch <= np.datetime64("2026-01-01")).all()
    assert 0.6 < (a.regions == 0).mean() < 0.8
    grocery = a.categories.under(a.category, ["grocery"])
    assert a.consumable[grocery].mean() > 0.7 > a.consumable[~grocery].mean()
    s = synthetic_catalog(50, seed=0, string_ids=True)
    assert s.ids[:2].tolist() == ["sku0", "sku1"] and s.index("sku7") == 7


def test_synthetic_users_follow_their_favourite_categories():
    cat = synthetic_catalog(30_000, seed=2)
    users = synthetic_users(cat, 400, seed=3, mean_history=25, affinity=0.8)
    assert users.indptr[-1] == len(users.item) and users.n_users == 400
    assert (np.diff(users.indptr) >= 1).all()
    for u in (0, 17, 399):
        _, times = users.history(u)
        assert (np.diff(times) >= 0).all() and (users.user[users.indptr[u]:users.indptr[u + 1]] == u).all()
    fav = users.favourite_leaf[users.user]
    in_fav = (cat.category[users.item][:, None] == fav).any(axis=1)
    assert in_fav.mean() > 0.75  # 80 % chosen there, plus a little chance
    again = synthetic_users(cat, 400, seed=3, mean_history=25, affinity=0.8)
    np.testing.assert_array_equal(again.item, users.item)
    inter = users.interactions(cat)
    assert len(inter) == len(users.item) and inter.n_items == len(cat)


def test_synthetic_embeddings_cluster_by_category():
    cat = synthetic_catalog(5_000, seed=4)
    vec = synthetic_embeddings(cat, dim=32, seed=4)
    assert vec.shape == (5_000, 32) and vec.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vec, axis=1), 1.0, atol=1e-5)
    same = cat.category[:, None] == cat.category[None, :]
    sims = vec @ vec.T
    off = ~np.eye(len(cat), dtype=bool)
    assert sims[same & off].mean() > sims[~same].mean() + 0.2
    chunked = synthetic_embeddings(cat, dim=32, seed=4, chunk=777)
    assert chunked.shape == vec.shape
    users = synthetic_users(cat, 50, seed=5)
    uv = users.user_embeddings(vec, seed=1)
    np.testing.assert_allclose(np.linalg.norm(uv, axis=1), 1.0, atol=1e-5)


def test_token_text_strings():
    text = TokenText(np.array([[0, 2, -1], [1, -1, -1]], dtype=np.int16), np.array(["red", "blue", "mug"]))
    assert text.strings() == ["red mug", "blue"] and text.strings(np.array([1])) == ["blue"]
