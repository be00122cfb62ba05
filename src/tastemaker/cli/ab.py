"""`tastemaker ab …` — A/B tests: analyse exposure/event logs, simulate logs with known effects,
show assignments.

Registered on the main group with ``cli.add_command(ab)``. The logic lives in
`tastemaker.experiments`.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from tastemaker.cli.common import console, write_json

_PATH = click.Path(path_type=Path, dir_okay=False)


@click.group("ab")
def ab() -> None:
    """A/B tests: analyse logs into a decision report, simulate logs, show assignments."""


@ab.command("analyze")
@click.option("--exposures", type=_PATH, required=True,
              help="Exposure log (JSON lines; the service writes exposures.log next to events.log).")
@click.option("--events", type=_PATH, required=True,
              help="Event log: the service's events.log, or JSON lines / CSV / Parquet of events.")
@click.option("--pre", type=_PATH, default=None,
              help="Pre-period data for CUPED: per-user aggregates (user_id, clicks, orders, revenue, …) or a "
                   "pre-period event log.")
@click.option("--config", "config_file", type=_PATH, default=None,
              help="Experiments TOML (variants and shares, metrics, guardrails); default: inferred from the log.")
@click.option("--experiment", default=None, help="Which experiment to analyse when the log or config holds several.")
@click.option("--catalog", type=_PATH, default=None,
              help="Item catalogue (item_id, category) for the category deep-dive; default: the config's catalog.")
@click.option("--html", "html_file", type=_PATH, default=None, help="Write the HTML report (with plots) here.")
@click.option("--json", "json_file", type=_PATH, default=None, help="Write the full result as JSON here.")
@click.option("--seed", default=0, show_default=True, help="Seed of the bootstrap.")
def analyze(exposures: Path, events: Path, pre: Path | None, config_file: Path | None, experiment: str | None,
            catalog: Path | None, html_file: Path | None, json_file: Path | None, seed: int) -> None:
    """Analyse an experiment: metrics per variant, tests, guardrails, segments and a decision
    (ship / don't ship / investigate) with a suggested next test."""
    from tastemaker.experiments import analyze_logs
    from tastemaker.experiments.report import render_html, render_text

    result = analyze_logs(exposures, events, pre=pre, config=config_file, experiment=experiment, catalog=catalog,
                          seed=seed)
    click.echo(render_text(result), nl=False)
    if html_file is not None:
        render_html(result, html_file)
        console.print(f"wrote {html_file}")
    write_json(json_file, result.to_dict())


@ab.command("simulate")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Folder for exposures.jsonl, events.jsonl, pre.csv, catalog.csv, experiment.toml.")
@click.option("--preset", type=click.Choice(["aa", "ctr-up-aov-down"]), default="aa", show_default=True,
              help="aa: no effect; ctr-up-aov-down: CTR +5 %, AOV −4 % (all of it in category electronics). "
                   "The options below override the preset.")
@click.option("--users", type=click.IntRange(min=10), default=None, help="Units (users) in the test [24000].")
@click.option("--ctr-lift", type=float, default=None, help="Relative CTR effect of the treatment, e.g. 0.05.")
@click.option("--aov-lift", type=float, default=None, help="Relative AOV effect, e.g. -0.04.")
@click.option("--aov-segment", default=None,
              help='Where the AOV effect happens: "category=NAME", "user_type=new|returning" or both, comma-joined.')
@click.option("--conversion-lift", type=float, default=None, help="Relative effect on the order rate.")
@click.option("--treatment-share", type=float, default=None, help="Configured share of the treatment [0.5].")
@click.option("--actual-share", type=float, default=None,
              help="Share the treatment really gets (differs from --treatment-share: a sample ratio mismatch).")
@click.option("--days", type=float, default=None, help="Duration of the test in days [14].")
@click.option("--seed", type=int, default=None, help="Random seed [0].")
def simulate(out_dir: Path, preset: str, **options) -> None:
    """Write simulated exposure/event logs of an experiment with known effects."""
    from tastemaker.experiments.simulate import Scenario, simulate_logs

    base = {"ctr_lift": 0.05, "aov_lift": -0.04, "aov_segment": "category=electronics"} \
        if preset == "ctr-up-aov-down" else {}
    scenario = Scenario.parse({**base, **{k: v for k, v in options.items() if v is not None}},
                              source="ab simulate")
    paths = simulate_logs(scenario, out_dir)
    for name, p in paths.items():
        console.print(f"wrote {name}: {p}")
    truth = ", ".join(f"{k} {v:+.2%}" for k, v in scenario.truth().items())
    console.print(f"true effects: {truth}")
    console.print(f"analyse with: tastemaker ab analyze --exposures {paths['exposures']} --events {paths['events']} "
                  f"--pre {paths['pre']} --config {paths['config']} --html {Path(out_dir) / 'report.html'}",
                  soft_wrap=True)


@ab.command("assign")
@click.option("--config", "config_file", type=_PATH, required=True, help="Experiments TOML.")
@click.option("--session", "sessions", multiple=True, help="An anonymous session id (repeatable).")
@click.argument("users", nargs=-1)
def assign(config_file: Path, sessions: tuple[str, ...], users: tuple[str, ...]) -> None:
    """Show the variants users (and anonymous sessions) get in every experiment."""
    from tastemaker.experiments import Assigner, ExperimentsConfig

    assigner = Assigner(ExperimentsConfig.load(config_file))
    out = {}
    for u in users:
        out[f"user:{u}"] = [a.to_dict() for a in assigner.assign(user_id=u)]
    for s in sessions:
        out[f"session:{s}"] = [a.to_dict() for a in assigner.assign(session_id=s)]
    click.echo(json.dumps(out, indent=2))
