"""Streaming session protocols on the G1 click log: ``g1-stream`` (Transformers4Rec's) and ``g1-live``.

Preparation (`prepare_stream`, as Transformers4Rec's preprocessing)
    sessions grouped by session id, clicks ordered by time, repeated articles within a session
    removed, 1-click sessions dropped, sessions cut to their first 20 clicks. Windows are the hour
    files (each holds the sessions that started in that hour). Sessions are split 50/50 at random
    (seeded) into a validation and a test half.

``g1-stream`` (Moreira et al., RecSys 2021: "incremental training, average over time")
    the model holds windows 0..w-1 when window w is scored, then absorbs all of window w (both
    halves). Scored: the **last click** of each test session from its full prefix, ranked over
    every article seen before the window, the prefix's own articles excluded; metrics are the mean
    over windows of the per-window means. Also reported: every next click of each prefix
    (``[next_click]``). About 2% of targets are articles first seen inside the scored window:
    unreachable for any model in this protocol.
    Absorbed clicks carry their own timestamps, clipped to the model's update time (the latest
    session start of the window): sessions grouped by start hour run past their window, and a
    time-decayed model must not see clicks dated after the moment it was updated.

``g1-live``
    strict time order, what a service does: every click (of both halves) is absorbed the moment
    it happens, and each click of a test session (from the second on) is predicted first, from
    its session's earlier clicks, by a model that has absorbed every click before it. Articles
    published minutes ago are candidates as soon as they have one click.

Both protocols score windows 1.. only (window 0 has no model), average per window over the
windows that have predictions, and report slices by target: first seen less than an hour
before the click (``[fresh<1h]``; "first seen" is the article's first click in the log, the only
age information G1 has), the user's first session in the log (``[first_session]``) and later
sessions (``[returning]``). Requests use the time and context of the prefix's last click.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from tastemaker.data.g1 import G1Clicks
from tastemaker.errors import ConfigError
from tastemaker.models.session import _kernels as K
from tastemaker.models.session.base import CONTEXT_FIELDS, SessionModel
from tastemaker.progress import track

PROTOCOLS: dict[str, str] = {
    "g1-stream": "hourly windows, model holds windows < w, last click of each test session from its full prefix, "
                 "mean over windows (Transformers4Rec's protocol); every next click too",
    "g1-live": "strict time order: every click absorbed as it happens, each test-session click predicted first",
}
FRESH_SECONDS = 3600.0
Half = Literal["test", "validation", "both"]


# ================================================================================================
# Preparation
# ================================================================================================

@dataclass(frozen=True, eq=False)
class SessionStream:
    """Sessions in stream order (window, first click, id), as a CSR over their clicks (time order)."""

    s_off: np.ndarray  # int64[n_sessions + 1]
    session_id: np.ndarray  # int64[n_sessions]
    user: np.ndarray  # int64[n_sessions]
    window: np.ndarray  # int32[n_sessions]
    test: np.ndarray  # bool[n_sessions]
    first_session: np.ndarray  # bool[n_sessions]: the user's first session in the log
    item: np.ndarray  # int64[n_clicks] article ids, session-major
    time: np.ndarray  # float64[n_clicks] seconds
    context: np.ndarray  # int64[n_clicks, 6]
    first_seen: np.ndarray  # float64[n_clicks]: first time (s) the click's article appears in the log
    update_time: np.ndarray  # float64[n_windows]: when the model absorbs window w (latest session start)
    n_windows: int
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def n_sessions(self) -> int:
        return len(self.session_id)

    @property
    def n_clicks(self) -> int:
        return len(self.item)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.s_off)

    def click_session(self) -> np.ndarray:
        """Session row of every click."""
        return np.repeat(np.arange(self.n_sessions), self.lengths)

    def click_position(self) -> np.ndarray:
        """0-based position of every click in its session."""
        return np.arange(self.n_clicks) - np.repeat(self.s_off[:-1], self.lengths)

    def window_rows(self, w: int) -> np.ndarray:
        lo, hi = np.searchsorted(self.window, [w, w + 1])
        return np.arange(lo, hi)


def prepare_stream(clicks: G1Clicks, *, max_session_length: int = 20, seed: int = 0,
                   test_fraction: float = 0.5) -> SessionStream:
    """Transformers4Rec's preprocessing of the G1 clicks (see the module docstring)."""
    if max_session_length < 2:
        raise ConfigError(f"max_session_length must be at least 2, got {max_session_length}")
    n_raw = len(clicks)
    frame = pd.DataFrame({
        "session": clicks.session, "user": clicks.user, "item": clicks.article, "ts": clicks.timestamp,
        "start": clicks.session_start, "window": clicks.window, "row": np.arange(n_raw),
    })
    # article first seen, user's first session: over the raw log
    first_seen_ms = frame.groupby("item", sort=False)["ts"].min()
    sess_first = frame.groupby("session", sort=False).agg(user=("user", "first"), start=("start", "min"),
                                                         window=("window", "min"), first=("ts", "min"))
    sess_first = sess_first.reset_index().sort_values(["user", "start", "session"])
    first_of_user = set(sess_first.drop_duplicates("user")["session"].to_numpy().tolist())
    frame["window"] = frame["session"].map(sess_first.set_index("session")["window"])
    frame["sfirst"] = frame["session"].map(sess_first.set_index("session")["first"])
    frame = frame.sort_values(["window", "sfirst", "session", "ts", "row"], kind="stable")
    n_sessions_raw = int(sess_first.shape[0])
    frame = frame[~frame.duplicated(["session", "item"], keep="first")]
    size = frame.groupby("session", sort=False)["item"].transform("size")
    frame = frame[size >= 2]
    pos = frame.groupby("session", sort=False).cumcount()
    frame = frame[pos < max_session_length]
    sessions = frame["session"].to_numpy()
    starts = np.flatnonzero(np.r_[True, sessions[1:] != sessions[:-1]])
    s_off = np.r_[starts, len(frame)].astype(np.int64)
    sid = sessions[starts]
    rng = np.random.default_rng(seed)
    test = rng.random(len(sid)) < test_fraction
    ctx_rows = frame["row"].to_numpy()
    start_ms = clicks.session_start[ctx_rows]
    window = frame["window"].to_numpy(np.int32)
    n_windows = clicks.n_windows
    update_time = np.full(n_windows, -np.inf)
    np.maximum.at(update_time, window, start_ms / 1000.0)
    update_time = np.maximum.accumulate(np.where(np.isfinite(update_time), update_time, -np.inf))
    stream = SessionStream(
        s_off=s_off, session_id=sid.astype(np.int64), user=frame["user"].to_numpy(np.int64)[starts],
        window=window[starts], test=test,
        first_session=np.fromiter((s in first_of_user for s in sid.tolist()), bool, len(sid)),
        item=frame["item"].to_numpy(np.int64), time=frame["ts"].to_numpy(np.float64) / 1000.0,
        context=clicks.context[ctx_rows].astype(np.int64),
        first_seen=frame["item"].map(first_seen_ms).to_numpy(np.float64) / 1000.0,
        update_time=update_time, n_windows=n_windows,
        stats={"raw_clicks": n_raw, "raw_sessions": n_sessions_raw, "clicks": len(frame), "sessions": len(sid),
               "articles": int(frame["item"].nunique())},
    )
    return stream


# ================================================================================================
# Results and metrics
# ================================================================================================

@dataclass
class StreamResult:
    """Per-click outcomes of a replay (indexed like `SessionStream.item`) plus cost measurements."""

    protocol: str
    model: str
    params: dict[str, Any]
    k: int
    rank: np.ndarray  # int32: rank of the target in the top k, -1 miss, -2 not scored
    novelty: np.ndarray  # float64
    choices: np.ndarray | None  # float32 (n_clicks, 4) explorer log rows (item, propensity, candidates, slot)
    coverage_items: int
    catalogue: int
    fit_seconds: float | None
    predict_seconds: float | None
    replay_seconds: float
    cpu_seconds: float
    peak_memory_mb: float
    state_mb: float
    n_clicks: int
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def clicks_per_second(self) -> float:
        return self.n_clicks / self.replay_seconds if self.replay_seconds > 0 else float("nan")

    def row(self) -> dict[str, Any]:
        """The bench row: system, model, params, metrics, timings, throughput and memory."""
        return {"system": "tastemaker", "model": self.model, "params": self.params, "metrics": self.metrics,
                "fit_seconds": self.fit_seconds, "predict_seconds": self.predict_seconds,
                "replay_seconds": round(self.replay_seconds, 3), "cpu_seconds": round(self.cpu_seconds, 3),
                "clicks_per_second": round(self.clicks_per_second, 1),
                "clicks_per_cpu_second": round(self.n_clicks / self.cpu_seconds, 1) if self.cpu_seconds > 0 else None,
                "peak_memory_mb": round(self.peak_memory_mb, 1), "state_mb": round(self.state_mb, 1)}


def rank_metrics(rank: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Per-query HR@k, NDCG@k, MRR@k of one relevant target, from its 0-based rank (-1: not in the top k)."""
    r = np.asarray(rank)
    hit = (r >= 0) & (r < k)
    pos = np.where(hit, r, 0).astype(np.float64)
    return {f"hr@{k}": hit.astype(np.float64),
            f"ndcg@{k}": np.where(hit, 1.0 / np.log2(pos + 2.0), 0.0),
            f"mrr@{k}": np.where(hit, 1.0 / (pos + 1.0), 0.0)}


def mean_over_windows(values: np.ndarray, windows: np.ndarray) -> float:
    """Mean over windows of the per-window means (windows without values are skipped); NaN if none."""
    ok = ~np.isnan(values)
    values, windows = values[ok], windows[ok]
    if len(values) == 0:
        return float("nan")
    counts = np.bincount(windows)
    sums = np.bincount(windows, weights=values)
    has = counts > 0
    return float(np.mean(sums[has] / counts[has]))


def stream_metrics(stream: SessionStream, rank: np.ndarray, novelty: np.ndarray, *, k: int,
                   coverage_items: int, catalogue: int) -> dict[str, float]:
    """The bench metrics of a replay: last click (headline), slices, every next click."""
    row = stream.click_session()
    pos = stream.click_position()
    win = stream.window[row].astype(np.int64)
    scored = rank > -2
    last = scored & (pos == stream.lengths[row] - 1)
    fresh = (stream.time - stream.first_seen) < FRESH_SECONDS
    first = stream.first_session[row]
    per_query = rank_metrics(rank, k)
    out: dict[str, float] = {}
    slices: list[tuple[str, np.ndarray, tuple[str, ...]]] = [
        ("", last, ("hr", "ndcg", "mrr")),
        ("[fresh<1h]", last & fresh, ("hr", "ndcg", "mrr")),
        ("[first_session]", last & first, ("hr", "ndcg", "mrr")),
        ("[returning]", last & ~first, ("hr", "ndcg", "mrr")),
        ("[next_click]", scored, ("hr", "ndcg", "mrr")),
        ("[next_click,fresh<1h]", scored & fresh, ("hr", "ndcg", "mrr")),
    ]
    for suffix, mask, names in slices:
        for name in names:
            key = f"{name}@{k}"
            out[key + suffix] = mean_over_windows(per_query[key][mask], win[mask])
        out[f"n{suffix or '[last_click]'}"] = int(mask.sum())
    out[f"coverage@{k}"] = coverage_items / catalogue if catalogue else float("nan")
    out[f"novelty@{k}"] = mean_over_windows(novelty[last], win[last])
    return out


# ================================================================================================
# Replays
# ================================================================================================

def _half_mask(stream: SessionStream, half: Half) -> np.ndarray:
    if half == "test":
        return stream.test
    if half == "validation":
        return ~stream.test
    if half == "both":
        return np.ones(stream.n_sessions, bool)
    raise ConfigError(f"half must be 'test', 'validation' or 'both', got {half!r}")


def _encode_context(model: SessionModel, codes: np.ndarray, *, add: bool) -> np.ndarray:
    if not model.uses_context:
        return np.full((len(codes), len(CONTEXT_FIELDS)), -1, np.int32)
    return np.ascontiguousarray(model._mask_context(model.contexts.encode(codes, len(codes), add=add)))


class _Driver:
    """Arrays the replay kernels share: outcomes per click and the evaluator's own popularity counts."""

    def __init__(self, stream: SessionStream, k: int) -> None:
        n = stream.n_clicks
        self.k = k
        self.rank = np.full(n, -2, np.int32)
        self.novelty = np.full(n, np.nan)
        self.log = np.full((n, 4), -1.0, np.float32)
        self.dpop = np.zeros(1024, np.int64)
        self.dcnt = np.zeros(1, np.int64)
        self.rec_flag = np.zeros(1024, np.uint8)

    def reserve(self, n_items: int) -> None:
        if n_items > len(self.dpop):
            size = max(n_items, 2 * len(self.dpop))
            self.dpop = np.concatenate([self.dpop, np.zeros(size - len(self.dpop), np.int64)])
            self.rec_flag = np.concatenate([self.rec_flag, np.zeros(size - len(self.rec_flag), np.uint8)])


def replay_stream(
    model: SessionModel,
    stream: SessionStream,
    *,
    k: int = 20,
    half: Half = "test",
    windows: Iterable[int] | None = None,
    every_click: bool = True,
    progress: bool = True,
) -> _Driver:
    """g1-stream: score windows (default 1..n-1), absorbing each window after scoring it."""
    drv = _Driver(stream, k)
    wanted = set(range(1, stream.n_windows) if windows is None else windows)
    last_window = max(wanted) if wanted else -1
    mask = _half_mask(stream, half)
    c_item = np.full(stream.n_clicks, -1, np.int32)
    c_ctx = np.full((stream.n_clicks, len(CONTEXT_FIELDS)), -1, np.int32)
    drv.fit_seconds = 0.0
    drv.predict_seconds = 0.0
    for w in track(range(last_window + 1), f"g1-stream {model.name}", total=last_window + 1) if progress \
            else range(last_window + 1):
        rows = stream.window_rows(w)
        if len(rows) == 0:
            continue
        lo, hi = stream.s_off[rows[0]], stream.s_off[rows[-1] + 1]
        if w in wanted:
            t0 = time.perf_counter()
            q = rows[mask[rows]].astype(np.int64)
            c_item[lo:hi] = model.items.lookup(stream.item[lo:hi])
            c_ctx[lo:hi] = _encode_context(model, stream.context[lo:hi], add=False)
            drv.reserve(model._caps["I"])
            K.evaluate_sessions(model._state, q, stream.s_off, c_item, stream.time, c_ctx, not every_click, k,
                                drv.rank, drv.novelty, drv.log, drv.dpop, drv.dcnt[0], drv.rec_flag)
            drv.predict_seconds += time.perf_counter() - t0
        if w == last_window:
            break
        t0 = time.perf_counter()
        sess = np.repeat(stream.session_id[rows], stream.lengths[rows])
        model.update_many(sess, stream.item[lo:hi], np.minimum(stream.time[lo:hi], stream.update_time[w]),
                          stream.context[lo:hi] if model.uses_context else None)
        drv.fit_seconds += time.perf_counter() - t0
        dense = model.items.lookup(stream.item[lo:hi])
        drv.reserve(model._caps["I"])
        np.add.at(drv.dpop, dense, 1)
        drv.dcnt[0] += len(rows)
    return drv


def replay_live(
    model: SessionModel,
    stream: SessionStream,
    *,
    k: int = 20,
    half: Half = "test",
    windows: Iterable[int] | None = None,
    every_click: bool = True,
    progress: bool = True,
    chunk: int = 100_000,
) -> _Driver:
    """g1-live: strict time order; each scored click is predicted, then absorbed."""
    drv = _Driver(stream, k)
    wanted = np.zeros(stream.n_windows + 1, bool)
    wanted[list(range(1, stream.n_windows) if windows is None else windows)] = True
    last_window = int(np.flatnonzero(wanted).max()) if wanted.any() else 0
    row = stream.click_session()
    pos = stream.click_position().astype(np.int32)
    keep = stream.window[row] <= last_window
    order = np.lexsort((pos, row, stream.time))
    order = order[keep[order]]
    c_row = row[order].astype(np.int64)
    c_pos = pos[order]
    is_last = pos == stream.lengths[row] - 1
    query = _half_mask(stream, half)[row] & wanted[stream.window[row]] & (pos >= 1)
    if not every_click:
        query &= is_last
    # indices in time order = the order an incremental model would assign them
    if model.uses_sessions:
        model.sessions.add(stream.session_id[c_row], "session")
    model.items.add(stream.item[order], "item")
    ctx_time = _encode_context(model, stream.context[order], add=True)
    c_sess = (model.sessions.lookup(stream.session_id[c_row], "session") if model.uses_sessions
              else np.zeros(len(order), np.int32))
    c_item = model.items.lookup(stream.item[order])
    s_item = model.items.lookup(stream.item)
    s_ctx = np.full((stream.n_clicks, len(CONTEXT_FIELDS)), -1, np.int32)
    s_ctx[order] = ctx_time
    model._reserve(len(order))
    drv.reserve(model._caps["I"])
    c_time = stream.time[order]
    c_query = query[order]
    c_last = is_last[order]
    out_rank = np.full(len(order), -2, np.int32)
    out_nov = np.full(len(order), np.nan)
    out_log = np.full((len(order), 4), -1.0, np.float32)
    starts = range(0, len(order), chunk)
    t_all = time.perf_counter()
    for lo in track(starts, f"g1-live {model.name}", total=len(starts)) if progress else starts:
        hi = min(lo + chunk, len(order))
        start = lo
        while True:
            start, code = K.replay_live(model._state, start, c_sess[:hi], c_item[:hi], c_time[:hi], ctx_time[:hi],
                                        c_pos[:hi], c_query[:hi], c_row[:hi], stream.s_off, s_item, stream.time, s_ctx,
                                        k, out_rank, out_nov, out_log, drv.dpop, drv.dcnt, drv.rec_flag, c_last[:hi])
            if code == 0:
                break
            model._grow_full(code)
    drv.replay = time.perf_counter() - t_all
    model.n_clicks += len(order)
    drv.rank[order] = out_rank
    drv.novelty[order] = out_nov
    drv.log[order] = out_log
    drv.fit_seconds = None
    drv.predict_seconds = None
    return drv


def run_protocol(
    protocol: str,
    factory: Callable[[], SessionModel],
    stream: SessionStream,
    *,
    k: int = 20,
    half: Half = "test",
    windows: Iterable[int] | None = None,
    every_click: bool = True,
    progress: bool = True,
    name: str | None = None,
    params: dict[str, Any] | None = None,
) -> tuple[StreamResult, SessionModel]:
    """Build a fresh model and replay `stream` under `protocol` ("g1-stream" or "g1-live").

    Measures wall and CPU time of the replay (model creation included) and the peak of memory
    allocated meanwhile through Python (tracemalloc: the model's arrays and the replay's own).
    """
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown streaming protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    windows = None if windows is None else sorted(set(windows))
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base_mem = tracemalloc.get_traced_memory()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    model = factory()
    if protocol == "g1-stream":
        drv = replay_stream(model, stream, k=k, half=half, windows=windows, every_click=every_click,
                            progress=progress)
    else:
        drv = replay_live(model, stream, k=k, half=half, windows=windows, every_click=every_click,
                          progress=progress)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = tracemalloc.get_traced_memory()[1] - base_mem
    if not was_tracing:
        tracemalloc.stop()
    flags = drv.rec_flag[: model.n_items]
    catalogue = model.n_items
    is_explorer = bool((drv.log[:, 0] >= 0).any())
    result = StreamResult(
        protocol=protocol, model=name or model.name, params=params if params is not None else model.params(), k=k,
        rank=drv.rank, novelty=drv.novelty, choices=drv.log if is_explorer else None,
        coverage_items=int(flags.sum()), catalogue=catalogue,
        fit_seconds=None if drv.fit_seconds is None else round(drv.fit_seconds, 3),
        predict_seconds=None if drv.predict_seconds is None else round(drv.predict_seconds, 3),
        replay_seconds=wall, cpu_seconds=cpu, peak_memory_mb=peak / 2**20, state_mb=model.nbytes / 2**20,
        n_clicks=model.n_clicks,
    )
    result.metrics = stream_metrics(stream, drv.rank, drv.novelty, k=k, coverage_items=result.coverage_items,
                                    catalogue=catalogue)
    if is_explorer:
        chosen = drv.log[:, 0] >= 0
        result.metrics["explored_share"] = float(chosen[drv.rank > -2].mean()) if (drv.rank > -2).any() else 0.0
        result.metrics["mean_propensity"] = float(drv.log[chosen, 1].mean()) if chosen.any() else float("nan")
        if hasattr(model, "log_choices"):
            idx = np.flatnonzero(chosen)
            model.log_choices({"timestamp": stream.time[idx - 1], "session": stream.session_id[
                stream.click_session()[idx]], "item": model.items.ids[drv.log[idx, 0].astype(np.int64)],
                "slot": drv.log[idx, 3].astype(np.int64), "propensity": drv.log[idx, 1].astype(np.float64),
                "n_candidates": drv.log[idx, 2].astype(np.int64)})
    return result, model
