"""The ALS runner service: the first fallback behind Two-Tower."""

from __future__ import annotations

import bentoml

from runners.base import SERVICE_CONFIG, RankerRunner


@bentoml.service(name="recipe_als_runner", **SERVICE_CONFIG)
class ALSRunner(RankerRunner):
    model_setting = "als_model"
