"""`tastemaker ab …`: the acceptance case (CTR up, AOV down → don't ship, AOV named, the segment
shown, a next test), simulate → analyze round trip, assignments and errors."""

from __future__ import annotations

import json


def test_ab_analyze_on_ctr_up_aov_down_says_dont_ship_names_aov_and_the_segment(run, seed_case, tmp_path):
    html, out_json = tmp_path / "report.html", tmp_path / "out.json"
    out = run("ab", "analyze", "--exposures", str(seed_case["exposures"]), "--events", str(seed_case["events"]),
              "--pre", str(seed_case["pre"]), "--config", str(seed_case["config"]), "--html", str(html),
              "--json", str(out_json))
    assert "DECISION: DON'T SHIP" in out
    assert "guardrail AOV fails" in out
    assert "primary metric CTR improves" in out
    assert "AOV loss comes from category = electronics" in out
    assert "Suggested next test:" in out and "everywhere except category = electronics" in out
    doc = json.loads(out_json.read_text())
    d = doc["decisions"][0]
    assert d["verdict"] == "don't ship" and d["failing_guardrails"][0] == "aov"
    assert d["drivers"][0]["segment"] == "electronics" and d["next_test"]["units_per_variant"] > 0
    page = html.read_text()
    assert "DON&#x27;T SHIP" in page and page.count("<img") >= 4 and "<script" not in page


def test_ab_simulate_then_analyze_round_trip(run, tmp_path):
    out = run("ab", "simulate", "--out", str(tmp_path / "aa"), "--users", "1500", "--seed", "3")
    assert "true effects: ctr +0.00%" in out
    for name in ("exposures.jsonl", "events.jsonl", "pre.csv", "catalog.csv", "experiment.toml"):
        assert (tmp_path / "aa" / name).is_file()
    out = run("ab", "analyze", "--exposures", str(tmp_path / "aa" / "exposures.jsonl"),
              "--events", str(tmp_path / "aa" / "events.jsonl"), "--config", str(tmp_path / "aa" / "experiment.toml"),
              "--json", str(tmp_path / "aa.json"))
    doc = json.loads((tmp_path / "aa.json").read_text())
    assert sum(doc["counts"].values()) == 1500 and not doc["srm"]["flagged"]
    assert "sample ratio mismatch" in out and "Metrics ('treatment' vs 'control'" in out


def test_ab_assign_and_errors(run, seed_case, tmp_path):
    out = json.loads(run("ab", "assign", "--config", str(seed_case["config"]), "u000001", "--session", "s1"))
    assert out["user:u000001"][0]["experiment"] == "reco-v2"
    assert out["user:u000001"][0]["variant"] in ("control", "treatment")
    out = run("ab", "analyze", "--exposures", str(tmp_path / "missing.jsonl"), "--events",
              str(seed_case["events"]), code=2)
    assert "missing.jsonl" in out and "does not exist" in out
    bad = tmp_path / "bad.toml"
    bad.write_text('[experiment]\nname = "x"\nvariants = [{name = "a", share = 0.7}, {name = "b", share = 0.7}]\n')
    out = run("ab", "analyze", "--exposures", str(seed_case["exposures"]), "--events", str(seed_case["events"]),
              "--config", str(bad), code=2)
    assert "sum to 1" in out
