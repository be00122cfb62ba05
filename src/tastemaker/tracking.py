"""Experiment tracking with MLflow — optional at run time.

`Tracker(enabled=False)` does nothing, so code paths are the same with and without `--track`.

The default store is embedded and needs no server: MLflow's own default layout, a SQLite database
``mlflow.db`` in the working folder with run artifacts under ``mlruns/`` beside it (the model
registry and its aliases need a database-backed store). Set ``MLFLOW_TRACKING_URI`` (or pass
`uri`) to use another store or a tracking server. Without SQLAlchemy the default falls back to
MLflow's file store in ``./mlruns`` (tracking works, the registry does not).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tastemaker.errors import require

_BAD = re.compile(r"[^0-9A-Za-z_\-. /:]")


def metric_key(name: str) -> str:
    """MLflow-safe metric name: 'ndcg@10' → 'ndcg_at_10'."""
    return _BAD.sub("_", name.replace("@", "_at_"))


def git_commit(path: str | Path = ".") -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def default_tracking_uri(uri: str | None = None) -> str:
    """`uri`, else ``$MLFLOW_TRACKING_URI``, else the embedded store: ``sqlite:///<cwd>/mlflow.db``
    (or the ``./mlruns`` file store when SQLAlchemy is not installed)."""
    if uri:
        return uri
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    import importlib.util

    if importlib.util.find_spec("sqlalchemy") is not None and importlib.util.find_spec("alembic") is not None:
        return "sqlite:///" + str(Path("mlflow.db").resolve())
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return Path("mlruns").resolve().as_uri()


def allow_file_store(uri: str) -> None:
    """MLflow 3 refuses its (deprecated) file store unless told: allow it when `uri` is one."""
    if uri.startswith("file:") or (":" not in uri.split("/")[0] and not uri.startswith("databricks")):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")


def artifact_root(uri: str) -> str | None:
    """Where experiments of a SQLite store keep artifacts: ``mlruns/`` beside the database file,
    so that they do not depend on the working folder of whoever created the experiment. None for
    other stores (they have their own default)."""
    if not uri.startswith("sqlite:///"):
        return None
    db = Path(uri[len("sqlite:///"):].split("?")[0]).resolve()
    return (db.parent / "mlruns").as_uri()


def ensure_experiment(client: Any, name: str, uri: str) -> str:
    """The id of experiment `name` (created when missing, with artifacts under `artifact_root`)."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    root = artifact_root(uri)
    location = None if root is None else f"{root}/{re.sub(r'[^0-9A-Za-z_.-]', '_', name)}"
    try:
        return client.create_experiment(name, artifact_location=location)
    except Exception:  # created concurrently by another process
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def _flatten(prefix: str, obj: Any) -> dict[str, Any]:
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flatten(f"{prefix}.{k}" if prefix else str(k), v))
        return out
    return {prefix: obj}


class Tracker:
    """Logs params, metrics, tags and artifacts of one run to MLflow when enabled."""

    def __init__(self, enabled: bool = False, *, experiment: str = "tastemaker", uri: str | None = None) -> None:
        self.enabled = enabled
        self.experiment = experiment
        self.uri = uri
        self.run_id: str | None = None
        self._mlflow = None

    @contextlib.contextmanager
    def run(self, name: str, *, params: dict[str, Any] | None = None,
            tags: dict[str, Any] | None = None) -> Iterator[Tracker]:
        if not self.enabled:
            yield self
            return
        mlflow = require("mlflow", "tracking")
        uri = default_tracking_uri(self.uri)
        allow_file_store(uri)
        mlflow.set_tracking_uri(uri)
        experiment_id = ensure_experiment(mlflow.MlflowClient(uri), self.experiment, uri)
        self._mlflow = mlflow
        all_tags = {"git_commit": git_commit() or "unknown", **(tags or {})}
        with mlflow.start_run(run_name=name, experiment_id=experiment_id) as active:
            self.run_id = active.info.run_id
            mlflow.set_tags({k: str(v) for k, v in all_tags.items()})
            if params:
                self.log_params(params)
            yield self
        self._mlflow = None

    def log_params(self, params: dict[str, Any]) -> None:
        if self._mlflow is not None:
            flat = _flatten("", params)
            self._mlflow.log_params({k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in flat.items()})

    def log_metrics(self, metrics: dict[str, float], *, prefix: str = "", step: int | None = None) -> None:
        if self._mlflow is not None:
            clean = {metric_key(prefix + k): float(v) for k, v in metrics.items() if v is not None}
            self._mlflow.log_metrics(clean, step=step)

    def log_artifact(self, path: str | Path) -> None:
        if self._mlflow is not None:
            path = Path(path)
            if path.is_dir():
                self._mlflow.log_artifacts(str(path), artifact_path=path.name)
            else:
                self._mlflow.log_artifact(str(path))

    def log_dict(self, obj: dict[str, Any], filename: str) -> None:
        if self._mlflow is not None:
            self._mlflow.log_dict(obj, filename)
