"""Small synthetic data sets with planted structure, for fast tests and edge cases."""

from __future__ import annotations

import numpy as np

from tastemaker.data.features import SideFeatures
from tastemaker.data.interactions import Interactions
from tastemaker.data.vocabulary import Vocabulary


def synthetic_ratings(
    n_users: int = 60,
    n_items: int = 40,
    per_user: int = 12,
    *,
    n_factors: int = 3,
    noise: float = 0.3,
    seed: int = 0,
    string_ids: bool = False,
    extra_users: int = 0,
    extra_items: int = 0,
) -> Interactions:
    """Ratings 1–5 from a planted low-rank model with user/item biases and popularity skew.

    Ids are 1000+u / 5000+i (or "u…"/"i…" strings). `extra_users` / `extra_items` add ids to the
    vocabularies that have no interactions (users without history, items without data). Items
    carry genre-like multi-hot features and titles.
    """
    rng = np.random.default_rng(seed)
    p = rng.normal(0, 1, (n_users, n_factors))
    q = rng.normal(0, 1, (n_items, n_factors))
    bu = rng.normal(0, 0.4, n_users)
    bi = rng.normal(0, 0.6, n_items)
    pop = rng.zipf(1.6, n_items).astype(float)
    pop /= pop.sum()
    users, items, ratings, times = [], [], [], []
    for u in range(n_users):
        chosen = rng.choice(n_items, size=min(per_user, n_items), replace=False, p=0.5 * pop + 0.5 / n_items)
        raw = 3.4 + bu[u] + bi[chosen] + 0.5 * (q[chosen] @ p[u]) + rng.normal(0, noise, len(chosen))
        users += [u] * len(chosen)
        items += chosen.tolist()
        ratings += np.clip(np.rint(raw), 1, 5).tolist()
        times += (1_000_000 + u * 1000 + np.arange(len(chosen)) * 10).tolist()
    uid = (lambda i: f"u{i}") if string_ids else (lambda i: 1000 + i)
    iid = (lambda i: f"i{i}") if string_ids else (lambda i: 5000 + i)
    user_vocab = Vocabulary([uid(u) for u in range(n_users + extra_users)])
    item_vocab = Vocabulary([iid(i) for i in range(n_items + extra_items)])
    genres = ("Action", "Comedy", "Drama", "Horror")
    n_all = n_items + extra_items
    g = np.zeros((n_all, len(genres)), dtype=bool)
    g[np.arange(n_all), np.arange(n_all) % len(genres)] = True
    import pandas as pd

    frame = pd.DataFrame({"title": [f"Movie {i}" for i in range(n_all)], "year": 1990 + np.arange(n_all) % 20},
                         index=pd.Index(item_vocab.ids, name="item"))
    features = SideFeatures(frame, {"genres": (genres, g)})
    return Interactions.from_arrays(
        [uid(u) for u in users], [iid(i) for i in items], ratings, timestamps=times,
        user_vocab=user_vocab, item_vocab=item_vocab, explicit=True, rating_scale=(1.0, 5.0),
        item_features=features, name=f"synthetic-ratings-{seed}",
    )


def synthetic_implicit(n_users: int = 80, n_items: int = 50, per_user: int = 10, *, seed: int = 0) -> Interactions:
    """Implicit (value 1) events from clustered tastes: users in a cluster prefer its items."""
    rng = np.random.default_rng(seed)
    n_clusters = 4
    item_cluster = np.arange(n_items) % n_clusters
    users, items = [], []
    for u in range(n_users):
        c = u % n_clusters
        prob = np.where(item_cluster == c, 6.0, 1.0)
        prob /= prob.sum()
        chosen = rng.choice(n_items, size=per_user, replace=False, p=prob)
        users += [u] * per_user
        items += chosen.tolist()
    return Interactions.from_arrays(users, items, name=f"synthetic-implicit-{seed}")
