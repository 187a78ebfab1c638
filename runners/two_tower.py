"""The Two-Tower runner service: the user tower folds in with numpy on the CPU, with torch only when DEVICE=cuda."""

from __future__ import annotations

import bentoml

from recipe_ml.models import REGISTRY
from runners.base import SERVICE_CONFIG, RankerRunner


@bentoml.service(name=REGISTRY["two_tower"].runner, **SERVICE_CONFIG)
class TwoTowerRunner(RankerRunner):
    kind = "two_tower"
