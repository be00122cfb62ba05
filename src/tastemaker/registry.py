"""The model registry: tastemaker bundles as MLflow registered model versions, with aliases.

A model bundle (the `Recommender.save` folder) is logged as the artifact ``model/`` of an MLflow
run — with the model's params, any metrics, the data fingerprint and the git commit — and
registered as a new version of a registered model. Aliases name the versions that matter:
``champion`` (what serves) and ``challenger`` (what is being tried)::

    reg = ModelRegistry()                                   # embedded store: ./mlflow.db, no server
    v = reg.register("models/ease", "movies", metrics={"ndcg_at_10": 0.48})
    reg.promote("movies", v.version, "champion")
    reg.fetch("models:/movies@champion")                  # → a local bundle folder (cached)
    reg.promote("movies", "challenger", "champion")       # the challenger takes over

`tastemaker serve --model models:/movies@champion` loads by alias and follows the alias when it
moves. A/B variants map to versions with `variant_uri` (aliases resolved, or pinned per
experiment with `pin_variants` so a running experiment never changes model under its feet).

The store is MLflow's tracking URI (`tastemaker.tracking.default_tracking_uri`): ``$MLFLOW_TRACKING_URI``,
else ``sqlite:///mlflow.db`` in the working folder. The registry needs a database-backed store
(SQLite via SQLAlchemy, or a tracking server); install with ``pip install 'tastemaker[registry]'``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tastemaker.artifacts import FORMAT, MANIFEST, read_bundle
from tastemaker.errors import ArtifactError, ConfigError, DependencyError, TastemakerError, require

ALIASES = ("champion", "challenger")
DEFAULT_VARIANTS: dict[str, str] = {"control": "champion", "treatment": "challenger"}
ARTIFACT_PATH = "model"
EXPERIMENT = "tastemaker"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
_ALIAS = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}$")


class RegistryError(TastemakerError):
    """A registry operation that cannot be done: unknown model, version or alias; store unreachable."""


# ================================================================================================
# model URIs
# ================================================================================================


@dataclass(frozen=True)
class ModelRef:
    """A parsed ``models:/NAME@ALIAS``, ``models:/NAME/VERSION`` or ``models:/NAME/latest``."""

    name: str
    version: int | None = None
    alias: str | None = None

    @classmethod
    def parse(cls, uri: str) -> ModelRef:
        if not is_model_uri(uri):
            raise ConfigError(f"{uri!r} is not a registry model URI: use models:/NAME@ALIAS or models:/NAME/VERSION")
        rest = uri[len("models:/"):].strip("/")
        if "@" in rest:
            name, alias = rest.rsplit("@", 1)
            return cls(check_name(name), alias=check_alias(alias))
        if "/" in rest:
            name, ver = rest.rsplit("/", 1)
            if ver == "latest":
                return cls(check_name(name), alias=None, version=None)
            if not ver.isdigit() or int(ver) < 1:
                raise ConfigError(f"{uri!r}: the version must be a positive number (or 'latest'), got {ver!r}")
            return cls(check_name(name), version=int(ver))
        raise ConfigError(f"{uri!r} names no version or alias: use models:/{rest}@champion or models:/{rest}/1")

    @property
    def uri(self) -> str:
        if self.alias is not None:
            return f"models:/{self.name}@{self.alias}"
        return f"models:/{self.name}/{self.version if self.version is not None else 'latest'}"

    @property
    def pinned(self) -> bool:
        """True for a fixed version (it never resolves to anything else)."""
        return self.version is not None


def is_model_uri(value: Any) -> bool:
    """True for a ``models:/…`` registry URI (as opposed to a bundle folder)."""
    return isinstance(value, str) and value.startswith("models:/")


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"registered model name must be 1–128 letters, digits, '_', '.', '-' starting with a "
                          f"letter or digit (got {name!r})")
    return name


def check_alias(alias: str) -> str:
    if not isinstance(alias, str) or not _ALIAS.match(alias) or alias == "latest" or re.fullmatch(r"v\d+", alias):
        raise ConfigError(f"alias must be a word such as 'champion' or 'challenger' (not 'latest' or 'v<N>'), "
                          f"got {alias!r}")
    return alias


# ================================================================================================
# registered versions
# ================================================================================================


@dataclass(frozen=True)
class RegisteredVersion:
    """One version of a registered model."""

    name: str
    version: int
    run_id: str | None
    source: str
    aliases: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    created: float | None = None

    @property
    def uri(self) -> str:
        """The pinned URI ``models:/NAME/VERSION``."""
        return f"models:/{self.name}/{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "uri": self.uri, "run_id": self.run_id,
                "source": self.source, "aliases": list(self.aliases), "tags": dict(self.tags),
                "created": self.created}

    @classmethod
    def _of(cls, mv: Any) -> RegisteredVersion:
        ts = getattr(mv, "creation_timestamp", None)
        return cls(mv.name, int(mv.version), mv.run_id, mv.source, tuple(getattr(mv, "aliases", None) or ()),
                   dict(mv.tags or {}), None if ts is None else ts / 1000.0)


class ModelRegistry:
    """MLflow's model registry for tastemaker bundles; see the module docstring.

    `uri` is the MLflow tracking/registry URI (default `default_tracking_uri()`); `cache_dir` is
    where `fetch` keeps downloaded versions (default ``$TASTEMAKER_CACHE_DIR/models``).
    """

    def __init__(self, uri: str | None = None, *, cache_dir: str | Path | None = None,
                 experiment: str = EXPERIMENT) -> None:
        from tastemaker.tracking import allow_file_store, default_tracking_uri

        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        self._mlflow = require("mlflow", "registry")
        self.uri = default_tracking_uri(uri)
        if self.uri.startswith("sqlite:"):
            _require_sqlalchemy()
        allow_file_store(self.uri)
        if cache_dir is None:
            from tastemaker.data.download import cache_dir as default_cache

            cache_dir = default_cache() / "models"
        self.cache_dir = Path(cache_dir)
        self.experiment = experiment
        self.client = self._mlflow.MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    def __repr__(self) -> str:
        return f"ModelRegistry({self.uri!r})"

    # --- errors ----------------------------------------------------------------------------------
    def _call(self, what: str, fn, *args, **kwargs):
        from mlflow.exceptions import MlflowException

        try:
            return fn(*args, **kwargs)
        except MlflowException as exc:
            code = getattr(exc, "error_code", "")
            msg = exc.message if hasattr(exc, "message") else str(exc)
            hint = ""
            if code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                hint = " (list what exists with `tastemaker registry list`)"
            raise RegistryError(f"{what}: {msg}{hint} [registry {self.uri}]") from None

    # --- registering -----------------------------------------------------------------------------
    def register(self, model_dir: str | Path, name: str, *, run_id: str | None = None,
                 params: Mapping[str, Any] | None = None, metrics: Mapping[str, float] | None = None,
                 tags: Mapping[str, Any] | None = None, description: str | None = None,
                 alias: str | None = None) -> RegisteredVersion:
        """Register the bundle in `model_dir` as a new version of `name` (created when new).

        Without `run_id`, a run named ``register NAME`` is created in the experiment, logging the
        model's config as params, `metrics`, the data fingerprint, the git commit and the bundle as
        artifact ``model/``. With `run_id` (e.g. the run of ``tastemaker train --track``), the bundle
        is attached to that run (uploaded as ``model/`` unless already there). `alias` (e.g.
        ``challenger``) is set on the new version.
        """
        from tastemaker.tracking import _flatten, ensure_experiment, git_commit, metric_key

        check_name(name)
        if alias is not None:
            check_alias(alias)
        model_dir = Path(model_dir)
        manifest = _read_manifest(model_dir)
        fingerprint = (manifest.get("data") or {}).get("fingerprint")
        version_tags = {"tastemaker.model": str(manifest.get("model", "")),
                        "data_fingerprint": str(fingerprint or "unknown"),
                        "git_commit": git_commit() or "unknown", **{k: str(v) for k, v in (tags or {}).items()}}
        client = self.client
        if run_id is None:
            exp = self._call("creating the experiment", ensure_experiment, client, self.experiment, self.uri)
            run = self._call("starting a run", client.create_run, exp, run_name=f"register {name}",
                             tags={"command": "register", **version_tags})
            run_id = run.info.run_id
            try:
                all_params = {"model": manifest.get("model"), **_flatten("", manifest.get("config") or {}),
                              **dict(params or {})}
                for k, v in all_params.items():
                    client.log_param(run_id, k, json.dumps(v) if isinstance(v, (list, dict)) else v)
                for k, v in (metrics or {}).items():
                    client.log_metric(run_id, metric_key(k), float(v))
                client.log_artifacts(run_id, str(model_dir), ARTIFACT_PATH)
                client.set_terminated(run_id, "FINISHED")
            except Exception:
                client.set_terminated(run_id, "FAILED")
                raise
        else:
            self._call(f"run {run_id}", client.get_run, run_id)
            for k, v in (metrics or {}).items():
                client.log_metric(run_id, metric_key(k), float(v))
            have = {f.path for f in self._call("listing the run's artifacts", client.list_artifacts, run_id,
                                               ARTIFACT_PATH)}
            if f"{ARTIFACT_PATH}/{MANIFEST}" not in have:
                client.log_artifacts(run_id, str(model_dir), ARTIFACT_PATH)
        try:
            client.get_registered_model(name)
        except Exception:
            try:
                client.create_registered_model(name, tags={"tastemaker": "bundle"})
            except Exception:  # created by a concurrent register
                self._call(f"model {name!r}", client.get_registered_model, name)
        mv = self._call(f"registering {model_dir} as {name!r}", client.create_model_version, name,
                        f"runs:/{run_id}/{ARTIFACT_PATH}", run_id=run_id, tags=version_tags, description=description)
        out = RegisteredVersion._of(mv)
        if alias is not None:
            out = self.promote(name, out.version, alias)
        return out

    # --- aliases ---------------------------------------------------------------------------------
    def promote(self, name: str, version: int | str, alias: str = "champion") -> RegisteredVersion:
        """Point `alias` of `name` at `version` (a number, or another alias such as ``challenger``:
        ``promote(name, "challenger", "champion")``). Promoting the challenger to champion removes
        the challenger alias. The alias that moved is recorded on the version as tag
        ``promoted.<alias>`` with the previous holder. Returns the version now holding `alias`."""
        check_alias(alias)
        target = self.get(name, version)
        previous = self.alias_version(name, alias)
        self._call(f"setting {name}@{alias}", self.client.set_registered_model_alias, name, alias,
                   str(target.version))
        self._call("tagging the version", self.client.set_model_version_tag, name, str(target.version),
                   f"promoted.{alias}", json.dumps({"previous": previous}))
        if isinstance(version, str) and not version.isdigit() and version not in (alias, "latest"):
            self._call(f"removing {name}@{version}", self.client.delete_registered_model_alias, name, version)
        return self.get(name, target.version)

    def demote(self, name: str, alias: str) -> None:
        """Remove `alias` from `name` (e.g. end a challenger's trial)."""
        self._call(f"removing {name}@{alias}", self.client.delete_registered_model_alias, name, check_alias(alias))

    def alias_version(self, name: str, alias: str) -> int | None:
        """The version `alias` points at, or None when the alias is not set."""
        from mlflow.exceptions import MlflowException

        try:
            return int(self.client.get_model_version_by_alias(name, alias).version)
        except MlflowException as exc:
            if getattr(exc, "error_code", "") in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None
            raise RegistryError(f"{name}@{alias}: {exc} [registry {self.uri}]") from None

    def aliases(self, name: str) -> dict[str, int]:
        """Every alias of `name` → version."""
        rm = self._call(f"model {name!r}", self.client.get_registered_model, name)
        return {k: int(v) for k, v in (rm.aliases or {}).items()}

    # --- reading ---------------------------------------------------------------------------------
    def get(self, name: str, version: int | str) -> RegisteredVersion:
        """Version `version` of `name`; `version` may be a number, an alias or ``latest``."""
        if isinstance(version, str) and not version.isdigit():
            if version == "latest":
                versions = self.versions(name)
                if not versions:
                    raise RegistryError(f"model {name!r} has no versions yet [registry {self.uri}]")
                return versions[-1]
            mv = self._call(f"{name}@{version}", self.client.get_model_version_by_alias, name, version)
            return RegisteredVersion._of(mv)
        mv = self._call(f"{name} version {version}", self.client.get_model_version, name, str(int(version)))
        return RegisteredVersion._of(mv)

    def resolve(self, uri: str | ModelRef) -> RegisteredVersion:
        """The version a ``models:/`` URI names right now (an alias resolves to its current version)."""
        ref = ModelRef.parse(uri) if isinstance(uri, str) else uri
        return self.get(ref.name, ref.alias or (ref.version if ref.version is not None else "latest"))

    def versions(self, name: str) -> list[RegisteredVersion]:
        """Every version of `name`, oldest first."""
        found = self._call(f"model {name!r}", self.client.search_model_versions, f"name = '{check_name(name)}'")
        by_version: dict[int, list[str]] = {}
        for alias, v in self.aliases(name).items():  # search results leave the aliases out
            by_version.setdefault(v, []).append(alias)
        out = [replace(RegisteredVersion._of(mv), aliases=tuple(sorted(by_version.get(int(mv.version), []))))
               for mv in found]
        return sorted(out, key=lambda v: v.version)

    def models(self) -> list[str]:
        """Names of every registered model."""
        return sorted(rm.name for rm in self._call("listing models", self.client.search_registered_models))

    def fetch(self, uri: str | ModelRef | RegisteredVersion) -> Path:
        """A local folder holding the bundle of a version (downloaded once, then cached; a version's
        artifacts never change, so the cache is keyed by name, version and run)."""
        mv = uri if isinstance(uri, RegisteredVersion) else self.resolve(uri)
        key = f"{mv.version}-{(mv.run_id or 'norun')[:12]}"
        dest = self.cache_dir / mv.name / key
        if (dest / MANIFEST).is_file():
            return dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        source = self._call(f"{mv.uri}", self.client.get_model_version_download_uri, mv.name, str(mv.version))
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=dest.parent))
        try:
            got = self._call(f"downloading {mv.uri}", self._mlflow.artifacts.download_artifacts,
                             artifact_uri=source, dst_path=str(tmp), tracking_uri=self.uri)
            got = Path(got)
            if not (got / MANIFEST).is_file():
                raise ArtifactError(f"{mv.uri} ({source}) holds no tastemaker bundle ({MANIFEST} is missing): "
                                    "register bundle folders written by `tastemaker train --out`")
            read_bundle(got)  # checks the manifest and arrays before the folder becomes visible
            try:
                got.rename(dest)
            except OSError:  # another process fetched it first
                if not (dest / MANIFEST).is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return dest

    # --- A/B variants ------------------------------------------------------------------------------
    def pin_variants(self, name: str, experiment: str, mapping: Mapping[str, int | str] | None = None
                     ) -> dict[str, str]:
        """Resolve each variant's alias or version now and record the versions on the registered
        model (tags ``ab.<experiment>.<variant>``), so the experiment keeps serving the same
        versions even when aliases move. Returns variant → pinned ``models:/NAME/VERSION``."""
        if not re.fullmatch(r"[A-Za-z0-9_.\-]{1,64}", experiment):
            raise ConfigError(f"experiment name must be 1–64 letters, digits, '_', '.', '-' (got {experiment!r})")
        out = {}
        for variant, target in (mapping or DEFAULT_VARIANTS).items():
            mv = self.get(name, target)
            self._call("pinning a variant", self.client.set_registered_model_tag, name,
                       f"ab.{experiment}.{variant}", str(mv.version))
            out[variant] = mv.uri
        return out

    def variant_uri(self, name: str, variant: str, *, experiment: str | None = None,
                    mapping: Mapping[str, int | str] | None = None) -> str:
        """The pinned model URI serving `variant`: the version pinned for `experiment` when there is
        one, else the version of `mapping[variant]` (an alias or a version; default: control →
        champion, treatment → challenger; a variant named like an alias uses that alias)."""
        if experiment is not None:
            rm = self._call(f"model {name!r}", self.client.get_registered_model, name)
            pinned = (rm.tags or {}).get(f"ab.{experiment}.{variant}")
            if pinned is not None:
                return f"models:/{name}/{int(pinned)}"
        table = dict(DEFAULT_VARIANTS if mapping is None else mapping)
        target = table.get(variant, variant)
        return self.get(name, target).uri

    def variant_uris(self, name: str, variants: Mapping[str, int | str] | None = None, *,
                     experiment: str | None = None) -> dict[str, str]:
        """`variant_uri` for every variant of `variants` (default control/treatment)."""
        table = dict(DEFAULT_VARIANTS if variants is None else variants)
        return {v: self.variant_uri(name, v, experiment=experiment, mapping=table) for v in table}


def _read_manifest(model_dir: Path) -> dict[str, Any]:
    """The bundle's manifest (checked like `read_bundle` does, without loading the arrays)."""
    if not model_dir.is_dir():
        raise ArtifactError(f"{model_dir} is not a folder: pass a model bundle written by `tastemaker train --out DIR`")
    try:
        manifest = json.loads((model_dir / MANIFEST).read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{model_dir} is not a tastemaker model: {MANIFEST} is missing "
                            "(train one with `tastemaker train … --out DIR`)") from None
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{model_dir / MANIFEST}: not valid JSON ({exc})") from None
    if manifest.get("format") != FORMAT:
        raise ArtifactError(f"{model_dir / MANIFEST}: format is {manifest.get('format')!r}, expected {FORMAT!r}")
    return manifest


def _require_sqlalchemy() -> None:
    import importlib.util

    missing = [m for m in ("sqlalchemy", "alembic") if importlib.util.find_spec(m) is None]
    if missing:
        raise DependencyError(f"the embedded SQLite registry needs {' and '.join(missing)}; install it with: "
                              "pip install 'tastemaker[registry]' (or point MLFLOW_TRACKING_URI at a tracking server)")


def resolve_model(model: str | Path, *, registry_uri: str | None = None, cache_dir: str | Path | None = None
                  ) -> tuple[Path, str, RegisteredVersion | None]:
    """A local bundle folder for `model` — a folder, or a ``models:/`` URI fetched from the registry —
    with its pinned id (``models:/NAME/VERSION``, or the folder) and the registry version (or None)."""
    if is_model_uri(model):
        reg = ModelRegistry(registry_uri, cache_dir=cache_dir)
        mv = reg.resolve(str(model))
        return reg.fetch(mv), mv.uri, mv
    path = Path(model)
    _read_manifest(path)
    return path, str(path), None


__all__ = ["ALIASES", "DEFAULT_VARIANTS", "ModelRef", "ModelRegistry", "RegisteredVersion", "RegistryError",
           "is_model_uri", "resolve_model"]
