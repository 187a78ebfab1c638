"""The Two-Tower runner service (the only process that imports torch)."""

from __future__ import annotations

import bentoml

from runners.base import SERVICE_CONFIG, RankerRunner


@bentoml.service(name="recipe_two_tower_runner", **SERVICE_CONFIG)
class TwoTowerRunner(RankerRunner):
    model_setting = "two_tower_model"
