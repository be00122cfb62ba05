"""Analysis from logs: metrics computed by hand on a tiny log (service format, torn line, damaged
line, events before exposure, mixed units, orders), and the decisions on simulated experiments."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tastemaker.errors import DataError
from tastemaker.experiments import DONT_SHIP, INVESTIGATE, SHIP, ExperimentsConfig, analyze_logs
from tastemaker.experiments.logs import load_events, load_exposures
from tastemaker.experiments.report import render_html, render_text
from tastemaker.serving.events import encode_line

EXPOSURES = [  # (unit, variant, at, returning, items)
    ("c1", "control", 100, True, ["a", "b", "x"]), ("c1", "control", 200, True, ["a", "c", "x"]),
    ("c2", "control", 150, False, ["a", "b", "c"]),
    ("t1", "treatment", 100, False, ["a", "b", "c"]),
    ("t2", "treatment", 100, True, ["a", "b", "c"]), ("t2", "treatment", 300, True, ["b", "c", "x"]),
    ("t3", "treatment", 120, True, ["x", "b", "c"]),
    ("m1", "control", 100, True, ["a"]), ("m1", "treatment", 130, True, ["a"]),  # seen in both arms
]
EVENTS = [  # (user, type, item, ts, price, quantity, session, order)
    ("c1", "click", "a", 110, None, 1, None, None), ("c1", "click", "c", 210, None, 1, None, None),
    ("c1", "purchase", "a", 220, 10.0, 1, "sA", None), ("c1", "purchase", "b", 221, 5.0, 2, "sA", None),
    ("c2", "click", "b", 160, None, 1, None, None),
    ("c2", "click", "a", 50, None, 1, None, None),  # before c2's first exposure: not an effect
    ("t1", "click", "a", 101, None, 1, None, None),
    ("t1", "purchase", "a", 130, 30.0, 1, None, "O1"), ("t1", "purchase", "c", 131, 10.0, 1, "s9", "O1"),
    ("t1", "purchase", "b", 400, 8.0, 1, None, None),  # no order id, no session: an order of its own
    ("t2", "purchase", "a", 310, 12.0, 1, "s1", None), ("t2", "purchase", "c", 320, 20.0, 1, "s2", None),
    ("t3", "click", "x", 125, None, 1, None, None), ("t3", "click", "b", 126, None, 1, None, None),
    ("t3", "view", "b", 127, None, 1, None, None),
    ("zz", "click", "a", 500, None, 1, None, None),  # a user never exposed
    ("m1", "purchase", "a", 200, 99.0, 1, None, None),
]
CATS = {"a": "home", "b": "books", "c": "home", "x": "toys"}


def _exposure_records():
    for n, (unit, variant, at, returning, items) in enumerate(EXPOSURES):
        yield {"kind": "exposure", "id": f"r{n}:e", "at": at, "experiment": "e", "layer": "default",
               "variant": variant, "share": 0.5, "unit": "user", "unit_id": unit, "user_id": unit, "session_id": None,
               "returning": returning, "request_id": f"r{n}",
               "items": [{"item_id": i, "position": p + 1, "propensity": 1.0 if p else 0.5, "category": CATS[i]}
                         for p, i in enumerate(items)]}


def _event_dicts():
    for n, (user, kind, item, ts, price, qty, session, order) in enumerate(EVENTS):
        ev = {"event_id": f"e{n}", "type": kind, "user_id": user, "item_id": item,
              "timestamp": pd.Timestamp(ts, unit="s", tz="UTC").isoformat(), "quantity": qty,
              "received_at": 10_000.0}
        for k, v in (("price", price), ("session_id", session), ("order_id", order)):
            if v is not None:
                ev[k] = v
        yield ev


@pytest.fixture
def service_logs(tmp_path):
    """The tiny log in the service's format: checksummed lines, events wrapped, an item upsert, a torn tail."""
    exp = tmp_path / "exposures.log"
    exp.write_bytes(b"".join(encode_line(r) for r in _exposure_records()) + b"0badc0de {\"kind\": \"expo")
    ev = tmp_path / "events.log"
    lines = [encode_line({"kind": "event", "id": e["event_id"], "event": e}) for e in _event_dicts()]
    lines.insert(3, encode_line({"kind": "item", "item_id": "new", "item": {"price": 3, "title": "x"}}))
    ev.write_bytes(b"".join(lines))
    return exp, ev


def _config(**settings):
    return ExperimentsConfig.single(["control", "treatment"], name="e", bootstrap=50, looks=3, **settings)


def test_metrics_by_hand_from_service_logs(service_logs):
    exp, ev = service_logs
    r = analyze_logs(exp, ev, config=_config())
    assert r.counts == {"control": 2, "treatment": 3}  # m1 saw both arms: left out
    assert any("more than one variant" in w for w in r.warnings)
    assert any("before their unit's first exposure" in w for w in r.warnings)
    assert r.data["events_unmatched"] == 1 and r.data["events_before_exposure"] == 1
    got = {m.metric: (m.value_c, m.value_t) for m in r.metrics}
    assert got["ctr"] == pytest.approx((3 / 9, 3 / 12))
    assert got["aov"] == pytest.approx((20.0, 80 / 4))  # t1: order O1 (40) and a lone purchase (8); t2: 2 sessions
    assert got["conversion"] == pytest.approx((1 / 2, 2 / 3))
    assert got["revenue_per_user"] == pytest.approx((10.0, 80 / 3))
    assert got["items_per_order"] == pytest.approx((3.0, 5 / 4))
    assert r.metric("ctr").lift == pytest.approx((3 / 12) / (3 / 9) - 1)
    # categories come from the exposures' items; segments cover user type and category
    assert r.data["categories"] == ["books", "home", "toys"]
    segs = {(s["metric"], s["dimension"], s["segment"]) for s in r.segments["treatment"]}
    assert {("ctr", "category", c) for c in ("books", "home", "toys")} <= segs
    assert r.data["user_types"] and not any(d == "user_type" for _, d, _ in segs)  # one returning control unit: too few
    home = next(s for s in r.segments["treatment"] if s["metric"] == "ctr" and s["segment"] == "home")
    # clicks on home items (a, c) / their impressions: control 2/5 (c1 saw a, a, c; c2 a, c), treatment 1/6
    assert (home["value_c"], home["value_t"]) == pytest.approx((2 / 5, 1 / 6))


def test_every_log_format_gives_the_same_numbers(service_logs, tmp_path):
    exp, ev = service_logs
    ref = analyze_logs(exp, ev, config=_config())
    flat_exp = tmp_path / "exposures.jsonl"
    flat_exp.write_text("".join(json.dumps(r) + "\n" for r in _exposure_records()))
    flat_ev = tmp_path / "events.jsonl"
    flat_ev.write_text("".join(json.dumps(e) + "\n" for e in _event_dicts()))
    csv_ev = tmp_path / "events.csv"
    pd.DataFrame(list(_event_dicts())).to_csv(csv_ev, index=False)
    for events in (flat_ev, csv_ev):
        r = analyze_logs(flat_exp, events, config=_config())
        assert [(m.metric, m.value_c, m.value_t) for m in r.metrics] == \
            [(m.metric, m.value_c, m.value_t) for m in ref.metrics]
    # records that do not fit the fast (arrow) reader's types take the record-by-record path
    odd = tmp_path / "odd.jsonl"
    recs = list(_exposure_records())
    recs[0]["unit_id"] = "c1"
    recs[1]["at"] = "1970-01-01T00:03:20Z"  # an ISO time among numbers
    odd.write_text("".join(json.dumps(r) + "\n" for r in recs))
    log = load_exposures(odd)
    assert log.frame["at"].tolist()[:2] == [100.0, 200.0] and len(log.items) == sum(len(e[4]) for e in EXPOSURES)


def test_damaged_lines_are_named_and_a_torn_tail_is_skipped(service_logs, tmp_path):
    exp, _ = service_logs
    assert len(load_exposures(exp).frame) == len(EXPOSURES)  # the torn last line is ignored
    lines = exp.read_bytes().split(b"\n")
    lines[2] = lines[2].replace(b'"c2"', b'"c3"')  # checksum no longer matches
    bad = tmp_path / "bad.log"
    bad.write_bytes(b"\n".join(lines))
    with pytest.raises(DataError, match="line 3"):
        load_exposures(bad)
    with pytest.raises(DataError, match="unknown event types"):
        p = tmp_path / "ev.jsonl"
        p.write_text(json.dumps({"type": "like", "user_id": "u", "item_id": "i"}) + "\n")
        load_events(p)
    with pytest.raises(DataError, match="no exposures of experiment 'other'"):
        analyze_logs(exp, service_logs[1], config=ExperimentsConfig.single(["control", "treatment"], name="other"))


def test_config_is_inferred_from_the_log(service_logs):
    r = analyze_logs(*service_logs)
    assert r.experiment == "e" and r.variants == ["control", "treatment"] and r.control == "control"
    assert r.settings["shares"] == {"control": 0.5, "treatment": 0.5}


# --- decisions on simulated experiments ------------------------------------------------------------


def test_a_clear_ctr_win_with_flat_guardrails_ships(simulated):
    p = simulated(users=6000, ctr_lift=0.25, seed=1)
    r = analyze_logs(p["exposures"], p["events"], pre=p["pre"], config=p["config"])
    d = r.decision()
    assert d["verdict"] == SHIP, d["reasons"]
    assert d["primary_better"] == ["ctr"] and not d["failing_guardrails"]
    assert r.metric("ctr").lift_low < 0.25 < r.metric("ctr").lift_high
    assert d["next_test"]["kind"] == "ramp_with_holdout"
    assert not r.srm["flagged"]
    # deciding on always-valid p-values (safe to peek) uses them, and the confidence sequence
    config = ExperimentsConfig.load(p["config"])
    config.experiments[0].decision_basis = "sequential"
    seq = analyze_logs(p["exposures"], p["events"], pre=p["pre"], config=config)
    ctr = seq.metric("ctr")
    assert ctr.significant == (ctr.sequential["p_always_valid_adjusted"] < 0.05)
    assert ctr.sequential["p_always_valid"] > ctr.p and ctr.sequential["lift_low"] < ctr.lift_low
    assert seq.decision()["verdict"] == SHIP and "always-valid p" in seq.decision()["reasons"][0]


def test_a_sample_ratio_mismatch_means_investigate_whatever_the_metrics_say(simulated):
    p = simulated(users=4000, actual_share=0.45, ctr_lift=0.25, seed=2)
    r = analyze_logs(p["exposures"], p["events"], config=p["config"])
    d = r.decision()
    assert r.srm["flagged"] and r.srm["p"] < 0.001
    assert d["verdict"] == INVESTIGATE
    assert "sample ratio mismatch" in d["reasons"][0]
    assert d["next_test"]["kind"] == "fix_srm"


def test_a_primary_loss_is_dont_ship_and_an_aa_test_is_inconclusive(simulated):
    p = simulated(users=6000, ctr_lift=-0.25, seed=3)
    d = analyze_logs(p["exposures"], p["events"], config=p["config"]).decision()
    assert d["verdict"] == DONT_SHIP and d["primary_worse"] == ["ctr"]
    p = simulated(users=3000, seed=6)  # an A/A test (one whose CTR is, like 95 % of them, not significant)
    r = analyze_logs(p["exposures"], p["events"], config=p["config"])
    d = r.decision()
    assert d["verdict"] == INVESTIGATE and d["next_test"]["kind"] == "extend"
    assert d["next_test"]["units_per_variant"] > r.counts["treatment"]


def test_a_loss_among_new_users_is_traced_to_them(simulated):
    p = simulated(users=8000, aov_lift=-0.08, aov_segment="user_type=new", seed=5)
    r = analyze_logs(p["exposures"], p["events"], pre=p["pre"], config=p["config"])
    d = r.decision()
    assert d["verdict"] == DONT_SHIP and "aov" in d["failing_guardrails"]
    drv = next(x for x in d["drivers"] if x["metric"] == "aov")
    assert (drv["dimension"], drv["segment"]) == ("user_type", "new")
    assert drv["heterogeneity_p"] < 0.05
    returning = next(s for s in r.segments["treatment"] if s["metric"] == "aov" and s["segment"] == "returning")
    assert returning["lift_low"] < 0 < returning["lift_high"]  # returning users: no loss


def test_the_seed_case_report(seed_case, tmp_path):
    r = analyze_logs(seed_case["exposures"], seed_case["events"], pre=seed_case["pre"], config=seed_case["config"])
    d = r.decision()
    assert d["verdict"] == DONT_SHIP
    assert d["failing_guardrails"][0] == "aov" and d["primary_better"] == ["ctr"]
    ctr, aov = r.metric("ctr"), r.metric("aov")
    assert ctr.lift_low < 0.05 < ctr.lift_high and aov.lift_low < -0.04 < aov.lift_high  # the truth is covered
    assert aov.method == "cuped" and aov.bootstrap[0] < aov.lift < aov.bootstrap[1]
    drv = d["drivers"][0]
    assert (drv["metric"], drv["dimension"], drv["segment"]) == ("aov", "category", "electronics")
    assert drv["share_of_change"] > 0.8 > 0.6 > drv["baseline_share"]
    assert d["next_test"]["kind"] == "exclude_segment" and d["next_test"]["segment"]["value"] == "electronics"
    looks = ctr.sequential["looks"]
    assert len(looks) == 14 and looks[-1]["n_t"] == ctr.n_t and looks[0]["n_t"] < looks[-1]["n_t"]
    assert ctr.sequential["p_always_valid"] >= ctr.p  # the always-valid p pays for peeking
    text = render_text(r)
    assert "DECISION: DON'T SHIP" in text and "guardrail AOV fails" in text and "category = electronics" in text
    html = render_html(r, tmp_path / "r.html")
    assert (tmp_path / "r.html").read_text() == html
    assert html.count("data:image/png;base64,") >= 4 and "http" not in html.replace("http-equiv", "")
    assert json.loads(json.dumps(r.to_dict()))["decisions"][0]["verdict"] == DONT_SHIP
