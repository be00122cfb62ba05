"""Numba kernels of the session models: state layouts, per-click updates, scoring and replay drivers.

Everything compiled for the session models lives in this one file on purpose: numba's on-disk
cache is invalidated per source file, and the drivers below inline the model kernels, so keeping
them together means an edit anywhere recompiles everything that depends on it.

Design
------
A model's state is a NamedTuple of numpy arrays (some fields are themselves NamedTuples: "parts"
shared between models, e.g. the session store). Three functions are dispatched on the state's
type with ``numba.extending.overload`` (so one driver serves every model, and the drivers cache):

- ``absorb(st, s, i, t, ctx) -> code``: absorb one click (dense session ``s``, dense item ``i``,
  time ``t`` in seconds, context slots ``ctx``). All-or-nothing: it returns a non-zero code *before*
  changing anything when a growable structure is full; Python grows it and resumes.
- ``score(st, prefix, npre, t, ctx, self_sess) -> n``: candidate scores written into ``st.ws`` (a
  dense, zero-filled workspace) for the items listed in ``st.touched[:n]``; every written score is
  > 0 (a zero in ``ws`` means "not touched").
- ``recommend(...)``: score, drop excluded items, take the top k, clean the workspace (the
  explorer overrides it to place a Thompson-sampled fresh article).

Item and session indices are dense and assigned by the Python side (``base.GrowableIndex``);
arrays are sized by the Python side before each call (items, sessions, clicks, context slots), and
the kernels only signal "full" for structures whose growth depends on the data (pair tables,
time buckets).

Decayed counts use one scheme everywhere: a click at time t adds ``exp((t - epoch) / tau)``; all
values of a part share the epoch, so rankings never depend on the query time. When the exponent
passes ``_RESCALE`` the part is multiplied by ``exp(-(t - epoch) / tau)`` and the epoch moves to t
(deterministic: it depends only on the absorbed clicks).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit
from numba.extending import overload

EMPTY = -1
FULL_PAIRS = 1
FULL_WINDOW_ENTRIES = 2
FULL_WINDOW_BUCKETS = 3
_RESCALE = 300.0
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


# ================================================================================================
# State layouts
# ================================================================================================

class IndexState(NamedTuple):
    """Open-addressing hash map int64 id -> dense index, plus the ids in index order."""

    keys: np.ndarray  # int64[H]
    vals: np.ndarray  # int32[H], EMPTY where free
    ids: np.ndarray  # int64[N]
    n: np.ndarray  # int64[1]


class SessState(NamedTuple):
    """Sessions as linked lists of clicks; each item links back through the sessions that hold it."""

    sess_len: np.ndarray  # int32[S]
    sess_head: np.ndarray  # int32[S] first click
    sess_tail: np.ndarray  # int32[S] last click
    sess_time: np.ndarray  # float64[S] time of the latest click (-inf before the first)
    c_item: np.ndarray  # int32[C]
    c_sess: np.ndarray  # int32[C]
    c_next: np.ndarray  # int32[C] next click of the same session
    c_prev_item: np.ndarray  # int32[C] previous click on the same item (newest first walk)
    item_head: np.ndarray  # int32[I] newest click on the item
    item_nsess: np.ndarray  # int32[I] sessions holding the item
    cnt: np.ndarray  # int64[2]: stored clicks, non-empty sessions
    lim: np.ndarray  # int64[1]: longest session stored (clicks past it only refresh the session time)


class PairState(NamedTuple):
    """Weighted item pairs (co-occurrence or sequential rules) in a hash table with per-row lists."""

    keys: np.ndarray  # int64[H] (src << 32) | dst
    slots: np.ndarray  # int32[H] entry index, EMPTY where free
    e_dst: np.ndarray  # int32[E]
    e_val: np.ndarray  # float64[E]
    e_next: np.ndarray  # int32[E] next entry of the same row
    row_head: np.ndarray  # int32[I]
    row_len: np.ndarray  # int32[I]
    cnt: np.ndarray  # int64[1]: entries used
    f: np.ndarray  # float64[2]: epoch, tau (seconds; <= 0: no decay)
    p: np.ndarray  # float64[3]: kind (0 co-occurrence, 1 sequential rule), steps, gap weighting


class PopState(NamedTuple):
    """Decayed item popularity with an exact top-N list, first-seen times and click counters."""

    val: np.ndarray  # float64[I]
    clicks: np.ndarray  # int64[I]
    first_seen: np.ndarray  # float64[I] (+inf before the first click)
    traffic0: np.ndarray  # int64[I]: clicks on all items when the item was first seen
    seen_order: np.ndarray  # int32[I]: items in first-seen order
    top_items: np.ndarray  # int32[N]
    top_vals: np.ndarray  # float64[N]
    top_pos: np.ndarray  # int32[I] position in the top list, EMPTY if outside
    cnt: np.ndarray  # int64[3]: items seen, clicks, top-list length
    f: np.ndarray  # float64[3]: epoch (NaN before the first click), tau, decayed total


class WinState(NamedTuple):
    """Click counts per (time bucket, item): popularity over a sliding window of buckets."""

    e_item: np.ndarray  # int32[E]
    e_cnt: np.ndarray  # int32[E]
    e_next: np.ndarray  # int32[E] next entry of the same bucket
    e_bucket: np.ndarray  # int64[E]
    item_last: np.ndarray  # int32[I] newest entry of the item
    bucket_head: np.ndarray  # int32[B]
    cnt: np.ndarray  # int64[4]: entries used, base bucket, base set (0/1), newest bucket (relative)
    f: np.ndarray  # float64[2]: bucket seconds, window seconds


class CtxState(NamedTuple):
    """Decayed popularity per context slot (one slot per (field, value)), with top-N lists."""

    val: np.ndarray  # float64[NS, I]
    total: np.ndarray  # float64[NS]
    top_items: np.ndarray  # int32[NS, N]
    top_vals: np.ndarray  # float64[NS, N]
    top_pos: np.ndarray  # int32[NS, I]
    ntop: np.ndarray  # int64[NS]
    f: np.ndarray  # float64[3]: epoch, tau, smoothing (in clicks)


class KnnWork(NamedTuple):
    """Per-query workspace of the session-kNN family (never saved)."""

    pw: np.ndarray  # float64[I] prefix weight of each item (0 outside the prefix)
    ppos: np.ndarray  # int32[I] 1-based last position of the item in the prefix (0 outside)
    stamp: np.ndarray  # int32[S] query stamp, to deduplicate candidate sessions
    qn: np.ndarray  # int64[1] query counter


# --- model states (top level) -------------------------------------------------------------------
# `ws`, `touched`, `excl` are the per-query workspace every top-level state carries.

class PopModel(NamedTuple):
    pop: PopState
    ws: np.ndarray
    touched: np.ndarray
    excl: np.ndarray


class WinModel(NamedTuple):
    win: WinState
    ws: np.ndarray
    touched: np.ndarray
    excl: np.ndarray


class CtxModel(NamedTuple):
    pop: PopState
    ctx: CtxState
    p: np.ndarray  # float64[1]: exponent of each context field's likelihood ratio
    ws: np.ndarray
    touched: np.ndarray
    excl: np.ndarray


class AgeModel(NamedTuple):
    pop: PopState
    p: np.ndarray  # float64[2]: tau of the age prior (seconds), candidates (newest first-seen items)
    ws: np.ndarray
    touched: np.ndarray
    excl: np.ndarray


class PairModel(NamedTuple):
    ss: SessState
    pairs: PairState
    p: np.ndarray  # float64[2]: normalisation (0 raw, 1 cosine), decay of earlier prefix items (0: last only)
    ws: np.ndarray
    touched: np.ndarray
    excl: np.ndarray


class KnnModel(NamedTuple):
    ss: SessState
    p: np.ndarray  # float64[KNN_PARAMS]
    work: KnnWork
    ws: np.ndarray
    touched: np.ndarray
    excl: np.ndarray


class HybridModel(NamedTuple):
    ss: SessState
    knn_p: np.ndarray
    knn_work: KnnWork
    knn_ws: np.ndarray
    knn_touched: np.ndarray
    pairs: PairState
    pair_p: np.ndarray
    pair_ws: np.ndarray
    pair_touched: np.ndarray
    pop: PopState
    ctx: CtxState
    hp: np.ndarray  # float64[HYBRID_PARAMS]
    ws: np.ndarray
    touched: np.ndarray
    excl: np.ndarray


# kNN parameter slots
K_K, K_SAMPLE, K_PREFIX, K_SPW, K_SIM, K_SNH, K_INH, K_SCORE, K_IPW, K_IDF = range(10)
KNN_PARAMS = 10
# prefix weighting modes (weight of prefix position p, 1-based, of L)
PW_SAME, PW_DIV, PW_QUADRATIC, PW_LINEAR, PW_LOG, PW_EXP = range(6)
# neighbour-score decay by the distance (in the prefix) of the most recent shared item
SD_NONE, SD_DIV, SD_QUADRATIC, SD_LINEAR, SD_LOG, SD_EXP = range(6)
# hybrid parameter slots
H_KNN, H_PAIR, H_POP, H_CTX, H_AGE, H_TAU_AGE, H_POP_CAND, H_AGE_CAND, H_CTX_BETA = range(9)
HYBRID_PARAMS = 9


# ================================================================================================
# Hash map
# ================================================================================================

@njit(cache=True)
def _mix(key):
    x = np.uint64(key)
    x = (x ^ (x >> np.uint64(30))) * _MIX1
    x = (x ^ (x >> np.uint64(27))) * _MIX2
    return x ^ (x >> np.uint64(31))


@njit(cache=True)
def index_add(keys, vals, ids, n, ext, out):
    """Dense index of each id in `ext`, appending unseen ids in order of first occurrence."""
    for j in range(ext.shape[0]):
        key = ext[j]
        h = np.int64(_mix(key) & np.uint64(keys.shape[0] - 1))
        while vals[h] != EMPTY and keys[h] != key:
            h = (h + 1) & (keys.shape[0] - 1)
        if vals[h] == EMPTY:
            v = n[0]
            keys[h] = key
            vals[h] = v
            ids[v] = key
            n[0] = v + 1
        out[j] = vals[h]


@njit(cache=True)
def index_lookup(keys, vals, ext, out):
    """Dense index of each id, EMPTY (-1) for unknown ids."""
    for j in range(ext.shape[0]):
        h = np.int64(_mix(ext[j]) & np.uint64(keys.shape[0] - 1))
        while vals[h] != EMPTY and keys[h] != ext[j]:
            h = (h + 1) & (keys.shape[0] - 1)
        out[j] = vals[h]


@njit(cache=True)
def rehash(old_keys, old_vals, new_keys, new_vals):
    for h in range(old_keys.shape[0]):
        if old_vals[h] != EMPTY:
            g = np.int64(_mix(old_keys[h]) & np.uint64(new_keys.shape[0] - 1))
            while new_vals[g] != EMPTY and new_keys[g] != old_keys[h]:
                g = (g + 1) & (new_keys.shape[0] - 1)
            new_keys[g] = old_keys[h]
            new_vals[g] = old_vals[h]


# ================================================================================================
# Shared helpers
# ================================================================================================

@njit(cache=True)
def _decay(f, t):
    """Weight of a click at time t in a part whose f[0] is the epoch and f[1] the decay time."""
    if f[1] <= 0.0:
        return 1.0
    return math.exp((t - f[0]) / f[1])


@njit(cache=True)
def _rescale_factor(f, t):
    """Set the epoch on the first click; return the factor to rescale by (1.0: nothing to do)."""
    if math.isnan(f[0]):
        f[0] = t
        return 1.0
    if f[1] > 0.0 and (t - f[0]) / f[1] > _RESCALE:
        factor = math.exp(-(t - f[0]) / f[1])
        f[0] = t
        return factor
    return 1.0


@njit(cache=True)
def _top_insert(items, vals, pos, ntop_arr, ntop_idx, i, v):
    """Exact top-N maintenance for rising values (bubble the item up)."""
    cap = items.shape[0]
    if cap == 0:
        return
    p = pos[i]
    if p < 0:
        n = ntop_arr[ntop_idx]
        if n < cap:
            p = n
            ntop_arr[ntop_idx] = n + 1
        elif v > vals[cap - 1]:
            p = cap - 1
            pos[items[p]] = EMPTY
        else:
            return
        items[p] = i
        pos[i] = p
    vals[p] = v
    while p > 0 and vals[p - 1] < v:
        oi = items[p - 1]
        ov = vals[p - 1]
        items[p - 1] = i
        vals[p - 1] = v
        items[p] = oi
        vals[p] = ov
        pos[oi] = p
        pos[i] = p - 1
        p -= 1


@njit(cache=True)
def _ws_clear(ws, touched, nt):
    for a in range(nt):
        ws[touched[a]] = 0.0


@njit(cache=True, inline="always")
def _add_max_normalised(ws, touched, nt, src, src_touched, n, excl, weight):  # pragma: no cover - compiled
    """ws += weight · src / max(src over non-excluded items), recording newly touched items; clears
    src. Returns the new count of touched items."""
    m = 0.0
    for a in range(n):
        j = src_touched[a]
        if excl[j] == 0 and src[j] > m:
            m = src[j]
    if m > 0.0:
        w = weight / m
        for a in range(n):
            j = src_touched[a]
            v = w * src[j]
            if v > 0.0:
                if ws[j] == 0.0:
                    touched[nt] = j
                    nt += 1
                ws[j] += v
    _ws_clear(src, src_touched, n)
    return nt


@njit(cache=True)
def ss_position(ss, s, i):
    """Position the click (s, i) would take, or -1 when i is already in s or s is at its length limit."""
    n = ss.sess_len[s]
    if n >= ss.lim[0]:
        return -1
    c = ss.sess_head[s] if n > 0 else -1
    while c >= 0:
        if ss.c_item[c] == i:
            return -1
        c = ss.c_next[c]
    return n


@njit(cache=True)
def ss_add(ss, s, i, t, pos):
    """Store click (s, i, t) at position `pos` (from ss_position); pos < 0 only refreshes the time."""
    if t > ss.sess_time[s]:
        ss.sess_time[s] = t
    if pos < 0:
        return
    c = ss.cnt[0]
    ss.cnt[0] = c + 1
    ss.c_item[c] = i
    ss.c_sess[c] = s
    ss.c_next[c] = EMPTY
    ss.c_prev_item[c] = ss.item_head[i]
    ss.item_head[i] = c
    ss.item_nsess[i] += 1
    if ss.sess_len[s] == 0:
        ss.sess_head[s] = c
        ss.cnt[1] += 1
    else:
        ss.c_next[ss.sess_tail[s]] = c
    ss.sess_tail[s] = c
    ss.sess_len[s] += 1


# ================================================================================================
# Pair store: co-occurrence and sequential rules
# ================================================================================================

@njit(cache=True)
def _gap_weight(gap, mode):
    if mode == 1:  # div
        return 1.0 / gap
    if mode == 2:  # linear
        w = 1.0 - 0.1 * gap
        return w if w > 0.0 else 0.0
    if mode == 3:  # quadratic
        return 1.0 / (gap * gap)
    return 1.0  # same


@njit(cache=True)
def pairs_room(ps, pos):
    steps = int(ps.p[1])
    need = 2 * (pos if pos < steps else steps)
    used = ps.cnt[0] + need
    return used <= ps.e_dst.shape[0] and 2 * used <= ps.keys.shape[0]


@njit(cache=True)
def pairs_absorb(ps, ss, s, i, t, pos):
    """Add the pairs of click (s, i) at position pos with the session's earlier items (call before ss_add).

    Co-occurrence (kind 0) adds both directions with weight 1; sequential rules (kind 1) add
    earlier -> i weighted by the distance. The hash insert is written out here: helper calls with
    array arguments inside loops cost reference-count atomics per call in numba.
    """
    factor = _rescale_factor(ps.f, t)
    keys = ps.keys
    slots = ps.slots
    e_dst = ps.e_dst
    e_val = ps.e_val
    e_next = ps.e_next
    row_head = ps.row_head
    row_len = ps.row_len
    cnt = ps.cnt
    if factor != 1.0:
        for e in range(cnt[0]):
            e_val[e] *= factor
    if pos <= 0:
        return
    kind = int(ps.p[0])
    steps = int(ps.p[1])
    mode = int(ps.p[2])
    dw = _decay(ps.f, t)
    mask = keys.shape[0] - 1
    c = ss.sess_head[s]
    q = 0
    c_item = ss.c_item
    c_next = ss.c_next
    while c >= 0:
        gap = pos - q
        if gap <= steps:
            j = c_item[c]
            w = dw if kind == 0 else dw * _gap_weight(gap, mode)
            for side in range(2 if kind == 0 else 1):
                src = j if side == 0 else i
                dst = i if side == 0 else j
                if w <= 0.0:
                    continue
                key = (np.int64(src) << 32) | np.int64(dst)
                h = np.int64(_mix(key) & np.uint64(mask))
                while slots[h] != EMPTY and keys[h] != key:
                    h = (h + 1) & mask
                e = slots[h]
                if e == EMPTY:
                    e = cnt[0]
                    cnt[0] = e + 1
                    keys[h] = key
                    slots[h] = e
                    e_dst[e] = dst
                    e_val[e] = 0.0
                    e_next[e] = row_head[src]
                    row_head[src] = e
                    row_len[src] += 1
                e_val[e] += w
        c = c_next[c]
        q += 1


@njit(cache=True)
def pairs_score(ps, ss, pp, prefix, npre, ws, touched):
    """Scores of the rows of the prefix items: the last known item, plus earlier ones decayed by pp[1]."""
    nt = 0
    cosine = pp[0] == 1.0
    decay = pp[1]
    w = 1.0
    for p in range(npre - 1, -1, -1):
        src = prefix[p]
        if src < 0:
            continue
        e = ps.row_head[src]
        while e >= 0:
            j = ps.e_dst[e]
            v = ps.e_val[e]
            if cosine:
                v = v / math.sqrt(max(ss.item_nsess[src], 1) * max(ss.item_nsess[j], 1))
            _v = w * v
            if _v > 0.0:
                _j = j
                if ws[_j] == 0.0:
                    touched[nt] = _j
                    nt += 1
                ws[_j] += _v
            e = ps.e_next[e]
        w *= decay
        if w <= 0.0:
            break
    return nt


# ================================================================================================
# Popularity: decayed, windowed, per context; first-seen times
# ================================================================================================

@njit(cache=True)
def pop_absorb(pop, i, t):
    factor = _rescale_factor(pop.f, t)
    if factor != 1.0:
        n = pop.cnt[0]
        for a in range(n):
            j = pop.seen_order[a]
            pop.val[j] *= factor
        for a in range(pop.cnt[2]):
            pop.top_vals[a] *= factor
        pop.f[2] *= factor
    if pop.first_seen[i] == np.inf:
        pop.first_seen[i] = t
        pop.seen_order[pop.cnt[0]] = i
        pop.cnt[0] += 1
        pop.traffic0[i] = pop.cnt[1]
    w = _decay(pop.f, t)
    pop.clicks[i] += 1
    pop.cnt[1] += 1
    pop.val[i] += w
    pop.f[2] += w
    _top_insert(pop.top_items, pop.top_vals, pop.top_pos, pop.cnt, 2, i, pop.val[i])


@njit(cache=True)
def pop_candidates(pop, n_extra, ws, touched, nt, weight):
    """Add weight × (value / top value) of the top list (or of every seen item when the list is too short)."""
    ntop = pop.cnt[2]
    if ntop == 0:
        return nt
    vmax = pop.top_vals[0]
    if vmax <= 0.0:
        return nt
    if n_extra <= ntop or ntop == pop.cnt[0]:
        for a in range(ntop):
            _v = weight * pop.top_vals[a] / vmax
            if _v > 0.0:
                _j = pop.top_items[a]
                if ws[_j] == 0.0:
                    touched[nt] = _j
                    nt += 1
                ws[_j] += _v
    else:
        for a in range(pop.cnt[0]):
            j = pop.seen_order[a]
            _v = weight * pop.val[j] / vmax
            if _v > 0.0:
                _j = j
                if ws[_j] == 0.0:
                    touched[nt] = _j
                    nt += 1
                ws[_j] += _v
    return nt


@njit(cache=True)
def win_room(win, t):
    if win.cnt[0] >= win.e_item.shape[0]:
        return FULL_WINDOW_ENTRIES
    if win.cnt[2] == 1:
        b = np.int64(math.floor(t / win.f[0])) - win.cnt[1]
        if b >= win.bucket_head.shape[0]:
            return FULL_WINDOW_BUCKETS
    return 0


@njit(cache=True)
def win_absorb(win, i, t):
    ab = np.int64(math.floor(t / win.f[0]))
    if win.cnt[2] == 0:
        win.cnt[1] = ab
        win.cnt[2] = 1
    b = ab - win.cnt[1]
    if b < 0:
        b = 0  # clicks older than the first bucket count in it
    if b > win.cnt[3]:
        win.cnt[3] = b
    e = win.item_last[i]
    if e >= 0 and win.e_bucket[e] == b:
        win.e_cnt[e] += 1
        return
    e = win.cnt[0]
    win.cnt[0] = e + 1
    win.e_item[e] = i
    win.e_cnt[e] = 1
    win.e_bucket[e] = b
    win.e_next[e] = win.bucket_head[b]
    win.bucket_head[b] = e
    win.item_last[i] = e


@njit(cache=True)
def win_score(win, t, ws, touched):
    """Clicks per item in the last `window` of the stream: the buckets up to the newest absorbed one.

    The window ends at the newest click absorbed, not at the request time: a model updated once an
    hour (g1-stream) still answers with its last hour of traffic, and a service after a quiet
    spell with the last traffic it saw.
    """
    nt = 0
    if win.cnt[2] == 0:
        return 0
    nb = max(1, round(win.f[1] / win.f[0]))
    bq = win.cnt[3]
    lo = max(np.int64(0), bq - nb + 1)
    hi = min(np.int64(win.bucket_head.shape[0]) - 1, bq)
    for b in range(lo, hi + 1):
        e = win.bucket_head[b]
        while e >= 0:
            _v = float(win.e_cnt[e])
            if _v > 0.0:
                _j = win.e_item[e]
                if ws[_j] == 0.0:
                    touched[nt] = _j
                    nt += 1
                ws[_j] += _v
            e = win.e_next[e]
    return nt


@njit(cache=True)
def ctx_absorb(cx, i, t, ctx):
    factor = _rescale_factor(cx.f, t)
    if factor != 1.0:
        cx.val[:, :] *= factor
        cx.total[:] *= factor
        cx.top_vals[:, :] *= factor
    w = _decay(cx.f, t)
    for a in range(ctx.shape[0]):
        v = ctx[a]
        if v < 0 or v >= cx.val.shape[0]:
            continue
        cx.val[v, i] += w
        cx.total[v] += w
        _top_insert(cx.top_items[v], cx.top_vals[v], cx.top_pos[v], cx.ntop, v, i, cx.val[v, i])


@njit(cache=True)
def ctx_smoothing(cx, t):
    """The smoothing pseudo-count cx.f[2] expressed in the part's decayed units at time t."""
    if cx.f[1] > 0.0 and not math.isnan(cx.f[0]):
        return cx.f[2] * math.exp((t - cx.f[0]) / cx.f[1])
    return cx.f[2]


@njit(cache=True)
def ctx_values(pop, cx, ctx, m, items, n, out):
    """out[a] = P(j) × Π_f P~(j | f = v_f) / P(j) for j = items[a], a < n: naive Bayes over the
    request's context fields.

    P~(j | f=v) = (clicks of j in slot v + m P(j)) / (clicks in slot v + m), decayed; a context value
    seen a handful of times backs off to the global popularity P(j). Returns the largest value.
    """
    ptotal = pop.f[2]
    pval = pop.val
    cval = cx.val
    ctotal = cx.total
    nslots = cval.shape[0]
    best = 0.0
    for a in range(n):
        j = items[a]
        out[a] = 0.0
        if ptotal <= 0.0:
            continue
        pi = pval[j] / ptotal
        if pi <= 0.0:
            continue
        sc = pi
        for f in range(ctx.shape[0]):
            v = ctx[f]
            if v < 0 or v >= nslots:
                continue
            denom = ctotal[v] + m
            if denom > 0.0:
                sc *= ((cval[v, j] + m * pi) / denom) / pi
        out[a] = sc
        if sc > best:
            best = sc
    return best


@njit(cache=True)
def ctx_candidates(pop, cx, ctx, ws, touched, nt):
    """List the global top items and the top items of each context slot of the request (tiny scores)."""
    for a in range(pop.cnt[2]):
        _v = 1e-300
        if _v > 0.0:
            _j = pop.top_items[a]
            if ws[_j] == 0.0:
                touched[nt] = _j
                nt += 1
            ws[_j] += _v
    for f in range(ctx.shape[0]):
        v = ctx[f]
        if v < 0 or v >= cx.val.shape[0]:
            continue
        for a in range(cx.ntop[v]):
            _v = 1e-300
            if _v > 0.0:
                _j = cx.top_items[v, a]
                if ws[_j] == 0.0:
                    touched[nt] = _j
                    nt += 1
                ws[_j] += _v
    return nt


@njit(cache=True)
def age_candidates(pop, t, tau, ncand, ws, touched, nt, weight):
    """weight × exp(-age / tau) for the `ncand` most recently first-seen items."""
    n = pop.cnt[0]
    lo = max(0, n - ncand)
    for a in range(n - 1, lo - 1, -1):
        j = pop.seen_order[a]
        age = t - pop.first_seen[j]
        if age < 0.0:
            age = 0.0
        _v = weight * math.exp(-age / tau)
        if _v > 0.0:
            _j = j
            if ws[_j] == 0.0:
                touched[nt] = _j
                nt += 1
            ws[_j] += _v
    return nt


# ================================================================================================
# Session kNN family: V-SKNN, STAN, VSTAN
# ================================================================================================

@njit(cache=True)
def _prefix_weight(mode, p, L, lam):
    if mode == PW_DIV:
        return p / L
    if mode == PW_QUADRATIC:
        return (p / L) ** 2
    if mode == PW_LINEAR:
        w = 1.0 - 0.1 * (L - p)
        return w if w > 0.0 else 0.0
    if mode == PW_LOG:
        return 1.0 / math.log10((L - p) + 1.7)
    if mode == PW_EXP:
        return math.exp((p - L) / lam)
    return 1.0


@njit(cache=True)
def _score_decay(mode, step, L, last_pos, lam):
    if mode == SD_DIV:
        return 1.0 / step
    if mode == SD_QUADRATIC:
        return 1.0 / (step * step)
    if mode == SD_LINEAR:
        w = 1.0 - 0.1 * step
        return w if w > 0.0 else 0.0
    if mode == SD_LOG:
        return 1.0 / math.log10(step + 1.7)
    if mode == SD_EXP:
        return math.exp((last_pos - L) / lam)
    return 1.0


@njit(cache=True)
def _select_smallest(ids, keys, n, m):
    """The m entries of ids[:n] with the smallest keys; ties at the cut taken in list order."""
    thr = np.partition(keys[:n].copy(), m - 1)[m - 1]
    out = np.empty(m, dtype=np.int32)
    ns = 0
    for a in range(n):
        if keys[a] < thr:
            out[ns] = ids[a]
            ns += 1
    for a in range(n):
        if ns >= m:
            break
        if keys[a] == thr:
            out[ns] = ids[a]
            ns += 1
    return out


@njit(cache=True)
def knn_score(ss, kp, work, prefix, npre, t, self_sess, ws, touched):
    """Session-kNN scores (V-SKNN / STAN / VSTAN, chosen by the parameters `kp`).

    1. candidate sessions: for each prefix item, its `sample` newest sessions; of their union the
       `sample` with the latest click time;
    2. similarity: sum of prefix weights of the shared items, divided by the prefix length ("vec",
       V-SKNN) or cosine-normalised (STAN); times exp(-(t - session time) / lambda_snh) if set;
    3. the k most similar sessions vote for their items with the similarity, times a decay by how far
       back in the prefix the most recent shared item is (V-SKNN's weighting_score, VSTAN's
       lambda_ipw), times exp(-|pos - pos*| / lambda_inh) (STAN: pos* = position in the neighbour of
       its last shared item), times 1 + idf × lambda_idf.
    """
    k = int(kp[K_K])
    sample = int(kp[K_SAMPLE])
    pmode = int(kp[K_PREFIX])
    lam_spw = kp[K_SPW]
    cosine = kp[K_SIM] == 1.0
    lam_snh = kp[K_SNH]
    lam_inh = kp[K_INH]
    smode = int(kp[K_SCORE])
    lam_ipw = kp[K_IPW]
    lam_idf = kp[K_IDF]
    L = npre
    nknown = 0
    sumsq = 0.0
    for p in range(L):
        it = prefix[p]
        if it < 0:
            continue
        if work.ppos[it] == 0:
            nknown += 1
        work.pw[it] = _prefix_weight(pmode, p + 1.0, float(L), lam_spw)
        work.ppos[it] = p + 1
    if nknown == 0:
        return 0
    for p in range(L):
        it = prefix[p]
        if it >= 0 and work.ppos[it] == p + 1:
            sumsq += work.pw[it] * work.pw[it]
    # 1. candidates
    work.qn[0] += 1
    q = np.int32(work.qn[0] & 0x7FFFFFFF)
    if q == 0:
        work.stamp[:] = 0
        work.qn[0] = 1
        q = 1
    cand = np.empty(sample * nknown, dtype=np.int32)
    nc = 0
    for p in range(L - 1, -1, -1):
        it = prefix[p]
        if it < 0 or work.ppos[it] != p + 1:
            continue
        c = ss.item_head[it]
        walked = 0
        while c >= 0 and walked < sample:
            s = ss.c_sess[c]
            if s != self_sess and work.stamp[s] != q:
                work.stamp[s] = q
                cand[nc] = s
                nc += 1
            walked += 1
            c = ss.c_prev_item[c]
    if nc > sample:
        times = np.empty(nc)
        for a in range(nc):
            times[a] = -ss.sess_time[cand[a]]
        cand = _select_smallest(cand, times, nc, sample)
        nc = sample
    # 2. similarity, in one walk over each candidate's clicks; the items are buffered for step 3
    sess_len = ss.sess_len
    sess_head = ss.sess_head
    sess_time = ss.sess_time
    c_item = ss.c_item
    c_next = ss.c_next
    pw = work.pw
    ppos = work.ppos
    total = 0
    for a in range(nc):
        total += sess_len[cand[a]]
    buf = np.empty(total, dtype=np.int32)
    off = np.empty(nc + 1, dtype=np.int64)
    pstar = np.empty(nc, dtype=np.int32)
    lastp = np.empty(nc, dtype=np.int32)
    sims = np.empty(nc)
    norm = math.sqrt(sumsq)
    o = 0
    for a in range(nc):
        s = cand[a]
        off[a] = o
        dot = 0.0
        pos_star = 0
        last_pos = 0
        qpos = 1
        c = sess_head[s]
        while c >= 0:
            j = c_item[c]
            buf[o] = j
            o += 1
            pp = ppos[j]
            if pp > 0:
                dot += pw[j]
                pos_star = qpos
                if pp > last_pos:
                    last_pos = pp
            qpos += 1
            c = c_next[c]
        pstar[a] = pos_star
        lastp[a] = last_pos
        if cosine:
            sim = dot / (norm * math.sqrt(max(sess_len[s], 1)))
        else:
            sim = dot / L
        if lam_snh > 0.0:
            sim *= math.exp(-(t - sess_time[s]) / lam_snh)
        sims[a] = sim
    off[nc] = o
    # 3. the k most similar vote
    order = np.arange(nc).astype(np.int32)
    if k < nc:
        order = _select_smallest(order, -sims, nc, k)
    inh_tab = np.empty(64)
    if lam_inh > 0.0:
        for d in range(64):
            inh_tab[d] = math.exp(-d / lam_inh)
    nt = 0
    n_sess = max(ss.cnt[1], 1)
    item_nsess = ss.item_nsess
    for b in range(order.shape[0]):
        a = order[b]
        sim = sims[a]
        if sim <= 0.0:
            continue
        base = sim * _score_decay(smode, float(L - lastp[a] + 1), float(L), float(lastp[a]), lam_ipw)
        if base <= 0.0:
            continue
        pos_star = pstar[a]
        for o in range(off[a], off[a + 1]):
            j = buf[o]
            v = base
            if lam_inh > 0.0:
                d = o - off[a] + 1 - pos_star
                if d < 0:
                    d = -d
                v *= inh_tab[d] if d < 64 else math.exp(-d / lam_inh)
            if lam_idf > 0.0:
                v *= 1.0 + math.log(n_sess / max(item_nsess[j], 1)) * lam_idf
            if v > 0.0:
                if ws[j] == 0.0:
                    touched[nt] = j
                    nt += 1
                ws[j] += v
    for p in range(L):
        it = prefix[p]
        if it >= 0:
            work.pw[it] = 0.0
            work.ppos[it] = 0
    return nt


# ================================================================================================
# Hybrid: weighted sum of max-normalised member scores
# ================================================================================================

@njit(cache=True)
def hybrid_score(h, prefix, npre, t, ctx, self_sess):
    """Σ_m w_m × score_m(i) / max_j score_m(j) over the union of the members' candidates.

    Members: session kNN, pair rules (co-occurrence or sequential rules), decayed popularity,
    context popularity and the article-age prior exp(-age / tau_age). kNN and pair scores are exact
    for every item they touch; popularity, context and age are computed exactly for every candidate
    of the union (their own candidates: the popularity top list, the context top lists and the
    newest first-seen articles).
    """
    hp = h.hp
    ws = h.ws
    touched = h.touched
    excl = h.excl
    nt = 0
    # members are normalised by their best score among recommendable items (not the prefix's own)
    for p in range(npre):
        if prefix[p] >= 0:
            excl[prefix[p]] = 1
    if hp[H_KNN] > 0.0:
        n1 = knn_score(h.ss, h.knn_p, h.knn_work, prefix, npre, t, self_sess, h.knn_ws, h.knn_touched)
        nt = _add_max_normalised(ws, touched, nt, h.knn_ws, h.knn_touched, n1, excl, hp[H_KNN])
    if hp[H_PAIR] > 0.0:
        n2 = pairs_score(h.pairs, h.ss, h.pair_p, prefix, npre, h.pair_ws, h.pair_touched)
        nt = _add_max_normalised(ws, touched, nt, h.pair_ws, h.pair_touched, n2, excl, hp[H_PAIR])
    for p in range(npre):
        if prefix[p] >= 0:
            excl[prefix[p]] = 0
    pop = h.pop
    if pop.cnt[0] == 0:
        return nt
    w_pop = hp[H_POP]
    w_ctx = hp[H_CTX]
    w_age = hp[H_AGE]
    if w_pop > 0.0:
        for a in range(min(int(hp[H_POP_CAND]), pop.cnt[2])):
            _v = 1e-300
            if _v > 0.0:
                _j = pop.top_items[a]
                if ws[_j] == 0.0:
                    touched[nt] = _j
                    nt += 1
                ws[_j] += _v
    if w_age > 0.0:
        lo = max(0, pop.cnt[0] - int(hp[H_AGE_CAND]))
        for a in range(pop.cnt[0] - 1, lo - 1, -1):
            _v = 1e-300
            if _v > 0.0:
                _j = pop.seen_order[a]
                if ws[_j] == 0.0:
                    touched[nt] = _j
                    nt += 1
                ws[_j] += _v
    if w_ctx > 0.0:
        nt = ctx_candidates(pop, h.ctx, ctx, ws, touched, nt)
        vals = np.empty(nt)
        cmax = ctx_values(pop, h.ctx, ctx, ctx_smoothing(h.ctx, t), touched, nt, vals)
        if cmax > 0.0:
            wc = w_ctx / cmax
            for a in range(nt):
                ws[touched[a]] += wc * vals[a]
    vmax = pop.top_vals[0] if pop.cnt[2] > 0 else 0.0
    tau = hp[H_TAU_AGE]
    for a in range(nt):
        j = touched[a]
        extra = 0.0
        if w_pop > 0.0 and vmax > 0.0:
            extra += w_pop * pop.val[j] / vmax
        if w_age > 0.0:
            age = t - pop.first_seen[j]
            if age < 30.0 * tau:  # exp(-30) is below any weight that matters; skips most old articles
                extra += w_age * math.exp(-(age if age > 0.0 else 0.0) / tau)
        ws[j] += extra
    return nt


# ================================================================================================
# Exploration: Beta-Bernoulli Thompson sampling over fresh articles
# ================================================================================================

class ExploreModel(NamedTuple):
    base: tuple  # any model state
    pop: PopState
    xp: np.ndarray  # float64[X_PARAMS]
    cand: np.ndarray  # int32[max candidates] workspace
    alpha: np.ndarray  # float64[max candidates] workspace
    beta: np.ndarray  # float64[max candidates] workspace


X_SLOT, X_FRESH, X_A0, X_B0, X_RHO, X_DRAWS, X_MAXC, X_SEED, X_EXT, X_SHARE = range(10)
X_PARAMS = 10


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_TO_UNIT = 1.0 / 9007199254740992.0  # 2**-53


@njit(cache=True)
def _uniform(state):
    """splitmix64: (next state, uniform in (0, 1))."""
    state = state + _GOLDEN
    z = _mix(np.int64(state))
    return state, (np.float64(z >> np.uint64(11)) + 0.5) * _TO_UNIT


@njit(cache=True)
def _gamma(state, a):
    """Gamma(a, 1) by Marsaglia & Tsang (a < 1 through Gamma(a + 1) × U^(1/a))."""
    boost = 1.0
    if a < 1.0:
        state, u = _uniform(state)
        boost = u ** (1.0 / a)
        a += 1.0
    d = a - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    while True:
        state, u1 = _uniform(state)
        state, u2 = _uniform(state)
        x = math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)
        v = 1.0 + c * x
        if v <= 0.0:
            continue
        v = v * v * v
        state, u = _uniform(state)
        if u < 1.0 - 0.0331 * x * x * x * x or math.log(u) < 0.5 * x * x + d * (1.0 - v + math.log(v)):
            return state, d * v * boost


@njit(cache=True)
def _beta(state, a, b):
    state, x = _gamma(state, a)
    state, y = _gamma(state, b)
    return state, x / (x + y)


@njit(cache=True)
def thompson_choose(alpha, beta, m, seed, draws):
    """Thompson sampling among m Beta(alpha, beta) arms: (chosen arm, propensity).

    The choice is the arg-max of one draw per arm. Its propensity P(arm wins) is estimated by
    `draws` further independent rounds: (wins + 1) / (draws + 1), counting the round that chose it
    (never 0, so inverse-propensity weights stay finite). Counter-based random numbers (splitmix64)
    seeded by `seed`: the same request gives the same choice and propensity.
    """
    state = np.uint64(seed)
    best = 0
    bv = -1.0
    for a in range(m):
        state, x = _beta(state, alpha[a], beta[a])
        if x > bv:
            bv = x
            best = a
    wins = 0
    for _ in range(draws):
        rb = 0
        rv = -1.0
        for a in range(m):
            state, x = _beta(state, alpha[a], beta[a])
            if x > rv:
                rv = x
                rb = a
        if rb == best:
            wins += 1
    return best, (wins + 1.0) / (draws + 1.0)


@njit(cache=True)
def _request_seed(seed, t, prefix, npre):
    h = np.uint64(np.int64(seed)) ^ np.uint64(np.int64(t * 1000.0))
    h = _mix(np.int64(h))
    for p in range(npre):
        h = _mix(np.int64(h ^ np.uint64(prefix[p] + 1)))
    return np.int64(h & np.uint64(0x7FFFFFFF))


@njit(cache=True)
def _explore_candidate(x, j, t, prefix, npre, excl, excl_prefix, out_items, upto, m):
    """Append fresh article j to the explorer's candidates unless excluded, already listed or placed above the slot."""
    pop = x.pop
    if j < 0 or t - pop.first_seen[j] >= x.xp[X_FRESH]:
        return m
    if excl_prefix:
        for p in range(npre):
            if prefix[p] == j:
                return m
    for e in range(excl.shape[0]):
        if excl[e] == j:
            return m
    for r in range(upto):
        if out_items[r] == j:
            return m
    for c in range(m):
        if x.cand[c] == j:
            return m
    clicks = float(pop.clicks[j])
    traffic = float(pop.cnt[1] - pop.traffic0[j])
    x.cand[m] = j
    x.alpha[m] = x.xp[X_A0] + clicks
    x.beta[m] = x.xp[X_B0] + max(x.xp[X_RHO] * traffic - clicks, 0.0)
    return m + 1


@njit(cache=True)
def explore_place(x, prefix, npre, t, excl, excl_prefix, k, out_items, out_scores, n, logrow, ranked, n_ranked):
    """Put one Thompson-sampled fresh article (first seen < fresh seconds ago) at slot `slot`, in a
    share `explore_share` of the requests that have candidates (the logged propensity includes it).

    Candidates: the fresh articles the base model ranks below the slot (`ranked[slot:n_ranked]`, its
    extended list, best first), then the most recently first-seen fresh articles, up to max_candidates.
    """
    xp = x.xp
    pop = x.pop
    slot = min(int(xp[X_SLOT]), k - 1)
    maxc = min(int(xp[X_MAXC]), x.cand.shape[0])
    upto = min(slot, n)
    m = 0
    for r in range(upto, n_ranked):
        if m >= maxc:
            break
        m = _explore_candidate(x, ranked[r], t, prefix, npre, excl, excl_prefix, out_items, upto, m)
    walked = 0
    a = pop.cnt[0] - 1
    while a >= 0 and m < maxc and walked < 4 * maxc:
        m = _explore_candidate(x, pop.seen_order[a], t, prefix, npre, excl, excl_prefix, out_items, upto, m)
        a -= 1
        walked += 1
    if m == 0:
        return n
    seed = _request_seed(xp[X_SEED], t, prefix, npre)
    share = xp[X_SHARE]
    if share < 1.0:
        # the request gets the slot with probability `share` (its own stream: independent of the choice)
        _, u = _uniform(np.uint64(seed) ^ np.uint64(0x5DEECE66D))
        if u >= share:
            return n
    c, prop = thompson_choose(x.alpha, x.beta, m, seed, int(xp[X_DRAWS]))
    prop *= min(share, 1.0)
    j = x.cand[c]
    at = min(slot, n)
    logrow[0] = j
    logrow[1] = prop
    logrow[2] = m
    logrow[3] = at
    where = -1
    for r in range(n):
        if out_items[r] == j:
            where = r
    if where >= 0:
        sc = out_scores[at]
        for r in range(where, at, -1):
            out_items[r] = out_items[r - 1]
            out_scores[r] = out_scores[r - 1]
        out_items[at] = j
        out_scores[at] = sc
        return n
    sc = out_scores[at] if at < n else 0.0
    last = n if n < k else k - 1
    for r in range(last, at, -1):
        out_items[r] = out_items[r - 1]
        out_scores[r] = out_scores[r - 1]
    out_items[at] = j
    out_scores[at] = sc
    return n + 1 if n < k else k


# ================================================================================================
# Top-k and the dispatched entry points
# ================================================================================================

@njit(cache=True)
def _topk(ws, touched, nt, excl, k, out_items, out_scores):
    """Best k touched items by (score desc, index asc), skipping excluded ones and scores <= 0."""
    n = 0
    for a in range(nt):
        j = touched[a]
        v = ws[j]
        if excl[j] != 0 or not (v > 0.0):
            continue
        if n == k:
            lv = out_scores[k - 1]
            if v < lv or (v == lv and j > out_items[k - 1]):
                continue
            r = k - 1
        else:
            r = n
            n += 1
        while r > 0 and (out_scores[r - 1] < v or (out_scores[r - 1] == v and out_items[r - 1] > j)):
            out_items[r] = out_items[r - 1]
            out_scores[r] = out_scores[r - 1]
            r -= 1
        out_items[r] = j
        out_scores[r] = v
    return n


def absorb(st, s, i, t, ctx):  # pragma: no cover - numba-only entry point
    raise NotImplementedError("absorb is only callable from numba code")


def score(st, prefix, npre, t, ctx, self_sess, need):  # pragma: no cover - numba-only entry point
    raise NotImplementedError("score is only callable from numba code")


def recommend(st, prefix, npre, t, ctx, self_sess, k, excl, excl_prefix, out_items, out_scores,
              logrow):  # pragma: no cover - numba-only entry point
    raise NotImplementedError("recommend is only callable from numba code")


# --- absorb ---------------------------------------------------------------------------------------

def _absorb_pop(st, s, i, t, ctx):
    pop_absorb(st.pop, i, t)
    return 0


def _absorb_win(st, s, i, t, ctx):
    code = win_room(st.win, t)
    if code != 0:
        return code
    win_absorb(st.win, i, t)
    return 0


def _absorb_ctx(st, s, i, t, ctx):
    pop_absorb(st.pop, i, t)
    ctx_absorb(st.ctx, i, t, ctx)
    return 0


def _absorb_pairs(st, s, i, t, ctx):
    pos = ss_position(st.ss, s, i)
    if pos > 0 and not pairs_room(st.pairs, pos):
        return FULL_PAIRS
    if pos >= 0:
        pairs_absorb(st.pairs, st.ss, s, i, t, pos)
    ss_add(st.ss, s, i, t, pos)
    return 0


def _absorb_knn(st, s, i, t, ctx):
    pos = ss_position(st.ss, s, i)
    ss_add(st.ss, s, i, t, pos)
    return 0


def _absorb_hybrid(st, s, i, t, ctx):
    pos = ss_position(st.ss, s, i)
    use_pairs = st.hp[H_PAIR] > 0.0
    if use_pairs and pos > 0 and not pairs_room(st.pairs, pos):
        return FULL_PAIRS
    if use_pairs and pos >= 0:
        pairs_absorb(st.pairs, st.ss, s, i, t, pos)
    ss_add(st.ss, s, i, t, pos)
    pop_absorb(st.pop, i, t)
    if st.hp[H_CTX] > 0.0:
        ctx_absorb(st.ctx, i, t, ctx)
    return 0


def _absorb_explore(st, s, i, t, ctx):
    code = absorb(st.base, s, i, t, ctx)
    if code != 0:
        return code
    pop_absorb(st.pop, i, t)
    return 0


_ABSORB = {PopModel: _absorb_pop, WinModel: _absorb_win, CtxModel: _absorb_ctx, AgeModel: _absorb_pop,
           PairModel: _absorb_pairs, KnnModel: _absorb_knn, HybridModel: _absorb_hybrid,
           ExploreModel: _absorb_explore}


@overload(absorb, jit_options={"cache": True})
def _absorb_overload(st, s, i, t, ctx):
    return _ABSORB.get(getattr(st, "instance_class", None))


# --- score ----------------------------------------------------------------------------------------

def _score_pop(st, prefix, npre, t, ctx, self_sess, need):
    return pop_candidates(st.pop, need, st.ws, st.touched, 0, 1.0)


def _score_win(st, prefix, npre, t, ctx, self_sess, need):
    return win_score(st.win, t, st.ws, st.touched)


def _score_ctx(st, prefix, npre, t, ctx, self_sess, need):
    nt = ctx_candidates(st.pop, st.ctx, ctx, st.ws, st.touched, 0)
    vals = np.empty(nt)
    ctx_values(st.pop, st.ctx, ctx, ctx_smoothing(st.ctx, t), st.touched, nt, vals)
    for a in range(nt):
        st.ws[st.touched[a]] = vals[a] if vals[a] > 0.0 else 1e-300
    return nt


def _score_age(st, prefix, npre, t, ctx, self_sess, need):
    return age_candidates(st.pop, t, st.p[0], max(int(st.p[1]), need), st.ws, st.touched, 0, 1.0)


def _score_pairs(st, prefix, npre, t, ctx, self_sess, need):
    return pairs_score(st.pairs, st.ss, st.p, prefix, npre, st.ws, st.touched)


def _score_knn(st, prefix, npre, t, ctx, self_sess, need):
    return knn_score(st.ss, st.p, st.work, prefix, npre, t, self_sess, st.ws, st.touched)


def _score_hybrid(st, prefix, npre, t, ctx, self_sess, need):
    return hybrid_score(st, prefix, npre, t, ctx, self_sess)


_SCORE = {PopModel: _score_pop, WinModel: _score_win, CtxModel: _score_ctx, AgeModel: _score_age,
          PairModel: _score_pairs, KnnModel: _score_knn, HybridModel: _score_hybrid}


@overload(score, jit_options={"cache": True})
def _score_overload(st, prefix, npre, t, ctx, self_sess, need):
    return _SCORE.get(getattr(st, "instance_class", None))


# --- recommend ------------------------------------------------------------------------------------

def _recommend_scored(st, prefix, npre, t, ctx, self_sess, k, excl, excl_prefix, out_items, out_scores, logrow):
    logrow[0] = -1.0
    need = k + excl.shape[0] + (npre if excl_prefix else 0)
    nt = score(st, prefix, npre, t, ctx, self_sess, need)
    if excl_prefix:
        for p in range(npre):
            if prefix[p] >= 0:
                st.excl[prefix[p]] = 1
    for e in range(excl.shape[0]):
        if excl[e] >= 0:
            st.excl[excl[e]] = 1
    n = _topk(st.ws, st.touched, nt, st.excl, k, out_items, out_scores)
    _ws_clear(st.ws, st.touched, nt)
    if excl_prefix:
        for p in range(npre):
            if prefix[p] >= 0:
                st.excl[prefix[p]] = 0
    for e in range(excl.shape[0]):
        if excl[e] >= 0:
            st.excl[excl[e]] = 0
    return n


def _recommend_explore(st, prefix, npre, t, ctx, self_sess, k, excl, excl_prefix, out_items, out_scores, logrow):
    ext = k + int(st.xp[X_EXT])
    ranked = np.empty(ext, dtype=np.int32)
    ranked_scores = np.empty(ext)
    n_ranked = recommend(st.base, prefix, npre, t, ctx, self_sess, ext, excl, excl_prefix, ranked, ranked_scores,
                         logrow)
    n = min(k, n_ranked)
    out_items[:n] = ranked[:n]
    out_scores[:n] = ranked_scores[:n]
    logrow[0] = -1.0
    return explore_place(st, prefix, npre, t, excl, excl_prefix, k, out_items, out_scores, n, logrow, ranked,
                         n_ranked)


@overload(recommend, jit_options={"cache": True})
def _recommend_overload(st, prefix, npre, t, ctx, self_sess, k, excl, excl_prefix, out_items, out_scores, logrow):
    cls = getattr(st, "instance_class", None)
    if cls is ExploreModel:
        return _recommend_explore
    if cls in _SCORE:
        return _recommend_scored
    return None


# ================================================================================================
# Drivers (compiled once per model state type)
# ================================================================================================

@njit(cache=True)
def absorb_many(st, sess, items, times, ctx, start):
    """Absorb clicks start.. in order; returns (next click to absorb, 0) or (stopping click, full code)."""
    for n in range(start, sess.shape[0]):
        code = absorb(st, sess[n], items[n], times[n], ctx[n])
        if code != 0:
            return n, code
    return sess.shape[0], 0


@njit(cache=True)
def recommend_one(st, prefix, t, ctx, self_sess, k, excl, excl_prefix, out_items, out_scores, logrow):
    return recommend(st, prefix, prefix.shape[0], t, ctx, self_sess, k, excl, excl_prefix, out_items, out_scores,
                     logrow)


@njit(cache=True)
def _evaluate_query(st, prefix, npre, t, ctx, self_sess, target, k, excl, out_items, out_scores, logrow,
                    dpop, n_sess):
    n = recommend(st, prefix, npre, t, ctx, self_sess, k, excl, True, out_items, out_scores, logrow)
    rank = -1
    for r in range(n):
        if out_items[r] == target and target >= 0:
            rank = r
            break
    nov = np.nan
    if n > 0:
        tot = 0.0
        denom = max(n_sess, 1)
        for r in range(n):
            pc = dpop[out_items[r]] if out_items[r] < dpop.shape[0] else 0
            tot += -math.log2(max(pc, 1) / denom) if max(pc, 1) <= denom else 0.0
        nov = tot / n
    return n, rank, nov


@njit(cache=True)
def evaluate_sessions(st, sessions, s_off, c_item, c_time, c_ctx, last_only, k, out_rank, out_nov, out_log,
                      dpop, n_sess, rec_flag):
    """Score every prefix (or only the last) of the given sessions against a fixed model state.

    Sessions are rows of a CSR (`s_off` into the click arrays, clicks in session order). The
    request time of a prefix is the time of its last click, its context that click's context.
    Results are written at the index of the target click: rank in the top k (-1: miss), novelty
    of the list, and the explorer's log row (item, propensity, candidates, slot; item -1: no choice).
    Items of the last-click lists are flagged in `rec_flag` (catalogue coverage).
    """
    out_items = np.empty(k, dtype=np.int32)
    out_scores = np.empty(k)
    logrow = np.empty(4)
    excl = np.empty(0, dtype=np.int32)
    for q in range(sessions.shape[0]):
        g = sessions[q]
        a = s_off[g]
        b = s_off[g + 1]
        first = b - 1 if last_only else a + 1
        for c in range(first, b):
            n, rank, nov = _evaluate_query(st, c_item[a:c], c - a, c_time[c - 1], c_ctx[c - 1], -1, c_item[c], k,
                                           excl, out_items, out_scores, logrow, dpop, n_sess)
            out_rank[c] = rank
            out_nov[c] = nov
            for f in range(4):
                out_log[c, f] = logrow[f]
            if c == b - 1:
                for r in range(n):
                    rec_flag[out_items[r]] = 1


@njit(cache=True)
def replay_live(st, start, c_sess, c_item, c_time, c_ctx, c_pos, c_query, c_row, s_off, s_item, s_time, s_ctx, k,
                out_rank, out_nov, out_log, dpop, dcnt, rec_flag, c_last):
    """Strict time-order replay: for each click (already sorted by time), score it first when it is
    a query (its prefix: the session's earlier clicks, all absorbed), then absorb it.

    `c_row[n]` is the click's session row in the session-major CSR (`s_off`, `s_item`, `s_time`,
    `s_ctx`: the request time and context of a prefix are those of its last click); `c_pos[n]` is
    the click's position in its session. Returns (next click, 0) or (stopping click, full code);
    a resumed call re-scores the stopping click against the same state, so results are unchanged.
    """
    out_items = np.empty(k, dtype=np.int32)
    out_scores = np.empty(k)
    logrow = np.empty(4)
    excl = np.empty(0, dtype=np.int32)
    for n in range(start, c_sess.shape[0]):
        if c_query[n]:
            a = s_off[c_row[n]]
            p = c_pos[n]
            cnt, rank, nov = _evaluate_query(st, s_item[a:a + p], p, s_time[a + p - 1], s_ctx[a + p - 1], c_sess[n],
                                             c_item[n], k, excl, out_items, out_scores, logrow, dpop, dcnt[0])
            out_rank[n] = rank
            out_nov[n] = nov
            for f in range(4):
                out_log[n, f] = logrow[f]
            if c_last[n]:
                for r in range(cnt):
                    rec_flag[out_items[r]] = 1
        code = absorb(st, c_sess[n], c_item[n], c_time[n], c_ctx[n])
        if code != 0:
            return n, code
        if c_pos[n] == 0:
            dcnt[0] += 1
        dpop[c_item[n]] += 1
    return c_sess.shape[0], 0


@njit(cache=True)
def pairs_rebuild(keys, slots, e_dst, e_next, row_head):
    """Refill an empty pair hash table from the row lists (after loading or growing)."""
    for src in range(row_head.shape[0]):
        e = row_head[src]
        while e >= 0:
            key = (np.int64(src) << 32) | np.int64(e_dst[e])
            h = np.int64(_mix(key) & np.uint64(keys.shape[0] - 1))
            while slots[h] != EMPTY and keys[h] != key:
                h = (h + 1) & (keys.shape[0] - 1)
            keys[h] = key
            slots[h] = e
            e = e_next[e]
