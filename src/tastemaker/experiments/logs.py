"""Reading exposure and event logs, and turning them into per-unit aggregates of one experiment.

File formats (JSON lines, optionally gzipped; each line either plain JSON or the service's
checksummed form ``<crc32 hex> <json>``):

- **exposures**: one record per (request, experiment), as `assignment.exposure_record` writes
  it: experiment, variant, unit ("user"/"session"), unit_id, at (epoch seconds), returning,
  request_id and ``items`` (item_id, position, propensity, explored, category).
- **events**: the service's event log (``{"kind": "event", "event": {…}}``; item records are
  skipped) or flat event objects: event_id, type (view / click / add_to_cart / purchase),
  user_id, session_id, item_id, timestamp (ISO 8601 or epoch seconds; default received_at),
  price (per unit), quantity, optional order_id and category. CSV and Parquet files with those
  columns work too. A purchase's order is ``order_id`` when given, else its (unit, session_id),
  else the event itself.
- **pre-period** (for CUPED): per-user aggregates (a ``user_id`` column plus any of
  impressions, clicks, views, add_to_cart, orders, revenue, items) as CSV/Parquet/JSON lines, or
  an event log of the pre-period (impressions are then its ``view`` events).

Events count for a unit from its first exposure on (earlier ones cannot be affected by the
treatment); events of units never exposed are ignored.
"""

from __future__ import annotations

import gzip
import io
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from tastemaker.errors import DataError
from tastemaker.experiments.config import ADDITIVE, UNIT_AGGREGATES, ExperimentConfig

EVENT_TYPES = ("view", "click", "add_to_cart", "purchase")
MAX_CATEGORIES = 12


# ================================================================================================
# reading
# ================================================================================================


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _json_lines(path: str | Path) -> list[bytes]:
    """The JSON bodies of a JSON-lines file: plain lines as they are, the service's checksummed lines
    (``<crc32 hex> <json>``) verified and stripped. A torn last line is dropped; a damaged line
    elsewhere raises a `DataError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise DataError("the log file does not exist", path=path, hint="give the path of a JSON-lines log")
    with _open(path) as fh:
        lines = fh.read().split(b"\n")
    last = len(lines)
    while last and not lines[last - 1].strip():
        last -= 1
    bodies = []
    for no, raw in enumerate(lines[:last], 1):
        raw = raw.strip()
        if not raw:
            continue
        if raw[:1] == b"{":
            bodies.append(raw)
            continue
        ok = len(raw) > 9 and raw[8:9] == b" "
        if ok:
            try:
                ok = int(raw[:8], 16) == zlib.crc32(raw[9:])
            except ValueError:
                ok = False
        if not ok:
            if no == last:
                break  # a torn last line (the writer died mid-write)
            raise DataError("the line is neither JSON nor a checksummed log line (or its checksum does not match)",
                            path=path, line=no, hint="the file was changed by something else; fix or remove the line")
        bodies.append(raw[9:])
    return bodies


def read_records(path: str | Path) -> Iterator[dict[str, Any]]:
    """Every record of a JSON-lines file (plain, or the service's checksummed lines)."""
    for no, body in enumerate(_json_lines(path), 1):
        try:
            rec = json.loads(body)
        except ValueError:
            raise DataError("the record is not valid JSON", path=path, line=no) from None
        if not isinstance(rec, dict):
            raise DataError("the record is not a JSON object", path=path, line=no)
        yield rec


def _arrow_table(bodies: list[bytes], schema: pa.Schema) -> pa.Table | None:
    """Parse JSON bodies with pyarrow against `schema` (other fields ignored); None when the values
    do not fit the schema (the caller then parses record by record)."""
    if not bodies:
        return None
    opts = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    try:
        return pj.read_json(io.BytesIO(b"\n".join(bodies)), parse_options=opts,
                            read_options=pj.ReadOptions(block_size=1 << 24))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def _epoch(values: pd.Series) -> np.ndarray:
    """Epoch seconds of numbers or ISO 8601 strings (NaN where missing)."""
    if values.dtype.kind in "iuf":
        return values.to_numpy(dtype=np.float64)
    num = pd.to_numeric(values, errors="coerce")
    if num.notna().sum() == values.notna().sum():
        return num.to_numpy(dtype=np.float64)
    out = num.to_numpy(dtype=np.float64, na_value=np.nan).copy()
    text = values.notna().to_numpy() & np.isnan(out)
    ts = pd.to_datetime(values[text].astype(str), utc=True, errors="coerce", format="ISO8601")
    out[text] = (ts - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(dtype=np.float64)
    return out


@dataclass
class ExposureLog:
    """Exposures as columns: `frame` has one row per exposure record, `items` one row per shown
    item (with ``row``, the index of its exposure in `frame`)."""

    frame: pd.DataFrame
    items: pd.DataFrame
    path: str | None = None

    def experiments(self) -> list[str]:
        return sorted(self.frame["experiment"].dropna().unique().tolist())


_ITEM = pa.struct([("item_id", pa.string()), ("position", pa.int64()), ("propensity", pa.float64()),
                   ("explored", pa.bool_()), ("category", pa.string())])
_EXPOSURE = pa.schema([("kind", pa.string()), ("experiment", pa.string()), ("variant", pa.string()),
                       ("unit", pa.string()), ("unit_id", pa.string()), ("user_id", pa.string()),
                       ("session_id", pa.string()), ("returning", pa.bool_()), ("at", pa.float64()),
                       ("request_id", pa.string()), ("share", pa.float64()), ("items", pa.list_(_ITEM))])
_EXPOSURE_COLUMNS = ("experiment", "variant", "unit", "unit_id", "user_id", "session_id", "returning", "at",
                     "request_id", "share")


def load_exposures(path: str | Path) -> ExposureLog:
    """Read an exposure log (see the module docstring)."""
    bodies = _json_lines(path)
    table = _arrow_table(bodies, _EXPOSURE)
    if table is not None:
        kind = table.column("kind").to_numpy(zero_copy_only=False)
        keep = np.asarray([k is None or k == "exposure" for k in kind])
        if not keep.all():
            table = table.filter(pa.array(keep))
        frame = pd.DataFrame({c: table.column(c).to_pandas() for c in _EXPOSURE_COLUMNS})
        lists = table.column("items").combine_chunks()
        flat = pc.list_flatten(lists)
        rows = pc.list_parent_indices(lists).to_numpy()
        items = pd.DataFrame({"row": rows.astype(np.int64)})
        for name in ("item_id", "position", "propensity", "explored", "category"):
            items[name] = flat.field(name).to_pandas() if len(flat) else pd.Series([], dtype=object)
        items["position"] = items["position"].fillna(0).astype(np.int64)
        items["propensity"] = items["propensity"].fillna(1.0).astype(np.float64)
        items["explored"] = items["explored"].fillna(False).astype(bool)
        items["item_id"] = items["item_id"].astype(object)
        items["category"] = items["category"].astype(object).where(items["category"].notna(), None)
    else:
        frame, items = _exposures_by_record(path)
    if not len(frame):
        raise DataError("no exposure records in the file", path=path,
                        hint="is this the exposures log (exposures.log next to the service's events.log)?")
    if frame["experiment"].isna().any() or frame["variant"].isna().any() or frame["unit_id"].isna().any():
        raise DataError("some exposure records lack experiment, variant or unit_id", path=path,
                        hint="exposure records are written by tastemaker.experiments.exposure_record")
    frame["unit"] = frame["unit"].fillna("user").astype(str)
    frame["unit_id"] = frame["unit_id"].astype(str)
    frame["returning"] = frame["returning"].astype(object).where(frame["returning"].notna(), None)
    frame["at"] = _epoch(frame["at"])
    return ExposureLog(frame, items, str(path))


def _exposures_by_record(path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    cols: dict[str, list[Any]] = {k: [] for k in _EXPOSURE_COLUMNS}
    it: dict[str, list[Any]] = {k: [] for k in ("row", "item_id", "position", "propensity", "explored", "category")}
    for rec in read_records(path):
        if rec.get("kind", "exposure") != "exposure":
            continue
        row = len(cols["experiment"])
        for k in cols:
            cols[k].append(rec.get(k))
        for item in rec.get("items") or ():
            p = item.get("propensity")
            it["row"].append(row)
            it["item_id"].append(str(item.get("item_id")))
            it["position"].append(int(item.get("position") or 0))
            it["propensity"].append(1.0 if p is None else float(p))
            it["explored"].append(bool(item.get("explored", False)))
            c = item.get("category")
            it["category"].append(None if c is None else str(c))
    items = pd.DataFrame(it)
    items = items.astype({"row": np.int64, "position": np.int64, "propensity": np.float64, "explored": bool,
                          "item_id": object, "category": object})
    return pd.DataFrame(cols), items


_EVENT_FIELDS = [("event_id", pa.string()), ("type", pa.string()), ("user_id", pa.string()),
                 ("item_id", pa.string()), ("session_id", pa.string()), ("order_id", pa.string()),
                 ("category", pa.string()), ("request_id", pa.string()), ("timestamp", pa.string()),
                 ("received_at", pa.float64()), ("price", pa.float64()), ("quantity", pa.float64())]


def _flat_events(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix in (".csv", ".tsv"):
        return pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",",
                           dtype={"user_id": str, "item_id": str, "session_id": str, "order_id": str})
    bodies = _json_lines(path)
    if not bodies:
        return pd.DataFrame(columns=["type", "user_id", "item_id"])
    wrapped = b'"kind":' in bodies[0] and json.loads(bodies[0]).get("kind") is not None
    if wrapped:  # the service's log: event records (item upserts are skipped)
        bodies = [b for b in bodies if b'"kind":"event"' in b]
        table = _arrow_table(bodies, pa.schema([("event", pa.struct(_EVENT_FIELDS))]))
        if table is not None:
            return pd.DataFrame({name: table.column("event").combine_chunks().field(name).to_pandas()
                                 for name, _ in _EVENT_FIELDS})
        return pd.DataFrame([rec["event"] for rec in read_records(path) if rec.get("kind") == "event"])
    table = _arrow_table(bodies, pa.schema(_EVENT_FIELDS))
    if table is not None:
        return table.to_pandas()
    return pd.DataFrame([rec for rec in read_records(path) if "type" in rec])


def load_events(path: str | Path) -> pd.DataFrame:
    """Read events (see the module docstring) into columns: type, user_id, session_id, item_id,
    ts (epoch seconds), price, quantity, order_id, category, event_id."""
    path = Path(path)
    if not path.is_file():
        raise DataError("the events file does not exist", path=path)
    raw = _flat_events(path)
    for need in ("type", "user_id", "item_id"):
        if need not in raw.columns:
            raise DataError(f"events have no {need!r} field", path=path,
                            hint="events need type, user_id and item_id (the service's event schema)")
    n = len(raw)
    out = pd.DataFrame({"type": raw["type"].astype(str).str.replace("-", "_").to_numpy(dtype=object),
                        "user_id": raw["user_id"].astype(str).to_numpy(dtype=object),
                        "item_id": raw["item_id"].astype(str).to_numpy(dtype=object)})
    for c in ("session_id", "order_id", "category", "event_id"):
        if c in raw.columns:
            col = raw[c].astype(object)
            out[c] = col.where(col.notna(), None).to_numpy(dtype=object)
        else:
            out[c] = np.full(n, None, dtype=object)
    ts = np.full(n, np.nan)
    for c in ("received_at", "timestamp"):  # the event's own time wins over when it was received
        if c in raw.columns:
            t = _epoch(raw[c])
            ts = np.where(np.isnan(t), ts, t)
    out["ts"] = ts
    out["price"] = pd.to_numeric(raw["price"], errors="coerce").to_numpy(dtype=np.float64) \
        if "price" in raw.columns else np.nan
    out["quantity"] = (pd.to_numeric(raw["quantity"], errors="coerce").fillna(1).to_numpy(dtype=np.float64)
                       if "quantity" in raw.columns else 1.0)
    bad = sorted(set(out["type"].unique()) - set(EVENT_TYPES))
    if bad:
        raise DataError(f"unknown event types {bad}", path=path, column="type",
                        hint=f"event types are {', '.join(EVENT_TYPES)}")
    return out


def load_pre(path: str | Path) -> pd.DataFrame:
    """Pre-period per-user aggregates, indexed by user id (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise DataError("the pre-period file does not exist", path=path)
    if path.suffix == ".parquet":
        raw = pd.read_parquet(path)
    elif path.suffix in (".csv", ".tsv"):
        raw = pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",", dtype={"user_id": str})
    else:
        raw = pd.DataFrame(list(read_records(path)))
    if "type" in raw.columns or "kind" in raw.columns:  # an event log: aggregate it like the experiment's events
        return _aggregate_events_per_user(load_events(path))
    key = "user_id" if "user_id" in raw.columns else "unit_id" if "unit_id" in raw.columns else None
    if key is None:
        raise DataError("the pre-period table has no user_id column", path=path,
                        hint="give per-user aggregates (user_id, clicks, orders, revenue, …) or a pre-period event log")
    cols = [c for c in UNIT_AGGREGATES if c in raw.columns and c != "units"]
    if not cols:
        raise DataError(f"the pre-period table has none of the aggregates {', '.join(UNIT_AGGREGATES[1:])}",
                        path=path)
    out = raw.assign(user_id=raw[key].astype(str)).groupby("user_id")[cols].sum()
    if "converted" not in out.columns and "orders" in out.columns:
        out["converted"] = (out["orders"] > 0).astype(float)
    return out.astype(np.float64)


def _aggregate_events_per_user(ev: pd.DataFrame) -> pd.DataFrame:
    users, uidx = np.unique(ev["user_id"].to_numpy(dtype=str), return_inverse=True)
    n = len(users)
    kind = ev["type"].to_numpy(dtype=str)
    agg = {}
    for name, t in (("impressions", "view"), ("views", "view"), ("clicks", "click"), ("add_to_cart", "add_to_cart")):
        agg[name] = np.bincount(uidx[kind == t], minlength=n).astype(np.float64)
    buy = kind == "purchase"
    line = np.nan_to_num(ev["price"].to_numpy(dtype=np.float64)) * ev["quantity"].to_numpy(dtype=np.float64)
    agg["revenue"] = np.bincount(uidx[buy], weights=line[buy], minlength=n)
    agg["items"] = np.bincount(uidx[buy], weights=ev["quantity"].to_numpy(dtype=np.float64)[buy], minlength=n)
    okey = _order_keys(ev.loc[buy], uidx[buy])
    agg["orders"] = np.bincount(uidx[buy][np.unique(okey, return_index=True)[1]], minlength=n).astype(np.float64)
    agg["converted"] = (agg["orders"] > 0).astype(np.float64)
    return pd.DataFrame(agg, index=pd.Index(users, name="user_id"))


def _order_keys(buys: pd.DataFrame, unit_idx: np.ndarray) -> np.ndarray:
    """An integer key per purchase row identifying its order: order_id, else (unit, session_id),
    else the row itself."""
    n = len(buys)
    if not n:
        return np.zeros(0, dtype=np.int64)
    none = pd.Series([None] * n, dtype=object)
    oid = buys["order_id"].reset_index(drop=True) if "order_id" in buys.columns else none
    sid = buys["session_id"].reset_index(drop=True) if "session_id" in buys.columns else none
    row = pd.Series(np.arange(n)).astype(str)
    key = ("e|" + row).where(sid.isna(), "s|" + pd.Series(unit_idx).astype(str) + "|" + sid.astype(str))
    key = key.where(oid.isna(), "o|" + oid.astype(str))
    return pd.factorize(key)[0].astype(np.int64)


def load_categories(path: str | Path) -> dict[str, str]:
    """item_id -> category from a catalogue file (CSV/TSV/Parquet with item_id and category)."""
    path = Path(path)
    if not path.is_file():
        raise DataError("the catalogue file does not exist", path=path)
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path, columns=["item_id", "category"])
    else:
        frame = pd.read_csv(path, sep="\t" if path.suffix in (".tsv", ".tab") else ",", dtype={"item_id": str})
    if "item_id" not in frame.columns or "category" not in frame.columns:
        raise DataError("the catalogue needs item_id and category columns", path=path)
    frame = frame.dropna(subset=["category"])
    return dict(zip(frame["item_id"].astype(str), frame["category"].astype(str)))


# ================================================================================================
# one experiment's units
# ================================================================================================


class UnitData:
    """The units of one experiment and the facts about them, aggregated on demand.

    `aggregates(cutoff, category)` gives per-unit sums (`UNIT_AGGREGATES`) using exposures and
    events up to `cutoff` (epoch seconds; None: all) and, with `category`, only items of that
    category (impressions, clicks, orders containing one, their revenue and items).
    """

    def __init__(self, exposures: ExposureLog, events: pd.DataFrame, experiment: ExperimentConfig, *,
                 categories: dict[str, str] | None = None, pre: pd.DataFrame | None = None) -> None:
        self.experiment = experiment
        self.warnings: list[str] = []
        self._cat_names: list[str] = []
        fr = exposures.frame
        sel = (fr["experiment"] == experiment.name).to_numpy()
        if not sel.any():
            raise DataError(f"no exposures of experiment {experiment.name!r}", path=exposures.path,
                            hint=f"experiments in the log: {', '.join(exposures.experiments()) or 'none'}")
        rows = np.flatnonzero(sel)
        fr = fr.iloc[rows].reset_index(drop=True)
        self.variants = list(experiment.variant_names)
        unknown = sorted(set(fr["variant"].astype(str)) - set(self.variants))
        if unknown:
            raise DataError(f"exposures of {experiment.name!r} name variants {unknown} that the config does not "
                            f"declare ({self.variants})", path=exposures.path,
                            hint="analyse with the config the service ran, or fix the variant names")
        keys = (fr["unit"].astype(str) + ":" + fr["unit_id"].astype(str)).to_numpy(dtype=str)
        codes, uniq = pd.factorize(keys)
        self.units = np.asarray(uniq, dtype=str)
        n = len(self.units)
        self.n = n
        at = fr["at"].to_numpy(dtype=np.float64)
        vcode = pd.Categorical(fr["variant"].astype(str), categories=self.variants).codes.astype(np.int64)
        order = np.lexsort((at, codes))
        first = np.ones(len(order), dtype=bool)
        first[1:] = codes[order][1:] != codes[order][:-1]
        first_rows = order[first]
        self.variant = np.full(n, -1, dtype=np.int64)
        self.variant[codes[first_rows]] = vcode[first_rows]
        vmin = np.full(n, len(self.variants), dtype=np.int64)
        vmax = np.full(n, -1, dtype=np.int64)
        np.minimum.at(vmin, codes, vcode)
        np.maximum.at(vmax, codes, vcode)
        mixed = vmin != vmax
        self.mixed = int(mixed.sum())
        if self.mixed:
            self.warnings.append(f"{self.mixed} units ({self.mixed / n:.2%}) were exposed to more than one variant "
                                 "(salt or config changed mid-test?); they are left out")
            self.variant[mixed] = -1
        self.first_ts = np.full(n, np.nan)
        self.first_ts[codes[first_rows]] = at[first_rows]
        ret = fr["returning"].to_numpy(dtype=object)[first_rows]
        known = np.asarray([r is not None and r == r for r in ret], dtype=bool)
        self.returning: np.ndarray | None = None
        if known.any():
            self.returning = np.zeros(n, dtype=bool)
            self.returning[codes[first_rows][known]] = ret[known].astype(bool)
        parts = pd.Series(self.units).str.split(":", n=1, expand=True)
        self.unit_kind = parts[0].to_numpy(dtype=str)
        self.unit_id = parts[1].to_numpy(dtype=object)

        # exposures and shown items
        self.exp_unit = codes.astype(np.int64)
        self.exp_ts = at
        items = exposures.items
        it_sel = np.isin(items["row"].to_numpy(), rows)
        items = items.loc[it_sel]
        remap = np.full(len(exposures.frame), -1, dtype=np.int64)
        remap[rows] = np.arange(len(rows))
        irow = remap[items["row"].to_numpy()]
        self.item_unit = self.exp_unit[irow]
        self.item_ts = at[irow]
        self.propensity = items["propensity"].to_numpy(dtype=np.float64)

        # item categories: an event's own field > the catalogue > what the exposures said
        shown_ids = items["item_id"].to_numpy(dtype=object)
        ev_ids = events["item_id"].to_numpy(dtype=object)
        all_codes, uniq = pd.factorize(np.concatenate([shown_ids, ev_ids]))
        ucat = np.full(len(uniq), None, dtype=object)
        shown_cat = items["category"].to_numpy(dtype=object)
        known_cat = items["category"].notna().to_numpy()
        ucat[all_codes[: len(shown_ids)][known_cat]] = shown_cat[known_cat]
        if categories:
            mapped = pd.Series(uniq, dtype=object).map(categories).to_numpy(dtype=object)
            ucat = np.where(pd.notna(mapped), mapped, ucat)
        occurrences = np.bincount(all_codes, minlength=len(uniq))
        item_code = all_codes[: len(shown_ids)]
        ev_item_code = all_codes[len(shown_ids):]

        # events
        ev = events
        user_key = "user:" + ev["user_id"].astype(str)
        index = pd.Index(self.units)
        eunit = index.get_indexer(user_key)
        if "session_id" in ev.columns and (self.unit_kind == "session").any():
            sess = ev["session_id"]
            skey = ("session:" + sess.astype(str)).where(sess.notna(), "")
            sidx = index.get_indexer(skey)
            eunit = np.where(eunit >= 0, eunit, sidx)
        ts = ev["ts"].to_numpy(dtype=np.float64)
        keep = eunit >= 0
        self.events_total = len(ev)
        self.events_unmatched = int((~keep).sum())
        with np.errstate(invalid="ignore"):
            before = keep & (ts < self.first_ts[np.maximum(eunit, 0)])
        self.events_before_exposure = int(before.sum())
        keep &= ~before
        ev = ev.loc[keep]
        self.ev_unit = eunit[keep]
        self.ev_ts = ts[keep]
        self.ev_type = pd.Categorical(ev["type"], categories=list(EVENT_TYPES)).codes.astype(np.int64)
        price = ev["price"].to_numpy(dtype=np.float64)
        qty = ev["quantity"].to_numpy(dtype=np.float64)
        buy = self.ev_type == EVENT_TYPES.index("purchase")
        no_price = int((buy & np.isnan(price)).sum())
        if no_price:
            self.warnings.append(f"{no_price} purchases have no price; they count as orders with revenue 0")
        self.ev_line = np.where(buy, np.nan_to_num(price) * qty, 0.0)
        self.ev_qty = np.where(buy, qty, 0.0)
        self.ev_order = np.full(len(ev), -1, dtype=np.int64)
        self.ev_order[buy] = _order_keys(ev.loc[buy], self.ev_unit[buy])
        own = ev["category"].to_numpy(dtype=object) if "category" in ev.columns else np.full(len(ev), None)
        ucode, own_code = self._category_codes(ucat, occurrences, own)
        self.item_cat = ucode[item_code]
        self.ev_cat = np.where(own_code >= 0, own_code, ucode[ev_item_code[keep]])

        self.pre = self._pre_columns(pre) if pre is not None else None

    # --- categories --------------------------------------------------------------------------------
    def _category_codes(self, item_cats: np.ndarray, occurrences: np.ndarray, own: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray]:
        """Category codes (−1 unknown) of the distinct items and of events that name their own
        category. Hierarchical categories ("home/kitchen") fold to their top level when there are
        more than `MAX_CATEGORIES`; beyond that the rarest go to "(other)"."""
        names_item = pd.Series(item_cats, dtype=object)
        names_own = pd.Series(own, dtype=object)
        weights = pd.concat([pd.Series(occurrences[names_item.notna().to_numpy()],
                                       index=names_item.dropna().astype(str).to_numpy()),
                             pd.Series(1, index=names_own.dropna().astype(str).to_numpy())])
        if not len(weights):
            return np.full(len(item_cats), -1, dtype=np.int64), np.full(len(own), -1, dtype=np.int64)

        def fold(ser: pd.Series) -> pd.Series:
            return ser.where(ser.isna(), ser.astype(str).str.split("/", n=1).str[0])

        if weights.index.nunique() > MAX_CATEGORIES:
            names_item, names_own = fold(names_item), fold(names_own)
            weights.index = weights.index.str.split("/", n=1).str[0]
        totals = weights.groupby(level=0).sum().sort_values(ascending=False)
        names = [str(c) for c in totals.index]
        if len(names) > MAX_CATEGORIES:
            keep = names[: MAX_CATEGORIES - 1]
            names_item = names_item.where(names_item.isna() | names_item.isin(keep), "(other)")
            names_own = names_own.where(names_own.isna() | names_own.isin(keep), "(other)")
            names = [*keep, "(other)"]
        self._cat_names = sorted(names)
        lookup = pd.Series(np.arange(len(self._cat_names)), index=self._cat_names)
        return (names_item.map(lookup).fillna(-1).to_numpy(dtype=np.int64),
                names_own.map(lookup).fillna(-1).to_numpy(dtype=np.int64))

    @property
    def categories(self) -> list[str]:
        """The category names segments use (empty when no item has a category)."""
        return list(self._cat_names)

    # --- aggregates --------------------------------------------------------------------------------
    @property
    def time_range(self) -> tuple[float, float]:
        """(first exposure, last exposure or event) in epoch seconds."""
        t = np.concatenate([self.exp_ts[np.isfinite(self.exp_ts)], self.ev_ts[np.isfinite(self.ev_ts)]])
        if not len(t):
            return (0.0, 0.0)
        return float(t.min()), float(t.max())

    def present(self, cutoff: float | None = None) -> np.ndarray:
        """Units exposed by `cutoff` (all when None) and in a single variant."""
        ok = self.variant >= 0
        if cutoff is not None:
            with np.errstate(invalid="ignore"):
                ok &= ~(self.first_ts > cutoff)
        return ok

    def aggregates(self, cutoff: float | None = None, category: int | None = None) -> dict[str, np.ndarray]:
        """Per-unit sums (float64 arrays over all units; see the class docstring)."""
        n = self.n
        out: dict[str, np.ndarray] = {"units": np.ones(n)}
        e_ok = np.ones(len(self.exp_unit), dtype=bool)
        i_ok = np.ones(len(self.item_unit), dtype=bool)
        v_ok = np.ones(len(self.ev_unit), dtype=bool)
        if cutoff is not None:
            with np.errstate(invalid="ignore"):
                e_ok &= ~(self.exp_ts > cutoff)
                i_ok &= ~(self.item_ts > cutoff)
                v_ok &= ~(self.ev_ts > cutoff)
        out["exposures"] = np.bincount(self.exp_unit[e_ok], minlength=n).astype(np.float64)
        if category is not None:
            i_ok &= self.item_cat == category
            v_ok &= self.ev_cat == category
        out["impressions"] = np.bincount(self.item_unit[i_ok], minlength=n).astype(np.float64)
        for name, t in (("views", "view"), ("clicks", "click"), ("add_to_cart", "add_to_cart")):
            m = v_ok & (self.ev_type == EVENT_TYPES.index(t))
            out[name] = np.bincount(self.ev_unit[m], minlength=n).astype(np.float64)
        buy = v_ok & (self.ev_order >= 0)
        out["revenue"] = np.bincount(self.ev_unit[buy], weights=self.ev_line[buy], minlength=n)
        out["items"] = np.bincount(self.ev_unit[buy], weights=self.ev_qty[buy], minlength=n)
        _, first = np.unique(self.ev_order[buy], return_index=True)
        out["orders"] = np.bincount(self.ev_unit[buy][first], minlength=n).astype(np.float64)
        out["converted"] = (out["orders"] > 0).astype(np.float64)
        return out

    def _pre_columns(self, pre: pd.DataFrame) -> dict[str, np.ndarray]:
        """Pre-period aggregates aligned with the units (0 for units without pre-period data)."""
        idx = pre.index.astype(str).get_indexer(pd.Index(self.unit_id.astype(str)))
        idx = np.where(self.unit_kind == "user", idx, -1)
        found = idx >= 0
        if not found.any():
            self.warnings.append("no exposed unit appears in the pre-period data: CUPED is off")
        out = {}
        for c in pre.columns:
            col = pre[c].to_numpy(dtype=np.float64)
            out[c] = np.where(found, col[np.maximum(idx, 0)], 0.0) if len(col) else np.zeros(self.n)
        out["units"] = np.ones(self.n)
        out["_found"] = found.astype(np.float64)
        return out

    def covariate(self, numerator: str, denominator: str) -> np.ndarray | None:
        """The CUPED covariate of a metric: its pre-period linearised value per unit
        (pre_num − R_pre · pre_den; pre_num for a per-unit mean), or None without pre data."""
        pre = self.pre
        if pre is None or numerator not in pre or not pre["_found"].any():
            return None
        num = pre[numerator]
        if denominator == "units" or denominator not in pre:
            return num
        den = pre[denominator]
        total = den.sum()
        r = num.sum() / total if total > 0 else 0.0
        return num - r * den

    def additive(self, aggregate: str) -> bool:
        """Whether an aggregate adds up over categories (see `config.ADDITIVE`)."""
        return aggregate in ADDITIVE
