"""The content path: items get vectors from their text the moment they exist, so they can be
recommended before their first interaction.

- `TextEncoder` and its implementations `TfidfEncoder` (scikit-learn) and `MiniLMEncoder`
  (all-MiniLM-L6-v2 sentence embeddings, offline; needs the ``content`` extra);
- `item_texts`: the text of each item from its side features (title, genres, year, description…);
- `ContentIndex`: a growing id → vector index with similar-item, similar-to-vector and
  user-profile queries (exact dot-product search behind one method).

The `content_knn` model (`tastemaker.models.content.ContentKNN`) builds on these.
"""

from tastemaker.content.encoders import (
    ENCODERS,
    MiniLMEncoder,
    TextEncoder,
    TfidfEncoder,
    encoder_from_state,
    make_encoder,
)
from tastemaker.content.index import ContentIndex, Hits, decay_weights, normalize_rows, profiles
from tastemaker.content.text import item_texts

__all__ = ["ENCODERS", "ContentIndex", "Hits", "MiniLMEncoder", "TextEncoder", "TfidfEncoder", "decay_weights",
           "encoder_from_state", "item_texts", "make_encoder", "normalize_rows", "profiles"]
