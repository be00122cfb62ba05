"""Compiled inner loops (numba), each behind a Python façade and tested against a slow reference.

`cache=True` keeps the first-call JIT cost to the first run on a machine.
"""

from __future__ import annotations

import numba


@numba.njit(cache=True, nogil=True)
def sgd_biases(users, items, ratings, mu, bu, bi, lr, reg):  # pragma: no cover - compiled
    """One SGD epoch over biases only, in the given order (Surprise's BaselineOnly 'sgd')."""
    for j in range(len(ratings)):
        u = users[j]
        i = items[j]
        err = ratings[j] - (mu + bu[u] + bi[i])
        bu[u] += lr * (err - reg * bu[u])
        bi[i] += lr * (err - reg * bi[i])


@numba.njit(cache=True, nogil=True)
def sgd_mf_epoch(users, items, ratings, order, mu, bu, bi, P, Q, lr, reg):  # pragma: no cover - compiled
    """One SGD epoch of biased matrix factorisation over rows `order` (Funk/Koren, Surprise's SVD).

    For each rating: err = r - (mu + bu[u] + bi[i] + q_i·p_u), then the biases and both factor
    vectors take a step of size `lr` along their L2-regularised (`reg`) gradient, each factor
    vector using the other's pre-step value.
    Updates `bu`, `bi`, `P`, `Q` in place; returns the sum of squared errors seen before each step.
    """
    n_factors = P.shape[1]
    sse = 0.0
    for j in order:
        u = users[j]
        i = items[j]
        dot = 0.0
        for f in range(n_factors):
            dot += Q[i, f] * P[u, f]
        err = ratings[j] - (mu + bu[u] + bi[i] + dot)
        sse += err * err
        bu[u] += lr * (err - reg * bu[u])
        bi[i] += lr * (err - reg * bi[i])
        for f in range(n_factors):
            puf = P[u, f]
            qif = Q[i, f]
            P[u, f] += lr * (err * qif - reg * puf)
            Q[i, f] += lr * (err * puf - reg * qif)
    return sse
