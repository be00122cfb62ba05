"""`tastemaker registry …` (the MLflow model registry) and `tastemaker publish` (model → store).

Registered on the main group with ``cli.add_command(registry)`` and ``cli.add_command(publish)``.
The logic lives in `tastemaker.registry` and `tastemaker.publish`.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.table import Table

from tastemaker.cli.common import console

_URI = click.option("--registry-uri", default=None,
                    help="MLflow tracking/registry URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here).")


def _registry(uri: str | None):
    from tastemaker.registry import ModelRegistry

    return ModelRegistry(uri)


def _key_values(pairs: tuple[str, ...], what: str) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r}: expected KEY=VALUE", param_hint=what)
        out[key.strip()] = value.strip()
    return out


def _version_arg(value: str) -> int | str:
    return int(value) if value.isdigit() else value


@click.group("registry")
def registry() -> None:
    """The model registry (MLflow): register bundles, move the champion/challenger aliases, inspect."""


@registry.command("register")
@click.option("--model-dir", type=click.Path(path_type=Path, exists=True, file_okay=False), required=True,
              help="A model bundle folder (`tastemaker train --out`).")
@click.option("--name", required=True, help="Registered model name.")
@click.option("--alias", default=None, help="Set this alias on the new version (e.g. challenger).")
@click.option("--run-id", default=None,
              help="Attach to this MLflow run (e.g. from `train --track`) instead of a new one.")
@click.option("--metric", "metrics", multiple=True, help="KEY=VALUE metric to log with it (repeatable).")
@click.option("--tag", "tags", multiple=True, help="KEY=VALUE tag for the version (repeatable).")
@click.option("--description", default=None)
@_URI
@click.option("--json", "as_json", is_flag=True)
def register_cmd(model_dir, name, alias, run_id, metrics, tags, description, registry_uri, as_json) -> None:
    """Log a bundle to MLflow (params, metrics, data fingerprint, git commit) and register a new version."""
    try:
        metric_values = {k: float(v) for k, v in _key_values(metrics, "--metric").items()}
    except ValueError as exc:
        raise click.BadParameter(f"metric values must be numbers ({exc})", param_hint="--metric") from None
    mv = _registry(registry_uri).register(model_dir, name, run_id=run_id, metrics=metric_values,
                                          tags=_key_values(tags, "--tag"), description=description, alias=alias)
    if as_json:
        click.echo(json.dumps(mv.to_dict(), indent=2))
        return
    aliases = f" @{', @'.join(mv.aliases)}" if mv.aliases else ""
    console.print(f"registered {model_dir} as [bold]{mv.uri}[/bold]{aliases} (run {mv.run_id})", highlight=False)


@registry.command("promote")
@click.argument("name")
@click.argument("version")
@click.option("--alias", default="champion", show_default=True, help="The alias to move.")
@_URI
def promote_cmd(name, version, alias, registry_uri) -> None:
    """Point ALIAS of NAME at VERSION (a number, or another alias: `promote NAME challenger`)."""
    reg = _registry(registry_uri)
    before = reg.alias_version(name, alias)
    mv = reg.promote(name, _version_arg(version), alias)
    console.print(f"{name}@{alias}: version {before if before is not None else '(none)'} → {mv.version}",
                  highlight=False)


@registry.command("demote")
@click.argument("name")
@click.argument("alias")
@_URI
def demote_cmd(name, alias, registry_uri) -> None:
    """Remove ALIAS from NAME (e.g. end a challenger's trial)."""
    _registry(registry_uri).demote(name, alias)
    console.print(f"removed {name}@{alias}", highlight=False)


@registry.command("list")
@click.argument("name", required=False)
@_URI
@click.option("--json", "as_json", is_flag=True)
def list_cmd(name, registry_uri, as_json) -> None:
    """Registered models, or the versions of NAME with their aliases."""
    reg = _registry(registry_uri)
    if name is None:
        names = reg.models()
        if as_json:
            click.echo(json.dumps({n: reg.aliases(n) for n in names}, indent=2))
            return
        for n in names:
            aliases = ", ".join(f"@{a} → {v}" for a, v in sorted(reg.aliases(n).items()))
            console.print(f"[bold]{n}[/bold] {aliases}", highlight=False)
        if not names:
            console.print(f"no registered models in {reg.uri}", highlight=False)
        return
    versions = reg.versions(name)
    if as_json:
        click.echo(json.dumps([v.to_dict() for v in versions], indent=2))
        return
    table = Table(title=f"{name} ({reg.uri})")
    for col in ("version", "aliases", "model", "data fingerprint", "git commit", "run"):
        table.add_column(col)
    for v in versions:
        table.add_row(str(v.version), ", ".join(v.aliases), v.tags.get("tastemaker.model", ""),
                      v.tags.get("data_fingerprint", "")[:12], v.tags.get("git_commit", "")[:10], v.run_id or "")
    console.print(table)


@registry.command("resolve")
@click.argument("uri")
@_URI
@click.option("--json", "as_json", is_flag=True)
def resolve_cmd(uri, registry_uri, as_json) -> None:
    """The version a models:/NAME@ALIAS (or /VERSION) URI names now, fetched to a local folder."""
    reg = _registry(registry_uri)
    mv = reg.resolve(uri)
    folder = reg.fetch(mv)
    if as_json:
        click.echo(json.dumps({**mv.to_dict(), "path": str(folder)}, indent=2))
        return
    console.print(f"{uri} → {mv.uri} at {folder}", highlight=False)


@registry.command("variants")
@click.argument("name")
@click.option("--variant", "variants", multiple=True,
              help="VARIANT=ALIAS_OR_VERSION (repeatable; default control=champion, treatment=challenger).")
@click.option("--experiment", default=None, help="A/B experiment whose pinned versions to use.")
@click.option("--pin", is_flag=True, help="Resolve the variants now and pin them for --experiment.")
@_URI
def variants_cmd(name, variants, experiment, pin, registry_uri) -> None:
    """Which registry version serves each A/B variant (optionally pinned for an experiment)."""
    reg = _registry(registry_uri)
    mapping = {k: _version_arg(v) for k, v in _key_values(variants, "--variant").items()} or None
    if pin:
        if experiment is None:
            raise click.UsageError("--pin needs --experiment")
        uris = reg.pin_variants(name, experiment, mapping)
    else:
        uris = reg.variant_uris(name, mapping, experiment=experiment)
    click.echo(json.dumps(uris, indent=2))


@click.command("publish")
@click.option("--model", "model", required=True, help="A bundle folder, or models:/NAME@ALIAS / models:/NAME/VERSION.")
@click.option("--store", default="memory://", show_default=True, help="redis://host:port/db (or memory://).")
@click.option("--namespace", default="default", show_default=True, help="Store key namespace (tm:NAMESPACE:…).")
@click.option("--item-features", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              help="CSV/Parquet with an item_id column and numeric feature columns to publish too.")
@click.option("--user-features", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              help="CSV/Parquet with a user_id column and numeric feature columns.")
@click.option("--keep", default=1, show_default=True, type=click.IntRange(min=0),
              help="Retired store versions kept for a rollback.")
@click.option("--grace-s", "grace_seconds", default=None, type=click.FloatRange(min=0),
              help="Delete retired versions only this long after the switch (default: the store's, 60 s).")
@click.option("--batch-size", default=10_000, show_default=True, type=click.IntRange(min=1))
@_URI
@click.option("--json", "as_json", is_flag=True)
def publish(model, store, namespace, item_features, user_features, keep, grace_seconds, batch_size, registry_uri,
            as_json) -> None:
    """Bulk-load a model's vectors and features into the store under a new version, switch atomically,
    then delete old versions whose grace period is over."""
    from tastemaker.publish import publish as run_publish

    report = run_publish(model, store, namespace, registry_uri=registry_uri,
                         item_features=_feature_frame(item_features, "item_id"),
                         user_features=_feature_frame(user_features, "user_id"),
                         keep=keep, grace_seconds=grace_seconds, batch_size=batch_size)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        return
    console.print(report.summary(), highlight=False)
    for note in report.notes:
        console.print(f"note: {note}", highlight=False)


def _feature_frame(path: Path | None, id_column: str):
    if path is None:
        return None
    import pandas as pd

    from tastemaker.errors import DataError

    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(
        path, sep="\t" if path.suffix in (".tsv", ".tab") else ",", dtype={id_column: str})
    if id_column not in frame.columns:
        raise DataError(f"no {id_column!r} column", path=path,
                        hint=f"columns found: {', '.join(map(str, frame.columns))}")
    return frame.set_index(frame[id_column].astype(str)).drop(columns=[id_column])
