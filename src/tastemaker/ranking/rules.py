"""Business rules: a declared rule file, validated with file/line errors, applied to one request's ranking.

The engine takes one request's ranked candidates (`Candidates`: ids, scores and attributes as
columns) and its context (`RequestContext`: user, purchases, region, per-request constraints) and
returns the final top-k (`RankResult`), every item carrying a trace of the rules that moved it.

Order of application (the same for every request)::

    1. filters      hard: an item that fails one is out (stock, already bought, price range,
                    category allow/deny, region, then the request's own constraints)
    2. boosts       in the declared order, each multiplying or adding to the score
    3. sort         by score (ties: the input order)
    4. pins         item X at position p
    5. sponsored    labelled slots filled from sponsored candidates above a relevance floor
    6. exploration  slots given to new SKUs by Thompson sampling, propensity logged
    7. organic fill the remaining positions in score order (or by MMR / calibrated re-ranking),
                    greedily skipping items whose brand/category has reached its cap

Conflicts, decided once:

- **pin vs filter** — filters win: a pinned item that fails a filter is not shown (a note says
  which filter); pins never bring back an item the business has excluded.
- **pin vs cap** — the pin wins: a pinned item is placed even if its brand/category is full, and it
  counts towards the cap, so fewer organic items of that group are shown.
- **sponsored / exploration vs cap** — caps win: these slots take only items that keep every cap;
  the items they place count towards the caps before organic items are chosen.
- **two placements at one position** — rejected when the file is validated.
- **a placement past k** (k lowered by a request) — not shown, with a note.
- **caps leave too few items** — the list is shorter than k (caps are hard), with a note.
- positions are 1-based; when the list is shorter than a reserved position, the list is closed up.

Rule files are TOML or JSON with the same schema (see `RuleFile` and docs/examples/rules.toml).
A bad file raises `RulesError` (a `ConfigError`) naming the file, the line, the field and what is
allowed. `RuleSetHolder` (or `RuleSet.watch`) reloads a file when its content changes, swapping
atomically, and keeps serving the old rules when the new file is invalid.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import types
import typing
import zlib
from bisect import bisect_right
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tastemaker.config import StrictConfig
from tastemaker.errors import ConfigError
from tastemaker.exploration.thompson import ThompsonSlots
from tastemaker.ranking.diversity import (
    CATEGORIES,
    MAX_DEPTH,
    CalibrationState,
    MatrixSimilarity,
    MMRState,
    VectorSimilarity,
    category_codes,
    category_distribution,
    category_similarity_matrix,
    codes_at_depth,
)
from tastemaker.ranking.trace import ExplorationChoice, RankedItem, RankResult, TraceEntry

log = logging.getLogger(__name__)

# ================================================================================================
# schema
# ================================================================================================


class _Spec(StrictConfig):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)


CategoryPath = Annotated[str, Field(min_length=1, pattern=r"^[^/\s](.*[^/\s])?$")]
Position = Annotated[int, Field(ge=1, le=10_000)]


class ScoresSpec(_Spec):
    """How input scores are prepared before boosts.

    normalize: "none" keeps the scorer's scores; "minmax" rescales them to [0, 1] over the
        candidates that passed the filters (use it when scores can be negative, e.g. a LambdaMART
        ranker's, since multiplicative boosts assume non-negative scores).
    """

    normalize: Literal["none", "minmax"] = "none"


class FiltersSpec(_Spec):
    """Hard filters. An item failing one is not shown (its trace says which one removed it).

    in_stock: drop items whose stock is below `min_stock` (unknown stock counts as out of stock).
    already_bought: "allow"; "exclude" items the user bought; "exclude_unless_consumable" keeps
        bought items flagged consumable (the repurchase case).
    price_min / price_max: inclusive price range (an unknown price fails it).
    category_allow: keep only items under one of these category paths (prefix match on whole
        levels: "home/kitchen" matches "home/kitchen/mugs", not "home/kitchenware").
    category_deny: drop items under one of these category paths.
    region: drop items not available in the request's region.
    """

    in_stock: bool = False
    min_stock: float = Field(1.0, ge=0)
    already_bought: Literal["allow", "exclude", "exclude_unless_consumable"] = "allow"
    price_min: float | None = Field(None, ge=0)
    price_max: float | None = Field(None, gt=0)
    category_allow: list[CategoryPath] = Field(default_factory=list)
    category_deny: list[CategoryPath] = Field(default_factory=list)
    region: bool = False


class _StepBoost(_Spec):
    """A boost on items matching a condition: give `factor` (multiply, > 0) or `delta` (add).

    A factor below 1 or a negative delta buries instead of boosting.
    """

    name: str | None = Field(None, min_length=1)
    factor: float | None = Field(None, gt=0, allow_inf_nan=False)
    delta: float | None = Field(None, allow_inf_nan=False)


class MarginBoost(_Spec):
    """Continuous boost by margin: score × (1 + weight·margin), or score + weight·margin if additive."""

    kind: Literal["margin"]
    name: str | None = Field(None, min_length=1)
    weight: float = Field(allow_inf_nan=False)
    mode: Literal["multiplicative", "additive"] = "multiplicative"


class PromotionBoost(_StepBoost):
    """Boost items flagged as on promotion."""

    kind: Literal["promotion"]


class NewArrivalBoost(_StepBoost):
    """Boost items launched within the last `days` days (relative to the request's date)."""

    kind: Literal["new_arrival"]
    days: int = Field(gt=0)


class BrandBoost(_StepBoost):
    """Boost (or bury, with factor < 1) items of these brands."""

    kind: Literal["brand"]
    brands: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1)


class CategoryBoost(_StepBoost):
    """Boost (or bury) items under these category paths."""

    kind: Literal["category"]
    categories: list[CategoryPath] = Field(min_length=1)


class TagBoost(_StepBoost):
    """Boost (or bury) items carrying one of these tags."""

    kind: Literal["tag"]
    tags: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1)


Boost = Annotated[
    Union[MarginBoost, PromotionBoost, NewArrivalBoost, BrandBoost, CategoryBoost, TagBoost],  # noqa: UP007
    Field(discriminator="kind"),
]
BOOST_KINDS = ("margin", "promotion", "new_arrival", "brand", "category", "tag")


class CapSpec(_Spec):
    """At most `max` items per brand, or per category cut at `depth` levels, in the top `within`.

    `within` defaults to the request's k. Greedy: going down the positions, an item whose group is
    full is skipped and the order of the others is kept.
    """

    name: str | None = Field(None, min_length=1)
    by: Literal["brand", "category"]
    max: int = Field(ge=1)
    depth: int | None = Field(None, ge=1, le=MAX_DEPTH)
    within: int | None = Field(None, ge=1)


class PinSpec(_Spec):
    """Show `item` at `position` (1-based) when it is a candidate that passes the filters."""

    name: str | None = Field(None, min_length=1)
    item: str = Field(min_length=1)
    position: Position


class SponsoredSpec(_Spec):
    """Labelled sponsored slots.

    positions: the 1-based positions of the slots, filled in ascending order with the best-scored
        sponsored candidates (flag `sponsored`) that pass the filters, the caps and the floor.
    min_relevance: the candidate's input (relevance) score must be at least this.
    min_relevance_quantile: ... and at least this quantile (0–1, the "lower" quantile: an actual
        score) of the input scores of the request's candidates that pass the filters.
    organic: whether sponsored candidates that get no slot may still rank organically (unlabelled).
    """

    positions: list[Position] = Field(default_factory=list)
    min_relevance: float | None = Field(None, allow_inf_nan=False)
    min_relevance_quantile: float | None = Field(None, ge=0, le=1)
    organic: bool = True


class DiversitySpec(_Spec):
    """Diversity re-ranking of the organic positions (one knob: `lambda`).

    method: "none", "mmr" or "calibrated".
    lambda: MMR — 1 = relevance order, 0 = maximal diversity. Calibrated (Steck 2018, the paper's
        convention) — 0 = relevance order, 1 = closest match to the user's category mix.
    similarity: MMR only — "category" (shared leading levels of category paths) or "vectors"
        (cosine of the candidates' vectors).
    depth: calibrated only — the category level the distributions are taken at.
    alpha: calibrated only — Steck's smoothing of the list distribution.
    pool: how many of the best-scored remaining candidates the re-ranker chooses from (default
        max(3 × free positions, 50)); positions it cannot fill take the next items in score order.
    """

    method: Literal["none", "mmr", "calibrated"] = "none"
    lam: float = Field(0.8, ge=0, le=1, alias="lambda")
    similarity: Literal["category", "vectors"] = "category"
    depth: int = Field(1, ge=1, le=MAX_DEPTH)
    alpha: float = Field(0.01, gt=0, lt=1)
    pool: int | None = Field(None, ge=1)


class ExplorationSpec(_Spec):
    """Exploration slots for new SKUs, chosen by Beta-Bernoulli Thompson sampling.

    positions: 1-based positions of the slots.
    new_days: an item launched within this many days is "new".
    pool: how many new candidates (best scored first) compete for a slot.
    draws: Monte-Carlo draws per item used to estimate the propensity of the choice.
    prior: (alpha, beta) of the Beta prior of an item never shown.
    seed: seeds the Monte-Carlo draws (and the choice, when the request carries an id).
    """

    positions: list[Position] = Field(default_factory=list)
    new_days: int = Field(30, gt=0)
    pool: int = Field(8, ge=1, le=256)
    draws: int = Field(256, ge=10, le=100_000)
    prior: tuple[Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)]] = (1.0, 1.0)
    seed: int = 0


class RuleFile(_Spec):
    """The rule file: every table is optional; an empty file changes nothing but cutting at k."""

    version: Literal[1] = 1
    k: int = Field(20, ge=1, le=10_000)
    scores: ScoresSpec = Field(default_factory=ScoresSpec)
    filters: FiltersSpec = Field(default_factory=FiltersSpec)
    boosts: list[Boost] = Field(default_factory=list)
    caps: list[CapSpec] = Field(default_factory=list)
    pins: list[PinSpec] = Field(default_factory=list)
    sponsored: SponsoredSpec = Field(default_factory=SponsoredSpec)
    diversity: DiversitySpec = Field(default_factory=DiversitySpec)
    exploration: ExplorationSpec = Field(default_factory=ExplorationSpec)


# ================================================================================================
# validation errors with file and line
# ================================================================================================


@dataclass(frozen=True)
class RuleProblem:
    """One problem of a rule file: where (line, field) and what (message, with what is allowed)."""

    line: int | None
    field: str
    message: str

    def text(self, source: str) -> str:
        where = f"{source}, line {self.line}" if self.line is not None else source
        return f"{where}: {self.field}: {self.message}"


class RulesError(ConfigError):
    """A rule file is invalid. `path` is the file, `problems` every problem with its line and field."""

    def __init__(self, path: str, problems: list[RuleProblem]) -> None:
        self.path = path
        self.problems = problems
        if len(problems) == 1:
            text = problems[0].text(path)
        else:
            text = f"{path}: {len(problems)} problems\n" + "\n".join("  " + p.text(path) for p in problems)
        super().__init__(text)

    @property
    def line(self) -> int | None:
        return self.problems[0].line if self.problems else None

    @property
    def field(self) -> str | None:
        return self.problems[0].field if self.problems else None


_KEY_PART = re.compile(r'[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|\'[^\']*\'')
_KEY_LINE = re.compile(r'^\s*((?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|\'[^\']*\')'
                       r'(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|\'[^\']*\'))*)\s*=(.*)$')
_HEADER_LINE = re.compile(r"^\s*(\[\[?)(.*?)(\]\]?)\s*(?:#.*)?$")
_INLINE_KEY = re.compile(r'([A-Za-z0-9_-]+|"[^"]*")\s*=')


def _key_parts(text: str) -> tuple[str, ...]:
    return tuple(p[1:-1] if p[:1] in "\"'" else p for p in _KEY_PART.findall(text))


def _bracket_delta(text: str, state: dict) -> int:
    """Net [ { minus ] } in a value fragment, skipping strings and comments; tracks multi-line strings."""
    depth = 0
    i = 0
    while i < len(text):
        if state.get("ml"):
            end = text.find(state["ml"], i)
            if end < 0:
                return depth
            i = end + 3
            state["ml"] = None
            continue
        c = text[i]
        if text.startswith('"""', i) or text.startswith("'''", i):
            state["ml"] = text[i:i + 3]
            i += 3
            continue
        if c == '"':
            i += 1
            while i < len(text) and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
        elif c == "'":
            end = text.find("'", i + 1)
            i = len(text) if end < 0 else end
        elif c == "#":
            return depth
        elif c in "[{":
            depth += 1
        elif c in "]}":
            depth -= 1
        i += 1
    return depth


def toml_key_lines(text: str) -> dict[tuple, int]:
    """Map each key path of a (valid) TOML document to the 1-based line where it is written.

    Array-of-table entries get their index (``("boosts", 2, "factor")``); a table header maps its
    own path to its line. tomllib keeps no positions, hence this scan.
    """
    lines: dict[tuple, int] = {}
    counts: dict[tuple, int] = {}
    current: tuple = ()
    depth = 0
    state: dict = {}
    for no, raw in enumerate(text.splitlines(), start=1):
        if depth > 0 or state.get("ml"):
            depth += _bracket_delta(raw, state)
            continue
        header = _HEADER_LINE.match(raw)
        if header and raw.lstrip().startswith("["):
            parts = _key_parts(header.group(2))
            path: tuple = ()
            for p in parts[:-1]:
                path += (p,)
                if path in counts:
                    path += (counts[path] - 1,)
            path += (parts[-1],) if parts else ()
            if header.group(1) == "[[":
                counts[path] = counts.get(path, 0) + 1
                lines.setdefault(path, no)
                path += (counts[path] - 1,)
            lines.setdefault(path, no)
            current = path
            continue
        key = _KEY_LINE.match(raw)
        if key:
            path = current + _key_parts(key.group(1))
            lines.setdefault(path, no)
            value = key.group(2)
            if value.lstrip().startswith("{"):
                for m in _INLINE_KEY.finditer(value):
                    lines.setdefault(path + _key_parts(m.group(1)), no)
            depth = _bracket_delta(value, state)
    return lines


def json_key_lines(text: str) -> dict[tuple, int]:
    """Map each key path (keys and list indices) of a JSON document to the 1-based line it starts on."""
    newlines = [i for i, c in enumerate(text) if c == "\n"]
    decoder = json.JSONDecoder()
    lines: dict[tuple, int] = {}
    ws = re.compile(r"\s*")

    def line_of(pos: int) -> int:
        return bisect_right(newlines, pos - 1) + 1

    def skip(pos: int) -> int:
        return ws.match(text, pos).end()

    def value(pos: int, path: tuple) -> int:
        pos = skip(pos)
        lines.setdefault(path, line_of(pos))
        c = text[pos]
        if c == "{":
            pos = skip(pos + 1)
            if text[pos] == "}":
                return pos + 1
            while True:
                key, end = json.decoder.scanstring(text, pos + 1)
                lines.setdefault((*path, key), line_of(pos))
                pos = skip(end)
                pos = value(pos + 1, (*path, key))  # past ':'
                pos = skip(pos)
                if text[pos] == "}":
                    return pos + 1
                pos = skip(pos + 1)  # past ','
        if c == "[":
            pos = skip(pos + 1)
            if text[pos] == "]":
                return pos + 1
            i = 0
            while True:
                pos = skip(value(pos, (*path, i)))
                i += 1
                if text[pos] == "]":
                    return pos + 1
                pos += 1
        _, end = decoder.raw_decode(text, pos)
        return end

    value(0, ())
    return lines


def _unwrap(ann: Any) -> Any:
    while True:
        origin = typing.get_origin(ann)
        if origin is Annotated:
            ann = typing.get_args(ann)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in typing.get_args(ann) if a is not type(None)]
            if len(args) == 1:
                ann = args[0]
            else:
                return ann
        else:
            return ann


def _resolve(loc: Sequence[Any]) -> tuple[tuple, type[BaseModel]]:
    """Clean a pydantic error location (drop union tags, map aliases) and find the model it ends in.

    Returns (path, model) where `model` is the model class holding the last key of the path.
    """
    ann: Any = RuleFile
    path: list = []
    parent: type[BaseModel] = RuleFile
    for el in loc:
        ann = _unwrap(ann)
        origin = typing.get_origin(ann)
        if isinstance(el, int) and origin in (list, tuple):
            args = typing.get_args(ann)
            ann = args[min(el, len(args) - 1)] if origin is tuple and args[-1] is not Ellipsis else args[0]
            path.append(el)
        elif origin in (Union, types.UnionType):
            members = [_unwrap(a) for a in typing.get_args(ann)]
            match = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)
                     and "kind" in m.model_fields and el in typing.get_args(m.model_fields["kind"].annotation)]
            ann = match[0] if match else None
            if not match:
                path.append(el)
        elif isinstance(ann, type) and issubclass(ann, BaseModel) and isinstance(el, str):
            parent = ann
            found = next((f for name, f in ann.model_fields.items() if (f.alias or name) == el), None)
            path.append(el)
            ann = found.annotation if found is not None else None
        else:
            path.append(el)
            ann = None
    return tuple(path), parent


def _field_text(path: Sequence[Any]) -> str:
    out = ""
    for el in path:
        out += f"[{el}]" if isinstance(el, int) else (f".{el}" if out else str(el))
    return out or "(file)"


def _line_for(lines: Mapping[tuple, int] | None, path: tuple) -> int | None:
    if not lines:
        return None
    for cut in range(len(path), -1, -1):
        if path[:cut] in lines:
            return lines[path[:cut]]
    return 1


def _allowed_keys(model: type[BaseModel]) -> str:
    return ", ".join(f.alias or name for name, f in model.model_fields.items())


def _problems_from_validation(exc: ValidationError, lines: Mapping[tuple, int] | None) -> list[RuleProblem]:
    out = []
    for err in exc.errors():
        path, model = _resolve(err["loc"])
        kind = err["type"]
        got = err.get("input")
        if kind == "extra_forbidden":
            msg = f"unknown key {path[-1]!r}; allowed keys here: {_allowed_keys(model)}"
        elif kind == "missing":
            msg = f"required key {path[-1]!r} is missing"
            if model.__doc__:
                msg += f" ({model.__name__}: {model.__doc__.strip().splitlines()[0]})"
        elif kind in ("union_tag_invalid", "union_tag_not_found"):
            path = (*path, "kind")
            msg = f"kind must be one of {', '.join(repr(k) for k in BOOST_KINDS)}" + (
                f" (got {got.get('kind')!r})" if isinstance(got, dict) and "kind" in got else " (missing)")
        else:
            msg = f"{err['msg']} (got {got!r})"
        out.append(RuleProblem(_line_for(lines, path), _field_text(path), msg))
    return out


def _default_names(spec: RuleFile) -> dict[tuple, str]:
    """Names of boosts, caps and pins (declared, or made from the kind) keyed by (table, index)."""
    names: dict[tuple, str] = {}
    taken: dict[str, int] = {}
    rows = ([(("boosts", i), b.name, b.kind) for i, b in enumerate(spec.boosts)]
            + [(("caps", i), c.name, f"{c.by}_cap") for i, c in enumerate(spec.caps)]
            + [(("pins", i), p.name, f"pin:{p.item}") for i, p in enumerate(spec.pins)])
    explicit = {n for _, n, _ in rows if n}
    for key, name, default in rows:
        if name:
            names[key] = name
            continue
        base = default
        taken[base] = taken.get(base, 0) + 1
        name = base if taken[base] == 1 and base not in explicit else f"{base}#{taken[base]}"
        names[key] = name
    return names


def _cross_check(spec: RuleFile) -> list[tuple[tuple, str]]:
    """Checks across fields; (path, message) for each problem."""
    out: list[tuple[tuple, str]] = []
    f = spec.filters
    if f.price_min is not None and f.price_max is not None and f.price_min > f.price_max:
        out.append((("filters", "price_max"), f"price_max ({f.price_max}) must be ≥ price_min ({f.price_min})"))
    both = set(f.category_allow) & set(f.category_deny)
    if both:
        out.append((("filters", "category_deny"), f"categories both allowed and denied: {sorted(both)}"))
    for i, b in enumerate(spec.boosts):
        if isinstance(b, _StepBoost) and (b.factor is None) == (b.delta is None):
            out.append((("boosts", i, "factor"),
                        "give exactly one of factor (multiplicative, > 0) or delta (additive)"))
    seen: dict[str, tuple] = {}
    for table, i in _default_names(spec):
        declared = getattr(spec, table)[i].name
        if declared and declared in seen:
            out.append(((table, i, "name"), f"rule name {declared!r} is used twice; names must be unique"))
        if declared:
            seen[declared] = (table, i)
    for i, c in enumerate(spec.caps):
        if c.by == "brand" and c.depth is not None:
            out.append((("caps", i, "depth"), "depth applies only to caps by category; remove it"))
    placed: dict[int, str] = {}
    items: set[str] = set()
    for i, p in enumerate(spec.pins):
        if p.item in items:
            out.append((("pins", i, "item"), f"item {p.item!r} is pinned twice"))
        items.add(p.item)
        if p.position in placed:
            out.append((("pins", i, "position"), f"position {p.position} is already taken by {placed[p.position]}"))
        placed.setdefault(p.position, f"pin {p.item!r}")
    for table, label in (("sponsored", "a sponsored slot"), ("exploration", "an exploration slot")):
        for j, pos in enumerate(getattr(spec, table).positions):
            if pos in placed:
                out.append(((table, "positions", j), f"position {pos} is already taken by {placed[pos]}"))
            placed.setdefault(pos, label)
    return out


def _parse(text: str, fmt: str, source: str) -> RuleFile:
    if fmt == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RulesError(source, [RuleProblem(exc.lineno, "(syntax)", f"invalid JSON: {exc.msg} "
                                                  f"(column {exc.colno})")]) from None
        if not isinstance(data, dict):
            raise RulesError(source, [RuleProblem(1, "(file)", "a JSON rule file must be one object")])
        lines_fn = json_key_lines
    else:
        import tomllib

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            m = re.search(r"line (\d+)", str(exc))
            raise RulesError(source, [RuleProblem(int(m.group(1)) if m else None, "(syntax)",
                                                  f"invalid TOML: {exc}")]) from None
        lines_fn = toml_key_lines
    try:
        spec = RuleFile.model_validate(data)
    except ValidationError as exc:
        raise RulesError(source, _problems_from_validation(exc, lines_fn(text))) from None
    problems = _cross_check(spec)
    if problems:
        lines = lines_fn(text)
        raise RulesError(source, [RuleProblem(_line_for(lines, p), _field_text(p), m) for p, m in problems])
    return spec


def _format_of(path: Path, text: str) -> str:
    if path.suffix.lower() == ".json":
        return "json"
    if path.suffix.lower() == ".toml":
        return "toml"
    return "json" if text.lstrip().startswith("{") else "toml"


# ================================================================================================
# the request: candidates and context
# ================================================================================================


def _floats(x: Any, n: int, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.shape != (n,):
        raise ValueError(f"candidate column {name!r} has shape {a.shape}, expected ({n},)")
    return a


def _strings(x: Any, n: int, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype.kind != "U":
        a = np.asarray(["" if v is None else str(v) for v in a.tolist()], dtype=str) if n else np.zeros(0, "U1")
    if a.shape != (n,):
        raise ValueError(f"candidate column {name!r} has shape {a.shape}, expected ({n},)")
    return a


def _bools(x: Any, n: int, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=bool)
    if a.shape != (n,):
        raise ValueError(f"candidate column {name!r} has shape {a.shape}, expected ({n},)")
    return a


def _sets(x: Any, n: int, name: str) -> np.ndarray:
    """A set-valued column (tags, regions) as ',a,b,' strings; '' when the item has none."""
    a = None if isinstance(x, list) else np.asarray(x)
    if a is None or a.dtype.kind != "U":
        vals = list(x)
        a = np.asarray([v if isinstance(v, str) else "" if v is None else ",".join(str(t) for t in v)
                        for v in vals] if vals else [], dtype=str)
    a = np.strings.replace(a, " ", "")
    out = np.where(np.strings.str_len(a) > 0, np.strings.add(np.strings.add(",", a), ","), "")
    if out.shape != (n,):
        raise ValueError(f"candidate column {name!r} has shape {out.shape}, expected ({n},)")
    return out


_COLUMNS = ("price", "margin", "stock", "category", "brand", "launch", "tags", "regions", "promo", "sponsored",
            "campaign", "consumable")


def _prepare(n: int, cols: Mapping[str, Any]) -> dict[str, Any]:
    """Validate and normalise attribute columns for `n` items."""
    unknown = set(cols) - set(_COLUMNS) - {"vectors"}
    if unknown:
        raise ValueError(f"unknown candidate attributes {sorted(unknown)}; known: {', '.join(_COLUMNS)}, vectors")
    out: dict[str, Any] = dict.fromkeys((*_COLUMNS, "vectors"))
    for name, x in cols.items():
        if x is None:
            continue
        if name in ("price", "margin", "stock"):
            out[name] = _floats(x, n, name)
        elif name in ("category", "brand", "campaign"):
            out[name] = _strings(x, n, name)
        elif name in ("tags", "regions"):
            out[name] = _sets(x, n, name)
        elif name in ("promo", "sponsored", "consumable"):
            out[name] = _bools(x, n, name)
        elif name == "launch":
            a = np.asarray(x, dtype="datetime64[D]")
            if a.shape != (n,):
                raise ValueError(f"candidate column 'launch' has shape {a.shape}, expected ({n},)")
            out[name] = a
        else:
            v = np.asarray(x, dtype=np.float64)
            if v.ndim != 2 or len(v) != n:
                raise ValueError(f"candidate vectors have shape {v.shape}, expected ({n}, d)")
            out[name] = v
    return out


class Candidates:
    """One request's candidates as columns, one entry per item.

    Only `ids` and `scores` are required; a rule that needs a missing column is skipped with a
    note in the result. Columns:

    - ids: item ids (compared as strings; unique — pins and `explain` use the first occurrence);
      scores: relevance scores (higher is better, finite);
    - price, margin, stock: numbers (NaN = unknown; unknown margin counts as 0);
    - category: paths like "home/kitchen/mugs" ("" = unknown); brand: names;
    - launch: launch dates (anything numpy turns into datetime64[D]; NaT = unknown);
    - tags, regions: per item a list of strings or one comma-separated string; regions empty or
      "*" means available everywhere;
    - promo, sponsored, consumable: flags; campaign: the sponsored campaign id ("" = none);
    - vectors: (n, d) item vectors, for MMR with similarity = "vectors".

    Building from Python lists costs string work per request; in serving, prepare the catalogue
    once as an `AttributeTable` and take each request's candidates from it by row.
    """

    __slots__ = ("_cat", "_ids_list", "_rows", "_table", "brand", "campaign", "category", "consumable", "ids",
                 "launch", "margin", "price", "promo", "regions", "scores", "sponsored", "stock", "tags", "vectors")

    def __init__(self, ids: Any, scores: Any, *, price: Any = None, margin: Any = None, stock: Any = None,
                 category: Any = None, brand: Any = None, launch: Any = None, tags: Any = None, regions: Any = None,
                 promo: Any = None, sponsored: Any = None, campaign: Any = None, consumable: Any = None,
                 vectors: Any = None) -> None:
        self.ids = _strings(ids, len(ids), "ids")
        n = len(self.ids)
        cols = _prepare(n, {"price": price, "margin": margin, "stock": stock, "category": category, "brand": brand,
                            "launch": launch, "tags": tags, "regions": regions, "promo": promo,
                            "sponsored": sponsored, "campaign": campaign, "consumable": consumable,
                            "vectors": vectors})
        for name, col in cols.items():
            setattr(self, name, col)
        self._set_scores(scores)
        self._cat: tuple[np.ndarray, np.ndarray] | None = None
        self._ids_list: list[str] | None = None
        self._rows: np.ndarray | None = None
        self._table: AttributeTable | None = None

    def _set_scores(self, scores: Any) -> None:
        self.scores = _floats(scores, len(self.ids), "scores")
        if not np.isfinite(self.scores).all():
            bad = self.ids[~np.isfinite(self.scores)][:3].tolist()
            raise ValueError(f"candidate scores must be finite; not finite for {bad}")

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]], *, id_key: str = "item_id",
                     score_key: str = "score") -> Candidates:
        """Build from dicts (one per item); keys are the column names, missing values are unknown."""
        rows = list(records)
        present = {k for r in rows for k in r} - {id_key, score_key}
        unknown = present - set(_COLUMNS) - {"vectors"}
        if unknown:
            raise ValueError(f"unknown candidate attributes {sorted(unknown)}; known: {', '.join(_COLUMNS)}, vectors")
        missing = {"price": np.nan, "margin": np.nan, "stock": np.nan, "category": "", "brand": "",
                   "launch": None, "tags": None, "regions": None, "promo": False, "sponsored": False,
                   "campaign": "", "consumable": False}
        cols: dict[str, Any] = {}
        for name in present:
            if name in ("tags", "regions"):
                cols[name] = [r.get(name) for r in rows]
            elif name == "vectors":
                cols[name] = np.asarray([r[name] for r in rows], dtype=np.float64)
            else:
                default = missing.get(name)
                cols[name] = [default if r.get(name) is None else r[name] for r in rows]
        return cls([r[id_key] for r in rows], [r[score_key] for r in rows], **cols)

    @property
    def id_list(self) -> list[str]:
        if self._ids_list is None:
            self._ids_list = self.ids.tolist()
        return self._ids_list

    def category_codes(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-level category codes and depths (computed once per request)."""
        if self._cat is None:
            if self._table is not None and self._table._cat_rows is not None:
                self._cat = CATEGORIES.codes(self._table._cat_rows[self._rows])
            else:
                self._cat = category_codes(self.category if self.category is not None else np.full(len(self), ""))
        return self._cat

    def set_category_rows(self, rows: Any) -> None:
        """The candidates' category paths as rows of `CATEGORIES` (interned by the caller, e.g. once
        per catalogue value), so `category_codes` needs no string work. They must be the rows of
        the paths in `category`."""
        rows = np.asarray(rows, dtype=np.intp)
        if rows.shape != (len(self),):
            raise ValueError(f"category rows have shape {rows.shape}, expected ({len(self)},)")
        self._cat = CATEGORIES.codes(rows)

    def contains(self, ids: Collection[Any]) -> np.ndarray:
        """Boolean mask of the candidates whose id is in `ids`."""
        if not ids:
            return np.zeros(len(self), dtype=bool)
        if self._table is not None:
            wanted = np.sort(self._table.rows(ids))
            if not len(wanted):
                return np.zeros(len(self), dtype=bool)
            at = np.minimum(np.searchsorted(wanted, self._rows), len(wanted) - 1)
            return wanted[at] == self._rows
        pool = ids if isinstance(ids, set | frozenset) else {str(i) for i in ids}
        return np.fromiter((v in pool for v in self.id_list), dtype=bool, count=len(self))


class AttributeTable:
    """The rule attributes of every item of a catalogue, prepared once; requests take rows of it.

    Takes the same columns as `Candidates` (without scores). Strings are normalised and category
    paths coded here, so `candidates(rows, scores)` costs a few array copies per request.
    """

    def __init__(self, ids: Any, **columns: Any) -> None:
        self.ids = _strings(ids, len(ids), "ids")
        self._index = {v: i for i, v in enumerate(self.ids.tolist())}
        if len(self._index) != len(self.ids):
            raise ValueError("AttributeTable ids must be unique")
        self.columns = {k: v for k, v in _prepare(len(self.ids), columns).items() if v is not None}
        cat = self.columns.get("category")
        self._cat_rows = None if cat is None else CATEGORIES.rows_of(cat.tolist())

    def __len__(self) -> int:
        return len(self.ids)

    def rows(self, ids: Iterable[Any]) -> np.ndarray:
        """Row of each id (ids not in the table are left out)."""
        get = self._index.get
        found = [r for r in (get(str(i)) for i in ids) if r is not None]
        return np.asarray(found, dtype=np.intp)

    def candidates(self, rows: Any, scores: Any, *, vectors: Any = None) -> Candidates:
        """The candidates at these rows with these scores (`vectors` for MMR on vectors)."""
        rows = np.asarray(rows, dtype=np.intp)
        c = object.__new__(Candidates)
        c.ids = self.ids[rows]
        for name in (*_COLUMNS, "vectors"):
            col = self.columns.get(name)
            setattr(c, name, None if col is None else col[rows])
        if vectors is not None:
            c.vectors = _prepare(len(rows), {"vectors": vectors})["vectors"]
        c._set_scores(scores)
        c._cat = None
        c._ids_list = None
        c._rows = rows
        c._table = self
        return c


@dataclass(frozen=True)
class RequestContext:
    """What the engine knows about the request.

    - user_id, purchased: the user and the ids of items they bought (for "already bought");
    - region: where the user is (for the region filter);
    - now: the request's date (new arrivals, exploration); default: today;
    - price_min, price_max, categories, exclude_categories, brands, exclude_items: constraints of
      this request, applied as hard filters after the file's filters;
    - category_profile: category path → weight of the user's history (for calibrated re-ranking);
    - request_id: when given, seeds the exploration choice so a request replays identically.
    """

    user_id: str | None = None
    purchased: Collection[str] = frozenset()
    region: str | None = None
    now: Any = None
    price_min: float | None = None
    price_max: float | None = None
    categories: Sequence[str] | None = None
    exclude_categories: Sequence[str] = ()
    brands: Sequence[str] | None = None
    exclude_items: Collection[str] = ()
    category_profile: Mapping[str, float] | None = None
    request_id: str | None = None

    def today(self) -> np.datetime64:
        if self.now is None:
            return np.datetime64(date.today(), "D")
        if isinstance(self.now, datetime):
            return np.datetime64(self.now.date(), "D")
        return np.datetime64(self.now, "D")


# ================================================================================================
# the engine
# ================================================================================================


def _any_equal(col: np.ndarray, values: Sequence[str]) -> np.ndarray:
    if len(values) > 8:
        return np.isin(col, np.asarray(values, dtype=str))
    out = col == values[0]
    for v in values[1:]:
        out |= col == v
    return out


def _prefix_codes(prefixes: Iterable[str], *, add: bool = False) -> list[tuple[int, int]]:
    return [CATEGORIES.prefix_code(p, add=add) for p in prefixes]


def _under(cands: Candidates, prefixes: Sequence[tuple[int, int]]) -> np.ndarray:
    """Items whose category path is one of the (code, depth) prefixes or below one (whole levels)."""
    codes, _ = cands.category_codes()
    out = np.zeros(len(cands), dtype=bool)
    for code, depth in prefixes:
        if code >= 0 and depth > 0:
            out |= codes[:, depth - 1] == code
    return out


def _launched_within(launch: np.ndarray, today: np.datetime64, days: int) -> np.ndarray:
    """Launched between `days` days before `today` and today, both included (NaT: never)."""
    day = launch.view(np.int64)  # days since the epoch; NaT is the smallest int64, so it fails both tests
    t = int(today.astype(np.int64))
    return (day >= t - days) & (day <= t)


def _fmt(x: float) -> str:
    return f"{x:.4g}"


@dataclass
class _Event:
    """A score change by one boost: the items it changed (sorted), their scores before/after."""

    rule: str
    kind: str
    idx: np.ndarray
    mask: np.ndarray
    before: np.ndarray
    after: np.ndarray
    factor: np.ndarray | None  # multiplicative factor per changed item; None for additive
    snap: int  # index of the score snapshot before this boost (the one after is snap + 1)


@dataclass
class _Placement:
    rule: str
    kind: str
    action: str
    effect: str  # may contain {pos}, the final position


@dataclass
class _State:
    """Per-request bookkeeping; the trace is built from it only when someone reads it."""

    trace: bool
    filtered: list[tuple[str, str, np.ndarray]] = field(default_factory=list)
    events: list[_Event] = field(default_factory=list)
    snapshots: list[np.ndarray] = field(default_factory=list)
    placements: dict[int, _Placement] = field(default_factory=dict)
    extra: dict[int, list[TraceEntry]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    removed: dict[str, int] = field(default_factory=dict)
    fills: list[tuple[Any, Any, int]] = field(default_factory=list)  # (cap, group key, position it filled at)
    horizon: int = 0  # how far down the score order the organic fill looked (for cap traces)

    def add_extra(self, i: int, entry: TraceEntry) -> None:
        self.extra.setdefault(i, []).append(entry)


class _Cap:
    """A cap during one request: counts per group within its window, and the items of full groups."""

    def __init__(self, name: str, spec: CapSpec, keys: np.ndarray, window: int, label: Callable[[Any], str]):
        self.name, self.spec, self.keys, self.window, self.label = name, spec, keys, window, label
        self.max = spec.max
        self.counts: dict[Any, int] = {}
        self.full = np.zeros(len(keys), dtype=bool)

    def fits(self, i: int, position: int) -> bool:
        return position > self.window or self.counts.get(self.keys[i], 0) < self.max

    def add(self, i: int, position: int, st: _State) -> None:
        """Count item i placed at `position` (placements before the organic fill)."""
        if position > self.window:
            return
        key = self.keys[i]
        c = self.counts.get(key, 0) + 1
        self.counts[key] = c
        if c == self.max:
            self.full |= self.keys == key
            st.fills.append((self, key, position))

    def reason(self, key: Any) -> str:
        return f"capped: {self.spec.by} {self.label(key)!r} already has {self.max} in the top {self.window}"


class _LazyKeys:
    """`keys[ordered]` as a Python list, converted a block at a time as a scan goes deeper."""

    __slots__ = ("_keys", "_list", "_ordered")

    def __init__(self, keys: np.ndarray, ordered: np.ndarray) -> None:
        self._keys, self._ordered, self._list = keys, ordered, []

    def __getitem__(self, j: int) -> Any:
        lst = self._list
        if j >= len(lst):
            end = max(2 * len(lst), j + 1, 64)
            lst.extend(self._keys[self._ordered[len(lst):end]].tolist())
        return lst[j]



def _slot_eligible(base: np.ndarray, reserved: np.ndarray, caps: list[_Cap], pos: int) -> np.ndarray:
    """Candidates that may take slot `pos`: in `base`, not already placed, and in no cap that is full
    for a window covering `pos`."""
    eligible = base & ~reserved
    for c in caps:
        if pos <= c.window:
            eligible &= ~c.full
    return eligible

class RuleSet:
    """A validated rule file, ready to rank requests. Immutable; reloading makes a new one."""

    def __init__(self, spec: RuleFile, *, source: str = "<rules>", version: str | None = None) -> None:
        self.spec = spec
        self.source = source
        self.version = version or hashlib.sha256(
            json.dumps(spec.model_dump(mode="json", by_alias=True), sort_keys=True).encode()).hexdigest()[:16]
        self.names = _default_names(spec)
        f = spec.filters
        # the file's category prefixes as codes, once: matching them is an integer comparison
        self._allow = _prefix_codes(f.category_allow, add=True)
        self._deny = _prefix_codes(f.category_deny, add=True)
        self._boost_categories = {i: _prefix_codes(b.categories, add=True) for i, b in enumerate(spec.boosts)
                                  if isinstance(b, CategoryBoost)}

    # --- loading ---------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path) -> RuleSet:
        """Read and validate a TOML or JSON rule file (format from the suffix, else the content)."""
        path = Path(path)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise RulesError(str(path), [RuleProblem(None, "(file)", "the rule file does not exist")]) from None
        return cls._from_bytes(raw, path)

    @classmethod
    def _from_bytes(cls, raw: bytes, path: Path) -> RuleSet:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RulesError(str(path), [RuleProblem(None, "(file)", f"not UTF-8 text: {exc}")]) from None
        spec = _parse(text, _format_of(path, text), str(path))
        return cls(spec, source=str(path), version=hashlib.sha256(raw).hexdigest()[:16])

    @classmethod
    def from_text(cls, text: str, *, fmt: Literal["toml", "json"] = "toml", source: str = "<rules>") -> RuleSet:
        """Validate rules given as TOML or JSON text (`source` names it in errors)."""
        if fmt not in ("toml", "json"):
            raise ConfigError(f"rule format must be 'toml' or 'json', got {fmt!r}")
        return cls(_parse(text, fmt, source), source=source,
                   version=hashlib.sha256(text.encode()).hexdigest()[:16])

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<rules>") -> RuleSet:
        """Validate rules given as a dict (errors name the field, without a line)."""
        try:
            spec = RuleFile.model_validate(dict(data))
        except ValidationError as exc:
            raise RulesError(source, _problems_from_validation(exc, None)) from None
        problems = _cross_check(spec)
        if problems:
            raise RulesError(source, [RuleProblem(None, _field_text(p), m) for p, m in problems])
        return cls(spec, source=source)

    @staticmethod
    def watch(path: str | Path, *, interval: float = 1.0, **kwargs: Any) -> RuleSetHolder:
        """Load `path` and start a background reloader; see `RuleSetHolder`."""
        return RuleSetHolder(path, interval=interval, **kwargs).start()

    @property
    def required_items(self) -> list[str]:
        """Items the rules place by id (pins): retrieval should add them to the candidates."""
        return [p.item for p in self.spec.pins]

    def new_bandit(self) -> ThompsonSlots:
        """A Thompson policy with this file's exploration settings and no data yet."""
        e = self.spec.exploration
        return ThompsonSlots(e.prior, draws=e.draws, seed=e.seed)

    # --- ranking ---------------------------------------------------------------------------------

    def rank(self, cands: Candidates, ctx: RequestContext | None = None, *, k: int | None = None,
             trace: bool = True, bandit: ThompsonSlots | None = None,
             rng: np.random.Generator | None = None) -> RankResult:
        """Apply the rules to one request's candidates and return the final top-k.

        Args:
            cands: the candidates with their scores and attributes.
            ctx: the request (user, purchases, region, constraints); default: anonymous, today.
            k: list length (default: the file's k).
            trace: keep what the trace needs (score snapshots, diversity choices); the entries are
                built when an item's `trace` (or `RankResult.explain`) is first read.
            bandit: the exploration policy holding the learned posteriors (default: a fresh one,
                i.e. the prior only — pass the long-lived one, e.g. `RuleSetHolder.bandit`).
            rng: generator for the exploration choice (default: seeded from the request id, or fresh).
        """
        spec = self.spec
        ctx = ctx or RequestContext()
        k = int(spec.k if k is None else k)
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        n = len(cands)
        st = _State(trace)
        rel = cands.scores
        order0 = np.argsort(-rel, kind="stable")
        rank0 = np.empty(n, dtype=np.intp)
        rank0[order0] = np.arange(n)

        alive = self._filter(cands, ctx, st)

        s = rel.copy()
        if spec.scores.normalize == "minmax" and alive.any():
            lo, hi = float(rel[alive].min()), float(rel[alive].max())
            s = (rel - lo) / (hi - lo) if hi > lo else np.where(alive, 1.0, 0.0)
        self._boost(cands, ctx, st, alive, s)

        by_input = order0[alive[order0]]  # alive items in input order, so a stable sort breaks ties by it
        ordered = by_input[np.argsort(-s[by_input], kind="stable")]
        srank = np.zeros(n, dtype=np.intp)  # 1-based rank by final score among alive items; 0 = filtered
        srank[ordered] = np.arange(1, len(ordered) + 1)

        caps = self._caps(cands, st, k)
        slots: dict[int, int] = {}
        reserved = np.zeros(n, dtype=bool)
        exploration: list[ExplorationChoice] = []
        self._pins(cands, st, alive, k, slots, reserved, caps)
        organic_ok = self._sponsored(cands, st, alive, s, rel, ordered, k, slots, reserved, caps)
        self._explore(cands, ctx, st, alive, ordered, k, slots, reserved, caps, bandit, rng, exploration)
        self._fill(cands, ctx, st, alive & organic_ok & ~reserved, s, ordered, srank, k, slots, caps)

        final = [slots[p] for p in sorted(slots)]
        final_pos = {i: p for p, i in enumerate(final, start=1)}
        self._capped(st, caps, ordered, srank, s, final_pos, slots)
        tracer = _Tracer(st, alive, by_input, srank, final) if trace else None
        ids = cands.ids[final].tolist()
        scores, rels, inputs = s[final].tolist(), rel[final].tolist(), (rank0[final] + 1).tolist()
        no_trace = None if trace else ()
        items = [RankedItem(item_id, pos, sc, rv, ip, False, None, False, False, None, no_trace,
                            None if tracer is None else partial(tracer.listed, pos - 1))
                 for pos, (item_id, sc, rv, ip) in enumerate(zip(ids, scores, rels, inputs, strict=True), 1)]
        for pos, i in enumerate(final):
            pl = st.placements.get(i)
            if pl is None:
                continue
            it = items[pos]
            if pl.kind == "sponsored":
                it.sponsored = True
                it.campaign = (str(cands.campaign[i]) or None) if cands.campaign is not None else None
            elif pl.kind == "pin":
                it.pinned = True
            else:
                it.explored = True
                it.propensity = next(c.propensity for c in exploration if c.item_id == it.item_id)

        def explain(item_id: str) -> list[TraceEntry]:
            hits = np.flatnonzero(cands.ids == item_id)
            if not len(hits) or tracer is None:
                return []
            return tracer.entries(int(hits[0]))

        return RankResult(items=items, removed=st.removed, notes=st.notes, exploration=exploration,
                          rules_version=self.version, _explain=explain)

    # --- steps -----------------------------------------------------------------------------------

    def _filter(self, cands: Candidates, ctx: RequestContext, st: _State) -> np.ndarray:
        f = self.spec.filters
        n = len(cands)
        alive = np.ones(n, dtype=bool)

        def apply(name: str, keep: np.ndarray, effect: str) -> None:
            nonlocal alive
            drop = alive > keep
            count = int(drop.sum())
            if count:
                st.filtered.append((name, effect, drop))
                st.removed[name] = count
                alive = alive & keep

        def lacks(name: str, column: str) -> bool:
            if getattr(cands, column) is None:
                st.notes.append(f"filter {name} skipped: the candidates carry no {column!r}")
                return True
            return False

        if f.in_stock and not lacks("in_stock", "stock"):
            apply("in_stock", cands.stock >= f.min_stock, f"filtered: stock below {_fmt(f.min_stock)}")
        if f.already_bought != "allow" and ctx.purchased:
            bought = cands.contains(ctx.purchased)
            if f.already_bought == "exclude_unless_consumable":
                if cands.consumable is None:
                    st.notes.append("filter already_bought: no 'consumable' flags, every bought item excluded")
                else:
                    bought &= ~cands.consumable
            apply("already_bought", ~bought, "filtered: already bought" +
                  (" and not consumable" if f.already_bought == "exclude_unless_consumable" else ""))
        if (f.price_min is not None or f.price_max is not None) and not lacks("price_range", "price"):
            apply("price_range", self._in_range(cands.price, f.price_min, f.price_max),
                  f"filtered: price outside [{f.price_min if f.price_min is not None else '-'}, "
                  f"{f.price_max if f.price_max is not None else '-'}]")
        if f.category_allow and not lacks("category_allow", "category"):
            apply("category_allow", _under(cands, self._allow), "filtered: category not in the allow list")
        if f.category_deny and not lacks("category_deny", "category"):
            apply("category_deny", ~_under(cands, self._deny), "filtered: category in the deny list")
        if f.region and ctx.region is not None and not lacks("region", "regions"):
            r = str(ctx.region).strip()
            keep = (np.strings.str_len(cands.regions) == 0) | (cands.regions == ",*,")
            keep |= np.strings.find(cands.regions, f",{r},") >= 0
            apply("region", keep, f"filtered: not available in region {r!r}")
        # the request's own constraints
        if (ctx.price_min is not None or ctx.price_max is not None) and not lacks("request.price_range", "price"):
            apply("request.price_range", self._in_range(cands.price, ctx.price_min, ctx.price_max),
                  f"filtered: price outside the requested [{ctx.price_min}, {ctx.price_max}]")
        if ctx.categories is not None and not lacks("request.categories", "category"):
            cands.category_codes()  # code the candidates' paths first: unknown request prefixes match nothing
            apply("request.categories", _under(cands, _prefix_codes(ctx.categories)),
                  "filtered: not in the requested categories")
        if ctx.exclude_categories and not lacks("request.exclude_categories", "category"):
            cands.category_codes()
            apply("request.exclude_categories", ~_under(cands, _prefix_codes(ctx.exclude_categories)),
                  "filtered: in an excluded category")
        if ctx.brands is not None and not lacks("request.brands", "brand"):
            apply("request.brands", _any_equal(cands.brand, [str(b) for b in ctx.brands]) if ctx.brands
                  else np.zeros(n, dtype=bool), "filtered: not one of the requested brands")
        if ctx.exclude_items:
            apply("request.exclude_items", ~cands.contains(ctx.exclude_items),
                  "filtered: excluded by the request")
        return alive

    @staticmethod
    def _in_range(x: np.ndarray, lo: float | None, hi: float | None) -> np.ndarray:
        keep = ~np.isnan(x)
        if lo is not None:
            keep &= x >= lo
        if hi is not None:
            keep &= x <= hi
        return keep

    def _boost(self, cands: Candidates, ctx: RequestContext, st: _State, alive: np.ndarray, s: np.ndarray) -> None:
        """Apply the boosts in order, in place on `s` (scores of filtered items may change too: unused)."""
        if not self.spec.boosts:
            return
        if st.trace:
            st.snapshots.append(s.copy())
        for i, b in enumerate(self.spec.boosts):
            name = self.names[("boosts", i)]
            if isinstance(b, MarginBoost):
                if cands.margin is None:
                    st.notes.append(f"boost {name} skipped: the candidates carry no 'margin'")
                    continue
                m = cands.margin
                m = np.where(m == m, m, 0.0)  # unknown margin counts as 0
                mask = None
                if b.mode == "multiplicative":
                    factor = 1.0 + b.weight * m
                    new = s * factor
                else:
                    factor = None
                    new = s + b.weight * m
            else:
                mask = self._boost_mask(i, b, name, cands, ctx, st)
                if mask is None:
                    continue
                factor = b.factor
                if not st.trace:  # the fast path: change the scores, record nothing
                    if factor is not None:
                        np.multiply(s, factor, out=s, where=mask)
                    else:
                        np.add(s, b.delta, out=s, where=mask)
                    continue
                new = np.where(mask, s * factor, s) if factor is not None else np.where(mask, s + b.delta, s)
            if not st.trace:
                s[:] = new
                continue
            changed = alive & (new != s)
            idx = np.flatnonzero(changed)
            if not len(idx):
                continue
            before = s[idx]
            s[:] = new
            per_item = None if factor is None else (factor[idx] if mask is None else np.full(len(idx), factor))
            st.events.append(_Event(name, f"boost.{b.kind}", idx, changed, before, new[idx], per_item,
                                    len(st.snapshots) - 1))
            st.snapshots.append(s.copy())

    def _boost_mask(self, i: int, b: Any, name: str, cands: Candidates, ctx: RequestContext, st: _State
                    ) -> np.ndarray | None:
        need = {"promotion": "promo", "new_arrival": "launch", "brand": "brand", "category": "category",
                "tag": "tags"}[b.kind]
        if getattr(cands, need) is None:
            st.notes.append(f"boost {name} skipped: the candidates carry no {need!r}")
            return None
        if b.kind == "promotion":
            return cands.promo
        if b.kind == "new_arrival":
            return _launched_within(cands.launch, ctx.today(), b.days)
        if b.kind == "brand":
            return _any_equal(cands.brand, b.brands)
        if b.kind == "category":
            return _under(cands, self._boost_categories[i])
        out = np.zeros(len(cands), dtype=bool)
        for t in b.tags:
            out |= np.strings.find(cands.tags, f",{t.strip()},") >= 0
        return out

    def _caps(self, cands: Candidates, st: _State, k: int) -> list[_Cap]:
        caps = []
        for i, c in enumerate(self.spec.caps):
            name = self.names[("caps", i)]
            window = min(c.within or k, k)
            if getattr(cands, c.by) is None:
                st.notes.append(f"cap {name} skipped: the candidates carry no {c.by!r}")
                continue
            if c.by == "brand":
                caps.append(_Cap(name, c, cands.brand, window, str))
                continue
            depth = c.depth or 1
            codes, depths = cands.category_codes()
            keys = codes_at_depth(codes, depths, depth)
            # an unknown category forms no group: each such item gets a key of its own
            keys = np.where(keys >= 0, keys, -1 - np.arange(len(keys)))
            paths = cands.category

            def label(key: Any, keys: np.ndarray = keys, paths: np.ndarray = paths, depth: int = depth) -> str:
                hit = np.flatnonzero(keys == key)
                path = CATEGORIES.normalise(paths[hit[0]]) if len(hit) else "?"
                return "/".join(path.split("/")[:depth])

            caps.append(_Cap(name, c, keys, window, label))
        return caps

    def _pins(self, cands: Candidates, st: _State, alive: np.ndarray, k: int, slots: dict[int, int],
              reserved: np.ndarray, caps: list[_Cap]) -> None:
        for j, p in enumerate(self.spec.pins):
            name = self.names[("pins", j)]
            hits = np.flatnonzero(cands.ids == p.item)
            if not len(hits):
                st.notes.append(f"pin {name}: item {p.item!r} is not among the candidates")
                continue
            i = int(hits[0])
            if not alive[i]:
                why = next(r for r, _, drop in st.filtered if drop[i])
                st.notes.append(f"pin {name}: item {p.item!r} not shown, removed by filter {why} (filters win)")
                st.add_extra(i, TraceEntry(name, "pin", "skipped", f"not pinned: removed by filter {why}"))
                continue
            if p.position > k:
                st.notes.append(f"pin {name}: position {p.position} is past k={k}")
                continue
            slots[p.position] = i
            reserved[i] = True
            over = [c.name for c in caps if not c.fits(i, p.position)]
            for c in caps:
                c.add(i, p.position, st)
            st.placements[i] = _Placement(name, "pin", "pinned", "pinned at {pos}" + (
                f" (over cap {', '.join(over)}: pins win)" if over else ""))

    def _sponsored(self, cands: Candidates, st: _State, alive: np.ndarray, s: np.ndarray, rel: np.ndarray,
                   ordered: np.ndarray, k: int, slots: dict[int, int], reserved: np.ndarray,
                   caps: list[_Cap]) -> np.ndarray:
        sp = self.spec.sponsored
        organic_ok = np.ones(len(cands), dtype=bool)
        if not sp.positions:
            return organic_ok
        if cands.sponsored is None:
            st.notes.append("sponsored slots left organic: the candidates carry no 'sponsored' flags")
            return organic_ok
        ok = alive & cands.sponsored
        if sp.min_relevance is not None:
            ok &= rel >= sp.min_relevance
        if sp.min_relevance_quantile is not None and alive.any():
            ranked = np.sort(rel[alive])
            ok &= rel >= ranked[int(sp.min_relevance_quantile * (len(ranked) - 1))]
        for pos in sorted(sp.positions):
            if pos > k:
                st.notes.append(f"sponsored slot {pos} is past k={k}")
                continue
            if pos in slots:
                continue
            eligible = _slot_eligible(ok, reserved, caps, pos)
            e = eligible[ordered]
            if not e.any():
                st.notes.append(f"sponsored slot {pos} filled organically: no sponsored candidate passes the "
                                f"filters, caps and relevance floor")
                continue
            i = int(ordered[int(np.argmax(e))])
            slots[pos] = i
            reserved[i] = True
            for c in caps:
                c.add(i, pos, st)
            campaign = str(cands.campaign[i]) if cands.campaign is not None else ""
            st.placements[i] = _Placement("sponsored", "sponsored", "sponsored", f"sponsored slot {pos}" + (
                f", campaign {campaign!r}" if campaign else "").replace("{", "{{").replace("}", "}}"))
        if not sp.organic:
            unplaced = alive & cands.sponsored & ~reserved
            if unplaced.any():
                organic_ok = ~unplaced
                st.removed["sponsored"] = int(unplaced.sum())
                for i in np.flatnonzero(unplaced).tolist():
                    st.add_extra(i, TraceEntry("sponsored", "sponsored", "filtered",
                                               "filtered: sponsored candidate without a slot (organic = false)"))
        return organic_ok

    def _explore(self, cands: Candidates, ctx: RequestContext, st: _State, alive: np.ndarray, ordered: np.ndarray,
                 k: int, slots: dict[int, int], reserved: np.ndarray, caps: list[_Cap],
                 bandit: ThompsonSlots | None, rng: np.random.Generator | None,
                 log_: list[ExplorationChoice]) -> None:
        e = self.spec.exploration
        if not e.positions:
            return
        if cands.launch is None:
            st.notes.append("exploration slots left organic: the candidates carry no 'launch' dates")
            return
        new = alive & _launched_within(cands.launch, ctx.today(), e.new_days)
        bandit = bandit or self.new_bandit()
        if rng is None:
            rng = (np.random.default_rng([e.seed, zlib.crc32(str(ctx.request_id).encode())])
                   if ctx.request_id is not None else np.random.default_rng())
        for pos in sorted(e.positions):
            if pos > k:
                st.notes.append(f"exploration slot {pos} is past k={k}")
                continue
            if pos in slots:
                continue
            eligible = _slot_eligible(new, reserved, caps, pos)
            pool = ordered[eligible[ordered]][: e.pool]
            if not len(pool):
                st.notes.append(f"exploration slot {pos} filled organically: no new item (launched within "
                                f"{e.new_days} days) passes the filters and caps")
                continue
            pool_ids = cands.ids[pool].tolist()
            item, p = bandit.select(pool_ids, rng)
            i = int(pool[pool_ids.index(item)])
            slots[pos] = i
            reserved[i] = True
            for c in caps:
                c.add(i, pos, st)
            log_.append(ExplorationChoice(pos, item, p, tuple(pool_ids)))
            text = f"explored with propensity {p:.4g} (Thompson sampling among {len(pool)} new items)"
            st.placements[i] = _Placement("exploration", "exploration", "explored", text)

    def _fill(self, cands: Candidates, ctx: RequestContext, st: _State, remaining: np.ndarray, s: np.ndarray,
              ordered: np.ndarray, srank: np.ndarray, k: int, slots: dict[int, int], caps: list[_Cap]) -> None:
        """Fill the free positions from the remaining items: score order, or the diversity re-ranker."""
        free = [p for p in range(1, k + 1) if p not in slots]
        rem = remaining[ordered]  # from here on, index j = the item's place in score order
        if not free or not rem.any():
            return
        d = self.spec.diversity
        if d.method != "none":
            # the re-ranker looks at the best-scored remaining items (and at the placed ones, which
            # count as already in the list); anything it cannot fill follows in score order
            pool = np.flatnonzero(rem)[: d.pool or max(3 * len(free), 50)]
            placed = np.sort(srank[list(slots.values())] - 1) if slots else np.zeros(0, dtype=np.intp)
            sub = np.concatenate([pool, placed])
            div = self._diversity(cands, ctx, st, s, ordered[sub])
            if div is not None:
                for r in range(len(pool), len(sub)):
                    div.add(r)
                sub_rem = np.zeros(len(sub), dtype=bool)
                sub_rem[: len(pool)] = True
                free = self._greedy(st, div, sub_rem, ordered[sub], free, slots, caps, s, srank)
                if not free:
                    return
                st.horizon = max(st.horizon, int(pool[-1]) + 1)  # the whole pool was looked at
                rem = rem.copy()
                rem[pool] = False
        self._scan(st, rem, ordered, free, slots, caps)

    @staticmethod
    def _scan(st: _State, rem: np.ndarray, ordered: np.ndarray, free: list[int], slots: dict[int, int],
              caps: list[_Cap]) -> None:
        """Greedy fill in score order; an item whose group is full under an active cap waits.

        Groups only fill up, so a waiting item is looked at again only when a cap's window ends.
        """
        order = np.flatnonzero(rem)
        if not caps:
            for pos, j in zip(free, ordered[order[: len(free)]].tolist(), strict=False):
                slots[pos] = j
            return
        horizon = len(rem)  # an early stop below sets it to where the scan got to
        pending = iter(order.tolist())
        last = -1
        keys = [_LazyKeys(c.keys, ordered) for c in caps]
        waiting: list[int] = []  # looked at, blocked by the active caps
        retry: list[int] = []  # looked at before, to look at again (they come before `pending`)
        active_prev: tuple | None = None
        for pos in free:
            active = tuple(ci for ci, c in enumerate(caps) if pos <= c.window)
            if active != active_prev:
                retry = sorted(waiting + retry)
                waiting = []
                active_prev = active
            chosen = None
            while chosen is None:
                if retry:
                    j = retry.pop(0)
                else:
                    j = next(pending, None)
                    if j is None:
                        break
                    last = j
                for ci in active:
                    if caps[ci].counts.get(keys[ci][j], 0) >= caps[ci].max:
                        waiting.append(j)
                        break
                else:
                    chosen = j
            if chosen is None:
                if waiting:
                    st.notes.append(f"position {pos} left empty: every remaining candidate is capped")
                    continue
                break
            slots[pos] = int(ordered[chosen])
            for ci in active:
                c = caps[ci]
                key = keys[ci][chosen]
                cnt = c.counts.get(key, 0) + 1
                c.counts[key] = cnt
                if cnt == c.max:
                    st.fills.append((c, key, pos))
        else:
            horizon = last + 1
        st.horizon = max(st.horizon, horizon)

    def _greedy(self, st: _State, div: Any, rem: np.ndarray, ordered: np.ndarray, free: list[int],
                slots: dict[int, int], caps: list[_Cap], s: np.ndarray, srank: np.ndarray) -> list[int]:
        """Greedy fill by the diversity re-ranker's gains, among the items the caps allow.

        Returns the positions it could not fill (its items ran out or are all capped).
        """
        keys = [c.keys[ordered] for c in caps]
        full = [c.full[ordered] for c in caps]
        blocked = np.zeros(len(rem))
        active_prev: tuple | None = None
        for n_done, pos in enumerate(free):
            active = tuple(ci for ci, c in enumerate(caps) if pos <= c.window) if caps else ()
            if active != active_prev:
                ok = rem.copy()
                for ci in active:
                    ok &= ~full[ci]
                blocked = np.where(ok, 0.0, -np.inf)
                active_prev = active
            g = div.gains() + blocked
            j = int(np.argmax(g))
            if g[j] == -np.inf:
                return free[n_done:]
            i = int(ordered[j])
            if st.trace and j:
                jumped = int(np.count_nonzero(blocked[:j] == 0.0))
                if jumped:
                    st.add_extra(i, self._div_entry(div, j, jumped, i, s, srank))
            slots[pos] = i
            rem[j] = False
            blocked[j] = -np.inf
            for ci in active:
                c = caps[ci]
                key = keys[ci][j]
                cnt = c.counts.get(key, 0) + 1
                c.counts[key] = cnt
                if cnt == c.max:
                    full[ci] |= keys[ci] == key
                    blocked[full[ci]] = -np.inf
                    st.fills.append((c, key, pos))
            div.add(j)
            st.horizon = max(st.horizon, int(srank[i]))
        return []

    @staticmethod
    def _capped(st: _State, caps: list[_Cap], ordered: np.ndarray, srank: np.ndarray, s: np.ndarray,
                final_pos: dict[int, int], slots: dict[int, int]) -> None:
        """Items a cap kept out of its window: members of a full group, above the last organic item.

        They get a "capped" trace entry; those left out of the list altogether count in `removed`.
        """
        if not st.fills:
            return
        placed = set(final_pos)
        horizon = st.horizon
        for cap, key, at in st.fills:
            members = ordered[:horizon][cap.keys[ordered[:horizon]] == key].tolist()
            for i in members:
                p = final_pos.get(i)
                if i in st.placements or (p is not None and p <= cap.window):
                    continue
                if i not in placed:
                    st.removed[cap.name] = st.removed.get(cap.name, 0) + 1
                if st.trace:
                    st.add_extra(i, TraceEntry(cap.name, f"cap.{cap.spec.by}", "capped",
                                               cap.reason(key) + f" (full at position {at})",
                                               float(s[i]), float(s[i]), int(srank[i]), p))

    def _diversity(self, cands: Candidates, ctx: RequestContext, st: _State, s: np.ndarray,
                   items: np.ndarray) -> MMRState | CalibrationState | None:
        """The re-ranker's state over `items` (candidate indices, the first ones in score order)."""
        d = self.spec.diversity
        rel = s[items]
        if d.method == "mmr":
            if d.similarity == "vectors":
                if cands.vectors is None:
                    st.notes.append("MMR skipped: the candidates carry no 'vectors'")
                    return None
                v = VectorSimilarity(cands.vectors[items]).v
                return MMRState(rel, MatrixSimilarity(v @ v.T), d.lam)
            if cands.category is None:
                st.notes.append("MMR skipped: the candidates carry no 'category'")
                return None
            codes, depths = cands.category_codes()
            return MMRState(rel, MatrixSimilarity(category_similarity_matrix(codes[items], depths[items])), d.lam)
        if cands.category is None or not ctx.category_profile:
            st.notes.append("calibrated re-ranking skipped: " + (
                "the candidates carry no 'category'" if cands.category is None else "the request has no "
                "category_profile"))
            return None
        codes, depths = cands.category_codes()
        dist = category_distribution(codes_at_depth(codes[items], depths[items], d.depth),
                                     ctx.category_profile, d.depth)
        if dist is None:
            st.notes.append("calibrated re-ranking skipped: no category of the profile is known")
            return None
        return CalibrationState(rel, dist[0], dist[1], d.lam, d.alpha)

    def _div_entry(self, div: Any, j: int, jumped: int, i: int, s: np.ndarray, srank: np.ndarray) -> TraceEntry:
        d = self.spec.diversity
        if isinstance(div, MMRState):
            what = (f"diversified (MMR λ={d.lam:g}): chosen over {jumped} higher-scored item(s), "
                    f"max similarity to the list {div.max_similarity(j):.3g}")
            kind = "diversity.mmr"
        else:
            what = (f"diversified (calibrated λ={d.lam:g}): chosen over {jumped} higher-scored item(s) "
                    f"to match the user's category mix")
            kind = "diversity.calibrated"
        return TraceEntry(f"diversity.{d.method}", kind, "diversified", what, float(s[i]), float(s[i]),
                          int(srank[i]), None)

    # --- trace -----------------------------------------------------------------------------------



class _Tracer:
    """Builds trace entries from a request's bookkeeping, on demand (for the whole list at once)."""

    def __init__(self, st: _State, alive: np.ndarray, by_input: np.ndarray, srank: np.ndarray,
                 final: list[int]) -> None:
        self.st, self.alive, self.by_input, self.srank, self.final = st, alive, by_input, srank, final
        self.final_pos = {i: p for p, i in enumerate(final, start=1)}
        self._positions: dict[int, np.ndarray] = {}
        self._listed: list[list[TraceEntry]] | None = None

    def positions(self, snap: int) -> np.ndarray:
        """1-based position of every alive item by the scores of snapshot `snap` (ties: input order)."""
        pos = self._positions.get(snap)
        if pos is None:
            a = self.by_input
            pos = np.zeros(len(self.alive), dtype=np.intp)
            pos[a[np.argsort(-self.st.snapshots[snap][a], kind="stable")]] = np.arange(1, len(a) + 1)
            self._positions[snap] = pos
        return pos

    def listed(self, k: int) -> list[TraceEntry]:
        """The trace of the item at (0-based) place k of the list."""
        if self._listed is None:
            self._listed = self.batch(self.final)
        return self._listed[k]

    def entries(self, i: int) -> list[TraceEntry]:
        """The trace of candidate i (in the list or not)."""
        return self.batch([i])[0]

    def batch(self, items: list[int]) -> list[list[TraceEntry]]:
        st = self.st
        arr = np.asarray(items, dtype=np.intp)
        out: list[list[TraceEntry]] = [[] for _ in items]
        dead = ~self.alive[arr]
        if dead.any():
            todo = set(np.flatnonzero(dead).tolist())
            for name, effect, drop in st.filtered:
                for h in [h for h in todo if drop[items[h]]]:
                    out[h].append(TraceEntry(name, f"filter.{name}", "filtered", effect))
                    todo.discard(h)
        for ev in st.events:
            hits = np.flatnonzero(ev.mask[arr])
            if not len(hits):
                continue
            who = arr[hits]
            js = np.searchsorted(ev.idx, who)
            before, after = ev.before[js].tolist(), ev.after[js].tolist()
            factor = ev.factor[js].tolist() if ev.factor is not None else None
            pos_b = self.positions(ev.snap)[who].tolist()
            pos_a = self.positions(ev.snap + 1)[who].tolist()
            for t, h in enumerate(hits.tolist()):
                b, a = before[t], after[t]
                if factor is not None:
                    f = factor[t]
                    effect = f"boosted ×{f:.4g}" if f >= 1 else f"buried ×{f:.4g}"
                else:
                    effect = f"boosted +{a - b:.4g}" if a >= b else f"buried {a - b:.4g}"
                out[h].append(TraceEntry(ev.rule, ev.kind, "boosted" if a >= b else "buried", effect, b, a,
                                         pos_b[t], pos_a[t]))
        for h, i in enumerate(items):
            final = self.final_pos.get(i)
            for e in st.extra.get(i, ()):
                out[h].append(e._replace(position_after=final) if e.action in ("capped", "diversified") else e)
            pl = st.placements.get(i)
            if pl is not None and final is not None:
                out[h].append(TraceEntry(pl.rule, pl.kind, pl.action, pl.effect.format(pos=final), None, None,
                                         int(self.srank[i]) or None, final))
        return out


# ================================================================================================
# hot reload
# ================================================================================================


class RuleSetHolder:
    """Serves the current rules of a file and reloads them when the file's content changes.

    `current` is swapped atomically (one attribute assignment), so a request reads either the old
    or the new rules, never a mix. An invalid new file is not loaded: the old rules keep serving,
    `last_error` holds the `RulesError` (file, line, field) and `on_error` is called with it. The
    file must be valid when the holder is created.

    `check()` compares the file's content hash now; `start()` runs it every `interval` seconds in a
    daemon thread (`stop()` or a `with` block ends it). `bandit` is the exploration policy; it
    outlives reloads (its learned posteriors are kept; changed prior/draws/seed are applied).
    """

    def __init__(self, path: str | Path, *, interval: float = 1.0,
                 on_error: Callable[[ConfigError], None] | None = None,
                 on_reload: Callable[[RuleSet], None] | None = None, bandit: ThompsonSlots | None = None) -> None:
        self.path = Path(path)
        self.interval = float(interval)
        self.on_error = on_error
        self.on_reload = on_reload
        self._current = RuleSet.load(self.path)
        self._seen = self._current.version
        self.bandit = bandit or self._current.new_bandit()
        self.last_error: ConfigError | None = None
        self.reloads = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def current(self) -> RuleSet:
        return self._current

    @property
    def version(self) -> str:
        return self._current.version

    def check(self) -> bool:
        """Reload if the file's content changed; True when new rules were swapped in."""
        with self._lock:
            try:
                raw = self.path.read_bytes()
            except OSError as exc:
                return self._fail(hashlib.sha256(repr(exc).encode()).hexdigest()[:16],
                                  RulesError(str(self.path), [RuleProblem(None, "(file)", f"cannot read: {exc}")]))
            digest = hashlib.sha256(raw).hexdigest()[:16]
            if digest == self._seen:
                return False
            try:
                new = RuleSet._from_bytes(raw, self.path)
            except ConfigError as exc:
                return self._fail(digest, exc)
            self._adopt_bandit(new)
            self._current = new
            self._seen = digest
            self.last_error = None
            self.reloads += 1
        log.info("rules reloaded from %s (version %s)", self.path, new.version)
        if self.on_reload is not None:
            self.on_reload(new)
        return True

    def _fail(self, digest: str, exc: ConfigError) -> bool:
        first = digest != self._seen
        self._seen = digest  # report a bad version once, not at every poll
        self.last_error = exc
        if first:
            log.warning("rules not reloaded, still serving version %s: %s", self._current.version, exc)
            if self.on_error is not None:
                self.on_error(exc)
        return False

    def _adopt_bandit(self, new: RuleSet) -> None:
        e = new.spec.exploration
        b = self.bandit
        if (tuple(e.prior), e.draws, e.seed) == (b.prior, b.draws, b.seed):
            return
        state = b.to_dict()
        old_a, old_b = b.prior
        state["posteriors"] = {k: [a - old_a + e.prior[0], bb - old_b + e.prior[1]]
                               for k, (a, bb) in state["posteriors"].items()}
        state.update(prior=list(e.prior), draws=e.draws, seed=e.seed)
        self.bandit = ThompsonSlots.from_dict(state)

    def rank(self, cands: Candidates, ctx: RequestContext | None = None, **kwargs: Any) -> RankResult:
        """`current.rank(...)` with this holder's exploration policy."""
        kwargs.setdefault("bandit", self.bandit)
        return self._current.rank(cands, ctx, **kwargs)

    def start(self) -> RuleSetHolder:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=f"rules-watch:{self.path.name}", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, 2 * self.interval))
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:  # the watcher must survive anything; the error is logged
                log.exception("rule reload check failed for %s", self.path)

    def __enter__(self) -> RuleSetHolder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
