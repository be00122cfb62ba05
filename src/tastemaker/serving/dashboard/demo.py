"""A complete dashboard set-up on MovieLens 100K, in one folder, for trying the dashboard (and for
its browser tests):

- models trained on the u1 training split (EASE and ItemCF by default), saved as bundles;
- ``catalog.csv``: titles, genres as ``tags`` (the diversity knob compares movies by them), the
  first genre as ``category``;
- ``rules/``: two rule files to switch between (genre caps; a family-friendly re-weighting);
- ``bench/ml100k-u1.json``: the models' (and popularity's) top-10 metrics on u1.test (ratings ≥ 4
  relevant), with bootstrap CIs, in the bench JSON format;
- ``experiments/reco-v2/``: a simulated A/B test whose treatment lifts CTR by 5% but lowers AOV
  by 4% (all of it in one category) — ``tastemaker ab simulate --preset ctr-up-aov-down``;
- optionally ``mlflow.db``: an embedded registry where the first model is ``@champion`` and the
  second ``@challenger``;
- ``serve.toml``: the settings that serve all of it.

Run ``python -m tastemaker.serving.dashboard.demo OUT`` then ``tastemaker serve --config
OUT/serve.toml`` and open http://127.0.0.1:8000/dashboard.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

RULES = {
    "genre-caps.toml": """# At most 2 movies of one genre (the catalogue's first genre) in the top 10.
k = 10

[scores]
normalize = "minmax"

[[caps]]
name = "two-per-genre"
by = "category"
max = 2
""",
    "family-friendly.toml": """# Family evenings: children's and animated films up, horror and thrillers down.
k = 10

[scores]
normalize = "minmax"

[[boosts]]
name = "family-up"
kind = "tag"
tags = ["Children's", "Animation"]
factor = 1.6

[[boosts]]
name = "scary-down"
kind = "tag"
tags = ["Horror", "Thriller", "Crime"]
factor = 0.5
""",
}


def write_catalog(dataset: Any, path: str | Path) -> Path:
    """A serve catalogue (CSV) of a MovieLens data set: item_id, title, category (first genre),
    tags (all genres)."""
    import pandas as pd

    feats = dataset.interactions.item_features
    frame = feats.frame
    ids = frame.index.to_numpy()
    labels, matrix = feats.multi_hot["genres"]
    genres = [[labels[j] for j in np.flatnonzero(row) if labels[j] != "unknown"] for row in matrix]
    out = pd.DataFrame({
        "item_id": ids.astype(str),
        "title": frame["title"].fillna("").astype(str).to_numpy(),
        "category": [g[0] if g else "" for g in genres],
        "tags": [",".join(g) for g in genres],
    })
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(path, index=False)
    return path


def write_rules(folder: str | Path) -> list[Path]:
    """The demo's rule files (validated on the way out)."""
    from tastemaker.ranking import RuleSet

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, text in RULES.items():
        p = folder / name
        p.write_text(text, encoding="utf-8")
        RuleSet.load(p)
        out.append(p)
    return out


def write_bench(models: dict[str, Any], fit_seconds: dict[str, float], train: Any, test: Any, path: str | Path, *,
                k: int = 10, threshold: float = 4.0, bootstrap: int = 300) -> Path:
    """The fitted models' top-k metrics on `test` as a bench JSON document (protocol topn-u1)."""
    from tastemaker.bench.suites import machine_info
    from tastemaker.evaluation.protocols import EvaluationResult, FoldResult, get_protocol, topn_scores
    from tastemaker.evaluation.stats import bootstrap_ci

    proto = get_protocol("topn-u1")
    rows = []
    for name, model in models.items():
        metrics, per_user, _, seconds = topn_scores(model, train, test, k, threshold)
        ci = {m: bootstrap_ci(v, n_resamples=bootstrap) for m, v in per_user.items()}
        res = EvaluationResult(proto.name, name, "tastemaker", model.config.to_dict(), metrics,
                               [FoldResult("u1", metrics, fit_seconds.get(name, 0.0), seconds)], ci)
        rows.append({"protocol": proto.name, **res.row()})
    doc = {"suite": "ml100k-topn", "protocol": proto.name,
           "protocols": [{"name": proto.name, "description": proto.description}], "dataset": "ml-100k",
           "machine": machine_info(), "rows": rows, "comparisons": []}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1, default=float), encoding="utf-8")
    return path


def build_demo(out: str | Path, *, models: Sequence[str] = ("ease", "item_cf"), data_path: str | Path | None = None,
               experiment_users: int = 20_000, registry: bool = True, log=print) -> Path:
    """Write everything listed in the module docstring into `out`; returns ``out/serve.toml``."""
    from tastemaker.config import write_toml
    from tastemaker.data import load_dataset
    from tastemaker.models import create_model

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    ml = load_dataset("ml-100k", data_path)
    train, test = ml.split("u1")
    fitted, fit_s, bundles = {}, {}, {}
    for name in models:
        t = time.perf_counter()
        model = create_model(name).fit(train)
        fit_s[name] = time.perf_counter() - t
        fitted[name] = model
        bundles[name] = str(model.save(out / "models" / name))
        log(f"fitted {name} on ml-100k u1.base in {fit_s[name]:.1f} s")
    catalog = write_catalog(ml, out / "catalog.csv")
    write_rules(out / "rules")
    baseline = create_model("popularity").fit(train)  # a floor for the leaderboard
    write_bench({**fitted, "popularity": baseline}, fit_s, train, test, out / "bench" / "ml100k-u1.json")
    if experiment_users:
        from tastemaker.experiments.simulate import Scenario, simulate_logs

        simulate_logs(Scenario(users=experiment_users, ctr_lift=0.05, aov_lift=-0.04,
                               aov_segment="category=electronics"), out / "experiments" / "reco-v2")
    serve: dict[str, Any] = {"model": bundles[models[0]], "models": {n: bundles[n] for n in models[1:]},
                             "catalog": str(catalog), "text_fields": ["title", "tags"],
                             "data_dir": str(out / "serve-data"), "api_keys": ["demo-key"],
                             "dashboard": {"rules_dir": str(out / "rules"), "bench_dir": str(out / "bench"),
                                           "experiments_dir": str(out / "experiments")}}
    if registry:
        from tastemaker.registry import ModelRegistry

        uri = f"sqlite:///{(out / 'mlflow.db').resolve()}"
        reg = ModelRegistry(uri, cache_dir=out / "registry-cache")
        for i, name in enumerate(models[:2]):
            reg.register(bundles[name], "movies", alias="champion" if i == 0 else "challenger",
                         metrics={"fit_seconds": fit_s[name]})
        serve["registry_uri"] = uri
    path = write_toml(out / "serve.toml", {"serve": serve})
    log(f"wrote {path} in {time.perf_counter() - t0:.1f} s; serve it with: tastemaker serve --config {path}")
    return path


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m tastemaker.serving.dashboard.demo OUT [--no-registry] [--models ease,item_cf]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--models", default="ease,item_cf", help="comma-separated model names (first one serves)")
    parser.add_argument("--data", default=None, help="where ml-100k lives (default: $TASTEMAKER_DATA_DIR)")
    parser.add_argument("--users", type=int, default=20_000, help="users of the simulated experiment (0: none)")
    parser.add_argument("--no-registry", action="store_true", help="skip the MLflow registry")
    args = parser.parse_args(argv)
    build_demo(args.out, models=[m.strip() for m in args.models.split(",") if m.strip()], data_path=args.data,
               experiment_users=args.users, registry=not args.no_registry)


if __name__ == "__main__":
    main()
