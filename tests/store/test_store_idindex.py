"""`IdLookup`: the vectorised id → row lookup must answer exactly like the dict it indexes."""

import numpy as np
import pytest

from tastemaker.store.idindex import IdLookup, id_hashes


def _expected(pos: dict[str, int], ids) -> np.ndarray:
    return np.asarray([pos.get(str(i), -1) for i in ids], dtype=np.int64)


@pytest.fixture
def big():
    ids = [f"SKU-{i:06d}" for i in range(20_000)]
    pos = dict(zip(ids, range(len(ids))))
    return ids, pos, IdLookup(pos, min_size=1000)


def test_lookup_matches_the_dict_for_known_and_unknown_ids(big):
    ids, pos, lk = big
    rng = np.random.default_rng(0)
    q = [ids[i] for i in rng.integers(0, len(ids), 500)] + ["nope", "", "SKU-1", "SKU-0000001", "sku-000001"]
    assert lk._snapshot() is not None  # the vectorised path is the one tested
    np.testing.assert_array_equal(lk.lookup(q), _expected(pos, q))
    np.testing.assert_array_equal(lk.lookup(np.asarray(q)), _expected(pos, q))
    np.testing.assert_array_equal(lk.lookup(np.asarray(ids)), np.arange(len(ids)))


def test_additions_deletions_and_readds_follow_the_dict(big):
    ids, pos, lk = big
    lk.lookup(ids[:100])  # snapshot built
    pos["NEW-1"] = len(pos)  # added after the snapshot: found through the dict
    gone = pos.pop(ids[5])
    lk.forget([gone])
    pos[ids[7]] = 99_999  # an id re-assigned a new row after a delete (the old row forgotten)
    lk.forget([7])
    q = ["NEW-1", ids[5], ids[7], ids[8], *ids[100:200]]
    np.testing.assert_array_equal(lk.lookup(q), _expected(pos, q))


def test_rebuilds_after_growth_and_keeps_answering():
    pos = {f"a{i}": i for i in range(5000)}
    lk = IdLookup(pos, min_size=1000)
    lk.lookup(list(pos)[:50])
    first = lk._snap
    for i in range(5000, 8000):
        pos[f"a{i}"] = i
    q = [f"a{i}" for i in range(0, 8000, 7)]
    np.testing.assert_array_equal(lk.lookup(q), _expected(pos, q))
    assert lk._snap is not first and lk._snap.n == 8000


def test_ids_with_nul_characters_fall_back_to_the_dict():
    pos = {f"x{i}": i for i in range(3000)}
    pos["x1\x00"] = 5000  # numpy strings drop trailing NULs: "x1\x00" would look like "x1"
    lk = IdLookup(pos, min_size=1000)
    q = ["x1", "x1\x00"] + [f"x{i}" for i in range(100)]
    np.testing.assert_array_equal(lk.lookup(q), _expected(pos, q))


def test_hashes_do_not_depend_on_the_string_width():
    a = np.asarray(["ab", "SKU-1"])
    b = np.asarray(["ab", "SKU-1", "a much longer id than the others"])
    np.testing.assert_array_equal(id_hashes(a), id_hashes(b)[:2])
    assert len({tuple(h) for h in id_hashes(np.asarray(["ab", "ba", "a", "b", "ab "])).tolist()}) == 5


def test_pipeline_attribute_table_category_rows_match_the_paths():
    from tastemaker.pipeline import AttributeTable
    from tastemaker.ranking.diversity import category_codes

    n = 6000
    ids = [f"S{i}" for i in range(n)]
    cats = np.asarray([f"d{i % 7}/a{i % 3}" if i % 11 else "" for i in range(n)], dtype=object)
    t = AttributeTable.from_columns(ids, category=cats, price=np.arange(n, dtype=float))
    t.upsert("NEW", category="zz/new", price=1.0)
    q = np.asarray(["S5", "S11", "NEW", "unknown", *ids[100:600]])
    cols, known, rows = t.rule_attributes(q)
    assert known.tolist()[:4] == [True, True, True, False]
    codes, depths = category_codes(cols["category"])
    from tastemaker.ranking.diversity import CATEGORIES

    got_codes, got_depths = CATEGORIES.codes(rows)
    np.testing.assert_array_equal(got_codes, codes)
    np.testing.assert_array_equal(got_depths, depths)
