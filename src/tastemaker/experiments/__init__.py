"""A/B testing: experiments declared in TOML, deterministic salted-hash assignment with layers,
exposure records, the statistical analysis with its decision report, and a simulation harness.

- `config`: `ExperimentsConfig` / `ExperimentConfig` (layers, variants, shares, salts, metrics, guardrails)
- `assignment`: `Assigner` (unit -> variant), `exposure_record` (what the service logs per request)
- `logs`: reading exposure/event/pre-period logs into per-unit aggregates (`UnitData`)
- `stats`: the vectorised statistics (delta method, Welch, CUPED, mSPRT, SRM, bootstrap, Holm/BH)
- `analysis`: `analyze` / `analyze_logs` -> `AnalysisResult` (metrics, segments, decision, next test)
- `simulate`: `Scenario`, `simulate_logs`, `simulate_units` (known effects)
- `report`: `render_text`, `render_html`
"""

from tastemaker.experiments.analysis import DONT_SHIP, INVESTIGATE, SHIP, AnalysisResult, analyze, analyze_logs
from tastemaker.experiments.assignment import Assigner, Assignment, exposure_record, unit_hash
from tastemaker.experiments.config import (
    BUILTIN_METRICS,
    ExperimentConfig,
    ExperimentsConfig,
    GuardrailConfig,
    LayerConfig,
    MetricSpec,
    VariantConfig,
)

__all__ = [
    "BUILTIN_METRICS",
    "DONT_SHIP",
    "INVESTIGATE",
    "SHIP",
    "AnalysisResult",
    "Assigner",
    "Assignment",
    "ExperimentConfig",
    "ExperimentsConfig",
    "GuardrailConfig",
    "LayerConfig",
    "MetricSpec",
    "VariantConfig",
    "analyze",
    "analyze_logs",
    "exposure_record",
    "unit_hash",
]
