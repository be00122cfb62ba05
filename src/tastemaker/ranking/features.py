"""Ranker features: what a learned ranker reads about one (user, candidate) pair, assembled per request.

`FeatureBuilder.fit(interactions, price=..., category=...)` learns item-level arrays once (one
entry per item of the shared item space: popularity, trend, age, typical repurchase interval,
price, …). Per request, `FeatureBuilder.transform(query, items)` derives everything user-side
from the query's history (items, times, quantities) — so a user's newest events count the moment
the store has them — and returns an (n, F) float32 matrix, vectorised over the candidates (cost
grows with the history length and the number of candidates, not with the catalogue).
`retrieval_features(cands)` gives the union's per-source scores and ranks; `assemble` puts the
two side by side, which is what `tastemaker.ranking.ranker.Ranker` is trained and served on.

Features (NaN = unknown; times in days before the request's clock ``now``):

- retrieval (`retrieval_features`): ``<source>.score`` for every source (the union's
  ``fill_scores`` asks each source for candidates another source brought), ``<source>.rank``
  (1-based, NaN when the source did not return it), ``n_sources``;
- user–item: ``ui_bought`` (1 when the item is in the history), ``ui_lines`` (events), ``ui_days``
  (distinct purchase days), ``ui_qty_log``,
  ``ui_since_days`` (since the last purchase of the item), ``ui_first_days``, ``ui_decay30`` /
  ``ui_decay180`` (events weighted 0.5 ** (age / half-life)), ``ui_day_share`` (share of the
  user's purchase days that include the item);
- repurchase interval: ``ui_interval_days`` (the geometric mean of the user's own gaps between
  distinct purchase days of the item), ``ui_expected_interval_days`` (that geometric mean shrunk
  towards the item's typical gap, as `tastemaker.retrieval.Repurchase` does), ``ui_log_due`` (log of days
  since the last purchase / expected interval: 0 = due now), ``it_interval_days`` (the item's
  typical gap over all users), ``it_repeat_rate`` (buyers who bought it on two or more days);
- user–category: ``uc_share`` / ``ud_share`` (share of the user's events in the item's category /
  department), ``uc_items`` (distinct items the user bought there), ``uc_since_days``;
- item popularity and recency: ``it_users_log`` (distinct buyers), ``it_lines7`` / ``it_lines30``
  / ``it_lines90`` (events in the last days before fitting, log1p), ``it_trend`` (last 30 days
  against the 90-day rate), ``it_age_days`` (since its first sale or launch),
  ``it_since_sale_days`` (since its last sale);
- price: ``it_price_log``, ``it_line_value_log`` (median revenue of one order line),
  ``pr_user`` (log of the price over the median price of what the user buys — "price relative to
  the usual basket"), ``pr_user_line`` (the same for the line value);
- user: ``u_days``, ``u_lines_log``, ``u_items``, ``u_since_days``, ``u_interval_days`` (median gap
  between purchase days), ``u_log_due``.

State is plain arrays plus JSON (`get_state` / `from_state`, `save` / `load`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tastemaker.data.interactions import Interactions
from tastemaker.errors import ArtifactError, ConfigError, DataError
from tastemaker.retrieval.base import DAY, Query, as_items

USER_ITEM = ("ui_bought", "ui_lines", "ui_days", "ui_qty_log", "ui_since_days", "ui_first_days", "ui_decay30",
             "ui_decay180", "ui_day_share", "ui_interval_days", "ui_expected_interval_days", "ui_log_due")
USER_CATEGORY = ("uc_share", "ud_share", "uc_items", "uc_since_days")
ITEM = ("it_users_log", "it_lines7", "it_lines30", "it_lines90", "it_trend", "it_age_days", "it_since_sale_days",
        "it_repeat_rate", "it_interval_days", "it_price_log", "it_line_value_log")
PRICE = ("pr_user", "pr_user_line")
USER = ("u_days", "u_lines_log", "u_items", "u_since_days", "u_interval_days", "u_log_due")
NAMES: tuple[str, ...] = (*USER_ITEM, *USER_CATEGORY, *ITEM, *PRICE, *USER)
"""The columns `FeatureBuilder.transform` returns, in order."""
_ITEM_ARRAYS = ("price", "line_value", "category", "department", "users", "lines7", "lines30", "lines90",
                "first_seen", "last_seen", "repeat_rate", "log_gap")


@dataclass(eq=False)
class FeatureBuilder:
    """Item-level arrays learned at `fit`; `transform` assembles a request's feature matrix."""

    price: np.ndarray  # float32 per item (NaN unknown)
    line_value: np.ndarray  # float32 median revenue of one line (NaN unknown)
    category: np.ndarray  # int32 leaf code (-1 unknown)
    department: np.ndarray  # int32 top-level code (-1 unknown)
    users: np.ndarray  # float32 distinct buyers
    lines7: np.ndarray  # float32 events in the 7 days before `now`
    lines30: np.ndarray
    lines90: np.ndarray
    first_seen: np.ndarray  # float64 seconds (NaN never sold)
    last_seen: np.ndarray
    repeat_rate: np.ndarray  # float32
    log_gap: np.ndarray  # float64 typical log repurchase gap in days (shrunk)
    now: float
    user_shrink: float = 2.0

    names: tuple[str, ...] = NAMES

    # --- fitting ------------------------------------------------------------------------------
    @classmethod
    def fit(cls, data: Interactions, *, price: np.ndarray | None = None, category: np.ndarray | None = None,
            department: np.ndarray | None = None, revenue: np.ndarray | None = None,
            launch_seconds: np.ndarray | None = None, now: float | None = None, item_shrink: float = 5.0,
            user_shrink: float = 2.0) -> FeatureBuilder:
        """Learn the item arrays from `data` (timestamped events over the shared item space).

        `price` (positive, NaN unknown), `category`, `department` (integer codes, -1 unknown) and
        `launch_seconds` are per item; `revenue` is per row of `data` (for the line value; else
        price × quantity). `now` is the clock the features are taken at (default: the latest
        event); events after it are ignored, so features built at a cut never see what came later."""
        if data.timestamps is None:
            raise ConfigError("ranker features need timestamped interactions; this data has none")
        n = data.n_items
        if revenue is not None:
            rev_all = np.asarray(revenue, dtype=np.float64)
            if rev_all.shape != (len(data),):
                raise DataError(f"revenue has {len(rev_all)} entries for {len(data)} events: pass one per event")
        ts_all = data.timestamps.astype(np.float64)
        now_s = float(now if now is not None else (ts_all.max() if len(ts_all) else 0.0))
        later = ts_all > now_s
        if later.any():  # events after the clock had not happened at `now`: they must not leak in
            data = data.select(~later)
            if revenue is not None:
                rev_all = rev_all[~later]
        ts = data.timestamps.astype(np.float64)
        item = data.item_idx.astype(np.int64)

        def per_item(values: np.ndarray | None, what: str, dtype: Any, fill: Any) -> np.ndarray:
            if values is None:
                return np.full(n, fill, dtype=dtype)
            arr = np.asarray(values)
            if arr.shape != (n,):
                raise DataError(f"{what} has shape {arr.shape}; expected ({n},): one entry per item")
            return arr.astype(dtype)

        price_a = per_item(price, "price", np.float32, np.nan)
        bad_price = np.isinf(price_a) | (price_a <= 0)
        if bad_price.any():
            j = int(np.flatnonzero(bad_price)[0])
            raise DataError(f"price of item {j} is {float(price_a[j])}; prices must be positive and finite",
                            hint="mark unknown prices with NaN")
        cat = per_item(category, "category", np.int32, -1)
        dep = per_item(department, "department", np.int32, -1)
        # revenue of each line; NaN where neither revenue nor the item's price is known
        rev = rev_all if revenue is not None else price_a[item].astype(np.float64) * data.values
        age = now_s - ts  # ≥ 0: later events were dropped above
        lines = {d: np.bincount(item[age <= d * DAY], minlength=n).astype(np.float32) for d in (7, 30, 90)}
        # distinct buyers, and buyers on two or more distinct days
        days = (ts // DAY).astype(np.int64)
        span = int(days.max() - days.min() + 1) if len(days) else 1
        pair_key = item * max(data.n_users, 1) + data.user_idx.astype(np.int64)
        pair_day = np.unique(pair_key * span + (days - (days.min() if len(days) else 0)))
        pair, days_per_pair = np.unique(pair_day // span, return_counts=True)
        pair_item = pair // max(data.n_users, 1)
        buyers = np.bincount(pair_item, minlength=n).astype(np.float32)
        repeaters = np.bincount(pair_item, weights=(days_per_pair >= 2), minlength=n).astype(np.float32)
        repeat_rate = np.where(buyers > 0, repeaters / np.maximum(buyers, 1), np.nan).astype(np.float32)
        first = np.full(n, np.inf)
        last = np.full(n, -np.inf)
        np.minimum.at(first, item, ts)
        np.maximum.at(last, item, ts)
        first[np.isinf(first)] = np.nan
        last[np.isinf(last)] = np.nan
        if launch_seconds is not None:
            launch = per_item(launch_seconds, "launch_seconds", np.float64, np.nan)
            first = np.where(np.isnan(first), launch, np.fmin(first, launch))
        known_rev = np.isfinite(rev)
        line_value = _group_median(item[known_rev], rev[known_rev], n).astype(np.float32)
        from tastemaker.retrieval.repurchase import Repurchase

        gaps = Repurchase.fit(data, item_shrink=item_shrink)
        return cls(price=price_a, line_value=line_value, category=cat, department=dep, users=buyers,
                   lines7=lines[7], lines30=lines[30], lines90=lines[90], first_seen=first, last_seen=last,
                   repeat_rate=repeat_rate, log_gap=gaps.item_log_gap.astype(np.float64), now=now_s,
                   user_shrink=float(user_shrink))

    @property
    def n_items(self) -> int:
        return len(self.price)

    # --- per request --------------------------------------------------------------------------
    def transform(self, query: Query, items: np.ndarray) -> np.ndarray:
        """(len(items), len(names)) float32 features of the candidates `items` for `query`.

        The clock is ``query.now`` (else the fit's). With an explicit ``query.now``, history events
        after it are ignored (they had not happened at the request's time); without one, events
        newer than the fit's clock count as happening now."""
        items = as_items(items, self.n_items)
        n = len(items)
        out = np.full((n, len(self.names)), np.nan, dtype=np.float32)
        if not n:
            return out
        col = {name: j for j, name in enumerate(self.names)}
        now = float(query.now if query.now is not None else self.now)

        def put(name: str, values: Any) -> None:
            out[:, col[name]] = values

        # --- item side (gathers from the fitted arrays)
        price = self.price[items]
        line_value = self.line_value[items]
        put("it_users_log", np.log1p(self.users[items]))
        put("it_lines7", np.log1p(self.lines7[items]))
        put("it_lines30", np.log1p(self.lines30[items]))
        put("it_lines90", np.log1p(self.lines90[items]))
        put("it_trend", np.log((self.lines30[items] + 1.0) / (self.lines90[items] / 3.0 + 1.0)))
        put("it_age_days", (now - self.first_seen[items]) / DAY)
        put("it_since_sale_days", (now - self.last_seen[items]) / DAY)
        put("it_repeat_rate", self.repeat_rate[items])
        put("it_interval_days", np.exp(self.log_gap[items]))
        put("it_price_log", np.log(price))
        put("it_line_value_log", np.log(line_value))

        hist = as_items(query.history, self.n_items)
        h = len(hist)
        times = (np.full(h, now) if query.history_times is None
                 else np.asarray(query.history_times, dtype=np.float64))
        qty = (np.ones(h) if query.history_values is None
               else np.maximum(np.asarray(query.history_values, dtype=np.float64), 0.0))
        if query.now is not None and h and (times > now).any():
            # events after the request's own clock had not happened yet: features at a cut must not see them
            keep = times <= now
            hist, times, qty = hist[keep], times[keep], qty[keep]
            h = len(hist)
        if not h:
            put("ui_bought", 0.0)
            for name in ("ui_lines", "ui_days", "ui_qty_log", "ui_decay30", "ui_decay180", "ui_day_share",
                         "uc_share", "ud_share", "uc_items", "u_days", "u_lines_log", "u_items"):
                put(name, 0.0)
            return out
        age_days = np.maximum(now - times, 0.0) / DAY
        day = np.floor(times / DAY).astype(np.int64)

        # --- user side
        user_days = np.unique(day)
        put("u_days", len(user_days))
        put("u_lines_log", np.log1p(h))
        since_user = float(age_days.min())
        put("u_since_days", since_user)
        u_interval = float(np.median(np.diff(user_days))) if len(user_days) > 1 else np.nan
        put("u_interval_days", u_interval)
        put("u_log_due", np.log(max(since_user, 0.5) / u_interval) if len(user_days) > 1 else np.nan)
        h_price = self.price[hist]
        med_price = np.nanmedian(h_price) if np.isfinite(h_price).any() else np.nan
        h_line = h_price.astype(np.float64) * qty
        med_line = np.nanmedian(h_line) if np.isfinite(h_line).any() else np.nan
        with np.errstate(divide="ignore", invalid="ignore"):
            put("pr_user", np.log(price / med_price))
            put("pr_user_line", np.log(line_value / med_line))

        # --- user–item: one sort of the history by (item, time)
        uniq, inv = np.unique(hist, return_inverse=True)
        put("u_items", len(uniq))
        order = np.lexsort((times, inv))
        g, t_s, d_s = inv[order], times[order], day[order]
        starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
        ends = np.r_[starts[1:], len(g)] - 1
        lines = np.bincount(inv, minlength=len(uniq)).astype(np.float64)
        qty_sum = np.bincount(inv, weights=qty, minlength=len(uniq))
        first_t, last_t = t_s[starts], t_s[ends]
        decay30 = np.bincount(inv, weights=np.exp2(-age_days / 30.0), minlength=len(uniq))
        decay180 = np.bincount(inv, weights=np.exp2(-age_days / 180.0), minlength=len(uniq))
        new_day = np.r_[True, (g[1:] != g[:-1]) | (d_s[1:] != d_s[:-1])]
        distinct_days = np.bincount(g[new_day], minlength=len(uniq)).astype(np.float64)
        # the user's own gaps between distinct purchase days of an item
        gd, dd = g[new_day], d_s[new_day]
        same = gd[1:] == gd[:-1]
        gap_item = gd[1:][same]
        log_gaps = np.log(np.maximum(dd[1:][same] - dd[:-1][same], 1).astype(np.float64))
        own_n = np.bincount(gap_item, minlength=len(uniq)).astype(np.float64)
        own_sum = np.bincount(gap_item, weights=log_gaps, minlength=len(uniq))
        log_tau = (own_sum + self.user_shrink * self.log_gap[uniq]) / (own_n + self.user_shrink)
        since_item = np.maximum(now - last_t, 0.0) / DAY

        pos = np.minimum(np.searchsorted(uniq, items), len(uniq) - 1)
        hit = uniq[pos] == items
        p = pos[hit]

        def put_hit(name: str, values: np.ndarray, miss: float = np.nan) -> None:
            column = np.full(n, miss, dtype=np.float64)
            column[hit] = values[p]
            put(name, column)

        put("ui_bought", hit.astype(np.float32))
        put_hit("ui_lines", lines, 0.0)
        put_hit("ui_days", distinct_days, 0.0)
        put_hit("ui_qty_log", np.log1p(qty_sum), 0.0)
        put_hit("ui_since_days", since_item)
        put_hit("ui_first_days", np.maximum(now - first_t, 0.0) / DAY)
        put_hit("ui_decay30", decay30, 0.0)
        put_hit("ui_decay180", decay180, 0.0)
        put_hit("ui_day_share", distinct_days / len(user_days), 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            put_hit("ui_interval_days", np.where(own_n > 0, np.exp(own_sum / np.maximum(own_n, 1)), np.nan))
        put_hit("ui_expected_interval_days", np.exp(log_tau))
        put_hit("ui_log_due", np.log(np.maximum(since_item, 0.5)) - log_tau)

        # --- user–category and user–department
        for codes, share_name in ((self.category, "uc_share"), (self.department, "ud_share")):
            h_codes = codes[hist]
            c_codes = codes[items]
            known = h_codes >= 0
            cu, cinv = np.unique(h_codes[known], return_inverse=True)
            share = np.zeros(n)
            if len(cu):
                cpos = np.minimum(np.searchsorted(cu, c_codes), len(cu) - 1)
                chit = (cu[cpos] == c_codes) & (c_codes >= 0)
                counts = np.bincount(cinv, minlength=len(cu)).astype(np.float64)
                share[chit] = counts[cpos[chit]] / h
                if share_name == "uc_share":
                    last_c = np.full(len(cu), -np.inf)
                    np.maximum.at(last_c, cinv, times[known])
                    u_codes = codes[uniq]
                    uk = u_codes >= 0
                    distinct_c = np.bincount(np.searchsorted(cu, u_codes[uk]), minlength=len(cu)).astype(np.float64)
                    items_c = np.zeros(n)
                    items_c[chit] = distinct_c[cpos[chit]]
                    put("uc_items", items_c)
                    since_c = np.full(n, np.nan)
                    since_c[chit] = np.maximum(now - last_c[cpos[chit]], 0.0) / DAY
                    put("uc_since_days", since_c)
            elif share_name == "uc_share":
                put("uc_items", 0.0)
            put(share_name, share)
        return out

    def values(self, items: np.ndarray, kind: str = "price") -> np.ndarray:
        """The value of each item for expected-value ranking: ``"price"`` or ``"line_value"``
        (median revenue of one order line); NaN where unknown."""
        items = as_items(items, self.n_items)
        if kind == "price":
            return self.price[items].astype(np.float64)
        if kind == "line_value":
            return self.line_value[items].astype(np.float64)
        raise ConfigError(f"value kind {kind!r} is unknown; use 'price' or 'line_value'")

    # --- state --------------------------------------------------------------------------------
    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays = {name: getattr(self, name) for name in _ITEM_ARRAYS}
        return arrays, {"now": self.now, "user_shrink": self.user_shrink, "names": list(self.names),
                        "n_items": self.n_items}

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> FeatureBuilder:
        missing = [a for a in _ITEM_ARRAYS if a not in arrays]
        if missing:
            raise ArtifactError(f"feature state lacks arrays {missing}")
        n = int(meta.get("n_items", len(arrays["price"])))
        wrong = {a: np.shape(arrays[a]) for a in _ITEM_ARRAYS if np.shape(arrays[a]) != (n,)}
        if wrong:
            raise ArtifactError(f"feature state arrays {wrong} do not have one entry per item ({n} items)")
        if tuple(meta.get("names", NAMES)) != NAMES:
            raise ArtifactError("the saved features were built by another version (feature names differ); "
                                "rebuild the feature builder and retrain the ranker")
        return cls(**{a: np.asarray(arrays[a]) for a in _ITEM_ARRAYS}, now=float(meta["now"]),
                   user_shrink=float(meta.get("user_shrink", 2.0)))

    def save(self, directory: str | Path) -> Path:
        """Write the builder as a plain-data bundle (``arrays.npz`` + ``manifest.json``)."""
        from tastemaker.artifacts import save_state

        return save_state(directory, "ranker-features", *self.get_state())

    @classmethod
    def load(cls, directory: str | Path) -> FeatureBuilder:
        from tastemaker.artifacts import load_state

        return cls.from_state(*load_state(directory, "ranker-features"))


def retrieval_features(cands: Any) -> tuple[list[str], np.ndarray]:
    """(names, (n, 2·sources + 1) float32) from a `tastemaker.retrieval.CandidateSet`: every source's
    score (NaN where it has no opinion), its 1-based rank (NaN where it did not return the item) and
    the number of sources that returned the item."""
    names = [f"{s}.score" for s in cands.sources] + [f"{s}.rank" for s in cands.sources] + ["n_sources"]
    ranks = np.where(cands.ranks >= 0, cands.ranks + 1, np.nan).astype(np.float32)
    found = (cands.ranks >= 0).sum(axis=1, keepdims=True).astype(np.float32)
    return names, np.hstack([np.asarray(cands.scores, dtype=np.float32), ranks, found])


def assemble(cands: Any, query: Query, builder: FeatureBuilder) -> tuple[list[str], np.ndarray]:
    """Retrieval features and the builder's features of a candidate set, side by side."""
    names, x = retrieval_features(cands)
    return names + list(builder.names), np.hstack([x, builder.transform(query, cands.items)])


def feature_names(sources: Sequence[str]) -> list[str]:
    """The column names `assemble` produces for a union of `sources` (in that order)."""
    return ([f"{s}.score" for s in sources] + [f"{s}.rank" for s in sources] + ["n_sources", *NAMES])


def _group_median(groups: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Median of `values` per group 0..n-1 (NaN for empty groups)."""
    out = np.full(n, np.nan)
    if not len(groups):
        return out
    order = np.lexsort((values, groups))
    g, v = groups[order], values[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    counts = np.diff(np.r_[starts, len(g)])
    lo = starts + (counts - 1) // 2
    hi = starts + counts // 2
    out[g[starts]] = (v[lo] + v[hi]) / 2.0
    return out


__all__ = ["NAMES", "FeatureBuilder", "assemble", "feature_names", "retrieval_features"]
