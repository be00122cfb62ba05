"""Fixtures of the MLOps tests: an embedded MLflow store per test, and small fitted bundles.

Creating an MLflow SQLite database runs its schema migrations (seconds), so one is made per
session and copied for each test: every test gets a fresh, empty registry of its own.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def _template_db(tmp_path_factory) -> Path:
    import mlflow

    db = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{db}").search_experiments()  # creates the schema
    return db


@pytest.fixture
def registry_uri(_template_db, tmp_path, monkeypatch) -> str:
    """A fresh embedded registry (sqlite) in this test's folder; also the process default."""
    db = tmp_path / "mlflow" / "mlflow.db"
    db.parent.mkdir()
    shutil.copy(_template_db, db)
    uri = f"sqlite:///{db}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("TASTEMAKER_CACHE_DIR", str(tmp_path / "cache"))
    return uri


@pytest.fixture
def registry(registry_uri, tmp_path):
    from tastemaker.registry import ModelRegistry

    return ModelRegistry(registry_uri, cache_dir=tmp_path / "models-cache")


@pytest.fixture(scope="session")
def bundles(tmp_path_factory) -> dict[str, Path]:
    """Two different fitted models of the same synthetic data: `mf` (biased MF, has factors and
    biases) and `ease` (no factors), plus `mf2` (MF with another seed)."""
    from tastemaker.models import create_model
    from tastemaker.testing.synthetic import synthetic_ratings

    root = tmp_path_factory.mktemp("bundles")
    data = synthetic_ratings()
    out = {}
    for name, model, params in (("mf", "biased_mf", {"n_factors": 8, "seed": 1}),
                                ("mf2", "biased_mf", {"n_factors": 8, "seed": 2}),
                                ("ease", "ease", {})):
        out[name] = create_model(model, params).fit(data).save(root / name)
    return out
