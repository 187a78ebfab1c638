"""Online experiments: which variant (arm) of the ``EXPERIMENTS`` file serves a user.

Assignment is a hash of the experiment's salt and the user id, never state:
every replica, and the same replica after a restart, puts a user in the same
variant without asking anyone, and changing the salt reshuffles everyone (a
new experiment). Without a file there is one variant, ``default``, that
overrides nothing: today's behaviour.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

DEFAULT_VARIANT = "default"
"""The variant of every answer when no experiment is configured."""
VARIANT_NAME = r"^[a-z0-9][a-z0-9_-]{0,39}$"
"""A variant name is a metric label value: short, lower case, from the file (a closed set)."""
MAX_VARIANTS = 10
_HASH_SPACE = 2**64

ModelKindName = Literal["two_tower", "als", "popularity"]
"""The links of the chain a variant may start from (the published ``model_used`` values)."""


class ExperimentError(ValueError):
    """An ``EXPERIMENTS`` file the service cannot run with; the message names the file and the problem."""


class Overrides(BaseModel):
    """What a variant changes in the requests it serves; absent = the request's own value."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    diversity: float | None = Field(default=None, ge=0.0, le=1.0)
    personalization: float | None = Field(default=None, ge=0.0, le=1.0)
    first_model: ModelKindName | None = None
    """The chain starts at this model (``popularity`` = popularity only); the later links stay fallbacks."""
    fresh_recipe_slots: int | None = Field(default=None, ge=0, le=1)
    """FRESH_RECIPE_SLOTS for this variant's answers (0 = none)."""


class Variant(BaseModel):
    """One arm of the experiment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=VARIANT_NAME)
    weight: float = Field(gt=0, allow_inf_nan=False)
    overrides: Overrides = Overrides()


class Experiment(BaseModel):
    """An experiment: its name, the salt of its assignment and its variants (the first is the control)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100)
    salt: str = Field(min_length=1, max_length=200)
    variants: list[Variant] = Field(min_length=1, max_length=MAX_VARIANTS)

    @model_validator(mode="after")
    def _names_unique(self) -> Self:
        seen: set[str] = set()
        for variant in self.variants:
            if variant.name in seen:
                raise ValueError(f"duplicate variant name {variant.name!r}")
            seen.add(variant.name)
        return self

    def assign(self, user_id: int | None) -> Variant:
        """The user's variant: the hash of salt and id placed on the weights' cumulative shares.

        An answer without a user (cold-start, similar recipes) is the control's, the first variant.
        """
        if user_id is None:
            return self.variants[0]
        digest = hashlib.sha256(f"{self.salt}:{user_id}".encode()).digest()
        point = int.from_bytes(digest[:8], "big") / _HASH_SPACE * sum(v.weight for v in self.variants)
        for variant in self.variants:
            point -= variant.weight
            if point < 0:
                return variant
        return self.variants[-1]

    def variant(self, name: str) -> Variant | None:
        """The variant called ``name``, or None."""
        return next((variant for variant in self.variants if variant.name == name), None)

    def names(self) -> list[str]:
        return [variant.name for variant in self.variants]


NO_EXPERIMENT = Experiment(name="none", salt="none", variants=[Variant(name=DEFAULT_VARIANT, weight=1.0)])
"""What serves without ``EXPERIMENTS``: one variant, ``default``, changing nothing."""


def load_experiment(path: Path) -> Experiment:
    """The experiment of a YAML or JSON file; ``ExperimentError`` naming the file and the problem."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ExperimentError(f"EXPERIMENTS={path}: cannot read it ({exc.strerror or exc})") from None
    try:
        raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ExperimentError(
            f"EXPERIMENTS={path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'} ({exc})"
        ) from None
    try:
        return Experiment.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'file'}: {error['msg']}"
            for error in exc.errors(include_url=False, include_input=False)
        )
        raise ExperimentError(f"EXPERIMENTS={path}: {problems}") from None


@lru_cache(maxsize=4)
def experiment_of(path: Path | None) -> Experiment:
    """The experiment of the ``EXPERIMENTS`` setting (read once per path), ``NO_EXPERIMENT`` when unset."""
    return NO_EXPERIMENT if path is None else load_experiment(path)
