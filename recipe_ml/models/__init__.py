"""The recommenders, by kind; a module is imported only when its kind is used.

Lazy on purpose: the API process loads popularity and ALS models without
importing torch, which only ``two_tower`` needs.
"""

from __future__ import annotations

import importlib

from recipe_ml.models.base import Recommender

_MODULES = {
    "popularity": ("recipe_ml.models.popularity", "PopularityRecommender"),
    "als": ("recipe_ml.models.als", "ALSRecommender"),
    "two_tower": ("recipe_ml.models.two_tower", "TwoTowerRecommender"),
}
KINDS = tuple(_MODULES)
"""Every model kind, in the order training runs them."""


def model_class(kind: str) -> type[Recommender]:
    """The class of a model kind, importing its module on demand."""
    if kind not in _MODULES:
        raise ValueError(f"unknown model kind {kind!r}; known kinds: {', '.join(KINDS)}")
    module_name, class_name = _MODULES[kind]
    cls: type[Recommender] = getattr(importlib.import_module(module_name), class_name)
    return cls


__all__ = ["KINDS", "Recommender", "model_class"]
