"""A small shop for the service tests: a fitted EASE bundle, a catalogue CSV with text, a rule file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

API_KEY = "test-key-123"
CATEGORIES = ["home/kitchen", "home/garden", "sports/running", "books/fiction"]
WORDS = {
    "home/kitchen": "mug kettle teapot cup ceramic",
    "home/garden": "shovel rake seeds plant pot",
    "sports/running": "shoe sneaker trainer marathon sock",
    "books/fiction": "novel mystery story thriller paperback",
}
N_ITEMS = 40
N_USERS = 30


def _shop(root: Path) -> dict[str, Path]:
    import pandas as pd

    from tastemaker.data import Interactions
    from tastemaker.models.ease import EASE

    rng = np.random.default_rng(0)
    items = [f"i{j}" for j in range(N_ITEMS)]
    cats = [CATEGORIES[j % 4] for j in range(N_ITEMS)]
    catalog = pd.DataFrame({
        "item_id": items,
        "title": [f"{WORDS[c].split()[j % 5]} {j}" for j, c in enumerate(cats)],
        "text": [WORDS[c] for c in cats],
        "price": np.round(rng.uniform(5, 100, N_ITEMS), 2),
        "margin": np.round(rng.uniform(0.05, 0.5, N_ITEMS), 2),
        "stock": [0 if j == 3 else 10 for j in range(N_ITEMS)],
        "category": cats,
        "brand": [f"brand{j % 5}" for j in range(N_ITEMS)],
    })
    catalog_path = root / "catalog.csv"
    catalog.to_csv(catalog_path, index=False)
    users, its = [], []
    for u in range(N_USERS):
        c = u % 4
        pool = [j for j in range(N_ITEMS) if j % 4 == c]
        chosen = {int(j) for j in rng.choice(pool, size=5, replace=False)} | {int(rng.integers(N_ITEMS))}
        for j in sorted(chosen):
            users.append(f"u{u}")
            its.append(items[j])
    data = Interactions.from_arrays(users, its, name="test-shop")
    model_dir = EASE(l2=10.0).fit(data).save(root / "model")
    rules = root / "rules.toml"
    rules.write_text('k = 10\n[filters]\nin_stock = true\nalready_bought = "exclude"\n'
                     '[[boosts]]\nname = "push-brand0"\nkind = "brand"\nbrands = ["brand0"]\nfactor = 1.5\n'
                     '[[caps]]\nby = "brand"\nmax = 3\n')
    return {"catalog": catalog_path, "model": Path(model_dir), "rules": rules}


@pytest.fixture(scope="session")
def shop(tmp_path_factory) -> dict[str, Path]:
    return _shop(tmp_path_factory.mktemp("shop"))


@pytest.fixture
def settings(shop, tmp_path):
    from tastemaker.serving import ServeSettings

    return ServeSettings(model=str(shop["model"]), catalog=str(shop["catalog"]), rules=str(shop["rules"]),
                         data_dir=str(tmp_path / "serve"), api_keys=[API_KEY], max_body_bytes=64 * 1024)


@pytest.fixture
def client(settings):
    from fastapi.testclient import TestClient

    from tastemaker.serving import create_app

    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture
def auth() -> dict[str, str]:
    return {"X-API-Key": API_KEY}
