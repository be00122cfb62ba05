"""Compiled inner loops (numba), each behind a Python façade and tested against a slow reference.

`cache=True` keeps the first-call JIT cost to the first run on a machine.
"""

from __future__ import annotations

import math

import numba
import numpy as np


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


# --- Surprise-family rating models (svdpp, time_svdpp, nmf, co_clustering) ----------------------

# The lazy per-run implicit (y) update of SVD++, shared by `sgd_svdpp_epoch` and `sgd_timesvdpp_epoch`:
# for a run of consecutive rows of one user, `_implicit_open` computes z0 = z_u and clears G, each row
# reads z_u with `_implicit_dot` and folds its y step into G with `_factor_step`, and `_implicit_close`
# writes every y_j of N(u) once. inline="always" makes numba paste them into the kernels: as fast as the
# loops written out (plain calls measured ~15% slower on SVD++) and bit-identical to them.

@numba.njit(cache=True, nogil=True, inline="always")
def _user_run_end(users, order, k):  # pragma: no cover - compiled
    """End (exclusive) of the run of consecutive rows of `order`, from position k, that belong to one user."""
    n = len(order)
    u = users[order[k]]
    e = k + 1
    while e < n and users[order[e]] == u:
        e += 1
    return e


@numba.njit(cache=True, nogil=True, inline="always")
def _implicit_open(nu_indptr, nu_indices, u, Y, z0, G):  # pragma: no cover - compiled
    """z0 = |N(u)|^-½ Σ_{j∈N(u)} y_j and G = 0 at the start of u's run; returns (|N(u)|^½, |N(u)|^-½)."""
    n_factors = Y.shape[1]
    start, stop = nu_indptr[u], nu_indptr[u + 1]
    sq = (stop - start) ** 0.5
    c = 1.0 / sq
    z0[:] = 0.0
    for jj in range(start, stop):
        j = nu_indices[jj]
        for f in range(n_factors):
            z0[f] += Y[j, f]
    for f in range(n_factors):
        z0[f] *= c
        G[f] = 0.0
    return sq, c


@numba.njit(cache=True, nogil=True, inline="always")
def _implicit_dot(P, Q, u, i, z0, G, z, scale, sq):  # pragma: no cover - compiled
    """z = z_u as of now (scale·z0 + |N(u)|^½·G); returns q_i·(p_u + z_u)."""
    dot = 0.0
    for f in range(P.shape[1]):
        z[f] = scale * z0[f] + sq * G[f]
        dot += Q[i, f] * (P[u, f] + z[f])
    return dot


@numba.njit(cache=True, nogil=True, inline="always")
def _factor_step(P, Q, u, i, err, z, G, a, c, lr, reg, lr_y):  # pragma: no cover - compiled
    """Step p_u and q_i (q_i along err·(p_u + z_u)), each from the other's pre-step value, and compose this
    rating's y step (y ← a·y + lr_y·err·c·q_i) into G."""
    for f in range(P.shape[1]):
        puf = P[u, f]
        qif = Q[i, f]
        P[u, f] += lr * (err * qif - reg * puf)
        Q[i, f] += lr * (err * (puf + z[f]) - reg * qif)
        G[f] = a * G[f] + lr_y * err * c * qif


@numba.njit(cache=True, nogil=True, inline="always")
def _implicit_close(nu_indptr, nu_indices, u, Y, scale, G):  # pragma: no cover - compiled
    """y_j ← scale·y_j + G for every j ∈ N(u) at the end of u's run."""
    for jj in range(nu_indptr[u], nu_indptr[u + 1]):
        j = nu_indices[jj]
        for f in range(Y.shape[1]):
            Y[j, f] = scale * Y[j, f] + G[f]


@numba.njit(cache=True, nogil=True)
def sgd_svdpp_epoch(users, items, ratings, order, nu_indptr, nu_indices, mu, bu, bi, P, Q, Y,
                    lr_bias, lr, lr_y, reg_bias, reg, reg_y, work):  # pragma: no cover - compiled
    """One SGD epoch of SVD++ (Koren 2008; Surprise's SVDpp update) over rows `order`.

    r̂ = mu + bu[u] + bi[i] + q_i·(p_u + z_u), z_u = |N(u)|^-½ Σ_{j∈N(u)} y_j, N(u) = the items
    of CSR row u of (`nu_indptr`, `nu_indices`). Each rating steps bu, bi, p_u, q_i (q_i along
    err·(p_u + z_u)) and every y_j of N(u) by lr_y·(err·|N(u)|^-½·q_i − reg_y·y_j), with q_i and
    p_u taken before their own step — exactly Surprise's per-rating update. The y step is the same
    affine map y ← a·y + g for every j ∈ N(u) (a = 1 − lr_y·reg_y), so within a run of consecutive
    rows of one user the kernel keeps the composed map (scale a^m, offset G) and z_u in O(k) per
    rating and writes the y_j once when the run ends: O(k) per rating plus O(|N(u)|·k) per run
    instead of O(|N(u)|·k) per rating. The result equals the per-rating update (up to rounding)
    for any order; orders grouping each user's rows into one run are the fast ones.
    `work` is scratch space of shape (3, n_factors). Updates bu, bi, P, Q, Y in place; returns the
    sum of squared errors seen before each step.
    """
    z0 = work[0]
    z = work[1]
    G = work[2]
    a = 1.0 - lr_y * reg_y
    sse = 0.0
    k = 0
    while k < len(order):
        u = users[order[k]]
        e = _user_run_end(users, order, k)
        sq, c = _implicit_open(nu_indptr, nu_indices, u, Y, z0, G)
        scale = 1.0
        for t in range(k, e):
            row = order[t]
            i = items[row]
            dot = _implicit_dot(P, Q, u, i, z0, G, z, scale, sq)
            err = ratings[row] - (mu + bu[u] + bi[i] + dot)
            sse += err * err
            bu[u] += lr_bias * (err - reg_bias * bu[u])
            bi[i] += lr_bias * (err - reg_bias * bi[i])
            _factor_step(P, Q, u, i, err, z, G, a, c, lr, reg, lr_y)
            scale *= a
        _implicit_close(nu_indptr, nu_indices, u, Y, scale, G)
        k = e
    return sse


@numba.njit(cache=True, nogil=True)
def sgd_timesvdpp_epoch(users, items, ratings, order, dev, bins, days, nu_indptr, nu_indices,
                        mu, bu, bi, alpha, bi_bin, bu_day, cu, cu_day, P, Q, Y, lrs, regs, work):  # pragma: no cover
    """One SGD epoch of timeSVD++ (Koren 2009, eq. 10 with c_u(t) of eq. 8) over rows `order`.

    r̂(u, i, t) = mu + bu[u] + alpha[u]·dev(t) + bu_day[d(t)]
                 + (bi[i] + bi_bin[i, bin(t)])·(cu[u] + cu_day[d(t)]) + q_i·(p_u + z_u)

    per row: `dev` = dev_u(t), `bins` = bin(t), `days` = index of the (user, day) pair. `lrs` and
    `regs` are the step sizes and L2 weights of (biases, alpha, bin biases, day biases, scale c,
    factors p/q, implicit y); cu is pulled towards 1, everything else towards 0. Factors and the
    implicit y_j follow `sgd_svdpp_epoch` exactly (the same lazy per-run y update code); every other
    parameter takes a plain SGD step on its gradient, each from the values before this row's step.
    `work` is scratch space of shape (3, n_factors). Returns the sum of squared errors seen before each step.
    """
    lr_b, lr_a, lr_bin, lr_day, lr_c, lr, lr_y = lrs[0], lrs[1], lrs[2], lrs[3], lrs[4], lrs[5], lrs[6]
    reg_b, reg_a, reg_bin, reg_day, reg_c, reg, reg_y = regs[0], regs[1], regs[2], regs[3], regs[4], regs[5], regs[6]
    z0 = work[0]
    z = work[1]
    G = work[2]
    a = 1.0 - lr_y * reg_y
    sse = 0.0
    k = 0
    while k < len(order):
        u = users[order[k]]
        e = _user_run_end(users, order, k)
        sq, c = _implicit_open(nu_indptr, nu_indices, u, Y, z0, G)
        scale = 1.0
        for t in range(k, e):
            row = order[t]
            i = items[row]
            b = bins[row]
            d = days[row]
            dv = dev[row]
            dot = _implicit_dot(P, Q, u, i, z0, G, z, scale, sq)
            item_b = bi[i] + bi_bin[i, b]
            scl = cu[u] + cu_day[d]
            err = ratings[row] - (mu + bu[u] + alpha[u] * dv + bu_day[d] + item_b * scl + dot)
            sse += err * err
            bu[u] += lr_b * (err - reg_b * bu[u])
            alpha[u] += lr_a * (err * dv - reg_a * alpha[u])
            bu_day[d] += lr_day * (err - reg_day * bu_day[d])
            bi[i] += lr_b * (err * scl - reg_b * bi[i])
            bi_bin[i, b] += lr_bin * (err * scl - reg_bin * bi_bin[i, b])
            cu[u] += lr_c * (err * item_b - reg_c * (cu[u] - 1.0))
            cu_day[d] += lr_c * (err * item_b - reg_c * cu_day[d])
            _factor_step(P, Q, u, i, err, z, G, a, c, lr, reg, lr_y)
            scale *= a
        _implicit_close(nu_indptr, nu_indices, u, Y, scale, G)
        k = e
    return sse


@numba.njit(cache=True, nogil=True)
def nmf_accumulate(users, items, ratings, order, mu, bu, bi, P, Q, biased, lr_bias, reg_bias,
                   user_num, user_denom, item_num, item_denom):  # pragma: no cover - compiled
    """The rating pass of one epoch of NMF (Luo et al. 2014; Surprise's NMF) over rows `order`.

    For each rating: est = mu + bu[u] + bi[i] + q_i·p_u (callers pass mu = 0 and zero biases when
    not `biased`), then — when `biased` — an SGD step of bu and bi on err = r − est, and the
    multiplicative-update sums: user_num[u] += r·q_i, user_denom[u] += est·q_i,
    item_num[i] += r·p_u, item_denom[i] += est·p_u (all in place; P and Q are not changed).
    Returns the sum of squared errors.
    """
    n_factors = P.shape[1]
    sse = 0.0
    for row in order:
        u = users[row]
        i = items[row]
        r = ratings[row]
        dot = 0.0
        for f in range(n_factors):
            dot += Q[i, f] * P[u, f]
        est = mu + bu[u] + bi[i] + dot
        err = r - est
        sse += err * err
        if biased:
            bu[u] += lr_bias * (err - reg_bias * bu[u])
            bi[i] += lr_bias * (err - reg_bias * bi[i])
        for f in range(n_factors):
            user_num[u, f] += Q[i, f] * r
            user_denom[u, f] += Q[i, f] * est
            item_num[i, f] += P[u, f] * r
            item_denom[i, f] += P[u, f] * est
    return sse


# --- hybrid_mf (LightFM-style WARP / BPR over feature embeddings) -----------------------------

@numba.njit(cache=True, nogil=True)
def _feature_sum(indptr, indices, data, row, skip_below, emb, bias, use_bias, out):  # pragma: no cover - compiled
    """out = Σ_j x[row, j]·emb[j] over the row's features j ≥ skip_below; returns Σ_j x[row, j]·bias[j]
    (0 unless `use_bias`)."""
    k = emb.shape[1]
    for f in range(k):
        out[f] = 0.0
    b = 0.0
    for p in range(indptr[row], indptr[row + 1]):
        j = indices[p]
        if j < skip_below:
            continue
        w = data[p]
        if use_bias:
            b += w * bias[j]
        for f in range(k):
            out[f] += w * emb[j, f]
    return b


@numba.njit(cache=True, nogil=True)
def _feature_step(indptr, indices, data, row, skip_below, emb, bias, use_bias, acc, acc_bias, grad, grad_bias, lr,
                  alpha, adagrad):  # pragma: no cover - compiled
    """Step the embeddings (and, with `use_bias`, biases) of the row's features along
    x[row, j]·grad + alpha·param.

    Adagrad (LightFM's): the step is lr/√acc with the accumulator acc of squared gradients taken
    before adding this gradient's square; plain SGD otherwise."""
    k = emb.shape[1]
    for p in range(indptr[row], indptr[row + 1]):
        j = indices[p]
        if j < skip_below:
            continue
        w = data[p]
        for f in range(k):
            g = w * grad[f] + alpha * emb[j, f]
            if adagrad:
                emb[j, f] -= lr / math.sqrt(acc[j, f]) * g
                acc[j, f] += g * g
            else:
                emb[j, f] -= lr * g
        if not use_bias:
            continue
        g = w * grad_bias + alpha * bias[j]
        if adagrad:
            bias[j] -= lr / math.sqrt(acc_bias[j]) * g
            acc_bias[j] += g * g
        else:
            bias[j] -= lr * g


@numba.njit(cache=True, nogil=True)
def _is_positive(pos_indptr, pos_indices, user, item):  # pragma: no cover - compiled
    lo = pos_indptr[user]
    hi = pos_indptr[user + 1]
    while lo < hi:
        mid = (lo + hi) // 2
        v = pos_indices[mid]
        if v == item:
            return True
        if v < item:
            lo = mid + 1
        else:
            hi = mid
    return False


@numba.njit(cache=True, nogil=True)
def hybrid_epoch(users, items, weights, uf_indptr, uf_indices, uf_data, if_indptr, if_indices, if_data,
                 pos_indptr, pos_indices, negatives, drop_user, drop_item, n_user_identity, n_item_identity,
                 U, V, Vb, acc_U, acc_V, acc_Vb, warp, n_candidates, lr, user_alpha, item_alpha, adagrad,
                 max_loss, work):  # pragma: no cover - compiled
    """One pass of LightFM-style hybrid MF over the positive samples s = 0 … len(users)-1, in order.

    A user's vector is Σ_j x_uj·U[j] over its feature row (`uf_*` CSR, identity columns first);
    an item's vector Σ_j x_ij·V[j] and bias Σ_j x_ij·Vb[j]; score = user·item + bias. For sample s
    (user u, positive item i, weight w) the candidates negatives[s, 0], negatives[s, 1], … are
    tried in turn, skipping the user's positives (`pos_*` CSR with sorted columns):

    - WARP (`warp`): the first candidate n with score(n) > score(i) - 1 is used, with loss
      L = w·log(max(1, ⌊(n_candidates - 1) / t⌋)) where t counts the candidates tried (positives
      included), capped at `max_loss`; no such candidate: no update;
    - BPR: the first candidate that is not a positive, with L = w·σ(score(n) - score(i)).

    The gradient steps: item i's features along -L·user, n's along +L·user, the user's along
    L·(n - i), biases of i by -L and of n by +L — all from the vectors before the step, in that
    order, each feature row by `_feature_step`. `drop_user[s]` / `drop_item[s]` leave the identity
    columns (< n_user_identity / n_item_identity) out of the user / both items for that sample.
    `work` is a (6, n_factors) float64 scratch array. Returns the summed loss (WARP: the L used;
    BPR: w·log(1 + e^(score(n) - score(i)))).
    """
    k = U.shape[1]
    u_vec = work[0]
    p_vec = work[1]
    n_vec = work[2]
    g_user = work[3]
    g_pos = work[4]
    g_neg = work[5]
    total = 0.0
    for s in range(len(users)):
        u = users[s]
        i = items[s]
        skip_u = n_user_identity if drop_user[s] else 0
        skip_i = n_item_identity if drop_item[s] else 0
        _feature_sum(uf_indptr, uf_indices, uf_data, u, skip_u, U, Vb, False, u_vec)
        bp = _feature_sum(if_indptr, if_indices, if_data, i, skip_i, V, Vb, True, p_vec)
        pos_score = bp
        for f in range(k):
            pos_score += u_vec[f] * p_vec[f]
        loss = 0.0
        neg = -1
        for t in range(negatives.shape[1]):
            j = negatives[s, t]
            if _is_positive(pos_indptr, pos_indices, u, j):
                continue
            bn = _feature_sum(if_indptr, if_indices, if_data, j, skip_i, V, Vb, True, n_vec)
            neg_score = bn
            for f in range(k):
                neg_score += u_vec[f] * n_vec[f]
            if warp:
                if neg_score > pos_score - 1.0:
                    loss = weights[s] * math.log(max(1.0, math.floor((n_candidates - 1) / (t + 1))))
                    loss = min(loss, max_loss)
                    total += loss
                    neg = j
                    break
            else:
                x = neg_score - pos_score
                loss = weights[s] / (1.0 + math.exp(-x))
                total += weights[s] * (max(x, 0.0) + math.log1p(math.exp(-abs(x))))
                neg = j
                break
        if neg < 0 or loss == 0.0:
            continue
        for f in range(k):
            g_pos[f] = -loss * u_vec[f]
            g_neg[f] = loss * u_vec[f]
            g_user[f] = loss * (n_vec[f] - p_vec[f])
        _feature_step(if_indptr, if_indices, if_data, i, skip_i, V, Vb, True, acc_V, acc_Vb, g_pos, -loss, lr,
                      item_alpha, adagrad)
        _feature_step(if_indptr, if_indices, if_data, neg, skip_i, V, Vb, True, acc_V, acc_Vb, g_neg, loss, lr,
                      item_alpha, adagrad)
        _feature_step(uf_indptr, uf_indices, uf_data, u, skip_u, U, Vb, False, acc_U, acc_Vb, g_user, 0.0, lr,
                      user_alpha, adagrad)
    return total


# --- Bayesian matrix factorisation (Gibbs sampling), used by models/bayesian.py -------------------

@numba.njit(cache=True, nogil=True, fastmath=True)
def bmf_gram(indptr, cols, targets, Z, G, c):  # pragma: no cover - compiled
    """Per-entity sufficient statistics of the ratings: for entity e with ratings j (CSR rows),
    design z_j = [Z[cols[j]], 1] and target t_j, set G[e] = Σ z_j z_jᵀ and c[e] = Σ z_j t_j."""
    n = len(indptr) - 1
    k = Z.shape[1]
    d = k + 1
    z = np.empty(d)
    for e in range(n):
        for a in range(d):
            c[e, a] = 0.0
            for b in range(d):
                G[e, a, b] = 0.0
        for j in range(indptr[e], indptr[e + 1]):
            col = cols[j]
            for a in range(k):
                z[a] = Z[col, a]
            z[k] = 1.0
            t = targets[j]
            for a in range(d):
                za = z[a]
                c[e, a] += za * t
                for b in range(a + 1):
                    G[e, a, b] += za * z[b]
        for a in range(d):
            for b in range(a):
                G[e, b, a] = G[e, a, b]


@numba.njit(cache=True, nogil=True)
def _bmf_gaussian_draw(lam, h, eps, out, work):  # pragma: no cover - compiled
    """out = Λ⁻¹h + L⁻ᵀ·eps where Λ = L Lᵀ (Cholesky, computed in place in the lower triangle of
    `lam`): a draw from N(Λ⁻¹h, Λ⁻¹) given standard normal `eps`."""
    d = len(h)
    for a in range(d):
        s = lam[a, a]
        for m in range(a):
            s -= lam[a, m] * lam[a, m]
        s = np.sqrt(s)
        lam[a, a] = s
        for b in range(a + 1, d):
            t = lam[b, a]
            for m in range(a):
                t -= lam[b, m] * lam[a, m]
            lam[b, a] = t / s
    for a in range(d):  # L w = h
        s = h[a]
        for m in range(a):
            s -= lam[a, m] * work[m]
        work[a] = s / lam[a, a]
    for a in range(d - 1, -1, -1):  # Lᵀ out = w + eps
        s = work[a] + eps[a]
        for m in range(a + 1, d):
            s -= lam[m, a] * out[m]
        out[a] = s / lam[a, a]


@numba.njit(cache=True, nogil=True, fastmath=True)
def bmf_sample_rows(G, c, s, alpha, prior_prec, prior_h, eps, x):  # pragma: no cover - compiled
    """Draw every row x[e] from its conditional posterior N(Λ⁻¹h, Λ⁻¹) with
    Λ = prior_prec + α·G[e] and h = prior_h + α·(c[e] − G[e]·s[e]) (s[e]: the row's feature offset);
    eps[e] are the standard normal draws."""
    n, d = x.shape
    lam = np.empty((d, d))
    h = np.empty(d)
    work = np.empty(d)
    out = np.empty(d)
    for e in range(n):
        for a in range(d):
            acc = 0.0
            for b in range(d):
                lam[a, b] = prior_prec[a, b] + alpha * G[e, a, b]
                acc += G[e, a, b] * s[e, b]
            h[a] = prior_h[a] + alpha * (c[e, a] - acc)
        _bmf_gaussian_draw(lam, h, eps[e], out, work)
        for a in range(d):
            x[e, a] = out[a]


@numba.njit(cache=True, nogil=True, fastmath=True)
def bmf_sample_features(f_ptr, f_ent, f_w, G, c, x, s, alpha, prior_prec, prior_h, eps, phi):  # pragma: no cover
    """Gibbs-sample feature vectors phi[g] one after the other. Entity e's effective vector is
    x[e] + s[e] with s[e] = Σ_g w_eg·phi[g]; feature g holds entities f_ent[f_ptr[g]:f_ptr[g+1]] with
    weights f_w. The conditional of phi[g] is N(Λ⁻¹h, Λ⁻¹), Λ = prior_prec + α Σ_e w² G[e],
    h = prior_h + α Σ_e w (c[e] − G[e](x[e] + s[e] − w·phi[g])); s is kept up to date."""
    nf, d = phi.shape
    lam = np.empty((d, d))
    h = np.empty(d)
    work = np.empty(d)
    out = np.empty(d)
    v = np.empty(d)
    for g in range(nf):
        for a in range(d):
            h[a] = prior_h[a]
            for b in range(d):
                lam[a, b] = prior_prec[a, b]
        for j in range(f_ptr[g], f_ptr[g + 1]):
            e = f_ent[j]
            w = f_w[j]
            for a in range(d):
                v[a] = x[e, a] + s[e, a] - w * phi[g, a]
            aw = alpha * w
            aww = aw * w
            for a in range(d):
                acc = 0.0
                for b in range(d):
                    gab = G[e, a, b]
                    acc += gab * v[b]
                    lam[a, b] += aww * gab
                h[a] += aw * (c[e, a] - acc)
        _bmf_gaussian_draw(lam, h, eps[g], out, work)
        for j in range(f_ptr[g], f_ptr[g + 1]):
            e = f_ent[j]
            w = f_w[j]
            for a in range(d):
                s[e, a] += w * (out[a] - phi[g, a])
        for a in range(d):
            phi[g, a] = out[a]


@numba.njit(cache=True, nogil=True, fastmath=True)
def bmf_sse(users, items, ratings, mu, U, V):  # pragma: no cover - compiled
    """Σ (r − μ − U[u,k] − V[i,k] − U[u,:k]·V[i,:k])² over the ratings (the last column is the bias)."""
    k = U.shape[1] - 1
    sse = 0.0
    for j in range(len(ratings)):
        u = users[j]
        i = items[j]
        pred = mu + U[u, k] + V[i, k]
        for a in range(k):
            pred += U[u, a] * V[i, a]
        err = ratings[j] - pred
        sse += err * err
    return sse
