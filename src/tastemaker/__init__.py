"""tastemaker: a recommender engine for content personalisation."""

__version__ = "0.1.0"
