"""Rule files: the example validates; bad files name file, line, field and what is allowed; hot reload."""

from __future__ import annotations

import json
import os
import textwrap
import time
from pathlib import Path

import pytest

from tastemaker.errors import ConfigError
from tastemaker.ranking import RulesError, RuleSet, RuleSetHolder
from tastemaker.ranking.rules import json_key_lines, toml_key_lines


def write(tmp_path: Path, text: str, name: str = "rules.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def problem(path: Path) -> RulesError:
    with pytest.raises(RulesError) as info:
        RuleSet.load(path)
    err = info.value
    assert isinstance(err, ConfigError)
    assert str(path) in str(err)
    return err


# --- the example file --------------------------------------------------------------------------


def test_example_file_is_valid_and_its_json_twin_is_the_same_rules(example_rules, tmp_path):
    spec = example_rules.spec
    assert spec.k == 20 and len(spec.boosts) == 6 and spec.sponsored.positions == [3, 8]
    assert spec.diversity.lam == 0.8 and spec.exploration.positions == [10]
    twin = write(tmp_path, json.dumps(spec.model_dump(mode="json", by_alias=True), indent=2), "rules.json")
    assert RuleSet.load(twin).spec == spec


# --- invalid files: line and field named ---------------------------------------------------------


def test_unknown_key_names_its_line_and_the_allowed_keys(tmp_path):
    path = write(tmp_path, """
        k = 10

        [filters]
        in_stock = true
        in_stok = false
    """)
    err = problem(path)
    assert (err.line, err.field) == (5, "filters.in_stok")
    assert "line 5" in str(err) and "in_stock, min_stock" in str(err)


def test_bad_value_in_the_third_boost(tmp_path):
    path = write(tmp_path, """
        [[boosts]]
        kind = "margin"
        weight = 0.2

        [[boosts]]
        kind = "promotion"
        factor = 1.1

        [[boosts]]
        name = "bury"
        kind = "brand"
        brands = ["x"]
        factor = -0.5
    """)
    err = problem(path)
    assert (err.line, err.field) == (13, "boosts[2].factor")
    assert "greater than 0" in str(err)


def test_unknown_boost_kind_lists_the_kinds(tmp_path):
    path = write(tmp_path, """
        [[boosts]]
        kind = "margn"
        weight = 1
    """)
    err = problem(path)
    assert (err.line, err.field) == (2, "boosts[0].kind")
    assert "'margin', 'promotion', 'new_arrival', 'brand', 'category', 'tag'" in str(err)


def test_missing_key_points_at_its_table(tmp_path):
    path = write(tmp_path, """
        k = 5

        [[caps]]
        by = "brand"
        max = 2

        [[caps]]
        by = "category"
    """)
    err = problem(path)
    assert (err.line, err.field) == (7, "caps[1].max")
    assert "missing" in str(err)


def test_wrong_type_and_out_of_range_lambda_reported_together(tmp_path):
    path = write(tmp_path, """
        [sponsored]
        positions = [2, "seven"]

        [diversity]
        method = "mmr"
        lambda = 1.5
    """)
    err = problem(path)
    assert [(p.line, p.field) for p in err.problems] == [(2, "sponsored.positions[1]"), (6, "diversity.lambda")]
    assert "less than or equal to 1" in str(err)


def test_literal_values_say_what_is_allowed(tmp_path):
    path = write(tmp_path, """
        [filters]
        already_bought = "never"
    """)
    err = problem(path)
    assert (err.line, err.field) == (2, "filters.already_bought")
    assert "'allow', 'exclude' or 'exclude_unless_consumable'" in str(err)


def test_cross_field_problems_have_lines(tmp_path):
    path = write(tmp_path, """
        [filters]
        price_min = 50
        price_max = 10

        [[boosts]]
        kind = "promotion"
        factor = 1.2
        delta = 0.1

        [[caps]]
        by = "brand"
        max = 2
        depth = 2

        [[pins]]
        item = "a"
        position = 2

        [sponsored]
        positions = [3, 2]
    """)
    err = problem(path)
    got = {(p.line, p.field) for p in err.problems}
    assert got == {(3, "filters.price_max"), (7, "boosts[0].factor"), (13, "caps[0].depth"),
                   (20, "sponsored.positions[1]")}
    assert "already taken by pin 'a'" in str(err)


def test_duplicate_rule_names_rejected(tmp_path):
    path = write(tmp_path, """
        [[boosts]]
        name = "x"
        kind = "promotion"
        factor = 2

        [[caps]]
        name = "x"
        by = "brand"
        max = 1
    """)
    err = problem(path)
    assert (err.line, err.field) == (7, "caps[0].name")


def test_toml_syntax_error_has_its_line(tmp_path):
    path = write(tmp_path, """
        k = 10
        [filters
        in_stock = true
    """)
    err = problem(path)
    assert err.line == 2 and err.field == "(syntax)"


def test_json_errors_have_lines(tmp_path):
    path = write(tmp_path, """
        {
          "k": 20,
          "filters": {"in_stock": true,
                      "price_max": "cheap"},
          "boosts": [
            {"kind": "promotion", "factor": 1.1},
            {"kind": "brand",
             "brands": [], "factor": 0.5}
          ]
        }
    """, "rules.json")
    err = problem(path)
    assert [(p.line, p.field) for p in err.problems] == [(4, "filters.price_max"), (8, "boosts[1].brands")]
    broken = write(tmp_path, '{\n  "k": 20,\n  "caps": [\n}\n', "broken.json")
    err = problem(broken)
    assert err.line == 4 and "invalid JSON" in str(err)


def test_missing_file_and_text_sources(tmp_path):
    err = problem(tmp_path / "nope.toml")
    assert "does not exist" in str(err)
    with pytest.raises(RulesError, match=r"<inline>, line 1: kk: unknown key"):
        RuleSet.from_text("kk = 3", source="<inline>")
    with pytest.raises(RulesError, match=r"filters.region: Input should be a valid boolean"):
        RuleSet.from_dict({"filters": {"region": "maybe"}})


def test_key_line_scanners():
    toml = textwrap.dedent('''
        k = 3  # a comment with [brackets]
        [filters]
        price = { min = 1, max = 2 }
        tags = [
          "a", "b",
        ]
        after = 1
        [[caps]]
        by = "brand"
        [[caps]]
        "by" = "category"
        [diversity]
        note = """
        x = 1
        """
        method = "mmr"
    ''').lstrip("\n")
    lines = toml_key_lines(toml)
    assert lines[("k",)] == 1 and lines[("filters", "price", "max")] == 3 and lines[("filters", "after")] == 7
    assert lines[("caps", 0, "by")] == 9 and lines[("caps", 1, "by")] == 11 and lines[("caps", 1)] == 10
    assert lines[("diversity", "method")] == 16 and ("diversity", "x") not in lines
    js = '{\n "a": [\n  {"b": 1},\n  {"c":\n   2}\n ]\n}'
    jl = json_key_lines(js)
    assert jl[("a",)] == 2 and jl[("a", 1)] == 4 and jl[("a", 1, "c")] == 4 and jl[("a", 0, "b")] == 3


# --- hot reload ----------------------------------------------------------------------------------


def _bump(path: Path, text: str) -> None:
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))


def test_reload_swaps_on_change_and_keeps_old_rules_on_a_bad_file(tmp_path, rk):
    path = write(tmp_path, "k = 3\n")
    errors, reloads = [], []
    holder = RuleSetHolder(path, on_error=errors.append, on_reload=reloads.append)
    old = holder.current
    assert holder.check() is False and holder.current is old
    c = rk.cands(6)
    assert len(holder.rank(c, rk.ctx()).items) == 3

    _bump(path, "k = 4\n")
    assert holder.check() is True and holder.current.spec.k == 4 and holder.reloads == 1
    assert reloads == [holder.current] and holder.version != old.version
    assert len(holder.rank(c, rk.ctx()).items) == 4

    good = holder.current
    _bump(path, "k = 5\n[filters]\nin_stok = true\n")
    assert holder.check() is False
    assert holder.current is good  # still serving the last good rules
    assert isinstance(holder.last_error, RulesError) and holder.last_error.line == 3
    assert len(errors) == 1 and "in_stok" in str(errors[0])
    assert holder.check() is False and len(errors) == 1  # the same bad file is reported once
    assert len(holder.rank(c, rk.ctx()).items) == 4

    path.unlink()
    assert holder.check() is False and holder.current is good and "cannot read" in str(holder.last_error)

    _bump(path, "k = 2\n")
    assert holder.check() is True and holder.current.spec.k == 2 and holder.last_error is None


def test_invalid_file_at_start_raises(tmp_path):
    with pytest.raises(RulesError):
        RuleSetHolder(write(tmp_path, "k = 0\n"))


def test_watch_thread_picks_up_a_change(tmp_path):
    path = write(tmp_path, "k = 3\n")
    with RuleSet.watch(path, interval=0.02) as holder:
        _bump(path, "k = 7\n")
        deadline = time.monotonic() + 10
        while holder.current.spec.k != 7 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert holder.current.spec.k == 7
    assert holder._thread is None


def test_bandit_survives_a_reload_and_takes_new_settings(tmp_path):
    path = write(tmp_path, "[exploration]\npositions = [1]\nprior = [1.0, 1.0]\n")
    holder = RuleSetHolder(path)
    holder.bandit.update("new-sku", 1.0)
    _bump(path, "[exploration]\npositions = [1]\nprior = [2.0, 3.0]\ndraws = 300\n")
    assert holder.check()
    assert holder.bandit.posterior("new-sku") == (3.0, 3.0)  # the reward is kept, the prior replaced
    assert holder.bandit.posterior("other") == (2.0, 3.0) and holder.bandit.draws == 300
