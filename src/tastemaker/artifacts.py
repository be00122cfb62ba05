"""Model bundles as plain data: `arrays.npz` (loaded with allow_pickle=False) + `manifest.json`.

A bundle loads without the training data or training code paths, and never unpickles.
"""

from __future__ import annotations

import json
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from tastemaker.errors import ArtifactError

FORMAT = "tastemaker-model"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ARRAYS = "arrays.npz"


def library_versions() -> dict[str, str]:
    import scipy

    from tastemaker import __version__

    return {"tastemaker": __version__, "python": platform.python_version(), "numpy": np.__version__,
            "scipy": scipy.__version__}


def write_bundle(directory: str | Path, manifest: dict[str, Any], arrays: dict[str, np.ndarray]) -> Path:
    """Write `manifest` (JSON-able) and `arrays` to `directory`; returns the directory."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, arr in arrays.items():
        if not isinstance(arr, np.ndarray) or arr.dtype.kind == "O":
            raise ArtifactError(f"array {name!r} must be a numeric or string numpy array, not {type(arr).__name__}"
                                f"{' of objects' if isinstance(arr, np.ndarray) else ''}")
    full = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": library_versions(),
        **manifest,
        "arrays": {k: {"shape": list(v.shape), "dtype": v.dtype.str} for k, v in arrays.items()},
    }
    tmp = directory / (ARRAYS + ".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(directory / ARRAYS)
    (directory / MANIFEST).write_text(json.dumps(full, indent=1, default=_json_default))
    return directory


def read_bundle(directory: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read a bundle; raises `ArtifactError` naming what is missing or inconsistent."""
    directory = Path(directory)
    mpath = directory / MANIFEST
    if not mpath.is_file():
        raise ArtifactError(f"{directory} is not a tastemaker model: {MANIFEST} is missing "
                            "(train one with `tastemaker train … --out DIR`)")
    try:
        manifest = json.loads(mpath.read_text())
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{mpath}: not valid JSON ({exc})") from None
    if manifest.get("format") != FORMAT:
        raise ArtifactError(f"{mpath}: format is {manifest.get('format')!r}, expected {FORMAT!r}")
    if manifest.get("format_version", 0) > FORMAT_VERSION:
        raise ArtifactError(f"{mpath}: format version {manifest['format_version']} is newer than this "
                            f"tastemaker reads ({FORMAT_VERSION}); upgrade tastemaker")
    apath = directory / ARRAYS
    arrays: dict[str, np.ndarray] = {}
    if manifest.get("arrays"):
        if not apath.is_file():
            raise ArtifactError(f"{apath} is missing")
        try:
            with np.load(apath, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (ValueError, OSError) as exc:
            raise ArtifactError(f"{apath}: unreadable ({exc})") from None
        for name, spec in manifest["arrays"].items():
            if name not in arrays:
                raise ArtifactError(f"{apath}: array {name!r} listed in the manifest is missing")
            if list(arrays[name].shape) != spec["shape"]:
                raise ArtifactError(f"{apath}: array {name!r} has shape {arrays[name].shape}, "
                                    f"manifest says {spec['shape']}")
    return manifest, arrays


def save_state(directory: str | Path, model: str, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> Path:
    """Write an object's ``get_state()`` — `arrays` plus JSON-able `state` — as a bundle of kind `model`."""
    return write_bundle(directory, {"model": model, "state": state}, arrays)


def load_state(directory: str | Path, model: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a bundle written by `save_state`: (arrays, state); `ArtifactError` when it holds another kind."""
    manifest, arrays = read_bundle(directory)
    if manifest.get("model") != model:
        raise ArtifactError(f"{directory} holds a {manifest.get('model')!r}, not a {model}")
    return arrays, manifest.get("state") or {}


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
