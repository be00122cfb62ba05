"""Shared fixtures: simulated experiment logs (written once per session) and the `tastemaker` CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tastemaker.experiments.simulate import Scenario, simulate_logs


@pytest.fixture(scope="session")
def seed_case(tmp_path_factory) -> dict[str, Path]:
    """The issue's case: CTR +5 %, AOV −4 % (all of it in category electronics), 24,000 users."""
    scenario = Scenario(ctr_lift=0.05, aov_lift=-0.04, aov_segment="category=electronics", seed=0)
    return simulate_logs(scenario, tmp_path_factory.mktemp("seed-case"))


@pytest.fixture(scope="session")
def simulated(tmp_path_factory):
    """simulated(**scenario) -> the paths of that scenario's logs (cached per scenario)."""
    cache: dict[tuple, dict[str, Path]] = {}

    def make(**options) -> dict[str, Path]:
        key = tuple(sorted(options.items()))
        if key not in cache:
            cache[key] = simulate_logs(Scenario(**options), tmp_path_factory.mktemp("sim"))
        return cache[key]

    return make


@pytest.fixture
def run():
    """run(*args, code=0) -> output of `tastemaker *args` (the ab group registered on the main CLI)."""
    from tastemaker.cli.ab import ab
    from tastemaker.cli.main import cli

    if "ab" not in cli.commands:  # the lead registers it in cli/main.py; the same object either way
        cli.add_command(ab)
    runner = CliRunner()

    def invoke(*args: str, code: int = 0) -> str:
        result = runner.invoke(cli, ["--quiet", *args], catch_exceptions=False)
        output = result.output + (result.stderr if result.stderr_bytes else "")
        assert result.exit_code == code, output
        return output

    return invoke
