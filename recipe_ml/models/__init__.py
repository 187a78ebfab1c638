"""The recommenders, and the tables of model kinds and personal scorers the rest of the project reads.

Adding a model kind is a row of ``REGISTRY`` (plus its ``<kind>_model``
setting in ``recipe_ml.config``, checked by a test): training, the runners,
the fallback chain, the harness and the Bento's model list all follow it.
Adding a personal scorer is a row of ``PERSONAL_SCORERS``: a saved model
names its scorer, and loading it picks the class from this table.

Modules are imported lazily on purpose: the ``bentoml serve`` supervisor
reads this table without importing numpy or scipy, and the API process loads
popularity and ALS models without importing torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from recipe_ml.models.base import PersonalScorer, Recommender


def _import(module: str, class_name: str) -> Any:
    """A class of this package, importing its module on demand."""
    return getattr(importlib.import_module(module), class_name)


@dataclass(frozen=True)
class ModelKind:
    """What the project knows of one model kind."""

    name: str
    """Stable name of the algorithm (``Recommender.kind``), also the metric label and ``model_used``."""
    module: str
    class_name: str
    runner: str | None
    """BentoML service name of the kind's runner, or None: scored in the API process."""
    seeded: bool = False
    """The constructor takes a ``seed`` (training passes its own, so a seed reproduces every model)."""
    trains_in_epochs: bool = False
    """The constructor takes ``epochs`` and ``fit_epochs`` yields after each (progress, per-epoch validation)."""
    personal: bool = False
    """Ships with the personal scorer; the shipped personal policy's weights are fitted on this kind's scores."""

    @property
    def store_name(self) -> str:
        """Default name in the model store (the ``<kind>_model`` setting overrides it)."""
        return f"recipe_{self.name}"

    @property
    def setting(self) -> str:
        """The ``Settings`` field (and ``<KIND>_MODEL`` variable) naming the stored model to serve."""
        return f"{self.name}_model"

    def model_class(self) -> type[Recommender]:
        """The class of the kind, importing its module on demand."""
        cls: type[Recommender] = _import(self.module, self.class_name)
        return cls


REGISTRY: dict[str, ModelKind] = {
    kind.name: kind
    for kind in (
        ModelKind("popularity", "recipe_ml.models.popularity", "PopularityRecommender", runner=None),
        ModelKind("als", "recipe_ml.models.als", "ALSRecommender", runner="recipe_als_runner", seeded=True),
        ModelKind(
            "two_tower",
            "recipe_ml.models.two_tower",
            "TwoTowerRecommender",
            runner="recipe_two_tower_runner",
            seeded=True,
            trains_in_epochs=True,
            personal=True,
        ),
    )
}
KINDS = tuple(REGISTRY)
"""Every model kind, in the order training runs them."""
CHAIN = ("two_tower", "als", "popularity")
"""The serving fallback chain, preferred model first; its last link runs in the API process."""


def model_kind(name: str) -> ModelKind:
    """The registry row of ``name``; ValueError lists the known kinds."""
    if name not in REGISTRY:
        raise ValueError(f"unknown model kind {name!r}; known kinds: {', '.join(KINDS)}")
    return REGISTRY[name]


def model_class(name: str) -> type[Recommender]:
    """The class of a model kind, importing its module on demand."""
    return model_kind(name).model_class()


PERSONAL_SCORERS: dict[str, tuple[str, str]] = {
    "ease": ("recipe_ml.models.ease", "EASEScorer"),
}
"""Personal scorer kind (``PersonalScorer.kind``, saved with the model) -> (module, class)."""


def personal_scorer_class(name: str) -> type[PersonalScorer]:
    """The class of a personal scorer kind; ValueError lists the known ones."""
    if name not in PERSONAL_SCORERS:
        raise ValueError(f"unknown personal scorer {name!r}; known scorers: {', '.join(PERSONAL_SCORERS)}")
    cls: type[PersonalScorer] = _import(*PERSONAL_SCORERS[name])
    return cls


__all__ = [
    "CHAIN",
    "KINDS",
    "PERSONAL_SCORERS",
    "REGISTRY",
    "ModelKind",
    "model_class",
    "model_kind",
    "personal_scorer_class",
]
