"""Experiment tracking with MLflow — optional at run time.

`Tracker(enabled=False)` does nothing, so code paths are the same with and without `--track`.
The default store is a local `./mlruns` folder (no server); set MLFLOW_TRACKING_URI to use another.
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
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        uri = self.uri or os.environ.get("MLFLOW_TRACKING_URI") or Path("mlruns").resolve().as_uri()
        mlflow.set_tracking_uri(uri)
        mlflow.set_experiment(self.experiment)
        self._mlflow = mlflow
        all_tags = {"git_commit": git_commit() or "unknown", **(tags or {})}
        with mlflow.start_run(run_name=name) as active:
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
