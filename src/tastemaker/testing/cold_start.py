"""Synthetic data where taste follows side features, for cold-start tests of feature-aware models."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tastemaker.data.features import SideFeatures
from tastemaker.data.interactions import Interactions
from tastemaker.data.vocabulary import Vocabulary

GROUP_WORDS = ("space", "love", "ghost", "crime", "music", "war")


def synthetic_cold_start(
    n_users: int = 150,
    n_items: int = 90,
    per_user: int = 15,
    *,
    n_groups: int = 3,
    affinity: float = 8.0,
    seed: int = 0,
) -> Interactions:
    """Ratings where user u belongs to group u % n_groups and item i to group i % n_groups.

    Users pick items of their own group `affinity` times as often as others and rate them 5
    (others 2). Items carry their group as a genre, a title word and nothing else informative
    (year is noise); users carry it as the categorical ``group`` (age and gender are noise). A
    model that ranks by features therefore ranks an item it never saw, or for a user it never
    saw, well above chance. Ids are 1000+u and 5000+i.
    """
    if not 2 <= n_groups <= len(GROUP_WORDS):
        raise ValueError(f"n_groups must be between 2 and {len(GROUP_WORDS)}")
    rng = np.random.default_rng(seed)
    user_group = np.arange(n_users) % n_groups
    item_group = np.arange(n_items) % n_groups
    users, items, ratings = [], [], []
    for u in range(n_users):
        same = item_group == user_group[u]
        prob = np.where(same, affinity, 1.0)
        chosen = rng.choice(n_items, size=min(per_user, n_items), replace=False, p=prob / prob.sum())
        users += [1000 + u] * len(chosen)
        items += (5000 + chosen).tolist()
        ratings += np.where(same[chosen], 5.0, 2.0).tolist()
    user_vocab = Vocabulary(1000 + np.arange(n_users))
    item_vocab = Vocabulary(5000 + np.arange(n_items))
    genres = tuple(f"G{g}" for g in range(n_groups))
    g = np.zeros((n_items, n_groups), dtype=bool)
    g[np.arange(n_items), item_group] = True
    titles = [f"The {GROUP_WORDS[item_group[i]]} story {i}" for i in range(n_items)]
    item_frame = pd.DataFrame({"title": titles, "year": 1960 + rng.integers(0, 50, n_items)},
                              index=pd.Index(item_vocab.ids, name="item"))
    user_frame = pd.DataFrame({"group": [f"g{c}" for c in user_group], "age": rng.integers(15, 70, n_users),
                               "gender": rng.choice(["F", "M"], n_users)},
                              index=pd.Index(user_vocab.ids, name="user"))
    return Interactions.from_arrays(
        users, items, ratings, user_vocab=user_vocab, item_vocab=item_vocab, explicit=True, rating_scale=(1.0, 5.0),
        item_features=SideFeatures(item_frame, {"genres": (genres, g)}), user_features=SideFeatures(user_frame),
        name=f"synthetic-cold-start-{seed}",
    )


__all__ = ["synthetic_cold_start"]
