"""Typed configuration: pydantic models that round-trip through TOML files.

Settings are documented once, on the config class. Unknown keys are errors (a typo in a TOML file
must not be silently ignored).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, TypeVar

import tomli_w
from pydantic import BaseModel, ConfigDict, ValidationError

from tastemaker.errors import ConfigError

C = TypeVar("C", bound="StrictConfig")


class StrictConfig(BaseModel):
    """Base of every config: unknown keys are rejected, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)

    @classmethod
    def parse(cls: type[C], data: dict[str, Any] | None = None, *, source: str = "config", **overrides: Any) -> C:
        """Validate `data` (plus keyword overrides) or raise a `ConfigError` naming each bad key."""
        merged = {**(data or {}), **overrides}
        try:
            return cls.model_validate(merged)
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, cls, source)) from None

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def format_validation_error(exc: ValidationError, cls: type[BaseModel], source: str) -> str:
    allowed = ", ".join(cls.model_fields)
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(root)"
        if err["type"] == "extra_forbidden":
            lines.append(f"unknown key {key!r} (known keys: {allowed})")
        else:
            lines.append(f"{key}: {err['msg']} (got {err.get('input')!r})")
    return f"{source}: invalid {cls.__name__}: " + "; ".join(lines)


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file, turning syntax errors into a `ConfigError` with the file and line."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def write_toml(path: str | Path, data: dict[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tomli_w.dumps(_drop_none(data)))
    return path


def _drop_none(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _drop_none(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [_drop_none(v) for v in obj]
    return obj
