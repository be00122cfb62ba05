"""Large synthetic interaction logs with power-law activity and popularity, written to Parquet in chunks.

For scale tests (`tastemaker.bench.scale`): millions of implicit events — (user, item, value)
with value = the number of times the event happened — generated block by block with numpy, so
memory stays at one block of users whatever the size, and written as a folder of Parquet part
files that Spark and pyarrow both read in parallel.

The shape:
- user activity follows a Zipf law over users (the r-th most active user has weight r^-a, each
  user at least one event, at most `max_per_user`), the activity ranks shuffled over user ids;
- items are drawn from a Zipf law over items (rank r has probability ∝ r^-b), ranks shuffled
  over item ids; a user's events are distinct items (pairs are unique);
- values are 1 + Geometric(0.6) − 1, i.e. mostly 1, sometimes a few.

Given the same seed and sizes the output is the same whatever `chunk_rows` is: every block of
`BLOCK_USERS` users has its own random stream.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tastemaker.errors import ConfigError

BLOCK_USERS = 4096
FILE_PATTERN = "part-{:05d}.parquet"


def default_shape(n_interactions: int) -> tuple[int, int]:
    """(users, items) for a given size: 100 events per user and 400 per item on average (at least
    10 users and 1,000 items, so that small logs fit under the per-user cap)."""
    return max(10, n_interactions // 100), max(1000, n_interactions // 400)


def allocate(total: int, weights: np.ndarray, low: int, high: int) -> np.ndarray:
    """Integer counts in [low, high] summing to `total`, as close as possible to proportional to `weights`.

    Water-filling: t_u = clip(c·w_u, low, high) with c found by bisection so that Σ t_u = total,
    then floors plus the largest remainders.
    """
    weights = np.asarray(weights, dtype=np.float64)
    n = len(weights)
    if not n * low <= total <= n * high:
        raise ConfigError(f"{total} events cannot be spread over {n} users with {low}–{high} each")
    lo, hi = 0.0, float(high) / max(weights.min(), 1e-300)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if np.clip(mid * weights, low, high).sum() < total:
            lo = mid
        else:
            hi = mid
    target = np.clip(hi * weights, low, high)
    counts = np.floor(target).astype(np.int64)
    short = total - int(counts.sum())
    if short > 0:
        room = counts < high
        order = np.argsort(-(target - counts) + np.where(room, 0.0, np.inf), kind="stable")
        counts[order[:short]] += 1
    elif short < 0:
        order = np.argsort(np.where(counts > low, -(counts - target), np.inf), kind="stable")
        counts[order[:-short]] -= 1
    return counts


def _zipf_cdf(n: int, exponent: float) -> np.ndarray:
    p = np.arange(1, n + 1, dtype=np.float64) ** -exponent
    cdf = np.cumsum(p)
    return cdf / cdf[-1]


def _draw_block(rng: np.random.Generator, users: np.ndarray, counts: np.ndarray, cdf: np.ndarray,
                item_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct items for each user of a block: draw from the popularity law, keep first occurrences,
    redraw (with more draws each round) for users still short."""
    n_items = len(cdf)
    target = np.zeros(users.max() + 1, dtype=np.int64)
    target[users] = counts
    kept = np.empty(0, dtype=np.int64)
    pending, need = users, counts
    for round_ in range(64):
        draws = np.ceil(need * 1.25 * 2.0**round_).astype(np.int64) + 2
        who = np.repeat(pending, draws)
        ranks = np.searchsorted(cdf, rng.random(len(who)), side="right")
        keys = np.concatenate([kept, who.astype(np.int64) * n_items + np.minimum(ranks, n_items - 1)])
        uniq, first = np.unique(keys, return_index=True)
        keys = uniq[np.argsort(first, kind="stable")]  # first occurrence order: what was kept stays kept
        owner = keys // n_items
        order = np.argsort(owner, kind="stable")
        keys, owner = keys[order], owner[order]
        rank = np.arange(len(keys)) - np.searchsorted(owner, owner, side="left")
        keep = rank < target[owner]
        kept = keys[keep]
        have = np.bincount(kept // n_items, minlength=len(target))[users]
        short = have < counts
        if not short.any():
            break
        pending, need = users[short], counts[short] - have[short]
    else:  # pragma: no cover - needs a user asking for nearly every item
        raise ConfigError("could not draw enough distinct items for the most active users; lower max_per_user")
    return kept // n_items, item_ids[kept % n_items]


def write_power_law(
    path: str | Path,
    n_interactions: int,
    *,
    n_users: int | None = None,
    n_items: int | None = None,
    user_exponent: float = 0.7,
    item_exponent: float = 0.9,
    max_per_user: int | None = None,
    seed: int = 0,
    chunk_rows: int = 2_000_000,
) -> Path:
    """Write `n_interactions` distinct (user, item, value) events to a folder of Parquet files; returns it.

    Columns: ``user`` (int64), ``item`` (int64), ``value`` (float32, event count ≥ 1). Sizes default
    to `default_shape`; `max_per_user` to a quarter of the items. A ``_generator.json`` beside the
    parts records the settings (Spark and pyarrow skip files starting with ``_``).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    d_users, d_items = default_shape(n_interactions)
    n_users, n_items = n_users or d_users, n_items or d_items
    cap = max_per_user or max(1, n_items // 4)
    if chunk_rows < 1:
        raise ConfigError("chunk_rows must be at least 1")
    rng = np.random.default_rng([seed, 0])
    activity = np.arange(1, n_users + 1, dtype=np.float64) ** -user_exponent
    counts = allocate(n_interactions, activity[rng.permutation(n_users)], 1, cap)
    item_ids = rng.permutation(n_items).astype(np.int64)
    cdf = _zipf_cdf(n_items, item_exponent)
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("part-*.parquet"):
        old.unlink()
    schema = pa.schema([("user", pa.int64()), ("item", pa.int64()), ("value", pa.float32())])
    buffer: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    buffered, part = 0, 0

    def flush() -> None:
        nonlocal buffer, buffered, part
        if not buffer:
            return
        cols = [np.concatenate(c) for c in zip(*buffer)]
        pq.write_table(pa.Table.from_arrays([pa.array(c) for c in cols], schema=schema),
                       out / FILE_PATTERN.format(part))
        buffer, buffered, part = [], 0, part + 1

    for block, start in enumerate(range(0, n_users, BLOCK_USERS)):
        users = np.arange(start, min(start + BLOCK_USERS, n_users), dtype=np.int64)
        block_rng = np.random.default_rng([seed, 1, block])
        u, i = _draw_block(block_rng, users, counts[users], cdf, item_ids)
        values = block_rng.geometric(0.6, len(u)).astype(np.float32)
        buffer.append((u, i, values))
        buffered += len(u)
        if buffered >= chunk_rows:
            flush()
    flush()
    (out / "_generator.json").write_text(json.dumps({
        "generator": "tastemaker.data.synthetic.write_power_law", "interactions": n_interactions,
        "users": n_users, "items": n_items, "user_exponent": user_exponent, "item_exponent": item_exponent,
        "max_per_user": cap, "seed": seed, "parts": part}, indent=1))
    return out


__all__ = ["BLOCK_USERS", "allocate", "default_shape", "write_power_law"]
