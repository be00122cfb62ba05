"""EASE: embarrassingly shallow autoencoder (Steck 2019), a closed-form item-item top-N model.

With X the user × item interaction matrix (binary, or rating-valued) and λ the L2 penalty,

    P = (XᵀX + λI)⁻¹,   B = I − P · diag(1 / diag(P))   (so diag(B) = 0),   scores(u) = X_u B.

B is a dense item × item matrix, found by one Cholesky factorisation and inversion of the Gram
matrix (LAPACK potrf/potri, in place), so memory is one n × n matrix of the chosen dtype plus a
block; `fit` refuses catalogues that would need more than `max_memory_gb`.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field
from scipy.linalg import lapack

from tastemaker.data.interactions import Interactions
from tastemaker.errors import ConfigError, DataError
from tastemaker.models.base import ModelConfig, Reason, Recommender
from tastemaker.models.weighting import interaction_matrix

_BLOCK_CELLS = 4_000_000


class EASEConfig(ModelConfig):
    l2: float = Field(default=300.0, gt=0.0)
    """λ, the L2 penalty on B (Steck's λ). Larger values favour popular items. The default was the
    best NDCG@10 on a validation carve-out of MovieLens-100K u1.base (`validation_split(...,
    method="user_holdout", fraction=0.2, seed=0)`; value weighting 0.2811 at 300, binary X 0.2650
    at 250; grid 100–1000)."""
    threshold: float | None = None
    """Count only interactions with value ≥ threshold (e.g. 4 to keep liked movies); None counts
    every interaction."""
    weighting: Literal["binary", "value"] = "value"
    """``binary``: X holds 1 per counted interaction; ``value``: X holds the value (rating, count)
    divided by the mean value, so λ has the same meaning for ratings, counts and 0/1 data (on
    0/1 data the two are identical)."""
    dtype: Literal["float32", "float64"] = "float64"
    """Precision of the Gram matrix and B; float32 halves memory and time."""
    max_memory_gb: float = Field(default=4.0, gt=0.0)
    """Refuse to fit when the dense n_items × n_items matrix would need more than this."""


def ease_weights(x: sp.spmatrix, l2: float, dtype: str = "float64") -> np.ndarray:
    """B = I − P diag(1/diag P), P = (XᵀX + λI)⁻¹, with diag(B) = 0 — dense (n, n) of `dtype`.

    The Gram matrix is assembled in column blocks, factorised and inverted in place; B overwrites it.
    """
    x = sp.csc_matrix(x, dtype=dtype)
    n = x.shape[1]
    xt = x.T.tocsr()
    gram = np.empty((n, n), dtype=dtype, order="F")
    step = max(1, _BLOCK_CELLS // max(n, 1))
    for s in range(0, n, step):
        gram[:, s:s + step] = (xt @ x[:, s:s + step]).toarray()
    gram[np.diag_indices(n)] += l2
    potrf, potri = lapack.get_lapack_funcs(("potrf", "potri"), (gram,))
    chol, info = potrf(gram, lower=False, overwrite_a=True, clean=False)
    if info != 0:
        raise ConfigError(f"EASE: XᵀX + λI is not positive definite (LAPACK potrf info={info}); "
                          f"increase l2 (now {l2}) or use dtype='float64'")
    p, info = potri(chol, lower=False, overwrite_c=True)
    if info != 0:
        raise ConfigError(f"EASE: inverting XᵀX + λI failed (LAPACK potri info={info}); increase l2 (now {l2})")
    # potri leaves the inverse in the upper triangle: mirror it, one block of columns at a time
    for s in range(0, n, step):
        e = min(s + step, n)
        p[e:, s:e] = p[s:e, e:].T
        blk = p[s:e, s:e]
        blk[np.tril_indices(e - s, -1)] = blk.T[np.tril_indices(e - s, -1)]
    d = np.diag(p).copy()
    p /= -d[None, :]
    np.fill_diagonal(p, 0.0)
    return p


class EASE(Recommender):
    """EASE top-N model (Steck 2019): scores = X_u B; ranks items, does not predict ratings.

    Only items with at least one counted interaction enter B (the others cannot be ranked), and
    users without counted interactions get the popularity fallback. `explain` names the history
    item j with the largest contribution X_uj · B_ji.
    """

    name = "ease"
    Config = EASEConfig

    def _counted(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        """X: the training matrix after the threshold and weighting settings."""
        return interaction_matrix(matrix, threshold=self.config.threshold, weighting=self.config.weighting)

    def _prepare(self) -> None:
        x = self._counted(self.train_matrix)
        self.x = x[:, self.active].astype(self.config.dtype).tocsr()
        self.user_nnz = np.diff(self.x.indptr)

    def _fit(self, data: Interactions) -> None:
        cfg = self.config
        x = self._counted(self.train_matrix)
        self.active = np.flatnonzero(np.diff(x.tocsc().indptr)).astype(np.int64)
        n = len(self.active)
        if n == 0:
            raise DataError(f"EASE: no interaction has value ≥ threshold {cfg.threshold}",
                            hint="lower or unset `threshold`")
        itemsize = np.dtype(cfg.dtype).itemsize
        need = n * n * itemsize / 1e9
        if need > cfg.max_memory_gb:
            raise ConfigError(
                f"EASE needs a dense {n:,} × {n:,} {cfg.dtype} matrix ({need:.1f} GB) but max_memory_gb is "
                f"{cfg.max_memory_gb:g}: drop rare items before training, use dtype='float32'"
                f"{'' if cfg.dtype == 'float32' else f' ({need / 2:.1f} GB)'}, raise max_memory_gb if the "
                "machine has the memory, or use a model without a dense item matrix (item_knn, biased_mf)")
        self.weights = ease_weights(x[:, self.active], cfg.l2, cfg.dtype)
        self._prepare()

    def _cold_users(self, users: np.ndarray) -> np.ndarray:
        return self.user_nnz[users] == 0

    def scorable_items(self) -> np.ndarray:
        mask = np.zeros(self.n_items, dtype=bool)
        mask[self.active] = True
        return mask

    def _score(self, users: np.ndarray) -> np.ndarray:
        out = np.zeros((len(users), self.n_items))
        out[:, self.active] = self.x[users] @ self.weights
        return out

    def _explain(self, user: int, items: np.ndarray) -> list[Reason]:
        """The history item j with the largest contribution X_uj · B_ji to each item's score."""
        row = self.x[user]
        hist, xv = row.indices, row.data.astype(np.float64)
        pos = np.full(self.n_items, -1, dtype=np.int64)
        pos[self.active] = np.arange(len(self.active))
        items = np.asarray(items, dtype=np.int64)
        out: list[Reason] = []
        values = self.train_matrix[user]
        raw = dict(zip(values.indices.tolist(), values.data.tolist(), strict=True))
        for i in items.tolist():
            if i < 0:
                out.append(Reason("unknown_item"))
                continue
            if pos[i] < 0 or len(hist) == 0:
                out.append(Reason("personal_taste"))
                continue
            contrib = xv * self.weights[hist, pos[i]]
            best = int(np.argmax(contrib))
            if contrib[best] <= 0:
                out.append(Reason("personal_taste"))
                continue
            j = int(self.active[hist[best]])
            out.append(Reason("similar_to_history", anchor=self.item_vocab.lookup([j])[0].item(),
                              anchor_value=float(raw[j]) if self.explicit else None))
        return out

    def _get_state(self):
        return {"weights": self.weights, "active_items": self.active}, {}

    def _set_state(self, arrays, meta):
        self.weights = arrays["weights"]
        self.active = arrays["active_items"].astype(np.int64)
        self._prepare()


__all__ = ["EASE", "EASEConfig", "ease_weights"]
